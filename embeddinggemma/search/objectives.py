"""What a trial of the mixture search maximises, read from its finished run directory.

    heldout             the run's held-out retrieval nDCG@10 at its last step (training/heldout.py:
                        the mean over the corpus's held-out datasets, from the run's eval.jsonl)
    suite               the evaluation suite's mean main score over its tasks, at the model's full
                        width, for the run's export/ (evaluation/evaluate_checkpoints.py)
    suite:TASK1,TASK2   the same over the named tasks

Scores are fractions (nDCG@10 0.25, not 25 %), so both kinds read alike in the search's tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import ml_collections
import numpy as np

from embeddinggemma.errors import ConfigError
from embeddinggemma.training.checkpoints import EXPORT_DIR
from embeddinggemma.training.embedding_config import model_config
from embeddinggemma.training.metrics import EVAL_FILE, read_jsonl

HELDOUT, SUITE = "heldout", "suite"
HELDOUT_MEAN = "eval/ndcg_at_10"  # training/heldout.py's mean over datasets


@dataclasses.dataclass(frozen=True)
class SearchObjective:
    kind: str                     # HELDOUT or SUITE
    tasks: tuple[str, ...] = ()   # SUITE: the tasks averaged; () = every task of the suite

    @classmethod
    def parse(cls, text: str) -> SearchObjective:
        """"heldout", "suite" or "suite:TASK1,TASK2" -> the objective.

        Raises:
          ConfigError naming the text and the valid forms.
        """
        kind, colon, tasks = text.strip().partition(":")
        names = tuple(t.strip() for t in tasks.split(",") if t.strip())
        if kind == HELDOUT and not colon:
            return cls(HELDOUT)
        if kind == SUITE and (names or not colon):
            return cls(SUITE, names)
        raise ConfigError(f"--objective={text!r}; valid: {HELDOUT}, {SUITE} or {SUITE}:TASK1,TASK2.")

    def __str__(self) -> str:
        return self.kind + (":" + ",".join(self.tasks) if self.tasks else "")


def check_objective(objective: SearchObjective, config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the config field the objective needs and `config` lacks."""
    if objective.kind == HELDOUT:
        if not config.data.corpus:
            raise ConfigError("--objective=heldout scores the held-out splits of data.corpus, which is "
                              "empty.")
        if config.eval.every_steps < 1:
            raise ConfigError("--objective=heldout needs the run's held-out evaluation: eval.every_steps "
                              "is 0.")
    elif not config.checkpoint.export_params:
        raise ConfigError(f"--objective={objective} scores the run's export/: checkpoint.export_params "
                          "is False.")


def score_run(objective: SearchObjective, config: ml_collections.ConfigDict, run_dir: str | Path,
              tasks: Sequence | None = None) -> tuple[float, dict[str, float]]:
    """(score, {dataset or task: its score}) of the finished run in `run_dir` trained with `config`.

    Args:
      tasks: SUITE: the loaded suite tasks (evaluation/tasks.py `load_suite`); HELDOUT: unused.

    Raises:
      FileNotFoundError naming eval.jsonl when it has no evaluation of the last step (HELDOUT).
      EvaluationInputError naming the export when it cannot be evaluated (SUITE).
    """
    run_dir = Path(run_dir)
    if objective.kind == HELDOUT:
        last = config.train.num_steps
        rows = [r for r in read_jsonl(run_dir / EVAL_FILE) if r["step"] == last]
        if not rows:
            raise FileNotFoundError(f"{run_dir / EVAL_FILE} holds no held-out evaluation of step {last}.")
        details = {k.split("/")[1]: v for k, v in rows[-1].items() if k.count("/") == 2}
        return float(rows[-1][HELDOUT_MEAN]), details
    from embeddinggemma.evaluation.evaluate_checkpoints import evaluate_checkpoints

    full_width = model_config(config).output_dim
    rows = evaluate_checkpoints([run_dir / EXPORT_DIR], tasks, dims=[full_width], progress=False)
    details = {r["task"]: float(r["main_score"]) for r in rows}
    return float(np.mean(list(details.values()))), details
