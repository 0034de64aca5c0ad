"""Task scores computed as MTEB (v2.26) computes them, with the libraries it uses.

Each function takes embeddings (L2-normalised rows) and the task's labels; the procedures, seeds and
sample sizes are MTEB's, so that a score here is the score MTEB reports for the same embeddings
(tests/evaluation/test_mteb.py runs mteb itself to check it):

  Retrieval           pytrec_eval nDCG@10 (and MAP, recall, precision) over the top 1000 by cosine
  BitextMining        nearest neighbour by cosine; scikit-learn F1, weighted average
  Classification      logistic regression (max_iter 100, seed 42) on 8 examples per label, 10
                      undersampling experiments, accuracy averaged
  Clustering          MiniBatchKMeans (k = number of labels, batch 512, seed 42) on 10 bootstrap
                      samples of 16,384; V-measure averaged
  PairClassification  average precision of cosine, dot, Euclidean and Manhattan scores; max AP
  STS                 Spearman correlation of cosine similarity with the gold scores
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

# Bumped whenever a score's computation changes: cached scores of older versions are not reused.
METRICS_VERSION = 1
SEED = 42
RETRIEVAL_TOP_K = 1000
CLASSIFICATION_EXPERIMENTS = 10
SAMPLES_PER_LABEL = 8
CLUSTERING_RUNS = 10
CLUSTERING_SAMPLE = 16_384
KMEANS_BATCH_SIZE = 512


def retrieval_scores(
    query_ids: Sequence[str],
    queries: np.ndarray,
    doc_ids: Sequence[str],
    docs: np.ndarray,
    relevant_docs: Mapping[str, Mapping[str, int]],
) -> dict[str, float]:
    import pytrec_eval

    scores = queries.astype(np.float32) @ docs.astype(np.float32).T
    top = min(RETRIEVAL_TOP_K, len(doc_ids))
    run = {}
    for q, row in zip(query_ids, scores, strict=True):
        best = np.argpartition(-row, top - 1)[:top] if top < len(doc_ids) else range(len(doc_ids))
        run[q] = {doc_ids[d]: float(row[d]) for d in best}
    qrels = {q: {d: int(r) for d, r in docs_.items()} for q, docs_ in relevant_docs.items() if docs_}
    measures = {"ndcg_cut.10", "map_cut.10", "recall.10", "P.1"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    names = {
        "ndcg_cut_10": "ndcg_at_10",
        "map_cut_10": "map_at_10",
        "recall_10": "recall_at_10",
        "P_1": "precision_at_1",
    }
    return {
        ours: round(float(np.mean([s[theirs] for s in per_query.values()])), 5)
        for theirs, ours in names.items()
    }


def bitext_mining_scores(source: np.ndarray, target: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    predictions = np.argmax(source @ target.T, axis=1)
    gold = np.arange(len(source))
    return {
        "f1": float(f1_score(gold, predictions, zero_division=0, average="weighted")),
        "accuracy": float(accuracy_score(gold, predictions)),
    }


def classification_experiments(
    labels: Sequence,
    n_experiments: int = CLASSIFICATION_EXPERIMENTS,
    samples_per_label: int = SAMPLES_PER_LABEL,
) -> list[list[int]]:
    """The training indices of each experiment: MTEB's undersampling, one shuffle carried over."""
    idxs = list(range(len(labels)))
    experiments = []
    for _ in range(n_experiments):
        np.random.RandomState(SEED).shuffle(idxs)
        counts: dict = defaultdict(int)
        chosen = []
        for i in idxs:
            if counts[labels[i]] < samples_per_label:
                chosen.append(i)
                counts[labels[i]] += 1
        experiments.append(chosen)
    return experiments


def classification_scores(
    train: np.ndarray,
    train_labels: Sequence,
    test: np.ndarray,
    test_labels: Sequence,
    experiments: Sequence[Sequence[int]],
) -> dict[str, float]:
    """`train` holds the embeddings of the training examples that `experiments` index."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    accuracy, f1 = [], []
    for chosen in experiments:
        model = LogisticRegression(max_iter=100, random_state=SEED)
        model.fit(train[list(chosen)], [train_labels[i] for i in chosen])
        predicted = model.predict(test)
        accuracy.append(accuracy_score(test_labels, predicted))
        f1.append(f1_score(test_labels, predicted, average="macro"))
    return {"accuracy": float(np.mean(accuracy)), "f1": float(np.mean(f1))}


def clustering_scores(embeddings: np.ndarray, labels: Sequence) -> dict[str, float]:
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import v_measure_score

    labels = np.asarray(labels)
    rng = random.Random(SEED)
    kmeans = MiniBatchKMeans(
        n_clusters=np.unique(labels).size,
        batch_size=KMEANS_BATCH_SIZE,
        init="k-means++",
        n_init=1,
        random_state=SEED,
    )
    scores = []
    for _ in range(CLUSTERING_RUNS):
        sample = rng.choices(range(len(embeddings)), k=CLUSTERING_SAMPLE)
        assignment = kmeans.fit_predict(embeddings[sample])
        scores.append(float(v_measure_score(labels[sample], assignment)))
    return {"v_measure": float(np.mean(scores)), "v_measure_std": float(np.std(scores))}


def pair_classification_scores(
    first: np.ndarray, second: np.ndarray, labels: Sequence[int]
) -> dict[str, float]:
    from sklearn.metrics import average_precision_score
    from sklearn.metrics.pairwise import (
        paired_cosine_distances,
        paired_euclidean_distances,
        paired_manhattan_distances,
    )

    scores = {
        "cosine": 1 - paired_cosine_distances(first, second),
        "dot": np.sum(first * second, axis=1),
        "euclidean": -paired_euclidean_distances(first, second),
        "manhattan": -paired_manhattan_distances(first, second),
    }
    out = {f"{name}_ap": float(average_precision_score(labels, s)) for name, s in scores.items()}
    out["max_ap"] = max(out.values())
    return out


def sts_scores(first: np.ndarray, second: np.ndarray, gold: Sequence[float]) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics.pairwise import paired_cosine_distances

    cosine = 1 - paired_cosine_distances(first, second)
    return {
        "cosine_spearman": float(spearmanr(gold, cosine)[0]),
        "cosine_pearson": float(pearsonr(gold, cosine)[0]),
    }
