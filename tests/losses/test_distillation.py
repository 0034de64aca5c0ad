import jax
import numpy as np
import pytest

from embeddinggemma import losses

distillation_loss = jax.jit(losses.distillation_loss, static_argnames=("distance",))
embedding_distillation_loss = jax.jit(losses.embedding_distillation_loss, static_argnames=("distance",))


def _unit(x):
    x = np.float64(x)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


REFERENCE_DISTANCES = {
    "cosine": lambda s, t: 1.0 - s @ t,
    "l2": lambda s, t: np.sqrt(np.sum((s - t) ** 2)),
    "squared_l2": lambda s, t: np.sum((s - t) ** 2),
}


def distillation_reference(student, teacher, distance):
    s, t = _unit(student), _unit(teacher)
    return np.mean([REFERENCE_DISTANCES[distance](s[i], t[i]) for i in range(len(s))])


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(6, 8)).astype(np.float32) * rng.uniform(0.5, 3.0, (6, 1)).astype(np.float32)
            for _ in range(2))


@pytest.mark.parametrize("distance", sorted(REFERENCE_DISTANCES))
def test_matches_reference(distance):
    student, teacher = _pair()
    loss, metrics = distillation_loss(student, teacher, distance)
    np.testing.assert_allclose(loss, distillation_reference(student, teacher, distance), rtol=1e-5)
    assert set(metrics) == {"loss"}


@pytest.mark.parametrize("distance", sorted(REFERENCE_DISTANCES))
def test_zero_when_student_equals_teacher(distance):
    student, _ = _pair(1)
    loss, _ = distillation_loss(student, student, distance)
    np.testing.assert_allclose(loss, 0.0, atol=1e-6)
    grad = jax.grad(lambda s: distillation_loss(s, student, distance)[0])(student)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("distance", sorted(REFERENCE_DISTANCES))
def test_teacher_gets_no_gradient(distance):
    student, teacher = _pair(2)
    grad = jax.grad(lambda t: distillation_loss(student, t, distance)[0])(teacher)
    np.testing.assert_array_equal(grad, 0.0)


def test_unknown_distance_names_the_valid_ones():
    student, teacher = _pair()
    with pytest.raises(ValueError, match="'cosine', 'l2', 'squared_l2'"):
        losses.distillation_loss(student, teacher, "kl")


def test_example_mask():
    student, teacher = _pair(3)
    mask = np.array([True, True, False, True, False, True])
    loss, _ = distillation_loss(student, teacher, "l2", mask)
    np.testing.assert_allclose(loss, distillation_reference(student[mask], teacher[mask], "l2"), rtol=1e-5)


def test_embedding_distillation_sums_shared_keys():
    (q_s, q_t), (p_s, p_t), (n_s, _) = _pair(4), _pair(5), _pair(6)
    # The teacher has no hard negative: only query and positive count.
    loss, metrics = embedding_distillation_loss(
        {"query": q_s, "positive": p_s, "negative": n_s}, {"query": q_t, "positive": p_t}, "cosine")
    want_q = distillation_reference(q_s, q_t, "cosine")
    want_p = distillation_reference(p_s, p_t, "cosine")
    assert set(metrics) == {"query/loss", "positive/loss", "loss"}
    np.testing.assert_allclose(metrics["query/loss"], want_q, rtol=1e-5)
    np.testing.assert_allclose(metrics["positive/loss"], want_p, rtol=1e-5)
    np.testing.assert_allclose(loss, want_q + want_p, rtol=1e-5)


def test_embedding_distillation_without_shared_keys_fails():
    student, teacher = _pair()
    with pytest.raises(ValueError, match="share none"):
        losses.embedding_distillation_loss({"query": student}, {"positive": teacher})
