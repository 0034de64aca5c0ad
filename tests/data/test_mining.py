"""Mining hard negatives (data/mining.py, the `mine` command): format and order, what is never
chosen, the false-negative margin against numpy, resumption after SIGKILL, bad input named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embeddinggemma.data.hashing import stable_seed
from embeddinggemma.data.jsonl import JsonLinesSource
from embeddinggemma.data.mining import mine_file
from embeddinggemma.data.records import parse_example
from embeddinggemma.errors import MalformedRecordError, NotOurDirectoryError
from embeddinggemma.schema import RECORD_FIELDS

REPO = Path(__file__).resolve().parents[2]

TOPICS = ["open a file for reading", "sort a list of numbers", "parse a date string", "send an http request",
          "compress a directory", "hash a password", "resize an image", "read a csv table",
          "start a thread pool", "format a float with two digits", "merge two dictionaries",
          "split a string on commas"]


def pairs(n: int = len(TOPICS)) -> list[dict]:
    return [{"id": f"p{i}", "task": "query", "query": f"how do I {t}",
             "positive": f"To {t}, call the helper for it and check the result {i}."}
            for i, t in enumerate(TOPICS[:n])]


def write(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def hashed_embed(texts: list[str]) -> np.ndarray:
    """A stand-in model: a fixed unit vector per text (no JAX), 0.1 s a call so that a kill lands
    between chunks."""
    time.sleep(0.1)
    rows = [np.random.default_rng(stable_seed(t)).normal(size=8) for t in texts]
    return np.stack([r / np.linalg.norm(r) for r in rows]).astype(np.float32)


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_output_is_the_input_in_order_with_negatives_the_dataset_reader_accepts(tmp_path):
    source = write(tmp_path / "pairs.jsonl", pairs())
    out = tmp_path / "triples.jsonl"
    summary = mine_file(source, out, method="bm25", num_negatives=2, start=2, stop=9)
    got = read_out(out)
    assert summary.pairs == 7 and summary.short == 0
    assert [r["id"] for r in got] == [f"p{i}" for i in range(2, 9)]
    identity = {f: f for f in RECORD_FIELDS}
    for number, (row, want) in enumerate(zip(got, pairs()[2:9], strict=True)):
        assert {k: row[k] for k in want} == want  # every input field kept as it was
        assert row["negative"] == row["negatives"][0] and len(set(row["negatives"])) == 2
        example = parse_example(JsonLinesSource(out)[number], identity, require_negative=True)
        assert example.negative == row["negative"] and example.positive == want["positive"]


def test_neither_the_positive_nor_a_near_duplicate_of_it_is_chosen(tmp_path):
    rows = pairs(6)
    target = rows[0]["positive"]
    corpus = [target.upper().replace(" ", "   "),           # the same words, other case and spacing
              target.replace("result", "result again"),     # a word added: Jaccard 14/15
              "To open a file for writing, call another helper and check nothing.",  # a true negative
              *[r["positive"] for r in rows]]
    source = write(tmp_path / "pairs.jsonl", rows)
    docs = write(tmp_path / "docs.txt", corpus)
    mine_file(source, tmp_path / "out.jsonl", method="bm25", corpus=docs, num_negatives=3, margin=-1e9)
    for row in read_out(tmp_path / "out.jsonl"):
        assert row["positive"] not in row["negatives"]
        assert len(set(row["negatives"])) == len(row["negatives"])
    first = read_out(tmp_path / "out.jsonl")[0]["negatives"]
    assert corpus[0] not in first and corpus[1] not in first and corpus[2] in first


def test_the_margin_drops_candidates_scoring_above_the_positive_minus_it(tmp_path):
    rows = pairs()
    source = write(tmp_path / "pairs.jsonl", rows)
    margin, k = 0.1, 3
    mine_file(source, tmp_path / "out.jsonl", embed=hashed_embed, identity="hashed", margin=margin,
              num_negatives=k, chunk_size=5)
    # numpy: the prompted texts' vectors, every positive a candidate but the pair's own.
    queries = hashed_embed([f"task: search result | query: {r['query']}" for r in rows])
    documents = hashed_embed([f"title: none | text: {r['positive']}" for r in rows])
    scores = queries @ documents.T
    for i, row in enumerate(read_out(tmp_path / "out.jsonl")):
        allowed = [j for j in range(len(rows)) if j != i and scores[i, j] <= scores[i, i] - margin]
        want = sorted(allowed, key=lambda j: -scores[i, j])[:k]
        assert row["negatives"] == [rows[j]["positive"] for j in want], i
    # The rule binds here: without a margin some pair gets a negative the margin removed.
    mine_file(source, tmp_path / "none.jsonl", embed=hashed_embed, identity="hashed", margin=-1.0,
              num_negatives=k, chunk_size=5)
    assert read_out(tmp_path / "none.jsonl") != read_out(tmp_path / "out.jsonl")


MINE_SCRIPT = """
import sys
from embeddinggemma.data.mining import mine_file
from tests.data.test_mining import hashed_embed
summary = mine_file(sys.argv[1], sys.argv[2], embed=hashed_embed, identity="hashed", chunk_size=2)
print(summary.chunks_reused, summary.chunks_embedded)
"""


@pytest.mark.slow
def test_a_run_killed_midway_resumes_to_the_output_of_an_uninterrupted_one(tmp_path):
    source = write(tmp_path / "pairs.jsonl", pairs())
    out, state = tmp_path / "out.jsonl", tmp_path / "out.jsonl.mining"
    command = [sys.executable, "-c", MINE_SCRIPT, str(source), str(out)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(state.glob("*.npy"))) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list(state.glob("*.npy")))
    assert 3 <= done < 12 and not out.exists()  # 6 query and 6 document chunks in all

    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split() == [str(done), str(12 - done)]
    mine_file(source, tmp_path / "whole.jsonl", embed=hashed_embed, identity="hashed", chunk_size=2)
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


def test_a_malformed_line_is_named_by_file_and_line(tmp_path):
    rows = [json.dumps(r) for r in pairs(4)]
    source = write(tmp_path / "pairs.jsonl", [rows[0], rows[1], "", '{"task": "query", "query": 3}', rows[2]])
    with pytest.raises(MalformedRecordError, match=r"pairs\.jsonl:4: field 'query' is a int"):
        mine_file(source, tmp_path / "out.jsonl", method="bm25")
    assert not (tmp_path / "out.jsonl").exists()


def test_the_command_refuses_an_output_it_did_not_write_and_bad_lines_with_status_2(tmp_path):
    source = write(tmp_path / "pairs.jsonl", pairs(4))
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text("mine\n")
    command = [sys.executable, "-m", "embeddinggemma", "mine", "--method", "bm25", "--input", str(source)]
    refused = subprocess.run([*command, "--out", str(foreign)], cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "was not written by `mine`" in refused.stderr
    assert foreign.read_text() == "mine\n" and not (tmp_path / "notes.jsonl.mining").exists()

    ours = tmp_path / "ours.jsonl"
    for _ in range(2):  # its own output is rewritten
        done = subprocess.run([*command, "--out", str(ours)], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    ours.write_text(ours.read_text() + "\n")  # changed by hand since: no longer its own
    with pytest.raises(NotOurDirectoryError):
        mine_file(source, ours, method="bm25")

    write(source, ['{"task": "query"'])
    bad = subprocess.run([*command, "--out", str(tmp_path / "x.jsonl")], cwd=REPO, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and f"{source}:1: invalid JSON" in bad.stderr


@pytest.mark.slow
def test_the_command_mines_with_a_model_checkpoint(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    from embeddinggemma import Embedder
    from embeddinggemma.prompts import DEFAULT_PROMPTS

    start = Embedder(tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS).save(tmp_path / "model")
    source = write(tmp_path / "pairs.jsonl", pairs())
    done = subprocess.run([sys.executable, "-m", "embeddinggemma", "mine", "--checkpoint", str(start),
                           "--input", str(source), "--out", str(tmp_path / "out.jsonl"), "--margin", "-2",
                           "--max-length", "32", "--chunk-size", "8"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # numpy over the model's own embeddings of the prompted texts: the best other positive.
    embedder = Embedder.load(start)
    rows = pairs()
    q = embedder.encode([f"task: search result | query: {r['query']}" for r in rows], max_length=32)
    d = embedder.encode([f"title: none | text: {r['positive']}" for r in rows], max_length=32)
    scores = q @ d.T
    np.fill_diagonal(scores, -np.inf)
    assert [r["negative"] for r in read_out(tmp_path / "out.jsonl")] == [rows[j]["positive"]
                                                                         for j in scores.argmax(1)]
