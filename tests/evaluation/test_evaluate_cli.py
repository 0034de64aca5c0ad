"""`python -m embeddinggemma evaluate`: checkpoints x dims x quantisation, reports, cache, bad input."""

import json

import pytest

from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.cli.evaluate import main
from embeddinggemma.evaluation.encoders import EmbedderEncoder
from embeddinggemma.prompts import DEFAULT_PROMPTS

TASKS = "Glib20PairClassification,ManPageRetrieval"


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    return save_orbax(tmp_path / "tiny", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)


def test_scores_every_checkpoint_dimension_and_scheme_and_reuses_the_cache(
    tmp_path, suite_dir, tiny_checkpoint, monkeypatch, capsys
):
    def args(out, quant="int8-block"):
        return [
            "--checkpoint",
            str(tiny_checkpoint),
            "--dims",
            "64,16",
            "--quant",
            quant,
            "--tasks",
            TASKS,
            "--suite",
            str(suite_dir),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--max-length",
            "64",
            "--out",
            str(tmp_path / out),
        ]

    assert main(args("out")) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert sorted((r["model"], r["task"], r["dim"]) for r in results) == sorted(
        (m, t, d) for m in ("tiny", "tiny@int8-block") for t in TASKS.split(",") for d in (64, 16)
    )
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| model | dim | Glib20PairClassification | ManPageRetrieval | mean(task) | mean(type) |" in table
    assert (tmp_path / "out" / "score_vs_dim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| tiny@int8-block | 16 |" in capsys.readouterr().out

    # A second run embeds nothing: everything comes from the cache.
    def refuse(*_):
        raise AssertionError("embedded again despite the cache")

    monkeypatch.setattr(EmbedderEncoder, "encode", refuse)
    assert main(args("again")) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())["results"]
    assert again == results
    # Another scheme is another model: not served from the cache.
    with pytest.raises(AssertionError, match="embedded again"):
        main(args("mixed", quant="mixed"))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--quant", "int3"], "unknown --quant ['int3']"),
        (["--tasks", "Nope"], "Unknown tasks ['Nope']"),
        (["--dims", "128"], "dim 128 is outside 1..64"),
    ],
)
def test_bad_input_is_named(tmp_path, suite_dir, tiny_checkpoint, capsys, extra, message):
    args = [
        "--checkpoint",
        str(tiny_checkpoint),
        "--suite",
        str(suite_dir),
        "--tasks",
        "Glib20PairClassification",
        "--out",
        str(tmp_path / "out"),
        "--no-cache",
        "--max-length",
        "32",
        *extra,
    ]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_missing_checkpoint_is_named(tmp_path, suite_dir, capsys):
    assert (
        main(["--checkpoint", str(tmp_path / "nowhere"), "--suite", str(suite_dir), "--out", str(tmp_path)])
        == 2
    )
    assert "checkpoint directory not found" in capsys.readouterr().err
