"""Command line: resolve a config file with overrides, check it, print it (and save it).

    python -m embeddinggemma show_config --config configs/finetune.py:tiny \\
        [--config.optimizer.learning_rate=3e-4 ...] [--workdir DIR]

Any field can be overridden; a misspelt field is an error naming it. With --workdir the resolved
config is written to DIR/config.json, as a training run does (DIR must be absent, empty or a run's).
A reader that stops early (`| head`) ends the printing quietly.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from embeddinggemma.errors import ConfigError, NotOurDirectoryError
from embeddinggemma.training.config import validate_config, write_config
from embeddinggemma.training.config_files import config_from_command_line


def main(argv: list[str] | None = None) -> int:
    flag_values = flags.FlagValues()
    flags.DEFINE_string("workdir", None, "Write the resolved config.json here.", flag_values=flag_values)
    try:
        config = config_from_command_line("show_config", sys.argv[1:] if argv is None else argv, flag_values)
        validate_config(config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        print(config.to_json_best_effort(indent=2), flush=True)
    except BrokenPipeError:  # `show_config | head`: the reader has what it wanted
        # Python flushes stdout again at exit; point it at /dev/null so that it does not fail there.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if flag_values.workdir:
        try:
            print(f"wrote {write_config(config, flag_values.workdir)}", file=sys.stderr)
        except NotOurDirectoryError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
