"""The flat-Dirichlet mapping: against numpy and scipy references, and its round trip."""

import numpy as np
import pytest
from scipy import stats

from embeddinggemma.search.simplex import (
    LOW,
    random_uniforms,
    uniforms_for_weights,
    weights_from_uniforms,
)


def test_weights_are_normalised_exponential_draws_as_numpy_computes_them():
    u = np.array([0.9, 0.05, 0.5, 1.0])
    exponentials = np.array([np.log(1 / x) for x in u])  # -log u, written another way
    np.testing.assert_allclose(weights_from_uniforms(u), exponentials / exponentials.sum(), rtol=1e-14)
    assert weights_from_uniforms(u)[3] == 0.0  # u = 1 switches a dataset off


def test_random_mixtures_are_flat_dirichlet_distributed():
    k, draws = 4, 20_000
    uniforms = random_uniforms(seed=3, count=draws, num_datasets=k)
    weights = np.stack([weights_from_uniforms(u) for u in uniforms])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(weights.mean(axis=0), 1 / k, atol=0.005)
    # Each component of Dirichlet(1, ..., 1) is Beta(1, K - 1); numpy's own Dirichlet sampler agrees.
    for j in range(k):
        assert stats.kstest(weights[:, j], stats.beta(1, k - 1).cdf).pvalue > 1e-3
    reference = np.random.default_rng(0).dirichlet(np.ones(k), size=draws)
    assert stats.ks_2samp(weights[:, 0], reference[:, 0]).pvalue > 1e-3


def test_random_uniforms_are_a_function_of_the_seed_within_the_domain():
    a, b = random_uniforms(7, 10, 3), random_uniforms(7, 10, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, random_uniforms(8, 10, 3))
    assert a.shape == (10, 3) and np.all((a >= LOW) & (a <= 1.0))


@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0], [2.0, 0.5, 0.0, 7.5], [1e-6, 1.0], [3.0]])
def test_a_mixture_round_trips_through_its_uniforms(weights):
    uniforms = uniforms_for_weights(weights)
    assert np.all((uniforms >= LOW) & (uniforms <= 1.0))
    w = np.asarray(weights)
    # exp and log round: equal to about 1e-16 absolute (a weight near 0 has fewer exact digits).
    np.testing.assert_allclose(weights_from_uniforms(uniforms), w / w.sum(), rtol=1e-12, atol=1e-15)


OUTSIDE = r"must lie in \[1e-09, 1\]"


@pytest.mark.parametrize("uniforms, match", [([0.5, 1.2], OUTSIDE), ([0.0, 0.5], OUTSIDE),
                                             ([np.nan], OUTSIDE), ([], OUTSIDE),
                                             ([1.0, 1.0], "all weights would be 0")])
def test_bad_uniforms_are_named(uniforms, match):
    with pytest.raises(ValueError, match=match):
        weights_from_uniforms(uniforms)


@pytest.mark.parametrize("weights", [[0.0, 0.0], [-1.0, 2.0], [np.inf, 1.0]])
def test_bad_weights_are_named(weights):
    with pytest.raises(ValueError, match="finite, >= 0 and not all 0"):
        uniforms_for_weights(weights)
