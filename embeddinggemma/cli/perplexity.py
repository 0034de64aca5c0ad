"""Command line: the perplexity of a text under a Gemma 3 decoder.

    python -m embeddinggemma perplexity --checkpoint PATH --text FILE [--max-tokens N] [--keep-layers L]

Prints one JSON line `{"tokens", "predicted", "nll", "perplexity"}` (evaluation/perplexity.py says
how the text is scored). PATH is anything `load_decoder` reads (a GGUF file, a Hugging Face
directory, a decoder checkpoint written here).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from embeddinggemma.checkpoint.decoders import keep_first_layers, load_decoder
from embeddinggemma.evaluation.perplexity import perplexity


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; exit 2 for unreadable inputs, with the problem on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="GGUF file, Hugging Face directory or "
                        "decoder checkpoint")
    parser.add_argument("--text", required=True, help="UTF-8 text file to score")
    parser.add_argument("--max-tokens", type=int, default=None, help="score the first N tokens "
                        "(BOS included)")
    parser.add_argument("--keep-layers", type=int, default=0, help="score the decoder cut to its "
                        "first N layers (what model.keep_layers trains); 0 = all")
    args = parser.parse_args(argv)
    if args.max_tokens is not None and args.max_tokens < 2:
        parser.error(f"--max-tokens={args.max_tokens} must be >= 2 (BOS and one token).")
    try:
        text = Path(args.text).read_text(encoding="utf-8")
        decoder = load_decoder(args.checkpoint)
        if args.keep_layers:
            decoder = keep_first_layers(decoder, args.keep_layers)
        result = perplexity(decoder, text, args.max_tokens)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
