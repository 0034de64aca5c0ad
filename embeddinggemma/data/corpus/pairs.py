"""Training examples as the builder handles them, and their deterministic, size-capped sampling."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np

from embeddinggemma.data.records import Example

Group = TypeVar("Group")


@dataclasses.dataclass(frozen=True)
class CorpusExample(Example):
    """A training example (records.Example) as the builder handles it, with its mining information:
    hard negatives are mined among examples of the same `mining_group`, by BM25 of the query against
    each example's `mining_text` (its positive when None). `id` is always set."""

    mining_group: str = ""
    mining_text: str | None = None


def clip_text(text: str, max_chars: int) -> str:
    """`text` stripped and cut to at most `max_chars`, at a whitespace when there is one."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(None, 1)[0].rstrip()


def sample_spread(groups: Sequence[Group], pairs_of: Callable[[Group], Iterable[CorpusExample]], *, seed: int,
                  max_pairs: int, per_group: int, unique: Sequence[str] = ("id",)) -> list[CorpusExample]:
    """Up to `max_pairs` pairs, at most `per_group` from each group (a file), sorted by id.

    Groups are visited in an order shuffled by `seed` and only until enough pairs are found, so a
    small corpus reads few files; the cap per group spreads pairs over many files. A pair whose
    value of any `unique` field was already taken is left out.
    """
    rng = np.random.default_rng(seed)
    taken: dict[str, set[str]] = {field: set() for field in unique}
    chosen: list[CorpusExample] = []
    for index in rng.permutation(len(groups)):
        candidates = list(pairs_of(groups[index]))
        order = rng.permutation(len(candidates))
        kept = 0
        for pair in (candidates[i] for i in order):
            if kept == per_group or len(chosen) == max_pairs:
                break
            if any(getattr(pair, f) in taken[f] for f in unique):
                continue
            for f in unique:
                taken[f].add(getattr(pair, f))
            chosen.append(pair)
            kept += 1
        if len(chosen) == max_pairs:
            break
    return sorted(chosen, key=lambda p: p.id)
