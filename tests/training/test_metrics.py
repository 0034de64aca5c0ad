"""Run metrics: JSON lines and TensorBoard events, truncated on resume; the held-out nDCG@10."""

import json

import numpy as np
import pytest
from sklearn.metrics import ndcg_score
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from embeddinggemma.training.heldout import ndcg_at_10
from embeddinggemma.training.metrics import MetricsWriter, read_jsonl


def scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(logdir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_steps_go_to_json_lines_and_tensorboard(tmp_path):
    writer = MetricsWriter(tmp_path, start_step=0)
    for step in (1, 2, 3):
        writer.write_step(step, {"loss": np.float32(1.0 / step), "dataset": "code", "grad_norm": step})
    writer.write_eval(3, {"eval/ndcg_at_10": 0.25})
    writer.close()
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[1]["loss"] == pytest.approx(0.5)
    assert rows[0]["dataset"] == "code"
    tb = scalars(writer.tensorboard_dir)
    assert [s for s, _ in tb["loss"]] == [1, 2, 3]
    assert tb["loss"][2][1] == pytest.approx(1 / 3) and tb["eval/ndcg_at_10"] == [(3, 0.25)]


def test_a_resumed_run_drops_lines_written_after_its_checkpoint(tmp_path):
    writer = MetricsWriter(tmp_path, start_step=0)
    for step in range(1, 6):
        writer.write_step(step, {"loss": 10.0 + step})
    writer.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # a line cut short by the kill
    resumed = MetricsWriter(tmp_path, start_step=3)
    for step in range(4, 7):
        resumed.write_step(step, {"loss": 20.0 + step})
    resumed.close()
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 11.0), (2, 12.0), (3, 13.0), (4, 24.0), (5, 25.0),
                                                      (6, 26.0)]
    assert dict(scalars(tmp_path / "tensorboard")["loss"])[5] == 25.0  # the killed run's step 5 purged


def test_non_finite_values_are_written_as_strings(tmp_path):
    writer = MetricsWriter(tmp_path, start_step=0)
    writer.write_step(1, {"loss": float("nan")})
    writer.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["loss"] == "nan"


def test_a_writer_that_is_not_process_zero_writes_nothing(tmp_path):
    writer = MetricsWriter(tmp_path / "run", start_step=0, enabled=False)
    writer.write_step(1, {"loss": 1.0})
    writer.close()
    assert not (tmp_path / "run").exists()


def test_ndcg_at_10_matches_scikit_learn():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 40))
    relevant = rng.integers(0, 40, size=200)
    relevance = np.zeros_like(scores)
    relevance[np.arange(200), relevant] = 1.0
    expected = [ndcg_score(relevance[i:i + 1], scores[i:i + 1], k=10) for i in range(200)]
    np.testing.assert_allclose(ndcg_at_10(scores, relevant), expected, atol=1e-12)
    assert (ndcg_at_10(scores, relevant) == 0).any() and (ndcg_at_10(scores, relevant) == 1).any()
