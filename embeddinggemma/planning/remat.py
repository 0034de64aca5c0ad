"""What the backward pass of a training step must keep per token, by the model's arithmetic, under
each remat choice (`RuntimeConfig.remat`): the bound a compiled step's memory is checked against
(tests/training/test_step_memory.py, bench/step_memory.py).

Per token and layer, in elements of the compute dtype (D width, N query heads, K key/value heads,
H head dim, F feed-forward width, S keys the token's query attends over):

  full     the layer's input, D: the scan keeps it, the backward recomputes the rest of the layer.
  matmuls  the input and every product with a weight matrix: q N H, k and v 2 K H, the attention's
           output projection D, gate and up 2 F, down D: 3 D + N H + 2 K H + 2 F.
  none     every value the backward reads that takes a product to remake, and the inputs of the
           elementwise work it recomputes (norms, rotary, GELU: model/layers.py): the layer input,
           the two normed inputs of the products, the attention and feed-forward outputs and the
           residual between them (6 D); q and k as projected, normed and rotated (3 N H + 3 K H),
           v (K H), the attention's output before its projection (N H); gate and up and their
           GELU product (3 F); the softmax probabilities (N S).

Besides these, a step holds one layer's working set while it differentiates that layer (at most
the `none` values of one layer, plus their gradients) and what does not grow with the batch
(parameters, optimiser state, the gradient and its update).
"""

from __future__ import annotations

from embeddinggemma.model.config import REMAT, TransformerConfig


def saved_elements_per_token(c: TransformerConfig, remat: str, keys: int) -> int:
    """Elements one token keeps per layer for the backward pass under `remat` (module docstring),
    attending over `keys` keys."""
    D, N, K, H, F = c.embed_dim, c.num_heads, c.num_kv_heads, c.head_dim, c.mlp_dim
    if remat == "full":
        return D
    if remat == "matmuls":
        return 3 * D + N * H + 2 * K * H + 2 * F
    if remat == "none":
        return 6 * D + 4 * N * H + 4 * K * H + 3 * F + N * keys
    raise ValueError(f"remat={remat!r} is not one of {REMAT}.")


def saved_bytes(c: TransformerConfig, remat: str, lengths: dict[int, int], itemsize: int) -> int:
    """Bytes all layers keep for the backward pass of a batch of `lengths` {sequence length: number
    of sequences}, every sequence padded to its length (its keys), values of `itemsize` bytes."""
    return sum(count * length * c.num_layers * saved_elements_per_token(c, remat, length) * itemsize
               for length, count in lengths.items())
