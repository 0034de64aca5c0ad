"""Parameter roles read from logical axes, against tables written by hand."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embeddinggemma.model import embeddinggemma_300m, tiny
from embeddinggemma.model.layout import ParamLayout, embedder_layout, param_layouts
from embeddinggemma.training.optimizer import decay_mask


def _flat(tree):
    return {tuple(k.key for k in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


# path -> (logical axes, contraction axes or None for a vector, is attention), tiny preset,
# attention pooling.
TINY = {
    ("projection_0",): (("embed", "projection"), (0,), False),
    ("projection_1",): (("projection", "embed"), (0,), False),
    ("attention_pool", "query"): (("embed",), None, False),
    ("transformer", "embedding"): (("vocab", "embed"), (1,), False),
    ("transformer", "final_norm", "scale"): (("embed",), None, False),
    ("transformer", "layers", "attn", "query"): (("layers", "embed", "heads", "head_dim"), (1,), True),
    ("transformer", "layers", "attn", "key"): (("layers", "embed", "kv_heads", "head_dim"), (1,), True),
    ("transformer", "layers", "attn", "value"): (("layers", "embed", "kv_heads", "head_dim"), (1,), True),
    ("transformer", "layers", "attn", "out"): (("layers", "heads", "head_dim", "embed"), (1, 2), True),
    ("transformer", "layers", "attn", "query_norm", "scale"): (("layers", "head_dim"), None, False),
    ("transformer", "layers", "attn", "key_norm", "scale"): (("layers", "head_dim"), None, False),
    ("transformer", "layers", "mlp", "gate"): (("layers", "embed", "mlp"), (1,), False),
    ("transformer", "layers", "mlp", "up"): (("layers", "embed", "mlp"), (1,), False),
    ("transformer", "layers", "mlp", "down"): (("layers", "mlp", "embed"), (1,), False),
    **{("transformer", "layers", norm, "scale"): (("layers", "embed"), None, False)
       for norm in ("pre_attn_norm", "post_attn_norm", "pre_ffw_norm", "post_ffw_norm")},
}


def test_tiny_layout_matches_the_hand_written_table():
    layout = _flat(embedder_layout(tiny(pooling="attention")))
    assert set(layout) == set(TINY)
    for path, (axes, contraction, attention) in TINY.items():
        param = layout[path]
        assert param.axes == axes, path
        assert param.is_vector == (contraction is None), path
        if contraction is not None:
            assert param.contraction_axes == contraction, path
        assert param.is_attention == attention, path


def test_release_layout_keeps_the_contraction_axes_quantisation_used():
    layout = _flat(embedder_layout(embeddinggemma_300m()))
    assert sum(int(np.prod(p.shape)) for p in layout.values()) == 307_581_696
    matrices = {path: p.contraction_axes for path, p in layout.items() if not p.is_vector}
    # The rule quantisation applied by name before the layout existed.
    by_name = {"embedding": (1,), "out": (1, 2), "projection_0": (0,), "projection_1": (0,)}
    assert matrices == {path: by_name.get(path[-1], (1,)) for path in matrices}
    assert len(matrices) == 10


def test_decay_mask_spares_vectors_even_when_stacked():
    mask = _flat(decay_mask(embedder_layout(tiny(pooling="attention"))))
    assert mask == {path: contraction is not None for path, (_, contraction, _) in TINY.items()}


def test_a_new_part_is_described_by_its_axes():
    # A cross-attention's key reads the encoder's stream; its output writes the decoder's.
    key = ParamLayout((4, 64, 2, 16), ("layers", "embed", "kv_heads", "head_dim"))
    out = ParamLayout((4, 4, 16, 64), ("layers", "heads", "head_dim", "embed"))
    assert key.contraction_axes == (1,) and key.is_attention
    assert out.contraction_axes == (1, 2) and out.per_layer() == ParamLayout((4, 16, 64),
                                                                             ("heads", "head_dim", "embed"))
    with pytest.raises(ValueError, match=r"logical axes \('mlp', 'heads'\): neither its first"):
        _ = ParamLayout((3, 4), ("mlp", "heads")).contraction_axes
    with pytest.raises(ValueError, match="A vector"):
        _ = ParamLayout((2, 4), ("layers", "embed")).contraction_axes


def test_unannotated_parameters_are_named():
    boxed = {"dense": nn.LogicallyPartitioned(jnp.zeros((2, 3)), ("embed", "mlp")),
             "bias": {"b": jnp.zeros(3)}}
    with pytest.raises(ValueError, match=r"Parameter \['bias'\]\['b'\] has no logical axis names"):
        param_layouts(boxed)
    assert param_layouts({"dense": boxed["dense"]}) == {"dense": ParamLayout((2, 3), ("embed", "mlp"))}
