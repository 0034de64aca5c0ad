"""Name and layout mapping between Hugging Face Gemma 3 tensors and this codebase's parameter tree.

Hugging Face stores each linear layer as [out, in] per layer; this codebase stores [in, out] with the
head axes split out and the layers stacked on a leading axis (the blocks are scanned).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from embeddinggemma.model.config import TransformerConfig

Array = np.ndarray

# (Hugging Face name under `layers.{i}.`, path under transformer/layers, layout conversion)
_LAYER_TENSORS: list[tuple[str, tuple[str, ...], str]] = [
    ("input_layernorm.weight", ("pre_attn_norm", "scale"), "copy"),
    ("post_attention_layernorm.weight", ("post_attn_norm", "scale"), "copy"),
    ("pre_feedforward_layernorm.weight", ("pre_ffw_norm", "scale"), "copy"),
    ("post_feedforward_layernorm.weight", ("post_ffw_norm", "scale"), "copy"),
    ("self_attn.q_norm.weight", ("attn", "query_norm", "scale"), "copy"),
    ("self_attn.k_norm.weight", ("attn", "key_norm", "scale"), "copy"),
    ("self_attn.q_proj.weight", ("attn", "query"), "in_heads"),
    ("self_attn.k_proj.weight", ("attn", "key"), "in_heads"),
    ("self_attn.v_proj.weight", ("attn", "value"), "in_heads"),
    ("self_attn.o_proj.weight", ("attn", "out"), "heads_out"),
    ("mlp.gate_proj.weight", ("mlp", "gate"), "transpose"),
    ("mlp.up_proj.weight", ("mlp", "up"), "transpose"),
    ("mlp.down_proj.weight", ("mlp", "down"), "transpose"),
]
_GLOBAL_TENSORS = [
    ("embed_tokens.weight", ("embedding",), "copy"),
    ("norm.weight", ("final_norm", "scale"), "copy"),
]

def _to_ours(kind: str, w: Array, shape: tuple[int, ...]) -> Array:
    if kind == "copy":
        return w
    if kind == "transpose":
        return w.T
    if kind == "in_heads":  # [heads*H, D] -> [D, heads, H]
        return w.T.reshape(shape)
    if kind == "heads_out":  # [D, N*H] -> [N, H, D]
        return w.T.reshape(shape)
    raise AssertionError(kind)

def _to_hf(kind: str, w: Array) -> Array:
    if kind == "copy":
        return w
    if kind == "transpose":
        return w.T
    if kind == "in_heads":  # [D, heads, H] -> [heads*H, D]
        return w.reshape(w.shape[0], -1).T
    if kind == "heads_out":  # [N, H, D] -> [D, N*H]
        return w.reshape(-1, w.shape[-1]).T
    raise AssertionError(kind)

def _hf_shape(kind: str, ours: tuple[int, ...]) -> tuple[int, ...]:
    return _to_hf(kind, np.empty(ours, dtype=np.uint8)).shape

def expected_shapes(config: TransformerConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Shapes of the transformer parameters in this codebase's layout (per layer, unstacked)."""
    D, F, H = config.embed_dim, config.mlp_dim, config.head_dim
    N, K = config.num_heads, config.num_kv_heads
    return {
        ("embedding",): (config.vocab_size, D),
        ("final_norm", "scale"): (D,),
        ("pre_attn_norm", "scale"): (D,),
        ("post_attn_norm", "scale"): (D,),
        ("pre_ffw_norm", "scale"): (D,),
        ("post_ffw_norm", "scale"): (D,),
        ("attn", "query_norm", "scale"): (H,),
        ("attn", "key_norm", "scale"): (H,),
        ("attn", "query"): (D, N, H),
        ("attn", "key"): (D, K, H),
        ("attn", "value"): (D, K, H),
        ("attn", "out"): (N, H, D),
        ("mlp", "gate"): (D, F),
        ("mlp", "up"): (D, F),
        ("mlp", "down"): (F, D),
    }

def _entries(config: TransformerConfig) -> Iterator[tuple[str, tuple[str, ...], str, int | None]]:
    """(hf name, our path, kind, layer index or None) for every tensor of the model."""
    for hf, path, kind in _GLOBAL_TENSORS:
        yield hf, path, kind, None
    for i in range(config.num_layers):
        for hf, path, kind in _LAYER_TENSORS:
            yield f"layers.{i}.{hf}", path, kind, i

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
    names = {n[len(prefix):]: n for n in tensors if n.startswith(prefix)}
    shapes = expected_shapes(config)
    problems, flat = [], {}
    expected_names = set()
    for hf, path, kind, _ in _entries(config):
        expected_names.add(hf)
        if hf not in names:
            problems.append(f"missing tensor {prefix}{hf}")
            continue
        w = np.asarray(tensors[names[hf]])
        want = _hf_shape(kind, shapes[path])
        if w.shape != want:
            problems.append(f"tensor {prefix}{hf} has shape {list(w.shape)}, expected {list(want)}")
            continue
        flat[hf] = _to_ours(kind, w, shapes[path])
    problems += [f"unexpected tensor {names[n]}" for n in sorted(set(names) - expected_names)]
    problems += [f"unexpected tensor {n}" for n in sorted(set(tensors) - set(names.values()))]
    if problems:
        raise ValueError(f"{source} does not match the model config:\n  " + "\n  ".join(problems))

    params: dict = {}
    for hf, path, _ in _GLOBAL_TENSORS:
        _set(params, path, flat[hf])
    for hf, path, _ in _LAYER_TENSORS:
        stacked = np.stack([flat[f"layers.{i}.{hf}"] for i in range(config.num_layers)])
        _set(params, ("layers",) + path, stacked)
    return params

def transformer_to_hf(params: Mapping, config: TransformerConfig) -> dict[str, Array]:
    """The inverse of `transformer_from_hf`: Hugging Face names -> numpy arrays."""
    out = {}
    for hf, path, kind, layer in _entries(config):
        if layer is None:
            w = _get(params, path)
        else:
            w = _get(params, ("layers",) + path)[layer]
        out[hf] = np.ascontiguousarray(_to_hf(kind, np.asarray(w)))
    return out

def _set(tree: dict, path: tuple[str, ...], value: Array) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value

def _get(tree: Mapping, path: tuple[str, ...]) -> Array:
    for key in path:
        tree = tree[key]
    return tree
