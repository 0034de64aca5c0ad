"""The jnp quantiser against a numpy reference written here and against the gguf package's own
Q8_0 / Q4_0 (llama.cpp's reference quantisers), per scheme on the tiny model, and the stored form."""

import gguf
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gguf import GGMLQuantizationType

from embeddinggemma.model.layout import ParamLayout, embedder_layout
from embeddinggemma.quantization import (
    Grid,
    dequantize,
    fake_quantize,
    load_params,
    pack_int4,
    quantize,
    quantize_params,
    store_params,
    straight_through,
    unpack_int4,
)

# path -> (axes summed over, is attention): the tiny model's matrices, by hand.
MATRICES = {
    ("projection_0",): ((0,), False),
    ("projection_1",): ((0,), False),
    ("transformer", "embedding"): ((1,), False),
    ("transformer", "layers", "attn", "query"): ((1,), True),
    ("transformer", "layers", "attn", "key"): ((1,), True),
    ("transformer", "layers", "attn", "value"): ((1,), True),
    ("transformer", "layers", "attn", "out"): ((1, 2), True),
    ("transformer", "layers", "mlp", "gate"): ((1,), False),
    ("transformer", "layers", "mlp", "up"): ((1,), False),
    ("transformer", "layers", "mlp", "down"): ((1,), False),
}


def _roundf(v):
    """C's roundf on float32 values, in float64 (where |v| + 0.5 is exact)."""
    v = np.asarray(v, np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _q8_0(blocks):
    d = np.abs(blocks).max(-1, keepdims=True) / np.float32(127)
    inverse = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    return _roundf(blocks * inverse), d.astype(np.float16)


def _q4_0(blocks):
    m = np.take_along_axis(blocks, np.abs(blocks).argmax(-1)[..., None], -1)
    d = m / np.float32(-8)
    inverse = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = np.minimum(15, np.trunc(blocks * inverse + np.float32(8.5)))  # float32 throughout
    return q - 8, d.astype(np.float16)


def _per_channel(rows, bits):
    qmax = 2 ** (bits - 1) - 1
    s = np.abs(rows).max(-1, keepdims=True) / np.float32(qmax)
    inverse = np.divide(np.float32(1), s, out=np.zeros_like(s), where=s != 0)
    return np.clip(_roundf(rows * inverse), -qmax - 1, qmax), s


def _reference(w, axes, grid):
    """(dequantised w, codes, scales) by the schemes' definitions, numpy only."""
    outer = [i for i in range(w.ndim) if i not in axes]
    rows = np.transpose(w, outer + list(axes)).reshape(*(w.shape[i] for i in outer), -1)
    if grid.per_block:
        blocks = rows.reshape(*rows.shape[:-1], -1, 32)
        codes, scales = (_q8_0 if grid.bits == 8 else _q4_0)(blocks)
    else:
        codes, scales = _per_channel(rows, grid.bits)
        codes, scales = codes[..., None, :], scales[..., None]
    flat = (codes.astype(np.float32) * scales.astype(np.float32)).reshape(
        *(w.shape[i] for i in outer), *(w.shape[i] for i in axes))
    return np.transpose(flat, np.argsort(outer + list(axes))), codes, scales[..., 0]


def _awkward(shape, axes, seed):
    """Heavy-tailed values with, along the contraction axes, the corner cases: an all-zero block,
    equal values, a tie of magnitudes (the first one counts)."""
    outer = [i for i in range(len(shape)) if i not in axes]
    rows = (np.random.default_rng(seed).standard_t(3, size=(
        int(np.prod([shape[i] for i in outer])), int(np.prod([shape[i] for i in axes])))) * 0.05)
    rows = rows.astype(np.float32)
    rows[0, :32] = 0
    rows[1, :32] = 0.5
    rows[2, :32] = np.linspace(-1, 1, 32)
    rows[3, :32] = np.tile([-3.0, 3.0, 1.5, -0.75], 8)
    moved = rows.reshape(*(shape[i] for i in outer), *(shape[i] for i in axes))
    return np.ascontiguousarray(np.transpose(moved, np.argsort(outer + list(axes))))


@pytest.mark.parametrize("grid", [Grid(8, True), Grid(4, True), Grid(8, False), Grid(4, False)])
@pytest.mark.parametrize("shape,axes", [((6, 64, 5), (1,)), ((3, 4, 16, 10), (1, 2)), ((96, 7), (0,))])
def test_codes_and_scales_match_the_numpy_reference(grid, shape, axes):
    w = _awkward(shape, axes, seed=len(shape))
    codes, scales = jax.device_get(quantize(w, grid, axes))
    expected, ref_codes, ref_scales = _reference(w, axes, grid)
    np.testing.assert_array_equal(codes, ref_codes)
    assert scales.dtype == (np.float16 if grid.per_block else np.float32)
    np.testing.assert_array_equal(scales, ref_scales)
    np.testing.assert_array_equal(np.asarray(dequantize(codes, scales, shape, axes)), expected)
    np.testing.assert_array_equal(np.asarray(jax.jit(fake_quantize, static_argnums=(1, 2))(w, grid, axes)),
                                  expected)


@pytest.mark.parametrize("bits,qtype", [(8, GGMLQuantizationType.Q8_0), (4, GGMLQuantizationType.Q4_0)])
def test_block_grids_are_bit_identical_to_the_gguf_package(bits, qtype):
    rows = np.concatenate([_awkward((256, 1024), (1,), seed=7), _awkward((256, 1024), (1,), seed=8) * 40])
    codes, scales = jax.device_get(quantize(rows, Grid(bits, True), (1,)))
    raw = gguf.quants.quantize(rows, qtype).reshape(rows.shape[0], rows.shape[1] // 32, -1)
    np.testing.assert_array_equal(scales.view(np.uint16), raw[..., :2].copy().view(np.uint16)[..., 0])
    if bits == 8:
        np.testing.assert_array_equal(codes.view(np.uint8), raw[..., 2:])
    else:
        np.testing.assert_array_equal(pack_int4(codes), raw[..., 2:])
    np.testing.assert_array_equal(np.asarray(dequantize(codes, scales, rows.shape, (1,))),
                                  gguf.quants.dequantize(raw.reshape(rows.shape[0], -1), qtype))


def test_int4_codes_unpack_to_what_was_packed():
    codes = np.random.default_rng(0).integers(-8, 8, size=(3, 5, 32)).astype(np.int8)
    packed = pack_int4(codes)
    assert packed.dtype == np.uint8 and packed.shape == (3, 5, 16)
    np.testing.assert_array_equal(unpack_int4(packed), codes)


def test_a_block_that_does_not_divide_is_named():
    with pytest.raises(ValueError, match=r"shape \(4, 48\) contracts 48 values .* block of 32"):
        quantize(np.ones((4, 48), np.float32), Grid(8, True), (1,))


def _flat(tree):
    return {tuple(k.key for k in path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _grid(scheme, attention):
    if scheme == "mixed":
        return Grid(8 if attention else 4, False)
    return Grid(8 if scheme == "int8-block" else 4, True)


@pytest.mark.parametrize("scheme", ["int8-block", "int4-block", "mixed"])
def test_every_matrix_matches_the_reference_and_vectors_stay(tiny_config, tiny_params, scheme):
    layout = embedder_layout(tiny_config)
    got = _flat(quantize_params(tiny_params, scheme, layout))
    original = _flat(tiny_params)
    assert set(got) == set(original)
    for path, w in original.items():
        if path in MATRICES:
            axes, attention = MATRICES[path]
            np.testing.assert_array_equal(got[path], _reference(w, axes, _grid(scheme, attention))[0],
                                          err_msg=str(path))
            assert not np.array_equal(got[path], w), path
        else:
            np.testing.assert_array_equal(got[path], w)


def test_the_stored_form_packs_int4_and_loads_back_the_same_weights(tiny_config, tiny_params):
    layout = embedder_layout(tiny_config)
    stored = store_params(tiny_params, "int4-block", layout)
    embedding = stored["transformer"]["embedding"]
    assert embedding["codes"].dtype == np.uint8 and embedding["scales"].dtype == np.float16
    assert embedding["codes"].nbytes == tiny_params["transformer"]["embedding"].size // 2
    loaded = _flat(load_params(stored, "int4-block", layout))
    for path, w in _flat(quantize_params(tiny_params, "int4-block", layout)).items():
        np.testing.assert_array_equal(loaded[path], w, err_msg=str(path))


def test_stored_parameters_of_another_shape_are_named(tiny_config, tiny_params):
    layout = embedder_layout(tiny_config)
    stored = store_params(tiny_params, "int4-block", layout)
    stored["projection_0"]["scales"] = stored["projection_0"]["scales"][:, :1]
    with pytest.raises(ValueError, match=r"\['projection_0'\] has codes and scales of shapes"):
        load_params(stored, "int4-block", layout)
    stored = store_params(tiny_params, "int4-block", layout)
    del stored["projection_1"]
    with pytest.raises(ValueError, match=r"\['projection_1'\] is missing"):
        load_params(stored, "int4-block", layout)


def test_straight_through_computes_with_the_quantised_weights_and_passes_gradients():
    layout = {"w": ParamLayout((64, 8), ("embed", "mlp")), "norm": ParamLayout((8,), ("embed",))}
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(64, 8)).astype(np.float32), "norm": rng.normal(size=8).astype(np.float32)}
    x = rng.normal(size=(5, 64)).astype(np.float32)

    def loss(p):
        return jnp.sum(jnp.tanh(x @ p["w"] * p["norm"]) ** 2)

    quantized = quantize_params(params, "int4-block", layout)
    got = jax.jit(jax.grad(lambda p: loss(straight_through(p, "int4-block", layout))))(params)
    # The straight-through gradient is the plain gradient evaluated at the quantised weights.
    expected = jax.grad(loss)(quantized)
    for name in params:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-6)
    forward = jax.jit(lambda p: straight_through(p, "int4-block", layout))(params)
    np.testing.assert_array_equal(forward["w"], quantized["w"])


def test_unknown_schemes_and_other_layouts_are_refused(tiny_config, tiny_params):
    layout = embedder_layout(tiny_config)
    with pytest.raises(ValueError, match="Unknown quantisation scheme 'int3'"):
        quantize_params(tiny_params, "int3", layout)
    other = embedder_layout(tiny_config.replace(pooling="attention"))
    with pytest.raises(ValueError, match=r"only in the layout \[\"\['attention_pool'\]\['query'\]\"\]"):
        quantize_params(tiny_params, "mixed", other)
