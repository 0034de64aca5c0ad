"""Experiment config files: `load_config("configs/finetune.py:tiny", overrides)`.

One loader for the train command, show_config, the demo, the tests and the experiments runner, so
a config means the same everywhere. A spec is `FILE[:ARG]`: FILE is a path (absolute, or relative
to the working directory) or, when no such file exists, a file of this checkout's `configs/`
folder, named as `finetune`, `finetune.py` or `configs/finetune.py`. `configs/` sits beside the
package (setup.py installs only `embeddinggemma/`), so it is found from an editable install or a
checkout on PYTHONPATH; from a non-editable install pass a path. Overrides are set exactly as the
command line's `--config.a.b=c` (same parsing, same errors).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import ml_collections
from absl import flags
from ml_collections import config_flags

from embeddinggemma.errors import ConfigError

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"
OVERRIDE_PREFIX = "--config."  # --config.optimizer.learning_rate=3e-4 on a command line


def config_file(name: str) -> Path:
    """The config file that `name` (a path, or a name in CONFIGS_DIR) designates.

    Raises:
      ConfigError naming the places looked in and the configs available.
    """
    path = Path(name).expanduser()
    if path.is_file():
        return path
    candidates = [CONFIGS_DIR.parent / path, CONFIGS_DIR / path.name, CONFIGS_DIR / f"{path.name}.py"]
    for candidate in candidates if not path.is_absolute() else []:
        if candidate.is_file():
            return candidate
    available = sorted(p.stem for p in CONFIGS_DIR.glob("*.py")) if CONFIGS_DIR.is_dir() else []
    raise ConfigError(f"config file {name!r} not found (looked in the working directory and in "
                      f"{CONFIGS_DIR}, which has: {', '.join(available) or 'nothing'}).")


def load_config(spec: str, overrides: Mapping[str, object] | Sequence[str] = ()
                ) -> ml_collections.ConfigDict:
    """The locked config of `spec` ("FILE[:ARG]") with `overrides` applied.

    Args:
      spec: e.g. "configs/finetune.py:tiny" or "finetune:tiny"; ARG goes to `get_config`.
      overrides: {"optimizer.learning_rate": 3e-4} or ["optimizer.learning_rate=3e-4", ...]
        (values parsed as on the command line).

    Raises:
      ConfigError naming the field: unknown (with the closest known name), or a value of the
      wrong type; or naming the file when it is missing or its `get_config` fails.
    """
    name, colon, arg = spec.partition(":")
    resolved = f"{config_file(name)}{colon}{arg}"
    if isinstance(overrides, Mapping):
        items, strings = list(overrides.items()), []
    else:
        items, strings = [], list(overrides)
    argv = ["load_config", f"--config={resolved}", *(f"--config.{s}" for s in strings)]
    flag_values = flags.FlagValues()
    config_flag = config_flags.DEFINE_config_file("config", None, "Config file[:argument].",
                                                  flag_values=flag_values, lock_config=True, sys_argv=argv)
    try:
        flag_values(argv)
        config = config_flag.value
        for key, value in items:
            _set_field(config, key, value)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError, OSError) as e:
        raise ConfigError(config_error_message(e)) from e
    return config


def config_from_command_line(program: str, argv: Sequence[str], flag_values: flags.FlagValues
                             ) -> ml_collections.ConfigDict:
    """Parses `argv` (after the program name) into `flag_values`, which gains a `--config FILE[:ARG]`
    flag, and returns that config with the `--config.a.b=c` overrides found in `argv`.

    `--help` prints the flags and exits (SystemExit 0), as argparse does.

    Raises:
      ConfigError naming the flag or the config field.
    """
    flags.DEFINE_string("config", None, "Config file[:argument], e.g. configs/finetune.py:tiny.",
                        flag_values=flag_values)
    if {"-h", "--help", "-help"} & set(argv):  # absl's own --help would exit with its module list
        print(f"usage: python -m embeddinggemma {program} --config FILE[:ARG] [--config.FIELD=VALUE ...] "
              f"[flags]\n\nflags:\n{flag_values.get_help()}")
        raise SystemExit(0)
    overrides = [a[len(OVERRIDE_PREFIX):] for a in argv if a.startswith(OVERRIDE_PREFIX)]
    try:
        flag_values([program, *(a for a in argv if not a.startswith(OVERRIDE_PREFIX))])
    except flags.Error as e:
        raise ConfigError(str(e)) from e
    if not flag_values.config:
        raise ConfigError("--config is required, e.g. --config configs/finetune.py:tiny")
    return load_config(flag_values.config, overrides)


def _set_field(config: ml_collections.ConfigDict, key: str, value: object) -> None:
    *parents, field = key.split(".")
    node = config
    for parent in parents:
        node = getattr(node, parent)
    setattr(node, field, value)  # a locked ConfigDict refuses unknown fields and other types


def config_error_message(error: Exception) -> str:
    """A one-line message for an error raised while loading or overriding a config.

    ConfigDict reports an unknown field as an AttributeError wrapping a KeyError with a "Did you
    mean" hint; this becomes "unknown config field 'learning_rat' (did you mean 'learning_rate'?)".
    """
    inner = error.args[0] if error.args else error
    text = str(inner.args[0] if isinstance(inner, KeyError) and inner.args else inner)
    if not isinstance(error, AttributeError):
        return text
    name = re.search(r"""["'](\w+)""", text)
    hint = re.search(r'Did you mean "(\w+)"', text)
    return (f"unknown config field {name.group(1) if name else text!r}"
            + (f" (did you mean {hint.group(1)!r}?)" if hint else ""))
