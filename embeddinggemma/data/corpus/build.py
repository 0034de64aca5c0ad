"""Builds a small training corpus from what shared/DATA.md allows, deterministically.

Output layout (DIR is versioned, e.g. ~/.cache/embeddinggemma/corpus-v1):
    DIR/manifest.json              counts, sources, seed, sizes, sha256 of every file, content_sha256
    DIR/<dataset>/train.jsonl      one record per line (embeddinggemma/data/records.py), sorted by id
    DIR/<dataset>/heldout.jsonl    the held-out split: ids whose stable hash falls below heldout_percent
    DIR/<dataset>/<split>.teacher/<teacher>/   teacher embeddings (teacher_embeddings.py), optional
Datasets: `code` (docstring -> function, InstructionRetrieval), `package_metadata` (summary ->
description, title = package name; query), `bitext` (English message -> translation; BitextMining).
Hard negatives are mined by BM25 within each split, so no held-out document is a training negative.

Inputs are read in sorted order and sampled with the seed; two builds of the same machine image give
byte-identical files (the manifest's content_sha256 says so in one line).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import site
from collections.abc import Callable, Sequence
from pathlib import Path

from embeddinggemma.data.corpus.code_pairs import DEFAULT_PACKAGES, code_pairs
from embeddinggemma.data.corpus.gettext_pairs import bitext_pairs
from embeddinggemma.data.corpus.hard_negatives import mine_hard_negatives
from embeddinggemma.data.corpus.package_metadata import metadata_pairs
from embeddinggemma.data.corpus.pairs import Pair
from embeddinggemma.data.hashing import stable_percent, stable_seed

FORMAT_VERSION = 1
SPLITS = ("train", "heldout")
DEFAULT_OUT = Path("~/.cache/embeddinggemma/corpus-v1")
DEFAULT_LOCALE_DIR = Path("/usr/share/locale")
MANIFEST = "manifest.json"


def default_site_dirs() -> list[Path]:
    """This interpreter's site-packages, then Debian's Python packages when present."""
    system = Path("/usr/lib/python3/dist-packages")
    return [Path(p) for p in site.getsitepackages()] + ([system] if system.is_dir() else [])


def split_of(pair_id: str, heldout_percent: int) -> str:
    """"heldout" for about `heldout_percent` percent of ids, by a hash of the id, else "train"."""
    return "heldout" if stable_percent(pair_id) < heldout_percent else "train"


def _write_records(path: Path, pairs: Sequence[Pair]) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(p.record(), ensure_ascii=False, sort_keys=True) + "\n" for p in pairs)
    data = text.encode("utf-8")
    path.write_bytes(data)
    return {"records": len(pairs), "sha256": hashlib.sha256(data).hexdigest()}


def build_corpus(out_dir: str | Path, *, seed: int = 0, max_pairs: int = 3000, heldout_percent: int = 10,
                 site_dirs: Sequence[str | Path] | None = None,
                 code_packages: Sequence[str] = DEFAULT_PACKAGES,
                 locale_dir: str | Path = DEFAULT_LOCALE_DIR, overwrite: bool = False) -> dict:
    """Writes the corpus into `out_dir` (through a temporary sibling, renamed at the end).

    `max_pairs` caps each dataset before the split. Returns the manifest.
    """
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True (--force) to rebuild it.")
    site_dirs = [Path(s) for s in (default_site_dirs() if site_dirs is None else site_dirs)]
    sources: dict[str, Callable[[int], tuple[list[Pair], dict]]] = {
        "code": lambda s: code_pairs(site_dirs, code_packages, seed=s, max_pairs=max_pairs),
        "package_metadata": lambda s: metadata_pairs(site_dirs, seed=s, max_pairs=max_pairs),
        "bitext": lambda s: bitext_pairs(locale_dir, seed=s, max_pairs=max_pairs),
    }
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    manifest = {"name": out_dir.name, "format_version": FORMAT_VERSION, "seed": seed, "max_pairs": max_pairs,
                "heldout_percent": heldout_percent, "datasets": {}, "teachers": {}}
    for name, make_pairs in sources.items():
        pairs, provenance = make_pairs(stable_seed(seed, name))
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
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return manifest
