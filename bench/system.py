"""What machine a benchmark ran on, how busy other processes kept it, and where results go."""

from __future__ import annotations

import json
import os
import resource
import time
from importlib import metadata
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    """The `model name` line of /proc/cpuinfo ("unknown" where there is none)."""
    from embeddinggemma.cpu_kernels import cpu_model as model

    return model()


def cpu_kernels() -> dict:
    """XLA's CPU kernel library the JAX side ran with, and what chose it (embeddinggemma/cpu_kernels.py)."""
    from embeddinggemma import cpu_kernels as kernels

    return {"setting": kernels.requested(), "chosen": kernels.chosen(), "machine_key": kernels.machine_key()}


def start_as_the_commands_do() -> None:
    """Restarts this benchmark once with XLA's large buffers on transparent huge pages, as the
    project's commands start (embeddinggemma/hugepages.py); its worker processes inherit it, the
    PyTorch ones included, so both sides run with the same allocator settings."""
    from embeddinggemma.hugepages import reexec_with_hugepages

    reexec_with_hugepages()


def allocator() -> dict:
    """The allocator settings the result was measured with."""
    from embeddinggemma.hugepages import is_on, kernel_mode

    return {"hugetlb_tunable": is_on(), "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
            "transparent_hugepages": kernel_mode()}


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Installed distribution versions (None where a package is missing)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _machine_busy_seconds() -> float:
    # First line of /proc/stat: cumulative jiffies of all CPUs; guest time is already in user.
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def _own_cpu_seconds() -> float:
    # This process plus its waited-for children (the cold-start subprocesses).
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class OtherLoad:
    """Measures the share of all CPUs that other processes used between `start` and `stop`.

    0.0 means the machine was otherwise idle; 0.5 on two cores means one core was taken.
    """

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self._wall = time.perf_counter()
        self._busy = _machine_busy_seconds()
        self._own = _own_cpu_seconds()

    def stop(self) -> float:
        """The other processes' share of (wall time x CPUs) since `start`, in [0, 1]."""
        wall = time.perf_counter() - self._wall
        others = (_machine_busy_seconds() - self._busy) - (_own_cpu_seconds() - self._own)
        capacity = wall * (os.cpu_count() or 1)
        return min(max(others / capacity, 0.0), 1.0) if capacity > 0 else 0.0


def idle_check(seconds: float = 2.0) -> dict:
    """Load average and other processes' CPU share over a short quiet interval."""
    load = OtherLoad()
    time.sleep(seconds)
    share = load.stop()
    return {"other_cpu_share": round(share, 3), "loadavg": os.getloadavg(), "sample_s": seconds}


BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def write_result(stem: str, result: dict) -> Path:
    """bench/results/<stem>_<started>.json plus <stem>_latest.json; returns the timestamped path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{stem}_{result['started']}.json"
    text = json.dumps(result, indent=1) + "\n"
    path.write_text(text)
    (RESULTS_DIR / f"{stem}_latest.json").write_text(text)
    return path
