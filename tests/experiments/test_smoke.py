"""Every ablation's grid end to end at smoke scale (tiny model, a few steps, two suite tasks), and
a runner killed mid-grid resuming without redoing finished cells."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.ablations import ABLATIONS
from experiments.grid import Context
from experiments.runner import STATUS_FILE, run_grid

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _context(small_corpus, seeds=(0,), **inputs) -> Context:
    return Context(scale="smoke", seeds=tuple(seeds), corpus=str(small_corpus), **inputs)


def _check_results(workdir: Path, name: str, cells) -> list[dict]:
    """Every cell scored, results.csv holding one row per cell x task x dim, the table and plot."""
    statuses = {c.name: json.loads((workdir / "cells" / c.name / STATUS_FILE).read_text()) for c in cells}
    failed = {n: s["failed"] for n, s in statuses.items() if "failed" in s}
    assert not failed
    with open(workdir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    expected = sum(len(c.evaluation.tasks) * len(c.evaluation.dims) for c in cells)
    assert len(rows) == expected
    for row in rows:
        assert 0.0 <= float(row["main_score"]) <= 100.0
    md = (workdir / "results.md").read_text()
    for variant in {c.variant for c in cells}:
        assert f"| {variant} |" in md
    assert (workdir / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    return rows


def test_init_smoke(tmp_path, small_corpus, tiny_decoder, reserved_tokenizer):
    context = _context(small_corpus, decoder=str(tiny_decoder), tokenizer=str(reserved_tokenizer))
    cells = run_grid(ABLATIONS["init"], context, tmp_path)
    _check_results(tmp_path, "init", cells)
    # The encoder-decoder start read the adaptation's encoder; the others read no adaptation.
    config = json.loads((tmp_path / "cells/encoder_decoder/seed0/train/config.json").read_text())
    assert config["model"]["init_checkpoint"] == str(tmp_path / "cells/encoder_decoder/seed0/adapt/export")
    assert not (tmp_path / "cells/decoder/seed0/adapt").exists()
    # A run started from a decoder or an adaptation is a soup ingredient: its tokenizer is its own.
    from embeddinggemma.souping.ingredients import open_ingredient

    for start in ("decoder", "encoder_decoder"):
        ingredient = open_ingredient(str(tmp_path / f"cells/{start}/seed0/train"))
        assert ingredient.tokenizer_path.read_bytes() == reserved_tokenizer.read_bytes()


def test_objective_smoke(tmp_path, tmp_path_factory, tiny_teacher):
    from embeddinggemma.data.corpus.build import build_corpus

    corpus = tmp_path_factory.mktemp("corpus") / "corpus"  # its own: it gains a teacher
    build_corpus(corpus, max_pairs=60)
    cells = run_grid(ABLATIONS["objective"], _context(corpus, teacher=str(tiny_teacher)), tmp_path)
    rows = _check_results(tmp_path, "objective", cells)
    assert {int(r["dim"]) for r in rows} == {64, 32, 16}
    config = json.loads((tmp_path / "cells/+distillation/seed0/train/config.json").read_text())
    assert config["data"]["teacher"] == "tiny-teacher" and config["loss"]["distillation_weight"] == 1.0
    assert (Path(corpus) / "code" / "train.teacher" / "tiny-teacher" / "info.json").is_file()


def test_souping_smoke(tmp_path, small_corpus):
    cells = run_grid(ABLATIONS["souping"], _context(small_corpus), tmp_path)
    _check_results(tmp_path, "souping", cells)
    soup = json.loads((tmp_path / "cells/soup/seed0/soup/soup.json").read_text())
    assert [Path(i["path"]).parts[-4] for i in soup["ingredients"]] == ["mix-even", "mix-bitext", "mix-code"]
    config = json.loads((tmp_path / "cells/mix-code/seed0/train/config.json").read_text())
    assert config["data"]["mixture"] == "bitext=0.2,code=0.6,package_metadata=0.2"


def test_quantisation_smoke(tmp_path, small_corpus):
    cells = run_grid(ABLATIONS["quantisation"], _context(small_corpus), tmp_path)
    _check_results(tmp_path, "quantisation", cells)
    meta = json.loads((tmp_path / "cells/qat/int4-block/seed0/quantized/embeddinggemma.json").read_text())
    assert meta["quantization"] == "int4-block"
    config = json.loads((tmp_path / "cells/qat/int4-block/seed0/train/config.json").read_text())
    assert config["quant"]["scheme"] == "int4-block"
    assert config["model"]["init_checkpoint"] == str(tmp_path / "cells/float32/seed0/train/export")


def _wait_for(path: Path, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.5)


def test_killed_runner_resumes_without_redoing_finished_cells(tmp_path, small_corpus):
    """The pooling grid through the command line, SIGKILLed while its second cell trains, then rerun."""
    workdir = tmp_path / "pooling"
    command = [sys.executable, "-m", "experiments.run", "pooling", "--scale", "smoke",
               "--workdir", str(workdir), "--corpus", str(small_corpus)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        _wait_for(workdir / "cells/first/seed0/train/config.json", first, timeout=600)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finished = (workdir / "cells/mean/seed0" / STATUS_FILE).read_text()
    assert "scores" in json.loads(finished)
    metrics = (workdir / "cells/mean/seed0/train/metrics.jsonl").read_text()

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr
    assert (workdir / "cells/mean/seed0" / STATUS_FILE).read_text() == finished
    assert (workdir / "cells/mean/seed0/train/metrics.jsonl").read_text() == metrics
    assert "mean/seed0: train" not in second.stderr  # the finished cell was not started again
    cells = ABLATIONS["pooling"].cells(_context(small_corpus))
    _check_results(workdir, "pooling", cells)


def test_pod_scale_prints_launch_lines_after_checking_shapes(capsys):
    from experiments.run import main

    for name in ABLATIONS:
        assert main([name, "--scale", "pod", "--workdir", "/pod/runs"]) == 0
        lines = capsys.readouterr().out.splitlines()
        commands = [line for line in lines if not line.startswith("#")]
        assert commands and all(line.startswith("python ") for line in commands)
        assert any("/pod/runs/cells/" in line for line in commands)
        if name == "souping":  # a mixture of the corpus's datasets, which only the run adds
            assert any("--config.data.mixture=bitext=0.2,code=0.6,package_metadata=0.2" in line
                       for line in commands)


def test_pod_launch_lines_keep_a_buckets_url(capsys):
    from experiments.run import main

    assert main(["souping", "--scale", "pod", "--workdir", "gs://bucket/runs"]) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    workdirs = [line.split("--workdir ")[1].split()[0] for line in commands if "--workdir " in line]
    assert workdirs and all(w.startswith("gs://bucket/runs/cells/") for w in workdirs)
    assert not any("gs:/bucket" in line for line in commands)  # pathlib's collapsed `//`
    for line in commands:  # the soups', quantisations' and evaluations' inputs and outputs too
        for flag in ("--out", "--checkpoint", "--checkpoints"):
            if f" {flag} " in line:
                assert line.split(f" {flag} ")[1].startswith("gs://bucket/runs/cells/"), line
