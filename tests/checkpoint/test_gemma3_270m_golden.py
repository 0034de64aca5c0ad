"""The real Gemma 3 270M GGUF against transformers' golden logits and perplexity
(scripts/make_golden_decoder.py). Needs the fetched GGUF and the release's tokenizer."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from embeddinggemma.checkpoint.decoders import load_decoder
from embeddinggemma.evaluation.perplexity import decoder_hidden, decoder_logits, next_token_log_probs

pytestmark = [pytest.mark.decoder, pytest.mark.release]

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "gemma3_270m_decoder.json").read_text())
# A prefix of the golden 1,024 tokens, still past the 512-token local window, keeps the test short;
# the full text is what README reports (`python -m embeddinggemma perplexity ... --max-tokens 1024`).
LICENSE_PREFIX = 600


@pytest.fixture(scope="module")
def decoder(release_dir):
    """The dequantised decoder, read once for the module (about 270M float32 parameters)."""
    from embeddinggemma.artefacts import FetchError, fetch_gemma3_270m_gguf

    try:
        path = fetch_gemma3_270m_gguf()
    except FetchError as e:
        pytest.fail(f"Could not fetch the Gemma 3 270M GGUF: {e}", pytrace=False)
    return load_decoder(path, release_dir / "tokenizer.model")


def test_the_file_is_the_one_the_golden_values_came_from():
    from embeddinggemma.artefacts import GGUF_SHA256

    assert GOLDEN["metadata"]["gguf_sha256"] == GGUF_SHA256


def test_next_token_logits_match_transformers(decoder):
    # Right padding never reaches earlier positions of a causal model: one batch for all sentences.
    sentences = GOLDEN["sentences"]
    length = max(len(s["tokens"]) for s in sentences)
    tokens = np.zeros((len(sentences), length), np.int32)
    for row, s in enumerate(sentences):
        tokens[row, :len(s["tokens"])] = s["tokens"]
    logits = np.asarray(decoder_logits(decoder, decoder_hidden(decoder, tokens)))
    for row, s in enumerate(sentences):
        n = len(s["tokens"])
        ours = np.take_along_axis(logits[row, :n], np.asarray(s["top_ids"]), axis=-1)
        theirs = np.asarray(s["top_logits"])
        relative = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
        assert relative < 1e-4, f"{s['text']!r}: relative error {relative:.2e}"
        np.testing.assert_array_equal(logits[row, :n].argmax(-1), np.asarray(s["top_ids"])[:, 0])


def test_perplexity_on_a_license_text_is_within_one_percent(decoder):
    tokens = GOLDEN["license"]["tokens"][:LICENSE_PREFIX]
    reference = np.asarray(GOLDEN["license"]["next_log_probs"][:LICENSE_PREFIX - 1])
    ours = next_token_log_probs(decoder, tokens)
    perplexity, reference_perplexity = math.exp(-ours.mean()), math.exp(-reference.mean())
    assert abs(perplexity / reference_perplexity - 1) < 0.01, (perplexity, reference_perplexity)
    np.testing.assert_allclose(ours, reference, atol=1e-3)
