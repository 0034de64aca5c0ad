"""Matryoshka: a loss summed over nested, re-normalised prefixes of the embeddings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from embeddinggemma.numerics import truncate_embeddings

LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def matryoshka_loss(
    loss_fn: LossFn,
    dims: Sequence[int],
    embeddings: Mapping[str, jax.Array | None],
    **kwargs: Any,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Sum of `loss_fn` over prefix dims, without weights (the paper uses 768, 512, 256, 128).

    Args:
      loss_fn: returns (scalar loss, scalar metrics), e.g. `contrastive_loss`.
      dims: prefix widths; each must be in 1..D.
      embeddings: keyword arguments of `loss_fn` holding [B, D] embeddings; each is truncated to
        [B, dim] and re-normalised. None values (an absent hard negative) pass as None.
      **kwargs: every other argument of `loss_fn` (ids, masks, temperature), passed untouched.

    Returns:
      (sum over dims of the loss, metrics): each metric of `loss_fn` as "{dim}/{name}",
      plus "loss", the sum.
    """
    if len(set(dims)) != len(dims):
        raise ValueError(f"Matryoshka dims {tuple(dims)} repeat a dim.")
    total = jnp.zeros((), jnp.float32)
    metrics = {}
    for dim in dims:
        truncated = {name: None if x is None else truncate_embeddings(x, dim)
                     for name, x in embeddings.items()}
        loss, dim_metrics = loss_fn(**truncated, **kwargs)
        total = total + loss
        metrics.update({f"{dim}/{name}": value for name, value in dim_metrics.items()})
    metrics["loss"] = total
    return total, metrics
