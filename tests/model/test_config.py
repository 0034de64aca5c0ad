import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embeddinggemma.checkpoint.hf_config import embedder_to_hf_config, transformer_from_hf_config
from embeddinggemma.model import (
    EmbedderConfig,
    EmbeddingModel,
    RuntimeConfig,
    embeddinggemma_300m,
    get_preset,
)
from embeddinggemma.model.masks import local_max_distance

# The released checkpoint's config.json, field for field.
RELEASED_CONFIG_JSON = {
    "architectures": ["Gemma3TextModel"], "attention_bias": False, "attn_logit_softcapping": None,
    "bos_token_id": 2, "eos_token_id": 1, "final_logit_softcapping": None, "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 768, "intermediate_size": 1152,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 4,
    "max_position_embeddings": 2048, "model_type": "gemma3_text", "num_attention_heads": 3,
    "num_hidden_layers": 24, "num_key_value_heads": 1, "pad_token_id": 0,
    "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000.0,
    "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": 512,
    "use_bidirectional_attention": True, "vocab_size": 262144,
}


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_300m_preset_has_the_released_parameter_count():
    model = EmbeddingModel(embeddinggemma_300m())
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32)))
    params = nn.unbox(shapes["params"])
    assert _count(params) == 307_581_696
    assert _count(params["transformer"]["embedding"]) == 201_326_592
    assert _count(params["transformer"]) - 201_326_592 == 101_536_512
    assert _count({k: v for k, v in params.items() if k != "transformer"}) == 4_718_592


def test_global_layers_sit_at_5_11_17_23():
    types = embeddinggemma_300m().transformer.layer_types
    assert [i for i, t in enumerate(types) if t == "global"] == [5, 11, 17, 23]


def test_released_config_json_gives_the_preset():
    assert transformer_from_hf_config(RELEASED_CONFIG_JSON) == embeddinggemma_300m().transformer
    assert local_max_distance(embeddinggemma_300m().transformer.sliding_window, causal=False) == 256


def test_float16_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="overflow"):
        RuntimeConfig(dtype="float16")
    with pytest.raises(ValueError, match="param_dtype='float16'"):
        RuntimeConfig(param_dtype="float16")


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="'hidden_size'"):
        transformer_from_hf_config({k: v for k, v in RELEASED_CONFIG_JSON.items()
                                          if k != "hidden_size"})
    with pytest.raises(ValueError, match="Unknown model preset 'huge'"):
        get_preset("huge")
    with pytest.raises(ValueError, match="pooling='max'"):
        get_preset("tiny", pooling="max")


def test_config_dict_round_trip():
    config = embeddinggemma_300m(pooling="last", sliding_window=256)
    assert type(config).from_dict(config.to_dict()) == config


def test_config_files_written_before_the_runtime_split_still_load():
    written = embeddinggemma_300m().to_dict()
    written["transformer"].update(bidirectional=True, dtype="bfloat16", param_dtype="float32", remat=True)
    assert EmbedderConfig.from_dict(written) == embeddinggemma_300m()
    written["transformer"]["bidirectional"] = False
    with pytest.raises(ValueError, match="transformer.bidirectional=false"):
        EmbedderConfig.from_dict(written)


def test_remat_takes_a_choice_or_the_old_booleans():
    assert RuntimeConfig(remat=True).remat == "full" and RuntimeConfig(remat=False).remat == "none"
    assert RuntimeConfig(remat="matmuls").remat == "matmuls"
    with pytest.raises(ValueError, match=r"remat='some' is not one of \('none', 'matmuls', 'full'\)"):
        RuntimeConfig(remat="some")


def test_run_time_settings_are_not_architecture():
    with pytest.raises(ValueError, match=r"\['dtype'\] are not architecture fields.*RuntimeConfig"):
        embeddinggemma_300m(dtype="bfloat16")
    assert {"dtype", "param_dtype", "remat", "bidirectional"}.isdisjoint(
        embeddinggemma_300m().to_dict()["transformer"])


def test_exported_hf_config_matches_the_released_file():
    exported = embedder_to_hf_config(embeddinggemma_300m())
    for key, value in RELEASED_CONFIG_JSON.items():
        assert exported[key] == value and type(exported[key]) is type(value), key


def test_the_gemma3_270m_preset_is_the_decoder_with_a_fresh_head():
    from embeddinggemma.model.config import gemma3_270m

    config = gemma3_270m()
    t = config.transformer
    assert (t.vocab_size, t.embed_dim, t.num_layers, t.num_heads, t.num_kv_heads, t.head_dim,
            t.mlp_dim, t.sliding_window) == (262_144, 640, 18, 4, 1, 256, 2048, 512)
    assert t.layer_types.count("global") == 3 and t.layer_types[5] == "global"
    assert config.projection_dims == (2560, 640)
    first = t.first_layers(6)
    assert first.num_layers == 6 and first.layer_types == t.layer_types[:6]
