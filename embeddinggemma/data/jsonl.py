"""Random access to the lines of a JSON-lines file: line offsets are indexed once, on opening.

Records are read with `os.pread` rather than through a memory map: a file truncated or rewritten
while a pipeline still reads it (another run rebuilding a corpus, say) then yields short or
garbled lines, which fail as malformed records naming file and line, instead of SIGBUS killing
the process.

A file in a bucket (`gs://...`, see paths.py) is downloaded once into memory on opening, and its
records are sliced from there; `where` still names the URL and the line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embeddinggemma.data.records import RawRecord
from embeddinggemma.paths import as_path, is_url

# Newlines are found this many bytes at a time, so a large file needs no file-sized temporary.
_SCAN_CHUNK = 1 << 26


def _line_bounds(read: Callable[[int, int], bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) byte offsets [L] of every line, its LF or CRLF excluded, the last line included;
    `read(size, offset)` returns the file's bytes there (fewer at its end, none past it).

    Only LF ends a line: U+2028 or NEL inside a JSON string is a character, as JSON has it.
    """
    newlines, carriage_returns, size, last = [], [], 0, 0
    while chunk := read(_SCAN_CHUNK, size):
        data = np.frombuffer(chunk, dtype=np.uint8)
        at = np.flatnonzero(data == ord("\n"))
        before = np.where(at > 0, data[np.maximum(at - 1, 0)], last)  # the byte before each LF
        newlines.append(at + size)
        carriage_returns.append(before == ord("\r"))
        size, last = size + len(chunk), data[-1]
    ends = np.concatenate([*newlines, np.zeros(0, np.int64)]).astype(np.int64)
    crlf = np.concatenate([*carriage_returns, np.zeros(0, bool)])
    if size and (not len(ends) or ends[-1] != size - 1):
        ends = np.append(ends, size)  # a last line without a newline
        crlf = np.append(crlf, False)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)[: len(ends)]
    return starts, ends - crlf


class JsonLinesSource:
    """A JSON-lines file as a sequence of raw records, one per non-empty line.

    Empty lines are not records; a record's `where` is `path:line` with the line numbered from 1
    as an editor shows it.
    """

    def __init__(self, path: str | Path):
        self.path = as_path(path).expanduser()
        self._fd, self._data = None, None
        if is_url(self.path):
            self._data = self.path.read_bytes()
        else:
            self._fd = os.open(self.path, os.O_RDONLY)
        starts, ends = _line_bounds(self._read)
        keep = ends > starts
        self._starts, self._ends = starts[keep], ends[keep]
        self._line_numbers = np.flatnonzero(keep) + 1

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: int) -> RawRecord:
        return RawRecord(where=f"{self.path}:{self._line_numbers[index]}",
                         payload=self._read(int(self._ends[index] - self._starts[index]),
                                            int(self._starts[index])))

    def _read(self, size: int, offset: int) -> bytes:
        """`size` bytes of the file from `offset` (fewer at its end)."""
        if self._data is not None:
            return self._data[offset:offset + size]
        return os.pread(self._fd, size, offset)

    def __reduce__(self):  # worker processes reopen the file
        return type(self), (self.path,)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __repr__(self) -> str:
        return f"JsonLinesSource({str(self.path)!r}, {len(self)} records)"
