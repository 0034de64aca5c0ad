"""Fixtures for the data tests: the tiny tokenizer, small JSON-lines datasets written on demand and
small wheels built in the test (the corpus builder's sources, without the network)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest

from embeddinggemma.data.config import data_config, dataset_config
from embeddinggemma.data.corpus.wheels import Wheel
from embeddinggemma.tokenizer import Tokenizer

LONG_DESCRIPTION = "This package does a useful thing, and the description says so at length.\n" * 4


def make_wheel(directory: Path, name: str, version: str = "1.0", *, summary: str = "",
               description: str = LONG_DESCRIPTION, files: Mapping[str, str] | None = None) -> Wheel:
    """A `py3-none-any` wheel in `directory` holding `files` (member -> text) and its METADATA."""
    path = directory / f"{name}-{version}-py3-none-any.whl"
    metadata = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                f"Summary: {summary or f'The {name} package for the tests'}\n\n{description}")
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in sorted((files or {}).items()):
            archive.writestr(member, text)
        archive.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
    return Wheel(path, hashlib.sha256(path.read_bytes()).hexdigest())


@pytest.fixture(scope="session")
def tokenizer(tiny_tokenizer_path) -> Tokenizer:
    return Tokenizer(tiny_tokenizer_path)


def pair(name: str, i: int, **extra) -> dict:
    """A well-formed record of dataset `name` whose texts name the dataset and the record."""
    return {"task": "query", "query": f"what is {name} number {i}",
            "positive": f"{name} number {i} is a record", "negative": f"{name} other {i}",
            "id": f"{name}-{i}", **extra}


@pytest.fixture
def write_jsonl(tmp_path) -> Callable[[str, Iterable[Mapping | str]], Path]:
    """Writes records (dicts as JSON, strings as raw lines) to tmp_path/<name>.jsonl."""

    def write(name: str, records: Iterable[Mapping | str]) -> Path:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
        return path

    return write


@pytest.fixture
def mixture(write_jsonl) -> Callable:
    """A data config of datasets named by `weights`, each with `size` well-formed records."""

    def make(weights: Mapping[str, float], size: int = 40, **fields):
        c = data_config()
        with c.unlocked():
            for name, weight in weights.items():
                path = write_jsonl(name, [pair(name, i) for i in range(size)])
                c.datasets[name] = dataset_config(str(path), weight=weight)
            for key, value in fields.items():
                c[key] = value
        return c

    return make
