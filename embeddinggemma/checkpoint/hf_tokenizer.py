"""A Hugging Face `tokenizer.json` that gives the ids SentencePiece gives, built from its model file.

transformers' Gemma tokenizer rebuilds its own pipeline (no normalisation, no dummy prefix, byte
fallback) around the vocabulary and ignores the rest of a SentencePiece model; a vocabulary trained
with other settings (this codebase's tiny models: NFKC, a dummy prefix, no byte fallback) then
tokenises differently. So an export carries a `tokenizer.json` read as it is
(`tokenizer_class: PreTrainedTokenizerFast`) whose every stage follows the model's own spec:

  normaliser     the model's precompiled character map, whitespace squeezing, the dummy prefix,
                 spaces as U+2581 (SentencePiece's `normalizer_spec`)
  model          BPE over the pieces, merges ranked by the merged piece's score (SentencePiece
                 merges the adjacent pair whose concatenation scores highest), unknown characters
                 as bytes (`byte_fallback`) or as the unknown piece
  added tokens   user-defined pieces, matched whole before BPE as SentencePiece does; control
                 pieces (pad, BOS, EOS) are special and, with `split_special_tokens`, never read
                 out of a text: SentencePiece spells a text's "<s>" or "</s>" as characters
  post-processor `[BOS] + pieces + [EOS]`, as `embeddinggemma.tokenizer` encodes

Only BPE models are supported (every tokenizer this codebase trains or imports is one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from sentencepiece import sentencepiece_model_pb2 as sp_model
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, processors
from tokenizers.models import BPE

from embeddinggemma.paths import as_path
from embeddinggemma.tokenizer import load_sentencepiece

_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6
_BPE = 2
_SPACE = "\u2581"
# Texts every conversion is checked on (the export refuses a tokenizer that differs on one): a
# dummy prefix, squeezed and odd whitespace, NFKC-folded characters, several scripts, digits and
# the control pieces' usual spellings inside a text.
CHECK_TEXTS = (
    "", " ", "Hello, world!", "  two  spaces\tand a tab\nand a new line  ",
    "task: search result | query: Which planet is known as the Red Planet?",
    "ｆｕｌｌ－ｗｉｄｔｈ ﬁ ligature, Ⅻ, ½, é vs é",
    "Die Zahl 12345 ist größer als 678.", "Привет, мир!", "こんにちは世界", "你好，世界",
    "مرحبا بالعالم", "नमस्ते दुनिया", "<s> and </s> and <pad> and <unk> and <bos> <eos> <mask>",
    "<start_of_turn>user <table><tr><td>x</td></tr></table>", "🙂 emoji ⌘ symbols",
)


class TokenizerConversionError(ValueError):
    """A SentencePiece model this converter cannot reproduce; the message names it."""


def read_model_proto(path: str | Path) -> sp_model.ModelProto:
    """The parsed SentencePiece model file."""
    proto = sp_model.ModelProto()
    try:
        proto.ParseFromString(as_path(path).read_bytes())
    except Exception as e:  # protobuf raises its own DecodeError
        raise TokenizerConversionError(f"{path}: not a SentencePiece model ({e}).") from None
    return proto


def special_pieces(proto: sp_model.ModelProto) -> dict[str, str]:
    """{"bos_token", "eos_token", "pad_token", "unk_token"} -> the model's piece for each (ids
    from its trainer spec; a role the model lacks is left out)."""
    spec = proto.trainer_spec
    ids = {"bos_token": spec.bos_id, "eos_token": spec.eos_id, "pad_token": spec.pad_id,
           "unk_token": spec.unk_id}
    return {role: proto.pieces[i].piece for role, i in ids.items() if 0 <= i < len(proto.pieces)}


def _normalizer(spec) -> normalizers.Normalizer:
    steps = []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    if spec.add_dummy_prefix:
        steps.append(normalizers.Prepend(_SPACE))
    if spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", _SPACE))
    return normalizers.Sequence(steps)


def _merges(proto: sp_model.ModelProto, vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Every (left, right) whose concatenation is a normal piece, the highest-scoring piece first."""
    mergeable = {p.piece for p in proto.pieces if p.type == _NORMAL}
    ranked = []
    for piece in proto.pieces:
        if piece.type != _NORMAL or len(piece.piece) < 2:
            continue
        for cut in range(1, len(piece.piece)):
            left, right = piece.piece[:cut], piece.piece[cut:]
            if left in mergeable and right in mergeable:
                ranked.append((-piece.score, vocab[piece.piece], vocab[left], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def build_tokenizer(tokenizer_model: str | Path) -> Tokenizer:
    """A `tokenizers.Tokenizer` equivalent to the SentencePiece model, `[BOS] + pieces + [EOS]`.

    Raises:
      TokenizerConversionError naming the file when the model is not BPE or lacks BOS/EOS.
    """
    proto = read_model_proto(tokenizer_model)
    if proto.trainer_spec.model_type != _BPE:
        raise TokenizerConversionError(
            f"{tokenizer_model}: a SentencePiece model of type "
            f"{sp_model.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)}; only BPE "
            "models can be exported to a Hugging Face tokenizer.")
    special = special_pieces(proto)
    missing = [role for role in ("bos_token", "eos_token", "unk_token") if role not in special]
    if missing:
        raise TokenizerConversionError(f"{tokenizer_model}: the model has no {missing} piece.")
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=_merges(proto, vocab), unk_token=special["unk_token"],
                              fuse_unk=True, byte_fallback=proto.trainer_spec.byte_fallback))
    tokenizer.normalizer = _normalizer(proto.normalizer_spec)
    tokenizer.add_tokens([AddedToken(p.piece, normalized=True, special=False)
                          for p in proto.pieces if p.type == _USER_DEFINED])
    tokenizer.add_special_tokens([AddedToken(p.piece, normalized=False, special=True)
                                  for p in proto.pieces if p.type in (_CONTROL, _UNKNOWN)])
    bos, eos = special["bos_token"], special["eos_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B {eos}",
        special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])])
    steps = [decoders.Replace(_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if proto.normalizer_spec.add_dummy_prefix:
        steps.append(decoders.Strip(" ", 1, 0))
    tokenizer.decoder = decoders.Sequence(steps)
    tokenizer.encode_special_tokens = True
    return tokenizer


def first_difference(tokenizer: Tokenizer, tokenizer_model: str | Path,
                     texts: Sequence[str] = CHECK_TEXTS) -> tuple[str, list[int], list[int]] | None:
    """(text, SentencePiece's ids, the converted tokenizer's ids) of the first text on which they
    differ (both `[BOS] + pieces + [EOS]`), or None when they agree on all."""
    processor = load_sentencepiece(tokenizer_model)
    proto_special = special_pieces(read_model_proto(tokenizer_model))
    bos = tokenizer.token_to_id(proto_special["bos_token"])
    eos = tokenizer.token_to_id(proto_special["eos_token"])
    for text, ours in zip(texts, tokenizer.encode_batch(list(texts)), strict=True):
        expected = [bos] + processor.encode(text, out_type=int) + [eos]
        if ours.ids != expected:
            return text, expected, ours.ids
    return None


def checked_tokenizer(tokenizer_model: str | Path) -> Tokenizer:
    """`build_tokenizer(tokenizer_model)`, checked to give SentencePiece's ids on CHECK_TEXTS.

    Raises:
      TokenizerConversionError naming the file and the first text on which they differ.
    """
    tokenizer = build_tokenizer(tokenizer_model)
    difference = first_difference(tokenizer, tokenizer_model)
    if difference is not None:
        text, expected, found = difference
        raise TokenizerConversionError(
            f"{tokenizer_model}: the Hugging Face tokenizer built from it gives {found} for {text!r}, "
            f"SentencePiece {expected}; nothing was written.")
    return tokenizer


def write_tokenizer_files(directory: str | Path, tokenizer: Tokenizer, tokenizer_model: str | Path,
                          max_length: int) -> None:
    """`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json` and a copy of the
    SentencePiece `tokenizer.model` into `directory`, as transformers (Python) and transformers.js
    read them: the tokenizer as it is (`PreTrainedTokenizerFast`, not rebuilt around the vocabulary
    as GemmaTokenizer would), right padding, and a text's own "<s>" or "<pad>" spelt as characters,
    as SentencePiece spells it."""
    directory = Path(directory)
    special = special_pieces(read_model_proto(tokenizer_model))
    (directory / "tokenizer.model").write_bytes(as_path(tokenizer_model).read_bytes())
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "padding_side": "right",
              "model_max_length": max_length, "split_special_tokens": True, **special}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
