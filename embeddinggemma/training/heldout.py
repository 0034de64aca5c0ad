"""The periodic evaluation hook: retrieval nDCG@10 on held-out pairs.

Each held-out dataset becomes a small retrieval task: its queries (with their task prompt) search
the set of its distinct positives (with the document prompt); each query has one relevant
document, its own positive. The records are tokenised once; each evaluation only embeds them.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections
import numpy as np

from embeddinggemma.data.pipeline import make_eval_batches
from embeddinggemma.tokenizer import Tokenizer

EmbedFn = Callable[[np.ndarray], np.ndarray]  # [B, T] token ids -> [B, P] unit vectors


def ndcg_at_10(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """nDCG@10 of each query [Q] when query q's only relevant document is `relevant[q]`.

    With a single relevant document the ideal DCG is 1, so the score is 1 / log2(rank + 2) for a
    0-based rank below 10, else 0. Ties are broken in the relevant document's favour.
    """
    relevant_scores = scores[np.arange(len(scores)), relevant]
    rank = (scores > relevant_scores[:, None]).sum(axis=1)
    return np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0)


class HeldoutRetrieval:
    """`evaluate(embed) -> {"eval/<dataset>/ndcg_at_10": ..., "eval/ndcg_at_10": mean over datasets}`."""

    def __init__(self, data_cfg: ml_collections.ConfigDict, datasets: ml_collections.ConfigDict,
                 tokenizer: Tokenizer, *, max_query_length: int, max_document_length: int,
                 max_queries: int, batch_size: int):
        cfg = ml_collections.ConfigDict(data_cfg.to_dict())
        cfg.datasets = ml_collections.ConfigDict(datasets.to_dict())
        cfg.teacher = ""
        self.tasks = {}
        for name in sorted(datasets):
            batches, count = [], 0
            for batch in make_eval_batches(cfg, name, tokenizer, batch_size=batch_size,
                                           max_query_length=max_query_length,
                                           max_document_length=max_document_length, hard_negatives=False):
                batches.append(batch)
                count += int(batch["example_mask"].sum())
                if count >= max_queries:
                    break
            self.tasks[name] = (batches, max_queries)

    def evaluate(self, embed: EmbedFn) -> dict[str, float]:
        metrics = {}
        for name, (batches, limit) in self.tasks.items():
            mask = np.concatenate([b["example_mask"] for b in batches])
            keep = np.flatnonzero(mask)[:limit]
            queries = np.concatenate([embed(b["query"]) for b in batches])[keep]
            positives = np.concatenate([embed(b["positive"]) for b in batches])[keep]
            positive_ids = np.concatenate([b["positive_id"] for b in batches])[keep]
            # Distinct documents: equal positive texts (equal ids) are one document.
            _, first, relevant = np.unique(positive_ids, return_index=True, return_inverse=True)
            scores = queries.astype(np.float64) @ positives[first].astype(np.float64).T
            metrics[f"eval/{name}/ndcg_at_10"] = float(ndcg_at_10(scores, relevant.reshape(-1)).mean())
        if metrics:
            metrics["eval/ndcg_at_10"] = float(np.mean(list(metrics.values())))
        return metrics
