"""The training iterator: one dataset per batch by weight, exact resumption, hosts, malformed records."""

import json

import numpy as np
import pytest
from scipy.stats import chisquare

from embeddinggemma.data.hashing import text_id
from embeddinggemma.data.pipeline import make_eval_batches, make_train_iterator
from embeddinggemma.data.teacher import default_teacher_dir, write_teacher_embeddings
from embeddinggemma.errors import MalformedRecordError
from embeddinggemma.prompts import DEFAULT_PROMPTS
from tests.data.conftest import pair

LENGTHS = dict(max_query_length=32, max_document_length=48)


def query_ids(name: str, size: int) -> dict[int, int]:
    """text_id of each prompted query of dataset `name` -> its record number."""
    return {text_id(DEFAULT_PROMPTS["query"] + pair(name, i)["query"]): i for i in range(size)}


def rows(batch: dict, field: str) -> list[list[int]]:
    return [r[r != 0].tolist() for r in batch[field]]


def test_every_batch_holds_one_dataset_drawn_by_the_weights(mixture, tokenizer):
    weights = {"a": 6.0, "b": 3.0, "c": 1.0}
    it = make_train_iterator(mixture(weights, size=30), tokenizer, batch_size=2, hard_negatives=False,
                             seed=0, **LENGTHS)
    ids = {name: query_ids(name, 30) for name in weights}
    counts = dict.fromkeys(weights, 0)
    for _ in range(300):
        batch = next(it)
        assert set(batch["query_id"].tolist()) <= set(ids[it.last_dataset])
        counts[it.last_dataset] += 1
    expected = [w / sum(weights.values()) * 300 for w in weights.values()]
    assert chisquare(list(counts.values()), expected).pvalue > 0.001


def test_restored_iterator_yields_the_same_batches(mixture, tokenizer):
    config = mixture({"a": 1.0, "b": 2.0}, size=7)  # several epochs: reshuffled each time

    def fresh():
        return make_train_iterator(config, tokenizer, batch_size=3, hard_negatives=True, seed=5, **LENGTHS)

    first = fresh()
    for _ in range(11):
        next(first)
    state = json.loads(json.dumps(first.get_state()))
    expected = [next(first) for _ in range(6)]
    restored = fresh()
    restored.set_state(state)
    for want in expected:
        got = next(restored)
        assert got.keys() == want.keys()
        assert all(np.array_equal(got[k], want[k]) for k in want)


def test_two_hosts_together_read_the_single_host_global_batch(mixture, tokenizer):
    # Disjoint stream positions; 12 records make every epoch end with a batch, so also distinct records.
    config = mixture({"a": 1.0, "b": 1.0}, size=12)
    kwargs = dict(batch_size=4, hard_negatives=True, seed=1, **LENGTHS)
    single = make_train_iterator(config, tokenizer, **kwargs)
    hosts = [make_train_iterator(config, tokenizer, process_index=p, process_count=2, **kwargs)
             for p in range(2)]
    for _ in range(8):
        whole, parts = next(single), [next(h) for h in hosts]
        assert hosts[0].last_dataset == hosts[1].last_dataset == single.last_dataset
        assert set(parts[0]["query_id"].tolist()).isdisjoint(parts[1]["query_id"].tolist())
        for field in ("query", "positive", "negative"):
            assert parts[0][field].shape == (2, LENGTHS["max_query_length" if field == "query"
                                                           else "max_document_length"])
            assert rows(parts[0], field) + rows(parts[1], field) == rows(whole, field)


def test_a_malformed_record_is_an_error_naming_file_and_line(write_jsonl, mixture, tokenizer):
    config = mixture({"a": 1.0})
    path = write_jsonl("a", [pair("a", 0), pair("a", 1), {"task": "query", "query": "q"}])
    with pytest.raises(MalformedRecordError, match=f"^{path}:3: missing field 'positive'"):
        it = make_train_iterator(config, tokenizer, batch_size=3, hard_negatives=False, seed=0, **LENGTHS)
        next(it)


def test_malformed_records_are_skipped_counted_and_masked(tmp_path, mixture, tokenizer):
    config = mixture({"a": 1.0}, skip_malformed=True)
    good = [json.dumps(pair("a", i)).encode() for i in range(5)]
    bad = [b'{"task": "query", "query": "\xff", "positive": "p", "negative": "n"}',
           b'{"task": "query", "query": "q", "positive": "", "negative": "n"}',
           b'{"task": "query", "query": "q", "positive": "p"}']  # no hard negative
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(good + bad))
    it = make_train_iterator(config, tokenizer, batch_size=8, hard_negatives=True, seed=0, **LENGTHS)
    batch = next(it)
    assert batch["example_mask"].sum() == 5 and it.skipped == {"a": 3}
    state = json.loads(json.dumps(it.get_state()))
    restored = make_train_iterator(config, tokenizer, batch_size=8, hard_negatives=True, seed=0, **LENGTHS)
    restored.set_state(state)
    assert restored.skipped == {"a": 3}


def test_a_dataset_of_malformed_records_only_is_an_error_naming_it_not_a_run_on_nothing(
        tmp_path, mixture, tokenizer):
    config = mixture({"a": 1.0}, skip_malformed=True)
    bad = [json.dumps({"task": "query", "query": f"q{i}", "positive": "p"}) for i in range(5)]  # no negative
    (tmp_path / "a.jsonl").write_text("\n".join(bad) + "\n")
    it = make_train_iterator(config, tokenizer, batch_size=4, hard_negatives=True, seed=0, **LENGTHS)
    with pytest.raises(MalformedRecordError, match=r"a\.jsonl:\d: all 4 records of a batch of dataset 'a' "
                                                   r"are malformed .*missing field 'negative'"):
        next(it)


def test_teacher_embeddings_are_aligned_by_record_id(write_jsonl, mixture, tokenizer):
    config = mixture({"a": 1.0}, size=6, teacher="t")
    ids = [f"a-{i}" for i in (3, 0, 5, 1, 4, 2)]  # any order: the layout sorts by id
    vectors = {f: np.array([[int(i[2:]), k, 0.5] for i in ids], np.float32)
               for k, f in enumerate(("query", "positive", "negative"))}
    write_teacher_embeddings(default_teacher_dir(config.datasets.a.path, "t"), ids, vectors, {"dim": 3})
    it = make_train_iterator(config, tokenizer, batch_size=4, hard_negatives=True, seed=0, **LENGTHS)
    numbers = query_ids("a", 6)
    for _ in range(3):
        batch = next(it)
        record = [numbers[q] for q in batch["query_id"].tolist()]
        for k, field in enumerate(("query", "positive", "negative")):
            np.testing.assert_array_equal(batch[f"teacher_{field}"],
                                          [[n, k, 0.5] for n in record])
    write_jsonl("a", [pair("a", i) for i in range(6)] + [pair("a", 9)])
    with pytest.raises(MalformedRecordError, match=r"a.jsonl:7: id 'a-9' has no teacher embedding"):
        it = make_train_iterator(config, tokenizer, batch_size=7, hard_negatives=True, seed=0, **LENGTHS)
        next(it)


def test_eval_batches_cover_a_dataset_once_in_order_with_a_padded_last_batch(mixture, tokenizer):
    config = mixture({"a": 1.0}, size=10)
    batches = list(make_eval_batches(config, "a", tokenizer, batch_size=4, hard_negatives=False, **LENGTHS))
    assert len(batches) == 3 and batches[-1]["example_mask"].tolist() == [True, True, False, False]
    numbers = query_ids("a", 10)
    order = [numbers[q] for b in batches for q, m in zip(b["query_id"], b["example_mask"], strict=True) if m]
    assert order == list(range(10))
