"""Checkpoint formats, all in one place: Orbax (written by this codebase) and imported layouts."""

from embeddinggemma.checkpoint.loading import load_checkpoint

__all__ = ["load_checkpoint"]
