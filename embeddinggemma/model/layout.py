"""Each parameter's role, read from its shape and logical axis names (never from its name).

The layouts come from `jax.eval_shape` of the boxed parameters, so a new part (a cross-attention,
a decoder head) is described by the axes it declares. The rules, on the axes of one layer:
  contraction axes (summed in the forward pass; quantisation blocks and channels run along them)
    - the token table [vocab, embed] contracts `embed`: a row is a token's vector, and the tied
      logits sum over it;
    - a matrix whose first axis is `embed` reads the residual stream and contracts `embed`
      (query, key, value, gate, up, the first projection);
    - a matrix whose last axis is `embed` writes to the stream and contracts every other axis
      (out, down, the second projection).
  attention: a matrix with a `heads` or `kv_heads` axis.
  vector: one axis (norm scales, the attention-pooling query).
Scanned blocks' parameters carry a leading `layers` axis, which none of the rules count.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from embeddinggemma.model.config import EmbedderConfig, TransformerConfig
from embeddinggemma.model.embedder import EmbeddingModel
from embeddinggemma.model.layers import ATTENTION_AXES, EMBED, LAYERS, VOCAB
from embeddinggemma.model.masks import encoder_masks, padding_mask
from embeddinggemma.model.transformer import Transformer


@dataclasses.dataclass(frozen=True)
class ParamLayout:
    """One parameter's shape and logical axis names (`layers` first when stacked)."""

    shape: tuple[int, ...]
    axes: tuple[str | None, ...]

    @property
    def stacked(self) -> bool:
        return self.axes[:1] == (LAYERS,)

    def per_layer(self) -> ParamLayout:
        """The layout of one layer's slice; itself when not stacked."""
        return ParamLayout(self.shape[1:], self.axes[1:]) if self.stacked else self

    @property
    def is_vector(self) -> bool:
        return len(self.per_layer().axes) == 1

    @property
    def is_attention(self) -> bool:
        return any(axis in ATTENTION_AXES for axis in self.axes)

    @property
    def contraction_axes(self) -> tuple[int, ...]:
        """Indices into `shape` (the `layers` axis included) of the axes summed over."""
        axes = self.per_layer().axes
        if len(axes) < 2:
            raise ValueError(f"A vector (logical axes {self.axes}) has no contraction axes.")
        if VOCAB in axes and EMBED in axes:
            own = (axes.index(EMBED),)
        elif axes[0] == EMBED:
            own = (0,)
        elif axes[-1] == EMBED:
            own = tuple(range(len(axes) - 1))
        else:
            raise ValueError(f"Cannot tell the contraction axes of a matrix with logical axes "
                             f"{self.axes}: neither its first nor its last axis is {EMBED!r}.")
        offset = 1 if self.stacked else 0
        return tuple(offset + i for i in own)


def param_layouts(boxed: Any) -> Any:
    """Boxed parameters (or their `jax.eval_shape`) -> the same tree, unboxed, of `ParamLayout`."""

    def one(path, leaf):
        if not isinstance(leaf, nn.LogicallyPartitioned):
            raise ValueError(f"Parameter {jax.tree_util.keystr(path)} has no logical axis names.")
        return ParamLayout(tuple(leaf.value.shape), tuple(leaf.names))

    return jax.tree_util.tree_map_with_path(
        one, boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))


@functools.lru_cache(maxsize=8)
def transformer_layout(config: TransformerConfig) -> dict:
    """The layout of `Transformer(config)`'s parameters, from their abstract initialisation."""
    tokens = jnp.ones((1, 1), jnp.int32)
    masks = encoder_masks(padding_mask(tokens, config.pad_id), config)
    abstract = jax.eval_shape(lambda: Transformer(config).init(jax.random.PRNGKey(0), tokens, masks))
    return param_layouts(abstract["params"])


@functools.lru_cache(maxsize=8)
def embedder_layout(config: EmbedderConfig) -> dict:
    """The layout of `EmbeddingModel(config)`'s parameters, from their abstract initialisation."""
    tokens = jnp.ones((1, 1), jnp.int32)
    abstract = jax.eval_shape(lambda: EmbeddingModel(config).init(jax.random.PRNGKey(0), tokens))
    return param_layouts(abstract["params"])
