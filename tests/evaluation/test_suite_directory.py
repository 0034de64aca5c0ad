"""The suite builder writes only into an absent or empty directory or a suite of its own, through
every entry point (build_suite, ensure_suite, the script, `evaluate --suite`); nothing else is touched."""

import json
import sys
from pathlib import Path

import pytest

from embeddinggemma.cli.evaluate import main as evaluate
from embeddinggemma.errors import NotOurDirectoryError
from embeddinggemma.evaluation.build import MANIFEST, build_suite
from embeddinggemma.evaluation.tasks import ensure_suite, load_suite

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
from build_eval_suite import main as build_script  # noqa: E402

QUICK = ("Glib20BitextMining",)


@pytest.fixture
def users_directory(tmp_path):
    path = tmp_path / "photos"
    path.mkdir()
    (path / "holiday.jpg").write_bytes(b"\xff\xd8 irreplaceable")
    return path


def _untouched(path):
    assert sorted(p.name for p in path.iterdir()) == ["holiday.jpg"]
    assert (path / "holiday.jpg").read_bytes() == b"\xff\xd8 irreplaceable"
    assert sorted(p.name for p in path.parent.iterdir()) == ["photos"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_build_suite_refuses_a_users_directory(users_directory, overwrite):
    with pytest.raises(NotOurDirectoryError, match=rf"photos is not empty and holds no {MANIFEST}"):
        build_suite(users_directory, tasks=QUICK, overwrite=overwrite)
    _untouched(users_directory)


def test_ensure_suite_refuses_a_users_directory(users_directory):
    with pytest.raises(NotOurDirectoryError, match="photos is not empty"):
        ensure_suite(users_directory)
    _untouched(users_directory)


def test_evaluate_refuses_a_users_directory_as_suite(users_directory, tmp_path, capsys):
    args = ["--checkpoint", str(tmp_path), "--suite", str(users_directory), "--out", str(tmp_path / "o")]
    assert evaluate(args) == 2
    assert "photos is not empty" in capsys.readouterr().err
    _untouched(users_directory)


def test_the_script_refuses_a_users_directory_even_with_force(users_directory, capsys):
    assert build_script(["--out", str(users_directory), "--tasks", ",".join(QUICK), "--force"]) == 2
    assert "photos is not empty" in capsys.readouterr().err
    _untouched(users_directory)


def test_a_suite_is_rebuilt_only_when_asked(tmp_path):
    out = tmp_path / "suite"
    build_suite(out, tasks=QUICK)
    (out / "notes.txt").write_text("kept? no: the suite directory is the builder's own")
    with pytest.raises(FileExistsError, match="already holds an evaluation suite .*overwrite=True"):
        build_suite(out, tasks=QUICK)
    assert (out / "notes.txt").exists()
    build_suite(out, tasks=QUICK, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, f"{QUICK[0]}.json"])
    assert [t.name for t in load_suite(out)] == list(QUICK)


def test_a_corrupt_manifest_is_named(tmp_path, capsys):
    out = tmp_path / "suite"
    build_suite(out, tasks=QUICK)
    (out / MANIFEST).write_text('{"version": 1, "tasks": ')
    with pytest.raises(ValueError, match=rf"suite/{MANIFEST}: invalid JSON at line 1"):
        load_suite(out)
    assert build_script(["--out", str(out)]) == 2
    assert f"suite/{MANIFEST}: invalid JSON at line 1" in capsys.readouterr().err
    (out / MANIFEST).write_text(json.dumps({"version": 1}))
    with pytest.raises(ValueError, match=rf"suite/{MANIFEST}: .*'tasks'"):
        load_suite(out)


def test_an_empty_directory_is_built_in(tmp_path):
    (tmp_path / "empty").mkdir()
    build_suite(tmp_path / "empty", tasks=QUICK)
    assert [t.name for t in load_suite(tmp_path / "empty")] == list(QUICK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
