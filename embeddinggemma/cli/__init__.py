"""The commands: argument parsing and exit statuses over library calls, one module each.

    python -m embeddinggemma COMMAND [ARGS ...]      (or the installed `embeddinggemma` script)
    python -m embeddinggemma.cli.COMMAND [ARGS ...]  (the same)

The library never imports from here; experiments and tests call the library. Every command's
`main(argv) -> int` returns its exit status: 0 done, 2 a config or input the user can fix (a
message naming it, no traceback), 3 a NaN loss (training); anything else is a bug and keeps its
traceback (1).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> what it does (shown by `python -m embeddinggemma --help`; kept here so that listing the
# commands imports none of them).
COMMANDS = {
    "train": "train an embedding model from a config (resumes from the work directory)",
    "adapt": "UL2 adaptation of a Gemma 3 decoder into an encoder-decoder",
    "mixture_search": "Bayesian search of a config's mixture weights",
    "soup": "average checkpoints into one model",
    "quantize": "a checkpoint stored as integer codes and scales",
    "export": "a checkpoint to sentence-transformers, Orbax, GGUF or ONNX",
    "evaluate": "the offline evaluation suite for checkpoints, dims and quantisation",
    "embed": "embed a file of texts into a .npy matrix",
    "mine": "mine hard negatives for a JSON-lines file of (query, positive) pairs",
    "perplexity": "the perplexity of a text under a Gemma 3 decoder",
    "show_config": "resolve, check and print a config",
    "plan": "compile a config for a Cloud TPU slice here: memory per chip, collectives, FLOPs",
    "fetch": "fetch the released checkpoint or the Gemma 3 270M GGUF into the cache",
    "demo": "a small end-to-end training run on real text (make demo)",
    "model_card": "the model card's example with the released checkpoint",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()]
    return ("usage: python -m embeddinggemma COMMAND [ARGS ...]   (COMMAND --help for its options)\n\n"
            "commands:\n" + "\n".join(lines))


def run(name: str, argv: Sequence[str]) -> int:
    """Runs command `name` with `argv` (the arguments after its name); its exit status."""
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"embeddinggemma.cli.{name}")
    return module.main(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m embeddinggemma COMMAND ...`: dispatches to the command's module."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    return run(argv[0], argv[1:])


def console_main() -> int:
    """The installed `embeddinggemma` script: `main` after the huge-pages restart that
    `python -m embeddinggemma` gets from the package's import (hugepages.py)."""
    from embeddinggemma import hugepages

    hugepages.reexec_with_hugepages()
    return main()
