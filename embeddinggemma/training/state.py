"""The train state `{"step", "params", "opt_state"}`, created directly with its shardings."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from embeddinggemma.model import EmbeddingModel
from embeddinggemma.training.mesh import Rules, logical_sharding

ENCODER = "embedder"
DISTILLATION_PROJECTION = "distillation_projection"


def init_boxed_params(model: EmbeddingModel, teacher_dim: int, rng: jax.Array) -> dict:
    """Fresh parameters of `model` and the head, still boxed with their logical axis names.

    `{"embedder": ...}`, plus `"distillation_projection"` [P, teacher_dim], a learned linear map
    from the student's width to the teacher's, when the two differ (teacher_dim 0 = same).
    """
    model_rng, projection_rng = jax.random.split(rng)
    tokens = jnp.ones((1, 8), jnp.int32)
    params = {ENCODER: model.init(model_rng, tokens)["params"]}
    width = model.config.output_dim
    if teacher_dim and teacher_dim != width:
        weight = jax.random.normal(projection_rng, (width, teacher_dim), jnp.float32) * width ** -0.5
        params[DISTILLATION_PROJECTION] = nn.LogicallyPartitioned(
            weight.astype(model.runtime.weight_dtype), ("embed", None))
    return params


def train_state_shardings(abstract_boxed_params: Mapping, tx: optax.GradientTransformation,
                          mesh: Mesh, rules: Rules) -> dict:
    """NamedShardings of every leaf of the train state.

    Optimiser leaves shaped like their parameter share its sharding; others (counts, factored
    second moments) are replicated.
    """
    replicated = NamedSharding(mesh, PartitionSpec())
    params = logical_sharding(abstract_boxed_params, mesh, rules)
    abstract = nn.unbox(abstract_boxed_params)
    opt_state = optax.tree_map_params(
        tx,
        lambda leaf, sharding, param: sharding if leaf.shape == param.shape else replicated,
        jax.eval_shape(tx.init, abstract), params, abstract,
        transform_non_params=lambda _: replicated,
    )
    return {"step": replicated, "params": params, "opt_state": opt_state}


def create_train_state(init_boxed: Callable[[jax.Array], Mapping], tx: optax.GradientTransformation,
                       mesh: Mesh, rules: Rules, rng: jax.Array) -> tuple[dict, dict]:
    """(state, shardings), initialised directly on the devices with its shardings.

    `init_boxed(rng)` gives the trained parameters boxed with their logical axis names (e.g.
    `init_boxed_params`). The random values do not depend on the mesh (JAX's partitionable
    threefry), so the same seed gives the same parameters on any mesh shape.
    """
    boxed = jax.eval_shape(init_boxed, rng)
    shardings = train_state_shardings(boxed, tx, mesh, rules)
    init = functools.partial(fresh_state, init_boxed, tx)
    return jax.jit(init, out_shardings=shardings)(rng), shardings


def fresh_state(init_boxed: Callable[[jax.Array], Mapping], tx: optax.GradientTransformation,
                rng: jax.Array) -> dict:
    """`{"step": 0, "params", "opt_state"}` of a fresh run, traceable (jit it, or `jax.eval_shape`
    it for the state's shapes without memory)."""
    params = nn.unbox(init_boxed(rng))
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
