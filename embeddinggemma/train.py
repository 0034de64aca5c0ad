"""Command line: train from a config file, resuming from the work directory's latest checkpoint.

    python -m embeddinggemma.train --config configs/finetune.py:tiny --workdir DIR \\
        [--config.train.num_steps=200 ...]

Several hosts (or several processes on one machine) run the same command with
`--coordinator_address HOST:PORT --num_processes N --process_id I`, or `--distributed` where JAX
finds them itself (TPU pods, SLURM). Exit status: 0 done, 2 bad config or input (a message, no
traceback), 3 NaN/inf loss; any other error is a bug and ends with its traceback (status 1).
"""

from __future__ import annotations

import logging
import sys

import ml_collections
from absl import flags

from embeddinggemma.atomic import NotOurDirectoryError
from embeddinggemma.training.config import ConfigError
from embeddinggemma.training.config_files import config_from_command_line


def parse_command_line(argv: list[str]) -> tuple[ml_collections.ConfigDict, flags.FlagValues]:
    """(config with its overrides, the other flags) of the arguments after the program name.

    Raises:
      ConfigError naming the flag or the config field.
    """
    fv = flags.FlagValues()
    flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, export.", flag_values=fv)
    flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (multi-process).",
                        flag_values=fv)
    flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process).", flag_values=fv)
    flags.DEFINE_integer("process_id", None, "This process's index (multi-process).", flag_values=fv)
    flags.DEFINE_bool("distributed", False, "jax.distributed.initialize() with detected settings.",
                      flag_values=fv)
    config = config_from_command_line("train", argv, fv)
    if not fv.workdir:
        raise ConfigError("--workdir is required.")
    return config, fv


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config, fv = parse_command_line(sys.argv[1:] if argv is None else argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import jax

    if fv.distributed or fv.coordinator_address or fv.num_processes:
        jax.distributed.initialize(coordinator_address=fv.coordinator_address,
                                   num_processes=fv.num_processes, process_id=fv.process_id)
    from embeddinggemma.data.records import MalformedRecordError
    from embeddinggemma.training.loop import InputError, NonFiniteLossError, train

    try:
        summary = train(config, fv.workdir)
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    # Only what the user can fix in the config or the inputs; JAX's own ValueErrors keep their traceback.
    except (ConfigError, InputError, MalformedRecordError, FileNotFoundError, NotOurDirectoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if jax.process_index() == 0:
        final = summary.evaluations.get(summary.last_step, {}).get("eval/ndcg_at_10")
        print(f"done: step {summary.last_step} in {summary.seconds:.0f} s"
              + (f", loss {summary.final_loss:.4f}" if summary.final_loss is not None else "")
              + (f", held-out nDCG@10 {final:.4f}" if final is not None else "")
              + f"; {summary.workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
