"""Reading the files a checkpoint, manifest or suite is made of, with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def require_file(path: str | Path, kind: str = "File") -> Path:
    """`path` as a Path; FileNotFoundError "<kind> not found: <path>" when it is not a file."""
    path = Path(path)
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
