import json
import subprocess
import sys
from pathlib import Path

import jax
import ml_collections
import pytest

from embeddinggemma.errors import ConfigError, NotOurDirectoryError
from embeddinggemma.training.config import base_config, sized_config, validate_config, write_config
from embeddinggemma.training.config_files import load_config

ROOT = Path(__file__).resolve().parents[2]


def _load(name, arg):
    """The config file run by hand: the reference that load_config is compared with."""
    namespace = {}
    exec(compile((ROOT / "configs" / name).read_text(), name, "exec"), namespace)
    return namespace["get_config"](arg)


@pytest.mark.parametrize("name", ["prefinetune.py", "finetune.py"])
@pytest.mark.parametrize("arg", ["tiny", "300m"])
def test_every_config_variant_validates(name, arg):
    config = _load(name, arg)
    validate_config(config)
    assert config.train.hard_negatives == (name == "finetune.py")
    assert config.model.preset == ("tiny" if arg == "tiny" else "embeddinggemma_300m")


def test_prefinetune_batches_are_larger_than_finetune():
    assert _load("prefinetune.py", "300m").train.batch_size > _load("finetune.py", "300m").train.batch_size


def test_base_config_is_locked():
    config = base_config()
    with pytest.raises(AttributeError):
        config.train.bathc_size = 3


def _show(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "embeddinggemma", "show_config", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_command_line_overrides_and_writes_resolved_config(tmp_path):
    done = _show("--config", "configs/finetune.py:tiny", "--config.optimizer.learning_rate=0.003",
                 "--config.loss.matryoshka_dims=(64,16)", "--workdir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["optimizer"]["learning_rate"] == 0.003
    assert written["loss"]["matryoshka_dims"] == [64, 16]
    assert json.loads(done.stdout) == written


def test_unknown_keys_are_named(tmp_path):
    done = _show("--config", "configs/finetune.py:tiny", "--config.optimizer.learning_rat=1")
    assert done.returncode == 2
    assert "unknown config field 'learning_rat'" in done.stderr and "learning_rate" in done.stderr
    typo = tmp_path / "typo.py"
    typo.write_text("from embeddinggemma.training.config import base_config\n\n"
                    "def get_config(arg=None):\n    c = base_config()\n    c.train.bathc_size = 8\n"
                    "    return c\n")
    done = _show("--config", str(typo))
    assert done.returncode == 2 and "'bathc_size'" in done.stderr


def test_invalid_values_are_named():
    done = _show("--config", "configs/finetune.py:tiny", "--config.loss.matryoshka_dims=(128,64)")
    assert done.returncode == 2 and "matryoshka_dims [128]" in done.stderr
    done = _show("--config", "configs/finetune.py:tiny", "--config.train.grad_cache_chunk_size=5")
    assert done.returncode == 2 and "not a multiple of train.grad_cache_chunk_size=5" in done.stderr


def test_write_config_round_trips(tmp_path):
    config = base_config()
    path = write_config(config, tmp_path)
    again = ml_collections.ConfigDict(json.loads(path.read_text()))
    assert again.optimizer.learning_rate == config.optimizer.learning_rate
    assert tuple(again.mesh.axes) == tuple(config.mesh.axes)


@pytest.mark.parametrize("spec", ["finetune:tiny", "finetune.py:tiny", "configs/finetune.py:tiny",
                                  str(ROOT / "configs" / "finetune.py") + ":tiny"])
def test_load_config_finds_a_config_from_any_working_directory(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(spec).to_dict() == _load("finetune.py", "tiny").to_dict()


def test_load_config_applies_overrides_given_as_strings_or_a_mapping():
    want = _load("prefinetune.py", "300m")
    want.optimizer.learning_rate = 3e-4
    want.loss.matryoshka_dims = (64, 16)
    want.train.hard_negatives = True
    strings = ["optimizer.learning_rate=3e-4", "loss.matryoshka_dims=(64,16)", "train.hard_negatives=true"]
    mapping = {"optimizer.learning_rate": 3e-4, "loss.matryoshka_dims": (64, 16),
               "train.hard_negatives": True}
    from_strings = load_config("prefinetune:300m", strings)
    from_mapping = load_config("prefinetune:300m", mapping)
    assert from_strings.to_dict() == from_mapping.to_dict() == want.to_dict()
    assert from_mapping.is_locked


@pytest.mark.parametrize("overrides", [["optimizer.learning_rat=1"], {"optimizer.learning_rat": 1.0}])
def test_load_config_names_an_unknown_field_as_the_command_line_does(overrides):
    with pytest.raises(ConfigError) as error:
        load_config("finetune:tiny", overrides)
    assert str(error.value) == "unknown config field 'learning_rat' (did you mean 'learning_rate'?)"


def test_load_config_names_a_missing_file_and_the_configs_available(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"config file 'finetun' not found .*finetune, prefinetune"):
        load_config("finetun:tiny")


def test_log_every_steps_below_one_is_named():
    config = sized_config("tiny")
    validate_config(config)
    config.train.log_every_steps = 0
    with pytest.raises(ConfigError, match=r"train.log_every_steps=0 must be >= 1"):
        validate_config(config)


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_write_config_refuses_a_directory_that_is_not_a_run_and_changes_nothing(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8 a photo")
    before = _tree(foreign)
    with pytest.raises(NotOurDirectoryError, match=r"photos is not empty and holds no config.json"):
        write_config(base_config(), foreign)
    assert _tree(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no partial left beside it


def test_write_config_rewrites_the_config_of_a_run_directory(tmp_path):
    config = base_config()
    write_config(config, tmp_path / "run")
    (tmp_path / "run" / "metrics.jsonl").write_text("{}\n")
    config.seed = 7
    write_config(config, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 7


@pytest.mark.parametrize("field, value", [("train.batch_size", 0), ("train.batch_size", -4),
                                          ("optimizer.learning_rate", -1e-4)])
def test_a_batch_size_below_one_and_a_negative_learning_rate_are_named(field, value):
    config = sized_config("tiny")
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ConfigError, match=rf"{field}={value}"):
        validate_config(config)


def test_a_batch_the_mesh_cannot_split_is_refused_before_anything_is_written(tmp_path):
    """8 simulated devices (tests/conftest.py): the batch axes data x fsdp hold 8 or 4 x 2 shards."""
    from embeddinggemma.training.loop import train

    assert jax.device_count() == 8
    for shape in ((-1, 1, 1), (-1, 2, 1), (2, 2, 2)):
        config = sized_config("tiny")
        config.train.batch_size = 12 if shape != (2, 2, 2) else 6
        config.mesh.shape = shape
        with pytest.raises(ConfigError, match=r"train.batch_size=(12|6) .*mesh.shape"):
            train(config, tmp_path / "run")
        assert not (tmp_path / "run").exists()


@pytest.mark.slow  # two command processes, ~8 s
def test_show_config_refuses_a_negative_batch_and_a_closed_pipe_is_no_traceback():
    done = _show("--config", "configs/finetune.py:tiny", "--config.train.batch_size=-1")
    assert done.returncode == 2 and "train.batch_size=-1" in done.stderr
    # `show_config | head`: the reader has gone before the config is printed.
    process = subprocess.Popen([sys.executable, "-m", "embeddinggemma", "show_config", "--config",
                                "configs/finetune.py:tiny"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0 and "Traceback" not in stderr and "Error" not in stderr, stderr


@pytest.mark.parametrize("spec", ["finetune:tiny", "ul2_adapt:tiny"])
def test_a_run_written_before_configs_named_their_stage_resumes_under_the_same_config(tmp_path, spec):
    import json

    from embeddinggemma.training.config import CONFIG_FILE, check_resume_config
    from embeddinggemma.training.config_files import load_config

    config = load_config(spec)
    old = json.loads(config.to_json_best_effort())
    del old["stage"]
    if "ul2" in old:  # adaptation configs carried the embedding loss section, unread
        old["loss"] = json.loads(load_config("finetune:tiny").loss.to_json_best_effort())
    (tmp_path / CONFIG_FILE).write_text(json.dumps(old))
    check_resume_config(config, tmp_path)
    config.optimizer.learning_rate *= 2
    with pytest.raises(ConfigError, match="optimizer.learning_rate"):
        check_resume_config(config, tmp_path)
