"""Runs suite tasks with an encoder: embeds each task's texts once (cached on disk), then scores
every Matryoshka dimension from the truncated, re-normalised embeddings."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from embeddinggemma.atomic import atomic_write
from embeddinggemma.evaluation import metrics
from embeddinggemma.evaluation.tasks import Task, prompt_name
from embeddinggemma.paths import AnyPath, as_path

logger = logging.getLogger(__name__)


class TextEncoder(Protocol):
    """What the runner needs of a model. `identity` names everything that changes its vectors
    (checkpoint, dtype, quantisation, max length): it keys the embedding cache."""

    identity: str
    prompts: Mapping[str, str]

    def encode(self, texts: Sequence[str], prompt_name: str | None) -> np.ndarray:
        """[len(texts), D] L2-normalised float32 embeddings at the full width."""


class EmbeddingCache:
    """Embeddings as `.npy` files named by a hash of (encoder identity, task data, texts' role, prompt),
    in a local directory or a bucket (`gs://...`; each file one object, uploaded whole)."""

    def __init__(self, directory: str | Path | None):
        self.directory = as_path(directory).expanduser() if directory else None

    def _path(self, key: tuple[str, ...], suffix: str) -> AnyPath:
        return self.directory / (hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32] + suffix)

    def get_or_compute(self, key: tuple[str, ...], compute) -> np.ndarray:
        if self.directory is None:
            return compute()
        path = self._path(key, ".npy")
        if path.is_file():
            return np.load(io.BytesIO(path.read_bytes()))
        vectors = np.asarray(compute(), np.float32)
        buffer = io.BytesIO()
        np.save(buffer, vectors)
        atomic_write(path, buffer.getvalue())  # a concurrent or killed run never leaves half a file
        return vectors

    def get_or_compute_scores(self, key: tuple[str, ...], compute) -> dict:
        """Scores are cached too: clustering's k-means runs cost more than a small model's embeddings."""
        if self.directory is None:
            return compute()
        path = self._path(key, ".json")
        if path.is_file():
            return json.loads(path.read_text())
        scores = compute()
        atomic_write(path, json.dumps(scores))
        return scores


def truncate(vectors: np.ndarray, dim: int) -> np.ndarray:
    """The first `dim` components, re-normalised (Matryoshka)."""
    head = vectors[:, :dim].astype(np.float64)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return (head / np.maximum(norms, 1e-12)).astype(np.float32)


def _classification_training(labels) -> tuple[list[int], list[list[int]]]:
    """(the training examples MTEB embeds: the union of its undersampling experiments, sorted;
    each experiment's examples as rows of that union)."""
    experiments = metrics.classification_experiments(labels)
    used = sorted(set().union(*experiments))
    row = {original: i for i, original in enumerate(used)}
    return used, [[row[i] for i in chosen] for chosen in experiments]


def _corpus_text(document: Mapping[str, str]) -> str:
    # MTEB hands a document to the model as "title text" when it has a title.
    return f"{document.get('title') or ''} {document['text']}".strip()


def _embed_roles(task: Task, encoder: TextEncoder, cache: EmbeddingCache) -> dict[str, np.ndarray]:
    """Every set of texts the task embeds, by role."""
    d = task.data
    texts: dict[str, tuple[list[str], str | None]] = {}
    if task.type == "Retrieval":
        texts["queries"] = (list(d["queries"].values()), "query")
        texts["corpus"] = ([_corpus_text(doc) for doc in d["corpus"].values()], "document")
    elif task.type == "BitextMining":
        for subset, pairs in d["subsets"].items():
            texts[f"{subset}/sentence1"] = (pairs["sentence1"], None)
            texts[f"{subset}/sentence2"] = (pairs["sentence2"], None)
    elif task.type == "Classification":
        used, _ = _classification_training(d["train"]["label"])
        texts["train"] = ([d["train"]["text"][i] for i in used], None)
        texts["test"] = (d["test"]["text"], None)
    elif task.type == "Clustering":
        texts["sentences"] = (d["sentences"], None)
    elif task.type in ("PairClassification", "STS"):
        texts["sentence1"] = (d["sentence1"], None)
        texts["sentence2"] = (d["sentence2"], None)
    else:
        raise ValueError(f"Task {task.name}: unknown task type {task.type!r}.")
    out = {}
    for role, (items, prompt_type) in texts.items():
        name = prompt_name(encoder.prompts, task.name, task.type, prompt_type)
        out[role] = cache.get_or_compute(
            (encoder.identity, task.sha256, role, str(name)),
            lambda items=items, name=name: encoder.encode(items, name),
        )
    return out


def _score(task: Task, e: Mapping[str, np.ndarray]) -> dict[str, float]:
    d = task.data
    if task.type == "Retrieval":
        return metrics.retrieval_scores(
            list(d["queries"]), e["queries"], list(d["corpus"]), e["corpus"], d["relevant_docs"]
        )
    if task.type == "BitextMining":
        per_subset = {
            s: metrics.bitext_mining_scores(e[f"{s}/sentence1"], e[f"{s}/sentence2"]) for s in d["subsets"]
        }
        out = {f"{s}/f1": v["f1"] for s, v in per_subset.items()}
        out["f1"] = float(np.mean([v["f1"] for v in per_subset.values()]))
        out["accuracy"] = float(np.mean([v["accuracy"] for v in per_subset.values()]))
        return out
    if task.type == "Classification":
        labels = d["train"]["label"]
        used, experiments = _classification_training(labels)
        return metrics.classification_scores(
            e["train"], [labels[i] for i in used], e["test"], d["test"]["label"], experiments
        )
    if task.type == "Clustering":
        return metrics.clustering_scores(e["sentences"], d["labels"])
    if task.type == "PairClassification":
        return metrics.pair_classification_scores(e["sentence1"], e["sentence2"], d["labels"])
    return metrics.sts_scores(e["sentence1"], e["sentence2"], d["scores"])


def evaluate_task(
    task: Task, encoder: TextEncoder, dims: Sequence[int], cache: EmbeddingCache | None = None
) -> dict[int, dict[str, float]]:
    """{dim: scores (with "main_score")} of one task."""
    started = time.perf_counter()
    cache = cache or EmbeddingCache(None)
    embeddings = None
    results = {}
    for dim in dims:

        def compute(dim=dim):
            nonlocal embeddings
            embeddings = embeddings or _embed_roles(task, encoder, cache)
            width = next(iter(embeddings.values())).shape[1]
            if not 0 < dim <= width:
                raise ValueError(f"dim {dim} is outside 1..{width} (the model's width).")
            return _score(task, {k: truncate(v, dim) for k, v in embeddings.items()})

        scores = cache.get_or_compute_scores(
            (encoder.identity, task.sha256, "scores", str(dim), str(metrics.METRICS_VERSION)), compute
        )
        results[dim] = {"main_score": scores[task.main_score], **scores}
    logger.info("%s: %.1f s", task.name, time.perf_counter() - started)
    return results
