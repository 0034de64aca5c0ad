import jax
import numpy as np

from embeddinggemma import losses

spread_out_loss = jax.jit(losses.spread_out_loss)


def spread_out_reference(q, p):
    """mean over i != j of (x_i . x_j)^2 for queries plus the same for positives, in float64."""
    def term(x):
        x = np.float64(x) / np.linalg.norm(np.float64(x), axis=-1, keepdims=True)
        return np.mean([(x[i] @ x[j]) ** 2 for i in range(len(x)) for j in range(len(x)) if i != j])
    return term(q) + term(p)


def _batch(seed=0, batch=6, dim=8):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(batch, dim)).astype(np.float32) for _ in range(2))


def test_matches_reference():
    q, p = _batch()
    loss, metrics = spread_out_loss(q, p)
    np.testing.assert_allclose(loss, spread_out_reference(q, p), rtol=1e-5)
    np.testing.assert_allclose(metrics["query_term"], spread_out_reference(q, q) / 2, rtol=1e-5)
    np.testing.assert_allclose(metrics["positive_term"], spread_out_reference(p, p) / 2, rtol=1e-5)


def test_rescaling_rows_changes_nothing():
    q, p = _batch(1)
    scales = np.linspace(0.1, 20.0, len(q), dtype=np.float32)[:, None]
    np.testing.assert_allclose(spread_out_loss(q * scales, p / scales)[0], spread_out_reference(q, p),
                               rtol=1e-5)


def test_example_mask_drops_rows():
    q, p = _batch(2)
    mask = np.array([True, False, True, True, False, True])
    np.testing.assert_allclose(spread_out_loss(q, p, mask)[0], spread_out_reference(q[mask], p[mask]),
                               rtol=1e-5)


def test_fewer_than_two_valid_rows_give_zero():
    q, p = _batch(3)
    loss, _ = spread_out_loss(q, p, np.array([False, False, True, False, False, False]))
    assert float(loss) == 0.0
