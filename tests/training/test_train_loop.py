"""The training command end to end: resume after SIGKILL and after SIGTERM, incomplete checkpoints, NaN stop,
initialisation from a checkpoint, and two processes."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.orbax_io import load_orbax_params, save_orbax
from embeddinggemma.errors import WorkdirInUseError
from embeddinggemma.model import tiny
from embeddinggemma.training.metrics import read_jsonl
from embeddinggemma.training.run_lock import lock_workdir
from tests.training.conftest import REPO, process_env, run, small_run_command

pytestmark = pytest.mark.slow  # each runs the train command in subprocesses: a minute or more


def losses(workdir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_jsonl(workdir / "metrics.jsonl")}


def export(workdir: Path) -> dict:
    return jax.device_get(load_orbax_params(workdir / "export"))


def assert_same_params(a: dict, b: dict, atol: float = 0.0) -> None:
    flat_a, flat_b = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, x), (_, y) in zip(flat_a, flat_b, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=jax.tree_util.keystr(path))


STEPS = 16


@pytest.fixture(scope="module")
def straight(small_corpus, tmp_path_factory) -> Path:
    """An uninterrupted run of STEPS steps: what a killed or stopped run must compute."""
    workdir = tmp_path_factory.mktemp("straight") / "run"
    result = run(small_run_command(small_corpus, workdir, steps=STEPS))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(losses(workdir)) == list(range(1, STEPS + 1))
    return workdir


def run_until(process: subprocess.Popen, condition, timeout: float = 300) -> None:
    """Waits until `condition()` holds; fails when the process ended first."""
    deadline = time.monotonic() + timeout
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None and condition(), "the run ended (or timed out) before the condition held"


def saved_steps(workdir: Path) -> list[int]:
    directory = workdir / "checkpoints"
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def assert_resumes_like(workdir: Path, command: list[str], reference: Path, devices: int = 1,
                        rtol: float = 0, atol: float = 1e-6) -> subprocess.CompletedProcess:
    """Runs `command` again in `workdir`: it resumes, and its losses and export are `reference`'s."""
    resumed = run(command, devices=devices)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed" in resumed.stderr
    got, expected = losses(workdir), losses(reference)
    assert sorted(got) == sorted(expected)  # each step once, the interrupted run's extra lines dropped
    np.testing.assert_allclose([got[s] for s in sorted(got)], [expected[s] for s in sorted(expected)],
                               rtol=rtol, atol=atol)
    assert_same_params(export(workdir), export(reference), atol=atol)
    return resumed


def test_a_run_killed_halfway_and_restarted_matches_an_uninterrupted_run(tmp_path, train_command, straight):
    killed_dir = tmp_path / "killed"
    command = train_command(killed_dir, steps=STEPS)
    process = subprocess.Popen(command, env=process_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    run_until(process, lambda: len(losses(killed_dir)) >= STEPS // 2)
    with pytest.raises(WorkdirInUseError, match=f"pid {process.pid} "):
        lock_workdir(killed_dir)  # the run holds its directory...
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert max(losses(killed_dir)) < STEPS

    assert_resumes_like(killed_dir, command, straight)  # ...and the kernel freed it with the process
    assert read_jsonl(killed_dir / "eval.jsonl") == read_jsonl(straight / "eval.jsonl")


def test_sigterm_saves_the_step_it_stops_at_exits_143_and_the_rerun_matches_an_uninterrupted_run(
        tmp_path, train_command, straight):
    workdir = tmp_path / "stopped"
    command = train_command(workdir, "--config.checkpoint.every_steps=5", steps=STEPS)
    process = subprocess.Popen(command, env=process_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    run_until(process, lambda: saved_steps(workdir))  # after the first periodic checkpoint (step 5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143, err[-3000:]
    stopped_at = max(losses(workdir))
    assert 5 < stopped_at < STEPS
    # Nothing lost: the last step it trained is saved (the periodic checkpoints are every 5 steps).
    assert saved_steps(workdir)[-1] == stopped_at
    assert f"stopped by SIGTERM after step {stopped_at}" in err and "Traceback" not in err

    resumed = assert_resumes_like(workdir, command, straight)
    assert f"from step {stopped_at}" in resumed.stderr


def test_an_incomplete_checkpoint_left_by_a_kill_while_saving_is_ignored(tmp_path, train_command):
    workdir = tmp_path / "run"
    first = run(train_command(workdir, steps=8))
    assert first.returncode == 0, first.stderr[-3000:]
    expected = losses(workdir)
    checkpoints = workdir / "checkpoints"
    assert sorted(int(p.name) for p in checkpoints.iterdir()) == [2, 4, 6, 8]
    # What a kill during the save of step 6 leaves: step 4 complete, step 6 a temporary directory
    # with part of its files, nothing after.
    for step in (6, 8):
        shutil.rmtree(checkpoints / str(step))
    partial = checkpoints / "6.orbax-checkpoint-tmp-1795740000000000"
    shutil.copytree(checkpoints / "4", partial)
    for f in sorted(p for p in partial.rglob("*") if p.is_file())[::2]:
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    shutil.rmtree(workdir / "export")

    again = run(train_command(workdir, steps=8))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resumed" in again.stderr and "from step 4" in again.stderr
    assert not partial.exists()
    got = losses(workdir)
    np.testing.assert_allclose([got[s] for s in range(1, 9)], [expected[s] for s in range(1, 9)],
                               rtol=0, atol=1e-6)


def test_a_nan_loss_stops_the_run_naming_step_and_term_and_keeps_the_last_good_checkpoint(
        tmp_path, train_command):
    workdir = tmp_path / "run"
    first = run(train_command(workdir, steps=4))
    assert first.returncode == 0, first.stderr[-3000:]

    # The same run continued to step 8 with a spread-out term that turns NaN: in process, so the
    # objective can be injected; the config is parsed from the same command line. It resumes
    # on 8 devices what was saved on 1: Orbax reshards.
    from embeddinggemma.cli.train import parse_command_line
    from embeddinggemma.errors import NonFiniteLossError
    from embeddinggemma.training.loop import train
    from embeddinggemma.training.objective import EmbeddingObjective, embedding_objective

    config, _ = parse_command_line(train_command(workdir, steps=8)[3:])
    real_objective = embedding_objective(config.loss)

    def poisoned(head_params, embeddings, batch):
        loss, metrics = real_objective.loss(head_params, embeddings, batch)
        nan = jax.numpy.float32(np.nan)
        return loss + nan, {**metrics, "spread_out/loss": metrics["spread_out/loss"] + nan}

    expected = r"step 5: the loss is nan .*non-finite terms: spread_out/loss\..*last good checkpoint is .*/4"
    with pytest.raises(NonFiniteLossError, match=expected):
        train(config, workdir, objective=EmbeddingObjective(poisoned))
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [2, 4]
    assert max(losses(workdir)) == 4


def test_initialisation_from_a_checkpoint_starts_from_its_parameters(tmp_path, train_command):
    source = tmp_path / "source"
    assert run(train_command(source, steps=4)).returncode == 0
    init = run(train_command(tmp_path / "init", f"--config.model.init_checkpoint={source / 'export'}",
                             "--config.optimizer.learning_rate=0", steps=4))
    assert init.returncode == 0, init.stderr[-3000:]
    # With a zero learning rate the parameters stay the checkpoint's: the same export, the same
    # held-out score before the first step as the source run's after its last.
    assert_same_params(export(tmp_path / "init"), export(source))
    source_final = read_jsonl(source / "eval.jsonl")[-1]
    init_first = read_jsonl(tmp_path / "init" / "eval.jsonl")[0]
    assert init_first["step"] == 0 and source_final["step"] == 4
    assert init_first["eval/ndcg_at_10"] == pytest.approx(source_final["eval/ndcg_at_10"], abs=1e-6)


def test_initialisation_from_a_checkpoint_of_another_shape_names_the_parameters(tmp_path, train_command,
                                                                                tiny_tokenizer_path):
    wide = tiny().replace(projection_dims=(96, 64))
    from embeddinggemma.model import init_params

    params = jax.device_get(init_params(wide, jax.random.PRNGKey(0)))
    save_orbax(tmp_path / "wide", wide, params, tiny_tokenizer_path, {})
    result = run(train_command(tmp_path / "run", f"--config.model.init_checkpoint={tmp_path / 'wide'}",
                               steps=2))
    assert result.returncode == 2
    assert "does not fit the configured model" in result.stderr
    assert "(64, 96) vs model (64, 128)" in result.stderr and "(96, 64) vs model (128, 64)" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one_process_and_stop_together_on_one_sigterm(tmp_path, train_command):
    # Hosts must agree on shapes, so multi-process batches are padded to the maximum lengths; the
    # one-process reference pads the same way. Two devices either way: one per process, or two in one.
    steps = 8
    overrides = ("--config.data.bucket_lengths=False", "--config.mesh.shape=(2,1,1)")
    single = run(train_command(tmp_path / "single", *overrides, steps=steps), devices=2)
    assert single.returncode == 0, single.stderr[-3000:]

    def start_both() -> list[subprocess.Popen]:
        port = _free_port()
        return [subprocess.Popen(
            [*train_command(tmp_path / "multi", *overrides, steps=steps),
             f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}"],
            env=process_env(1), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)]

    # The preemption notice reaches process 1 only; both stop after the same step and save it.
    procs = start_both()
    run_until(procs[0], lambda: saved_steps(tmp_path / "multi"))  # after the first checkpoint
    procs[1].send_signal(signal.SIGTERM)
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 143, err[-3000:]
    stopped_at = max(losses(tmp_path / "multi"))
    assert 2 < stopped_at < steps and saved_steps(tmp_path / "multi")[-1] == stopped_at
    for _, err in outputs:
        assert f"stopped by SIGTERM to one of the processes after step {stopped_at}" in err

    procs = start_both()
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert f"from step {stopped_at}" in outputs[0][1]
    expected, got = losses(tmp_path / "single"), losses(tmp_path / "multi")
    assert sorted(got) == list(range(1, steps + 1))
    np.testing.assert_allclose([got[s] for s in sorted(got)], [expected[s] for s in sorted(got)], rtol=1e-5)
    assert_same_params(export(tmp_path / "multi"), export(tmp_path / "single"), atol=1e-5)
    assert json.loads((tmp_path / "multi" / "config.json").read_text())["data"]["bucket_lengths"] is False


def test_distillation_from_precomputed_teacher_embeddings_of_another_width(
        tmp_path, train_command, small_corpus, tiny_tokenizer_path):
    from embeddinggemma.data.corpus.teacher_embeddings import add_teacher_embeddings
    from embeddinggemma.model import init_params

    corpus = tmp_path / "corpus"
    shutil.copytree(small_corpus, corpus)
    teacher = tiny().replace(projection_dims=(128, 96))  # 96-dim teacher, 64-dim student
    save_orbax(tmp_path / "teacher", teacher, jax.device_get(init_params(teacher, jax.random.PRNGKey(1))),
               tiny_tokenizer_path, {})
    add_teacher_embeddings(corpus, tmp_path / "teacher", name="t", max_length=32)
    result = run(train_command(tmp_path / "run", f"--config.data.corpus={corpus}", "--config.data.teacher=t",
                               "--config.loss.distillation_weight=1.0", "--config.loss.teacher_dim=96",
                               steps=3))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(r["distillation/loss"]) and r["distillation/loss"] > 0 for r in rows)
    # The learned 64 -> 96 map is trained but not part of the exported encoder.
    assert "distillation_projection" not in export(tmp_path / "run")


@pytest.mark.release
def test_initialising_the_tiny_model_from_the_release_names_the_mismatched_shapes(tmp_path, train_command,
                                                                                 release_dir):
    result = run(train_command(tmp_path / "run", f"--config.model.init_checkpoint={release_dir}", steps=2))
    assert result.returncode == 2
    assert f"model.init_checkpoint={release_dir} does not fit the configured model" in result.stderr
    assert "['transformer']['embedding']: checkpoint (262144, 768) vs model (512, 64)" in result.stderr
