"""Command line: train from a config file, resuming from the work directory's latest checkpoint.

    python -m embeddinggemma train --config configs/finetune.py:tiny --workdir DIR \\
        [--config.train.num_steps=200 ...]

Several hosts (or several processes on one machine) run the same command with
`--coordinator_address HOST:PORT --num_processes N --process_id I`, or `--distributed` where JAX
finds them itself (TPU pods, SLURM). Exit status: 0 done, 2 bad config or input (a message, no
traceback), 3 NaN/inf loss, 143 stopped by SIGTERM and 130 by Ctrl-C after saving a checkpoint
(the same command resumes; see training/preemption.py); any other error is a bug and ends with its
traceback (status 1).
"""

from __future__ import annotations

import logging
import sys

import ml_collections
from absl import flags

from embeddinggemma.errors import ConfigError, NotOurDirectoryError
from embeddinggemma.training.config_files import config_from_command_line


def parse_command_line(argv: list[str], program: str = "train"
                       ) -> tuple[ml_collections.ConfigDict, flags.FlagValues]:
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
    config = config_from_command_line(program, argv, fv)
    if not fv.workdir:
        raise ConfigError("--workdir is required.")
    return config, fv


def main(argv: list[str] | None = None, *, program: str = "train", required_stage: str | None = None) -> int:
    """Runs the command: the stage the config names (`stage`), which must be `required_stage` when
    one is given (`python -m embeddinggemma adapt` is this command for denoising configs only)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config, fv = parse_command_line(sys.argv[1:] if argv is None else argv, program)
        if required_stage is not None and config.stage != required_stage:
            raise ConfigError(f"the {program} command runs stage={required_stage!r} configs; this one has "
                              f"stage={config.stage!r} (use `python -m embeddinggemma train`).")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import jax

    if fv.distributed or fv.coordinator_address or fv.num_processes:
        jax.distributed.initialize(coordinator_address=fv.coordinator_address,
                                   num_processes=fv.num_processes, process_id=fv.process_id)
    from embeddinggemma.errors import (
        CheckpointError,
        InputError,
        MalformedRecordError,
        NonFiniteLossError,
        RunStopped,
        WorkdirInUseError,
    )
    from embeddinggemma.training.checkpoints import user_fixable
    from embeddinggemma.training.config import make_stage
    from embeddinggemma.training.loop import train

    try:
        run_stage = make_stage(config)
        summary = train(config, fv.workdir, stage=run_stage)
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except RunStopped as e:
        print(f"{e}", file=sys.stderr)
        return e.exit_status
    # Only what the user can fix in the config or the inputs; JAX's own ValueErrors keep their traceback.
    except (ConfigError, InputError, MalformedRecordError, FileNotFoundError, NotOurDirectoryError,
            WorkdirInUseError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk or a permission anywhere else (config.json, metrics, export)
        if not user_fixable(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    if jax.process_index() == 0:
        headline = run_stage.headline_metric
        final = summary.evaluations.get(summary.last_step, {}).get(headline)
        print(f"done: step {summary.last_step} in {summary.seconds:.0f} s"
              + (f", loss {summary.final_loss:.4f}" if summary.final_loss is not None else "")
              + (f", held-out {headline.removeprefix('eval/')} {final:.4f}" if final is not None else "")
              + f"; {summary.workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
