"""A quantised copy of any checkpoint: an Orbax checkpoint whose weight matrices are stored as a
scheme's integer codes and scales (quantization.py; int4 packed two per byte), with the scheme in
its embeddinggemma.json. `Embedder.load` and the evaluation read it, dequantising on load."""

from __future__ import annotations

from pathlib import Path

from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.checkpoint.orbax_io import save_orbax


def quantize_checkpoint(checkpoint: str | Path, out: str | Path, scheme: str,
                        overwrite: bool = False) -> Path:
    """Writes `checkpoint` (Orbax or sentence-transformers) quantised under `scheme` to `out`.

    `out` must be absent or empty, or with `overwrite` an Orbax checkpoint, which is replaced;
    nothing else is touched.

    Raises:
      ValueError for an unknown scheme or an unreadable checkpoint; NotOurDirectoryError or
      FileExistsError when `out` is taken.
    """
    ckpt = load_checkpoint(Path(checkpoint).expanduser())
    return save_orbax(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts,
                      overwrite=overwrite, quantization=scheme)
