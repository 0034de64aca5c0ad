"""embeddinggemma: a JAX/Flax reproduction of the EmbeddingGemma recipe."""

from embeddinggemma import hugepages

# `python -m embeddinggemma.X` (and `-m experiments.X`) restart once, before anything heavy is
# imported, with XLA's large buffers on transparent huge pages (hugepages.py).
hugepages.reexec_command()

__all__ = ["Embedder"]


def __getattr__(name: str):
    # Imported on first use, so that `embeddinggemma.hugepages` alone (the benchmarks' PyTorch
    # workers) does not import JAX.
    if name == "Embedder":
        from embeddinggemma.api import Embedder

        return Embedder
    raise AttributeError(f"module 'embeddinggemma' has no attribute {name!r}")
