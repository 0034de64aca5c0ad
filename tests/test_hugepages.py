import sys

import pytest

from embeddinggemma import hugepages

COMMAND = ["/usr/bin/python3", "-X", "importtime", "-m", "embeddinggemma", "train", "--config", "c.py"]


class Exec(Exception):
    pass


@pytest.fixture
def execs(monkeypatch):
    """Records os.execve instead of replacing the test process; the kernel is in `madvise` mode."""
    calls = []

    def execve(path, argv, env):
        calls.append((path, argv, env))
        raise Exec

    monkeypatch.setattr(hugepages.os, "execve", execve)
    monkeypatch.setattr(hugepages, "kernel_mode", lambda: "madvise")
    monkeypatch.setattr(hugepages, "glibc_version", lambda: (2, 36))
    monkeypatch.delenv(hugepages.SWITCH, raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")
    return calls


def test_a_command_restarts_itself_once_with_the_tunable_added(execs, monkeypatch):
    monkeypatch.setattr(sys, "orig_argv", COMMAND)
    with pytest.raises(Exec):
        hugepages.reexec_command()
    (path, argv, env), = execs
    assert path == sys.executable and argv == [sys.executable, *COMMAND[1:]]
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1"
    # The restarted process has it: it goes on.
    monkeypatch.setenv("GLIBC_TUNABLES", env["GLIBC_TUNABLES"])
    hugepages.reexec_command()
    assert len(execs) == 1


@pytest.mark.parametrize("argv", [
    ["python", "-m", "pytest", "tests"],        # a test run
    ["python", "script.py", "-m", "embeddinggemma", "train"],
    ["python", "-c", "import embeddinggemma"],
    ["python"],
])
def test_other_processes_are_left_as_they_are(execs, monkeypatch, argv):
    monkeypatch.setattr(sys, "orig_argv", argv)
    hugepages.reexec_command()
    assert execs == []


@pytest.mark.parametrize("mode, glibc, switch", [
    ("always", (2, 36), None),    # every mapping is huge already
    ("never", (2, 36), None),
    ("madvise", (2, 34), None),   # no hugetlb tunable yet
    ("madvise", None, None),      # not glibc
    ("madvise", (2, 36), "0"),    # turned off
])
def test_nothing_happens_where_the_tunable_would_not_help(execs, monkeypatch, mode, glibc, switch):
    monkeypatch.setattr(sys, "orig_argv", COMMAND)
    monkeypatch.setattr(hugepages, "kernel_mode", lambda: mode)
    monkeypatch.setattr(hugepages, "glibc_version", lambda: glibc)
    if switch is not None:
        monkeypatch.setenv(hugepages.SWITCH, switch)
    hugepages.reexec_command()
    assert execs == []


def test_thekernel_mode_is_the_bracketed_word(tmp_path, monkeypatch):
    mode = tmp_path / "enabled"
    mode.write_text("always [madvise] never\n")
    monkeypatch.setattr(hugepages, "THP_MODE", mode)
    assert hugepages.kernel_mode() == "madvise"
    monkeypatch.setattr(hugepages, "THP_MODE", tmp_path / "missing")
    assert hugepages.kernel_mode() is None
