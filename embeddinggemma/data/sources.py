"""Random-access record sources: JSON lines, ArrayRecord (JSON-encoded records) and TFDS.

Every source is a sequence of RawRecord (`len`, `[index]`): grain shuffles, shards and batches
it by index, so a host reads only the records of its own part of each batch.
"""

from __future__ import annotations

import os
import tempfile

import grain
import ml_collections
import numpy as np

from embeddinggemma.data.jsonl import JsonLinesSource
from embeddinggemma.data.records import RawRecord
from embeddinggemma.paths import glob_files, is_url


class ArrayRecordSource:
    """ArrayRecord files whose records are JSON-encoded bytes; `path` may be a glob (files in
    sorted order). A record's `where` is `file[record i]`, i counted within its file.

    ArrayRecord's reader takes local files only: files in a bucket (`gs://...`) are downloaded
    once, on opening, into a temporary directory that lives as long as this source.
    """

    def __init__(self, path: str):
        self.path = os.path.expanduser(path) if not is_url(path) else str(path)
        files = glob_files(self.path)
        if not files:
            raise FileNotFoundError(f"No ArrayRecord file matches {self.path}")
        self._paths = local = [str(p) for p in files]
        if is_url(self.path):
            self._downloads = tempfile.TemporaryDirectory(prefix="embeddinggemma-array-record-")
            local = [os.path.join(self._downloads.name, f"{i}.array_record") for i in range(len(files))]
            for url, file in zip(files, local, strict=True):
                with open(file, "wb") as out:
                    out.write(url.read_bytes())
        self._source = grain.sources.ArrayRecordDataSource(local)
        self._file_ends = np.cumsum([len(grain.sources.ArrayRecordDataSource([p])) for p in local])

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> RawRecord:
        file = int(np.searchsorted(self._file_ends, index, side="right"))
        first = int(self._file_ends[file - 1]) if file else 0
        return RawRecord(where=f"{self._paths[file]}[record {index - first}]", payload=self._source[index])

    def __reduce__(self):  # worker processes open (and download) the files again
        return type(self), (self.path,)

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
