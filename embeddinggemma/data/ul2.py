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
from embeddinggemma.tokenizer import FIRST_UNUSED_ID, GEMMA_UNUSED_PIECES, Tokenizer

SPAN, PREFIX = "span_corruption", "prefix_lm"
KINDS = (SPAN, PREFIX)
MODE_TOKEN_IDS = {"R": 6, "X": 7, "S": 8}          # <unused0>, <unused1>, <unused2>
SENTINEL_IDS = tuple(range(9, 105))                # <unused3> .. <unused98>
# Batch arrays: encoder_tokens [B, S], decoder_tokens [B, T], targets [B, T] (pad = no loss),
# denoiser [B] int32 (index into the sorted denoiser names), example_mask [B] bool.
BATCH_KEYS = ("encoder_tokens", "decoder_tokens", "targets", "denoiser", "example_mask")


def denoiser_config(kind: str, *, noise_density: float = 0.0, mean_span_length: float = 0.0,
                    mode: str = "R", weight: float = 1.0) -> ml_collections.ConfigDict:
    """One denoiser of the mixture, locked against misspelt fields.

    Args:
      kind: `span_corruption` or `prefix_lm`.
      noise_density: the fraction of a document's pieces that are noise (span corruption).
      mean_span_length: the mean length of a noise span (span corruption).
      mode: the mode token prepended to the encoder's input when `ul2.mode_tokens` is on: R, X or S.
      weight: relative probability that an example uses this denoiser; 0 switches it off.
    """
    d = ml_collections.ConfigDict(dict(kind=kind, noise_density=float(noise_density),
                                       mean_span_length=float(mean_span_length), mode=mode,
                                       weight=float(weight)))
    d.lock()
    return d


def ul2_config() -> ml_collections.ConfigDict:
    """The UL2 fields of an adaptation config, with UL2's standard mixture (equal weights)."""
    c = ml_collections.ConfigDict()
    c.denoisers = ml_collections.ConfigDict(dict(
        r_span3=denoiser_config(SPAN, noise_density=0.15, mean_span_length=3, mode="R"),
        r_span8=denoiser_config(SPAN, noise_density=0.15, mean_span_length=8, mode="R"),
        x_span3=denoiser_config(SPAN, noise_density=0.5, mean_span_length=3, mode="X"),
        x_span8=denoiser_config(SPAN, noise_density=0.5, mean_span_length=8, mode="X"),
        x_span64_rate15=denoiser_config(SPAN, noise_density=0.15, mean_span_length=64, mode="X"),
        x_span64_rate50=denoiser_config(SPAN, noise_density=0.5, mean_span_length=64, mode="X"),
        s_prefix=denoiser_config(PREFIX, mode="S"),
    ))
    c.mode_tokens = False     # prepend the denoiser's mode token (R, X, S) to the encoder input
    c.max_length = 64         # pieces of a document (a random window of longer ones)
    c.heldout_documents = 64  # documents of the corpus's held-out splits in the periodic evaluation
    # Decoder positions whose logits the loss computes at once (recomputed in the backward pass);
    # 0 = all. A 262,144-piece vocabulary makes [B, T, V] logits the largest activation by far.
    c.logits_chunk = 0
    c.lock()
    return c


def denoiser_names(c: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The denoisers with a weight above 0, sorted: `denoiser` in a batch indexes this tuple."""
    return tuple(sorted(n for n, d in c.denoisers.items() if d.weight > 0))


def sequence_lengths(c: ml_collections.ConfigDict) -> tuple[int, int]:
    """(encoder length, decoder length) every batch is padded to.

    Span corruption keeps non-noise + spans <= L pieces in the inputs and noise + spans <= L in the
    targets (spans <= min(noise, non-noise)); a prefix LM splits L. So the encoder needs
    L + 3 (BOS, mode token, EOS) and the decoder L + 1 (EOS, or BOS on its input side).
    """
    return c.max_length + 3, c.max_length + 1


def num_noise_spans(length: int, noise_density: float, mean_span_length: float) -> tuple[int, int]:
    """(noise pieces, noise spans) of a document of `length` >= 2 pieces (see the module's rule)."""
    noise = min(max(int(round(length * noise_density)), 1), length - 1)
    spans = max(int(round(noise / mean_span_length)), 1)
    return noise, min(spans, noise, length - noise)


def validate_ul2_config(c: ml_collections.ConfigDict) -> None:
    """Checks the mixture and that the sentinels suffice; each error names the field."""
    names = denoiser_names(c)
    if not names:
        raise ValueError("ul2.denoisers has no denoiser with a weight above 0.")
    if c.max_length < 2:
        raise ValueError(f"ul2.max_length={c.max_length} must be >= 2 (a document needs a piece on "
                         "each side of a split).")
    if c.heldout_documents < 1:
        raise ValueError(f"ul2.heldout_documents={c.heldout_documents} must be >= 1.")
    if c.logits_chunk < 0:
        raise ValueError(f"ul2.logits_chunk={c.logits_chunk} must be >= 0 (0 = every position at once).")
    for name, d in c.denoisers.items():
        where = f"ul2.denoisers.{name}"
        if d.kind not in KINDS:
            raise ValueError(f"{where}.kind={d.kind!r}; choose one of {KINDS}.")
        if d.mode not in MODE_TOKEN_IDS:
            raise ValueError(f"{where}.mode={d.mode!r}; choose one of {sorted(MODE_TOKEN_IDS)}.")
        if d.weight < 0:
            raise ValueError(f"{where}.weight={d.weight} is negative.")
        if d.kind == SPAN:
            if not 0 < d.noise_density < 1:
                raise ValueError(f"{where}.noise_density={d.noise_density} must be in (0, 1).")
            if d.mean_span_length < 1:
                raise ValueError(f"{where}.mean_span_length={d.mean_span_length} must be >= 1.")
            most = max(num_noise_spans(n, d.noise_density, d.mean_span_length)[1]
                       for n in range(2, c.max_length + 1))
            if most > len(SENTINEL_IDS):
                raise ValueError(f"{where}: up to {most} noise spans in {c.max_length} pieces, more than "
                                 f"the {len(SENTINEL_IDS)} sentinels; lower ul2.max_length or raise "
                                 "its mean_span_length.")


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
