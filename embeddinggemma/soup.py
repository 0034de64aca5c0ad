"""Command line: average checkpoints' parameters into one model (a "model soup").

    python -m embeddinggemma.soup --checkpoints A B C [--weights 0.5,0.3,0.2] --out DIR
    python -m embeddinggemma.soup --checkpoints A B C --greedy --score suite [--tasks T1,T2] --out DIR
    python -m embeddinggemma.soup --checkpoints RUN1 RUN2@400 --greedy --score heldout --out DIR

An ingredient is a run directory (its latest checkpoint, or RUN@STEP), a run's `export/`, an Orbax
checkpoint or a sentence-transformers directory. They must be the same model: parameter tree and
shapes, architecture, tokenizer and prompts (run-time dtypes may differ); the first difference is
named. Parameters are read one array at a time, so memory stays near two models whatever the
number of ingredients.

Without --weights the average is uniform; weights must be positive and are normalised to sum to 1.
--greedy is greedy soup (Wortsman et al., 2022): ingredients sorted by their own score, the best
first, each next one kept only if the uniform average with it scores strictly higher. --score
picks the score: the offline evaluation suite's mean main score (--tasks for a subset) or the
held-out retrieval nDCG@10 of the run the first run ingredient belongs to.

Writes an Orbax checkpoint (Embedder.load, evaluate and export read it) with `soup.json`: the
ingredients with their content hashes, weights and scores, and the greedy decisions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SOUP_MANIFEST = "soup.json"
MANIFEST_VERSION = 1


def _weights(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _parser() -> argparse.ArgumentParser:
    from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR

    p = argparse.ArgumentParser(prog="python -m embeddinggemma.soup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", nargs="+", required=True,
                   help="RUN, RUN@STEP, a run's export/, an Orbax or a sentence-transformers directory")
    p.add_argument("--weights", type=_weights, default=None, help="one positive weight per checkpoint")
    p.add_argument("--greedy", action="store_true", help="greedy soup, ranked by --score")
    p.add_argument("--score", choices=("suite", "heldout"), default="suite", help="what --greedy ranks by")
    p.add_argument("--tasks", type=_names, default=None, help="suite tasks for --score suite (default: all)")
    p.add_argument("--suite", type=Path, default=DEFAULT_SUITE_DIR, help="the evaluation suite directory")
    p.add_argument("--out", type=Path, required=True, help="the soup's directory (absent or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier Orbax checkpoint at --out")
    return p


def _score_fn(args: argparse.Namespace, ingredients):
    from embeddinggemma.evaluation.tasks import ensure_suite, load_suite
    from embeddinggemma.souping.scores import heldout_score, suite_score

    first = ingredients[0]
    if args.score == "suite":
        tasks = load_suite(ensure_suite(args.suite), args.tasks)
        return suite_score(tasks, first.config, first.tokenizer_path, first.prompts), \
            {"kind": "suite", "tasks": [t.name for t in tasks], "dim": first.config.output_dim}
    runs = [i.run_dir for i in ingredients if i.run_dir is not None]
    if not runs:
        raise ValueError("--score heldout needs a run among the ingredients (a run directory or its "
                         "export/): its config names the held-out data.")
    return heldout_score(runs[0], first.config, first.tokenizer_path), \
        {"kind": "heldout", "run": str(runs[0]), "metric": "eval/ndcg_at_10"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from embeddinggemma.atomic import check_target, refuse_replacing
    from embeddinggemma.checkpoint.orbax_io import METADATA_FILE, WHAT, save_orbax
    from embeddinggemma.souping.ingredients import open_ingredient
    from embeddinggemma.souping.mix import (
        as_tree,
        check_compatible,
        greedy_soup,
        normalise_weights,
        weighted_sum,
    )

    if args.greedy and args.weights is not None:
        print("error: --greedy averages its members uniformly; drop --weights.", file=sys.stderr)
        return 2
    if len(set(args.checkpoints)) != len(args.checkpoints):
        print(f"error: an ingredient is named twice in {args.checkpoints}.", file=sys.stderr)
        return 2
    try:
        check_target(args.out, METADATA_FILE, WHAT)  # before minutes of work, not after
        if not args.overwrite:
            refuse_replacing(args.out, METADATA_FILE, WHAT)
        ingredients = [open_ingredient(name) for name in args.checkpoints]
        check_compatible(ingredients)
        weights, rescaled = normalise_weights(args.weights, len(ingredients))
        if rescaled:
            print(f"note: the weights {args.weights} were normalised to sum to 1: "
                  f"{[round(w, 6) for w in weights]}", file=sys.stderr)
        manifest: dict = {"format_version": MANIFEST_VERSION}
        if args.greedy:
            score, manifest["score"] = _score_fn(args, ingredients)
            members, flat, own, steps = greedy_soup(ingredients, score)
            member_names = {m.name for m in members}
            weights = [1.0 / len(members) if i.name in member_names else 0.0 for i in ingredients]
            manifest["method"] = "greedy"
            manifest["greedy_steps"] = [vars(s) for s in steps]
        else:
            flat, own = weighted_sum(ingredients, weights), {}
            manifest["method"] = "uniform" if args.weights is None else "weighted"
            manifest["weights_normalised"] = rescaled
        manifest["ingredients"] = [
            {"name": i.name, "path": str(i.path.absolute()), "step": i.step, "weight": w,
             "content_sha256": i.content_sha256(), "score": own.get(i.name)}
            for i, w in zip(ingredients, weights, strict=True)]
        first = ingredients[0]
        manifest["tokenizer_sha256"] = first.tokenizer_sha256()
        out = save_orbax(args.out, first.config, as_tree(flat), first.tokenizer_path, first.prompts,
                         overwrite=args.overwrite,
                         extra_files={SOUP_MANIFEST: json.dumps(manifest, indent=2) + "\n"})
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for entry in manifest["ingredients"]:
        score = "" if entry["score"] is None else f"  score {entry['score']:.4f}"
        print(f"{entry['weight']:.4f}  {entry['name']}{score}")
    for step in manifest.get("greedy_steps", []):
        verdict = "kept" if step["accepted"] else "dropped"
        print(f"greedy: + {step['ingredient']}: {step['score_with']:.4f} vs {step['best_before']:.4f} "
              f"-> {verdict}")
    print(f"wrote the soup to {out} ({SOUP_MANIFEST} lists its ingredients)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
