import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.hf_gemma3 import expected_shapes, transformer_from_hf, transformer_to_hf
from embeddinggemma.model import embeddinggemma_300m


def test_round_trip_is_exact(tiny_config, tiny_params):
    hf = transformer_to_hf(tiny_params["transformer"], tiny_config.transformer)
    assert hf["layers.0.self_attn.q_proj.weight"].shape == (4 * 16, 64)  # [N*H, D] like HF
    assert hf["layers.2.self_attn.o_proj.weight"].shape == (64, 4 * 16)
    back = transformer_from_hf(hf, tiny_config.transformer)
    jax.tree.map(np.testing.assert_array_equal, back, jax.device_get(tiny_params["transformer"]))


def test_prefix_is_stripped(tiny_config, tiny_params):
    hf = transformer_to_hf(tiny_params["transformer"], tiny_config.transformer)
    prefixed = {f"model.{k}": v for k, v in hf.items()}
    back = transformer_from_hf(prefixed, tiny_config.transformer, prefix="model.")
    np.testing.assert_array_equal(back["embedding"], hf["embed_tokens.weight"])


def test_every_problem_is_named(tiny_config, tiny_params):
    hf = transformer_to_hf(tiny_params["transformer"], tiny_config.transformer)
    del hf["layers.1.mlp.up_proj.weight"]
    hf["layers.0.self_attn.k_proj.weight"] = np.zeros((5, 64), np.float32)
    hf["lm_head.weight"] = np.zeros((3,), np.float32)
    with pytest.raises(ValueError) as error:
        transformer_from_hf(hf, tiny_config.transformer, source="weights.safetensors")
    message = str(error.value)
    assert "weights.safetensors" in message
    assert "missing tensor layers.1.mlp.up_proj.weight" in message
    assert "layers.0.self_attn.k_proj.weight has shape [5, 64], expected [32, 64]" in message
    assert "unexpected tensor lm_head.weight" in message


def test_release_shapes_come_from_the_layout():
    D, F, H, N, K, V = 768, 1152, 256, 3, 1, 262_144
    assert expected_shapes(embeddinggemma_300m().transformer) == {
        ("embedding",): (V, D),
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


def test_hf_tensors_are_out_by_in_with_heads_merged(tiny_config, tiny_params):
    ours = jax.device_get(tiny_params["transformer"])
    hf = transformer_to_hf(ours, tiny_config.transformer)
    attn, mlp = ours["layers"]["attn"], ours["layers"]["mlp"]
    D = tiny_config.transformer.embed_dim
    np.testing.assert_array_equal(hf["layers.1.self_attn.q_proj.weight"], attn["query"][1].reshape(D, -1).T)
    np.testing.assert_array_equal(hf["layers.1.self_attn.v_proj.weight"], attn["value"][1].reshape(D, -1).T)
    np.testing.assert_array_equal(hf["layers.1.self_attn.o_proj.weight"], attn["out"][1].reshape(-1, D).T)
    np.testing.assert_array_equal(hf["layers.1.mlp.down_proj.weight"], mlp["down"][1].T)
    np.testing.assert_array_equal(hf["layers.1.self_attn.q_norm.weight"], attn["query_norm"]["scale"][1])
    np.testing.assert_array_equal(hf["embed_tokens.weight"], ours["embedding"])
