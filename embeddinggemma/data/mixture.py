"""Which dataset each training step's batch comes from: a pure function of (seed, weights, step).

Step s draws dataset d with probability weights[d] / sum(weights), independently of other steps;
its batch is the next unused batch of d: the k-th batch of d where k counts the earlier steps that
drew d. So every dataset's batches are used in order, none twice, and a restarted run that knows
only its step gets the same batches.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Sequence

import grain
import numpy as np

# Steps are drawn this many at a time; the draws before a step are counted block by block.
BLOCK_STEPS = 1024


@functools.lru_cache(maxsize=16)
def _block_draws(seed: int, cumulative: tuple[float, ...], block: int) -> np.ndarray:
    """[BLOCK_STEPS] dataset indices of the steps of one block."""
    # Inverse CDF of uniform doubles: PCG64 streams and `random()` are stable across numpy
    # versions, where `Generator.choice` is not promised to be.
    uniform = np.random.default_rng([seed, block]).random(BLOCK_STEPS)
    draws = np.searchsorted(np.asarray(cumulative), uniform, side="right")
    return np.minimum(draws, len(cumulative) - 1)


class WeightedBatchSelection(grain.transforms.DatasetSelectionMap):
    """Step -> (dataset index, batch index within that dataset), for `MapDataset.select_from_datasets`."""

    def __init__(self, weights: Sequence[float], seed: int):
        self.weights, self.seed = tuple(float(w) for w in weights), seed
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.ndim != 1 or not len(weights) or np.any(weights <= 0) or not np.all(np.isfinite(weights)):
            raise ValueError(f"Mixture weights must be positive and finite, got {weights.tolist()}.")
        self._cumulative = tuple(np.cumsum(weights / weights.sum()).tolist())
        self._num_datasets = len(weights)
        # _draws_before[b][d]: steps before block b that drew dataset d (extended on demand).
        self._draws_before = [np.zeros(self._num_datasets, np.int64)]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sys.maxsize

    def __getitem__(self, step: int) -> tuple[int, int]:
        block, offset = divmod(int(step), BLOCK_STEPS)
        draws = _block_draws(self.seed, self._cumulative, block)
        dataset = int(draws[offset])
        earlier = self._counts_before(block)[dataset] + np.count_nonzero(draws[:offset] == dataset)
        return dataset, int(earlier)

    def _counts_before(self, block: int) -> np.ndarray:
        with self._lock:
            while len(self._draws_before) <= block:
                done = len(self._draws_before) - 1
                counts = np.bincount(_block_draws(self.seed, self._cumulative, done),
                                     minlength=self._num_datasets)
                self._draws_before.append(self._draws_before[-1] + counts)
            return self._draws_before[block]

    def __getstate__(self) -> dict:
        # Picklable for grain's worker processes: the counts are recomputed there.
        return {"weights": self.weights, "seed": self.seed}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["weights"], state["seed"])
