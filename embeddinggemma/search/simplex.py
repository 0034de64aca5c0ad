"""Mixture weights on the simplex from independent uniforms: the flat-Dirichlet trick.

With U_1..U_K independent and uniform on (0, 1], E_k = -log U_k are independent Exp(1) draws and
E / sum(E) is Dirichlet(1, ..., 1), the uniform distribution on the simplex. The search's
parameters are the uniforms, so a sampler that models independent parameters in a box (TPE)
searches the simplex, and a random draw of the uniforms is a flat-Dirichlet mixture.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The uniforms' lower bound: -log(LOW) ~ 20.7, so one dataset may weigh any multiple of another's
# -log U while a sampler never proposes U = 0 (an infinite weight).
LOW = 1e-9


def weights_from_uniforms(uniforms: Sequence[float]) -> np.ndarray:
    """[K] uniforms in [LOW, 1] -> [K] float64 weights >= 0 that sum to 1.

    Raises:
      ValueError when a uniform is outside [LOW, 1], or all are 1 (every weight would be 0).
    """
    u = np.asarray(uniforms, dtype=np.float64)
    if u.ndim != 1 or not len(u) or np.any(~(u >= LOW)) or np.any(~(u <= 1.0)):
        raise ValueError(f"Mixture uniforms must lie in [{LOW}, 1], got {u.tolist()}.")
    exponentials = -np.log(u)
    total = exponentials.sum()
    if total == 0:
        raise ValueError("Every mixture uniform is 1: all weights would be 0.")
    return exponentials / total


def uniforms_for_weights(weights: Sequence[float]) -> np.ndarray:
    """[K] uniforms that `weights_from_uniforms` maps to the normalised `weights` [K].

    exp(-w / sum(w)) lies in [1/e, 1]; the round trip is exact up to float rounding of exp and log.

    Raises:
      ValueError when a weight is negative or not finite, or all are 0.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not len(w) or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() == 0:
        raise ValueError(f"Mixture weights must be finite, >= 0 and not all 0, got {w.tolist()}.")
    return np.exp(-w / w.sum())


def random_uniforms(seed: int, count: int, num_datasets: int) -> np.ndarray:
    """[count, num_datasets] uniforms in (0, 1] (below LOW raised to it): `count` flat-Dirichlet
    mixtures, a pure function of the seed."""
    # 1 - [0, 1) is (0, 1]; PCG64's random() is stable across numpy versions.
    u = 1.0 - np.random.default_rng([seed, num_datasets]).random((count, num_datasets))
    return np.maximum(u, LOW)
