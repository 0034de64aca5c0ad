"""Peak memory of `python -m embeddinggemma soup` on three 300m checkpoints, against one model's size.

    .venv/bin/python bench/soup_memory.py [--workdir DIR]

The ingredients are the released checkpoint (sentence-transformers) and two perturbed copies of it
saved as Orbax checkpoints, made in a fresh temporary directory (under --workdir) that is deleted
at the end. The soup runs in a subprocess; its peak resident set size comes from
GNU time (`/usr/bin/time -f %M`). Writes bench/results/soup_memory_<time>.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from system import start_as_the_commands_do

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    from embeddinggemma.artefacts import fetch_release
    from embeddinggemma.checkpoint.loading import load_checkpoint
    from embeddinggemma.checkpoint.orbax_io import save_orbax

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    release = fetch_release()
    work = Path(tempfile.mkdtemp(prefix="soup-memory-", dir=args.workdir))
    try:
        ckpt = load_checkpoint(release)
        model_bytes = sum(np.asarray(x, np.float32).nbytes for x in jax.tree.leaves(ckpt.params))
        copies = []
        for seed in (1, 2):
            rng = np.random.default_rng(seed)
            params = jax.tree.map(lambda x, r=rng: np.asarray(x, np.float32)
                                  + r.normal(0, 1e-3, np.shape(x)).astype(np.float32), ckpt.params)
            copies.append(save_orbax(work / f"copy{seed}", ckpt.config, params, ckpt.tokenizer_path,
                                     ckpt.prompts))
            del params
        del ckpt
        names = [str(release), *[str(c) for c in copies]]
        # The averaging alone (no Orbax write), then the whole command; each in a fresh process.
        average_only = ("import sys; from embeddinggemma.souping.ingredients import open_ingredient; "
                        "from embeddinggemma.souping.mix import weighted_sum; "
                        "i = [open_ingredient(n) for n in sys.argv[1:]]; "
                        "weighted_sum(i, [1 / len(i)] * len(i))")
        report = {"ingredients": 3, "model_bytes_float32": model_bytes,
                  "command": "python -m embeddinggemma soup --checkpoints RELEASE COPY1 COPY2 --out SOUP"}
        for label, command in (
                ("average_only", [sys.executable, "-c", average_only, *names]),
                ("soup_command", [sys.executable, "-m", "embeddinggemma", "soup", "--checkpoints", *names,
                                  "--out", str(work / "soup")])):
            started = time.perf_counter()
            # GNU time forks the command from its own small process: a child forked from this one
            # would count this process's memory in its peak (Linux keeps the pre-exec high-water mark).
            peak_file = work / f"{label}.maxrss"
            result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(peak_file), *command],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                print(result.stderr[-3000:], file=sys.stderr)
                return 1
            seconds = time.perf_counter() - started
            peak = int(peak_file.read_text().split()[-1]) * 1024  # kB
            report[label] = {"peak_rss_bytes": peak, "peak_over_model": round(peak / model_bytes, 2),
                             "seconds": round(seconds, 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"soup_memory_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    start_as_the_commands_do()
    sys.exit(main())
