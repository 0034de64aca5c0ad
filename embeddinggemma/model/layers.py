"""Small building blocks: parameters with logical axis names, RMSNorm, the GeGLU feed-forward."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

default_init = nn.initializers.normal(stddev=0.02)

# Logical axis names that `layout.py` reads a parameter's role from (the others, such as
# `heads`, `head_dim`, `mlp` and `projection`, only name a dimension for sharding).
EMBED = "embed"  # the residual stream's width
VOCAB = "vocab"  # the token table's rows: looked up, never summed over
LAYERS = "layers"  # the leading axis of the scanned blocks' stacked parameters
ATTENTION_AXES = ("heads", "kv_heads")
# Logical axes of activations, for `constrain`: the example axis is `batch` (as a batch's), the
# others are named apart from the parameters' so that the rules keep a parameter's sharded `embed`
# (FSDP) off the activations: each layer's weights are gathered, activations stay split by example.
RESIDUAL = ("batch", "activation_length", "activation_embed")  # [B, T, D]
MLP_HIDDEN = ("batch", "activation_length", "activation_mlp")  # [B, T, F]
LOGITS = ("batch", "activation_length", "activation_vocab")  # [B, T, V]
# The rows a token lookup returns [B, T, D], split as the table's width is and by example over the
# rest of the batch axes: each device reads its own slice of the table, and one all-to-all (its
# gradient likewise) moves the rows to the residual stream's layout, where every device gathering
# the whole batch's rows (and their gradient) would move a batch of activations per lookup.
LOOKUP = ("lookup_batch", "activation_length", EMBED)


def constrain(x: jax.Array, axes: Sequence[str]) -> jax.Array:
    """`x` laid out on the mesh by its logical `axes` under the trainer's sharding rules; unchanged
    (no constraint) outside a `training.mesh.tracing_under` context, e.g. on one device."""
    return nn.with_logical_constraint(x, tuple(axes))


def logical_param(module: nn.Module, name: str, shape: Sequence[int], axes: Sequence[str],
                  dtype: jnp.dtype, init=default_init) -> jax.Array:
    """Declares a parameter annotated with logical axis names (mapped to a mesh by config rules)."""
    return module.param(name, nn.with_logical_partitioning(init, tuple(axes)), tuple(shape), dtype)


class RMSNorm(nn.Module):
    """`x * rsqrt(mean(x^2) + eps) * (1 + scale)`, computed in float32, scale initialised to 0."""

    eps: float = 1e-6
    axis_name: str = "embed"
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = logical_param(self, "scale", (x.shape[-1],), (self.axis_name,), self.param_dtype,
                              nn.initializers.zeros_init())
        return _rms_norm(x, scale, self.eps)


# Elementwise work recomputed in the backward pass (jax.checkpoint, nothing saved inside), whatever
# the model's remat: the backward pass then keeps only the inputs, in the compute dtype, where it
# would keep every float32 intermediate (several per norm, eight of the feed-forward's width for the
# tanh GELU), the bulk of a layer's saved values without remat. Recomputing them costs no products.
@functools.partial(jax.checkpoint, static_argnums=(2,), prevent_cse=False)
def _rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
    return (normed * (1.0 + scale.astype(jnp.float32))).astype(x.dtype)


@functools.partial(jax.checkpoint, prevent_cse=False)
def _geglu(both: jax.Array) -> jax.Array:
    """[..., 2, F] gate and up products -> [..., F] `gelu_tanh(gate) * up`."""
    return jax.nn.gelu(both[..., 0, :], approximate=True) * both[..., 1, :]


class FeedForward(nn.Module):
    """GeGLU: `down(gelu_tanh(gate(x)) * up(x))`, no biases. [B, T, D] -> [B, T, D]."""

    embed_dim: int
    mlp_dim: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        D, F = self.embed_dim, self.mlp_dim
        gate = logical_param(self, "gate", (D, F), ("embed", "mlp"), self.param_dtype)
        up = logical_param(self, "up", (D, F), ("embed", "mlp"), self.param_dtype)
        down = logical_param(self, "down", (F, D), ("mlp", "embed"), self.param_dtype)
        x = x.astype(self.dtype)
        # Gate and up in one product, stacked so that a sharded `mlp` axis stays where it is: on CPU
        # fewer, larger products are faster (measured in README, Model notes).
        both = jnp.einsum("BTD,DGF->BTGF", x, jnp.stack([gate, up], axis=1).astype(self.dtype))
        hidden = constrain(_geglu(both), MLP_HIDDEN)
        return constrain(jnp.einsum("BTF,FD->BTD", hidden, down.astype(self.dtype)), RESIDUAL)


class TokenEmbedding(nn.Module):
    """The token table [V, D], shared by the input (`encode`) and the tied output logits (`decode`)."""

    vocab_size: int
    embed_dim: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.embedding = logical_param(self, "embedding", (self.vocab_size, self.embed_dim),
                                       ("vocab", "embed"), self.param_dtype)

    def encode(self, tokens: jax.Array) -> jax.Array:
        """[B, T] int token ids -> [B, T, D] vectors scaled by sqrt(D), in `dtype`."""
        # The scale is rounded to the parameter dtype first, as the reference does.
        scale = jnp.asarray(self.embed_dim ** 0.5, self.param_dtype)
        rows = constrain(jnp.take(self.embedding, tokens, axis=0), LOOKUP)
        return constrain((rows * scale).astype(self.dtype), RESIDUAL)

    def decode(self, hidden: jax.Array) -> jax.Array:
        """[B, T, D] hidden states -> [B, T, V] float32 logits over the vocabulary."""
        table = self.embedding.astype(self.dtype)
        logits = jnp.einsum("BTD,VD->BTV", hidden.astype(self.dtype), table)
        return constrain(logits, LOGITS).astype(jnp.float32)
