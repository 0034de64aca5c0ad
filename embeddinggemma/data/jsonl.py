"""Random access to the lines of a JSON-lines file: line offsets are indexed once, on opening."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from embeddinggemma.data.records import RawRecord

# Newlines are found this many bytes at a time, so a large file needs no file-sized temporary.
_SCAN_CHUNK = 1 << 26


def _line_bounds(buffer: memoryview | bytes) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) byte offsets [L] of every line, the newline excluded, the last line included."""
    data = np.frombuffer(buffer, dtype=np.uint8)
    newlines = [np.flatnonzero(data[i:i + _SCAN_CHUNK] == ord("\n")) + i
                for i in range(0, len(data), _SCAN_CHUNK)]
    ends = np.concatenate([*newlines, np.zeros(0, np.int64)]).astype(np.int64)
    if len(data) and (not len(ends) or ends[-1] != len(data) - 1):
        ends = np.append(ends, len(data))  # a last line without a newline
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)[: len(ends)]
    return starts, ends


class JsonLinesSource:
    """A JSON-lines file as a sequence of raw records, one per non-empty line.

    Empty lines are not records; a record's `where` is `path:line` with the line numbered from 1
    as an editor shows it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        with open(self.path, "rb") as f:
            size = f.seek(0, 2)
            self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        starts, ends = _line_bounds(self._data)
        keep = ends > starts
        self._starts, self._ends = starts[keep], ends[keep]
        self._line_numbers = np.flatnonzero(keep) + 1

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: int) -> RawRecord:
        return RawRecord(where=f"{self.path}:{self._line_numbers[index]}",
                         payload=self._data[self._starts[index]:self._ends[index]])

    def __repr__(self) -> str:
        return f"JsonLinesSource({str(self.path)!r}, {len(self)} records)"
