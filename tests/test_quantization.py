"""quantize_params against a numpy reference written here, per scheme, on the tiny model."""

import jax
import numpy as np
import pytest

from embeddinggemma.model.layout import embedder_layout
from embeddinggemma.quantization import quantize_params

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


def _round_trip(w, scale, bits):
    qmax = 2 ** (bits - 1) - 1
    safe = np.where(scale == 0, 1, scale)
    return np.clip(np.round(w / safe), -qmax - 1, qmax) * scale


def _per_channel(w, bits, axes):
    scale = np.abs(w).max(axis=axes, keepdims=True) / (2 ** (bits - 1) - 1)
    return _round_trip(w, scale, bits)


def _per_block(w, bits, axis, block):
    # Each run of `block` values along `axis` (fewer when the axis is shorter) shares a scale.
    block = min(block, w.shape[axis])
    out = np.empty_like(w)
    for start in range(0, w.shape[axis], block):
        index = [slice(None)] * w.ndim
        index[axis] = slice(start, start + block)
        piece = w[tuple(index)]
        scale = np.abs(piece).max(axis=axis, keepdims=True) / (2 ** (bits - 1) - 1)
        out[tuple(index)] = _round_trip(piece, scale, bits)
    return out


def _reference(w, scheme, axes, attention):
    if scheme == "mixed":
        return _per_channel(w, 8 if attention else 4, axes)
    return _per_block(w, 8 if scheme == "int8-block" else 4, axes[-1], 32)


def _flat(tree):
    return {tuple(k.key for k in path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.mark.parametrize("scheme", ["int8-block", "int4-block", "mixed"])
def test_every_matrix_matches_the_reference_and_vectors_stay(tiny_config, tiny_params, scheme):
    got = _flat(quantize_params(tiny_params, scheme, embedder_layout(tiny_config)))
    original = _flat(tiny_params)
    assert set(got) == set(original)
    for path, w in original.items():
        if path in MATRICES:
            axes, attention = MATRICES[path]
            np.testing.assert_allclose(got[path], _reference(w, scheme, axes, attention), rtol=1e-6,
                                       atol=1e-7, err_msg=str(path))
            assert not np.array_equal(got[path], w), path
        else:
            np.testing.assert_array_equal(got[path], w)


def test_a_layout_of_another_model_is_refused(tiny_config, tiny_params):
    layout = embedder_layout(tiny_config.replace(pooling="attention"))
    with pytest.raises(ValueError, match=r"only in the layout \[\"\['attention_pool'\]\['query'\]\"\]"):
        quantize_params(tiny_params, "mixed", layout)
