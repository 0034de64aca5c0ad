"""The step -> (dataset, batch) map: follows the weights, uses each dataset's batches in order."""

import pickle

import numpy as np
import pytest
from scipy.stats import chisquare

from embeddinggemma.data.mixture import BLOCK_STEPS, WeightedBatchSelection

WEIGHTS = (5.0, 3.0, 1.5, 0.5)


def test_draws_follow_the_weights():
    selection = WeightedBatchSelection(WEIGHTS, seed=0)
    draws = np.array([selection[s][0] for s in range(20_000)])
    counts = np.bincount(draws, minlength=len(WEIGHTS))
    expected = np.array(WEIGHTS) / sum(WEIGHTS) * len(draws)
    assert chisquare(counts, expected).pvalue > 0.001


def test_each_dataset_uses_its_batches_in_order_across_blocks():
    selection = WeightedBatchSelection(WEIGHTS, seed=3)
    seen = {d: [] for d in range(len(WEIGHTS))}
    for step in range(3 * BLOCK_STEPS + 5):
        dataset, index = selection[step]
        seen[dataset].append(index)
    assert all(indices == list(range(len(indices))) for indices in seen.values())


def test_a_function_of_seed_and_step():
    a, b = WeightedBatchSelection(WEIGHTS, seed=1), WeightedBatchSelection(WEIGHTS, seed=1)
    late = 5 * BLOCK_STEPS + 17
    assert b[late] == a[late] and [a[s] for s in range(50)] == [b[s] for s in range(50)]
    other = WeightedBatchSelection(WEIGHTS, seed=2)
    assert [a[s] for s in range(50)] != [other[s] for s in range(50)]
    assert pickle.loads(pickle.dumps(a))[late] == a[late]


@pytest.mark.parametrize("weights", [(), (1.0, 0.0), (1.0, -1.0), (float("inf"),)])
def test_bad_weights_are_rejected(weights):
    with pytest.raises(ValueError, match="positive and finite"):
        WeightedBatchSelection(weights, seed=0)
