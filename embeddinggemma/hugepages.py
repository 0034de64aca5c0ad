"""Transparent huge pages for the large, short-lived buffers XLA allocates, in the commands.

Each call of a compiled function allocates its temporaries with malloc (gigabytes for the 300m
train step), which glibc serves from fresh mappings and unmaps when they are freed, so every step
faults them in again 4 KiB at a time (README's Training section and bench/README.md give the
measured faults and kernel time). glibc's `glibc.malloc.hugetlb=1` tunable marks those mappings
for transparent huge pages, which fault in 2 MiB at a time.

glibc reads its tunables only when a process starts, so the project's commands (`python -m
embeddinggemma.X`, `python -m experiments.X`, the benchmarks) re-execute themselves once with the
tunable set, before their heavy imports; child processes inherit it. Where the kernel already
backs all memory with huge pages (`always`), never does (`never`), or the C library is not glibc
>= 2.35, nothing happens. `EMBEDDINGGEMMA_HUGEPAGES=0` turns it off. In a Python session of your
own, start Python with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` to get the same.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb=1"
SWITCH = "EMBEDDINGGEMMA_HUGEPAGES"
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
MIN_GLIBC = (2, 35)  # the first glibc with the hugetlb tunable
COMMAND_PACKAGES = ("embeddinggemma", "experiments")


def glibc_version() -> tuple[int, ...] | None:
    """(major, minor) of the C library where it is glibc, else None."""
    lib, version = platform.libc_ver()
    if lib != "glibc" or not version:
        return None
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def kernel_mode() -> str | None:
    """The bracketed choice of the kernel's transparent huge page mode ("madvise", ...), if any."""
    try:
        text = THP_MODE.read_text()
    except OSError:
        return None
    chosen = [word[1:-1] for word in text.split() if word.startswith("[") and word.endswith("]")]
    return chosen[0] if chosen else None


def would_help(environ: dict[str, str] | None = None) -> bool:
    """Whether setting the tunable would change how this process's large buffers are backed."""
    environ = os.environ if environ is None else environ
    if environ.get(SWITCH, "1") == "0" or is_on(environ):
        return False
    glibc = glibc_version()
    return glibc is not None and glibc >= MIN_GLIBC and kernel_mode() == "madvise"


def is_on(environ: dict[str, str] | None = None) -> bool:
    """Whether this process was started with the tunable."""
    environ = os.environ if environ is None else environ
    return TUNABLE in environ.get("GLIBC_TUNABLES", "").split(":")


def command_module(argv: list[str]) -> str | None:
    """The module of `python [options] -m MODULE ...`, or None for a script, `-c` or the REPL."""
    i = 1
    while i < len(argv) - 1:
        arg = argv[i]
        if arg == "-m":
            return argv[i + 1]
        if arg == "-c" or not arg.startswith("-"):
            return None
        i += 2 if arg in ("-X", "-W") else 1  # the options that take a separate value
    return None


def reexec_command() -> None:
    """Re-executes `python -m embeddinggemma.X` or `-m experiments.X` with the tunable, where it
    would help; in any other process (a test run, a notebook, a script) it does nothing."""
    module = command_module(list(getattr(sys, "orig_argv", [])))
    if module and module.split(".")[0] in COMMAND_PACKAGES:
        reexec_with_hugepages()


def reexec_with_hugepages() -> None:
    """Replaces this process by the same command with the tunable set, where that would help;
    returns where it does nothing. For scripts: call it before the heavy imports."""
    if not would_help() or not getattr(sys, "orig_argv", None):
        return
    env = dict(os.environ)
    env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), TUNABLE]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)

