import json

import numpy as np
import pytest

from embeddinggemma import Embedder
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.embed import main
from embeddinggemma.prompts import DEFAULT_PROMPTS


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_config, tiny_params, tiny_tokenizer_path):
    return save_orbax(tmp_path_factory.mktemp("cli") / "ckpt", tiny_config, tiny_params,
                      tiny_tokenizer_path, DEFAULT_PROMPTS)


def test_jsonl_and_plain_text_inputs(ckpt, tmp_path):
    texts = ["first text", "a second, longer text about licenses"]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    plain = tmp_path / "in.txt"
    plain.write_text("\n".join(texts) + "\n")
    for path in (jsonl, plain):
        out = tmp_path / f"{path.stem}{path.suffix}.npy"
        assert main(["--checkpoint", str(ckpt), "--input", str(path), "--output", str(out),
                     "--prompt-name", "query", "--dim", "32"]) == 0
        want = Embedder.load(ckpt).encode(texts, prompt_name="query", dim=32)
        np.testing.assert_allclose(np.load(out), want, atol=1e-6)


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
