"""Inputs of the smoke-scale grids: the small real corpus (tests/conftest.py), a tiny random
Gemma-3-shaped decoder with a tokenizer that reserves Gemma's UL2 ids, and a tiny teacher."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from embeddinggemma.model import init_params, tiny


@pytest.fixture(scope="session")
def reserved_tokenizer(small_corpus) -> Path:
    """The corpus's 512-piece tokenizer with Gemma's ids 4..104 reserved (UL2's sentinels)."""
    from embeddinggemma.training.inputs import corpus_tokenizer

    return corpus_tokenizer(small_corpus, tiny().transformer.vocab_size, gemma_reserved=True)


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory, reserved_tokenizer) -> Path:
    """A random tiny decoder in save_decoder's layout (what the init ablation starts from)."""
    from embeddinggemma.checkpoint.decoders import save_decoder

    config = tiny()
    params = jax.device_get(init_params(config, jax.random.PRNGKey(7)))["transformer"]
    return save_decoder(tmp_path_factory.mktemp("decoder") / "tiny-decoder", config.transformer, params,
                        reserved_tokenizer)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tiny_params, tiny_tokenizer_path) -> Path:
    """A tiny random embedding checkpoint as the distillation teacher (the release is too slow here)."""
    from embeddinggemma.checkpoint.orbax_io import save_orbax
    from embeddinggemma.prompts import DEFAULT_PROMPTS

    return save_orbax(tmp_path_factory.mktemp("teacher") / "tiny-teacher", tiny(), tiny_params,
                      tiny_tokenizer_path, DEFAULT_PROMPTS)
