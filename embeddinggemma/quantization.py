"""The weight quantisation schemes of the paper, one jit-able implementation for post-training
quantisation, quantisation-aware training and export, so that what is trained is what is shipped.

  int8-block   every weight matrix on GGUF's Q8_0 grid: blocks of 32 values along the contraction
               axes, d = absmax / 127, q = roundf(x / d) in [-127, 127], x ~ d q
  int4-block   GGUF's Q4_0 grid: blocks of 32, d = m / -8 with m the block's value of largest
               magnitude (its sign kept), q = min(15, trunc(x / d + 8.5)), x ~ d (q - 8)
  mixed        per output channel (one scale over all contraction axes): int4 (s = absmax / 7,
               q in [-8, 7]) for the embedding, feed-forward and projection layers, int8
               (s = absmax / 127) for attention

The block grids are llama.cpp's reference quantisers to the bit: the scale is computed in float32,
the codes with its float32 reciprocal, and the scale is stored as float16, which is what the
dequantised value uses. `mixed` has no GGUF type; its per-channel scales stay float32.

Vectors (norm scales, the pooling query) stay in float. Which axes a matrix contracts and whether
it is attention come from its logical axes (`model.layout`), not from its name; the embedding table
[vocab, embed] contracts `embed`, so it is quantised by rows, as llama.cpp stores it.

A quantised matrix is held as `codes` [*outer, groups, group] int8 (the signed codes: q - 8 for
Q4_0) and `scales` [*outer, groups], where `outer` are the matrix's other axes in order and the
contraction axes, flattened in order, are cut into `groups` of `group` values (32, or all of them
per channel).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from embeddinggemma.model.layout import ParamLayout

BLOCK = 32
SCHEMES = ("int8-block", "int4-block", "mixed")


@dataclasses.dataclass(frozen=True)
class Grid:
    """How one matrix is quantised: `bits` (8 or 4) per block of BLOCK values or per channel."""

    bits: int
    per_block: bool

    @property
    def scale_dtype(self) -> np.dtype:
        return np.dtype(np.float16 if self.per_block else np.float32)


def check_scheme(scheme: str) -> str:
    """`scheme` if it is one of SCHEMES; otherwise a ValueError that lists them."""
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown quantisation scheme {scheme!r}; choose one of {', '.join(SCHEMES)}.")
    return scheme


def grid_of(scheme: str, param: ParamLayout) -> Grid | None:
    """The grid `scheme` puts a parameter on; None for a vector, which stays in float."""
    check_scheme(scheme)
    if param.is_vector:
        return None
    if scheme == "mixed":
        return Grid(8 if param.is_attention else 4, per_block=False)
    return Grid(8 if scheme == "int8-block" else 4, per_block=True)


def _roundf(x: jax.Array) -> jax.Array:
    """C's roundf (halves away from zero), exactly, in float32: jnp.round rounds halves to even,
    and floor(|x| + 0.5) rounds 0.49999997 up."""
    a = jnp.abs(x)
    floored = jnp.floor(a)
    return jnp.sign(x) * (floored + jnp.floor(2 * (a - floored)))


def _q4_0_thresholds() -> np.ndarray:
    """[17] float32: entry k is the least float32 p with float32(p + 8.5) >= k (-inf, +inf at the ends)."""
    thresholds = [-np.inf]
    for k in range(1, 16):
        p = np.float32(k - 8.5)  # exact; p + 8.5 == k
        while np.float32(np.nextafter(p, np.float32(-np.inf)) + np.float32(8.5)) >= k:
            p = np.nextafter(p, np.float32(-np.inf))
        thresholds.append(p)
    return np.array([*thresholds, np.inf], np.float32)


_Q4_0_THRESHOLDS = _q4_0_thresholds()


def _q4_0_codes(scaled: jax.Array) -> jax.Array:
    """min(15, trunc(scaled + 8.5)) with the sum rounded to float32 first, as llama.cpp computes it.

    Written as comparisons with the thresholds at which float32(scaled + 8.5) reaches each integer:
    compilers fuse `x * id + 8.5` into one fused multiply-add, which skips the product's rounding
    and changes a code now and then; a comparison cannot be fused so.
    """
    thresholds = jnp.asarray(_Q4_0_THRESHOLDS)
    rough = jnp.clip(jnp.floor(scaled + 8.5), 0, 15).astype(jnp.int32)  # exact but for one step
    return (rough + (scaled >= thresholds[rough + 1]) - (scaled < thresholds[rough])).astype(jnp.int32)


def _divide(x: jax.Array, constant: float) -> jax.Array:
    """x / constant rounded once, as C divides: XLA turns a division by a constant into a product
    with its (rounded) reciprocal, unless the divisor is hidden behind a barrier."""
    return x / jax.lax.optimization_barrier(jnp.full_like(x, constant))


def _reciprocal(d: jax.Array) -> jax.Array:
    return jnp.where(d == 0, 0.0, 1.0 / jnp.where(d == 0, 1.0, d))


def _grouped(w: jax.Array, axes: tuple[int, ...], per_block: bool) -> jax.Array:
    """w -> [*outer, groups, group]: the contraction `axes` moved last, flattened, cut into groups."""
    outer = [i for i in range(w.ndim) if i not in axes]
    moved = jnp.transpose(w, (*outer, *axes))
    length = math.prod(w.shape[i] for i in axes)
    if per_block and length % BLOCK:
        raise ValueError(f"A matrix of shape {tuple(w.shape)} contracts {length} values (axes {axes}), "
                         f"not a multiple of the block of {BLOCK}.")
    group = BLOCK if per_block else length
    return moved.reshape(*moved.shape[:len(outer)], length // group, group)


@functools.partial(jax.jit, static_argnums=(1, 2))
def quantize(w: jax.Array, grid: Grid, axes: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """A matrix `w` on `grid`, its blocks or channels along the contraction `axes`.

    Returns:
      codes [*outer, groups, group] int8 (signed: Q4_0's q - 8), scales [*outer, groups] in
      grid.scale_dtype; dequantize(codes, scales, w.shape, axes) restores the shape.
    """
    x = _grouped(jnp.asarray(w, jnp.float32), axes, grid.per_block)
    if grid.per_block and grid.bits == 4:
        index = jnp.argmax(jnp.abs(x), axis=-1, keepdims=True)  # the first of ties, as numpy's
        d = jnp.take_along_axis(x, index, axis=-1) / -8.0
        codes = _q4_0_codes(x * _reciprocal(d)) - 8
    else:
        qmax = 2 ** (grid.bits - 1) - 1
        d = _divide(jnp.max(jnp.abs(x), axis=-1, keepdims=True), qmax)
        codes = jnp.clip(_roundf(x * _reciprocal(d)), -qmax - 1, qmax)
    return codes.astype(jnp.int8), d[..., 0].astype(grid.scale_dtype)


def dequantize(codes: jax.Array, scales: jax.Array, shape: tuple[int, ...],
               axes: tuple[int, ...]) -> jax.Array:
    """float32 `shape` from `quantize`'s codes [*outer, groups, group] and scales [*outer, groups]."""
    x = codes.astype(jnp.float32) * scales.astype(jnp.float32)[..., None]
    outer = [i for i in range(len(shape)) if i not in axes]
    moved = x.reshape(*(shape[i] for i in outer), *(shape[i] for i in axes))
    return jnp.transpose(moved, np.argsort((*outer, *axes)))


def fake_quantize(w: jax.Array, grid: Grid, axes: tuple[int, ...]) -> jax.Array:
    """`w` quantised on `grid` and dequantised (float32, w's shape): the weights a quantised model
    computes with."""
    return dequantize(*quantize(w, grid, axes), tuple(w.shape), axes)


def _check_paths(params: Mapping, layout: Mapping) -> None:
    paths = lambda tree: {jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}
    if paths(params) != paths(layout):
        raise ValueError(f"The parameters and their layout differ: only in the parameters "
                         f"{sorted(paths(params) - paths(layout))}, only in the layout "
                         f"{sorted(paths(layout) - paths(params))}.")


def quantize_params(params: Mapping, scheme: str, layout: Mapping) -> dict:
    """The parameters with every weight matrix fake-quantised by `scheme` (post-training
    quantisation); vectors unchanged, every leaf in its own dtype.

    `layout` is the tree of `model.layout.ParamLayout` of `params` (e.g. `embedder_layout(config)`).
    Jit-able: under `jax.jit` with a static scheme and layout it traces.
    """
    check_scheme(scheme)
    _check_paths(params, layout)

    def one(w, param: ParamLayout):
        grid = grid_of(scheme, param)
        if grid is None:
            return w
        return fake_quantize(w, grid, param.contraction_axes).astype(w.dtype)

    return jax.tree.map(one, dict(params), dict(layout))


def straight_through(params: Mapping, scheme: str, layout: Mapping) -> dict:
    """Fake-quantised parameters whose gradient is the identity (the straight-through estimator),
    for quantisation-aware training: the forward pass computes with exactly `quantize_params`'s
    weights, the gradient reaches the float master weights unchanged."""
    quantized = quantize_params(jax.lax.stop_gradient(params), scheme, layout)
    # fq + (w - w) is fq exactly in the forward pass; w + (fq - w) would round.
    return jax.tree.map(lambda fq, w: fq + (w - jax.lax.stop_gradient(w)), quantized, dict(params))


def pack_int4(codes: np.ndarray) -> np.ndarray:
    """Signed 4-bit codes [..., n] in [-8, 7] -> uint8 [..., n / 2], two per byte as GGUF's Q4_0 packs
    a block: byte j holds value j + 8 in its low nibble and value j + n / 2 + 8 in its high one."""
    codes = np.asarray(codes)
    half = codes.shape[-1] // 2
    if codes.shape[-1] % 2:
        raise ValueError(f"Cannot pack an odd number ({codes.shape[-1]}) of 4-bit codes into bytes.")
    unsigned = (codes.astype(np.int16) + 8).astype(np.uint8)
    return unsigned[..., :half] | (unsigned[..., half:] << np.uint8(4))


def unpack_int4(packed: np.ndarray) -> np.ndarray:
    """The inverse of `pack_int4`: uint8 [..., n / 2] -> int8 codes [..., n] in [-8, 7]."""
    packed = np.asarray(packed, np.uint8)
    low, high = packed & np.uint8(0x0F), packed >> np.uint8(4)
    return (np.concatenate([low, high], axis=-1).astype(np.int16) - 8).astype(np.int8)


def store_params(params: Mapping, scheme: str, layout: Mapping) -> dict:
    """The parameters as a quantised checkpoint holds them: each matrix becomes
    {"codes": int8 (8 bits) or uint8 packed two per byte (4 bits), "scales"}; vectors stay float.
    numpy leaves; `load_params` inverts it."""
    check_scheme(scheme)
    _check_paths(params, layout)

    def one(w, param: ParamLayout):
        grid = grid_of(scheme, param)
        if grid is None:
            return np.asarray(w)
        codes, scales = jax.device_get(quantize(w, grid, param.contraction_axes))
        return {"codes": pack_int4(codes) if grid.bits == 4 else codes, "scales": scales}

    return jax.tree.map(one, dict(params), dict(layout))


def load_params(stored: Mapping, scheme: str, layout: Mapping, what: str = "quantised parameters") -> dict:
    """float32 parameters from `store_params`' tree (matrices dequantised; vectors as stored).

    Raises:
      ValueError naming the parameter when a stored matrix does not fit its layout and scheme.
    """
    check_scheme(scheme)

    def one(path, param: ParamLayout):
        name = jax.tree_util.keystr(path)
        leaf = _find(stored, path, what, name)
        grid = grid_of(scheme, param)
        if grid is None:
            return np.asarray(leaf)
        if not isinstance(leaf, Mapping) or set(leaf) != {"codes", "scales"}:
            raise ValueError(f"{what}: {name} should hold 'codes' and 'scales' under {scheme!r}.")
        codes = unpack_int4(leaf["codes"]) if grid.bits == 4 else np.asarray(leaf["codes"])
        expected = jax.eval_shape(lambda: quantize(jnp.zeros(param.shape), grid, param.contraction_axes))
        got = (codes.shape, np.asarray(leaf["scales"]).shape)
        if got != (expected[0].shape, expected[1].shape):
            raise ValueError(f"{what}: {name} has codes and scales of shapes {got}, expected "
                             f"{(expected[0].shape, expected[1].shape)} for a {param.shape} matrix "
                             f"under {scheme!r}.")
        return np.asarray(dequantize(codes, leaf["scales"], param.shape, param.contraction_axes))

    return jax.tree_util.tree_map_with_path(one, dict(layout),
                                            is_leaf=lambda x: isinstance(x, ParamLayout))


def _find(tree: Any, path: tuple, what: str, name: str) -> Any:
    for key in path:
        if not isinstance(tree, Mapping) or key.key not in tree:
            raise ValueError(f"{what}: parameter {name} is missing.")
        tree = tree[key.key]
    return tree
