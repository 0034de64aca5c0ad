"""A quantised copy of any checkpoint: an Orbax checkpoint whose weight matrices are stored as a
scheme's integer codes and scales (quantization.py; int4 packed two per byte), with the scheme in
its embeddinggemma.json. `Embedder.load` and the evaluation read it, dequantising on load."""

from __future__ import annotations

from pathlib import Path

from embeddinggemma.atomic import check_target, refuse_own_input, refuse_replacing
from embeddinggemma.checkpoint.loading import checkpoint_quantization, load_checkpoint
from embeddinggemma.checkpoint.orbax_io import METADATA_FILE, WHAT, save_orbax
from embeddinggemma.paths import as_path
from embeddinggemma.quantization import check_scheme


def quantize_checkpoint(checkpoint: str | Path, out: str | Path, scheme: str,
                        overwrite: bool = False) -> Path:
    """Writes `checkpoint` (Orbax or sentence-transformers, float weights) quantised under `scheme`
    to `out`.

    `out` must be absent or empty, or with `overwrite` an Orbax checkpoint, which is replaced;
    nothing else is touched, and never `checkpoint` itself, a directory inside it or one holding it.
    An already-quantised checkpoint is refused: its weights requantised would carry both schemes'
    error under one scheme's name.

    Raises:
      ValueError for an unknown scheme, an unreadable or already-quantised checkpoint;
      NotOurDirectoryError or FileExistsError when `out` is taken or is (in) the checkpoint.
      Everything is checked before the weights are read.
    """
    checkpoint = as_path(checkpoint).expanduser()
    check_scheme(scheme)
    refuse_own_input(checkpoint, out)
    out = check_target(out, METADATA_FILE, WHAT)
    if not overwrite:
        refuse_replacing(out, METADATA_FILE, WHAT)
    held = checkpoint_quantization(checkpoint)
    if held is not None:
        raise ValueError(f"{checkpoint} is already quantised ({held}); quantising it under {scheme} "
                         f"would carry {held}'s error as well under {scheme}'s name. Quantise the "
                         "float checkpoint it was made from.")
    ckpt = load_checkpoint(checkpoint)
    return save_orbax(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts,
                      overwrite=overwrite, quantization=scheme)
