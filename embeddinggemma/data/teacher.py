"""Precomputed teacher embeddings stored beside the records, found by record id.

Layout (one directory per records file and teacher; by default `<records stem>.teacher/<teacher>/`,
e.g. `code/train.jsonl` -> `code/train.teacher/embeddinggemma-300m/`):
    ids.npy        [N] unicode: record ids, sorted ascending, unique
    query.npy      [N, Dt] float32: row i embeds the prompted query of the record with id ids[i]
    positive.npy   [N, Dt] float32: its prompted positive
    negative.npy   [N, Dt] float32: its prompted hard negative (when the records have them)
    info.json      {"checkpoint", "dim", "count", "max_length", ...}: how they were made; written
                   last, it marks a complete directory (atomic.py)
Texts are prompted exactly as the student sees them (transforms.prompted_texts). Arrays are
memory-mapped, and an id is found by binary search, so N may exceed the host's memory; in a bucket
(`gs://...`, see paths.py) they are downloaded into memory when opened.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from embeddinggemma.atomic import atomic_directory
from embeddinggemma.files import read_json
from embeddinggemma.paths import AnyPath, as_path, is_url
from embeddinggemma.schema import ROLES

INFO_FILE = "info.json"
WHAT = "teacher embeddings"


def default_teacher_dir(records_path: str | Path, teacher: str) -> AnyPath:
    """`<records stem>.teacher/<teacher>`: where the embeddings of a records file live by default."""
    return as_path(records_path).expanduser().with_suffix(".teacher") / teacher


def write_teacher_embeddings(directory: str | Path, ids: Sequence[str],
                             embeddings: Mapping[str, np.ndarray], info: Mapping[str, object]) -> AnyPath:
    """Writes the layout above, whole or not at all; `embeddings` maps roles (schema.ROLES) to [N, Dt]
    arrays in `ids` order.

    Raises:
      NotOurDirectoryError when `directory` is a file or a non-empty directory without info.json.
      ValueError for ids that are not unique, unknown roles or arrays of another length.
    """
    directory = as_path(directory)
    if len(set(ids)) != len(ids):
        raise ValueError(f"Teacher ids for {directory} are not unique.")
    unknown = set(embeddings) - set(ROLES)
    if unknown or "query" not in embeddings or "positive" not in embeddings:
        raise ValueError(f"Teacher embeddings need query and positive (and may have negative); got "
                         f"{sorted(embeddings)}.")
    for role, array in embeddings.items():
        if array.shape[0] != len(ids):
            raise ValueError(f"Teacher {role} embeddings have {array.shape[0]} rows for {len(ids)} ids.")
    order = np.argsort(np.asarray(ids, dtype=str), kind="stable")
    with atomic_directory(directory, INFO_FILE, WHAT) as partial:
        _save(partial / "ids.npy", np.asarray(ids, dtype=str)[order])
        for role, array in embeddings.items():
            _save(partial / f"{role}.npy", np.asarray(array, dtype=np.float32)[order])
        (partial / INFO_FILE).write_text(json.dumps(dict(info), indent=2, sort_keys=True) + "\n")
    return directory


def _save(path: AnyPath, array: np.ndarray) -> None:
    """np.save through a file object (np.save would take a `gs://` string for a local path)."""
    with path.open("wb") as f:
        np.save(f, array)


def _load(path: AnyPath) -> np.ndarray:
    """The .npy file `path`: memory-mapped when local, read into memory from a bucket."""
    if is_url(path):
        return np.load(io.BytesIO(path.read_bytes()))
    return np.load(path, mmap_mode="r")


class TeacherEmbeddings:
    """Reads the layout above: `vectors(record_id)` -> {role: [Dt] float32} or None; `info` is info.json."""

    def __init__(self, directory: str | Path):
        self.directory = as_path(directory).expanduser()
        if not (self.directory / "ids.npy").is_file():
            raise FileNotFoundError(f"No teacher embeddings in {self.directory} (ids.npy is missing).")
        self.info = read_json(self.directory / INFO_FILE, "The info file of teacher embeddings")
        if not isinstance(self.info, dict):
            raise ValueError(f"{self.directory / INFO_FILE}: not a JSON object.")
        self._ids = _load(self.directory / "ids.npy")
        if len(self._ids) > 1 and not np.all(self._ids[:-1] < self._ids[1:]):
            raise ValueError(f"{self.directory}/ids.npy is not sorted and unique.")
        self._arrays = {f: _load(self.directory / f"{f}.npy")
                        for f in ROLES if (self.directory / f"{f}.npy").is_file()}
        shapes = {f: a.shape for f, a in self._arrays.items()}
        if ({"query", "positive"} - set(shapes)
                or any(len(s) != 2 or s[0] != len(self._ids) for s in shapes.values())
                or len({s[1] for s in shapes.values()}) != 1):
            raise ValueError(f"{self.directory}: teacher arrays {shapes} do not match {len(self._ids)} ids.")

    @property
    def dim(self) -> int:
        return self._arrays["query"].shape[1]

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self._arrays)

    def vectors(self, record_id: str) -> dict[str, np.ndarray] | None:
        """The teacher's [Dt] float32 vector of each role for a record id; None for an unknown id."""
        row = int(np.searchsorted(self._ids, record_id))
        if row == len(self._ids) or self._ids[row] != record_id:
            return None
        return {f: np.asarray(a[row], dtype=np.float32) for f, a in self._arrays.items()}
