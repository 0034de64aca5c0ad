import os

import pytest

from embeddinggemma.atomic import PARTIAL_MARK, atomic_directory, atomic_write, new_partial
from embeddinggemma.errors import NotOurDirectoryError

MARKER = "manifest.json"


def _build(target, files):
    with atomic_directory(target, MARKER, "a test build") as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text)


def test_builds_into_absent_and_empty_directories(tmp_path):
    _build(tmp_path / "new", {MARKER: "1"})
    (tmp_path / "empty").mkdir()
    _build(tmp_path / "empty", {MARKER: "2"})
    assert (tmp_path / "new" / MARKER).read_text() == "1"
    assert (tmp_path / "empty" / MARKER).read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "new"]  # no partial left


def test_replaces_its_own_directory(tmp_path):
    _build(tmp_path / "out", {MARKER: "1", "old.txt": "x"})
    _build(tmp_path / "out", {MARKER: "2"})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MARKER]
    assert (tmp_path / "out" / MARKER).read_text() == "2"


def test_refuses_a_users_directory_and_keeps_it(tmp_path):
    user = tmp_path / "notes"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    ran = []
    with pytest.raises(NotOurDirectoryError, match=f"{user}.*holds no {MARKER}"):
        with atomic_directory(user, MARKER, "a test build"):
            ran.append(True)
    assert not ran
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(NotOurDirectoryError, match="not a directory"):
        _build(tmp_path / "f", {MARKER: "1"})
    assert (tmp_path / "f").read_text() == "mine"


def test_failure_leaves_the_previous_directory(tmp_path):
    _build(tmp_path / "out", {MARKER: "1"})
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "out", MARKER, "a test build") as tmp:
            (tmp / MARKER).write_text("2")
            raise RuntimeError("boom")
    assert (tmp_path / "out" / MARKER).read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_missing_marker_is_an_error_and_nothing_is_installed(tmp_path):
    with pytest.raises(FileNotFoundError, match=MARKER):
        _build(tmp_path / "out", {"other": "x"})
    assert list(tmp_path.iterdir()) == []


def test_only_marked_stale_partials_are_removed(tmp_path):
    target = tmp_path / "out"
    killed = new_partial(target)  # what a killed build leaves
    users = tmp_path / ".out.partial-mine"
    users.mkdir()
    (users / "keep.txt").write_text("mine")
    _build(target, {MARKER: "1"})
    assert not killed.exists()
    assert (users / "keep.txt").read_text() == "mine"
    assert not (target / PARTIAL_MARK).exists()


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write(path, "one")
    atomic_write(path, b"two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["a.txt"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o755), (0o027, 0o750)])
def test_a_built_directory_gets_the_mode_the_umask_gives(tmp_path, umask, mode):
    """mkdtemp makes 0700 directories; what a builder installs is for whoever the umask lets in."""
    old = os.umask(umask)
    try:
        _build(tmp_path / "out", {MARKER: "1"})
        _build(tmp_path / "out", {MARKER: "2"})  # the replacing path too
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == mode
