"""The UL2 section of an adaptation config (`ul2.*`): the denoisers, their rates and lengths, and
the checks on them. The denoising itself is data/ul2.py; this module imports no data pipeline, so
validating a config stays light.
"""

from __future__ import annotations

import ml_collections

SPAN, PREFIX = "span_corruption", "prefix_lm"
KINDS = (SPAN, PREFIX)
MODE_TOKEN_IDS = {"R": 6, "X": 7, "S": 8}          # <unused0>, <unused1>, <unused2>
SENTINEL_IDS = tuple(range(9, 105))                # <unused3> .. <unused98>


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
