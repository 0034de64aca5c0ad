"""The soup command: a weighted soup of three checkpoints, its manifest, refusals, and a greedy
soup of a real tiny run's checkpoints by the run's own held-out score."""

import json

import jax
import numpy as np
import pytest

from embeddinggemma import Embedder
from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.cli.soup import main
from tests.training.conftest import run as run_command
from tests.training.conftest import train_command  # noqa: F401  (a fixture; small_corpus is in tests/conftest.py)


def _flat(tree):
    return {jax.tree_util.keystr(path): np.asarray(v, np.float64)
            for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_a_weighted_soup_is_written_with_its_manifest_and_loads(tmp_path, make_ingredient, capsys):
    made = [make_ingredient(name, seed) for name, seed in (("a", 1), ("b", 2), ("c", 3))]
    out = tmp_path / "soup"
    assert main(["--checkpoints", *[str(p) for p, _ in made], "--weights", "5,3,2", "--out", str(out)]) == 0
    assert "were normalised to sum to 1: [0.5, 0.3, 0.2]" in capsys.readouterr().err

    expected = {k: 0.5 * v + 0.3 * _flat(made[1][1])[k] + 0.2 * _flat(made[2][1])[k]
                for k, v in _flat(made[0][1]).items()}
    soup = load_checkpoint(out)
    for key, value in _flat(soup.params).items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-6, atol=1e-6, err_msg=key)
    manifest = json.loads((out / "soup.json").read_text())
    assert manifest["method"] == "weighted" and manifest["weights_normalised"] is True
    assert [i["weight"] for i in manifest["ingredients"]] == pytest.approx([0.5, 0.3, 0.2])
    hashes = [i["content_sha256"] for i in manifest["ingredients"]]
    assert len(set(hashes)) == 3 and all(len(h) == 64 for h in hashes)
    vectors = Embedder.load(out).encode(["a soup of three"], prompt_name="query")
    assert vectors.shape == (1, 64) and np.isclose(np.linalg.norm(vectors), 1.0)

    # --out now holds a soup: refused without --overwrite, replaced with it.
    assert main(["--checkpoints", str(made[0][0]), str(made[1][0]), "--out", str(out)]) == 2
    assert "already holds an Orbax checkpoint" in capsys.readouterr().err
    assert main(["--checkpoints", str(made[0][0]), str(made[1][0]), "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "soup.json").read_text())["method"] == "uniform"


@pytest.mark.parametrize("arguments, message", [
    (["--weights", "1,0"], "positive"),
    (["--weights", "1"], "1 weights for 2 ingredients"),
    (["--greedy", "--weights", "1,1"], "drop --weights"),
])
def test_bad_arguments_are_named_and_nothing_is_written(tmp_path, make_ingredient, capsys, arguments,
                                                        message):
    a, _ = make_ingredient("a", 1)
    b, _ = make_ingredient("b", 2)
    assert main(["--checkpoints", str(a), str(b), *arguments, "--out", str(tmp_path / "soup")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "soup").exists()


@pytest.mark.slow
def test_greedy_soup_of_a_tiny_run_by_its_held_out_score(tmp_path, train_command):  # noqa: F811
    run = tmp_path / "run"
    result = run_command(train_command(run, "--config.checkpoint.every_steps=1",
                                       "--config.eval.every_steps=1",
                                       "--config.checkpoint.export_params=False", steps=2))
    assert result.returncode == 0, result.stderr[-3000:]
    logged = {row["step"]: row["eval/ndcg_at_10"]
              for row in map(json.loads, (run / "eval.jsonl").read_text().splitlines())}

    out = tmp_path / "soup"
    assert main(["--checkpoints", f"{run}@1", str(run), "--greedy", "--score", "heldout",
                 "--out", str(out)]) == 0
    manifest = json.loads((out / "soup.json").read_text())
    assert manifest["method"] == "greedy" and manifest["score"]["kind"] == "heldout"
    # Each ingredient's own score is what the train loop logged for its step.
    scores = {i["step"]: i["score"] for i in manifest["ingredients"]}
    assert scores == pytest.approx({1: logged[1], 2: logged[2]}, abs=1e-5)
    [step] = manifest["greedy_steps"]
    assert step["best_before"] == pytest.approx(max(logged[1], logged[2]), abs=1e-5)
    assert step["accepted"] == (step["score_with"] > step["best_before"])
    kept = [i for i in manifest["ingredients"] if i["weight"] > 0]
    assert len(kept) == (2 if step["accepted"] else 1)
    Embedder.load(out)
