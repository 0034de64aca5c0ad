"""The mixture search command: real training runs on the small real corpus, killed and resumed;
bad arguments and inputs named."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from embeddinggemma.cli.mixture_search import main
from embeddinggemma.training.metrics import read_jsonl
from tests.search.conftest import stored_trials
from tests.training.conftest import REPO, SMALL_RUN, process_env

STEPS = 4  # SMALL_RUN checkpoints every 2 steps and evaluates after the last
# One padded shape (no length buckets): fewer programs to compile in a short trial.
SMALL_TRIAL = (*SMALL_RUN, f"--config.train.num_steps={STEPS}", "--config.data.bucket_lengths=false")


def search_command(workdir, corpus, *extra: str) -> list[str]:
    return [sys.executable, "-m", "embeddinggemma", "mixture_search",
            "--config", str(REPO / "configs/finetune.py:tiny"), "--workdir", str(workdir),
            f"--config.data.corpus={corpus}", "--objective", "heldout", "--trials", "2",
            "--random_mixtures", "1", *SMALL_TRIAL, *extra]


@pytest.mark.slow  # two search processes with real training runs: a minute or more
def test_a_search_killed_mid_trial_resumes_that_trial_and_keeps_the_finished_one(tmp_path, small_corpus):
    workdir = tmp_path / "search"
    killed = subprocess.Popen(search_command(workdir, small_corpus), env=process_env(), cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed once trial 1 has saved its step-2 checkpoint: mid-way through its run.
    checkpoint = workdir / "trials" / "0001" / "checkpoints" / "2"
    deadline = time.monotonic() + 600
    while not checkpoint.is_dir() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the search ended before it could be killed"
    before = stored_trials(workdir)
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]
    first_trial = workdir / "trials" / "0000"
    logs = (first_trial / "metrics.jsonl", first_trial / "eval.jsonl")
    first_trial_files = {p: p.read_bytes() for p in logs}
    first_export = (first_trial / "export").stat().st_mtime_ns

    resumed = subprocess.run(search_command(workdir, small_corpus), env=process_env(), cwd=REPO,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "trial 1 (attempt 2, resuming)" in resumed.stderr and "trial 0:" not in resumed.stderr
    assert "Resumed" in resumed.stderr and "trials/0001 from step" in resumed.stderr
    after = stored_trials(workdir)
    assert [t.number for t in after] == [0, 1] and all(t.state == TrialState.COMPLETE for t in after)
    assert [t.params for t in after] == [t.params for t in before]
    # The finished trial was not run again; the resumed one logged each step once.
    assert {p: p.read_bytes() for p in first_trial_files} == first_trial_files
    assert (first_trial / "export").stat().st_mtime_ns == first_export
    assert [r["step"] for r in read_jsonl(workdir / "trials" / "0001" / "metrics.jsonl")] == list(
        range(1, STEPS + 1))
    # Scores are the runs' held-out nDCG@10 after the last step.
    for t in after:
        last = read_jsonl(workdir / "trials" / f"{t.number:04d}" / "eval.jsonl")[-1]
        assert last["step"] == STEPS and t.value == last["eval/ndcg_at_10"]
    rows = list(csv.DictReader((workdir / "trials.csv").open()))
    assert [(r["trial"], r["source"], r["state"]) for r in rows] == [("0", "config", "COMPLETE"),
                                                                      ("1", "random", "COMPLETE")]
    assert "python -m embeddinggemma soup --checkpoints" in resumed.stdout
    assert (workdir / "trials.png").stat().st_size > 0


@pytest.mark.parametrize("extra, named", [
    (["--datasets", "code,nq"], r"unknown datasets ['nq']; the config has bitext, code, package_metadata"),
    (["--trials", "0"], "--trials=0 must be given and >= 1"),
    (["--objective", "best"], "--objective='best'; valid: heldout, suite or suite:TASK1,TASK2"),
    (["--config.data.corpus="], "data.corpus, which is empty"),
    (["--config.train.num_stepz=3"], "unknown config field 'num_stepz'"),
])
def test_bad_arguments_are_named_and_nothing_is_written(tmp_path, small_corpus, capsys, extra, named):
    workdir = tmp_path / "search"
    command = search_command(workdir, small_corpus)[3:]
    trials_flag = command.index("--trials")
    command[trials_flag:trials_flag + 2] = []  # given again below where a test changes it
    assert main(command + ["--trials", "2"] * ("--trials" not in extra) + extra) == 2
    assert named in capsys.readouterr().err
    assert not workdir.exists()


def test_a_work_directory_holding_something_else_is_refused_untouched(tmp_path, small_corpus, capsys):
    (tmp_path / "results.csv").write_text("mine\n")
    assert main(search_command(tmp_path, small_corpus)[3:]) == 2
    assert f"{tmp_path} is not empty and holds no search.json" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_a_work_directory_in_a_bucket_is_refused_naming_the_flag(tmp_path, small_corpus, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where pathlib would have made a directory named gs:
    assert main(search_command("gs://bucket/search", small_corpus)[3:]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --workdir gs://bucket/search: the mixture search works in a local "
                          "directory")
    assert not list(tmp_path.iterdir())
