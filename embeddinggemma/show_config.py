"""Command line: resolve a config file with overrides, check it, print it (and save it).

    python -m embeddinggemma.show_config --config configs/finetune.py:tiny \\
        [--config.optimizer.learning_rate=3e-4 ...] [--workdir DIR]

Any field can be overridden; a misspelt field is an error naming it. With --workdir the resolved
config is written to DIR/config.json, as a training run does.
"""

from __future__ import annotations

import re
import sys

from absl import flags
from ml_collections import config_flags

from embeddinggemma.training.config import validate_config, write_config


def main(argv: list[str] | None = None) -> int:
    flag_values = flags.FlagValues()
    config_flag = config_flags.DEFINE_config_file("config", None, "Config file[:argument].",
                                                  flag_values=flag_values, lock_config=True)
    flags.DEFINE_string("workdir", None, "Write the resolved config.json here.",
                        flag_values=flag_values)
    try:
        flag_values(["show_config", *(sys.argv[1:] if argv is None else argv)])
        if config_flag.value is None:
            raise ValueError("--config is required, e.g. --config configs/finetune.py:tiny")
        config = config_flag.value
        validate_config(config)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        print(f"error: {config_error_message(e)}", file=sys.stderr)
        return 2
    print(config.to_json_best_effort(indent=2))
    if flag_values.workdir:
        print(f"wrote {write_config(config, flag_values.workdir)}", file=sys.stderr)
    return 0


def config_error_message(error: Exception) -> str:
    inner = error.args[0] if error.args else error
    # ConfigDict reports an unknown field as an AttributeError wrapping a KeyError.
    text = str(inner.args[0] if isinstance(inner, KeyError) and inner.args else inner)
    if not isinstance(error, AttributeError):
        return text
    name = re.search(r"""["'](\w+)""", text)
    hint = re.search(r'Did you mean "(\w+)"', text)
    return (f"unknown config field {name.group(1) if name else text!r}"
            + (f" (did you mean {hint.group(1)!r}?)" if hint else ""))

if __name__ == "__main__":
    sys.exit(main())
