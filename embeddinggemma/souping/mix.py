"""Averaging ingredients' parameters one array at a time, and greedy soup (Wortsman et al., 2022).

Memory: the soup being built (one model) plus one parameter of one ingredient at a time, whatever
the number of ingredients; greedy soup adds the candidate soup and the model it scores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from embeddinggemma.souping.ingredients import Ingredient, ParamPath


class IncompatibleIngredientsError(ValueError):
    """Ingredients that are not the same model; the message names the first difference."""


def check_compatible(ingredients: Sequence[Ingredient]) -> None:
    """Checks that every ingredient has the first one's parameter tree, shapes, architecture,
    tokenizer (its SentencePiece file's hash) and prompts. Run-time settings (dtypes, remat) are
    not architecture and may differ.

    Raises:
      IncompatibleIngredientsError naming the first differing parameter (with both shapes), field,
      tokenizer or prompt.
    """
    if not ingredients:
        raise ValueError("A soup needs at least one ingredient.")
    first = ingredients[0]
    tokenizer = first.tokenizer_sha256()
    for other in ingredients[1:]:
        pair = f"{first.name} and {other.name}"
        for path in sorted(first.shapes.keys() | other.shapes.keys()):
            a, b = first.shapes.get(path), other.shapes.get(path)
            if a != b:
                raise IncompatibleIngredientsError(
                    f"{pair} differ at parameter {'/'.join(path)}: shape "
                    f"{_shape_text(a)} vs {_shape_text(b)}.")
        if other.config != first.config:
            a, b = first.config.to_dict(), other.config.to_dict()
            field = _first_difference(a, b)
            raise IncompatibleIngredientsError(f"{pair} differ in architecture: {field}.")
        if other.tokenizer_sha256() != tokenizer:
            raise IncompatibleIngredientsError(
                f"{pair} have different tokenizers: {first.tokenizer_path} and {other.tokenizer_path} "
                "(sha256 differs).")
        if other.prompts != first.prompts:
            name = next(k for k in sorted(first.prompts.keys() | other.prompts.keys())
                        if first.prompts.get(k) != other.prompts.get(k))
            raise IncompatibleIngredientsError(
                f"{pair} have different prompts: {name!r} is {first.prompts.get(name)!r} vs "
                f"{other.prompts.get(name)!r}.")


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "(absent)" if shape is None else str(list(shape))


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for key in sorted(a.keys() | b.keys()):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            if x != y:
                return _first_difference(x, y, f"{prefix}{key}.")
        elif x != y:
            return f"{prefix}{key} = {x!r} vs {y!r}"
    return "(none)"


def normalise_weights(weights: Sequence[float] | None, count: int) -> tuple[list[float], bool]:
    """(weights summing to 1, whether they had to be rescaled); None = uniform.

    Raises:
      ValueError when the count differs from the ingredients' or a weight is not positive and finite.
    """
    if weights is None:
        return [1.0 / count] * count, False
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} ingredients.")
    bad = [w for w in weights if not (np.isfinite(w) and w > 0)]
    if bad:
        raise ValueError(f"Soup weights must be positive and finite; got {bad}.")
    total = float(sum(weights))
    return [w / total for w in weights], not np.isclose(total, 1.0, rtol=0, atol=1e-9)


def weighted_sum(ingredients: Sequence[Ingredient], weights: Sequence[float],
                 progress: bool = True) -> dict[ParamPath, np.ndarray]:
    """sum_i weights[i] * params_i, parameter by parameter, accumulated in float32 [shape of each].

    Each array of each ingredient is read, added and dropped before the next is read.
    """
    out = {}
    paths = sorted(ingredients[0].shapes)
    for path in tqdm(paths, desc="soup", unit="param", disable=not progress):
        total = np.zeros(ingredients[0].shapes[path], np.float32)
        for ingredient, weight in zip(ingredients, weights, strict=True):
            value = np.asarray(ingredient.read(path), np.float32)
            if not value.flags.writeable:  # a read-only buffer (safetensors); a fresh array is scaled as is
                value = value.copy()
            value *= np.float32(weight)  # in place: no second array as large as this one
            total += value
            del value
        out[path] = total
    return out


def as_tree(flat: dict[ParamPath, np.ndarray]) -> dict:
    """{("a", "b"): x} -> {"a": {"b": x}}."""
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree


@dataclasses.dataclass
class GreedyStep:
    """One ingredient's turn: the soup's score with it added, and whether it stayed."""

    ingredient: str
    score_with: float
    best_before: float
    accepted: bool


def greedy_soup(ingredients: Sequence[Ingredient], score: Callable[[dict], float],
                progress: bool = True) -> tuple[list[Ingredient], dict[ParamPath, np.ndarray],
                                                dict[str, float], list[GreedyStep]]:
    """Greedy soup: sort the ingredients by their own score, start from the best, and add each next
    one only if the uniform average with it scores strictly higher than without.

    Args:
      score: a parameter tree -> its held-out score (higher is better).

    Returns:
      (the members, their uniform average, every ingredient's own score, the decisions in order).
    """
    own = {}
    for ingredient in ingredients:
        own[ingredient.name] = score(as_tree(weighted_sum([ingredient], [1.0], progress)))
    ranked = sorted(ingredients, key=lambda i: -own[i.name])
    members = [ranked[0]]
    total = weighted_sum(members, [1.0], progress)  # the members' sum
    best = own[ranked[0].name]
    steps = []
    for candidate in ranked[1:]:
        with_candidate = {p: total[p] + np.asarray(candidate.read(p), np.float32) for p in total}
        count = len(members) + 1
        candidate_score = score(as_tree({p: v / count for p, v in with_candidate.items()}))
        accepted = candidate_score > best
        steps.append(GreedyStep(candidate.name, candidate_score, best, accepted))
        if accepted:
            members.append(candidate)
            total, best = with_candidate, candidate_score
        del with_candidate
    average = {p: v / len(members) for p, v in total.items()}
    return members, average, own, steps
