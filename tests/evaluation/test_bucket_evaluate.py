"""`python -m embeddinggemma evaluate` on a checkpoint in a bucket, writing its reports there (the GCS
emulator of tests/conftest.py): the same results as on local paths."""

import json

import pytest

from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.cli.evaluate import main
from embeddinggemma.prompts import DEFAULT_PROMPTS

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
