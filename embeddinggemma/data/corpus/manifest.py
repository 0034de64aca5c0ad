"""The corpus manifest: the file that makes a directory a built corpus and says what it holds.

`DIR/manifest.json` (layout: build.py) is written last, so a directory holding it is a complete
corpus, and it is the builder's marker (atomic.py): a directory without it is never written into
unless empty.
"""

from __future__ import annotations

import json
from pathlib import Path

from embeddinggemma.atomic import atomic_write
from embeddinggemma.files import read_json
from embeddinggemma.paths import AnyPath, as_path

MANIFEST = "manifest.json"
# 2: sources are pinned wheels and listed gettext domains, no longer the running environment.
# 3: a code id repeated in one file (a property's getter and setter) gets "#2"; ids are unique.
FORMAT_VERSION = 3
WHAT = "a corpus built by scripts/build_corpus.py"


def read_manifest(corpus_dir: str | Path) -> dict:
    """The manifest of the corpus in `corpus_dir`.

    Raises:
      FileNotFoundError naming the manifest when it is missing.
      ValueError naming it when it is not JSON or has no "datasets" object.
    """
    path = as_path(corpus_dir).expanduser() / MANIFEST
    manifest = read_json(path, f"The manifest of {WHAT}")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("datasets"), dict):
        raise ValueError(f"{path}: no \"datasets\" object, so it is not the manifest of {WHAT}.")
    return manifest


def write_manifest(corpus_dir: str | Path, manifest: dict) -> AnyPath:
    """Writes `manifest` into `corpus_dir` atomically (readers see the old or the new one)."""
    return atomic_write(as_path(corpus_dir) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
