"""Debian's package index (an apt `Packages` file) -> package name, section and description."""

from __future__ import annotations

import dataclasses
import gzip
import lzma
import subprocess
from collections.abc import Iterator
from pathlib import Path

DEFAULT_LISTS_DIR = Path("/var/lib/apt/lists")


@dataclasses.dataclass(frozen=True)
class Package:
    name: str
    section: str  # without an archive area prefix ("contrib/net" -> "net")
    summary: str  # the Description's first line
    description: str  # the first paragraph of the long description


def index_files(lists_dir: str | Path = DEFAULT_LISTS_DIR) -> list[Path]:
    """The `*_main_binary-*_Packages*` files of apt's lists, sorted."""
    return sorted(Path(lists_dir).glob("*_main_binary-*_Packages*"))


def _read(path: Path) -> str:
    if path.suffix == ".lz4":  # no lz4 module in the standard library; the lz4 tool ships with apt
        data = subprocess.run(["lz4", "-dc", str(path)], check=True, capture_output=True).stdout
    elif path.suffix == ".gz":
        data = gzip.decompress(path.read_bytes())
    elif path.suffix == ".xz":
        data = lzma.decompress(path.read_bytes())
    else:
        data = path.read_bytes()
    return data.decode("utf-8", errors="replace")


def read_packages(path: str | Path) -> Iterator[Package]:
    """Every stanza with a Package, Section and Description field, in file order."""
    for stanza in _read(Path(path)).split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if not {"Package", "Section", "Description"} <= fields.keys():
            continue
        summary, _, long = fields["Description"].partition("\n")
        paragraph = []
        for line in long.splitlines():
            line = line.strip()
            if line == ".":
                break
            paragraph.append(line)
        yield Package(
            name=fields["Package"],
            section=fields["Section"].split("/")[-1],
            summary=summary.strip(),
            description=" ".join(paragraph),
        )
