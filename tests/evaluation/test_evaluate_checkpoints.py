"""The evaluate command's loop as a library function: checkpoints x schemes x tasks x dims."""

import pytest

from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.evaluation.encoders import EmbedderEncoder
from embeddinggemma.evaluation.evaluate_checkpoints import EvaluationInputError, evaluate_checkpoints
from embeddinggemma.evaluation.runner import evaluate_task
from embeddinggemma.prompts import DEFAULT_PROMPTS

TASK = "Glib20PairClassification"


@pytest.fixture
def two_runs(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    """Two exports with the same directory name, as two runs' `export/` have."""
    return [save_orbax(tmp_path / run / "export", tiny_config, tiny_params, tiny_tokenizer_path,
                       DEFAULT_PROMPTS) for run in ("a", "b")]


def test_rows_are_the_runner_scores_of_every_checkpoint_scheme_and_dim(two_runs, suite):
    task = suite[TASK]
    rows = evaluate_checkpoints(two_runs, [task], dims=[64, 16], quant=["int8-block"], max_length=64,
                                progress=False)
    models = ("a/export", "a/export@int8-block", "b/export", "b/export@int8-block")
    assert [(r["model"], r["dim"]) for r in rows] == [(m, d) for m in models for d in (64, 16)]
    want = evaluate_task(task, EmbedderEncoder(two_runs[0], max_length=64), [64, 16])
    for row in rows[:2]:
        assert row["scores"] == want[row["dim"]] and row["main_score"] == want[row["dim"]]["main_score"]
        assert (row["task"], row["type"], row["quant"]) == (TASK, task.type, None)
        assert row["checkpoint"] == str(two_runs[0].resolve())


def test_a_dimension_beyond_the_width_names_the_model_and_task(two_runs, suite):
    with pytest.raises(EvaluationInputError, match=rf"a/export {TASK}: dim 128 is outside 1..64"):
        evaluate_checkpoints(two_runs, [suite[TASK]], dims=[128], max_length=64, progress=False)
