"""What greedy soup ranks by: a parameter tree -> a score, higher is better.

  suite    the mean main score of the offline evaluation suite's tasks (all, or a subset), at the
           model's full width and the paper's 512 tokens
  heldout  the run's held-out retrieval nDCG@10 (training/heldout.py), on the held-out splits of
           the corpus its config names, as the train command evaluates
Both embed with the parameters in memory; nothing is written or cached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from embeddinggemma.api import Embedder, embed_function
from embeddinggemma.evaluation.encoders import DEFAULT_MAX_LENGTH
from embeddinggemma.evaluation.runner import evaluate_task
from embeddinggemma.evaluation.tasks import Task
from embeddinggemma.model import EmbedderConfig, RuntimeConfig
from embeddinggemma.tokenizer import Tokenizer
from embeddinggemma.training.config import read_config
from embeddinggemma.training.heldout import HeldoutRetrieval
from embeddinggemma.training.inputs import heldout_datasets

ScoreFn = Callable[[Mapping], float]


class _InMemoryEncoder:
    """The evaluation runner's view (TextEncoder) of parameters that are not on disk."""

    def __init__(self, embedder: Embedder, max_length: int, batch_size: int):
        self.embedder, self.max_length, self.batch_size = embedder, max_length, batch_size
        self.prompts = embedder.prompts
        self.identity = "in-memory"  # never cached

    def encode(self, texts: Sequence[str], prompt_name: str | None) -> np.ndarray:
        return self.embedder.encode(list(texts), prompt_name=prompt_name, max_length=self.max_length,
                                    batch_size=self.batch_size)


def suite_score(tasks: Sequence[Task], config: EmbedderConfig, tokenizer_path: str | Path,
                prompts: Mapping[str, str], max_length: int = DEFAULT_MAX_LENGTH,
                batch_size: int = 32) -> ScoreFn:
    """Mean main score over `tasks` (evaluation/tasks.py `load_suite`) at the full width."""
    if not tasks:
        raise ValueError("The suite score needs at least one task.")

    def score(params: Mapping) -> float:
        encoder = _InMemoryEncoder(Embedder(config, params, tokenizer_path, prompts), max_length, batch_size)
        width = config.output_dim
        return float(np.mean([evaluate_task(task, encoder, [width])[width]["main_score"] for task in tasks]))

    return score


def heldout_score(run_dir: str | Path, config: EmbedderConfig, tokenizer_path: str | Path) -> ScoreFn:
    """The run's held-out retrieval nDCG@10 (mean over its corpus's held-out datasets).

    Raises:
      ValueError when the run's config names no corpus (it has no held-out splits).
    """
    run = read_config(run_dir)
    if not run.data.corpus:
        raise ValueError(f"{run_dir}: the run's config names no data.corpus, so it has no held-out "
                         "splits to score with.")
    t = config.transformer
    heldout = HeldoutRetrieval(run.data, heldout_datasets(run.data),
                               Tokenizer(tokenizer_path, bos_id=t.bos_id, eos_id=t.eos_id, pad_id=t.pad_id),
                               max_query_length=run.train.max_query_length,
                               max_document_length=run.train.max_document_length,
                               max_queries=run.eval.max_queries, batch_size=run.eval.batch_size)
    embed = embed_function(config, RuntimeConfig())

    def score(params: Mapping) -> float:
        return heldout.evaluate(lambda tokens: np.asarray(embed(params, tokens)))["eval/ndcg_at_10"]

    return score
