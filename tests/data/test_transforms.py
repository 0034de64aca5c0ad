"""Prompts, titles, tokenisation and length-bucketed padding of one batch."""

import numpy as np

from embeddinggemma.data.hashing import text_id
from embeddinggemma.data.records import Example, Skipped
from embeddinggemma.data.transforms import BatchCollator, prompted_texts

CODE = Example(task="InstructionRetrieval", query="Sum of the elements.",
               positive="def total(xs):\n    return sum(xs)", negative="def mean(xs): ...",
               title="numpy", negative_title=None)


def unpadded(row: np.ndarray) -> list[int]:
    return row[: np.flatnonzero(row)[-1] + 1].tolist()


def test_prompts_and_titles_are_applied_exactly(tokenizer):
    assert prompted_texts(CODE) == {
        "query": "task: code retrieval | query: Sum of the elements.",
        "positive": "title: numpy | text: def total(xs):\n    return sum(xs)",
        "negative": "title: none | text: def mean(xs): ...",
    }
    batch = BatchCollator(tokenizer, max_query_length=64, max_document_length=64, hard_negatives=True)([CODE])
    for field, text in prompted_texts(CODE).items():
        assert unpadded(batch[field][0]) == tokenizer.encode([text], 64)[0]
    assert batch["query_id"][0] == text_id("task: code retrieval | query: Sum of the elements.")


def test_lengths_are_bucketed_per_batch_and_documents_share_one_length(tokenizer):
    long = Example(task="query", query="a " * 40, positive="b", negative="c " * 70)
    collate = BatchCollator(tokenizer, max_query_length=48, max_document_length=256, hard_negatives=True)
    batch = collate([CODE, long])
    query_tokens = len(tokenizer.encode([prompted_texts(long)["query"]], 48)[0])
    negative_tokens = len(tokenizer.encode([prompted_texts(long)["negative"]], 256)[0])
    assert query_tokens == 48  # truncated to the maximum, BOS and EOS kept
    assert batch["query"].shape == (2, 48)
    assert 80 < negative_tokens <= 96 and batch["positive"].shape == batch["negative"].shape == (2, 96)
    assert batch["query"].dtype == np.int32 and batch["query"][0, -1] == 0
    assert collate([CODE])["query"].shape[1] < 48
    fixed = BatchCollator(tokenizer, max_query_length=48, max_document_length=256, hard_negatives=False,
                          bucket=False)([CODE])
    assert fixed["query"].shape == (1, 48) and fixed["positive"].shape == (1, 256) and "negative" not in fixed


def test_duplicates_share_ids_and_skipped_rows_are_masked(tokenizer):
    other = Example(task="query", query="Sum of the elements.", positive=CODE.positive, title="numpy")
    batch = BatchCollator(tokenizer, max_query_length=32, max_document_length=32, hard_negatives=False,
                          teacher_dim=0)([CODE, other, Skipped("x:3", "empty")])
    assert batch["positive_id"][0] == batch["positive_id"][1]  # same prompted document
    assert batch["query_id"][0] != batch["query_id"][1]  # same text, different task prompt
    assert batch["example_mask"].tolist() == [True, True, False]
