"""embeddinggemma: a JAX/Flax reproduction of the EmbeddingGemma recipe."""

from embeddinggemma import hugepages

# `python -m embeddinggemma.X` (and `-m experiments.X`) restart once, before anything heavy is
# imported, with XLA's large buffers on transparent huge pages (hugepages.py).
hugepages.reexec_command()

from embeddinggemma.api import Embedder  # noqa: E402

__all__ = ["Embedder"]
