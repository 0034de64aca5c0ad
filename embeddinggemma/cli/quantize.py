"""Command line: a quantised checkpoint (integer codes plus scales) of any checkpoint.

    python -m embeddinggemma quantize --checkpoint DIR --scheme int8-block|int4-block|mixed \\
        --out DIR [--force]

Reads an Orbax checkpoint or a sentence-transformers directory and writes an Orbax checkpoint whose
weight matrices are stored as the scheme's codes and scales (embeddinggemma/quantization.py; int4
packed two per byte) with the scheme in its embeddinggemma.json. `Embedder.load` and the evaluate
command read it, dequantising on load. OUT must be absent or empty (or, with --force, an Orbax
checkpoint, which is replaced); nothing else is touched, and never the checkpoint itself, a directory
inside it or one holding it, even with --force. An already-quantised checkpoint is refused (its
scheme named): quantise the float checkpoint it came from. Exit status 2 for bad arguments and inputs.
"""

from __future__ import annotations

import argparse
import sys
import time

from embeddinggemma.paths import as_path, file_stat, files_under


def _parser() -> argparse.ArgumentParser:
    from embeddinggemma.quantization import SCHEMES

    p = argparse.ArgumentParser(prog="python -m embeddinggemma quantize",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=as_path, required=True,
                   help="an Orbax or sentence-transformers directory")
    p.add_argument("--scheme", choices=SCHEMES, required=True)
    p.add_argument("--out", type=as_path, required=True, help="the quantised checkpoint's directory")
    p.add_argument("--force", action="store_true", help="replace an Orbax checkpoint at --out")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from embeddinggemma.checkpoint.quantized import quantize_checkpoint
    from embeddinggemma.errors import NotOurDirectoryError

    started = time.perf_counter()
    try:
        out = quantize_checkpoint(args.checkpoint, args.out, args.scheme, overwrite=args.force)
    except (OSError, ValueError) as e:  # NotOurDirectoryError and FileExistsError are OSErrors
        kind = "refused" if isinstance(e, (NotOurDirectoryError, FileExistsError)) else "error"
        print(f"{kind}: {e}", file=sys.stderr)
        return 2
    size = sum(file_stat(f)[0] for f in files_under(out / "params"))
    print(f"{out}: {args.scheme}, parameters {size / 2 ** 20:.1f} MiB on disk, "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
