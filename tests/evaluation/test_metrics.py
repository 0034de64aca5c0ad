"""Scores against independent computations; the mteb parity test covers the procedures."""

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from embeddinggemma.evaluation import metrics


def test_retrieval_ndcg_at_10_matches_scikit_learn_with_one_relevant_document():
    rng = np.random.default_rng(0)
    queries, docs = rng.normal(size=(30, 8)), rng.normal(size=(50, 8))
    relevant = rng.integers(0, 50, size=30)
    scores = metrics.retrieval_scores(
        [f"q{i}" for i in range(30)],
        queries,
        [f"d{j}" for j in range(50)],
        docs,
        {f"q{i}": {f"d{relevant[i]}": 1} for i in range(30)},
    )
    similarity = queries.astype(np.float32) @ docs.astype(np.float32).T
    truth = np.zeros_like(similarity)
    truth[np.arange(30), relevant] = 1
    expected = np.mean([ndcg_score(truth[i : i + 1], similarity[i : i + 1], k=10) for i in range(30)])
    assert scores["ndcg_at_10"] == pytest.approx(round(expected, 5), abs=1e-5)
    assert 0 < scores["ndcg_at_10"] < 1


def test_bitext_mining_f1_is_one_for_perfect_alignment_and_counts_mistakes():
    source = np.eye(4, dtype=np.float32)
    assert metrics.bitext_mining_scores(source, source)["f1"] == 1.0
    swapped = source[[1, 0, 2, 3]]
    assert metrics.bitext_mining_scores(source, swapped)["accuracy"] == 0.5


def test_classification_experiments_take_eight_per_label_from_a_carried_shuffle():
    labels = [i % 3 for i in range(60)]
    experiments = metrics.classification_experiments(labels)
    assert len(experiments) == 10 and all(len(e) == 24 for e in experiments)
    assert all(sorted(labels[i] for i in e) == [0] * 8 + [1] * 8 + [2] * 8 for e in experiments)
    assert len({tuple(e) for e in experiments}) == 10
    assert metrics.classification_experiments(labels) == experiments


def test_pair_classification_takes_the_best_average_precision():
    first = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)
    second = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], np.float32)
    scores = metrics.pair_classification_scores(first, second, [1, 1, 0, 0])
    assert scores["cosine_ap"] == 1.0 and scores["max_ap"] == 1.0
