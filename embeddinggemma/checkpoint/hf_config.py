"""Gemma 3 architectures to and from Hugging Face's `config.json` (Gemma3TextModel / gemma3_text):
the importers of sentence-transformers directories and decoders read it, the exporters write it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from embeddinggemma.model.config import GLOBAL, LOCAL, EmbedderConfig, TransformerConfig, layer_pattern

_HF_LAYER_TYPES = {"sliding_attention": LOCAL, "full_attention": GLOBAL}


def transformer_from_hf_config(hf: Mapping[str, Any], **overrides: Any) -> TransformerConfig:
    """The TransformerConfig of a Hugging Face Gemma 3 text `config.json` dictionary.

    `use_bidirectional_attention` is not architecture (it is the masks); the importer of a
    model checks it against the use it makes of the model.
    """
    try:
        if "layer_types" in hf:
            layer_types = tuple(_HF_LAYER_TYPES[t] for t in hf["layer_types"])
        else:
            layer_types = layer_pattern(hf["num_hidden_layers"], hf["sliding_window_pattern"] - 1)
        if hf.get("rope_scaling"):
            raise ValueError(f"rope_scaling={hf['rope_scaling']} is not supported.")
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            if hf.get(key) is not None:
                raise ValueError(f"{key}={hf[key]} is not supported (the model has none).")
        fields = dict(
            vocab_size=hf["vocab_size"],
            embed_dim=hf["hidden_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"],
            num_kv_heads=hf["num_key_value_heads"],
            head_dim=hf["head_dim"],
            mlp_dim=hf["intermediate_size"],
            layer_types=layer_types,
            sliding_window=hf["sliding_window"],
            local_rope_base=float(hf.get("rope_local_base_freq", 10_000.0)),
            global_rope_base=float(hf.get("rope_theta", 1_000_000.0)),
            query_pre_attn_scalar=float(hf["query_pre_attn_scalar"]),
            norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            max_length=hf.get("max_position_embeddings", 2048),
            pad_id=hf.get("pad_token_id", 0),
            eos_id=_first(hf.get("eos_token_id", 1)),
            bos_id=hf.get("bos_token_id", 2),
        )
    except KeyError as e:
        raise ValueError(f"Gemma 3 config.json is missing the field {e.args[0]!r}.") from None
    if hf.get("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
        raise ValueError(f"hidden_activation={hf['hidden_activation']!r}; only tanh GELU is supported.")
    fields.update(overrides)
    return TransformerConfig(**fields)


def transformer_to_hf_config(config: TransformerConfig, *, bidirectional: bool) -> dict[str, Any]:
    """The Hugging Face Gemma 3 text `config.json` dictionary for this architecture, used as
    an encoder (`bidirectional`) or a causal decoder."""
    hf_types = {ours: theirs for theirs, ours in _HF_LAYER_TYPES.items()}
    return {
        "architectures": ["Gemma3TextModel"],
        "model_type": "gemma3_text",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
        "bos_token_id": config.bos_id,
        "eos_token_id": config.eos_id,
        "pad_token_id": config.pad_id,
        "head_dim": config.head_dim,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": config.embed_dim,
        "intermediate_size": config.mlp_dim,
        "layer_types": [hf_types[t] for t in config.layer_types],
        "max_position_embeddings": config.max_length,
        "num_attention_heads": config.num_heads,
        "num_hidden_layers": config.num_layers,
        "num_key_value_heads": config.num_kv_heads,
        # transformers validates this field as an int.
        "query_pre_attn_scalar": _int_if_whole(config.query_pre_attn_scalar),
        "rms_norm_eps": config.norm_eps,
        "rope_local_base_freq": config.local_rope_base,
        "rope_scaling": None,
        "rope_theta": config.global_rope_base,
        "sliding_window": config.sliding_window,
        "use_bidirectional_attention": bidirectional,
        "vocab_size": config.vocab_size,
        "dtype": "float32",
    }


def embedder_to_hf_config(config: EmbedderConfig) -> dict[str, Any]:
    """The Hugging Face `config.json` of an embedder's encoder: bidirectional, as an embedder is."""
    return transformer_to_hf_config(config.transformer, bidirectional=True)


def _int_if_whole(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _first(value: int | list[int]) -> int:
    return value[0] if isinstance(value, list) else value
