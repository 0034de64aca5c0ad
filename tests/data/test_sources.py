"""Record sources: JSON-lines line index, ArrayRecord and the TFDS adapter."""

import json
import pickle

import numpy as np
import pytest

from embeddinggemma.data.config import dataset_config
from embeddinggemma.data.jsonl import JsonLinesSource
from embeddinggemma.data.sources import open_source


def test_jsonl_index_skips_empty_lines_and_numbers_lines_from_one(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\r\n{"a": 3}')  # blank line, CRLF, no final newline
    source = JsonLinesSource(path)
    assert len(source) == 3
    assert [json.loads(source[i].payload)["a"] for i in range(3)] == [1, 2, 3]
    assert [source[i].where for i in range(3)] == [f"{path}:1", f"{path}:3", f"{path}:4"]


def test_jsonl_crlf_file_with_a_blank_line_and_raw_line_separators(tmp_path):
    """A blank CRLF line is no record; U+2028 and NEL inside a JSON string are characters."""
    path = tmp_path / "r.jsonl"
    texts = ["one\u2028two", "three\x85four"]
    path.write_bytes(b"\r\n".join(json.dumps({"a": t}, ensure_ascii=False).encode() for t in texts)
                     .replace(b"\r\n", b"\r\n\r\n") + b"\r\n")
    source = JsonLinesSource(path)
    assert [json.loads(source[i].payload)["a"] for i in range(len(source))] == texts
    assert [source[i].where for i in range(len(source))] == [f"{path}:1", f"{path}:3"]


def test_jsonl_empty_file_has_no_records(tmp_path):
    (tmp_path / "e.jsonl").write_bytes(b"")
    assert len(JsonLinesSource(tmp_path / "e.jsonl")) == 0


def test_jsonl_file_truncated_under_an_open_source_reads_short_records_without_crashing(tmp_path):
    # A memory-mapped source died with SIGBUS here (a test rewrote a file its pipeline still read).
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"a": "x" * 5000}) + "\n" for _ in range(4)))
    source = JsonLinesSource(path)
    path.write_text("")
    assert [source[i].payload for i in range(4)] == [b""] * 4
    assert pickle.loads(pickle.dumps(source)).path == path


def test_array_record_source_reads_json_records_and_names_file_and_index(tmp_path):
    from array_record.python.array_record_module import ArrayRecordWriter

    for part in range(2):
        writer = ArrayRecordWriter(str(tmp_path / f"r{part}.array_record"), "group_size:1")
        for i in range(2):
            writer.write(json.dumps({"query": f"q{part}{i}"}).encode())
        writer.close()
    source = open_source(dataset_config(str(tmp_path / "*.array_record"), format="array_record"))
    assert len(source) == 4
    assert json.loads(source[3].payload) == {"query": "q11"}
    assert source[3].where == f"{tmp_path}/r1.array_record[record 1]"


def test_tfds_source_adapts_a_prepared_dataset(monkeypatch):
    import tensorflow_datasets as tfds

    calls = []

    def fake_data_source(name, *, split, data_dir, download):
        calls.append((name, split, data_dir, download))
        return [{"question": np.bytes_(b"why"), "answer": b"because"}]

    monkeypatch.setattr(tfds, "data_source", fake_data_source)
    source = open_source(dataset_config("my_qa", format="tfds", split="validation"))
    assert calls == [("my_qa", "validation", None, False)]
    assert source[0].payload["answer"] == b"because"
    assert source[0].where == "tfds:my_qa/validation[record 0]"


def test_unknown_format_is_named():
    with pytest.raises(ValueError, match="csv"):
        open_source(dataset_config("x", format="csv"))
