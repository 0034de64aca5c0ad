"""Runs whose work directory is a bucket (`gs://`, on the GCS emulator of tests/conftest.py): killed
and resumed, alone and as two processes, they compute what the same run computes in a local
directory; so does a run whose corpus and teacher embeddings are in the bucket too."""

from __future__ import annotations

import io
import shutil
import signal
import subprocess
from pathlib import Path

import jax
import numpy as np
import pytest

from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.model import init_params, tiny
from embeddinggemma.paths import files_under
from embeddinggemma.training.checkpoints import saved_steps
from embeddinggemma.training.metrics import read_jsonl
from tests.training.conftest import REPO, process_env, run, small_run_command
from tests.training.test_train_loop import _free_port, assert_same_params, export, losses, run_until

pytestmark = pytest.mark.slow  # each runs the train command in subprocesses

STEPS = 8
# Two devices, one per process or both in one, and the padding hosts agree on (test_train_loop.py).
TWO_DEVICES = ("--config.data.bucket_lengths=False", "--config.mesh.shape=(2,1,1)")


@pytest.fixture(scope="module")
def local_run(small_corpus, tmp_path_factory) -> Path:
    """The reference: an uninterrupted two-device run of STEPS steps in a local directory."""
    workdir = tmp_path_factory.mktemp("local") / "run"
    result = run(small_run_command(small_corpus, workdir, *TWO_DEVICES, steps=STEPS), devices=2)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def assert_same_run(workdir, reference: Path, rtol: float = 0, atol: float = 1e-6) -> None:
    """`workdir` holds each step's loss once, the reference's, and the reference's export."""
    got, expected = losses(workdir), losses(reference)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=rtol, abs=atol), step
    assert_same_params(export(workdir), export(reference), atol=atol)


def test_a_run_in_a_bucket_killed_and_restarted_matches_an_uninterrupted_local_run(
        gcs_dir, train_command, local_run):
    command = train_command(gcs_dir, *TWO_DEVICES, steps=STEPS)
    process = subprocess.Popen(command, env=process_env(2), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    run_until(process, lambda: len(saved_steps(gcs_dir)) >= 2)  # committed checkpoints (of steps 2 and 4)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert max(losses(gcs_dir)) < STEPS
    # Orbax writes a step in place in a bucket and commits it last: a kill while saving leaves the
    # step without its commit file, which is no checkpoint.
    steps = saved_steps(gcs_dir)
    (gcs_dir / "checkpoints" / str(steps[-1]) / "commit_success.txt").unlink()
    assert saved_steps(gcs_dir) == steps[:-1]

    resumed = run(command, devices=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resumed {gcs_dir} from step {steps[-2]}." in resumed.stderr
    assert_same_run(gcs_dir, local_run)
    assert read_jsonl(gcs_dir / "eval.jsonl") == read_jsonl(local_run / "eval.jsonl")
    assert (gcs_dir / "config.json").is_file() and (gcs_dir / "tokenizer.model").is_file()
    assert list((gcs_dir / "tensorboard").iterdir())  # TensorBoard's events went to the bucket too
    assert not Path(REPO, "gs:").exists()  # nothing took the URL for a local path


def test_two_processes_with_their_work_directory_in_a_bucket_resume_after_a_kill(
        gcs_dir, train_command, local_run):
    def start_both() -> list[subprocess.Popen]:
        port = _free_port()
        return [subprocess.Popen(
            [*train_command(gcs_dir, *TWO_DEVICES, steps=STEPS), f"--coordinator_address=localhost:{port}",
             "--num_processes=2", f"--process_id={i}"],
            env=process_env(1), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for i in range(2)]

    procs = start_both()
    run_until(procs[0], lambda: saved_steps(gcs_dir))  # after the first checkpoint
    for p in procs:
        p.send_signal(signal.SIGKILL)
    for p in procs:
        assert p.wait() == -signal.SIGKILL
    killed_at = saved_steps(gcs_dir)[-1]
    assert killed_at < STEPS

    procs = start_both()
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert f"Resumed {gcs_dir} from step {killed_at}" in outputs[0][1]
    assert_same_run(gcs_dir, local_run, rtol=1e-5, atol=1e-5)


def _upload(directory: Path, prefix) -> None:
    """Copies the local `directory` tree under the bucket `prefix`."""
    for file in files_under(directory):
        (prefix / str(file.relative_to(directory))).write_bytes(file.read_bytes())


def test_a_run_whose_corpus_teacher_embeddings_and_work_directory_are_in_a_bucket_matches_the_local_run(
        tmp_path, gcs_dir, small_corpus, tiny_tokenizer_path):
    from embeddinggemma.data.corpus.teacher_embeddings import add_teacher_embeddings

    teacher = tiny().replace(projection_dims=(128, 96))  # 96-dim teacher, 64-dim student
    save_orbax(tmp_path / "teacher", teacher, jax.device_get(init_params(teacher, jax.random.PRNGKey(1))),
               tiny_tokenizer_path, {})
    corpora = {"local": tmp_path / "corpus", "bucket": gcs_dir / "corpus"}
    shutil.copytree(small_corpus, corpora["local"])
    _upload(small_corpus, corpora["bucket"])
    for corpus in corpora.values():  # the precomputed teacher stage, reading and writing each corpus
        add_teacher_embeddings(corpus, tmp_path / "teacher", name="t", max_length=32)
    local_files = {str(f.relative_to(corpora["local"])): f for f in files_under(corpora["local"])
                   if ".teacher" in str(f)}
    bucket_files = {str(f)[len(str(corpora["bucket"])) + 1:]: f for f in files_under(corpora["bucket"])
                    if ".teacher" in str(f)}
    assert local_files.keys() == bucket_files.keys() and local_files
    for name, file in local_files.items():
        if name.endswith(".npy"):
            np.testing.assert_array_equal(np.load(io.BytesIO(bucket_files[name].read_bytes())), np.load(file))

    teacher_run = ("--config.data.teacher=t", "--config.loss.distillation_weight=1.0",
                   "--config.loss.teacher_dim=96")
    workdirs = {"local": tmp_path / "run", "bucket": gcs_dir / "run"}
    for where in ("local", "bucket"):
        result = run(small_run_command(corpora[where], workdirs[where], *teacher_run, steps=3))
        assert result.returncode == 0, result.stderr[-3000:]
    rows = {where: read_jsonl(workdirs[where] / "metrics.jsonl") for where in workdirs}
    assert [r["step"] for r in rows["bucket"]] == [1, 2, 3]
    for got, expected in zip(rows["bucket"], rows["local"], strict=True):
        assert got["loss"] == pytest.approx(expected["loss"], abs=1e-6)
        assert got["distillation/loss"] == pytest.approx(expected["distillation/loss"], abs=1e-6)
        assert got["distillation/loss"] > 0
    assert_same_params(export(workdirs["bucket"]), export(workdirs["local"]), atol=1e-6)
    assert not Path(REPO, "gs:").exists()
