"""`python -m embeddinggemma quantize`: a checkpoint stored as codes and scales, loaded back by
`Embedder.load` to exactly the fake-quantised weights, and bad input named."""

import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from embeddinggemma.api import Embedder
from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.cli.quantize import main
from embeddinggemma.model.layout import embedder_layout
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.quantization import quantize_params


@pytest.fixture
def ckpt(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    return save_orbax(tmp_path / "float", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)


def test_a_quantised_checkpoint_holds_codes_and_loads_the_quantised_weights(ckpt, tmp_path, tiny_config,
                                                                           tiny_params):
    out = tmp_path / "int4"
    assert main(["--checkpoint", str(ckpt), "--scheme", "int4-block", "--out", str(out)]) == 0
    assert json.loads((out / "embeddinggemma.json").read_text())["quantization"] == "int4-block"
    stored = ocp.StandardCheckpointer().restore(out / "params")
    table = stored["transformer"]["embedding"]
    assert set(table) == {"codes", "scales"} and np.asarray(table["codes"]).dtype == np.uint8
    assert np.asarray(table["scales"]).dtype == np.float16
    expected = quantize_params(tiny_params, "int4-block", embedder_layout(tiny_config))
    jax.tree.map(np.testing.assert_array_equal, load_checkpoint(out).params, jax.device_get(expected))
    texts = ["a quantised model", "still embeds text"]
    float_model = Embedder.load(ckpt)
    quantised_model = Embedder(tiny_config, expected, float_model.tokenizer.model_path, float_model.prompts)
    want = quantised_model.encode(texts)
    np.testing.assert_allclose(Embedder.load(out).encode(texts), want, rtol=1e-5, atol=1e-6)


def test_bad_input_is_named_and_nothing_foreign_is_touched(ckpt, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["--checkpoint", str(ckpt), "--scheme", "mixed", "--out", str(foreign)]) == 2
    assert "refused" in capsys.readouterr().err and (foreign / "notes.txt").read_text() == "mine"
    assert main(["--checkpoint", str(tmp_path / "absent"), "--scheme", "mixed", "--out",
                 str(tmp_path / "out")]) == 2
    assert "Checkpoint directory not found" in capsys.readouterr().err
    out = tmp_path / "mixed"
    assert main(["--checkpoint", str(ckpt), "--scheme", "mixed", "--out", str(out)]) == 0
    metadata = json.loads((out / "embeddinggemma.json").read_text())
    (out / "embeddinggemma.json").write_text(json.dumps({**metadata, "quantization": "int3"}))
    with pytest.raises(ValueError, match=r"embeddinggemma.json: field 'quantization' is 'int3'"):
        load_checkpoint(out)


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_quantize_never_writes_onto_around_or_into_its_input(ckpt, tmp_path, capsys, where):
    before = {p: p.read_bytes() for p in ckpt.rglob("*") if p.is_file()}
    out = {"same": ckpt / ".." / ckpt.name, "inside": ckpt / "quantised", "around": tmp_path}[where]
    assert main(["--checkpoint", str(ckpt), "--scheme", "int8-block", "--out", str(out), "--force"]) == 2
    err = capsys.readouterr().err
    assert str(ckpt) in err and str(out.resolve()) in err
    assert {p: p.read_bytes() for p in ckpt.rglob("*") if p.is_file()} == before


def test_an_already_quantised_checkpoint_is_refused_naming_its_scheme(ckpt, tmp_path, capsys):
    int4 = tmp_path / "int4"
    assert main(["--checkpoint", str(ckpt), "--scheme", "int4-block", "--out", str(int4)]) == 0
    capsys.readouterr()
    out = tmp_path / "int8"
    assert main(["--checkpoint", str(int4), "--scheme", "int8-block", "--out", str(out)]) == 2
    assert "int4-block" in capsys.readouterr().err and not out.exists()
