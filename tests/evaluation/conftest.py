"""Evaluation fixtures: the offline suite built from this machine, and the tiny model as an encoder."""

from __future__ import annotations

import numpy as np
import pytest

from embeddinggemma.api import Embedder
from embeddinggemma.evaluation.build import build_suite
from embeddinggemma.evaluation.tasks import load_suite
from embeddinggemma.prompts import DEFAULT_PROMPTS
from tests.conftest import TOKENIZER_TEXT


@pytest.fixture(scope="session")
def suite_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite") / "eval-v1"
    build_suite(out)
    return out


@pytest.fixture(scope="session")
def suite(suite_dir):
    return {t.name: t for t in load_suite(suite_dir)}


class TinyEncoder:
    """The tiny random model behind the runner's encoder interface; counts texts it embeds."""

    def __init__(self, embedder: Embedder, max_length: int = 64):
        self.embedder, self.max_length = embedder, max_length
        self.prompts = embedder.prompts
        self.identity = "tiny-test-model"
        self.texts_embedded = 0

    def encode(self, texts, prompt_name):
        self.texts_embedded += len(texts)
        return self.embedder.encode(list(texts), prompt_name=prompt_name, max_length=self.max_length)


@pytest.fixture(scope="session")
def byte_fallback_tokenizer_path(tmp_path_factory):
    """A tiny vocabulary that spells unknown characters as bytes.

    With the English-only tiny vocabulary, texts in other scripts become runs of <unk> and many get
    identical embeddings: bitext mining then has exact ties, which numpy's argmax and torch's topk
    break differently on different CPUs. Bytes keep every text distinct.
    """
    import sentencepiece as spm

    out = tmp_path_factory.mktemp("tokenizer")
    spm.SentencePieceTrainer.train(
        input=str(TOKENIZER_TEXT), model_prefix=str(out / "bytes"), vocab_size=500, byte_fallback=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, model_type="bpe", num_threads=1, minloglevel=2)
    return out / "bytes.model"


@pytest.fixture(scope="session")
def tiny_embedder(tiny_config, tiny_params, byte_fallback_tokenizer_path):
    return Embedder(tiny_config, tiny_params, byte_fallback_tokenizer_path, DEFAULT_PROMPTS)


@pytest.fixture
def tiny_encoder(tiny_embedder):
    return TinyEncoder(tiny_embedder)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)
