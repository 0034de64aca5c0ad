"""Training data in a bucket (`gs://`, on the GCS emulator of tests/conftest.py): JSON lines,
ArrayRecord globs, a corpus's manifest and teacher embeddings read as the same files are locally,
with errors naming the URL."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from embeddinggemma.data.config import corpus_datasets, dataset_config
from embeddinggemma.data.jsonl import JsonLinesSource
from embeddinggemma.data.records import parse_example
from embeddinggemma.data.sources import open_source
from embeddinggemma.data.teacher import TeacherEmbeddings, default_teacher_dir, write_teacher_embeddings
from embeddinggemma.errors import MalformedRecordError
from embeddinggemma.paths import files_under, glob_files

LINES = b'{"query": "a", "positive": "b"}\r\n\n{"query": "c\\u2028", "positive": "d"}\n{"query": 3}'


def _records(source) -> list[tuple[str, bytes]]:
    return [(r.where, r.payload) for r in (source[i] for i in range(len(source)))]


def test_a_jsonl_file_in_a_bucket_has_the_local_files_records_and_names_its_url(tmp_path, gcs_dir):
    (tmp_path / "d.jsonl").write_bytes(LINES)
    (gcs_dir / "d.jsonl").write_bytes(LINES)
    local, remote = JsonLinesSource(tmp_path / "d.jsonl"), JsonLinesSource(str(gcs_dir / "d.jsonl"))
    assert [(w.replace(str(tmp_path), str(gcs_dir)), p) for w, p in _records(local)] == _records(remote)
    assert remote[2].where == f"{gcs_dir}/d.jsonl:4"
    with pytest.raises(MalformedRecordError, match=f"^{gcs_dir}/d.jsonl:4: "):
        parse_example(remote[2], dataset_config("x").fields.to_dict())
    assert _records(pickle.loads(pickle.dumps(remote))) == _records(remote)  # a worker reopens it


def test_an_array_record_glob_in_a_bucket_reads_the_local_globs_records(tmp_path, gcs_dir):
    from array_record.python.array_record_module import ArrayRecordWriter

    for part in range(2):
        writer = ArrayRecordWriter(str(tmp_path / f"r{part}.array_record"), "group_size:1")
        for i in range(2):
            writer.write(json.dumps({"query": f"q{part}{i}"}).encode())
        writer.close()
        name = f"r{part}.array_record"
        (gcs_dir / "parts" / name).write_bytes((tmp_path / name).read_bytes())
    (gcs_dir / "parts" / "notes.txt").write_text("not a match")
    assert [str(p) for p in glob_files(f"{gcs_dir}/p*/*.array_record")] == [
        f"{gcs_dir}/parts/r0.array_record", f"{gcs_dir}/parts/r1.array_record"]
    local = open_source(dataset_config(str(tmp_path / "*.array_record"), format="array_record"))
    remote = open_source(dataset_config(f"{gcs_dir}/parts/*.array_record", format="array_record"))
    assert [p for _, p in _records(remote)] == [p for _, p in _records(local)]
    assert remote[3].where == f"{gcs_dir}/parts/r1.array_record[record 1]"
    assert len(pickle.loads(pickle.dumps(remote))) == 4
    with pytest.raises(FileNotFoundError, match=f"No ArrayRecord file matches {gcs_dir}/none/"):
        open_source(dataset_config(f"{gcs_dir}/none/*.array_record", format="array_record"))


def test_a_corpus_and_its_teacher_embeddings_in_a_bucket_read_as_locally(tmp_path, gcs_dir):
    manifest = {"datasets": {"code": {"splits": {"train": {"path": "code/train.jsonl"}}}}}
    for root in (tmp_path, gcs_dir):
        (root / "code").mkdir(parents=True, exist_ok=True)
        (root / "code" / "train.jsonl").write_bytes(LINES)
        (root / "manifest.json").write_text(json.dumps(manifest))
    assert corpus_datasets(str(gcs_dir)).code.path == f"{gcs_dir}/code/train.jsonl"

    rng = np.random.default_rng(0)
    ids = ["b", "a", "c"]
    arrays = {"query": rng.normal(size=(3, 4)), "positive": rng.normal(size=(3, 4))}
    teachers = {}
    for root in (tmp_path, gcs_dir):
        directory = default_teacher_dir(str(root / "code" / "train.jsonl"), "t")
        write_teacher_embeddings(directory, ids, arrays, {"dim": 4})
        teachers[root] = TeacherEmbeddings(directory)
    assert str(teachers[gcs_dir].directory) == f"{gcs_dir}/code/train.teacher/t"
    assert sorted(p.name for p in files_under(gcs_dir / "code" / "train.teacher" / "t")) == [
        "ids.npy", "info.json", "positive.npy", "query.npy"]
    assert teachers[gcs_dir].info == teachers[tmp_path].info == {"dim": 4}
    for record_id in ids:
        remote, local = teachers[gcs_dir].vectors(record_id), teachers[tmp_path].vectors(record_id)
        assert remote.keys() == local.keys()
        for role in remote:
            np.testing.assert_array_equal(remote[role], local[role])
    np.testing.assert_allclose(teachers[gcs_dir].vectors("a")["query"], arrays["query"][1], rtol=1e-6)
    assert not (tmp_path / "gs:").exists()
