"""The schema of a training config: every field, its default and what it means.

Experiment files under `configs/` start from `base_config()` and override fields. The returned
ConfigDict is locked, so a misspelt field, in a config file or on the command line
(`--config.optimizer.learning_rate=3e-4`), is an error naming the field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ml_collections

from embeddinggemma.atomic import atomic_write, check_target
from embeddinggemma.data.config import data_config, parse_mixture
from embeddinggemma.files import read_json
from embeddinggemma.model import EmbedderConfig, RuntimeConfig, get_preset
from embeddinggemma.quantization import SCHEMES

CONFIG_FILE = "config.json"  # the resolved config in a run directory; it marks the directory as a run's


class ConfigError(ValueError):
    """A config value that cannot work, alone or with the run's inputs; the message names the field.

    The train command reports it (and missing or malformed input files) as exit status 2, without
    a traceback; any other error is a bug and keeps its traceback.
    """

# Logical parameter and activation axes -> mesh axes. `batch` spans every data-parallel axis,
# so the contrastive loss sees the whole global batch.
DEFAULT_SHARDING_RULES = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", None),
    ("head_dim", None),
    ("projection", "tensor"),
    ("layers", None),
    # Activations (model/layers.py): split by example only; the tensor axis splits the MLP's hidden
    # units, never the residual stream's width, which FSDP's `embed` rule must not reach.
    ("activation_length", None),
    ("activation_embed", None),
    ("activation_mlp", "tensor"),
    ("activation_vocab", "tensor"),
    # A token lookup's rows (model/layers.LOOKUP): by example over the axes `embed` leaves free.
    ("lookup_batch", "data"),
)


def base_config() -> ml_collections.ConfigDict:
    """All fields with their defaults, locked against new keys."""
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.preset = "tiny"            # a key of embeddinggemma.model.config.PRESETS
    c.model.dtype = "float32"          # computation: float32 or bfloat16
    c.model.param_dtype = "float32"    # master parameters (float32 with bfloat16 compute is usual)
    c.model.pooling = "mean"           # mean, first, last, attention
    c.model.remat = "matmuls"          # what the backward pass recomputes: none, matmuls or full
    # Where the encoder starts (training/initialisation.py): "random", "embedder" (an Orbax or
    # sentence-transformers embedding checkpoint), "decoder" (a Gemma 3 decoder: GGUF, Hugging Face
    # directory or a decoder checkpoint, used bidirectionally, projection head fresh),
    # "encoder_decoder" (the encoder of a UL2 adaptation: `python -m embeddinggemma.adapt`'s run
    # directory or export, projection head fresh); "" = "embedder" when model.init_checkpoint is
    # set, else "random".
    c.model.init = ""
    c.model.init_checkpoint = ""       # the checkpoint model.init starts from
    # Keep the first N transformer layers of the preset and of the checkpoint it starts from
    # (a prefix keeps Gemma 3's 5 local : 1 global pattern); 0 = all. Makes a 270M affordable on CPU.
    c.model.keep_layers = 0
    # SentencePiece model; "" = the init checkpoint's, else one trained on data.corpus's train
    # split with the preset's vocabulary size (cached in the corpus directory).
    c.model.tokenizer = ""

    c.loss = ml_collections.ConfigDict()
    c.loss.temperature = 0.05
    c.loss.hard_negative_alpha = 5.0   # w_i = exp(alpha * sg(s(q_i, n_i)))
    c.loss.include_own_positive = True  # standard InfoNCE denominator (see losses/contrastive.py)
    c.loss.contrastive_weight = 1.0
    c.loss.spread_out_weight = 1.0
    c.loss.distillation_weight = 0.0
    c.loss.distillation_distance = "cosine"  # cosine, l2, squared_l2
    c.loss.teacher_dim = 0             # teacher width; 0 = the student's (no learned map)
    c.loss.matryoshka_dims = (768, 512, 256, 128)

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adamw"         # adamw or adafactor
    c.optimizer.learning_rate = 1e-4   # peak
    c.optimizer.warmup_steps = 100
    c.optimizer.decay = "cosine"       # cosine, linear or constant after warmup
    c.optimizer.end_learning_rate_fraction = 0.0
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.01    # never applied to norm scales
    c.optimizer.clip_norm = 1.0        # global-norm clipping; 0 = off

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 1000
    c.train.batch_size = 64            # global: every example is a negative for every other
    c.train.max_query_length = 64
    c.train.max_document_length = 256
    c.train.hard_negatives = True
    c.train.grad_cache_chunk_size = 0  # >0: gradient caching with chunks of this many examples
    c.train.grad_accumulation_steps = 1  # micro-batches; does NOT enlarge the pool of negatives
    c.train.log_every_steps = 10       # the progress bar's loss shown every this many steps

    c.quant = ml_collections.ConfigDict()
    # Quantisation-aware training: "none", or a scheme of embeddinggemma/quantization.py
    # (int8-block, int4-block, mixed) whose fake-quantised weights the train step's forward pass
    # uses (straight-through gradients, float32 master weights, the embedding lookup included).
    c.quant.scheme = "none"

    c.mesh = ml_collections.ConfigDict()
    c.mesh.axes = ("data", "fsdp", "tensor")
    c.mesh.shape = (-1, 1, 1)          # one -1 fills the remaining devices
    c.mesh.rules = DEFAULT_SHARDING_RULES

    c.data = data_config()  # datasets and mixture weights: see embeddinggemma/data/config.py

    c.eval = ml_collections.ConfigDict()
    c.eval.every_steps = 100           # held-out retrieval nDCG@10, also before the first step; 0 = off
    c.eval.max_queries = 500           # per held-out dataset (the first ones, in record order)
    c.eval.batch_size = 64

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = 500     # and after the last step
    c.checkpoint.keep = 3
    c.checkpoint.async_save = True     # write in the background while training goes on
    c.checkpoint.export_params = True  # DIR/export: the final parameters, loadable by Embedder.load

    c.lock()
    return c


# Sizes shared by both stages. The paper gives no batch sizes, lengths or meshes: these are
# choices (documented in configs/), the tiny ones small enough for a 2-core CPU.
SIZES = {
    "tiny": dict(preset="tiny", matryoshka_dims=(64, 32, 16), max_query_length=32,
                 max_document_length=64, mesh_shape=(-1, 1, 1)),
    "300m": dict(preset="embeddinggemma_300m", matryoshka_dims=(768, 512, 256, 128),
                 max_query_length=256, max_document_length=512, mesh_shape=(-1, 16, 1)),
}


def sized_config(size: str) -> ml_collections.ConfigDict:
    """`base_config()` set up for a model size: "tiny" (CPU) or "300m" (a TPU pod slice)."""
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {sorted(SIZES)}.")
    s = SIZES[size]
    c = base_config()
    c.model.preset = s["preset"]
    c.loss.matryoshka_dims = s["matryoshka_dims"]
    c.train.max_query_length = s["max_query_length"]
    c.train.max_document_length = s["max_document_length"]
    c.mesh.shape = s["mesh_shape"]
    if size == "tiny":
        # Built by the first run when missing (scripts/build_corpus.py's defaults).
        c.data.corpus = "~/.cache/embeddinggemma/corpus-v3"
    if size == "300m":
        c.model.dtype = "bfloat16"  # float32 master parameters, bfloat16 compute
        c.model.remat = "full"
    return c


def model_config(config: ml_collections.ConfigDict) -> EmbedderConfig:
    """The architecture a training config asks for (Matryoshka dims come from the loss).

    Raises:
      ConfigError naming the field when the preset, the pooling or a dimension is invalid.
    """
    m = config.model
    try:
        preset = get_preset(m.preset, pooling=m.pooling, matryoshka_dims=tuple(config.loss.matryoshka_dims))
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if not m.keep_layers:
        return preset
    try:
        return dataclasses.replace(preset, transformer=preset.transformer.first_layers(m.keep_layers))
    except ValueError as e:
        raise ConfigError(f"model.{e} (model.preset={m.preset!r})") from e


def runtime_config(config: ml_collections.ConfigDict) -> RuntimeConfig:
    """How the model runs: `model.dtype`, `model.param_dtype` and `model.remat`."""
    m = config.model
    try:
        return RuntimeConfig(dtype=m.dtype, param_dtype=m.param_dtype, remat=m.remat)
    except ValueError as e:
        raise ConfigError(f"model.{e}") from e


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks values that the schema's types cannot; raises ConfigError naming the field."""
    from embeddinggemma.training.initialisation import init_choice  # it raises ConfigError itself
    from embeddinggemma.training.optimizer import check_optimizer  # it raises ConfigError itself

    model_config(config)  # preset, pooling, Matryoshka dims within the width
    runtime_config(config)  # dtypes
    init_choice(config.model)  # model.init and model.init_checkpoint agree
    check_optimizer(config.optimizer, config.train.num_steps)  # optimizer and decay names
    t = config.train
    if t.grad_cache_chunk_size and t.grad_accumulation_steps > 1:
        raise ConfigError("train.grad_cache_chunk_size and train.grad_accumulation_steps > 1 are "
                          "alternatives; set one of them.")
    for field in ("grad_cache_chunk_size", "grad_accumulation_steps"):
        value = t[field]
        if value and t.batch_size % value:
            raise ConfigError(f"train.batch_size={t.batch_size} is not a multiple of "
                              f"train.{field}={value}.")
    if len(config.mesh.axes) != len(config.mesh.shape):
        raise ConfigError(f"mesh.axes={tuple(config.mesh.axes)} and mesh.shape="
                          f"{tuple(config.mesh.shape)} differ in length.")
    for field in ("every_steps", "keep"):
        if config.checkpoint[field] < 1:
            raise ConfigError(f"checkpoint.{field}={config.checkpoint[field]} must be >= 1.")
    if config.eval.every_steps < 0 or config.eval.max_queries < 1 or config.eval.batch_size < 1:
        raise ConfigError("eval.every_steps must be >= 0, eval.max_queries and eval.batch_size >= 1.")
    if config.train.num_steps < 1:
        raise ConfigError(f"train.num_steps={config.train.num_steps} must be >= 1.")
    if not config.loss.temperature > 0:
        raise ConfigError(f"loss.temperature={config.loss.temperature} must be > 0.")
    if config.loss.teacher_dim < 0:
        raise ConfigError(f"loss.teacher_dim={config.loss.teacher_dim} must be >= 0.")
    if t.log_every_steps < 1:
        raise ConfigError(f"train.log_every_steps={t.log_every_steps} must be >= 1.")
    if config.quant.scheme != "none" and config.quant.scheme not in SCHEMES:
        raise ConfigError(f"quant.scheme={config.quant.scheme!r} is not 'none' or one of "
                          f"{', '.join(SCHEMES)}.")
    if config.data.mixture:  # its names are checked once the corpus's datasets are known
        try:
            parse_mixture(config.data.mixture)
        except ValueError as e:
            raise ConfigError(str(e)) from e
    if "ul2" in config:  # an adaptation config (configs/ul2_adapt.py)
        from embeddinggemma.data.ul2 import validate_ul2_config

        try:
            validate_ul2_config(config.ul2)
        except ValueError as e:
            raise ConfigError(str(e)) from e


def write_config(config: ml_collections.ConfigDict, workdir: str | Path) -> Path:
    """Writes the resolved config as `config.json` in the run's directory.

    Raises:
      NotOurDirectoryError, before writing anything, when `workdir` is a file or a non-empty
      directory without a config.json: it is not a run directory, so it is left as it is.
    """
    workdir = check_target(workdir, CONFIG_FILE, "a run directory (checkpoints, metrics, export)")
    return atomic_write(workdir / CONFIG_FILE, config.to_json_best_effort(indent=2) + "\n")


def read_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """The resolved config a run wrote into `workdir` (its config.json).

    Raises:
      FileNotFoundError or ValueError naming the file when it is missing or not a JSON object.
    """
    path = Path(workdir).expanduser() / CONFIG_FILE
    config = read_json(path, "Run config")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(config).__name__}.")
    return ml_collections.ConfigDict(config)
