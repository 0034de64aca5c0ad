"""Paths in a bucket (`gs://`, on the GCS emulator of tests/conftest.py): the path helper, the
atomic writes committed by their marker, the run lock's stance, and the commands that read and
write checkpoints (quantise, export, soup), compared with the same commands on local paths."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from etils import epath

from embeddinggemma.atomic import PARTIAL_MARK, atomic_directory, atomic_write, check_target, new_partial
from embeddinggemma.checkpoint.orbax_io import load_orbax_params, save_orbax
from embeddinggemma.cli.export import main as export_main
from embeddinggemma.cli.quantize import main as quantize_main
from embeddinggemma.cli.soup import main as soup_main
from embeddinggemma.errors import NotOurDirectoryError
from embeddinggemma.model.config import layer_pattern
from embeddinggemma.paths import absolute, as_path, files_under, is_url
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.training.run_lock import lock_workdir

MARKER = "manifest.json"


def test_as_path_keeps_a_urls_double_slash_and_leaves_local_paths_to_pathlib(tmp_path):
    url = as_path("gs://bucket/runs") / "cells" / "a"
    assert str(url) == "gs://bucket/runs/cells/a" and is_url(url) and str(absolute(url)) == str(url)
    assert str(url.parent) == "gs://bucket/runs/cells" and url.name == "a"
    local = as_path("~/runs")
    assert type(local) is type(Path()) and not is_url(local)
    assert absolute("~/runs") == Path("~/runs").expanduser().absolute()


def test_a_directory_in_a_bucket_is_committed_by_its_marker_written_last(gcs_dir):
    target = gcs_dir / "built"
    with atomic_directory(str(target), MARKER, "a test build") as partial:
        assert str(partial) == str(target)  # built in place: a bucket has no rename
        (partial / "data.txt").write_text("one")
        assert (target / PARTIAL_MARK).is_file() and not (target / MARKER).is_file()
        (partial / MARKER).write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["data.txt", MARKER]

    # A rebuild removes the old marker before anything else, so no reader takes it for finished.
    with atomic_directory(target, MARKER, "a test build") as partial:
        assert not (target / MARKER).is_file() and not (target / "data.txt").exists()
        (partial / "other.txt").write_text("two")
        (partial / MARKER).write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "other.txt"]


def test_a_failed_build_in_a_bucket_leaves_nothing_and_a_killed_one_is_taken_over(gcs_dir):
    target = gcs_dir / "built"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_directory(target, MARKER, "a test build") as partial:
            (partial / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert not target.exists()

    # A kill leaves the target marked partial and without its marker: ours for the next build.
    killed = new_partial(target, MARKER)
    (killed / "half.txt").write_text("half")
    assert str(check_target(target, MARKER, "a test build")) == str(target)
    with atomic_directory(target, MARKER, "a test build") as partial:
        (partial / MARKER).write_text("{}")
    assert [p.name for p in target.iterdir()] == [MARKER]


def test_a_users_prefix_in_a_bucket_is_refused_untouched(gcs_dir):
    users = gcs_dir / "users"
    (users / "notes.txt").write_text("mine")
    with pytest.raises(NotOurDirectoryError, match=f"{users} is not empty and holds no {MARKER}"):
        with atomic_directory(users, MARKER, "a test build"):
            raise AssertionError("never reached")
    assert [p.name for p in users.iterdir()] == ["notes.txt"]
    with pytest.raises(NotOurDirectoryError, match="is not a directory"):
        check_target(users / "notes.txt", MARKER, "a test build")


def test_atomic_write_to_a_bucket_writes_the_object_whole(gcs_dir):
    path = gcs_dir / "sub" / "file.json"
    atomic_write(str(path), json.dumps({"a": 1}))
    atomic_write(path, b'{"a": 2}')
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["file.json"]  # no temporary object left


def test_a_work_directory_in_a_bucket_takes_no_lock(gcs_dir):
    # Object storage has no flock (training/run_lock.py): a second holder is not refused there.
    first, second = lock_workdir(str(gcs_dir)), lock_workdir(gcs_dir)
    first.record_holder()
    assert json.loads((gcs_dir / "run.lock").read_text())["pid"] > 0
    first.release(), second.release()


def _params(directory) -> dict:
    return jax.device_get(load_orbax_params(directory))


def assert_same_tree(a: dict, b: dict) -> None:
    flat_a, flat_b = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, x), (_, y) in zip(flat_a, flat_b, strict=True):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


@pytest.fixture
def checkpoints(tmp_path, gcs_dir, tiny_config, tiny_params, tiny_tokenizer_path):
    """The tiny model saved twice, locally and in the bucket, and a second, perturbed one."""
    other = jax.tree.map(lambda x: x + 0.01, tiny_params)
    saved = {}
    for where, root in (("local", tmp_path), ("bucket", gcs_dir)):
        saved[where] = save_orbax(root / "a", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
        save_orbax(root / "b", tiny_config, other, tiny_tokenizer_path, DEFAULT_PROMPTS)
    assert is_url(saved["bucket"]) and str(saved["bucket"]).startswith("gs://")
    return {"local": tmp_path, "bucket": gcs_dir}


@pytest.mark.slow  # four checkpoints saved, three commands twice: about 15 s
def test_quantise_export_and_soup_read_and_write_a_bucket_as_they_do_local_paths(checkpoints, capsys):
    outputs = {}
    for where, root in checkpoints.items():
        r = str(root)
        assert quantize_main(["--checkpoint", f"{r}/a", "--scheme", "int8-block", "--out", f"{r}/q"]) == 0
        assert export_main(["--checkpoint", f"{r}/a", "--format", "orbax", "--out", f"{r}/exported"]) == 0
        assert soup_main(["--checkpoints", f"{r}/a", f"{r}/b", "--out", f"{r}/soup"]) == 0
        outputs[where] = {name: as_path(f"{r}/{name}") for name in ("q", "exported", "soup")}
    capsys.readouterr()
    local, bucket = outputs["local"], outputs["bucket"]
    for name in ("q", "exported", "soup"):
        assert_same_tree(_params(bucket[name]), _params(local[name]))
        assert sorted(p.name for p in bucket[name].iterdir()) == sorted(p.name for p in local[name].iterdir())
        tokenizer = bucket[name] / "tokenizer.model"
        assert tokenizer.read_bytes() == (local[name] / "tokenizer.model").read_bytes()
    assert "_CHECKPOINT_METADATA" in {f.name for f in files_under(bucket["q"] / "params")}
    ingredients = json.loads((bucket["soup"] / "soup.json").read_text())["ingredients"]
    assert [i["path"] for i in ingredients] == [f"{checkpoints['bucket']}/a", f"{checkpoints['bucket']}/b"]

    # A bucket's checkpoint exported to a local sentence-transformers directory, as a local one is.
    for where in ("local", "bucket"):
        assert export_main(["--checkpoint", str(outputs[where]["soup"]), "--out",
                            str(checkpoints["local"] / f"st-{where}")]) == 0
    st = {w: checkpoints["local"] / f"st-{w}" for w in ("local", "bucket")}
    weights = [(st[w] / "model.safetensors").read_bytes() for w in ("local", "bucket")]
    assert weights[0] == weights[1]
    assert isinstance(outputs["bucket"]["soup"], epath.Path)


def test_embed_reads_its_checkpoint_and_input_from_a_bucket_and_writes_its_output_there(
        tmp_path, gcs_dir, tiny_config, tiny_params, tiny_tokenizer_path, capsys):
    from embeddinggemma.cli.embed import main as embed_main

    arrays = {}
    for where, root in (("local", tmp_path), ("bucket", gcs_dir)):
        save_orbax(root / "tiny", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
        (root / "texts.txt").write_text("a first text\nand a second one\n")
        assert embed_main(["--checkpoint", f"{root}/tiny", "--input", f"{root}/texts.txt", "--output",
                           f"{root}/out.npy", "--max-length", "16"]) == 0
        with (root / "out.npy").open("rb") as stream:
            arrays[where] = np.load(stream)
    capsys.readouterr()
    assert arrays["local"].shape[0] == 2
    np.testing.assert_array_equal(arrays["bucket"], arrays["local"])


@pytest.mark.slow  # three formats written twice: about 10 s
def test_sentence_transformers_gguf_and_onnx_exports_to_a_bucket_hold_the_local_exports_files(
        tmp_path, gcs_dir, tiny_config, tiny_params, tiny_tokenizer_path, capsys):
    local, bucket, source = tmp_path, gcs_dir, str(tmp_path / "a")
    # The tiny model as llama.cpp's GGUF assumes it (tests/checkpoint/test_gguf_export.py).
    t = tiny_config.transformer
    config = tiny_config.replace(layer_types=layer_pattern(t.num_layers, 5),
                                 query_pre_attn_scalar=float(t.head_dim))
    save_orbax(source, config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
    formats = {"sentence-transformers": "st", "gguf": "m.gguf", "onnx": "onnx"}
    for fmt, name in formats.items():
        for root in (local, bucket):
            assert export_main(["--checkpoint", source, "--format", fmt, "--out", f"{root}/{name}"]) == 0
        if fmt == "gguf":
            assert (bucket / name).read_bytes() == (local / name).read_bytes()
            continue
        got = {str(f)[len(str(bucket / name)) + 1:]: f.read_bytes() for f in files_under(bucket / name)}
        expected = {str(f.relative_to(local / name)): f.read_bytes() for f in files_under(local / name)}
        assert got == expected
    capsys.readouterr()

    # An earlier export of the format is replaced with --overwrite; somebody else's is refused untouched.
    assert export_main(["--checkpoint", source, "--out", f"{bucket}/st"]) == 2
    assert "already holds" in capsys.readouterr().err
    assert export_main(["--checkpoint", source, "--out", f"{bucket}/st", "--overwrite"]) == 0
    assert not (bucket / "st" / PARTIAL_MARK).exists()
    (bucket / "theirs" / "notes.txt").write_text("mine")
    (bucket / "their.gguf").write_bytes(b"GGUF not ours")
    for fmt, name in (("sentence-transformers", "theirs"), ("onnx", "theirs"), ("gguf", "their.gguf")):
        capsys.readouterr()
        assert export_main(["--checkpoint", source, "--format", fmt, "--out", f"{bucket}/{name}",
                            "--overwrite"]) == 2
        assert f"{bucket}/{name}" in capsys.readouterr().err
    assert [p.name for p in (bucket / "theirs").iterdir()] == ["notes.txt"]
    assert (bucket / "their.gguf").read_bytes() == b"GGUF not ours"
    assert export_main(["--checkpoint", source, "--format", "gguf", "--out", f"{bucket}/m.gguf",
                        "--overwrite"]) == 0
