"""A model soup: the weighted, uniform or greedy average of compatible checkpoints, written as an
Orbax checkpoint with `soup.json` (its ingredients, their content hashes, weights and scores, and
the greedy decisions).

An ingredient is a run directory (its latest checkpoint, or RUN@STEP), a run's `export/`, an Orbax
checkpoint or a sentence-transformers directory (souping/ingredients.py). They must be the same
model: parameter tree and shapes, architecture, tokenizer and prompts (run-time dtypes may differ);
the first difference is named. Parameters are read one array at a time, so memory stays near two
models whatever the number of ingredients.

Without weights the average is uniform; weights must be positive and are normalised to sum to 1.
Greedy soup (Wortsman et al., 2022): ingredients sorted by their own score, the best first, each
next one kept only if the uniform average with it scores strictly higher. The score is the offline
evaluation suite's mean main score (a subset of its tasks if named) or the held-out retrieval
nDCG@10 of the run the first run ingredient belongs to.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from embeddinggemma.atomic import check_target, refuse_replacing
from embeddinggemma.checkpoint.orbax_io import METADATA_FILE, WHAT, save_orbax
from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR
from embeddinggemma.paths import absolute, as_path
from embeddinggemma.souping.ingredients import open_ingredient
from embeddinggemma.souping.mix import as_tree, check_compatible, greedy_soup, normalise_weights, weighted_sum

SOUP_MANIFEST = "soup.json"
MANIFEST_VERSION = 1
SCORES = ("suite", "heldout")


@dataclasses.dataclass(frozen=True)
class Soup:
    """What `make_soup` wrote: the checkpoint's directory and the manifest saved beside it."""

    out: Path
    manifest: dict


def _score_fn(score: str, ingredients, tasks: Sequence[str] | None, suite: Path):
    from embeddinggemma.evaluation.tasks import ensure_suite, load_suite
    from embeddinggemma.souping.scores import heldout_score, suite_score

    first = ingredients[0]
    if score == "suite":
        loaded = load_suite(ensure_suite(suite), tasks)
        return suite_score(loaded, first.config, first.tokenizer_path, first.prompts), \
            {"kind": "suite", "tasks": [t.name for t in loaded], "dim": first.config.output_dim}
    runs = [i.run_dir for i in ingredients if i.run_dir is not None]
    if not runs:
        raise ValueError("--score heldout needs a run among the ingredients (a run directory or its "
                         "export/): its config names the held-out data.")
    return heldout_score(runs[0], first.config, first.tokenizer_path), \
        {"kind": "heldout", "run": str(runs[0]), "metric": "eval/ndcg_at_10"}


def make_soup(checkpoints: Sequence[str], out: str | Path, weights: Sequence[float] | None = None,
              greedy: bool = False, score: str = "suite", tasks: Sequence[str] | None = None,
              suite: str | Path = DEFAULT_SUITE_DIR, overwrite: bool = False) -> Soup:
    """Averages `checkpoints` into an Orbax checkpoint at `out` (see the module docstring).

    Args:
      checkpoints: ingredient names (RUN, RUN@STEP, an export, an Orbax or sentence-transformers dir).
      weights: one positive weight per ingredient (normalised); None = uniform. Not with `greedy`.
      greedy: greedy soup ranked by `score` ("suite": the suite's `tasks`, all if None; "heldout").
      overwrite: replace an earlier Orbax checkpoint at `out` (never anything else).

    Raises:
      ValueError for contradictory arguments or incompatible ingredients; OSError (including
      NotOurDirectoryError and FileExistsError) when `out` is taken or an input cannot be read.
      Nothing is written before the target and the ingredients are checked.
    """
    if greedy and weights is not None:
        raise ValueError("--greedy averages its members uniformly; drop --weights.")
    if score not in SCORES:
        raise ValueError(f"score={score!r} is not one of {SCORES}.")
    if len(set(checkpoints)) != len(checkpoints):
        raise ValueError(f"an ingredient is named twice in {list(checkpoints)}.")
    out = as_path(out).expanduser()
    check_target(out, METADATA_FILE, WHAT)  # before minutes of work, not after
    if not overwrite:
        refuse_replacing(out, METADATA_FILE, WHAT)
    ingredients = [open_ingredient(name) for name in checkpoints]
    check_compatible(ingredients)
    normalised, rescaled = normalise_weights(weights, len(ingredients))
    manifest: dict = {"format_version": MANIFEST_VERSION}
    if greedy:
        score_of, manifest["score"] = _score_fn(score, ingredients, tasks, as_path(suite))
        members, flat, own, steps = greedy_soup(ingredients, score_of)
        member_names = {m.name for m in members}
        normalised = [1.0 / len(members) if i.name in member_names else 0.0 for i in ingredients]
        manifest["method"] = "greedy"
        manifest["greedy_steps"] = [vars(s) for s in steps]
    else:
        flat, own = weighted_sum(ingredients, normalised), {}
        manifest["method"] = "uniform" if weights is None else "weighted"
        manifest["weights_normalised"] = rescaled
    manifest["ingredients"] = [
        {"name": i.name, "path": str(absolute(i.path)), "step": i.step, "weight": w,
         "content_sha256": i.content_sha256(), "score": own.get(i.name)}
        for i, w in zip(ingredients, normalised, strict=True)]
    first = ingredients[0]
    manifest["tokenizer_sha256"] = first.tokenizer_sha256()
    written = save_orbax(out, first.config, as_tree(flat), first.tokenizer_path, first.prompts,
                         overwrite=overwrite,
                         extra_files={SOUP_MANIFEST: json.dumps(manifest, indent=2) + "\n"})
    return Soup(written, manifest)
