"""What the train command does when its run directory is damaged or its disk fails: damaged
checkpoints fall back to the newest intact one, none intact and a failed background save are exit
status 2 with one line, and a resume under a changed config is refused naming the fields.

The runs go through `embeddinggemma.cli.train.main` in this process (8 simulated devices)."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

from embeddinggemma.cli.train import main
from embeddinggemma.training.checkpoints import DAMAGED_DIR
from tests.training.conftest import small_run_command
from tests.training.test_train_loop import losses, saved_steps

pytestmark = pytest.mark.slow  # training runs in this process: several seconds each

STEPS = 10


def command(corpus: Path, workdir: Path, *overrides: str, steps: int = STEPS) -> list[str]:
    return small_run_command(corpus, workdir, *overrides, steps=steps)[4:]  # without python -m ... train


@pytest.fixture(scope="module")
def finished(small_corpus, tmp_path_factory) -> Path:
    """A finished run with checkpoints at steps 2, 4, ..., 10."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    assert main(command(small_corpus, workdir)) == 0
    assert saved_steps(workdir) == [2, 4, 6, 8, 10]
    return workdir


def largest_data_file(checkpoint: Path) -> Path:
    return max((p for p in (checkpoint / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def damage(checkpoint: Path, kind: str) -> None:
    if kind == "truncated data file":
        data = largest_data_file(checkpoint)
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    elif kind == "deleted data file":
        largest_data_file(checkpoint).unlink()
    elif kind == "deleted metadata":
        (checkpoint / "state" / "_METADATA").unlink()
    elif kind == "garbage metadata":
        (checkpoint / "state" / "_METADATA").write_text("{'not': json")


KINDS = {10: "truncated data file", 8: "deleted data file", 6: "deleted metadata", 4: "garbage metadata"}


def test_damaged_checkpoints_are_named_and_the_run_resumes_from_the_newest_intact_one(
        finished, small_corpus, tmp_path, caplog, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(finished, workdir)
    shutil.rmtree(workdir / "export")
    for step, kind in KINDS.items():
        damage(workdir / "checkpoints" / str(step), kind)
    with caplog.at_level(logging.WARNING):
        assert main(command(small_corpus, workdir)) == 0, capsys.readouterr().err[-3000:]
    messages = [r.getMessage() for r in caplog.records]
    for step in KINDS:
        named = [m for m in messages if f"Checkpoint {workdir / 'checkpoints' / str(step)} is damaged" in m]
        assert len(named) == 1 and "\n" not in named[0], messages
    assert any("Resuming from step 2, the newest intact checkpoint" in m for m in messages)
    assert any(f"Resumed {workdir} from step 2." in m for m in messages)
    # The damaged ones are kept aside; the run did steps 3..10 again, exactly as before.
    assert sorted(int(p.name) for p in (workdir / DAMAGED_DIR).iterdir()) == sorted(KINDS)
    assert saved_steps(workdir) == [2, 4, 6, 8, 10]
    got, expected = losses(workdir), losses(finished)
    steps = range(1, STEPS + 1)
    np.testing.assert_allclose([got[s] for s in steps], [expected[s] for s in steps], rtol=0, atol=1e-6)


def test_with_no_intact_checkpoint_the_run_stops_with_exit_status_2(finished, small_corpus, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(finished, workdir)
    for step in saved_steps(workdir):
        damage(workdir / "checkpoints" / str(step), "garbage metadata")
    assert main(command(small_corpus, workdir)) == 2
    err = capsys.readouterr().err
    assert f"error: No checkpoint in {workdir / 'checkpoints'} can be read (steps 10, 8, 6, 4, 2" in err
    assert "Traceback" not in err


def test_resuming_under_another_config_is_refused_naming_the_fields_unless_the_change_is_safe(
        finished, small_corpus, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(finished, workdir)
    config_json = (workdir / "config.json").read_bytes()
    assert main(command(small_corpus, workdir, "--config.optimizer.learning_rate=0.001",
                        "--config.model.pooling=first", "--config.train.num_steps=20")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {workdir} holds a run of another config") and err.count("\n") == 1
    learning_rate = json.loads(config_json)["optimizer"]["learning_rate"]
    assert (f"model.pooling ('mean' there, 'first' here); optimizer.learning_rate ({learning_rate} there, "
            "0.001 here)" in err)
    assert "train.num_steps (" not in err  # a safe change is not named
    assert (workdir / "config.json").read_bytes() == config_json
    # Safe changes only: it resumes (at its last step: nothing left to train) and records them.
    safe = ("--config.checkpoint.keep=5", "--config.eval.every_steps=5")
    assert main(command(small_corpus, workdir, *safe)) == 0
    assert json.loads((workdir / "config.json").read_text())["checkpoint"]["keep"] == 5


def mount_tmpfs(directory: Path, unmount: contextlib.ExitStack) -> bool:
    """Mounts a 64 MiB tmpfs at `directory` until `unmount` closes; False where that is not allowed."""
    directory.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(directory)],
                                 capture_output=True).returncode == 0
    except FileNotFoundError:  # no mount command
        return False
    if mounted:
        unmount.callback(subprocess.run, ["umount", "-l", str(directory)], check=True)
    return mounted


def fill(directory: Path, leave: int) -> None:
    """Fills the filesystem of `directory` until `leave` bytes are free."""
    with open(directory / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * (1 << 20))
    os.truncate(directory / "filler", (directory / "filler").stat().st_size - leave)


def fail_writes_of_step_4(monkeypatch) -> None:
    """Where no tmpfs can be mounted: the data item of checkpoint 4 fails as on a full disk."""
    real_save = ocp.handlers.JsonCheckpointHandler._save_fn

    async def full_at_step_4(self, x, directory):
        if re.search(r"/checkpoints/4[./]", str(directory)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
        return await real_save(self, x, directory)

    monkeypatch.setattr(ocp.handlers.JsonCheckpointHandler, "_save_fn", full_at_step_4)


def copy_at_step_2(finished: Path, workdir: Path) -> None:
    """`workdir` as the finished run's directory was after its checkpoint of step 2."""
    shutil.copytree(finished, workdir, ignore=shutil.ignore_patterns("export"))
    for step in saved_steps(workdir)[1:]:
        shutil.rmtree(workdir / "checkpoints" / str(step))


def test_a_full_disk_during_a_background_save_stops_the_run_with_exit_status_2(
        finished, small_corpus, tmp_path, capsys, monkeypatch):
    with contextlib.ExitStack() as unmount:
        disk = tmp_path / "disk"
        on_tmpfs = mount_tmpfs(disk, unmount)
        workdir = disk / "run"
        copy_at_step_2(finished, workdir)
        if on_tmpfs:
            fill(disk, leave=300_000)  # room for the logs, not for a 2 MB checkpoint
        else:
            fail_writes_of_step_4(monkeypatch)
        # Resumed from step 2, saving next at step 4 (safe changes on resume).
        assert main(command(small_corpus, workdir, "--config.checkpoint.every_steps=4", steps=12)) == 2
        checkpoints = workdir / "checkpoints"
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]  # beside the progress bar
        assert errors == [f"error: Saving the checkpoint of step 4 in {checkpoints} failed: No space left on "
                          f"device. The last good checkpoint is {checkpoints / '2'}."]
        assert "Traceback" not in err
        # Stopped at once, not at the next save (step 8); the earlier checkpoint intact, no partial left.
        assert max(losses(workdir)) < 8
        assert sorted(p.name for p in checkpoints.iterdir()) == ["2"]
