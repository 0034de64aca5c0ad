"""Contrastive (NCE) loss with in-batch negatives, a weighted hard negative and duplicate masking."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from embeddinggemma.numerics import l2_normalize, masked_mean


def _same_id(ids: jax.Array | None, batch: int) -> jax.Array:
    """[B] ids -> [B, B] bool, True where examples i and j share an id (all False for None)."""
    if ids is None:
        return jnp.zeros((batch, batch), bool)
    return ids[:, None] == ids[None, :]


def contrastive_loss(
    query: jax.Array,
    positive: jax.Array,
    negative: jax.Array | None = None,
    *,
    temperature: float | jax.Array,
    hard_negative_alpha: float = 5.0,
    query_ids: jax.Array | None = None,
    positive_ids: jax.Array | None = None,
    include_own_positive: bool = True,
    example_mask: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The paper's NCE loss, averaged over valid anchors; s is cosine similarity in float32.

    L_i = -log( e^{s(q_i,p_i)/t} / ( w_i e^{s(q_i,n_i)/t} + sum_j 1_TN(i,j) e^{s(q_i,p_j)/t} ) ),
    with w_i = exp(alpha * stop_gradient(s(q_i,n_i))): the weight only scales the hard negative,
    no gradient flows through it. Without `negative` the hard-negative term is omitted.

    1_TN(i,j) drops j != i when q_i, q_j share a query id or p_i, p_j share a positive id: those
    are false negatives. `include_own_positive` decides j = i. True (the default) keeps the own
    positive in the denominator, standard InfoNCE, so L_i >= 0. False is the paper's formula read
    literally: the loss then has no lower bound and becomes unstable once negatives are easy.
    Both are available; an anchor whose denominator is empty (possible only with False) has
    nothing to contrast against and is left out of the mean.

    Args:
      query, positive: [B, D] embeddings (any length, any float dtype; normalised here).
      negative: [B, D] one hard negative per example, or None.
      temperature: t, a positive scalar.
      hard_negative_alpha: alpha in w_i.
      query_ids, positive_ids: [B] int ids marking duplicates; None means all distinct.
      include_own_positive: keep j = i in the denominator (see above).
      example_mask: [B] bool; False rows (padding of a global batch) are neither anchors nor
        negatives. None means all valid.

    Returns:
      (scalar loss, metrics): "loss"; "accuracy", the fraction of anchors whose positive scores
      above every unmasked in-batch positive and the hard negative; "positive_similarity", the mean
      s(q_i, p_i); and "hard_negative_similarity", the mean s(q_i, n_i), when `negative` is given.
    """
    batch = query.shape[0]
    valid = jnp.ones(batch, bool) if example_mask is None else example_mask.astype(bool)
    own = jnp.eye(batch, dtype=bool)
    q, p = l2_normalize(query), l2_normalize(positive)
    # similarity[i, j] = s(q_i, p_j); "highest" keeps TF32/bf16 matmul passes out of the loss.
    similarity = jnp.einsum("id,jd->ij", q, p, precision="highest")
    positive_similarity = jnp.diagonal(similarity)

    duplicate = _same_id(query_ids, batch) | _same_id(positive_ids, batch)
    in_denominator = valid[None, :] & ~(duplicate & ~own)
    if not include_own_positive:
        in_denominator = in_denominator & ~own
    logits = jnp.where(in_denominator, similarity / temperature, -jnp.inf)
    competitors = jnp.where(in_denominator & ~own, similarity, -jnp.inf)

    metrics = {}
    if negative is not None:
        hard_similarity = jnp.sum(q * l2_normalize(negative), axis=-1)
        # log(w_i e^{s/t}) = alpha * sg(s) + s/t, a logit like the others.
        log_weight = hard_negative_alpha * jax.lax.stop_gradient(hard_similarity)
        hard_logit = log_weight + hard_similarity / temperature
        logits = jnp.concatenate([logits, hard_logit[:, None]], axis=1)
        in_denominator = jnp.concatenate([in_denominator, jnp.ones((batch, 1), bool)], axis=1)
        competitors = jnp.concatenate([competitors, hard_similarity[:, None]], axis=1)
        metrics["hard_negative_similarity"] = hard_similarity

    anchor = valid & jnp.any(in_denominator, axis=1)
    # Non-anchor rows (padding, empty denominator) get finite logits: an all -inf row would give
    # NaN gradients that the masked mean cannot remove.
    logits = jnp.where(anchor[:, None], logits, 0.0)
    per_anchor = jax.nn.logsumexp(logits, axis=1) - positive_similarity / temperature
    correct = positive_similarity > jnp.max(competitors, axis=1)

    metrics |= {"accuracy": correct.astype(jnp.float32), "positive_similarity": positive_similarity}
    metrics = {name: masked_mean(value, anchor) for name, value in metrics.items()}
    loss = masked_mean(per_anchor, anchor)
    metrics["loss"] = loss
    return loss, metrics
