"""`python -m embeddinggemma evaluate` on a checkpoint in a bucket, writing its reports there, and
on a suite and a cache in a bucket (the GCS emulator of tests/conftest.py): the same results as on
local paths."""

import json
import sys
from pathlib import Path

import pytest

from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.cli.evaluate import main
from embeddinggemma.paths import files_under
from embeddinggemma.prompts import DEFAULT_PROMPTS

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
from build_eval_suite import main as build_script  # noqa: E402

TASKS = "Glib20PairClassification,ManPageRetrieval"


@pytest.mark.slow  # two evaluations of two tasks: about 15 s
def test_evaluate_reads_a_checkpoint_in_a_bucket_and_writes_its_reports_there(
        tmp_path, gcs_dir, suite_dir, tiny_config, tiny_params, tiny_tokenizer_path, capsys):
    results = {}
    for where, root in (("local", tmp_path), ("bucket", gcs_dir)):
        checkpoint = save_orbax(root / "tiny", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
        assert main(["--checkpoint", str(checkpoint), "--dims", "64,16", "--tasks", TASKS, "--suite",
                     str(suite_dir), "--no-cache", "--max-length", "64", "--out", f"{root}/eval"]) == 0
        results[where] = json.loads((root / "eval" / "results.json").read_text())["results"]
        assert (root / "eval" / "score_vs_dim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (root / "eval" / "results.md").read_text().startswith("| model | dim |")
    capsys.readouterr()
    assert {r["checkpoint"] for r in results["bucket"]} == {f"{gcs_dir}/tiny"}
    strip = lambda rows: [{k: v for k, v in r.items() if k != "checkpoint"} for r in rows]
    assert strip(results["bucket"]) == strip(results["local"])


@pytest.mark.slow  # three evaluations of two tasks: about 15 s
def test_evaluate_reads_a_suite_in_a_bucket_and_keeps_its_cache_there(
        tmp_path, gcs_dir, suite_dir, tiny_config, tiny_params, tiny_tokenizer_path, capsys):
    for file in files_under(suite_dir):
        (gcs_dir / "suite" / str(file.relative_to(suite_dir))).write_bytes(file.read_bytes())
    # The builder script keeps a built suite in a bucket, and refuses somebody else's prefix untouched.
    assert build_script(["--out", str(gcs_dir / "suite")]) == 0
    assert f"kept the existing suite {gcs_dir}/suite" in capsys.readouterr().err
    (gcs_dir / "theirs" / "notes.txt").write_text("mine")
    assert build_script(["--out", str(gcs_dir / "theirs"), "--tasks", "Glib20BitextMining"]) == 2
    assert f"{gcs_dir}/theirs is not empty" in capsys.readouterr().err
    assert [p.name for p in (gcs_dir / "theirs").iterdir()] == ["notes.txt"]
    checkpoint = save_orbax(tmp_path / "tiny", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)

    def evaluate(suite, cache, out) -> list[dict]:
        assert main(["--checkpoint", str(checkpoint), "--dims", "64,16", "--tasks", TASKS, "--suite",
                     str(suite), "--cache-dir", str(cache), "--max-length", "64", "--out", str(out)]) == 0
        return json.loads((out / "results.json").read_text())["results"]

    local = evaluate(suite_dir, tmp_path / "cache", tmp_path / "eval")
    bucket = evaluate(gcs_dir / "suite", gcs_dir / "cache", tmp_path / "eval-bucket")
    assert bucket == local
    cached = sorted(f.name for f in (gcs_dir / "cache").iterdir())
    assert cached == sorted(f.name for f in (tmp_path / "cache").iterdir()) and cached
    for name in cached:
        assert (gcs_dir / "cache" / name).read_bytes() == (tmp_path / "cache" / name).read_bytes()
    # Read back from the bucket's cache: a corrupted entry would change the scores.
    scores = next(n for n in cached if n.endswith(".json"))
    (gcs_dir / "cache" / scores).write_text(json.dumps({k: 0.5 for k in json.loads(
        (tmp_path / "cache" / scores).read_text())}))
    assert evaluate(gcs_dir / "suite", gcs_dir / "cache", tmp_path / "eval-again") != local
    capsys.readouterr()
