"""Precomputes a teacher's embeddings of every record of a built corpus (layout: data/teacher.py).

Texts are prompted exactly as the training pipeline prompts them for the student
(transforms.prompted_texts), whatever prompts the teacher's checkpoint lists.
"""

from __future__ import annotations

import sys
from pathlib import Path

from embeddinggemma import Embedder
from embeddinggemma.data.corpus.manifest import read_manifest, write_manifest
from embeddinggemma.data.jsonl import JsonLinesSource
from embeddinggemma.data.records import parse_example
from embeddinggemma.data.teacher import INFO_FILE, default_teacher_dir, write_teacher_embeddings
from embeddinggemma.data.transforms import prompted_texts
from embeddinggemma.files import read_json
from embeddinggemma.paths import as_path
from embeddinggemma.schema import RECORD_FIELDS, ROLES


def add_teacher_embeddings(corpus_dir: str | Path, checkpoint: str | Path, *, name: str | None = None,
                           max_length: int = 512, batch_size: int = 32, dtype: str = "float32") -> dict:
    """Embeds query, positive and negative of every split with `checkpoint` (any directory that
    `Embedder.load` reads); records the teacher in the manifest, which it returns.

    `name` (default: the checkpoint directory's name) is what `data.teacher` selects in training.
    Splits are written one at a time, so a killed run resumes: a split whose embeddings were
    already written with these settings (info.json) is kept, not embedded again.
    """
    corpus_dir, checkpoint = as_path(corpus_dir).expanduser(), as_path(checkpoint).expanduser()
    name = name or checkpoint.name
    embedder = Embedder.load(checkpoint, dtype=dtype)
    manifest = read_manifest(corpus_dir)
    identity = {f: f for f in RECORD_FIELDS}
    teacher = {"checkpoint": str(checkpoint), "dim": embedder.dim, "max_length": max_length, "dtype": dtype}
    splits = [corpus_dir / split["path"] for entry in manifest["datasets"].values()
              for split in entry["splits"].values()]
    for number, path in enumerate(splits, 1):
        examples = [parse_example(raw, identity) for raw in JsonLinesSource(path)]
        target = default_teacher_dir(path, name)
        if _written_with(target, {**teacher, "count": len(examples)}):
            print(f"teacher {name}: {path.relative_to(corpus_dir)} already embedded ({number}/{len(splits)})",
                  file=sys.stderr)
            continue
        texts = [prompted_texts(e) for e in examples]
        fields = [f for f in ROLES if all(f in t for t in texts)]
        print(f"teacher {name}: embedding {path.relative_to(corpus_dir)} ({number}/{len(splits)}: "
              f"{len(examples)} records x {len(fields)} roles)", file=sys.stderr)
        # One call per split: the Embedder compiles each padded shape once and reuses it across calls.
        vectors = embedder.encode([t[f] for f in fields for t in texts], max_length=max_length,
                                  batch_size=batch_size)
        count = len(examples)
        embeddings = {f: vectors[i * count:(i + 1) * count] for i, f in enumerate(fields)}
        write_teacher_embeddings(target, [e.id for e in examples], embeddings, {**teacher, "count": count})
    manifest["teachers"][name] = teacher
    write_manifest(corpus_dir, manifest)
    return manifest


def _written_with(directory: Path, info: dict) -> bool:
    """Whether `directory` holds complete teacher embeddings made with exactly `info`'s settings."""
    path = directory / INFO_FILE
    return path.is_file() and read_json(path, "The info file of teacher embeddings") == info
