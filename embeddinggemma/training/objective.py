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

from embeddinggemma.losses import (
    contrastive_loss,
    embedding_distillation_loss,
    matryoshka_loss,
    spread_out_loss,
)
from embeddinggemma.schema import ROLES
from embeddinggemma.training.config import ConfigError
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


def objective(loss_cfg: ml_collections.ConfigDict, embeddings: Mapping[str, jax.Array],
              batch: Mapping[str, jax.Array], head_params: Mapping
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(weighted total loss, metrics) from the student's embeddings of one global batch.

    Args:
      loss_cfg: `config.loss`.
      embeddings: "query", "positive" and optionally "negative", each [B, P].
      batch: the batch (ids, example_mask, teacher_* embeddings); see training/step.py.
      head_params: parameters outside the encoder (the distillation projection, if any).
    """
    mask = batch.get("example_mask")
    dims = tuple(loss_cfg.matryoshka_dims)
    total = jnp.zeros((), jnp.float32)
    metrics = {}
    if loss_cfg.contrastive_weight:
        loss, terms = matryoshka_loss(
            contrastive_loss, dims,
            {"query": embeddings["query"], "positive": embeddings["positive"],
             "negative": embeddings.get("negative")},
            temperature=loss_cfg.temperature, hard_negative_alpha=loss_cfg.hard_negative_alpha,
            query_ids=batch.get("query_id"), positive_ids=batch.get("positive_id"),
            include_own_positive=loss_cfg.include_own_positive, example_mask=mask)
        total += loss_cfg.contrastive_weight * loss
        metrics.update(_prefixed("contrastive", terms))
    if loss_cfg.spread_out_weight:
        loss, terms = matryoshka_loss(
            spread_out_loss, dims,
            {"query": embeddings["query"], "positive": embeddings["positive"]}, example_mask=mask)
        total += loss_cfg.spread_out_weight * loss
        metrics.update(_prefixed("spread_out", terms))
    if loss_cfg.distillation_weight:
        teacher = {k: batch[f"teacher_{k}"] for k in ROLES if f"teacher_{k}" in batch and k in embeddings}
        if not teacher:
            raise ConfigError("loss.distillation_weight > 0 but the batch has no teacher_query, "
                              "teacher_positive or teacher_negative embeddings (set data.teacher).")
        projection = head_params.get(DISTILLATION_PROJECTION)
        _check_teacher_width(loss_cfg, teacher, embeddings["query"].shape[-1] if projection is None
                             else projection.shape[-1])
        student = {k: embeddings[k] if projection is None
                   else embeddings[k] @ projection.astype(jnp.float32) for k in teacher}
        loss, terms = embedding_distillation_loss(student, teacher, loss_cfg.distillation_distance,
                                                  example_mask=mask)
        total += loss_cfg.distillation_weight * loss
        metrics.update(_prefixed("distillation", terms))
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
