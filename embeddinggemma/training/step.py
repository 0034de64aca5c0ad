"""The gradient of an objective and one jitted, sharded step: `train_step(state, batch) -> (state, metrics)`.

An embedding batch is a dict of global arrays whose leading axis is the example:
  query, positive, negative?   [B, T] int32 token ids (right-padded)
  query_id, positive_id        [B] int32 identities; equal ids mark duplicates (false negatives)
  example_mask?                [B] bool, False on padding examples
  teacher_query, teacher_positive, teacher_negative?   [B, Dt] float32 teacher embeddings
Another objective (e.g. UL2 denoising: token ids and targets) brings its own batch; the step only
needs every leaf's leading axis to be the example.

Three ways to take the gradient of the same objective (`train.*` in the config):
  plain:          one forward and backward pass over the whole batch.
  grad caching:   embed the batch in chunks without gradients, take the loss gradient with
                  respect to the embeddings, then back-propagate chunk by chunk, recomputing
                  each chunk's forward pass. Same gradients, memory of one chunk: this is how a
                  large contrastive batch (a large pool of negatives) fits. Only an
                  EmbeddingObjective can be split so: its loss sees the encoder only through the
                  embeddings.
  accumulation:   the loss of each micro-batch on its own, gradients averaged. Each example's
                  negatives are only its micro-batch: this does NOT enlarge the pool of negatives.

A parameter transform (e.g. quantisation-aware training's fake quantisation, straight-through) is
applied to the parameters inside the loss, so the gradient flows through it to the stored
parameters. It acts on the encoder's and the head's parameters separately (it must not mix them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from embeddinggemma import cpu_kernels
from embeddinggemma.errors import ConfigError
from embeddinggemma.schema import ROLES
from embeddinggemma.training.mesh import Rules, batch_sharding, mesh_platform, tracing_under
from embeddinggemma.training.objective import EmbeddingObjective, Metrics
from embeddinggemma.training.state import ENCODER

Batch = Mapping[str, jax.Array]
Params = Mapping[str, Any]
# (params, batch) -> (loss [], metrics): an objective over all trained parameters.
ParamsObjective = Callable[[Params, Batch], tuple[jax.Array, Metrics]]
Objective = EmbeddingObjective | ParamsObjective
EmbedFn = Callable[[Params, jax.Array], jax.Array]  # (encoder params, [B, T] tokens) -> [B, P]
ParamTransform = Callable[[Params], Params]
LossAndGrads = Callable[[Params, Batch], tuple[tuple[jax.Array, Metrics], Params]]


def split_examples(x: jax.Array, parts: int) -> jax.Array:
    """[B, ...] -> [parts, B / parts, ...]; part m holds examples m, m + parts, m + 2 parts, ...

    Striding (rather than contiguous blocks) keeps every part spread over all data-parallel
    devices when the batch axis is sharded.
    """
    if x.shape[0] % parts:
        raise ValueError(f"batch of {x.shape[0]} examples does not split into {parts} equal parts.")
    return x.reshape(x.shape[0] // parts, parts, *x.shape[1:]).swapaxes(0, 1)


def merge_examples(x: jax.Array) -> jax.Array:
    """The inverse of `split_examples`: [parts, B / parts, ...] -> [B, ...]."""
    return x.swapaxes(0, 1).reshape(-1, *x.shape[2:])


def make_loss_and_grads(objective: Objective, embed: EmbedFn, train_cfg: ml_collections.ConfigDict,
                        param_transform: ParamTransform | None = None) -> LossAndGrads:
    """`fn(params, batch) -> ((loss, metrics), grads)` by the method `train_cfg` names.

    Args:
      objective: an EmbeddingObjective (the encoder `embed`s every role in the batch first) or
        any `(params, batch) -> (loss, metrics)`.
      embed: the encoder, used by an EmbeddingObjective.
      train_cfg: `config.train`, checked by `training.config.validate_config` (divisibility,
        exclusivity).
      param_transform: applied to the parameters inside the loss; None = identity.
    """
    transform = param_transform or (lambda params: params)

    def transformed_encoder(params, encoder_params):
        return transform({**params, ENCODER: encoder_params})[ENCODER]

    def full_loss(params, batch):
        params = transform(params)
        if not isinstance(objective, EmbeddingObjective):
            return objective(params, batch)
        return objective.loss(_head(params), embed_roles(embed, params[ENCODER], batch), batch)

    def plain(params, batch):
        return jax.value_and_grad(full_loss, has_aux=True)(params, batch)

    def accumulated(params, batch):
        steps = train_cfg.grad_accumulation_steps
        micro = jax.tree.map(lambda x: split_examples(x, steps), dict(batch))

        def one(carry, micro_batch):
            out = plain(params, micro_batch)
            return jax.tree.map(jnp.add, carry, out), None

        zeros = jax.tree.map(jnp.zeros_like,
                             jax.eval_shape(plain, params, jax.tree.map(lambda x: x[0], micro)))
        total, _ = jax.lax.scan(one, zeros, micro)
        return jax.tree.map(lambda x: x / steps, total)

    def grad_cached(params, batch):
        chunk = train_cfg.grad_cache_chunk_size
        parts = batch["query"].shape[0] // chunk
        encoder = params[ENCODER]
        forward_encoder = transformed_encoder(params, encoder)
        tokens = {k: split_examples(batch[k], parts) for k in ROLES if k in batch}
        # 1. Embeddings of every chunk, no gradients kept.
        embeddings = {k: merge_examples(jax.lax.map(lambda t: embed(forward_encoder, t), v))
                      for k, v in tokens.items()}

        # 2. The loss and its gradient with respect to the embeddings (and the head parameters).
        def head_loss(head_params, embeddings):
            return objective.loss(_head(transform({**head_params, ENCODER: encoder})), embeddings, batch)

        (loss, metrics), (head_grads, embedding_grads) = jax.value_and_grad(
            head_loss, argnums=(0, 1), has_aux=True)(_head(params), embeddings)

        # 3. Back-propagate chunk by chunk, recomputing each chunk's forward pass.
        def backward(grads, chunk_inputs):
            chunk_tokens, cotangent = chunk_inputs
            _, vjp = jax.vjp(lambda p: embed(transformed_encoder(params, p), chunk_tokens), encoder)
            return jax.tree.map(jnp.add, grads, vjp(cotangent)[0]), None

        encoder_grads = jax.tree.map(jnp.zeros_like, encoder)
        for k, chunk_tokens in tokens.items():
            cotangents = split_examples(embedding_grads[k], parts)
            encoder_grads, _ = jax.lax.scan(backward, encoder_grads, (chunk_tokens, cotangents))
        return (loss, metrics), {ENCODER: encoder_grads, **head_grads}

    if train_cfg.grad_cache_chunk_size:
        if not isinstance(objective, EmbeddingObjective):
            raise ConfigError("train.grad_cache_chunk_size > 0 needs an objective over embeddings "
                              "(EmbeddingObjective); this objective takes the parameters: set it to 0.")
        return grad_cached
    if train_cfg.grad_accumulation_steps > 1:
        return accumulated
    return plain


def embed_roles(embed: EmbedFn, encoder_params: Params, batch: Batch) -> dict[str, jax.Array]:
    """The embeddings of every role in the batch, roles of one token shape in one encoder call.

    One call makes one embedding lookup and one [V, D] gradient of the token table where a call per
    role makes one each. The roles are interleaved example by example ([B, R, T] -> [B * R, T]), so
    a batch sharded over examples stays sharded the same way, with no data moved between devices.
    """
    by_shape: dict[tuple, list[str]] = {}
    for role in ROLES:
        if role in batch:
            by_shape.setdefault(batch[role].shape, []).append(role)
    embeddings = {}
    for (B, *rest), roles in by_shape.items():
        tokens = jnp.stack([batch[r] for r in roles], axis=1).reshape(B * len(roles), *rest)
        together = embed(encoder_params, tokens).reshape(B, len(roles), -1)
        embeddings.update({r: together[:, i] for i, r in enumerate(roles)})
    return embeddings


def _head(params: Mapping) -> dict:
    """The parameters outside the encoder (e.g. the distillation projection)."""
    return {k: v for k, v in params.items() if k != ENCODER}


def make_train_step(loss_and_grads: LossAndGrads, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, mesh: Mesh, state_shardings: Mapping,
                    rules: Rules) -> Callable:
    """The jitted step with explicit in/out shardings; the incoming state is donated.

    `step(state, batch) -> (state, metrics)`: metrics are the objective's plus "loss",
    "learning_rate" (of this step) and "grad_norm", replicated scalars.
    """

    def train_step(state, batch):
        with tracing_under(mesh, rules):
            (loss, metrics), grads = loss_and_grads(state["params"], batch)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {**metrics, "loss": loss, "learning_rate": schedule(state["step"]),
                   "grad_norm": optax.tree.norm(grads)}
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

    # A leading-axis sharding is a prefix for every batch leaf, whatever its rank.
    batch_in = batch_sharding(mesh, rules, 1)
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(train_step, in_shardings=(state_shardings, batch_in),
                   out_shardings=(state_shardings, replicated), donate_argnums=0,
                   compiler_options=cpu_kernels.compiler_options(mesh_platform(mesh)))
