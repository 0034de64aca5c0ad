"""UL2 denoising objectives as grain transforms: span corruption (R, X) and prefix LM (S).

Span corruption follows T5's `random_spans_noise_mask`: of a document's L pieces,
round(L * noise_density) are noise (at least 1, at most L - 1), in round(noise / mean_span_length)
spans (at least 1, at most min(noise, non-noise), so that every part below is non-empty; T5 lets
parts be empty at extreme rates). The noise length and the non-noise length are each split into
that many parts by a uniformly random composition, and the parts alternate, non-noise first:

    pieces   a b c d e f g h i j            (noise: c d, h i)
    inputs   a b <s0> e f g <s1> j          each noise span replaced by its sentinel
    targets  <s0> c d <s1> h i              each noise span after its sentinel

The prefix LM (S) splits a document at a uniformly random point: inputs the prefix, targets the
rest. Encoder tokens are `[BOS] (+ mode token) + inputs + [EOS]`, decoder targets `targets +
[EOS]` and decoder inputs `[BOS] + targets` (teacher forcing).

Sentinels and mode tokens are Gemma's unused pieces, ids 6..104 (`<unused0>`..`<unused98>` in the
released tokenizer; no other piece in that range has a meaning, ids 4 `<mask>` and 5
`[multimodal]` lie outside it): the mode tokens R, X, S are ids 6, 7, 8 (`<unused0..2>`), the
sentinels ids 9..104 (`<unused3>`..`<unused98>`, 96 of them), sentinel k being id 9 + k.

A document is one text of the corpus's records (each query and each positive; negatives are other
records' positives), deduplicated, with at least 2 pieces, cropped to a random window of
`max_length` pieces. Corpus texts are whole units (a function, a package description, a message
and its translation): packing unrelated texts into one sequence would ask the decoder to restore
spans across unrelated boundaries.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping, Sequence

import grain
import ml_collections
import numpy as np

from embeddinggemma.data.hashing import stable_seed
from embeddinggemma.data.jsonl import JsonLinesSource
from embeddinggemma.data.records import parse_example
from embeddinggemma.data.ul2_config import (
    MODE_TOKEN_IDS,
    SENTINEL_IDS,
    SPAN,
    denoiser_names,
    num_noise_spans,
    sequence_lengths,
)
from embeddinggemma.tokenizer import FIRST_UNUSED_ID, GEMMA_UNUSED_PIECES, Tokenizer

# Batch arrays: encoder_tokens [B, S], decoder_tokens [B, T], targets [B, T] (pad = no loss),
# denoiser [B] int32 (index into the sorted denoiser names), example_mask [B] bool.
BATCH_KEYS = ("encoder_tokens", "decoder_tokens", "targets", "denoiser", "example_mask")


def check_tokenizer(tokenizer: Tokenizer) -> None:
    """Raises ValueError naming the id when a sentinel or mode-token id holds a piece in use."""
    for offset, piece in enumerate(GEMMA_UNUSED_PIECES):
        token_id = FIRST_UNUSED_ID + offset
        got = tokenizer.processor.id_to_piece(token_id) if token_id < tokenizer.vocab_size else None
        if got != piece:
            raise ValueError(f"The tokenizer {tokenizer.model_path} has {got!r} at id {token_id}, where "
                             f"UL2's sentinels and mode tokens need Gemma's unused piece {piece!r} (ids "
                             f"{FIRST_UNUSED_ID}..{FIRST_UNUSED_ID + len(GEMMA_UNUSED_PIECES) - 1}).")


def random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random composition of `num_items` into `num_segments` parts, each >= 1 ([k] int)."""
    starts = np.zeros(num_items - 1, bool)
    starts[: num_segments - 1] = True
    rng.shuffle(starts)  # which of the items after the first begin a new part
    segment = np.cumsum(np.concatenate([[True], starts])) - 1
    return np.bincount(segment, minlength=num_segments)


def random_spans_noise_mask(length: int, noise_density: float, mean_span_length: float,
                            rng: np.random.Generator) -> np.ndarray:
    """[length] bool, True on noise: alternating non-noise and noise spans, non-noise first."""
    noise, spans = num_noise_spans(length, noise_density, mean_span_length)
    noise_lengths = random_segmentation(noise, spans, rng)
    nonnoise_lengths = random_segmentation(length - noise, spans, rng)
    interleaved = np.stack([nonnoise_lengths, noise_lengths], axis=1).reshape(-1)
    return np.repeat(np.tile([False, True], spans), interleaved)


def span_corruption(pieces: np.ndarray, noise_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of `pieces` [L] under `noise_mask` [L]: see the module's example."""
    starts = noise_mask & ~np.concatenate([[False], noise_mask[:-1]])
    sentinels = np.asarray(SENTINEL_IDS)[np.cumsum(starts) - 1]
    inputs = np.where(starts, sentinels, pieces)[~noise_mask | starts]
    targets = np.stack([sentinels, pieces], axis=1)[noise_mask].reshape(-1)
    keep = np.stack([starts, np.ones_like(starts)], axis=1)[noise_mask].reshape(-1)
    return inputs, targets[keep]


@dataclasses.dataclass(frozen=True)
class Denoised:
    """One example: encoder tokens, decoder targets (ending in EOS) and the denoiser's index."""

    encoder_tokens: np.ndarray
    targets: np.ndarray
    denoiser: int


class Denoise(grain.transforms.RandomMap):
    """A document's pieces [L] -> a `Denoised` example by a denoiser drawn from the mixture."""

    def __init__(self, c: ml_collections.ConfigDict, tokenizer: Tokenizer):
        self.names = denoiser_names(c)
        self.denoisers = [c.denoisers[n] for n in self.names]
        weights = np.array([d.weight for d in self.denoisers])
        self.cumulative = np.cumsum(weights / weights.sum())
        self.max_length, self.mode_tokens = c.max_length, c.mode_tokens
        self.bos, self.eos = tokenizer.bos_id, tokenizer.eos_id

    def random_map(self, pieces: np.ndarray, rng: np.random.Generator) -> Denoised:
        index = min(int(np.searchsorted(self.cumulative, rng.random(), side="right")), len(self.names) - 1)
        d = self.denoisers[index]
        if len(pieces) > self.max_length:
            start = rng.integers(0, len(pieces) - self.max_length + 1)
            pieces = pieces[start:start + self.max_length]
        if d.kind == SPAN:
            mask = random_spans_noise_mask(len(pieces), d.noise_density, d.mean_span_length, rng)
            inputs, targets = span_corruption(pieces, mask)
        else:
            split = int(rng.integers(1, len(pieces)))
            inputs, targets = pieces[:split], pieces[split:]
        mode = [MODE_TOKEN_IDS[d.mode]] if self.mode_tokens else []
        encoder = np.concatenate([[self.bos], mode, inputs, [self.eos]]).astype(np.int32)
        return Denoised(encoder, np.concatenate([targets, [self.eos]]).astype(np.int32), index)


def collate(examples: Sequence[Denoised | None], *, lengths: tuple[int, int], bos_id: int,
            pad_id: int) -> dict[str, np.ndarray]:
    """Examples (None: a padding row) -> the arrays of BATCH_KEYS, padded to `lengths`."""
    B, (S, T) = len(examples), lengths
    batch = {"encoder_tokens": np.full((B, S), pad_id, np.int32),
             "decoder_tokens": np.full((B, T), pad_id, np.int32),
             "targets": np.full((B, T), pad_id, np.int32),
             "denoiser": np.zeros(B, np.int32), "example_mask": np.zeros(B, bool)}
    for i, example in enumerate(examples):
        if example is None:
            continue
        n = len(example.targets)
        batch["encoder_tokens"][i, : len(example.encoder_tokens)] = example.encoder_tokens
        batch["targets"][i, :n] = example.targets
        batch["decoder_tokens"][i, 0] = bos_id
        batch["decoder_tokens"][i, 1:n] = example.targets[:-1]
        batch["denoiser"][i], batch["example_mask"][i] = example.denoiser, True
    return batch


def corpus_documents(datasets: ml_collections.ConfigDict, tokenizer: Tokenizer, limit: int | None = None
                     ) -> list[np.ndarray]:
    """The pieces of every document (see the module's definition) of `datasets` (JSON lines,
    sorted by name, records in file order), deduplicated; the first `limit` when given."""
    seen, documents = set(), []
    for name in sorted(datasets):
        d = datasets[name]
        source = JsonLinesSource(d.path)
        for i in range(len(source)):
            example = parse_example(source[i], dict(d.fields), d.task or "query")
            for text in (example.query, example.positive):
                if text in seen:
                    continue
                seen.add(text)
                pieces = tokenizer.processor.encode(text, out_type=int)
                if len(pieces) >= 2:
                    documents.append(np.asarray(pieces, np.int32))
                if limit is not None and len(documents) >= limit:
                    return documents
    if not documents:
        raise ValueError(f"No document of 2 or more pieces in the datasets {sorted(datasets)}.")
    return documents


class UL2Iterator(Iterator[dict[str, np.ndarray]]):
    """Local batches of denoising examples; `get_state`/`set_state` resume exactly (the stream is
    a function of the seed and the step)."""

    last_dataset = "ul2"

    def __init__(self, dataset: grain.IterDataset):
        self._iterator = iter(dataset)

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._iterator)

    def get_state(self) -> dict:
        return {"pipeline": self._iterator.get_state()}

    def set_state(self, state: Mapping) -> None:
        self._iterator.set_state(dict(state["pipeline"]))


def make_ul2_iterator(documents: Sequence[np.ndarray], c: ml_collections.ConfigDict, tokenizer: Tokenizer, *,
                      batch_size: int, seed: int, process_index: int = 0, process_count: int = 1,
                      read_options: grain.ReadOptions | None = None) -> UL2Iterator:
    """This host's batches ([batch_size / process_count, ...] arrays of BATCH_KEYS), forever.

    Documents are shuffled (reshuffled every epoch) and each draw is corrupted anew, all from
    `seed`; host p takes the p-th slice of every global batch, as the embedding pipeline does.
    """
    if batch_size % process_count:
        raise ValueError(f"batch_size={batch_size} does not split over {process_count} hosts.")
    batch_fn = functools.partial(collate, lengths=sequence_lengths(c), bos_id=tokenizer.bos_id,
                                 pad_id=tokenizer.pad_id)
    batches = (grain.MapDataset.source(list(documents)).shuffle(seed=stable_seed(seed, "ul2/order"))
               .repeat().random_map(Denoise(c, tokenizer), seed=stable_seed(seed, "ul2/noise"))
               .batch(batch_size // process_count, batch_fn=batch_fn))
    return UL2Iterator(batches[process_index::process_count].to_iter_dataset(read_options))


def heldout_batches(documents: Sequence[np.ndarray], c: ml_collections.ConfigDict, tokenizer: Tokenizer, *,
                    batch_size: int, seed: int) -> list[dict[str, np.ndarray]]:
    """The held-out documents denoised once (fixed by `seed`), in batches of `batch_size`; the last
    is padded with rows whose `example_mask` is False."""
    denoise = Denoise(c, tokenizer)
    examples = [denoise.random_map(doc, np.random.default_rng([stable_seed(seed, "ul2/heldout"), i]))
                for i, doc in enumerate(documents)]
    lengths = sequence_lengths(c)
    return [collate([*examples[i:i + batch_size], *[None] * max(0, i + batch_size - len(examples))],
                    lengths=lengths, bos_id=tokenizer.bos_id, pad_id=tokenizer.pad_id)
            for i in range(0, len(examples), batch_size)]
