"""Random-access record sources: JSON lines, ArrayRecord (JSON-encoded records) and TFDS.

Every source is a sequence of RawRecord (`len`, `[index]`): grain shuffles, shards and batches
it by index, so a host reads only the records of its own part of each batch.
"""

from __future__ import annotations

import glob
from pathlib import Path

import grain
import ml_collections
import numpy as np

from embeddinggemma.data.jsonl import JsonLinesSource
from embeddinggemma.data.records import RawRecord


class ArrayRecordSource:
    """ArrayRecord files whose records are JSON-encoded bytes; `path` may be a glob (files in
    sorted order). A record's `where` is `file[record i]`, i counted within its file."""

    def __init__(self, path: str):
        self.path = str(Path(path).expanduser())
        self._paths = sorted(glob.glob(self.path))
        if not self._paths:
            raise FileNotFoundError(f"No ArrayRecord file matches {self.path}")
        self._source = grain.sources.ArrayRecordDataSource(self._paths)
        self._file_ends = np.cumsum([len(grain.sources.ArrayRecordDataSource([p])) for p in self._paths])

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> RawRecord:
        file = int(np.searchsorted(self._file_ends, index, side="right"))
        first = int(self._file_ends[file - 1]) if file else 0
        return RawRecord(where=f"{self._paths[file]}[record {index - first}]", payload=self._source[index])

    def __repr__(self) -> str:
        return f"ArrayRecordSource({self.path!r}, {len(self)} records)"


class TfdsSource:
    """A prepared TFDS dataset split (`tfds.data_source`; never downloads): feature dicts."""

    def __init__(self, name: str, split: str, data_dir: str = ""):
        import tensorflow_datasets as tfds  # imported here: slow, and only TFDS datasets need it

        self.name, self.split = name, split
        self._source = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> RawRecord:
        return RawRecord(where=f"tfds:{self.name}/{self.split}[record {index}]", payload=self._source[index])

    def __repr__(self) -> str:
        return f"TfdsSource({self.name!r}, split={self.split!r}, {len(self)} records)"


def open_source(dataset: ml_collections.ConfigDict) -> JsonLinesSource | ArrayRecordSource | TfdsSource:
    """The source a dataset config (config.dataset_config) names."""
    if dataset.format == "jsonl":
        return JsonLinesSource(dataset.path)
    if dataset.format == "array_record":
        return ArrayRecordSource(dataset.path)
    if dataset.format == "tfds":
        return TfdsSource(dataset.path, dataset.split, dataset.data_dir)
    raise ValueError(f"Unknown dataset format {dataset.format!r}.")
