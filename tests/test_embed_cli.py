import json
from pathlib import Path

import numpy as np
import pytest

from embeddinggemma import atomic
from embeddinggemma.checkpoint.loading import load_checkpoint, read_checkpoint_metadata
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.checkpoint.sentence_transformers import export_sentence_transformers
from embeddinggemma.cli import export as export_command
from embeddinggemma.cli.embed import main
from embeddinggemma.errors import InputError
from embeddinggemma.files import read_texts
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
    assert main(["--checkpoint", str(ckpt), "--input", str(bad), "--output", str(out)]) == 2
    assert "bad.jsonl:2: field 'text' is int" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(out), np.ones(3))

    bad.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    assert main(["--checkpoint", str(ckpt), "--input", str(bad), "--output", str(out)]) == 2
    assert "bad.jsonl:2: invalid UTF-8" in capsys.readouterr().err

    bad.write_text('{"text": "ok"}\n')
    assert main(["--checkpoint", str(tmp_path / "missing"), "--input", str(bad),
                 "--output", str(out)]) == 2
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
    assert main(["--checkpoint", str(ckpt), "--input", str(texts), "--output", str(out)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(out), np.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.npy"]


def test_rows_are_the_lines_split_at_newlines_only(tmp_path):
    """Form feeds, U+2028 and NEL are characters inside a line (str.splitlines would split there);
    a JSON-lines file written with ensure_ascii=False holds them raw; CRLF ends a line too."""
    texts = ["page\x0cbreak", "line\u2028separator", "next\x85line", "plain"]
    plain = tmp_path / "in.txt"
    plain.write_bytes("\r\n".join(texts).encode() + b"\r\n")
    assert read_texts(plain) == texts
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\r\n" for t in texts),
                     newline="")
    assert "\u2028" in jsonl.read_text(encoding="utf-8") and read_texts(jsonl) == texts


def test_a_truncated_safetensors_file_is_named_in_one_line(tmp_path, tiny_config, tiny_params,
                                                            tiny_tokenizer_path, capsys):
    st = export_sentence_transformers(tmp_path / "st", tiny_config, tiny_params, tiny_tokenizer_path,
                                      DEFAULT_PROMPTS)
    weights = st / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    for read in (load_checkpoint, read_checkpoint_metadata):
        with pytest.raises(InputError, match=str(weights)):
            read(st)
    texts = tmp_path / "in.txt"
    texts.write_text("one\n")
    assert main(["--checkpoint", str(st), "--input", str(texts), "--output", str(tmp_path / "o.npy")]) == 2
    assert export_command.main(["--checkpoint", str(st), "--out", str(tmp_path / "out")]) == 2
    for err in capsys.readouterr().err.splitlines():
        assert str(weights) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "st"]


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
