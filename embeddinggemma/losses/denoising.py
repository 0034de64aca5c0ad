"""The UL2 denoising loss: the cross-entropy of a decoder's target tokens under its logits, whole or
a chunk of positions at a time (a 262,144-piece vocabulary makes [B, T, V] logits the largest
activation of an adaptation by far). The adaptation stage (training/denoising.py) averages the
summed negative log-likelihood over the batch's target tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def target_statistics(logits: jax.Array, targets: jax.Array, pad_id: int
                      ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per example [B]: (summed negative log-likelihood, target tokens, correctly predicted tokens)
    of `targets` [B, T] under `logits` [B, T, V]; pad targets count for nothing."""
    weight = (targets != pad_id).astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return (nll * weight).sum(-1), weight.sum(-1), (correct * weight).sum(-1)


def chunked_target_statistics(logits_fn: Callable[[jax.Array], jax.Array], hidden: jax.Array,
                              targets: jax.Array, pad_id: int, chunk: int
                              ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`target_statistics(logits_fn(hidden), targets, pad_id)` without all [B, T, V] logits at once:
    the T positions go in chunks of `chunk`, one after another, and each chunk's logits are
    recomputed in the backward pass, so memory holds [B, chunk, V] (a 262,144-piece vocabulary at
    B x T = 16 x 512 would be 8.6 GB of float32 logits, and as much again for their gradient)."""
    b, t, d = hidden.shape
    n = -(-t // chunk)
    hidden = jnp.pad(hidden, ((0, 0), (0, n * chunk - t), (0, 0)))
    targets = jnp.pad(targets, ((0, 0), (0, n * chunk - t)), constant_values=pad_id)
    hidden = hidden.reshape(b, n, chunk, d).swapaxes(0, 1)
    targets = targets.reshape(b, n, chunk).swapaxes(0, 1)

    @jax.checkpoint
    def one_chunk(args):
        h, y = args
        return target_statistics(logits_fn(h), y, pad_id)

    return tuple(s.sum(0) for s in jax.lax.map(one_chunk, (hidden, targets)))
