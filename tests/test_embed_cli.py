import json
from pathlib import Path

import numpy as np
import pytest

from embeddinggemma import atomic
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.cli.embed import main
from embeddinggemma.prompts import DEFAULT_PROMPTS

GOLDEN = Path(__file__).parent / "golden" / "embeddinggemma_300m"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_config, tiny_params, tiny_tokenizer_path):
    return save_orbax(tmp_path_factory.mktemp("cli") / "ckpt", tiny_config, tiny_params,
                      tiny_tokenizer_path, DEFAULT_PROMPTS)


def test_jsonl_and_plain_text_inputs_give_the_same_unit_vectors(ckpt, tmp_path):
    texts = ["first text", "a second, longer text about licenses"]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    plain = tmp_path / "in.txt"
    plain.write_text("\n".join(texts) + "\n")
    outputs = []
    for path in (jsonl, plain):
        out = tmp_path / f"{path.stem}{path.suffix}.npy"
        assert main(["--checkpoint", str(ckpt), "--input", str(path), "--output", str(out),
                     "--prompt-name", "query", "--dim", "32"]) == 0
        outputs.append(np.load(out))
    assert outputs[0].shape == (2, 32) and outputs[0].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(outputs[0], axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not np.allclose(outputs[0][0], outputs[0][1])


def test_errors_name_the_line_and_keep_existing_output(ckpt, tmp_path, capsys):
    out = tmp_path / "out.npy"
    np.save(out, np.ones(3))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": 5}\n')
    assert main(["--checkpoint", str(ckpt), "--input", str(bad), "--output", str(out)]) == 1
    assert "bad.jsonl:2: field 'text' is int" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(out), np.ones(3))

    bad.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    assert main(["--checkpoint", str(ckpt), "--input", str(bad), "--output", str(out)]) == 1
    assert "bad.jsonl:2: invalid UTF-8" in capsys.readouterr().err

    bad.write_text('{"text": "ok"}\n')
    assert main(["--checkpoint", str(tmp_path / "missing"), "--input", str(bad),
                 "--output", str(out)]) == 1
    assert "Checkpoint directory not found" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(out), np.ones(3))


def test_empty_input_gives_empty_matrix(ckpt, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "empty.npy"
    assert main(["--checkpoint", str(ckpt), "--input", str(empty), "--output", str(out)]) == 0
    assert np.load(out).shape == (0, 64)


def _save_half_then_fail(file, array):
    file.write(b"\x93NUMPY half an array")
    raise OSError(28, "No space left on device")


def _fail_to_rename(source, target):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("where, replacement", [(atomic.np, ("save", _save_half_then_fail)),
                                                (atomic.os, ("replace", _fail_to_rename))])
def test_a_failed_write_keeps_the_old_output_and_leaves_no_partial_file(ckpt, tmp_path, monkeypatch, capsys,
                                                                        where, replacement):
    out = tmp_path / "out.npy"
    np.save(out, np.ones(3))
    texts = tmp_path / "in.txt"
    texts.write_text("one\ntwo\n")
    monkeypatch.setattr(where, *replacement)
    assert main(["--checkpoint", str(ckpt), "--input", str(texts), "--output", str(out)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(out), np.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.npy"]


@pytest.mark.release
def test_the_command_gives_the_golden_vectors(release_dir, tmp_path):
    """The released model through the command line equals sentence-transformers (make_golden.py)
    on the golden records with a named prompt, embedded together in one file."""
    records = json.loads(GOLDEN.with_suffix(".json").read_text())["records"]
    reference = np.load(GOLDEN.with_suffix(".npz"))["embeddings"]
    picked = [i for i, r in enumerate(records)
              if r["prompt_name"] == "query" and r["title"] is None and len(r["token_ids"]) < 512]
    assert len(picked) >= 3
    texts = tmp_path / "in.jsonl"
    texts.write_text("".join(json.dumps({"text": records[i]["text"]}) + "\n" for i in picked))
    out = tmp_path / "out.npy"
    assert main(["--checkpoint", str(release_dir), "--input", str(texts), "--output", str(out),
                 "--prompt-name", "query", "--batch-size", "2", "--max-length", "512"]) == 0
    cosine = (np.load(out) * reference[picked]).sum(-1)
    assert cosine.min() > 0.9999, cosine
