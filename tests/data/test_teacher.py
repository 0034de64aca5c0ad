"""The teacher-embeddings directory: written whole, only where it is ours, read back with errors that
name the file."""

import json

import numpy as np
import pytest

from embeddinggemma.data.teacher import INFO_FILE, TeacherEmbeddings, write_teacher_embeddings
from embeddinggemma.errors import NotOurDirectoryError

IDS = ["b", "a", "c"]
VECTORS = {"query": np.arange(6, dtype=np.float32).reshape(3, 2), "positive": np.ones((3, 2), np.float32)}


def test_written_sorted_by_id_and_read_back(tmp_path):
    directory = write_teacher_embeddings(tmp_path / "t", IDS, VECTORS, {"dim": 2})
    teacher = TeacherEmbeddings(directory)
    assert teacher.roles == ("query", "positive") and teacher.info == {"dim": 2}
    np.testing.assert_array_equal(teacher.vectors("b")["query"], [0.0, 1.0])
    assert np.load(directory / "ids.npy").tolist() == ["a", "b", "c"] and teacher.vectors("z") is None


def test_a_directory_of_somebody_else_is_refused_and_kept(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "notes.txt").write_text("mine")
    with pytest.raises(NotOurDirectoryError, match=f"{tmp_path / 't'} is not empty and holds no info.json"):
        write_teacher_embeddings(tmp_path / "t", IDS, VECTORS, {"dim": 2})
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["notes.txt"]


def test_rewriting_replaces_the_old_embeddings_whole(tmp_path):
    write_teacher_embeddings(tmp_path / "t", IDS, {**VECTORS, "negative": VECTORS["positive"]}, {"dim": 2})
    write_teacher_embeddings(tmp_path / "t", IDS[:2], {k: v[:2] for k, v in VECTORS.items()}, {"dim": 2})
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["ids.npy", INFO_FILE, "positive.npy",
                                                                  "query.npy"]
    assert [p.name for p in tmp_path.iterdir()] == ["t"]  # no partial left beside it
    with pytest.raises(ValueError, match="query embeddings have 3 rows for 2 ids"):
        write_teacher_embeddings(tmp_path / "t", IDS[:2], VECTORS, {"dim": 2})
    assert TeacherEmbeddings(tmp_path / "t").vectors("c") is None  # the failed write changed nothing


def test_a_corrupt_info_file_is_named(tmp_path):
    directory = write_teacher_embeddings(tmp_path / "t", IDS, VECTORS, {"dim": 2})
    (directory / INFO_FILE).write_text('{"dim": 2,')
    with pytest.raises(ValueError, match=f"{directory / INFO_FILE}: invalid JSON at line 1"):
        TeacherEmbeddings(directory)
    (directory / INFO_FILE).write_text(json.dumps([2]))
    with pytest.raises(ValueError, match=f"{directory / INFO_FILE}: not a JSON object"):
        TeacherEmbeddings(directory)
