"""Command line: compile a training config for a named Cloud TPU slice, on this machine, and report
what one chip holds, communicates and computes (embeddinggemma/planning/plan.py).

    python -m embeddinggemma plan --config configs/finetune.py:300m --topology v5e-64 \\
        [--out REPORT.json] [--config.train.batch_size=2048 ...]

Needs libtpu (`pip install -e '.[tpu]'`), which compiles for TPU chips without any attached.
A UL2 config (configs/ul2_adapt.py) is planned as the adapt command runs it. Exit status: 0 it
fits, 4 it does not fit in the chips' HBM (the largest values and what shrinks them are printed),
2 a bad config, an unknown slice name, a missing libtpu or an --out that is not a plan report.
"""

from __future__ import annotations

import shlex
import sys

from absl import flags

from embeddinggemma.errors import ConfigError
from embeddinggemma.training.config_files import config_from_command_line

DOES_NOT_FIT = 4


def _gib(n: float) -> str:
    """Bytes in GiB, or MiB below one GiB."""
    return f"{n / 2 ** 30:.2f} GiB" if abs(n) >= 2 ** 30 else f"{n / 2 ** 20:.2f} MiB"


def format_report(report: dict) -> str:
    """The terminal table of a plan report (planning.plan.plan's dict)."""
    chip = report["per_chip"]
    lines = [f"{report['stage']} on {report['slice']} ({report['topology']}, {report['chips']} chips), "
             f"mesh {report['mesh']}",
             f"  fits                {'yes' if report['fits'] else 'NO'}: {_gib(chip['total_bytes'])} of "
             f"{_gib(chip['hbm_bytes'])} per chip, headroom {_gib(chip['headroom_bytes'])}",
             f"  per chip            parameters {_gib(chip['parameter_bytes'])}, optimiser "
             f"{_gib(chip['optimizer_bytes'])}, temporaries {_gib(chip['temp_bytes'])}, output "
             f"{_gib(chip.get('output_bytes', 0))}, aliased {_gib(chip.get('alias_bytes', 0))}",
             f"  model FLOPs / step  {report['model_flops_per_step']:.3e}; step "
             + ", ".join(f"{s:.3g} s at {mfu} MFU" for mfu, s in report.get("step_seconds", {}).items()),
             "  attention           " + ", ".join(f"{k}: {v}" for k, v in report["attention"].items()),
             "  collectives         kind                 in program  per step  bytes/step"]
    for kind, c in report["collectives"].items():
        lines.append(f"{'':22s}{kind:20s} {c['ops']:10d} {c['per_step']:9d}  {_gib(c['bytes_per_step'])}")
    for name, program in report["programs"].items():
        if "refused" in program:
            lines.append(f"  program {name:11s} refused by the compiler: {program['refused']}")
            continue
        lines.append(f"  program {name:11s} compiled in {program['compile_seconds']:.1f} s, "
                     f"{_gib(program['memory']['total_bytes'])} per chip")
    if not report["fits"]:
        lines.append("  largest values of the program that does not fit:")
        lines += [f"    {_gib(v['bytes'])}  {v['shape']}  {v['opcode']}  {v['op_name']}"
                  for v in report["largest_values"]]
        lines.append("  what shrinks them:")
        lines += [f"    {remedy}" for remedy in report["remedies"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    flag_values = flags.FlagValues()
    flags.DEFINE_string("topology", None, "Cloud TPU slice, e.g. v5e-64, v5p-64, v6e-64.",
                        flag_values=flag_values)
    flags.DEFINE_string("out", None, "Write the report here as JSON.", flag_values=flag_values)
    from embeddinggemma.planning.slices import UnknownSliceError, get_slice

    argv = sys.argv[1:] if argv is None else argv
    try:
        config = config_from_command_line("plan", argv, flag_values)
        if not flag_values.topology:
            raise ConfigError("--topology is required, e.g. --topology v5e-64")
        tpu = get_slice(flag_values.topology)
    except (ConfigError, UnknownSliceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from embeddinggemma.planning.plan import check_report_target, plan, write_report

    try:
        if flag_values.out:
            check_report_target(flag_values.out)
        devices = tpu.devices()
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # jax: "JAX TPU support not installed; cannot generate TPU topology"
        print(f"error: {e}\nInstall libtpu: pip install -e '.[tpu]'", file=sys.stderr)
        return 2
    try:
        report = plan(config, tpu, devices=devices)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report["command"] = shlex.join(["python", "-m", "embeddinggemma", "plan", *argv])
    print(format_report(report))
    if flag_values.out:
        print(f"wrote {write_report(report, flag_values.out)}", file=sys.stderr)
    return 0 if report["fits"] else DOES_NOT_FIT


if __name__ == "__main__":
    sys.exit(main())

