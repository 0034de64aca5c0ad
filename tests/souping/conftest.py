"""Soup ingredients: the tiny model's parameters, perturbed, saved in each format."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.prompts import DEFAULT_PROMPTS


def perturbed(params, seed: int, scale: float = 0.05):
    """`params` plus independent normal noise: another model of the same shape."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: (np.asarray(x, np.float32)
                                   + rng.normal(0.0, scale, np.shape(x)).astype(np.float32)), params)


@pytest.fixture
def make_ingredient(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    """(name, seed, **changes) -> (an Orbax checkpoint of perturbed tiny parameters, its params)."""

    def make(name: str, seed: int, *, config=None, params=None, prompts=None, tokenizer=None):
        params = perturbed(tiny_params, seed) if params is None else params
        path = save_orbax(tmp_path / name, config or tiny_config, params, tokenizer or tiny_tokenizer_path,
                          DEFAULT_PROMPTS if prompts is None else prompts)
        return path, params

    return make
