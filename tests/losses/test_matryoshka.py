import functools

import jax
import numpy as np
import pytest

from embeddinggemma import losses
from embeddinggemma.numerics import truncate_embeddings
from tests.losses.test_contrastive import contrastive_reference
from tests.losses.test_spread_out import spread_out_reference

B, D, DIMS = 6, 8, (8, 6, 4, 2)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(B, D)).astype(np.float32) for _ in range(3))


def test_truncate_keeps_a_renormalised_prefix():
    x, _, _ = _batch()
    want = x[:, :3] / np.linalg.norm(np.float64(x[:, :3]), axis=-1, keepdims=True)
    np.testing.assert_allclose(jax.jit(truncate_embeddings, static_argnums=1)(x, 3), want, rtol=1e-6)


def test_spread_out_sum_over_prefixes():
    q, p, _ = _batch(1)
    fn = jax.jit(functools.partial(losses.matryoshka_loss, losses.spread_out_loss, DIMS))
    loss, metrics = fn({"query": q, "positive": p})
    want = [spread_out_reference(q[:, :d], p[:, :d]) for d in DIMS]
    np.testing.assert_allclose(loss, sum(want), rtol=1e-5)
    for d, w in zip(DIMS, want, strict=True):
        np.testing.assert_allclose(metrics[f"{d}/loss"], w, rtol=1e-5)
    want_names = {f"{d}/{name}" for d in DIMS for name in ("loss", "query_term", "positive_term")}
    assert set(metrics) == want_names | {"loss"}


def test_contrastive_passes_other_arguments_through():
    q, p, _ = _batch(2)
    ids = np.array([0, 1, 0, 2, 3, 4])
    mask = np.array([True, True, True, True, True, False])
    fn = jax.jit(functools.partial(losses.matryoshka_loss, losses.contrastive_loss, DIMS[:2]))
    loss, metrics = fn({"query": q, "positive": p, "negative": None}, temperature=0.1, query_ids=ids,
                       example_mask=mask)
    want = [contrastive_reference(q[:, :d], p[:, :d], temperature=0.1, query_ids=ids, example_mask=mask)
            for d in DIMS[:2]]
    np.testing.assert_allclose(loss, sum(want), rtol=1e-5)
    assert set(metrics) == {f"{d}/{name}" for d in DIMS[:2]
                            for name in ("loss", "accuracy", "positive_similarity")} | {"loss"}


def test_dim_wider_than_the_embedding_is_named():
    q, p, _ = _batch()
    with pytest.raises(ValueError, match="dim=16 is outside"):
        losses.matryoshka_loss(losses.spread_out_loss, (16, 8), {"query": q, "positive": p})
