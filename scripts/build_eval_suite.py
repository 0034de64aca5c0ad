"""Build the offline evaluation suite from the sources reserved for evaluation (shared/DATA.md).

Usage: .venv/bin/python scripts/build_eval_suite.py [--out ~/.cache/embeddinggemma/eval-v1] [--force]
       [--tasks A,B]

Deterministic; an existing suite is kept unless --force. The tasks: embeddinggemma/evaluation/build.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR, MANIFEST, build_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_SUITE_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild an existing suite")
    args = parser.parse_args(argv)
    out = args.out.expanduser()
    if (out / MANIFEST).is_file() and not args.force:
        print(f"kept the existing suite {out} (--force rebuilds it)", file=sys.stderr)
        manifest = json.loads((out / MANIFEST).read_text())
    else:
        started = time.perf_counter()
        try:
            manifest = build_suite(out, seed=args.seed, overwrite=True,
                                   tasks=tuple(args.tasks.split(",")) if args.tasks else None)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"built {out} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for name, entry in manifest["tasks"].items():
        print(f"{name:<32}{entry['type']:<20}{entry['sha256'][:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
