"""Build the small real training corpus (and optionally its teacher embeddings), deterministically.

Datasets from declared sources only (never CPython's standard library, man pages, glib20 catalogs
or Debian's package index, which are reserved for evaluation): `code` (docstring -> function) and
`package_metadata` (summary -> description) from pinned wheels (downloaded once into
~/.cache/embeddinggemma/corpus-sources, about 53 MB), and `bitext` (gettext English -> translation)
from listed catalogs, each with BM25 hard negatives and a held-out split.
Layout: embeddinggemma/data/corpus/build.py.

Usage:
  .venv/bin/python scripts/build_corpus.py [--out ~/.cache/embeddinggemma/corpus-v3] [--max-pairs 3000]
  .venv/bin/python scripts/build_corpus.py --teacher ~/.cache/embeddinggemma/embeddinggemma-300m

An existing corpus is kept (rebuild with --force); --teacher then only adds the teacher's embeddings.
A directory that is not a corpus is refused unless empty; nothing in it is touched.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from embeddinggemma.atomic import check_target
from embeddinggemma.data.corpus.build import DEFAULT_LOCALE_DIR, DEFAULT_OUT, build_corpus
from embeddinggemma.data.corpus.code_pairs import DEFAULT_PACKAGES
from embeddinggemma.data.corpus.manifest import FORMAT_VERSION, MANIFEST, WHAT, read_manifest
from embeddinggemma.data.corpus.wheels import SourceError, fetch_wheels
from embeddinggemma.errors import NotOurDirectoryError
from embeddinggemma.paths import as_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=as_path, default=DEFAULT_OUT, help="versioned output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-pairs", type=int, default=3000, help="pairs per dataset, before the split")
    parser.add_argument("--heldout-percent", type=int, default=10)
    parser.add_argument("--sources-dir", type=Path, default=None,
                        help="cache of the pinned wheels (default: $EMBEDDINGGEMMA_CACHE/corpus-sources, "
                             "else ~/.cache/embeddinggemma/corpus-sources)")
    parser.add_argument("--code-package", action="append", default=None,
                        help=f"package for code pairs (repeatable; default: {' '.join(DEFAULT_PACKAGES)})")
    parser.add_argument("--locale-dir", type=Path, default=DEFAULT_LOCALE_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild an existing corpus")
    parser.add_argument("--teacher", type=as_path, default=None,
                        help="checkpoint (Orbax or sentence-transformers directory) to precompute "
                             "teacher embeddings with")
    parser.add_argument("--teacher-name", default=None, help="default: the checkpoint directory's name")
    parser.add_argument("--teacher-max-length", type=int, default=512)
    parser.add_argument("--teacher-batch-size", type=int, default=32)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = args.out.expanduser()
    started = time.perf_counter()
    try:
        # Refused before anything is downloaded: a directory that is not a corpus.
        check_target(out, MANIFEST, WHAT)
        if (out / MANIFEST).is_file() and not args.force:
            manifest = read_manifest(out)
            wanted = {"format_version": FORMAT_VERSION, "seed": args.seed, "max_pairs": args.max_pairs,
                      "heldout_percent": args.heldout_percent}
            if any(manifest.get(k) != v for k, v in wanted.items()):
                print(f"error: {out} was built with other settings or format; pass --force to rebuild it.",
                      file=sys.stderr)
                return 2
            print(f"kept the existing corpus {out}", file=sys.stderr)
        else:
            manifest = build_corpus(out, seed=args.seed, max_pairs=args.max_pairs,
                                    heldout_percent=args.heldout_percent,
                                    wheels=fetch_wheels(cache_dir=args.sources_dir),
                                    code_packages=args.code_package or DEFAULT_PACKAGES,
                                    locale_dir=args.locale_dir, overwrite=args.force)
            print(f"built {out} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    except (NotOurDirectoryError, SourceError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.teacher is not None:
        from embeddinggemma.data.corpus.teacher_embeddings import add_teacher_embeddings  # imports JAX

        started = time.perf_counter()
        manifest = add_teacher_embeddings(out, args.teacher, name=args.teacher_name,
                                          max_length=args.teacher_max_length,
                                          batch_size=args.teacher_batch_size)
        print(f"teacher embeddings in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    for name, entry in manifest["datasets"].items():
        counts = ", ".join(f"{split} {s['records']}" for split, s in entry["splits"].items())
        print(f"{name}: {counts}")
    print(f"content_sha256 {manifest['content_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
