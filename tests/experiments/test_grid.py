"""The grid's checks, the reports' statistics (against numpy) and the work directory's ownership."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embeddinggemma.errors import NotOurDirectoryError
from experiments.ablations import ABLATIONS
from experiments.grid import Ablation, Cell, Context, Evaluation, Quantize, Ref, Soup, Train, check_cells
from experiments.results import MEAN, markdown, summarise
from experiments.runner import ExperimentInUseError, claim_workdir

CONTEXT = Context(scale="smoke", seeds=(0, 1), corpus="/corpus", decoder="/decoder", tokenizer="/t.model",
                  teacher="/teacher")


def _train(name="train", **overrides):
    return Train(name, "finetune:tiny", overrides)


def test_every_definition_is_consistent_at_every_scale():
    for ablation in ABLATIONS.values():
        for scale in ("smoke", "cpu", "pod"):
            context = Context(scale=scale, seeds=(0, 1, 2), corpus="/c", decoder="/d", tokenizer="/t",
                              teacher="/teacher")
            cells = check_cells(ablation.name, ablation.cells(context))
            assert {c.seed for c in cells.values()} == {0, 1, 2}


def test_a_reference_to_a_missing_or_later_stage_is_named():
    ok = Cell("a", 0, (_train(),), Evaluation(Ref("train")))
    soup = Cell("soup", 0, (Soup("soup", (Ref("train", "a/seed0"), Ref("train", "b/seed0"))),),
                Evaluation(Ref("soup")))
    with pytest.raises(ValueError, match=r"cell 'soup/seed0'.*b/seed0"):
        check_cells("x", [ok, soup])
    own = Cell("q", 0, (Quantize("quantized", Ref("train"), "int8-block"), _train()),
               Evaluation(Ref("quantized")))
    with pytest.raises(ValueError, match="names no earlier stage"):
        check_cells("x", [own])
    with pytest.raises(ValueError, match="two cells"):
        check_cells("x", [ok, ok])
    with pytest.raises(ValueError, match="names no earlier stage"):
        check_cells("x", [Cell("e", 0, (_train(),), Evaluation(Ref("export")))])


def _rows(scores):
    """scores: {(variant, seed, task): value} at dim 64."""
    return [{"variant": v, "seed": s, "task": t, "dim": 64, "main_score": x}
            for (v, s, t), x in scores.items()]


def test_summary_is_the_mean_and_sample_spread_over_seeds():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 100, size=(2, 3, 2))  # variant x seed x task
    scores = {(f"v{v}", s, f"t{t}"): float(values[v, s, t])
              for v in range(2) for s in range(3) for t in range(2)}
    summary = summarise(_rows(scores))
    for v in range(2):
        for t in range(2):
            mean, spread, n = summary[(f"v{v}", 64)][f"t{t}"]
            assert n == 3
            np.testing.assert_allclose([mean, spread], [values[v, :, t].mean(), values[v, :, t].std(ddof=1)])
        suite = values[v].mean(axis=1)  # per seed, over tasks
        np.testing.assert_allclose(summary[(f"v{v}", 64)][MEAN][:2], [suite.mean(), suite.std(ddof=1)])


def test_paired_deltas_are_per_seed_differences_of_suite_means():
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 100, size=(2, 4, 3))  # variant x seed x task
    scores = {(f"v{v}", s, f"t{t}"): float(values[v, s, t])
              for v in range(2) for s in range(4) for t in range(3)}
    from experiments.results import paired_deltas

    mean, spread, n = paired_deltas(_rows(scores), 64, "v1", "v0")
    differences = values[1].mean(axis=1) - values[0].mean(axis=1)
    assert n == 4
    np.testing.assert_allclose([mean, spread], [differences.mean(), differences.std(ddof=1)])


def test_markdown_lists_each_variant_and_the_failed_cells():
    cells = [Cell(v, s, (_train(),), Evaluation(Ref("train"))) for v in ("a", "b") for s in (0, 1)]
    statuses = {c.name: {"stages": {"train": {"seconds": 60.0}}} for c in cells}
    statuses["b/seed1"]["failed"] = "cell b/seed1, stage train: loss is nan"
    rows = _rows({("a", 0, "T"): 50.0, ("a", 1, "T"): 52.0, ("b", 0, "T"): 40.0})
    ablation = Ablation("demo", "Which is better?", "a > b", lambda c: cells)
    text = markdown(ablation, CONTEXT, cells, statuses, rows)
    assert "| a | 51.00 ± 1.41 | **51.00 ± 1.41** |  | 2 |" in text
    assert "| b | 40.00 | **40.00** | -10.00 vs a | 1 |" in text  # paired on seed 0 only
    assert "b/seed1: cell b/seed1, stage train: loss is nan" in text
    assert "4.0 minutes" in text


def test_the_work_directory_must_be_this_experiments(tmp_path):
    ablation = ABLATIONS["pooling"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(NotOurDirectoryError):
        claim_workdir(other, ablation, CONTEXT)
    assert (other / "notes.txt").read_text() == "mine"

    workdir = tmp_path / "run"
    claim_workdir(workdir, ablation, CONTEXT)
    claim_workdir(workdir, ablation, Context(scale="smoke", seeds=(2,), corpus="/corpus"))  # more seeds
    assert json.loads((workdir / "experiment.json").read_text())["seeds"] == [0, 1, 2]
    with pytest.raises(ExperimentInUseError, match="'pooling' at scale 'smoke'"):
        claim_workdir(workdir, ABLATIONS["init"], CONTEXT)
    with pytest.raises(ExperimentInUseError):
        claim_workdir(workdir, ablation, Context(scale="cpu", seeds=(0,), corpus="/corpus"))


def test_a_cell_run_with_another_definition_is_refused_before_anything_runs(tmp_path):
    from experiments.runner import STATUS_FILE, run_grid

    def grid(steps):
        return Ablation("demo", "?", "-", lambda c: [
            Cell("a", 0, (_train(**{"train.num_steps": steps}),), Evaluation(Ref("train")))])

    context = Context(scale="smoke", seeds=(0,), corpus="/corpus")
    claim_workdir(tmp_path, grid(3), context)
    status = tmp_path / "cells/a/seed0" / STATUS_FILE
    status.parent.mkdir(parents=True)
    from experiments.grid import describe

    stored = {"stages": {"train": {"seconds": 1.0}}, "definition": describe(grid(3).cells(context)[0])}
    status.write_text(json.dumps(stored))
    with pytest.raises(ExperimentInUseError, match="another definition of cell a/seed0"):
        run_grid(grid(5), context, tmp_path)
    assert json.loads(status.read_text()) == stored
