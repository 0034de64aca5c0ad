"""Which of XLA's CPU kernel libraries the compiled models use, chosen by measuring this machine.

jaxlib's CPU backend hands matrix products, and the norms and element-wise work fused with them,
to YNNPACK by default ("ynnpack"); without it XLA runs its own kernels (Eigen products, "xla").
Which is faster depends on the CPU and on the products' shapes (on this project's AMD EPYC
machines YNNPACK's products with many rows were the slower; README and bench/README.md give the
measurements), and the Intel Xeon machines rank libraries differently, so the choice is measured,
not assumed.

`compiler_options()` gives the options for `jax.jit(..., compiler_options=...)` of every program
that runs the models (the Embedder, training steps, held-out scoring). The first time a machine
asks ("auto"), it times that feed-forward product, normed as in the model, with each library
(about 5 s), keeps "xla" only where it is at least `MARGIN` faster, and records the choice per CPU
model, core count and jaxlib version in `$EMBEDDINGGEMMA_CACHE/cpu-kernels.json` (default
~/.cache/embeddinggemma), so that later processes read it. `EMBEDDINGGEMMA_CPU_KERNELS=ynnpack` or
`=xla` fixes the choice; a multi-host job keeps the default unless told; on GPUs and TPUs there is
nothing to choose.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

SWITCH = "EMBEDDINGGEMMA_CPU_KERNELS"
AUTO = "auto"
KERNELS = {
    "ynnpack": {},  # jaxlib's default
    "xla": {"xla_cpu_experimental_ynn_fusion_type": ""},  # no YNNPACK fusions: XLA's own kernels
}
DEFAULT = "ynnpack"
CACHE_FILE = "cpu-kernels.json"
# "xla" replaces the default only when it is at least this much faster: a smaller difference is
# within the noise of a shared machine.
MARGIN = 0.05
# The calibration product: rows = the Embedder's default batch of 32 texts x 512 tokens, the
# 300m model's width and its feed-forward's gate and up together.
ROWS, WIDTH, HIDDEN = 32 * 512, 768, 2 * 1152
ROUNDS = 3


def cpu_model() -> str:
    """The `model name` line of /proc/cpuinfo ("unknown" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_key() -> str:
    """What the choice depends on: the CPU, the cores this process may use, and jaxlib."""
    import jaxlib

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_model()} | {cores} cores | jaxlib {jaxlib.__version__}"


def requested(environ: dict[str, str] | None = None) -> str:
    """The `EMBEDDINGGEMMA_CPU_KERNELS` setting: "auto" (unset) or a name in `KERNELS`."""
    value = (os.environ if environ is None else environ).get(SWITCH, AUTO).strip() or AUTO
    if value != AUTO and value not in KERNELS:
        raise ValueError(f"{SWITCH}={value!r} is not one of {', '.join([AUTO, *KERNELS])}.")
    return value


@functools.cache
def chosen() -> str:
    """The kernel library this process compiles CPU programs with (measured once per machine)."""
    import jax

    value = requested()
    if value != AUTO:
        return value
    # Hosts of one multi-host job each measure their own noise; they keep the default, alike.
    return _recorded_or_measured() if jax.process_count() == 1 else DEFAULT


def compiler_options(platform: str | None = None) -> dict[str, str] | None:
    """Options for `jax.jit(..., compiler_options=...)`: the chosen CPU kernels, or None where the
    program is compiled for another platform than the CPU (`platform`, e.g. a mesh's devices'
    "tpu"; default: JAX's default backend)."""
    import jax

    if (platform or jax.default_backend()) != "cpu":
        return None
    return dict(KERNELS[chosen()]) or None


def cache_path() -> Path:
    from embeddinggemma.artefacts import default_cache_dir

    return default_cache_dir() / CACHE_FILE


def choose(seconds: dict[str, float]) -> str:
    """The library to use from each one's best time: "xla" only where it beats the default by MARGIN."""
    best = min(seconds, key=seconds.get)
    return best if seconds[best] <= (1 - MARGIN) * seconds[DEFAULT] else DEFAULT


def _recorded_or_measured() -> str:
    path, key = cache_path(), machine_key()
    records, readable = _read_records(path)
    record = records.get(key)
    if isinstance(record, dict) and record.get("choice") in KERNELS:
        return record["choice"]
    seconds = measure()
    choice = choose(seconds)
    line = ", ".join(f"{name} {s:.3f} s" for name, s in seconds.items())
    where = f"saved in {path}" if readable else f"not saved: {path} is not a record of ours, left as it is"
    if readable:
        records[key] = {"choice": choice, "seconds": seconds,
                        "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            from embeddinggemma.atomic import atomic_write

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(records, indent=1, sort_keys=True) + "\n")
        except OSError as e:
            where = f"not saved ({e})"
    print(f"[embeddinggemma] XLA's CPU kernels on this machine ({key}): {line} -> {choice}; {where}",
          file=sys.stderr, flush=True)
    return choice


def _read_records(path: Path) -> tuple[dict, bool]:
    """The recorded choices, and whether the file may be written (absent, or a JSON object)."""
    try:
        records = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, True
    except (OSError, ValueError):
        return {}, False
    return (records, True) if isinstance(records, dict) else ({}, False)


def measure(rows: int = ROWS, rounds: int = ROUNDS) -> dict[str, float]:
    """Best seconds of the calibration product (`rows` x WIDTH by WIDTH x HIDDEN, after an RMS
    norm) under each library, the libraries taking turns."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    def normed_product(x, w):
        return (x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)) @ w

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((rows, WIDTH), np.float32))
    w = jnp.asarray(rng.standard_normal((WIDTH, HIDDEN), np.float32) * WIDTH ** -0.5)
    programs = {}
    for name, options in KERNELS.items():
        try:
            programs[name] = jax.jit(normed_product, compiler_options=options or None).lower(x, w).compile()
        except jax.errors.JaxRuntimeError as e:  # an option this jaxlib does not know: not on offer
            if name == DEFAULT:
                raise
            print(f"[embeddinggemma] XLA's CPU kernels: {name} unavailable ({e})", file=sys.stderr)
    for program in programs.values():
        program(x, w).block_until_ready()  # first runs allocate and warm the caches
    best = {name: float("inf") for name in programs}
    for _ in range(rounds):
        for name, program in programs.items():
            start = time.perf_counter()
            program(x, w).block_until_ready()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: round(s, 4) for name, s in best.items()}
