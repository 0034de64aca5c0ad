"""Hard negatives mined by BM25: for each query, the top-ranked document that is not its positive."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence

import bm25s
import numpy as np

from embeddinggemma.data.corpus.pairs import CorpusExample

# bm25s sets its logger to DEBUG when imported: one line per index built.
logging.getLogger("bm25s").setLevel(logging.WARNING)


def bm25_tokens(texts: Sequence[str]) -> list[list[str]]:
    """Each text as the English words BM25 indexes (bm25s: lower case, stop words removed)."""
    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


def _mine_group(pairs: Sequence[CorpusExample], rng: np.random.Generator) -> list[CorpusExample]:
    documents = bm25_tokens([p.mining_text or p.positive for p in pairs])
    retriever = bm25s.BM25()
    if any(documents):  # bm25s cannot index a corpus without a single term
        retriever.index(documents, show_progress=False)
    positives = np.array([p.positive for p in pairs], dtype=object)
    mined = []
    for pair, query in zip(pairs, bm25_tokens([p.query for p in pairs]), strict=True):
        # A document equal to the positive is the positive, whichever pair it belongs to.
        allowed = positives != pair.positive
        if not allowed.any():
            continue
        scores = retriever.get_scores(query) if query and any(documents) else np.zeros(len(pairs))
        scores = np.where(allowed, scores, -np.inf)
        # No shared term: any other document is as good; draw one rather than always the first.
        best = int(np.argmax(scores)) if scores.max() > 0 else int(rng.choice(np.flatnonzero(allowed)))
        mined.append(dataclasses.replace(pair, negative=pairs[best].positive,
                                         negative_title=pairs[best].title))
    return mined


def mine_hard_negatives(pairs: Sequence[CorpusExample], *, seed: int) -> list[CorpusExample]:
    """The pairs with `negative` (and `negative_title`) set, mined within each `mining_group`.

    A pair left without any other document in its group is dropped. Ties go to the first document
    in the input order, so the result is a function of the (sorted) input and the seed.
    """
    rng = np.random.default_rng(seed)
    ordered = sorted(pairs, key=lambda p: (p.mining_group, p.id))
    groups = itertools.groupby(ordered, key=lambda p: p.mining_group)
    mined = [m for _, group in groups for m in _mine_group(list(group), rng)]
    return sorted(mined, key=lambda p: p.id)
