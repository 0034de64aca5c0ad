"""Random access to the lines of a JSON-lines file: line offsets are indexed once, on opening.

Records are read with `os.pread` rather than through a memory map: a file truncated or rewritten
while a pipeline still reads it (another run rebuilding a corpus, say) then yields short or
garbled lines, which fail as malformed records naming file and line, instead of SIGBUS killing
the process.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embeddinggemma.data.records import RawRecord

# Newlines are found this many bytes at a time, so a large file needs no file-sized temporary.
_SCAN_CHUNK = 1 << 26


def _line_bounds(fd: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) byte offsets [L] of every line, its LF or CRLF excluded, the last line included.

    Only LF ends a line: U+2028 or NEL inside a JSON string is a character, as JSON has it.
    """
    newlines, carriage_returns, size, last = [], [], 0, 0
    while chunk := os.pread(fd, _SCAN_CHUNK, size):
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
        self.path = Path(path).expanduser()
        self._fd = os.open(self.path, os.O_RDONLY)
        starts, ends = _line_bounds(self._fd)
        keep = ends > starts
        self._starts, self._ends = starts[keep], ends[keep]
        self._line_numbers = np.flatnonzero(keep) + 1

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: int) -> RawRecord:
        return RawRecord(where=f"{self.path}:{self._line_numbers[index]}",
                         payload=os.pread(self._fd, int(self._ends[index] - self._starts[index]),
                                          int(self._starts[index])))

    def __reduce__(self):  # worker processes reopen the file
        return type(self), (self.path,)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __repr__(self) -> str:
        return f"JsonLinesSource({str(self.path)!r}, {len(self)} records)"
