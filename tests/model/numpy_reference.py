"""An independent float64 numpy forward pass of Gemma 3, written in Hugging Face conventions.

It reads tensors by their Hugging Face names ([out, in] weights, per-layer names), uses the
rotate-half rotary form and the reference's window rule `|i - j| < sliding_window // 2 + 1`, and
processes one unpadded sequence at a time, so padding, scanning and layout are all checked.
"""

from __future__ import annotations

import numpy as np


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * (1.0 + weight)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def rotate(x, positions, base):
    """x [T, heads, H] -> rotated by position, rotate-half form."""
    H = x.shape[-1]
    inv_freq = 1.0 / base ** (np.arange(0, H, 2) / H)
    angles = np.concatenate([positions[:, None] * inv_freq] * 2, axis=-1)[:, None, :]
    rotated_half = np.concatenate([-x[..., H // 2:], x[..., : H // 2]], axis=-1)
    return x * np.cos(angles) + rotated_half * np.sin(angles)


def allowed(T, is_local, bidirectional, sliding_window):
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    ok = np.ones((T, T), bool) if bidirectional else (j <= i)
    if is_local:
        ok &= (np.abs(i - j) < sliding_window // 2 + 1) if bidirectional else (i - j < sliding_window)
    return ok


def attention(w, prefix, cfg, x, mask, positions=None, memory=None):
    """One attention sublayer read from `{prefix}.{q,k,v,o}_proj` / `{q,k}_norm`: self-attention
    rotated at `positions`, or, with `memory` [S, D], cross-attention without rotary. -> [T, D]."""
    N, K, H, eps = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.norm_eps
    source = x if memory is None else memory
    T, S = len(x), len(source)
    q = (x @ w[f"{prefix}.q_proj.weight"].T).reshape(T, N, H)
    k = (source @ w[f"{prefix}.k_proj.weight"].T).reshape(S, K, H)
    v = (source @ w[f"{prefix}.v_proj.weight"].T).reshape(S, K, H)
    q = rms_norm(q, w[f"{prefix}.q_norm.weight"], eps)
    k = rms_norm(k, w[f"{prefix}.k_norm.weight"], eps)
    if memory is None:
        q, k = rotate(q, *positions), rotate(k, *positions)
    heads = []
    for n in range(N):
        kv = n // (N // K)
        scores = q[:, n] @ k[:, kv].T * cfg.query_pre_attn_scalar ** -0.5
        scores = np.where(mask, scores, -np.inf)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        heads.append(probs @ v[:, kv])
    return np.concatenate(heads, axis=-1) @ w[f"{prefix}.o_proj.weight"].T


def hidden_states(w, cfg, ids, bidirectional=True, memory=None):
    """w: Hugging Face tensor dict; cfg: TransformerConfig; ids: [T] -> final hidden [T, D].

    With `memory` (unpadded encoder outputs [S, D]) every layer also has T5Gemma's cross-attention
    sublayer after the self-attention, read from `layers.{i}.cross_attn.*` with its norms
    `pre_cross_attn_layernorm` and `post_cross_attn_layernorm`.
    """
    w = {k: np.asarray(v, np.float64) for k, v in w.items()}
    T, eps = len(ids), cfg.norm_eps
    positions = np.arange(T, dtype=np.float64)
    x = w["embed_tokens.weight"][ids] * np.sqrt(cfg.embed_dim)
    for layer, kind in enumerate(cfg.layer_types):
        p = lambda name, layer=layer: w[f"layers.{layer}.{name}"]
        local = kind == "local"
        base = cfg.local_rope_base if local else cfg.global_rope_base
        h = rms_norm(x, p("input_layernorm.weight"), eps)
        mask = allowed(T, local, bidirectional, cfg.sliding_window)
        attn = attention(w, f"layers.{layer}.self_attn", cfg, h, mask, positions=(positions, base))
        x = x + rms_norm(attn, p("post_attention_layernorm.weight"), eps)
        if memory is not None:
            h = rms_norm(x, p("pre_cross_attn_layernorm.weight"), eps)
            cross = attention(w, f"layers.{layer}.cross_attn", cfg, h, np.ones((T, len(memory)), bool),
                              memory=np.asarray(memory, np.float64))
            x = x + rms_norm(cross, p("post_cross_attn_layernorm.weight"), eps)
        h = rms_norm(x, p("pre_feedforward_layernorm.weight"), eps)
        mlp = gelu_tanh(h @ p("mlp.gate_proj.weight").T) * (h @ p("mlp.up_proj.weight").T)
        x = x + rms_norm(mlp @ p("mlp.down_proj.weight").T, p("post_feedforward_layernorm.weight"), eps)
    return rms_norm(x, w["norm.weight"], eps)


def encoder_decoder_logits(encoder_w, decoder_w, cfg, encoder_ids, decoder_ids):
    """T5Gemma-style: a bidirectional encoder over `encoder_ids` [S], a causal decoder with
    cross-attention over `decoder_ids` [T], logits through the decoder's (shared) embedding table.
    -> [T, V]."""
    memory = hidden_states(encoder_w, cfg, encoder_ids, bidirectional=True)
    hidden = hidden_states(decoder_w, cfg, decoder_ids, bidirectional=False, memory=memory)
    return hidden @ np.asarray(decoder_w["embed_tokens.weight"], np.float64).T


def embed(w, dense, cfg, ids):
    """Mean pooling, Dense layers given as [out, in] arrays, L2 normalisation. -> [P]."""
    pooled = hidden_states(w, cfg, ids).mean(axis=0)
    for weight in dense:
        pooled = np.asarray(weight, np.float64) @ pooled
    return pooled / np.linalg.norm(pooled)
