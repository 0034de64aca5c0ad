"""Weight quantisation schemes of the paper, applied after training (quantise, then dequantise).

  int8-block   every weight matrix in int8, one scale per block of 32 input values
  int4-block   the same in int4
  mixed        per-channel: int4 for the embedding, feed-forward and projection layers, int8 for
               attention (one scale per output channel)

Symmetric round-to-nearest; vectors (norm scales) stay in float. Which axes a matrix contracts
and whether it is attention come from its logical axes (`model.layout`), not from its name.
Evaluating a checkpoint under a scheme measures what quantising it costs (the evaluate command's
`--quant`); quantisation-aware training is what the paper does to recover it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import numpy as np

from embeddinggemma.model.layout import ParamLayout

BLOCK = 32
SCHEMES = ("int8-block", "int4-block", "mixed")


def fake_quantize(w: np.ndarray, bits: int, axes: tuple[int, ...], block: int | None) -> np.ndarray:
    """`w` quantised symmetrically to `bits` and dequantised; scales per block of `block` values of the
    last contraction axis (the greatest common divisor of the two when the axis is not a multiple),
    or per output channel (over all contraction axes) when block is None."""
    w = np.asarray(w, np.float32)
    qmax = 2 ** (bits - 1) - 1
    if block is None:
        scale = np.max(np.abs(w), axis=axes, keepdims=True) / qmax
        return np.clip(np.round(w / np.where(scale == 0, 1, scale)), -qmax - 1, qmax) * scale
    axis = axes[-1]
    block = math.gcd(block, w.shape[axis])  # a short axis (a tiny model's heads) gets smaller blocks
    moved = np.moveaxis(w, axis, -1)
    blocks = moved.reshape(*moved.shape[:-1], moved.shape[-1] // block, block)
    scale = np.max(np.abs(blocks), axis=-1, keepdims=True) / qmax
    q = np.clip(np.round(blocks / np.where(scale == 0, 1, scale)), -qmax - 1, qmax) * scale
    return np.moveaxis(q.reshape(moved.shape), -1, axis)


def quantize_params(params: Mapping, scheme: str, layout: Mapping, block: int = BLOCK) -> dict:
    """The parameters with every weight matrix quantised by `scheme` (see SCHEMES).

    `layout` is the tree of `model.layout.ParamLayout` of `params` (e.g. `embedder_layout(config)`):
    it says which axes each matrix contracts and whether it belongs to attention.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown quantisation scheme {scheme!r}; choose one of {', '.join(SCHEMES)}.")

    def one(w, param: ParamLayout):
        w = np.asarray(w)
        if param.is_vector:
            return w
        if scheme == "mixed":
            bits = 8 if param.is_attention else 4
            return fake_quantize(w, bits, param.contraction_axes, None).astype(w.dtype)
        bits = 8 if scheme == "int8-block" else 4
        return fake_quantize(w, bits, param.contraction_axes, block).astype(w.dtype)

    params = jax.device_get(dict(params))
    paths = lambda tree: {jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}
    if paths(params) != paths(layout):
        raise ValueError(f"The parameters and their layout differ: only in the parameters "
                         f"{sorted(paths(params) - paths(layout))}, only in the layout "
                         f"{sorted(paths(layout) - paths(params))}.")
    return jax.tree.map(one, params, dict(layout))
