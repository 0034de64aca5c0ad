"""Import and export of a sentence-transformers model directory (the released checkpoint's layout).

Expected modules, in order: Transformer (Gemma 3, `model.safetensors` + `config.json`), Pooling,
one or more bias-free identity-activation Dense layers, Normalize.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from embeddinggemma.checkpoint.hf_gemma3 import transformer_from_hf, transformer_to_hf
from embeddinggemma.model.config import EmbedderConfig, TransformerConfig

_POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "first",
    "pooling_mode_lasttoken": "last",
}
_IDENTITY = "torch.nn.modules.linear.Identity"


class SafetensorsReader(Mapping[str, np.ndarray]):
    """A lazy name -> numpy array mapping over one safetensors file."""

    def __init__(self, path: Path):
        self.path = path
        self._file = safe_open(str(path), framework="numpy")
        self._names = list(self._file.keys())

    def __getitem__(self, name: str) -> np.ndarray:
        return self._file.get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def is_sentence_transformers_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / "modules.json").is_file() or (path / "model.safetensors").is_file()


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    return path


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


def load_sentence_transformers(model_dir: str | Path, **config_overrides: Any
                               ) -> tuple[EmbedderConfig, dict]:
    """Reads a sentence-transformers directory into (config, numpy parameter tree).

    `config_overrides` change architecture fields such as `pooling` (dtypes are run-time
    settings: `RuntimeConfig`).
    """
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
    transformer = TransformerConfig.from_hf_config(_encoder_hf_config(transformer_dir / "config.json"))
    pooling = _pooling_mode(model_dir / modules[1]["path"])
    dense = [_dense_weight(model_dir / m["path"]) for m in modules[2:-1]]

    weights = SafetensorsReader(_require(transformer_dir / "model.safetensors"))
    params: dict = {"transformer": transformer_from_hf(weights, transformer,
                                                       source=str(weights.path))}
    width = transformer.embed_dim
    for i, w in enumerate(dense):
        if w.shape[0] != width:
            raise ValueError(f"{model_dir / modules[2 + i]['path']}: Dense input width {w.shape[0]} "
                             f"does not match the previous width {width}.")
        params[f"projection_{i}"] = w
        width = w.shape[1]
    dims = tuple(w.shape[1] for w in dense)
    matryoshka = tuple(d for d in (768, 512, 256, 128) if d <= width) or (width,)
    config = EmbedderConfig(transformer=transformer, projection_dims=dims, pooling=pooling,
                            matryoshka_dims=matryoshka)
    return config.replace(**config_overrides), params


def export_sentence_transformers(directory: str | Path, config: EmbedderConfig, params: Mapping,
                                 tokenizer_model: str | Path, prompts: Mapping[str, str]) -> Path:
    """Writes a sentence-transformers directory (float32 safetensors) that
    `SentenceTransformer(directory)` and `load_sentence_transformers` both read.

    Refuses to overwrite a non-empty directory.
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"Refusing to overwrite the non-empty directory {directory}.")
    directory.mkdir(parents=True, exist_ok=True)
    as_f32 = lambda w: np.ascontiguousarray(np.asarray(w, dtype=np.float32))  # noqa: E731
    t = config.transformer
    weights = {k: as_f32(v) for k, v in transformer_to_hf(params["transformer"], t).items()}
    save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})
    _write_json(directory / "config.json", config.to_hf_config())
    _write_json(directory / "sentence_bert_config.json",
                {"max_seq_length": t.max_length, "do_lower_case": False})
    modes = {mode: key for key, mode in _POOLING_MODES.items()}
    if config.pooling not in modes:
        raise ValueError(f"pooling={config.pooling!r} has no sentence-transformers equivalent.")
    pooling = {key: False for key in _POOLING_MODES}
    pooling.update({"word_embedding_dimension": t.embed_dim, modes[config.pooling]: True,
                    "include_prompt": True})
    _write_json(directory / "1_Pooling" / "config.json", pooling)

    modules = [("Transformer", ""), ("Pooling", "1_Pooling")]
    width = t.embed_dim
    for i, out_dim in enumerate(config.projection_dims):
        name = f"{i + 2}_Dense"
        _write_json(directory / name / "config.json", {
            "in_features": width, "out_features": out_dim, "bias": False,
            "activation_function": _IDENTITY})
        save_file({"linear.weight": as_f32(np.asarray(params[f"projection_{i}"]).T)},
                  str(directory / name / "model.safetensors"))
        modules.append(("Dense", name))
        width = out_dim
    modules.append(("Normalize", f"{len(modules)}_Normalize"))
    _write_json(directory / "modules.json", [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (kind, path) in enumerate(modules)])
    _write_json(directory / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer", "prompts": dict(prompts),
        "default_prompt_name": None, "similarity_fn_name": "cosine"})

    shutil.copyfile(tokenizer_model, directory / "tokenizer.model")
    _write_json(directory / "tokenizer_config.json", {
        "tokenizer_class": "GemmaTokenizer", "add_bos_token": True, "add_eos_token": True,
        "padding_side": "right", "model_max_length": t.max_length,
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"})
    return directory


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")
