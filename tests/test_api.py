"""The Embedder on a tiny random checkpoint: batching, prompts, Matryoshka, bad input."""

import numpy as np
import pytest

from embeddinggemma import Embedder
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.prompts import DEFAULT_PROMPTS

TEXTS = [
    "the",
    "This License applies to any program",
    "",
    "Each licensee is addressed as you. " * 6,
    "To protect your rights, we need to prevent others from denying you these rights.",
]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_config, tiny_params, tiny_tokenizer_path):
    return save_orbax(tmp_path_factory.mktemp("api") / "ckpt", tiny_config, tiny_params,
                      tiny_tokenizer_path, DEFAULT_PROMPTS)


@pytest.fixture(scope="module")
def embedder(ckpt):
    return Embedder.load(ckpt)


def test_batched_equals_alone(embedder):
    batched = embedder.encode(TEXTS, batch_size=4)
    alone = np.stack([embedder.encode([t])[0] for t in TEXTS])
    assert batched.dtype == np.float32 and batched.shape == (5, 64)
    np.testing.assert_allclose(batched, alone, atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(embedder.encode(TEXTS[1]), batched[1], atol=2e-6)


def test_prompt_and_title_are_prepended(embedder):
    query = embedder.encode(TEXTS, prompt_name="query")
    manual = embedder.encode([DEFAULT_PROMPTS["query"] + t for t in TEXTS])
    np.testing.assert_allclose(query, manual, atol=2e-6)
    titled = embedder.encode(TEXTS[:2], title=["Licenses", None])
    manual = embedder.encode(["title: Licenses | text: " + TEXTS[0], "title: none | text: " + TEXTS[1]])
    np.testing.assert_allclose(titled, manual, atol=2e-6)
    with pytest.raises(ValueError, match="title is only used with the document prompt"):
        embedder.encode(TEXTS, prompt_name="query", title="x")
    with pytest.raises(ValueError, match="title has 1 entries for 5 texts"):
        embedder.encode(TEXTS, title=["x"])


def test_matryoshka_dim_truncates_and_renormalises(embedder):
    full = embedder.encode(TEXTS)
    small = embedder.encode(TEXTS, dim=16)
    want = full[:, :16] / np.linalg.norm(full[:, :16], axis=-1, keepdims=True)
    np.testing.assert_allclose(small, want, atol=1e-6)
    for bad in (0, 65):
        with pytest.raises(ValueError, match=f"dim={bad} is outside 1..64"):
            embedder.encode(TEXTS, dim=bad)


def test_max_length_truncates(embedder):
    ids = embedder.tokenize([TEXTS[3]], max_length=8)[0]
    assert len(ids) == 8 and ids[0] == 2 and ids[-1] == 1
    np.testing.assert_allclose(embedder.encode([TEXTS[3]], max_length=8)[0],
                               embedder.encode([embedder.tokenizer.processor.decode(ids[1:-1])])[0],
                               atol=2e-6)


def test_bad_input_is_named(embedder):
    assert embedder.encode([]).shape == (0, 64)
    with pytest.raises(TypeError, match=r"texts\[1\] is int, not str"):
        embedder.encode(["a", 3])
    with pytest.raises(ValueError, match="Unknown prompt name 'nope'; valid names: .*STS"):
        embedder.encode(["a"], prompt_name="nope")


def test_bfloat16_load(ckpt, embedder):
    bf16 = Embedder.load(ckpt, dtype="bfloat16")
    assert bf16.runtime.param_dtype == "bfloat16"
    cosine = (bf16.encode(TEXTS) * embedder.encode(TEXTS)).sum(-1)
    assert cosine.min() > 0.99
    with pytest.raises(ValueError, match="overflow"):
        Embedder.load(ckpt, dtype="float16")


def test_save_then_load_gives_same_vectors(embedder, tmp_path):
    again = Embedder.load(embedder.save(tmp_path / "copy"))
    np.testing.assert_array_equal(again.encode(TEXTS), embedder.encode(TEXTS))
