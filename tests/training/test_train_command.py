"""`python -m embeddinggemma train`'s exit statuses: 2 with a message for the config or the inputs,
a traceback for anything else (a JAX error is a bug to see, not a bad config)."""

from pathlib import Path

import pytest

import embeddinggemma.training.loop as loop
from embeddinggemma.cli.train import main
from embeddinggemma.errors import ConfigError

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "finetune.py") + ":tiny"


def _raise(error):
    def train(config, workdir, **stage):
        raise error

    return train


def test_a_value_error_from_inside_jax_keeps_its_traceback(tmp_path, monkeypatch):
    internal = ValueError("Incompatible shapes for broadcasting: shapes=[(8, 64), (8, 96)]")
    monkeypatch.setattr(loop, "train", _raise(internal))
    with pytest.raises(ValueError) as raised:
        main(["--config", CONFIG, "--workdir", str(tmp_path / "run")])
    assert raised.value is internal


def test_a_config_error_is_exit_status_2_with_its_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loop, "train", _raise(ConfigError("loss.teacher_dim=0 (...) but ... 96 wide")))
    assert main(["--config", CONFIG, "--workdir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: loss.teacher_dim=0") and "Traceback" not in err


def test_unknown_fields_and_missing_flags_are_exit_status_2(tmp_path, capsys):
    assert main(["--config", CONFIG, "--workdir", str(tmp_path), "--config.train.bathc_size=8"]) == 2
    assert "unknown config field 'bathc_size' (did you mean 'batch_size'?)" in capsys.readouterr().err
    assert main(["--config", CONFIG]) == 2
    assert "--workdir is required" in capsys.readouterr().err
    assert main(["--workdir", str(tmp_path)]) == 2
    assert "--config is required" in capsys.readouterr().err


def test_a_workdir_that_is_not_a_run_is_refused_and_left_as_it_was(tmp_path, capsys):
    foreign = tmp_path / "thesis"
    (foreign / "chapters").mkdir(parents=True)
    (foreign / "chapters" / "one.tex").write_text("\\chapter{One}")
    (foreign / "notes.txt").write_text("do not lose")
    before = {p: p.read_bytes() for p in foreign.rglob("*") if p.is_file()}
    assert main(["--config", CONFIG, "--workdir", str(foreign), "--config.data.corpus=/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert f"{foreign} is not empty and holds no config.json" in err
    assert {p: p.read_bytes() for p in foreign.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]
