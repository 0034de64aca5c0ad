"""UL2's span sampling against a short numpy reference of T5's rule, reconstruction of the
document from inputs and targets, the mixture's statistics, and a checkpointable stream."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from embeddinggemma.data import ul2, ul2_config
from embeddinggemma.tokenizer import Tokenizer

SENTINELS = set(ul2_config.SENTINEL_IDS)


def reference_counts(length, density, mean_span):
    """T5's rule: noise = round(L * rate) within [1, L - 1], spans = round(noise / mean) >= 1,
    capped so that both partitions have non-empty parts."""
    noise = min(max(int(np.round(length * density)), 1), length - 1)
    spans = max(int(np.round(noise / mean_span)), 1)
    return noise, min(spans, noise, length - noise)


def runs(mask):
    """(value, length) of each run of equal values, in order."""
    edges = np.flatnonzero(np.diff(mask.astype(int))) + 1
    return [(bool(part[0]), len(part)) for part in np.split(mask, edges)]


def reassemble(inputs, targets):
    """The document back from span corruption's inputs and targets (independent of ul2.py)."""
    spans, current = {}, None
    for token in targets:
        if token in SENTINELS:
            current = spans.setdefault(int(token), [])
        else:
            current.append(int(token))
    out = []
    for token in inputs:
        out += spans[int(token)] if token in SENTINELS else [int(token)]
    return out


@pytest.mark.parametrize("length", [2, 3, 10, 61, 200])
@pytest.mark.parametrize("density,mean_span", [(0.15, 3), (0.15, 8), (0.5, 3), (0.5, 8), (0.15, 64),
                                               (0.5, 64)])
def test_noise_masks_have_t5s_counts_and_alternate_from_non_noise(length, density, mean_span):
    rng = np.random.default_rng(length)
    noise, spans = reference_counts(length, density, mean_span)
    for _ in range(20):
        mask = ul2.random_spans_noise_mask(length, density, mean_span, rng)
        assert mask.shape == (length,) and mask.sum() == noise
        parts = runs(mask)
        assert [value for value, _ in parts] == [False, True] * spans  # non-noise first, ends in noise
        assert all(n >= 1 for _, n in parts)


def test_span_corruption_reassembles_the_document_and_numbers_its_sentinels():
    rng = np.random.default_rng(0)
    for length in (2, 5, 40, 61):
        pieces = rng.integers(200, 500, size=length).astype(np.int32)
        for density, mean_span in ((0.15, 3), (0.5, 3), (0.5, 64)):
            mask = ul2.random_spans_noise_mask(length, density, mean_span, rng)
            inputs, targets = ul2.span_corruption(pieces, mask)
            assert reassemble(inputs, targets) == pieces.tolist()
            spans = reference_counts(length, density, mean_span)[1]
            assert [t for t in targets if t in SENTINELS] == list(ul2_config.SENTINEL_IDS[:spans])
            assert [t for t in inputs if t in SENTINELS] == list(ul2_config.SENTINEL_IDS[:spans])
            assert len(inputs) == length - mask.sum() + spans
            assert len(targets) == mask.sum() + spans


def test_span_lengths_are_uniformly_random_compositions():
    # A uniformly random composition of n into k parts has P(first part = j) = C(n-1-j, k-2) / C(n-1, k-1),
    # and every part has the same distribution; T5's shuffle draws exactly that.
    n, k, draws = 12, 4, 20_000
    rng = np.random.default_rng(1)
    parts = np.stack([ul2.random_segmentation(n, k, rng) for _ in range(draws)])
    assert (parts.sum(1) == n).all() and (parts >= 1).all()
    want = np.array([comb(n - 1 - j, k - 2) / comb(n - 1, k - 1) for j in range(1, n - k + 2)])
    for part in (0, k - 1):
        got = np.bincount(parts[:, part], minlength=n - k + 2)[1:] / draws
        np.testing.assert_allclose(got, want, atol=0.012)
    # The noise spans of a document: the mean span length is noise / spans.
    lengths = [n for _ in range(2000)
               for value, n in runs(ul2.random_spans_noise_mask(100, 0.15, 3, rng)) if value]
    assert np.mean(lengths) == pytest.approx(15 / 5)


@pytest.fixture(scope="module")
def reserved_tokenizer(tmp_path_factory):
    """A small SentencePiece model with Gemma's reserved pieces at ids 4..104."""
    import sentencepiece as spm

    from embeddinggemma.tokenizer import GEMMA_CONTROL_PIECES, GEMMA_UNUSED_PIECES
    from tests.conftest import TOKENIZER_TEXT

    out = tmp_path_factory.mktemp("ul2_tokenizer")
    spm.SentencePieceTrainer.train(
        input=str(TOKENIZER_TEXT), model_prefix=str(out / "sp"), vocab_size=500, pad_id=0, eos_id=1,
        bos_id=2, unk_id=3, model_type="bpe", num_threads=1, minloglevel=2,
        control_symbols=list(GEMMA_CONTROL_PIECES + GEMMA_UNUSED_PIECES))
    return Tokenizer(out / "sp.model")


def test_a_tokenizer_without_gemmas_unused_pieces_is_refused_naming_the_id(tiny_tokenizer_path,
                                                                           reserved_tokenizer):
    ul2.check_tokenizer(reserved_tokenizer)
    plain = Tokenizer(tiny_tokenizer_path)
    with pytest.raises(ValueError, match=r"at id 6, where UL2's sentinels .* '<unused0>'"):
        ul2.check_tokenizer(plain)


def test_the_mixture_draws_each_denoiser_by_weight_and_frames_the_sequences(reserved_tokenizer):
    c = ul2_config.ul2_config()
    c.denoisers.s_prefix.weight = 3.0  # 3 of 9
    c.mode_tokens = True
    denoise = ul2.Denoise(c, reserved_tokenizer)
    names = ul2_config.denoiser_names(c)
    doc = np.arange(200, 261, dtype=np.int32)
    counts = np.zeros(len(names))
    for i in range(3000):
        example = denoise.random_map(doc, np.random.default_rng([5, i]))
        counts[example.denoiser] += 1
        d = c.denoisers[names[example.denoiser]]
        enc, tgt = example.encoder_tokens, example.targets
        assert enc[0] == reserved_tokenizer.bos_id and enc[1] == ul2_config.MODE_TOKEN_IDS[d.mode]
        assert enc[-1] == tgt[-1] == reserved_tokenizer.eos_id
        if d.kind == ul2_config.PREFIX:
            assert enc[2:-1].tolist() + tgt[:-1].tolist() == doc.tolist()
        else:
            assert reassemble(enc[2:-1], tgt[:-1]) == doc.tolist()
        S, T = ul2_config.sequence_lengths(c)
        assert len(enc) <= S and len(tgt) <= T
    want = np.array([c.denoisers[n].weight for n in names]) / 9.0
    np.testing.assert_allclose(counts / 3000, want, atol=0.03)


def test_too_few_sentinels_and_bad_rates_are_named():
    c = ul2_config.ul2_config()
    c.max_length = 1000  # x_span3: round(500 / 3) = 167 spans > 96 sentinels
    with pytest.raises(ValueError, match=r"ul2.denoisers.x_span3: up to 167 noise spans"):
        ul2_config.validate_ul2_config(c)
    c = ul2_config.ul2_config()
    c.denoisers.r_span3.noise_density = 1.0
    with pytest.raises(ValueError, match=r"ul2.denoisers.r_span3.noise_density=1.0"):
        ul2_config.validate_ul2_config(c)


def test_the_stream_is_a_function_of_seed_and_step_and_resumes_from_its_state(reserved_tokenizer):
    rng = np.random.default_rng(3)
    documents = [rng.integers(200, 500, size=n).astype(np.int32) for n in rng.integers(2, 120, size=50)]
    c = ul2_config.ul2_config()

    def stream(seed):
        return ul2.make_ul2_iterator(documents, c, reserved_tokenizer, batch_size=8, seed=seed)

    first = [next(it) for it in [stream(0)] for _ in range(9)]
    again = stream(0)
    for _ in range(4):
        next(again)
    state = again.get_state()
    resumed = stream(0)
    resumed.set_state(state)
    for want in first[4:]:
        got = next(resumed)
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    other = next(stream(1))
    assert not np.array_equal(other["encoder_tokens"], first[0]["encoder_tokens"])
    # The decoder reads the targets shifted right after BOS (teacher forcing).
    batch = first[0]
    for i in range(8):
        n = int((batch["targets"][i] != 0).sum())
        assert batch["decoder_tokens"][i, 0] == reserved_tokenizer.bos_id
        np.testing.assert_array_equal(batch["decoder_tokens"][i, 1:n], batch["targets"][i, : n - 1])
        assert (batch["decoder_tokens"][i, n:] == 0).all()
