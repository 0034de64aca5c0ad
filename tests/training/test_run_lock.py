"""One run directory, one writer: the work directory's lock, taken by processes started together or
one after the other, freed by the kernel when its holder is killed, and the train command refused
(exit status 2, nothing written) while another process holds it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embeddinggemma.cli.train import main
from embeddinggemma.errors import WorkdirInUseError
from embeddinggemma.training.run_lock import lock_workdir
from tests.training.conftest import REPO

CONFIG = str(REPO / "configs" / "finetune.py") + ":tiny"

# Waits for DIR/go, tries the lock, says whether it got it, then holds it until DIR/done appears.
HOLDER = """
import pathlib, sys, time
from embeddinggemma.errors import WorkdirInUseError
from embeddinggemma.training.run_lock import lock_workdir
workdir = pathlib.Path(sys.argv[1])
while not (workdir / "go").exists():
    time.sleep(0.001)
try:
    lock = lock_workdir(workdir)
except WorkdirInUseError as e:
    print("refused:", e, flush=True)
    sys.exit(0)
lock.record_holder()
print("locked", flush=True)
while not (workdir / "done").exists():
    time.sleep(0.01)
"""


def start_holder(workdir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_of_processes_started_together_exactly_one_gets_the_lock(tmp_path):
    procs = [start_holder(tmp_path) for _ in range(3)]
    time.sleep(1.0)  # all three are waiting for the same moment (a slower start only staggers them)
    (tmp_path / "go").touch()
    first_lines = [p.stdout.readline().strip() for p in procs]
    (tmp_path / "done").touch()
    for p in procs:
        p.wait(timeout=60)
    assert sorted(line.split(":")[0] for line in first_lines) == ["locked", "refused", "refused"]
    assert all("is in use by another run" in line for line in first_lines if line.startswith("refused"))


def test_a_later_process_is_refused_naming_the_holder_until_the_holder_is_killed(tmp_path):
    (tmp_path / "go").touch()
    holder = start_holder(tmp_path)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(WorkdirInUseError, match=rf"in use by another run \(pid {holder.pid} on "
                                                rf"{socket.gethostname()}, started 20\d\d-"):
        lock_workdir(tmp_path)
    holder.send_signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    lock_workdir(tmp_path).release()  # the kernel released it with the process


def test_the_train_command_is_refused_while_another_process_holds_the_directory(tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text("{}\n")  # a run's directory: its config stays as it is
    (workdir / "go").touch()
    holder = start_holder(workdir)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["--config", CONFIG, "--workdir", str(workdir), "--config.data.corpus=/nonexistent"]) == 2
    finally:
        (workdir / "done").touch()
        holder.wait(timeout=60)
    err = capsys.readouterr().err
    assert f"error: {workdir} is in use by another run (pid {holder.pid} on" in err
    assert "Traceback" not in err and (workdir / "config.json").read_text() == "{}\n"
