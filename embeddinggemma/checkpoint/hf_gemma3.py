"""Name and layout mapping between Hugging Face Gemma 3 tensors and this codebase's parameter tree.

Hugging Face stores each linear layer as [out, in] per layer; this codebase stores [in, out] with the
head axes split out and the layers stacked on a leading axis (the blocks are scanned). Which of our
axes are "in" comes from the parameters' logical axes (`model.layout`); only the names are listed here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np

from embeddinggemma.model.config import TransformerConfig
from embeddinggemma.model.layers import VOCAB
from embeddinggemma.model.layout import ParamLayout, transformer_layout

Array = np.ndarray

# (Hugging Face name under `layers.{i}.`, path under transformer/layers)
_LAYER_TENSORS: list[tuple[str, tuple[str, ...]]] = [
    ("input_layernorm.weight", ("pre_attn_norm", "scale")),
    ("post_attention_layernorm.weight", ("post_attn_norm", "scale")),
    ("pre_feedforward_layernorm.weight", ("pre_ffw_norm", "scale")),
    ("post_feedforward_layernorm.weight", ("post_ffw_norm", "scale")),
    ("self_attn.q_norm.weight", ("attn", "query_norm", "scale")),
    ("self_attn.k_norm.weight", ("attn", "key_norm", "scale")),
    ("self_attn.q_proj.weight", ("attn", "query")),
    ("self_attn.k_proj.weight", ("attn", "key")),
    ("self_attn.v_proj.weight", ("attn", "value")),
    ("self_attn.o_proj.weight", ("attn", "out")),
    ("mlp.gate_proj.weight", ("mlp", "gate")),
    ("mlp.up_proj.weight", ("mlp", "up")),
    ("mlp.down_proj.weight", ("mlp", "down")),
]
_GLOBAL_TENSORS = [
    ("embed_tokens.weight", ("embedding",)),
    ("norm.weight", ("final_norm", "scale")),
]


def _is_linear(layout: ParamLayout) -> bool:
    """Hugging Face stores linear layers as [out, in]; vectors and the [V, D] table as we do."""
    return not layout.is_vector and VOCAB not in layout.axes


def _to_ours(layout: ParamLayout, w: Array) -> Array:
    """A Hugging Face tensor -> one layer's slice in our layout ([in..., out...])."""
    return w.T.reshape(layout.shape) if _is_linear(layout) else w


def _to_hf(layout: ParamLayout, w: Array) -> Array:
    """One layer's slice in our layout -> the Hugging Face tensor ([out, in], head axes merged)."""
    if not _is_linear(layout):
        return w
    inputs = math.prod(layout.shape[i] for i in layout.contraction_axes)
    return w.reshape(inputs, -1).T


def _hf_shape(layout: ParamLayout) -> tuple[int, ...]:
    return _to_hf(layout, np.empty(layout.shape, dtype=np.uint8)).shape


def _layer_layouts(config: TransformerConfig) -> dict[tuple[str, ...], ParamLayout]:
    """Our path -> the layout of one layer's slice, for every tensor that has a Hugging Face name."""
    layout = transformer_layout(config)
    out = {path: _get(layout, path) for _, path in _GLOBAL_TENSORS}
    out.update({path: _get(layout, ("layers",) + path).per_layer() for _, path in _LAYER_TENSORS})
    return out


def expected_shapes(config: TransformerConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Shapes of the transformer parameters in this codebase's layout (per layer, unstacked)."""
    return {path: layout.shape for path, layout in _layer_layouts(config).items()}


def _entries(config: TransformerConfig) -> Iterator[tuple[str, tuple[str, ...], int | None]]:
    """(hf name, our path, layer index or None) for every tensor of the model."""
    for hf, path in _GLOBAL_TENSORS:
        yield hf, path, None
    for i in range(config.num_layers):
        for hf, path in _LAYER_TENSORS:
            yield f"layers.{i}.{hf}", path, i

def _shape_of(tensors: Mapping[str, Array], name: str) -> tuple[int, ...]:
    """A tensor's shape, without reading it when the mapping can say (SafetensorsReader.shape)."""
    shape = getattr(tensors, "shape", None)
    return tuple(shape(name)) if callable(shape) else tuple(np.shape(tensors[name]))


def check_hf_tensors(tensors: Mapping[str, Array], config: TransformerConfig, prefix: str = "",
                     source: str = "checkpoint") -> None:
    """Checks the names and shapes of Hugging Face Gemma 3 tensors against `config`, reading no data
    where the mapping can give shapes alone.

    Raises:
      ValueError naming every missing, unexpected and mis-shaped tensor.
    """
    names = {n[len(prefix):]: n for n in tensors if n.startswith(prefix)}
    layouts = _layer_layouts(config)
    problems, expected_names = [], set()
    for hf, path, _ in _entries(config):
        expected_names.add(hf)
        if hf not in names:
            problems.append(f"missing tensor {prefix}{hf}")
            continue
        shape, want = _shape_of(tensors, names[hf]), _hf_shape(layouts[path])
        if shape != want:
            problems.append(f"tensor {prefix}{hf} has shape {list(shape)}, expected {list(want)}")
    problems += [f"unexpected tensor {names[n]}" for n in sorted(set(names) - expected_names)]
    problems += [f"unexpected tensor {n}" for n in sorted(set(tensors) - set(names.values()))]
    if problems:
        raise ValueError(f"{source} does not match the model config:\n  " + "\n  ".join(problems))


def transformer_paths(config: TransformerConfig) -> list[tuple[str, ...]]:
    """The paths (under `transformer`) of every parameter, scanned layers' stacked ones included."""
    return [path for _, path in _GLOBAL_TENSORS] + [("layers",) + path for _, path in _LAYER_TENSORS]


def transformer_leaf_from_hf(tensors: Mapping[str, Array], config: TransformerConfig,
                             path: tuple[str, ...], prefix: str = "") -> Array:
    """One parameter of the `transformer` tree (a path of `transformer_paths`), read from the
    Hugging Face tensors that make it: one tensor, or one per layer, stacked. Check the tensors
    with `check_hf_tensors` first."""
    layouts = _layer_layouts(config)
    if path[0] != "layers":
        hf = dict((ours, name) for name, ours in _GLOBAL_TENSORS)[path]
        return _to_ours(layouts[path], np.asarray(tensors[prefix + hf]))
    hf = dict((ours, name) for name, ours in _LAYER_TENSORS)[path[1:]]
    return np.stack([_to_ours(layouts[path[1:]], np.asarray(tensors[f"{prefix}layers.{i}.{hf}"]))
                     for i in range(config.num_layers)])


def transformer_from_hf(tensors: Mapping[str, Array], config: TransformerConfig,
                        prefix: str = "", source: str = "checkpoint") -> dict:
    """Builds the `transformer` parameter tree from Hugging Face Gemma 3 tensors.

    Args:
      tensors: name -> array (a dict, or a lazy mapping such as a safetensors reader).
      config: the architecture the tensors must match.
      prefix: stripped from every name first (e.g. "model." for a causal-LM checkpoint).
      source: the file name used in error messages.

    Raises:
      ValueError naming every missing, unexpected and mis-shaped tensor.
    """
    check_hf_tensors(tensors, config, prefix, source)
    params: dict = {}
    for path in transformer_paths(config):
        _set(params, path, transformer_leaf_from_hf(tensors, config, path, prefix))
    return params


def transformer_to_hf(params: Mapping, config: TransformerConfig) -> dict[str, Array]:
    """The inverse of `transformer_from_hf`: Hugging Face names -> numpy arrays."""
    layouts = _layer_layouts(config)
    out = {}
    for hf, path, layer in _entries(config):
        if layer is None:
            w = _get(params, path)
        else:
            w = _get(params, ("layers",) + path)[layer]
        out[hf] = np.ascontiguousarray(_to_hf(layouts[path], np.asarray(w)))
    return out

def _set(tree: dict, path: tuple[str, ...], value: Array) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value

def _get(tree: Mapping, path: tuple[str, ...]) -> Array:
    for key in path:
        tree = tree[key]
    return tree
