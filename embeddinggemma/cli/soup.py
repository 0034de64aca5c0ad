"""Command line: average checkpoints' parameters into one model (a "model soup").

    python -m embeddinggemma soup --checkpoints A B C [--weights 0.5,0.3,0.2] --out DIR
    python -m embeddinggemma soup --checkpoints A B C --greedy --score suite [--tasks T1,T2] --out DIR
    python -m embeddinggemma soup --checkpoints RUN1 RUN2@400 --greedy --score heldout --out DIR

An ingredient is a run directory (its latest checkpoint, or RUN@STEP), a run's `export/`, an Orbax
checkpoint or a sentence-transformers directory; they must be the same model (souping/soup.py).
Without --weights the average is uniform; weights are normalised to sum to 1. --greedy is greedy
soup ranked by --score: the offline evaluation suite's mean main score (--tasks for a subset) or the
held-out retrieval nDCG@10 of the run the first run ingredient belongs to.

Writes an Orbax checkpoint (Embedder.load, evaluate and export read it) with `soup.json`: the
ingredients with their content hashes, weights and scores, and the greedy decisions. Exit status 2
for bad arguments and inputs.
"""

from __future__ import annotations

import argparse
import sys

from embeddinggemma.paths import as_path


def _weights(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _parser() -> argparse.ArgumentParser:
    from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR

    p = argparse.ArgumentParser(prog="python -m embeddinggemma soup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", nargs="+", required=True,
                   help="RUN, RUN@STEP, a run's export/, an Orbax or a sentence-transformers directory")
    p.add_argument("--weights", type=_weights, default=None, help="one positive weight per checkpoint")
    p.add_argument("--greedy", action="store_true", help="greedy soup, ranked by --score")
    p.add_argument("--score", choices=("suite", "heldout"), default="suite", help="what --greedy ranks by")
    p.add_argument("--tasks", type=_names, default=None, help="suite tasks for --score suite (default: all)")
    p.add_argument("--suite", type=as_path, default=DEFAULT_SUITE_DIR, help="the evaluation suite directory")
    p.add_argument("--out", type=as_path, required=True, help="the soup's directory (absent or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier Orbax checkpoint at --out")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from embeddinggemma.souping.soup import SOUP_MANIFEST, make_soup

    try:
        soup = make_soup(args.checkpoints, args.out, args.weights, args.greedy, args.score, args.tasks,
                         args.suite, args.overwrite)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    manifest = soup.manifest
    if manifest.get("weights_normalised"):
        print(f"note: the weights {args.weights} were normalised to sum to 1: "
              f"{[round(i['weight'], 6) for i in manifest['ingredients']]}", file=sys.stderr)
    for entry in manifest["ingredients"]:
        score = "" if entry["score"] is None else f"  score {entry['score']:.4f}"
        print(f"{entry['weight']:.4f}  {entry['name']}{score}")
    for step in manifest.get("greedy_steps", []):
        verdict = "kept" if step["accepted"] else "dropped"
        print(f"greedy: + {step['ingredient']}: {step['score_with']:.4f} vs {step['best_before']:.4f} "
              f"-> {verdict}")
    print(f"wrote the soup to {soup.out} ({SOUP_MANIFEST} lists its ingredients)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
