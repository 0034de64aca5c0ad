"""Build the offline evaluation suite from the sources reserved for evaluation (shared/DATA.md).

Usage: .venv/bin/python scripts/build_eval_suite.py [--out ~/.cache/embeddinggemma/eval-v1] [--force]
       [--tasks A,B]

Deterministic; an existing suite is kept unless --force. The output directory must be absent,
empty or a suite: anything else is refused and left as it is, with or without --force.
The tasks: embeddinggemma/evaluation/build.py.
"""

from __future__ import annotations

import argparse
import sys
import time

from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR, MANIFEST, build_suite, read_manifest
from embeddinggemma.paths import as_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=as_path, default=DEFAULT_SUITE_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild an existing suite (only a suite: never another directory)")
    args = parser.parse_args(argv)
    out = args.out.expanduser()
    try:
        if (out / MANIFEST).is_file() and not args.force:
            print(f"kept the existing suite {out} (--force rebuilds it)", file=sys.stderr)
            manifest = read_manifest(out)
        else:
            started = time.perf_counter()
            manifest = build_suite(out, seed=args.seed, overwrite=args.force,
                                   tasks=tuple(args.tasks.split(",")) if args.tasks else None)
            print(f"built {out} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, entry in manifest["tasks"].items():
        print(f"{name:<32}{entry['type']:<20}{entry['sha256'][:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
