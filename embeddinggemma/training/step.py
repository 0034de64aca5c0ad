"""One jitted, sharded training step: `train_step(state, batch) -> (state, metrics)`.

A batch is a dict of global arrays whose leading axis is the example:
  query, positive, negative?   [B, T] int32 token ids (right-padded)
  query_id, positive_id        [B] int32 identities; equal ids mark duplicates (false negatives)
  example_mask?                [B] bool, False on padding examples
  teacher_query, teacher_positive, teacher_negative?   [B, Dt] float32 teacher embeddings

Three ways to take the gradient of the same objective (`train.*` in the config):
  plain:          one forward and backward pass over the whole batch.
  grad caching:   embed the batch in chunks without gradients, take the loss gradient with
                  respect to the embeddings, then back-propagate chunk by chunk, recomputing
                  each chunk's forward pass. Same gradients, memory of one chunk: this is how a
                  large contrastive batch (a large pool of negatives) fits.
  accumulation:   the loss of each micro-batch on its own, gradients averaged. Each example's
                  negatives are only its micro-batch: this does NOT enlarge the pool of negatives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from embeddinggemma.model import EmbeddingModel
from embeddinggemma.training.mesh import Rules, batch_sharding
from embeddinggemma.training.objective import ENCODED_FIELDS, objective
from embeddinggemma.training.state import ENCODER

Batch = Mapping[str, jax.Array]


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


def make_loss_and_grads(model: EmbeddingModel, loss_cfg: ml_collections.ConfigDict,
                        train_cfg: ml_collections.ConfigDict) -> Callable:
    """`fn(params, batch) -> ((loss, metrics), grads)` by the configured method.

    The config is checked by `training.config.validate_config` (divisibility, exclusivity).
    """

    def embed(encoder_params, tokens):
        return model.apply({"params": encoder_params}, tokens)

    def head_loss(head_params, embeddings, batch):
        return objective(loss_cfg, embeddings, batch, head_params)

    def full_loss(params, batch):
        embeddings = {k: embed(params[ENCODER], batch[k]) for k in ENCODED_FIELDS if k in batch}
        return head_loss(_head(params), embeddings, batch)

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
        tokens = {k: split_examples(batch[k], parts) for k in ENCODED_FIELDS if k in batch}
        # 1. Embeddings of every chunk, no gradients kept.
        embeddings = {k: merge_examples(jax.lax.map(lambda t: embed(encoder, t), v))
                      for k, v in tokens.items()}
        # 2. The loss and its gradient with respect to the embeddings (and the head parameters).
        (loss, metrics), (head_grads, embedding_grads) = jax.value_and_grad(
            head_loss, argnums=(0, 1), has_aux=True)(_head(params), embeddings, batch)

        # 3. Back-propagate chunk by chunk, recomputing each chunk's forward pass.
        def backward(grads, chunk_inputs):
            chunk_tokens, cotangent = chunk_inputs
            _, vjp = jax.vjp(lambda p: embed(p, chunk_tokens), encoder)
            return jax.tree.map(jnp.add, grads, vjp(cotangent)[0]), None

        encoder_grads = jax.tree.map(jnp.zeros_like, encoder)
        for k, chunk_tokens in tokens.items():
            cotangents = split_examples(embedding_grads[k], parts)
            encoder_grads, _ = jax.lax.scan(backward, encoder_grads, (chunk_tokens, cotangents))
        return (loss, metrics), {ENCODER: encoder_grads, **head_grads}

    if train_cfg.grad_cache_chunk_size:
        return grad_cached
    if train_cfg.grad_accumulation_steps > 1:
        return accumulated
    return plain


def _head(params: Mapping) -> dict:
    """The parameters outside the encoder (e.g. the distillation projection)."""
    return {k: v for k, v in params.items() if k != ENCODER}


def make_train_step(model: EmbeddingModel, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, config: ml_collections.ConfigDict, mesh: Mesh,
                    state_shardings: Mapping, rules: Rules | None = None) -> Callable:
    """The jitted step with explicit in/out shardings; the incoming state is donated."""
    loss_and_grads = make_loss_and_grads(model, config.loss, config.train)

    def train_step(state, batch):
        (loss, metrics), grads = loss_and_grads(state["params"], batch)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {**metrics, "loss": loss, "learning_rate": schedule(state["step"]),
                   "grad_norm": optax.tree.norm(grads)}
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

    # A leading-axis sharding is a prefix for every batch leaf, whatever its rank.
    batch_in = batch_sharding(mesh, rules or config.mesh.rules, 1)
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(train_step, in_shardings=(state_shardings, batch_in),
                   out_shardings=(state_shardings, replicated), donate_argnums=0)
