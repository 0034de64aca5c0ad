"""The shared schema of a training config: the sections every stage has, their defaults and
meaning, and the registry of stages, each of which owns its own sections and checks.

    stage        which training stage the config is for: a key of STAGE_CONFIGS ("embedding",
                 the train command's default; "denoising", the UL2 adaptation)
    seed, model, optimizer, train, quant, mesh, data, eval, checkpoint   shared (below)
    loss         the embedding stage's (training/embedding_config.py)
    ul2          the denoising stage's (training/denoising_config.py, data/ul2_config.py)

Experiment files under `configs/` start from `base_config(stage)` or `sized_config(size, stage)`
and override fields. The returned ConfigDict is locked, so a misspelt field, in a config file or
on the command line (`--config.optimizer.learning_rate=3e-4`), is an error naming the field.
This module and the stages' config modules import no data pipeline, checkpoint library or corpus
builder: validating a config is cheap.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from types import ModuleType

import ml_collections

from embeddinggemma.atomic import atomic_write, check_target
from embeddinggemma.data.config import data_config, parse_mixture
from embeddinggemma.errors import ConfigError
from embeddinggemma.files import read_json
from embeddinggemma.model.config import EmbedderConfig, RuntimeConfig, get_preset
from embeddinggemma.paths import as_path
from embeddinggemma.quantization import SCHEMES

CONFIG_FILE = "config.json"  # the resolved config in a run directory; it marks the directory as a run's

# config.stage -> the module that owns that stage's config: `SECTIONS` (section name -> its defaults),
# `size(config, size)` (its part of a model size), `validate(config)` (raises ConfigError naming the
# field) and `STAGE` ("module:Class", the training/stage.Stage that runs it, imported on use).
# A new stage is one such module and one entry here.
STAGE_CONFIGS = {
    "embedding": "embeddinggemma.training.embedding_config",
    "denoising": "embeddinggemma.training.denoising_config",
}


def stage_config_module(stage: str) -> ModuleType:
    """The module that owns `stage`'s config (see STAGE_CONFIGS).

    Raises:
      ConfigError naming `stage` when it is not a known stage.
    """
    if stage not in STAGE_CONFIGS:
        raise ConfigError(f"stage={stage!r}; choose one of {', '.join(STAGE_CONFIGS)}.")
    return importlib.import_module(STAGE_CONFIGS[stage])


def make_stage(config: ml_collections.ConfigDict):
    """The training/stage.Stage that runs `config` (its `stage` field), built from it."""
    module, _, name = stage_config_module(config.stage).STAGE.partition(":")
    return getattr(importlib.import_module(module), name)(config)


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


def base_config(stage: str = "embedding") -> ml_collections.ConfigDict:
    """The shared sections and `stage`'s own, with their defaults, locked against new keys."""
    c = ml_collections.ConfigDict()
    c.stage = stage
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.preset = "tiny"            # a key of embeddinggemma.model.config.PRESETS
    c.model.dtype = "float32"          # computation: float32 or bfloat16
    c.model.param_dtype = "float32"    # master parameters (float32 with bfloat16 compute is usual)
    c.model.pooling = "mean"           # mean, first, last, attention
    c.model.remat = "matmuls"          # what the backward pass recomputes: none, matmuls or full
    # Attention implementation (model/config.py ATTENTION): "auto" follows the platform of the
    # mesh's devices (splash on TPU, cuDNN on a GPU in bfloat16, einsum on CPU); or force
    # "einsum", "splash" or "cudnn".
    c.model.attention = "auto"
    # Where the encoder starts (training/initialisation.py): "random", "embedder" (an Orbax or
    # sentence-transformers embedding checkpoint), "decoder" (a Gemma 3 decoder: GGUF, Hugging Face
    # directory or a decoder checkpoint, used bidirectionally, projection head fresh),
    # "encoder_decoder" (the encoder of a UL2 adaptation: `python -m embeddinggemma adapt`'s run
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

    for name, section in stage_config_module(stage).SECTIONS.items():
        c[name] = section()
    c.lock()
    return c


# Sizes shared by both stages. The paper gives no batch sizes, lengths or meshes: these are
# choices (documented in configs/), the tiny ones small enough for a 2-core CPU.
SIZES = {
    "tiny": dict(preset="tiny", max_query_length=32, max_document_length=64, mesh_shape=(-1, 1, 1)),
    "300m": dict(preset="embeddinggemma_300m", max_query_length=256, max_document_length=512,
                 mesh_shape=(-1, 16, 1)),
}


def sized_config(size: str, stage: str = "embedding") -> ml_collections.ConfigDict:
    """`base_config(stage)` set up for a model size: "tiny" (CPU) or "300m" (a TPU pod slice)."""
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {sorted(SIZES)}.")
    s = SIZES[size]
    c = base_config(stage)
    c.model.preset = s["preset"]
    c.train.max_query_length = s["max_query_length"]
    c.train.max_document_length = s["max_document_length"]
    c.mesh.shape = s["mesh_shape"]
    if size == "tiny":
        # Built by the first run when missing (scripts/build_corpus.py's defaults).
        c.data.corpus = "~/.cache/embeddinggemma/corpus-v3"
    if size == "300m":
        c.model.dtype = "bfloat16"  # float32 master parameters, bfloat16 compute
        c.model.remat = "full"
    stage_config_module(stage).size(c, size)
    return c


def preset_config(config: ml_collections.ConfigDict, **fields) -> EmbedderConfig:
    """The architecture of `model.preset` with `model.pooling`, cut to `model.keep_layers`, and
    `fields` (e.g. the embedding stage's Matryoshka dims) overridden.

    Raises:
      ConfigError naming the field when the preset, the pooling or a dimension is invalid.
    """
    m = config.model
    try:
        preset = get_preset(m.preset, pooling=m.pooling, **fields)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if not m.keep_layers:
        return preset
    try:
        return dataclasses.replace(preset, transformer=preset.transformer.first_layers(m.keep_layers))
    except ValueError as e:
        raise ConfigError(f"model.{e} (model.preset={m.preset!r})") from e


def runtime_config(config: ml_collections.ConfigDict) -> RuntimeConfig:
    """How the model runs: `model.dtype`, `model.param_dtype`, `model.remat` and `model.attention`."""
    m = config.model
    try:
        return RuntimeConfig(dtype=m.dtype, param_dtype=m.param_dtype, remat=m.remat, attention=m.attention)
    except ValueError as e:
        raise ConfigError(f"model.{e}") from e


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks values that the schema's types cannot, the shared sections here and the stage's own
    in its config module; raises ConfigError naming the field."""
    from embeddinggemma.training.optimizer import check_optimizer  # it raises ConfigError itself

    stage = stage_config_module(config.stage)
    runtime_config(config)  # dtypes
    check_optimizer(config.optimizer, config.train.num_steps)  # optimizer and decay names
    t = config.train
    if t.grad_cache_chunk_size and t.grad_accumulation_steps > 1:
        raise ConfigError("train.grad_cache_chunk_size and train.grad_accumulation_steps > 1 are "
                          "alternatives; set one of them.")
    if t.batch_size < 1:
        raise ConfigError(f"train.batch_size={t.batch_size} must be >= 1.")
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
    stage.validate(config)


# The fields a resumed run may change (README, Training): its length, how often it logs, saves
# and evaluates, and the mesh (a checkpoint is restored onto any mesh). A new train.num_steps also
# stretches or shortens the learning-rate decay from the resumed step on. Any other change would
# mix two runs in one directory, so a resume under it is refused.
SAFE_ON_RESUME = ("train.num_steps", "train.log_every_steps", "checkpoint.every_steps", "checkpoint.keep",
                  "checkpoint.async_save", "checkpoint.export_params", "eval.every_steps", "eval.batch_size",
                  "mesh.shape")


def _flat(tree: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resume_config(config: ml_collections.ConfigDict, workdir: str | Path) -> None:
    """Checks that resuming the run in `workdir` under `config` changes only SAFE_ON_RESUME fields.

    Raises:
      ConfigError naming every other field that differs from the run's config.json.
    """
    stored = _flat(read_json(as_path(workdir) / CONFIG_FILE, "Run config"))
    given = _flat(json.loads(config.to_json_best_effort()))  # through JSON: tuples compare as lists
    if "stage" not in stored:
        # Written before configs named their stage: an adaptation had a `ul2` section (and a `loss`
        # section it never read), an embedding run none.
        stored["stage"] = "denoising" if any(f.startswith("ul2.") for f in stored) else "embedding"
        if stored["stage"] == "denoising":
            stored = {f: v for f, v in stored.items() if not f.startswith("loss.")}

    def shown(values: dict, field: str) -> str:
        return repr(values[field]) if field in values else "absent"

    changed = [f"{f} ({shown(stored, f)} there, {shown(given, f)} here)"
               for f in sorted(stored.keys() | given.keys())
               if f not in SAFE_ON_RESUME and (f not in stored or f not in given or stored[f] != given[f])]
    if changed:
        raise ConfigError(f"{workdir} holds a run of another config, so it cannot be resumed with this one: "
                          f"{'; '.join(changed)}. Only {', '.join(SAFE_ON_RESUME)} may change on resume; "
                          "run with the run's config or choose another --workdir.")


def write_config(config: ml_collections.ConfigDict, workdir: str | Path) -> Path:
    """Writes the resolved config as `config.json` in the run's directory.

    Raises:
      NotOurDirectoryError, before writing anything, when `workdir` is a file or a non-empty
      directory without a config.json: it is not a run directory, so it is left as it is.
    """
    workdir = check_run_directory(workdir)
    return atomic_write(workdir / CONFIG_FILE, config.to_json_best_effort(indent=2) + "\n")


def check_run_directory(workdir: str | Path) -> Path:
    """`workdir` as a Path if it is absent, empty or a run directory (see `write_config`)."""
    return check_target(workdir, CONFIG_FILE, "a run directory (checkpoints, metrics, export)")


def read_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """The resolved config a run wrote into `workdir` (its config.json).

    Raises:
      FileNotFoundError or ValueError naming the file when it is missing or not a JSON object.
    """
    path = as_path(workdir).expanduser() / CONFIG_FILE
    config = read_json(path, "Run config")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(config).__name__}.")
    return ml_collections.ConfigDict(config)
