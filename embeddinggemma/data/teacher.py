"""Precomputed teacher embeddings stored beside the records, found by record id.

Layout (one directory per records file and teacher; by default `<records stem>.teacher/<teacher>/`,
e.g. `code/train.jsonl` -> `code/train.teacher/embeddinggemma-300m/`):
    ids.npy        [N] unicode: record ids, sorted ascending, unique
    query.npy      [N, Dt] float32: row i embeds the prompted query of the record with id ids[i]
    positive.npy   [N, Dt] float32: its prompted positive
    negative.npy   [N, Dt] float32: its prompted hard negative (when the records have them)
    info.json      {"checkpoint", "dim", "count", "max_length", ...}: how they were made
Texts are prompted exactly as the student sees them (transforms.prompted_texts). Arrays are
memory-mapped, and an id is found by binary search, so N may exceed the host's memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

FIELDS = ("query", "positive", "negative")
INFO_FILE = "info.json"


def default_teacher_dir(records_path: str | Path, teacher: str) -> Path:
    """`<records stem>.teacher/<teacher>`: where the embeddings of a records file live by default."""
    return Path(records_path).expanduser().with_suffix(".teacher") / teacher


def write_teacher_embeddings(directory: str | Path, ids: Sequence[str],
                             embeddings: Mapping[str, np.ndarray], info: Mapping[str, object]) -> Path:
    """Writes the layout above; `embeddings` maps fields of FIELDS to [N, Dt] arrays in `ids` order."""
    directory = Path(directory)
    if len(set(ids)) != len(ids):
        raise ValueError(f"Teacher ids for {directory} are not unique.")
    unknown = set(embeddings) - set(FIELDS)
    if unknown or "query" not in embeddings or "positive" not in embeddings:
        raise ValueError(f"Teacher embeddings need query and positive (and may have negative); got "
                         f"{sorted(embeddings)}.")
    order = np.argsort(np.asarray(ids, dtype=str), kind="stable")
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "ids.npy", np.asarray(ids, dtype=str)[order])
    for field, array in embeddings.items():
        if array.shape[0] != len(ids):
            raise ValueError(f"Teacher {field} embeddings have {array.shape[0]} rows for {len(ids)} ids.")
        np.save(directory / f"{field}.npy", np.asarray(array, dtype=np.float32)[order])
    (directory / INFO_FILE).write_text(json.dumps(dict(info), indent=2, sort_keys=True) + "\n")
    return directory


class TeacherEmbeddings:
    """Reads the layout above: `vectors(record_id)` -> {field: [Dt] float32} or None."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).expanduser()
        if not (self.directory / "ids.npy").is_file():
            raise FileNotFoundError(f"No teacher embeddings in {self.directory} (ids.npy is missing).")
        self._ids = np.load(self.directory / "ids.npy", mmap_mode="r")
        if len(self._ids) > 1 and not np.all(self._ids[:-1] < self._ids[1:]):
            raise ValueError(f"{self.directory}/ids.npy is not sorted and unique.")
        self._arrays = {f: np.load(self.directory / f"{f}.npy", mmap_mode="r")
                        for f in FIELDS if (self.directory / f"{f}.npy").is_file()}
        shapes = {f: a.shape for f, a in self._arrays.items()}
        if ({"query", "positive"} - set(shapes)
                or any(len(s) != 2 or s[0] != len(self._ids) for s in shapes.values())
                or len({s[1] for s in shapes.values()}) != 1):
            raise ValueError(f"{self.directory}: teacher arrays {shapes} do not match {len(self._ids)} ids.")

    @property
    def dim(self) -> int:
        return self._arrays["query"].shape[1]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self._arrays)

    def vectors(self, record_id: str) -> dict[str, np.ndarray] | None:
        """The teacher's [Dt] float32 vector of each field for a record id; None for an unknown id."""
        row = int(np.searchsorted(self._ids, record_id))
        if row == len(self._ids) or self._ids[row] != record_id:
            return None
        return {f: np.asarray(a[row], dtype=np.float32) for f, a in self._arrays.items()}
