"""Command line: train from a config file, resuming from the work directory's latest checkpoint.

    python -m embeddinggemma.train --config configs/finetune.py:tiny --workdir DIR \\
        [--config.train.num_steps=200 ...]

Several hosts (or several processes on one machine) run the same command with
`--coordinator_address HOST:PORT --num_processes N --process_id I`, or `--distributed` where JAX
finds them itself (TPU pods, SLURM). Exit status: 0 done, 2 bad config or input, 3 NaN/inf loss.
"""

from __future__ import annotations

import logging
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

from embeddinggemma.show_config import config_error_message


def parse_command_line(argv: list[str]) -> tuple[ml_collections.ConfigDict, flags.FlagValues]:
    """(config with its overrides, the other flags) of the arguments after the program name."""
    fv = flags.FlagValues()
    config_flag = config_flags.DEFINE_config_file("config", None, "Config file[:argument].",
                                                  flag_values=fv, lock_config=True)
    flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, export.", flag_values=fv)
    flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (multi-process).",
                        flag_values=fv)
    flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process).", flag_values=fv)
    flags.DEFINE_integer("process_id", None, "This process's index (multi-process).", flag_values=fv)
    flags.DEFINE_bool("distributed", False, "jax.distributed.initialize() with detected settings.",
                      flag_values=fv)
    # config_flags finds `--config.x=y` overrides in sys.argv, so parse with it set to `argv`.
    saved, sys.argv = sys.argv, ["train", *argv]
    try:
        fv(sys.argv)
    finally:
        sys.argv = saved
    if config_flag.value is None:
        raise ValueError("--config is required, e.g. --config configs/finetune.py:tiny")
    if not fv.workdir:
        raise ValueError("--workdir is required.")
    return config_flag.value, fv


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config, fv = parse_command_line(sys.argv[1:] if argv is None else argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        print(f"error: {config_error_message(e)}", file=sys.stderr)
        return 2
    import jax

    if fv.distributed or fv.coordinator_address or fv.num_processes:
        jax.distributed.initialize(coordinator_address=fv.coordinator_address,
                                   num_processes=fv.num_processes, process_id=fv.process_id)
    from embeddinggemma.data.records import MalformedRecordError
    from embeddinggemma.training.loop import NonFiniteLossError, train

    try:
        summary = train(config, fv.workdir)
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (MalformedRecordError, FileNotFoundError, ValueError) as e:
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
