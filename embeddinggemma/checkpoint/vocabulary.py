"""SentencePiece models of imported decoders: read, compared with a file's vocabulary.

A GGUF file carries its pieces but not a usable SentencePiece model: llama.cpp's converter marks
Gemma 3's 6,245 user-defined pieces (`<unused0>`, `<start_of_turn>`, ...) and `<unk>` as control
tokens and gives them the score -1000, so a model rebuilt from the file would not match those
pieces in text. A decoder therefore uses a real `tokenizer.model` whose pieces equal the file's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sentencepiece import sentencepiece_model_pb2 as sp_pb2

from embeddinggemma.paths import as_path


def read_model_proto(path: str | Path) -> sp_pb2.ModelProto:
    """The parsed SentencePiece model file; ValueError naming the file when it is not one."""
    proto = sp_pb2.ModelProto()
    try:
        proto.ParseFromString(as_path(path).read_bytes())
    except Exception as e:  # protobuf's DecodeError is not exported under a stable name
        raise ValueError(f"{path}: not a SentencePiece model ({e}).") from None
    return proto


def check_same_pieces(pieces: Sequence[str], model_path: str | Path, source: str) -> None:
    """Raises ValueError naming the first id whose piece differs between `pieces` (read from
    `source`) and the SentencePiece model at `model_path`, or the sizes when they differ."""
    reference = [p.piece for p in read_model_proto(model_path).pieces]
    for i, (ours, theirs) in enumerate(zip(pieces, reference, strict=False)):
        if ours != theirs:
            raise ValueError(f"{source} and {model_path} differ first at id {i}: {ours!r} vs {theirs!r}.")
    if len(pieces) != len(reference):
        raise ValueError(f"{source} has {len(pieces)} pieces, {model_path} {len(reference)}.")
