"""Gemma 3 SentencePiece tokenisation: `[BOS] + pieces + [EOS]`, truncation keeps both ends."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm

from embeddinggemma.paths import as_path, is_url

# Gemma's pieces after pad, eos, bos and unk (ids 0..3): `<mask>` (4), `[multimodal]` (5), and
# `<unused0>`..`<unused98>` (6..104), pieces that no text encodes to.
GEMMA_CONTROL_PIECES = ("<mask>", "[multimodal]")
GEMMA_UNUSED_PIECES = tuple(f"<unused{i}>" for i in range(99))
FIRST_UNUSED_ID = 6


def load_sentencepiece(model_path: str | Path) -> spm.SentencePieceProcessor:
    """The SentencePiece model file `model_path`, local or in a bucket (SentencePiece opens local
    files only: a model in a bucket is read here and passed as bytes)."""
    model_path = as_path(model_path)
    if is_url(model_path):
        return spm.SentencePieceProcessor(model_proto=model_path.read_bytes())
    return spm.SentencePieceProcessor(model_file=str(model_path))


class Tokenizer:
    """Wraps a SentencePiece model file (Gemma 3's `tokenizer.model`)."""

    def __init__(self, model_path: str | Path, bos_id: int = 2, eos_id: int = 1, pad_id: int = 0):
        model_path = as_path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"Tokenizer model not found: {model_path}")
        self.model_path = model_path
        self.processor = load_sentencepiece(model_path)
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """Token ids of each text, `[BOS] + pieces + [EOS]`, at most `max_length` long."""
        if max_length < 2:
            raise ValueError(f"max_length={max_length} leaves no room for BOS and EOS (minimum 2).")
        pieces = self.processor.encode(list(texts), out_type=int)
        keep = max_length - 2
        return [[self.bos_id] + p[:keep] + [self.eos_id] for p in pieces]


def pad_batch(sequences: Sequence[Sequence[int]], length: int, pad_id: int = 0) -> np.ndarray:
    """Right-pads token id lists into an int32 [len(sequences), length] array."""
    out = np.full((len(sequences), length), pad_id, dtype=np.int32)
    for row, ids in enumerate(sequences):
        if len(ids) > length:
            raise ValueError(f"Sequence {row} has {len(ids)} tokens, more than the length {length}.")
        out[row, : len(ids)] = ids
    return out
