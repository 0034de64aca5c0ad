"""Precomputes a teacher's embeddings of every record of a built corpus (layout: data/teacher.py).

Texts are prompted exactly as the training pipeline prompts them for the student
(transforms.prompted_texts), whatever prompts the teacher's checkpoint lists.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
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
    teacher = {"checkpoint": str(checkpoint), "dim": embedder.dim, "max_length": max_length, "dtype": dtype}
    splits = [corpus_dir / split["path"] for entry in manifest["datasets"].values()
              for split in entry["splits"].values()]
    for number, path in enumerate(splits, 1):
        embed_records(path, embedder, default_teacher_dir(path, name), teacher,
                      max_lengths=dict.fromkeys(ROLES, max_length), batch_size=batch_size,
                      label=f"teacher {name}: {path.relative_to(corpus_dir)} ({number}/{len(splits)})")
    manifest["teachers"][name] = teacher
    write_manifest(corpus_dir, manifest)
    return manifest


def embed_records(path: str | Path, embedder: Embedder, target: str | Path, teacher: Mapping[str, object], *,
                  max_lengths: Mapping[str, int], batch_size: int = 32, label: str = "") -> bool:
    """Embeds the prompted query, positive and negative (where every record has one) of every
    record of the JSON-lines file `path` into `target` (the layout of data/teacher.py), with
    `teacher` (plus the record count) as its info.json; each role is cut to `max_lengths[role]`
    tokens, as the training pipeline cuts it. Returns False, embedding nothing, when `target`
    already holds embeddings made with exactly these settings.

    Raises:
      MalformedRecordError naming `file:line` for a record without an id or with a broken field.
    """
    path = as_path(path).expanduser()
    examples = [parse_example(raw, {f: f for f in RECORD_FIELDS}, require_id=True)
                for raw in JsonLinesSource(path)]
    info = {**teacher, "count": len(examples)}
    if _written_with(as_path(target), info):
        print(f"{label or path}: already embedded", file=sys.stderr)
        return False
    texts = [prompted_texts(e) for e in examples]
    fields = [f for f in ROLES if all(f in t for t in texts)]
    print(f"{label or path}: embedding {len(examples)} records x {len(fields)} roles", file=sys.stderr)
    embeddings = {}
    # One call per length: the Embedder compiles each padded shape once and reuses it across calls.
    for length in sorted({max_lengths[f] for f in fields}):
        group = [f for f in fields if max_lengths[f] == length]
        vectors = embedder.encode([t[f] for f in group for t in texts], max_length=length,
                                  batch_size=batch_size)
        embeddings.update({f: vectors[i * len(texts):(i + 1) * len(texts)] for i, f in enumerate(group)})
    write_teacher_embeddings(target, [e.id for e in examples], embeddings, info)
    return True


def _written_with(directory: Path, info: dict) -> bool:
    """Whether `directory` holds complete teacher embeddings made with exactly `info`'s settings."""
    path = directory / INFO_FILE
    return path.is_file() and read_json(path, "The info file of teacher embeddings") == info
