"""A Gemma 3 decoder as a causal language model: next-token log-probabilities and perplexity.

`perplexity` gives `{"tokens", "predicted", "nll", "perplexity"}` of a text (the command
`python -m embeddinggemma perplexity` prints it as a JSON line). The text is tokenised as
`[BOS] + pieces` (no EOS), as llama.cpp and transformers score it; `tokens` counts BOS, and the mean
negative log-likelihood `nll` (nats) is over the `predicted = tokens - 1` tokens after it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from embeddinggemma.checkpoint.decoders import LoadedDecoder
from embeddinggemma.model.masks import decoder_masks
from embeddinggemma.model.transformer import Transformer
from embeddinggemma.tokenizer import Tokenizer

# Positions whose [chunk, V] logits are materialised at once (V = 262,144 for Gemma 3).
_LOGIT_CHUNK = 128


def decoder_hidden(decoder: LoadedDecoder, tokens: np.ndarray) -> jax.Array:
    """[B, T] int token ids (right-padded with the pad id) -> [B, T, D] causal final hidden states."""
    tokens = jnp.asarray(tokens, jnp.int32)
    masks = decoder_masks(tokens != decoder.config.pad_id, decoder.config)
    return Transformer(decoder.config).apply({"params": decoder.params}, tokens, masks)


def decoder_logits(decoder: LoadedDecoder, hidden: jax.Array) -> jax.Array:
    """[B, T, D] hidden states -> [B, T, V] float32 next-token logits through the tied embedding."""
    return Transformer(decoder.config).apply({"params": decoder.params}, hidden,
                                             method=Transformer.logits)


def next_token_log_probs(decoder: LoadedDecoder, tokens: Sequence[int]) -> np.ndarray:
    """log p(tokens[t + 1] | tokens[:t + 1]) for t = 0 .. T-2, as a float64 [T - 1] array."""
    ids = np.asarray(tokens, np.int32)[None]
    hidden = decoder_hidden(decoder, ids)[0, :-1]
    targets = jnp.asarray(ids[0, 1:])
    out = []
    for start in range(0, targets.shape[0], _LOGIT_CHUNK):
        logits = decoder_logits(decoder, hidden[None, start:start + _LOGIT_CHUNK])[0]
        picked = jnp.take_along_axis(logits, targets[start:start + _LOGIT_CHUNK, None], axis=-1)[:, 0]
        out.append(np.asarray(picked - jax.nn.logsumexp(logits, axis=-1), np.float64))
    return np.concatenate(out)


def text_tokens(tokenizer: Tokenizer, text: str, max_tokens: int | None = None) -> list[int]:
    """`[BOS] + pieces` of `text`, at most `max_tokens` long (None: all)."""
    ids = [tokenizer.bos_id] + tokenizer.processor.encode(text, out_type=int)
    return ids if max_tokens is None else ids[:max_tokens]


def perplexity(decoder: LoadedDecoder, text: str, max_tokens: int | None = None) -> dict[str, float]:
    """{"tokens", "predicted", "nll", "perplexity"} of `text` under `decoder` (see the module doc)."""
    tokenizer = Tokenizer(decoder.tokenizer_path, bos_id=decoder.config.bos_id,
                          eos_id=decoder.config.eos_id, pad_id=decoder.config.pad_id)
    ids = text_tokens(tokenizer, text, max_tokens)
    if len(ids) < 2:
        raise ValueError(f"the text has {len(ids) - 1} tokens after BOS; perplexity needs at least one.")
    if len(ids) > decoder.config.max_length:
        raise ValueError(f"{len(ids)} tokens exceed the decoder's context of {decoder.config.max_length}; "
                         "pass --max-tokens.")
    nll = float(-next_token_log_probs(decoder, ids).mean())
    return {"tokens": len(ids), "predicted": len(ids) - 1, "nll": nll, "perplexity": math.exp(nll)}
