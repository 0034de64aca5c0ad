"""The embedding objective: weighted contrastive, spread-out and distillation terms.

The contrastive and spread-out terms are summed over the Matryoshka dims; every term and every
dimension is reported as a metric ("contrastive/512/loss", "spread_out/loss", ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections

from embeddinggemma.errors import ConfigError
from embeddinggemma.losses import (
    contrastive_loss,
    embedding_distillation_loss,
    matryoshka_loss,
    spread_out_loss,
)
from embeddinggemma.schema import ROLES
from embeddinggemma.training.state import DISTILLATION_PROJECTION

Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class EmbeddingObjective:
    """A loss over the embeddings of a batch's roles (ROLES), the kind gradient caching can split.

    `loss(head_params, embeddings, batch) -> (loss [], metrics)`: `embeddings` maps each role in
    the batch to its [B, P] embeddings; `head_params` are the trained parameters outside the encoder.
    The trainer embeds the roles with its encoder; see training/step.py.
    """

    loss: Callable[[Mapping, Mapping[str, jax.Array], Mapping[str, jax.Array]], tuple[jax.Array, Metrics]]


def embedding_objective(loss_cfg: ml_collections.ConfigDict) -> EmbeddingObjective:
    """The objective `config.loss` describes (see `objective`)."""
    return EmbeddingObjective(lambda head_params, embeddings, batch:
                              objective(loss_cfg, embeddings, batch, head_params))


def _prefixed(name: str, metrics: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    return {f"{name}/{key}": value for key, value in metrics.items()}


def contrastive_term(loss_cfg: ml_collections.ConfigDict, embeddings: Mapping[str, jax.Array],
                     batch: Mapping[str, jax.Array], head_params: Mapping) -> tuple[jax.Array, Metrics]:
    """NCE with in-batch and hardness-weighted hard negatives, over the Matryoshka dims."""
    return matryoshka_loss(
        contrastive_loss, tuple(loss_cfg.matryoshka_dims),
        {"query": embeddings["query"], "positive": embeddings["positive"],
         "negative": embeddings.get("negative")},
        temperature=loss_cfg.temperature, hard_negative_alpha=loss_cfg.hard_negative_alpha,
        query_ids=batch.get("query_id"), positive_ids=batch.get("positive_id"),
        include_own_positive=loss_cfg.include_own_positive, example_mask=batch.get("example_mask"))


def spread_out_term(loss_cfg: ml_collections.ConfigDict, embeddings: Mapping[str, jax.Array],
                    batch: Mapping[str, jax.Array], head_params: Mapping) -> tuple[jax.Array, Metrics]:
    """The spread-out regulariser on queries and positives, over the Matryoshka dims."""
    return matryoshka_loss(
        spread_out_loss, tuple(loss_cfg.matryoshka_dims),
        {"query": embeddings["query"], "positive": embeddings["positive"]},
        example_mask=batch.get("example_mask"))


def distillation_term(loss_cfg: ml_collections.ConfigDict, embeddings: Mapping[str, jax.Array],
                      batch: Mapping[str, jax.Array], head_params: Mapping) -> tuple[jax.Array, Metrics]:
    """Embedding distillation towards the batch's teacher_* embeddings, through the learned map
    when the teacher's width differs (loss.teacher_dim)."""
    teacher = {k: batch[f"teacher_{k}"] for k in ROLES if f"teacher_{k}" in batch and k in embeddings}
    if not teacher:
        raise ConfigError("loss.distillation_weight > 0 but the batch has no teacher_query, "
                          "teacher_positive or teacher_negative embeddings (set data.teacher).")
    projection = head_params.get(DISTILLATION_PROJECTION)
    _check_teacher_width(loss_cfg, teacher, embeddings["query"].shape[-1] if projection is None
                         else projection.shape[-1])
    student = {k: embeddings[k] if projection is None
               else embeddings[k] @ projection.astype(jnp.float32) for k in teacher}
    return embedding_distillation_loss(student, teacher, loss_cfg.distillation_distance,
                                       example_mask=batch.get("example_mask"))


# The terms of the embedding objective, looked up by name: term NAME is on when the config's
# `loss.NAME_weight` is above 0 (training/embedding_config.loss_config) and reported as "NAME/...".
# A new term is a loss function in losses/, one function here and its weight field.
LOSS_TERMS: dict[str, Callable[..., tuple[jax.Array, Metrics]]] = {
    "contrastive": contrastive_term,
    "spread_out": spread_out_term,
    "distillation": distillation_term,
}


def objective(loss_cfg: ml_collections.ConfigDict, embeddings: Mapping[str, jax.Array],
              batch: Mapping[str, jax.Array], head_params: Mapping
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(weighted total loss, metrics) from the student's embeddings of one global batch: the sum
    of LOSS_TERMS weighted by `loss.<term>_weight`.

    Args:
      loss_cfg: `config.loss`.
      embeddings: "query", "positive" and optionally "negative", each [B, P].
      batch: the batch (ids, example_mask, teacher_* embeddings); see training/step.py.
      head_params: parameters outside the encoder (the distillation projection, if any).
    """
    total = jnp.zeros((), jnp.float32)
    metrics = {}
    for name, term in LOSS_TERMS.items():
        weight = loss_cfg[f"{name}_weight"]
        if weight:
            loss, terms = term(loss_cfg, embeddings, batch, head_params)
            total += weight * loss
            metrics.update(_prefixed(name, terms))
    return total, metrics


def _check_teacher_width(loss_cfg: ml_collections.ConfigDict, teacher: Mapping[str, jax.Array],
                         width: int) -> None:
    """Raises ConfigError naming both widths when the teacher's embeddings are not `width` wide
    (at trace time: the shapes are static)."""
    for role, vectors in teacher.items():
        if vectors.shape[-1] != width:
            meaning = "the student's width" if not loss_cfg.teacher_dim else "a learned map to that width"
            raise ConfigError(
                f"loss.teacher_dim={loss_cfg.teacher_dim} ({meaning}, {width}) but the teacher "
                f"embeddings (teacher_{role}) are {vectors.shape[-1]} wide: set "
                f"loss.teacher_dim={vectors.shape[-1]}.")
