"""Hard negatives for (query, positive) pairs, mined from a pool of documents.

For each pair, every document of the pool is scored against the query: by the model's own
embeddings (the texts prompted exactly as training prompts them, transforms.prompted_texts; the
score is the cosine similarity) or by BM25 (corpus/hard_negatives.bm25_tokens). Candidates are
taken from the best score down, skipping

  * the pair's own positive and its near-duplicates: the same words after case folding (a copy
    with other spacing or punctuation), or word sets whose Jaccard similarity is at least
    NEAR_DUPLICATE_JACCARD (a copy with a word changed);
  * likely false negatives: a candidate whose score exceeds the positive's score minus `margin`,
    i.e. it is kept only when `score(q, c) <= score(q, p) - margin` (DEFAULT_MARGINS per method:
    cosine similarity 0.05 below the positive for the model; BM25's scores have no fixed scale,
    so there only a candidate scoring above the positive is dropped);
  * a text already chosen for that pair.

The output is the input's records, one line per pair and in the input's order, with `negative`
(the hardest kept) and, when more than one is asked for, `negatives` (all kept, hardest first);
data.records reads it as it reads any dataset. A pair with no candidate left keeps no `negative`.

State beside the output, `<out>.mining/` (marked by its `mining.json`): the model's embeddings
in chunks of `chunk_size` texts, each written atomically, so a killed run started again embeds
only the chunks it had not finished; and the sha256 of the output it wrote, which is how it knows
that an existing output is its own (anything else is refused).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from embeddinggemma.artefacts import sha256_file
from embeddinggemma.atomic import atomic_write, check_target, save_npy
from embeddinggemma.data.jsonl import JsonLinesSource
from embeddinggemma.data.records import Example, decode_record, parse_example
from embeddinggemma.data.transforms import prompted_texts
from embeddinggemma.errors import InputError, NotOurDirectoryError
from embeddinggemma.files import read_json, read_texts
from embeddinggemma.prompts import document_prompt
from embeddinggemma.schema import RECORD_FIELDS

METHODS = ("model", "bm25")
DEFAULT_MARGINS = {"model": 0.05, "bm25": 0.0}
NEAR_DUPLICATE_JACCARD = 0.9
STATE_MARKER = "mining.json"
WHAT = "the mining state of `mine`"

_WORDS = re.compile(r"\w+")


@dataclasses.dataclass(frozen=True)
class MiningSummary:
    """What a mining run did: pairs written, pairs left with fewer negatives than asked, chunks
    of embeddings found from an earlier run and chunks embedded now."""

    pairs: int
    short: int
    chunks_reused: int
    chunks_embedded: int


def parse_range(text: str) -> tuple[int, int | None]:
    """"A:B" -> (A, B), the records A..B-1 (counted from 0, as Python slices); either may be empty.

    Raises:
      ValueError naming --range when it is not of that form.
    """
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        a, b = int(start) if start.strip() else 0, int(stop) if stop.strip() else None
        if a < 0 or (b is not None and b < a):
            raise ValueError
    except ValueError:
        raise ValueError(f"--range {text!r} is not A:B with 0 <= A <= B (either may be left out).") from None
    return a, b


def words(text: str) -> frozenset[str]:
    """The case-folded words of a text (what near-duplicates are judged by)."""
    return frozenset(_WORDS.findall(text.casefold()))


def is_near_duplicate(a: str, b: str) -> bool:
    """Whether two texts are the same words in the same order after case folding, or their word
    sets have a Jaccard similarity of at least NEAR_DUPLICATE_JACCARD."""
    if _WORDS.findall(a.casefold()) == _WORDS.findall(b.casefold()):
        return True
    wa, wb = words(a), words(b)
    return bool(wa | wb) and len(wa & wb) / len(wa | wb) >= NEAR_DUPLICATE_JACCARD


def select_negatives(scores: np.ndarray, positive_score: float, texts: Sequence[str], positive: str,
                     candidates: np.ndarray, num_negatives: int, margin: float) -> list[int]:
    """Indices of the chosen negatives, hardest first (the rules in the module docstring).

    Args:
      scores: [D] every document's score against the query.
      positive_score: the score of the pair's own positive.
      texts: [D] the documents' texts (near-duplicates are judged on them, without prompts).
      positive: the positive's text.
      candidates: [D] bool, False for documents that may not be chosen at all.
      num_negatives: how many to choose at most.
      margin: a candidate is kept only when its score <= positive_score - margin.
    """
    order = np.argsort(-scores, kind="stable")  # ties: the earlier document first
    ceiling = positive_score - margin
    chosen: list[int] = []
    for index in order:
        if len(chosen) == num_negatives:
            break
        if not candidates[index] or scores[index] > ceiling:
            continue
        text = texts[index]
        if is_near_duplicate(text, positive) or any(texts[c] == text for c in chosen):
            continue
        chosen.append(int(index))
    return chosen


def read_pairs(path: Path) -> list[tuple[dict, Example]]:
    """Every record of a JSON-lines file of pairs, as its JSON object and as an Example.

    Raises:
      MalformedRecordError naming `file:line` and the field for a record that breaks the schema.
    """
    source = JsonLinesSource(path)
    identity = {f: f for f in RECORD_FIELDS}
    return [(dict(decode_record(source[i])), parse_example(source[i], identity)) for i in range(len(source))]


def _check_output(out: Path, state: Path) -> None:
    """Refuses an existing `out` that this module did not write (its sha256 is not the one the
    state directory recorded)."""
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise NotOurDirectoryError(f"--out {out} is not a regular file; nothing was changed.")
    if not out.exists():
        return
    marker = state / STATE_MARKER
    recorded = read_json(marker, "Mining state").get("output_sha256") if marker.is_file() else None
    if recorded != sha256_file(out):
        raise NotOurDirectoryError(f"--out {out} exists and was not written by `mine` (or was changed "
                                   f"since; {marker} records what it wrote); nothing was changed. "
                                   "Choose another --out or remove it yourself.")


class _ChunkedEmbeddings:
    """Embeddings of a list of texts stored as `<role>-<key>-<i>.npy` chunks in the state directory."""

    def __init__(self, state: Path, identity: str, chunk_size: int):
        self.state, self.identity, self.chunk_size = state, identity, chunk_size
        self.reused = self.embedded = 0

    def __call__(self, role: str, texts: Sequence[str],
                 embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        digest = hashlib.sha256(json.dumps([self.identity, self.chunk_size, list(texts)]).encode())
        key = digest.hexdigest()[:16]
        for stale in self.state.glob(f"{role}-*.npy"):  # another input or model: ours, not needed
            if not stale.name.startswith(f"{role}-{key}-"):
                stale.unlink()
        count = -(-len(texts) // self.chunk_size)
        parts = []
        for i in range(count):
            path = self.state / f"{role}-{key}-{i:05d}.npy"
            chunk = texts[i * self.chunk_size:(i + 1) * self.chunk_size]
            if path.is_file():
                self.reused += 1
                parts.append(np.load(path))
                continue
            print(f"mine: embedding {role} chunk {i + 1}/{count} ({len(chunk)} texts)", file=sys.stderr)
            vectors = np.asarray(embed(list(chunk)), dtype=np.float32)
            save_npy(path, vectors)
            self.embedded += 1
            parts.append(vectors)
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def mine_file(input_path: str | Path, out: str | Path, *, method: str = "model",
              embed: Callable[[list[str]], np.ndarray] | None = None, identity: str = "",
              corpus: str | Path | None = None, num_negatives: int = 1, margin: float | None = None,
              start: int = 0, stop: int | None = None, chunk_size: int = 1024) -> MiningSummary:
    """Mines negatives for the pairs `input_path[start:stop]` and writes them to `out`.

    Args:
      input_path: JSON lines of records (data.records; `negative` may be absent).
      out: the output JSON-lines file; refused when it exists and this function did not write it.
      method: "model" (needs `embed`) or "bm25".
      embed: prompted texts -> [N, D] L2-normalised float32 embeddings (Embedder.encode).
      identity: names the model and its settings; embeddings stored under another identity are
        embedded again.
      corpus: a file of documents (JSON lines with `text`, or one per line); default: every
        positive of `input_path`.
      num_negatives: negatives per pair (at most).
      margin: the false-negative margin (default DEFAULT_MARGINS[method]).
      chunk_size: texts per stored chunk of embeddings.

    Raises:
      MalformedRecordError naming `file:line` for a bad record; InputError or ValueError for a bad
      argument or corpus; NotOurDirectoryError for an output or state directory that is not ours.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}; choose one of {', '.join(METHODS)}.")
    if method == "model" and embed is None:
        raise ValueError("method='model' needs a model (--checkpoint).")
    if num_negatives < 1 or chunk_size < 1:
        raise ValueError(f"num_negatives={num_negatives} and chunk_size={chunk_size} must be >= 1.")
    input_path, out = Path(input_path).expanduser(), Path(out).expanduser()
    if out.resolve() in (input_path.resolve(), Path(corpus).expanduser().resolve() if corpus else None):
        raise NotOurDirectoryError(f"--out {out} is an input of this command; nothing was changed.")
    margin = DEFAULT_MARGINS[method] if margin is None else float(margin)
    state = check_target(out.with_name(out.name + ".mining"), STATE_MARKER, WHAT)
    _check_output(out, state)

    records = read_pairs(input_path)
    selected = records[start:stop]
    if not selected:
        raise InputError(f"{input_path}: no records in --range {start}:{'' if stop is None else stop} "
                         f"(the file has {len(records)}).")
    # The pool: (title, text) documents, each once; positives of the selected pairs are scored
    # too (their score is the margin's reference) but may not be chosen unless they are in the pool.
    if corpus is not None:
        pool = [(None, text) for text in read_texts(Path(corpus).expanduser()) if text.strip()]
        if not pool:
            raise InputError(f"--corpus {corpus} holds no documents.")
    else:
        pool = [(e.title, e.positive) for _, e in records]
    documents = list(dict.fromkeys(pool))
    in_pool = len(documents)
    index = {d: i for i, d in enumerate(documents)}
    for _, e in selected:
        if (e.title, e.positive) not in index:
            index[(e.title, e.positive)] = len(documents)
            documents.append((e.title, e.positive))
    candidates = np.arange(len(documents)) < in_pool
    texts = [text for _, text in documents]

    state.mkdir(parents=True, exist_ok=True)
    marker = state / STATE_MARKER
    if not marker.is_file():
        atomic_write(marker, json.dumps({"output_sha256": None}) + "\n")
    chunks = _ChunkedEmbeddings(state, identity, chunk_size)
    queries = [prompted_texts(e)["query"] for _, e in selected]
    if method == "model":
        query_vectors = chunks("query", queries, embed)
        document_vectors = chunks("document", [document_prompt(t) + x for t, x in documents], embed)
        score_rows = lambda rows: query_vectors[rows] @ document_vectors.T  # noqa: E731
    else:
        score_rows = _bm25_scorer([e.query for _, e in selected], texts)

    lines, short = [], 0
    for begin in tqdm(range(0, len(selected), 256), desc="mine: ranking", unit="256 queries",
                      file=sys.stderr, disable=len(selected) <= 256):
        rows = np.arange(begin, min(begin + 256, len(selected)))
        for row, scores in zip(rows, np.asarray(score_rows(rows), dtype=np.float64), strict=True):
            record, example = selected[row]
            positive = index[(example.title, example.positive)]
            chosen = select_negatives(scores, float(scores[positive]), texts, example.positive,
                                      candidates, num_negatives, margin)
            short += len(chosen) < num_negatives
            lines.append(json.dumps(_with_negatives(record, [documents[c] for c in chosen], num_negatives),
                                    ensure_ascii=False))
    atomic_write(out, "".join(line + "\n" for line in lines))
    atomic_write(marker, json.dumps({"output_sha256": sha256_file(out), "input": str(input_path),
                                     "method": method, "margin": margin, "num_negatives": num_negatives,
                                     "range": [start, stop]}, indent=2) + "\n")
    return MiningSummary(len(lines), short, chunks.reused, chunks.embedded)


def _with_negatives(record: dict, negatives: Sequence[tuple[str | None, str]], num_negatives: int) -> dict:
    out = {k: v for k, v in record.items() if k not in ("negative", "negative_title", "negatives")}
    if negatives:
        title, text = negatives[0]
        out["negative"] = text
        if title is not None:
            out["negative_title"] = title
    if num_negatives > 1:
        out["negatives"] = [text for _, text in negatives]
    return out


def _bm25_scorer(queries: Sequence[str], texts: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """rows -> [len(rows), D] BM25 scores of those queries against every text."""
    import bm25s

    from embeddinggemma.data.corpus.hard_negatives import bm25_tokens

    documents = bm25_tokens(texts)
    retriever = bm25s.BM25()
    if any(documents):  # bm25s cannot index a corpus without a single term
        retriever.index(documents, show_progress=False)
    tokens = bm25_tokens(queries)

    def scores(rows: np.ndarray) -> np.ndarray:
        return np.stack([retriever.get_scores(tokens[r]) if tokens[r] and any(documents)
                         else np.zeros(len(texts)) for r in rows])

    return scores
