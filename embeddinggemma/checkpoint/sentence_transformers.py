"""Import and export of a sentence-transformers model directory (the released checkpoint's layout).

Expected modules, in order: Transformer (Gemma 3, `model.safetensors` + `config.json`), Pooling,
one or more bias-free identity-activation Dense layers, Normalize. An export of ours adds
`embeddinggemma_export.json` with what the layout cannot state (the Matryoshka dims), and its
`config_sentence_transformers.json` holds all its prompts, so it loads back exactly. Its tokenizer
is `tokenizer.json` built from the SentencePiece model (checkpoint/hf_tokenizer.py), so that
transformers tokenises any vocabulary, the tiny models' included, as this codebase does; a README.md
model card states the Matryoshka dims and prompts.
"""

from __future__ import annotations

import contextlib
import json
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from embeddinggemma.atomic import atomic_directory, refuse_replacing
from embeddinggemma.checkpoint.hf_config import embedder_to_hf_config, transformer_from_hf_config
from embeddinggemma.checkpoint.hf_gemma3 import (
    check_hf_tensors,
    transformer_leaf_from_hf,
    transformer_paths,
    transformer_to_hf,
)
from embeddinggemma.checkpoint.hf_tokenizer import checked_tokenizer, write_tokenizer_files
from embeddinggemma.errors import InputError
from embeddinggemma.files import read_json, require_file
from embeddinggemma.model.config import EmbedderConfig
from embeddinggemma.paths import as_path
from embeddinggemma.prompts import DEFAULT_PROMPTS, load_prompts

_POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "first",
    "pooling_mode_lasttoken": "last",
}
_IDENTITY = "torch.nn.modules.linear.Identity"
# What the layout cannot say (the Matryoshka dims); also the export's marker (see atomic.py).
EXPORT_METADATA_FILE = "embeddinggemma_export.json"
EXPORT_FORMAT_VERSION = 1
PAPER_MATRYOSHKA_DIMS = (768, 512, 256, 128)
WHAT = "a sentence-transformers export"


class SafetensorsReader(Mapping[str, np.ndarray]):
    """A lazy name -> numpy array mapping over one safetensors file.

    Raises:
      InputError naming the file when it is truncated or not a safetensors file (on opening, or on
      reading a tensor).
    """

    def __init__(self, path: Path):
        self.path = path
        with self._named_errors():
            self._file = safe_open(str(path), framework="numpy")
            self._names = list(self._file.keys())

    def __getitem__(self, name: str) -> np.ndarray:
        with self._named_errors():
            return self._file.get_tensor(name)

    @contextlib.contextmanager
    def _named_errors(self) -> Iterator[None]:
        try:
            yield
        except SafetensorError as e:  # its message names neither the file nor the tensor
            raise InputError(f"{self.path}: not a readable safetensors file, truncated or damaged "
                             f"({e}).") from None

    def shape(self, name: str) -> list[int]:
        """A tensor's shape, read from the header only."""
        return self._file.get_slice(name).get_shape()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def is_sentence_transformers_dir(path: str | Path) -> bool:
    return (as_path(path) / "modules.json").is_file()


def is_hugging_face_dir(path: str | Path) -> bool:
    """A plain Hugging Face model directory (weights and config.json, no sentence-transformers
    modules), such as a Gemma 3 decoder."""
    path = as_path(path)
    weights = (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()
    return weights and (path / "config.json").is_file() and not is_sentence_transformers_dir(path)


def written_by_us(path: str | Path) -> bool:
    """Whether this codebase exported the directory (it then states what the layout cannot)."""
    return (as_path(path) / EXPORT_METADATA_FILE).is_file()


def _read_json(path: Path) -> Any:
    return read_json(path, "Checkpoint file")


def _require(path: Path) -> Path:
    return require_file(path, "Checkpoint file")


def _encoder_hf_config(path: Path) -> dict[str, Any]:
    """The Gemma 3 config.json of an embedder's encoder, which must say it is bidirectional."""
    hf = _read_json(path)
    if hf.get("use_bidirectional_attention") is not True:
        raise ValueError(f"{path}: use_bidirectional_attention is "
                         f"{hf.get('use_bidirectional_attention')!r}, not true; an embedding model's "
                         "encoder is bidirectional, and sentence-transformers would run this one causally.")
    return hf


def _pooling_mode(path: Path) -> str:
    cfg = _read_json(path / "config.json")
    modes = [mode for key, mode in _POOLING_MODES.items() if cfg.get(key)]
    others = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v and k not in _POOLING_MODES]
    if len(modes) != 1 or others:
        raise ValueError(f"{path / 'config.json'}: exactly one of {sorted(_POOLING_MODES)} must be set"
                         f" (found {modes + others}).")
    if not cfg.get("include_prompt", True):
        raise ValueError(f"{path / 'config.json'}: include_prompt=false is not supported; "
                         "this model pools over the prompt tokens too.")
    return modes[0]


def _dense_weight(path: Path) -> np.ndarray:
    """A Dense module's weight as [in, out]."""
    cfg = _read_json(path / "config.json")
    if cfg.get("bias", False) or cfg.get("activation_function", _IDENTITY) != _IDENTITY:
        raise ValueError(f"{path / 'config.json'}: only bias-free Dense layers with an identity "
                         f"activation are supported (bias={cfg.get('bias')}, "
                         f"activation_function={cfg.get('activation_function')}).")
    tensors = SafetensorsReader(_require(path / "model.safetensors"))
    if set(tensors) != {"linear.weight"}:
        raise ValueError(f"{path / 'model.safetensors'}: expected exactly the tensor linear.weight, "
                         f"found {sorted(tensors)}.")
    weight = tensors["linear.weight"]
    want = (cfg["out_features"], cfg["in_features"])
    if weight.shape != want:
        raise ValueError(f"{path / 'model.safetensors'}: linear.weight has shape {list(weight.shape)}, "
                         f"expected {list(want)} from config.json.")
    return weight.T


class SentenceTransformersReader:
    """A sentence-transformers directory opened for reading one parameter at a time.

    Opening parses and checks every file (modules, configs, tensor names and shapes) without
    reading the transformer's weights; `read(path)` then reads one parameter of our tree.
    """

    def __init__(self, model_dir: str | Path, **config_overrides: Any):
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"Checkpoint directory not found: {model_dir}")
        modules = _read_json(model_dir / "modules.json")
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or kinds[-1] != "Normalize" or \
                any(k != "Dense" for k in kinds[2:-1]):
            raise ValueError(f"{model_dir / 'modules.json'}: expected Transformer, Pooling, Dense..., "
                             f"Normalize; found {kinds}.")
        transformer_dir = model_dir / modules[0]["path"]
        transformer = transformer_from_hf_config(_encoder_hf_config(transformer_dir / "config.json"))
        pooling = _pooling_mode(model_dir / modules[1]["path"])
        self.dense = [_dense_weight(model_dir / m["path"]) for m in modules[2:-1]]
        self.weights = SafetensorsReader(_require(transformer_dir / "model.safetensors"))
        check_hf_tensors(self.weights, transformer, source=str(self.weights.path))
        width = transformer.embed_dim
        for i, w in enumerate(self.dense):
            if w.shape[0] != width:
                raise ValueError(f"{model_dir / modules[2 + i]['path']}: Dense input width {w.shape[0]} "
                                 f"does not match the previous width {width}.")
            width = w.shape[1]
        dims = tuple(w.shape[1] for w in self.dense)
        config = EmbedderConfig(transformer=transformer, projection_dims=dims, pooling=pooling,
                                matryoshka_dims=_matryoshka_dims(model_dir, width))
        self.config = config.replace(**config_overrides)
        # What the parameters are read from (their content hash identifies the model).
        self.files = [self.weights.path] + [model_dir / m["path"] / "model.safetensors"
                                            for m in modules[2:-1]]

    def paths(self) -> list[tuple[str, ...]]:
        """Every parameter's path in our tree, e.g. ("transformer", "layers", "attn", "query")."""
        return ([("transformer",) + p for p in transformer_paths(self.config.transformer)]
                + [(f"projection_{i}",) for i in range(len(self.dense))])

    def read(self, path: tuple[str, ...]) -> np.ndarray:
        """One parameter (a path of `paths()`) in our layout."""
        if path[0] == "transformer":
            return transformer_leaf_from_hf(self.weights, self.config.transformer, path[1:])
        return self.dense[int(path[0].removeprefix("projection_"))]


def load_sentence_transformers(model_dir: str | Path, **config_overrides: Any
                               ) -> tuple[EmbedderConfig, dict]:
    """Reads a sentence-transformers directory into (config, numpy parameter tree).

    `config_overrides` change architecture fields such as `pooling` (dtypes are run-time
    settings: `RuntimeConfig`).
    """
    reader = SentenceTransformersReader(model_dir, **config_overrides)
    params: dict = {}
    for path in reader.paths():
        tree = params
        for key in path[:-1]:
            tree = tree.setdefault(key, {})
        tree[path[-1]] = reader.read(path)
    return reader.config, params


def sentence_transformers_config(model_dir: str | Path) -> EmbedderConfig:
    """The architecture of a sentence-transformers directory, its files checked, no weights read."""
    return SentenceTransformersReader(model_dir).config


def _matryoshka_dims(model_dir: Path, width: int) -> tuple[int, ...]:
    """The dims our export states; for a directory we did not write (the release), the paper's
    dims within the output width."""
    if not written_by_us(model_dir):
        return tuple(d for d in PAPER_MATRYOSHKA_DIMS if d <= width) or (width,)
    path = model_dir / EXPORT_METADATA_FILE
    metadata = _read_json(path)
    if not isinstance(metadata, dict) or metadata.get("format_version") != EXPORT_FORMAT_VERSION:
        raise ValueError(f"{path}: expected an object with format_version {EXPORT_FORMAT_VERSION}.")
    dims = metadata.get("matryoshka_dims")
    if not isinstance(dims, list) or not dims or not all(type(d) is int and 1 <= d <= width for d in dims):
        raise ValueError(f"{path}: matryoshka_dims {dims!r} is not a list of widths in 1..{width}.")
    return tuple(dims)


def load_prompts_of(model_dir: str | Path) -> dict[str, str]:
    """The prompts of a sentence-transformers directory: exactly those our export wrote; for a
    directory we did not write (the release), the default prompts extended by its own."""
    return load_prompts(model_dir, defaults={} if written_by_us(model_dir) else DEFAULT_PROMPTS)


def export_sentence_transformers(directory: str | Path, config: EmbedderConfig, params: Mapping,
                                 tokenizer_model: str | Path, prompts: Mapping[str, str],
                                 overwrite: bool = False) -> Path:
    """Writes a sentence-transformers directory (float32 safetensors) that
    `SentenceTransformer(directory)` and `load_sentence_transformers` both read, atomically.

    Everything is checked before anything is written. `directory` must be absent, empty, or (with
    `overwrite=True`) an export of ours, which is replaced; anything else is refused untouched.
    """
    directory = Path(directory).expanduser()
    if not overwrite:
        refuse_replacing(directory, EXPORT_METADATA_FILE, WHAT)
    tokenizer_model = require_file(tokenizer_model, "Tokenizer model")
    modes = {mode: key for key, mode in _POOLING_MODES.items()}
    if config.pooling not in modes:
        raise ValueError(f"pooling={config.pooling!r} has no sentence-transformers equivalent "
                         f"(one of {sorted(modes)}); nothing was written.")
    t = config.transformer
    as_f32 = lambda w: np.ascontiguousarray(np.asarray(w, dtype=np.float32))  # noqa: E731
    weights = {k: as_f32(v) for k, v in transformer_to_hf(params["transformer"], t).items()}
    dense = _dense_weights(config, params)
    hf_tokenizer = checked_tokenizer(tokenizer_model)
    with atomic_directory(directory, EXPORT_METADATA_FILE, WHAT) as partial:
        save_file(weights, str(partial / "model.safetensors"), metadata={"format": "pt"})
        _write_json(partial / "config.json", embedder_to_hf_config(config))
        _write_json(partial / "sentence_bert_config.json",
                    {"max_seq_length": t.max_length, "do_lower_case": False})
        pooling = {key: False for key in _POOLING_MODES}
        pooling.update({"word_embedding_dimension": t.embed_dim, modes[config.pooling]: True,
                        "include_prompt": True})
        _write_json(partial / "1_Pooling" / "config.json", pooling)

        modules = [("Transformer", ""), ("Pooling", "1_Pooling")]
        for i, weight in enumerate(dense):
            name = f"{i + 2}_Dense"
            _write_json(partial / name / "config.json", {
                "in_features": weight.shape[1], "out_features": weight.shape[0], "bias": False,
                "activation_function": _IDENTITY})
            save_file({"linear.weight": as_f32(weight)}, str(partial / name / "model.safetensors"))
            modules.append(("Dense", name))
        modules.append(("Normalize", f"{len(modules)}_Normalize"))
        _write_json(partial / "modules.json", [
            {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
            for i, (kind, path) in enumerate(modules)])
        _write_json(partial / "config_sentence_transformers.json", {
            "model_type": "SentenceTransformer", "prompts": dict(prompts),
            "default_prompt_name": None, "similarity_fn_name": "cosine",
            "matryoshka_dims": list(config.matryoshka_dims)})

        write_tokenizer_files(partial, hf_tokenizer, tokenizer_model, t.max_length)
        (partial / "README.md").write_text(_model_card(config, prompts))
        _write_json(partial / EXPORT_METADATA_FILE, {
            "format_version": EXPORT_FORMAT_VERSION, "matryoshka_dims": list(config.matryoshka_dims)})
    return directory


MODEL_CARD = Path(__file__).with_name("templates") / "model_card.md"  # string.Template placeholders


def _model_card(config: EmbedderConfig, prompts: Mapping[str, str]) -> str:
    """README.md: what the directory holds, its Matryoshka dims and prompts, and how to load it
    (templates/model_card.md filled in)."""
    return string.Template(MODEL_CARD.read_text(encoding="utf-8")).substitute(
        num_layers=config.transformer.num_layers, embed_dim=config.transformer.embed_dim,
        pooling=config.pooling,
        widths=" -> ".join(str(d) for d in (config.transformer.embed_dim, *config.projection_dims)),
        dims=", ".join(str(d) for d in config.matryoshka_dims), smallest_dim=config.matryoshka_dims[-1],
        prompt_rows="\n".join(f"| `{name}` | `{prompt!r}` |" for name, prompt in sorted(prompts.items())))


def _dense_weights(config: EmbedderConfig, params: Mapping) -> list[np.ndarray]:
    """The projection stack as Dense `linear.weight`s, [out, in] each, checked against `config`."""
    dense, width = [], config.transformer.embed_dim
    for i, out_dim in enumerate(config.projection_dims):
        if f"projection_{i}" not in params:
            raise ValueError(f"params has no projection_{i}, which projection_dims "
                             f"{config.projection_dims} needs; nothing was written.")
        weight = np.asarray(params[f"projection_{i}"])
        if weight.shape != (width, out_dim):
            raise ValueError(f"params['projection_{i}'] has shape {list(weight.shape)}, expected "
                             f"{[width, out_dim]}; nothing was written.")
        dense.append(weight.T)
        width = out_dim
    return dense


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")
