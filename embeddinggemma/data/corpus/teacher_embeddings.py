"""Precomputes a teacher's embeddings of every record of a built corpus (layout: data/teacher.py).

Texts are prompted exactly as the training pipeline prompts them for the student
(transforms.prompted_texts), whatever prompts the teacher's checkpoint lists.
"""

from __future__ import annotations

from pathlib import Path

from embeddinggemma import Embedder
from embeddinggemma.data.corpus.manifest import read_manifest, write_manifest
from embeddinggemma.data.jsonl import JsonLinesSource
from embeddinggemma.data.records import parse_example
from embeddinggemma.data.teacher import default_teacher_dir, write_teacher_embeddings
from embeddinggemma.data.transforms import prompted_texts
from embeddinggemma.schema import RECORD_FIELDS, ROLES


def add_teacher_embeddings(corpus_dir: str | Path, checkpoint: str | Path, *, name: str | None = None,
                           max_length: int = 512, batch_size: int = 32, dtype: str = "float32") -> dict:
    """Embeds query, positive and negative of every split with `checkpoint` (any directory that
    `Embedder.load` reads); records the teacher in the manifest, which it returns.

    `name` (default: the checkpoint directory's name) is what `data.teacher` selects in training.
    """
    corpus_dir, checkpoint = Path(corpus_dir).expanduser(), Path(checkpoint).expanduser()
    name = name or checkpoint.name
    embedder = Embedder.load(checkpoint, dtype=dtype)
    manifest = read_manifest(corpus_dir)
    identity = {f: f for f in RECORD_FIELDS}
    teacher = {"checkpoint": str(checkpoint), "dim": embedder.dim, "max_length": max_length, "dtype": dtype}
    splits = [corpus_dir / split["path"] for entry in manifest["datasets"].values()
              for split in entry["splits"].values()]
    examples = {path: [parse_example(raw, identity) for raw in JsonLinesSource(path)] for path in splits}
    texts = {path: [prompted_texts(e) for e in examples[path]] for path in splits}
    fields = {path: [f for f in ROLES if all(f in t for t in texts[path])] for path in splits}
    # One call for every text of the corpus: each padded shape is compiled once, not once per file.
    everything = [t[f] for path in splits for f in fields[path] for t in texts[path]]
    vectors = embedder.encode(everything, max_length=max_length, batch_size=batch_size)
    start = 0
    for path in splits:
        count = len(texts[path])
        embeddings = {}
        for field in fields[path]:
            embeddings[field], start = vectors[start:start + count], start + count
        write_teacher_embeddings(default_teacher_dir(path, name), [e.id for e in examples[path]],
                                 embeddings, {**teacher, "count": count})
    manifest["teachers"][name] = teacher
    write_manifest(corpus_dir, manifest)
    return manifest
