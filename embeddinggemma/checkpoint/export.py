"""Export any checkpoint this codebase reads into a format other tools load (one writer per format).

A checkpoint is an Orbax checkpoint (a run's `export/`, a soup, `Embedder.save`) or a
sentence-transformers directory (the release, an earlier export). Formats:
  sentence-transformers  safetensors, config.json, tokenizer.json, prompts, pooling, Dense,
                         Normalize and the Matryoshka dims: `SentenceTransformer(DIR)` loads it
  orbax                  this codebase's own layout (e.g. the release imported once, to load fast)
  gguf                   one file of llama.cpp's gemma-embedding architecture, its matrices in
                         `gguf_type` (q8_0 / q4_0 on this codebase's own quantisation grids)
  onnx                   onnx/model*.onnx, tokenizer and configs as transformers.js and ONNX Runtime
                         load them, the matrices in `onnx_type` (q8 / q4 on the same grids)

Everything is checked before anything is written, and the output is built in a hidden sibling and
renamed into place, so a refused or failed export leaves nothing. In a bucket (`gs://...`), Orbax
writes its format in place; the other formats are written into a local temporary directory and
uploaded, a directory committed by its marker uploaded last (atomic.py), a GGUF file as one
object. An existing output is refused unless it is empty; `overwrite` replaces only an earlier
export of the same format (a directory holding that format's marker file, a GGUF file carrying
its marker key), never somebody else's.
The command is `python -m embeddinggemma export` (cli/export.py).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embeddinggemma.atomic import (
    atomic_directory,
    atomic_write,
    check_target,
    refuse_own_input,
    refuse_replacing,
)
from embeddinggemma.checkpoint.gguf_export import (
    EXPORT_KEY,
    GGUF_TYPES,
    SCHEME_OF_TYPE,
    check_gguf_out,
    export_gguf,
)
from embeddinggemma.checkpoint.loading import LoadedCheckpoint, load_checkpoint
from embeddinggemma.checkpoint.onnx_export import EXPORT_MARKER as ONNX_MARKER
from embeddinggemma.checkpoint.onnx_export import ONNX_TYPES, export_onnx
from embeddinggemma.checkpoint.onnx_export import SCHEME_OF_TYPE as ONNX_SCHEME_OF_TYPE
from embeddinggemma.checkpoint.onnx_export import WHAT as ONNX_WHAT
from embeddinggemma.checkpoint.orbax_io import METADATA_FILE, save_orbax
from embeddinggemma.checkpoint.orbax_io import WHAT as ORBAX_WHAT
from embeddinggemma.checkpoint.sentence_transformers import (
    EXPORT_METADATA_FILE,
    export_sentence_transformers,
)
from embeddinggemma.checkpoint.sentence_transformers import WHAT as ST_WHAT
from embeddinggemma.paths import AnyPath, as_path, files_under, is_url


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One export format: its writer, the marker that makes an output its own (a file in a
    directory, a metadata key in a GGUF file: what `overwrite` may replace), and the check of an
    output, run before the checkpoint is read.

    `write(out, checkpoint, overwrite=..., **options)` writes `out` atomically and returns it;
    `options` are the keyword options only this format takes. `check_out(out, overwrite)` raises
    what the writer would raise for a taken `out`. `what` names a directory format's output (for
    atomic.py's messages); a format without it writes one file. `writes_buckets`: the writer writes
    a `gs://` out itself.
    """

    write: Callable[..., Path]
    marker: str
    check_out: Callable[[Path, bool], None]
    options: tuple[str, ...] = ()
    what: str = ""
    writes_buckets: bool = False


def _directory_check(marker: str, what: str) -> Callable[[Path, bool], None]:
    """The check of a directory format's `out` (atomic.py): absent, empty, or its own to replace."""

    def check(out: Path, overwrite: bool) -> None:
        check_target(out, marker, what)
        if not overwrite:
            refuse_replacing(out, marker, what)

    return check


def _write_sentence_transformers(out: Path, ckpt: LoadedCheckpoint, overwrite: bool) -> Path:
    return export_sentence_transformers(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts,
                                        overwrite=overwrite)


def _write_orbax(out: Path, ckpt: LoadedCheckpoint, overwrite: bool) -> Path:
    return save_orbax(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts, overwrite=overwrite)


def _check_grid(ckpt: LoadedCheckpoint, flag: str, value: str, types: tuple[str, ...],
                scheme_of_type: dict[str, str]) -> None:
    """Refuses to requantise a quantised checkpoint onto another grid: its float types and the type
    of its own grid (which keeps its codes) are allowed."""
    held = ckpt.quantization
    fits = [t for t in types if scheme_of_type.get(t, held) == held]  # float types, its own grid
    if held is not None and value not in fits:
        # Requantised onto another grid, the weights would carry both errors under one type's name.
        raise ValueError(f"The checkpoint is quantised ({held}) and {flag} {value} is "
                         f"{scheme_of_type[value]}'s grid; export it as {' or '.join(fits)}, or "
                         "export the float checkpoint it was made from.")


def _write_gguf(out: Path, ckpt: LoadedCheckpoint, overwrite: bool, gguf_type: str = "f32") -> Path:
    _check_grid(ckpt, "--gguf-type", gguf_type, GGUF_TYPES, SCHEME_OF_TYPE)
    return export_gguf(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, gguf_type, overwrite=overwrite)


def _write_onnx(out: Path, ckpt: LoadedCheckpoint, overwrite: bool, onnx_type: str = "f32") -> Path:
    _check_grid(ckpt, "--onnx-type", onnx_type, ONNX_TYPES, ONNX_SCHEME_OF_TYPE)
    return export_onnx(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts, onnx_type,
                       overwrite=overwrite)


FORMATS: dict[str, ExportFormat] = {
    "sentence-transformers": ExportFormat(_write_sentence_transformers, EXPORT_METADATA_FILE,
                                          _directory_check(EXPORT_METADATA_FILE, ST_WHAT), what=ST_WHAT),
    "orbax": ExportFormat(_write_orbax, METADATA_FILE, _directory_check(METADATA_FILE, ORBAX_WHAT),
                          what=ORBAX_WHAT, writes_buckets=True),
    "gguf": ExportFormat(_write_gguf, EXPORT_KEY, check_gguf_out, ("gguf_type",)),
    "onnx": ExportFormat(_write_onnx, ONNX_MARKER, _directory_check(ONNX_MARKER, ONNX_WHAT), ("onnx_type",),
                         what=ONNX_WHAT),
}


def _upload(local: Path, out: AnyPath, fmt: ExportFormat) -> AnyPath:
    """Uploads the finished local export `local` to the bucket `out`: a directory committed by its
    marker, uploaded last (atomic.atomic_directory); a file as one object."""
    if not fmt.what:
        return atomic_write(out, local.read_bytes())
    with atomic_directory(out, fmt.marker, fmt.what) as partial:
        files = sorted(files_under(local), key=lambda f: f == local / fmt.marker)  # the marker last
        for file in files:
            (partial / str(file.relative_to(local))).write_bytes(file.read_bytes())
    return out


def export(checkpoint: str | Path, out: str | Path, format: str = "sentence-transformers",
           overwrite: bool = False, **options: Any) -> Path:
    """Loads `checkpoint` and writes it to `out` in `format` (a key of FORMATS).

    `out` is checked before the checkpoint is read; it is never the checkpoint, inside it or
    holding it.

    Raises:
      ValueError for an unknown format, an option the format does not take, or a checkpoint the
      format cannot hold (nothing written).
      FileExistsError / NotOurDirectoryError when `out` is taken (see the module docstring).
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}.")
    unknown = sorted(set(options) - set(FORMATS[format].options))
    if unknown:
        flags = ", ".join("--" + option.replace("_", "-") for option in unknown)
        raise ValueError(f"--format {format} does not take {flags}.")
    out = as_path(out).expanduser()
    refuse_own_input(checkpoint, out)
    fmt = FORMATS[format]
    fmt.check_out(out, overwrite)
    ckpt = load_checkpoint(checkpoint)
    if not is_url(out) or fmt.writes_buckets:
        return fmt.write(out, ckpt, overwrite=overwrite, **options)
    with tempfile.TemporaryDirectory(prefix="embeddinggemma-export-") as tmp:
        local = fmt.write(Path(tmp) / out.name, ckpt, overwrite=False, **options)
        return _upload(local, out, fmt)
