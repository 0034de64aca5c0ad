"""Reading the files a checkpoint, manifest, suite or command input is made of, with errors that
name the file (and the line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embeddinggemma.paths import AnyPath, as_path


def require_file(path: str | Path, kind: str = "File") -> AnyPath:
    """`path` as a path (paths.as_path: local, or in a bucket); FileNotFoundError "<kind> not
    found: <path>" when it is not a file."""
    path = as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} not found: {path}")
    return path


def read_json(path: str | Path, kind: str = "File") -> Any:
    """The parsed content of the JSON file `path`.

    Raises:
      FileNotFoundError "<kind> not found: <path>" when it is not a file.
      ValueError naming the path (and the line and column) when it is not UTF-8 JSON.
    """
    raw = require_file(path, kind).read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: invalid UTF-8 at byte {e.start} ({e.reason}).") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}.") from None


def read_texts(path: str | Path) -> list[str]:
    """Texts from a JSON-lines file (objects with a string `text`) or a plain one-per-line file;
    lines end at LF or CRLF only."""
    path = as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Input file not found: {path}")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: invalid UTF-8 ({e.reason}).") from None
    # Only LF (or CRLF) ends a line: str.splitlines() also splits at form feeds, U+2028, NEL and
    # others, so rows would no longer match lines, and JSON strings may hold those raw.
    lines = content.replace("\r\n", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start another
    first = next((line for line in lines if line.strip()), "")
    if not first.lstrip().startswith("{"):
        return lines
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: invalid JSON ({e.msg}).") from None
        if not isinstance(record, dict) or "text" not in record:
            raise ValueError(f"{path}:{number}: expected an object with a 'text' field.")
        if not isinstance(record["text"], str):
            raise ValueError(f"{path}:{number}: field 'text' is {type(record['text']).__name__}, "
                             "not a string.")
        texts.append(record["text"])
    return texts
