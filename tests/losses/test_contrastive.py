import jax
import jax.numpy as jnp
import numpy as np
import pytest

from embeddinggemma import losses

B, D, T = 6, 8, 0.1
# Jitted: checks jit-compatibility on every call, and eager op-by-op dispatch is slow on small CPUs.
contrastive_loss = jax.jit(losses.contrastive_loss, static_argnames=("include_own_positive",))


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def contrastive_reference(q, p, n=None, *, temperature, alpha=5.0, query_ids=None, positive_ids=None,
                          include_own_positive=True, example_mask=None, weights=None):
    """The paper's formula term by term in float64; `weights` freezes w_i instead of exp(alpha s)."""
    q, p = _unit(np.float64(q)), _unit(np.float64(p))
    query_ids = np.arange(B) if query_ids is None else query_ids
    positive_ids = np.arange(B) if positive_ids is None else positive_ids
    valid = np.ones(len(q), bool) if example_mask is None else example_mask
    losses = []
    for i in np.flatnonzero(valid):
        terms = []
        for j in np.flatnonzero(valid):
            duplicate = query_ids[i] == query_ids[j] or positive_ids[i] == positive_ids[j]
            if (j == i and include_own_positive) or (j != i and not duplicate):
                terms.append(np.exp(q[i] @ p[j] / temperature))
        if n is not None:
            s = q[i] @ _unit(np.float64(n[i]))
            w = np.exp(alpha * s) if weights is None else weights[i]
            terms.append(w * np.exp(s / temperature))
        if terms:
            losses.append(-np.log(np.exp(q[i] @ p[i] / temperature) / np.sum(terms)))
    return np.mean(losses)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    # Rows of different lengths: the loss must normalise them itself.
    q, p, n = (rng.normal(size=(B, D)) * rng.uniform(0.5, 3.0, (B, 1)) for _ in range(3))
    return q.astype(np.float32), p.astype(np.float32), n.astype(np.float32)


def _close(got, want):
    np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-6)


def test_in_batch_only_matches_reference():
    q, p, _ = _batch()
    loss, metrics = contrastive_loss(q, p, temperature=T)
    _close(loss, contrastive_reference(q, p, temperature=T))
    assert "hard_negative_similarity" not in metrics


def test_hard_negative_matches_reference():
    q, p, n = _batch()
    loss, metrics = contrastive_loss(q, p, n, temperature=T, hard_negative_alpha=5.0)
    _close(loss, contrastive_reference(q, p, n, temperature=T, alpha=5.0))
    want_similarity = np.mean(np.sum(_unit(np.float64(q)) * _unit(np.float64(n)), axis=-1))
    _close(metrics["hard_negative_similarity"], want_similarity)


@pytest.mark.parametrize("include_own_positive", [True, False])
def test_duplicates_match_reference(include_own_positive):
    q, p, n = _batch(1)
    ids = {"query_ids": np.array([0, 0, 1, 2, 3, 3]), "positive_ids": np.array([5, 6, 7, 5, 8, 9])}
    loss, _ = contrastive_loss(q, p, n, temperature=T, include_own_positive=include_own_positive, **ids)
    _close(loss, contrastive_reference(q, p, n, temperature=T, include_own_positive=include_own_positive,
                                       **ids))


def _lower_only_similarity_to(q0, kept, lowered):
    """A unit q0' with q0's dot products against `kept` and a smaller one against `lowered`."""
    q0 = _unit(np.float64(q0))
    _, _, vt = np.linalg.svd(_unit(np.float64(kept)))
    complement = vt[len(kept):]  # orthonormal rows perpendicular to every kept vector
    c = complement @ q0
    # Turn q0's part outside span(kept) away from `lowered`; its length, so |q0'| = 1, is unchanged.
    towards = complement @ _unit(np.float64(lowered))
    moved = q0 + complement.T @ (-np.linalg.norm(c) * _unit(towards) - c)
    assert q0 @ _unit(lowered) - moved @ _unit(lowered) > 0.5
    return moved.astype(np.float32)


@pytest.mark.parametrize("ids_name", ["query_ids", "positive_ids"])
def test_masked_duplicate_similarity_does_not_matter(ids_name):
    q, p, _ = _batch(2)
    p[1] = q[0] + 0.3 * p[1]  # close to q_0: a strong competitor for anchor 0 unless masked
    ids = {ids_name: np.array([4, 4, 0, 1, 2, 3])}  # example 1 is a false negative for anchor 0
    moved = q.copy()
    moved[0] = _lower_only_similarity_to(q[0], p[[0, 2, 3, 4, 5]], p[1])

    def loss(query, **kwargs):
        return float(contrastive_loss(query, p, temperature=T, **kwargs)[0])

    np.testing.assert_allclose(loss(moved, **ids), loss(q, **ids), rtol=1e-5)
    assert abs(loss(moved) - loss(q)) > 1e-2  # unmasked, the same move changes the loss


def test_literal_form_is_not_bounded_below():
    q, p, _ = _batch(3)
    easy = q.copy()
    easy[:] = p  # every query equals its positive: the negatives are easy
    loss, _ = contrastive_loss(easy, p, temperature=T, include_own_positive=False)
    _close(loss, contrastive_reference(easy, p, temperature=T, include_own_positive=False))
    assert float(loss) < 0


def test_example_mask_matches_reference():
    q, p, n = _batch(4)
    mask = np.array([True, False, True, True, False, True])
    ids = np.array([0, 1, 2, 0, 3, 4])
    loss, _ = contrastive_loss(q, p, n, temperature=T, query_ids=ids, include_own_positive=False,
                               example_mask=mask)
    _close(loss, contrastive_reference(q, p, n, temperature=T, query_ids=ids, include_own_positive=False,
                                       example_mask=mask))


def test_zero_padding_rows_give_finite_gradients():
    q, p, n = _batch(5)
    mask = np.array([True, True, True, True, False, False])
    q[~mask] = p[~mask] = n[~mask] = 0.0
    grads = jax.grad(lambda *x: contrastive_loss(*x, temperature=T, example_mask=mask)[0],
                     argnums=(0, 1, 2))(q, p, n)
    for g in grads:
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(g[~mask], 0.0)


def _finite_difference(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def test_hard_negative_weight_carries_no_gradient():
    q, p, n = _batch(6)
    alpha = 5.0
    frozen_weights = np.exp(alpha * np.sum(_unit(np.float64(q)) * _unit(np.float64(n)), axis=-1))
    got = jax.grad(lambda x: contrastive_loss(q, p, x, temperature=T, hard_negative_alpha=alpha)[0])(n)

    with_frozen_w = _finite_difference(
        lambda x: contrastive_reference(q, p, x, temperature=T, alpha=alpha, weights=frozen_weights),
        np.float64(n))
    with_live_w = _finite_difference(
        lambda x: contrastive_reference(q, p, x, temperature=T, alpha=alpha), np.float64(n))
    np.testing.assert_allclose(got, with_frozen_w, rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, with_live_w, rtol=1e-2, atol=1e-3)


def test_bfloat16_inputs_are_scored_in_float32():
    q, p, n = (jnp.asarray(x, jnp.bfloat16) for x in _batch(7))
    loss, _ = contrastive_loss(q, p, n, temperature=T)
    assert loss.dtype == jnp.float32
    _close(loss, contrastive_reference(*(np.asarray(x, np.float64) for x in (q, p, n)), temperature=T))


def test_accuracy_on_constructed_example():
    e = np.eye(4, dtype=np.float32)
    q = e[:3]
    # Anchor 0: 1 vs 0, right. Anchor 1: 0.71 vs 0, right. Anchor 2: its own 0.32 loses to p_1's 0.71.
    p = np.stack([e[0], e[1] + e[2], e[2] + 3 * e[3]])
    _, metrics = contrastive_loss(q, p, temperature=T)
    np.testing.assert_allclose(metrics["accuracy"], 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(metrics["positive_similarity"], (1 + 0.5**0.5 + 0.1**0.5) / 3, rtol=1e-6)

    # A hard negative equal to q_1 beats p_1 (1 > 0.71): anchor 1 is now wrong too.
    _, metrics = contrastive_loss(q, p, np.stack([e[3], e[1], e[3]]), temperature=T)
    np.testing.assert_allclose(metrics["accuracy"], 1 / 3, rtol=1e-6)

    # p_1 and p_2 sharing a positive id hides p_1 from anchor 2 (0.32 > p_0's 0): every anchor is right.
    _, metrics = contrastive_loss(q, p, temperature=T, positive_ids=np.array([0, 1, 1]))
    np.testing.assert_allclose(metrics["accuracy"], 1.0, rtol=1e-6)
