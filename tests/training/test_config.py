import json
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest

from embeddinggemma.training.config import base_config, validate_config, write_config

ROOT = Path(__file__).resolve().parents[2]


def _load(name, arg):
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
    return subprocess.run([sys.executable, "-m", "embeddinggemma.show_config", *args],
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
