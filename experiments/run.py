"""Runs one of the paper's ablations as a grid of ordinary runs, resumably, and reports its scores.

    python -m experiments.run --list
    python -m experiments.run NAME --scale smoke|cpu|pod [--seeds 3] [--workdir DIR]
        [--corpus DIR] [--decoder PATH] [--teacher DIR] [--topology SLICE]

`smoke`: the whole grid in minutes (tiny model, a few steps, two suite tasks), for tests and CI.
`cpu`: real data, at least 3 seeds, each ablation within an hour on a 2-core CPU. `pod`: the
300m-scale configs for TPU pod slices; prints each cell's command lines (after checking every
config and the model's shapes with `jax.eval_shape`) instead of running them; with `--topology
v5e-64` (a Cloud TPU slice; needs libtpu, `pip install -e '.[tpu]'`) every training stage is first
compiled for that slice (`python -m embeddinggemma plan`), its memory per chip and step time printed
as `#` lines, and a stage that does not fit in the chips' memory is named (exit status 4).

Run it again after a kill: finished cells are kept, the cell that was running resumes from its
checkpoint. Exit status: 0 done (cells that failed are listed in results.md), 2 bad arguments or a
work directory that is not this experiment's, 4 a pod cell that does not fit the --topology slice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embeddinggemma.paths import as_path
from experiments.ablations import ABLATIONS
from experiments.grid import SCALES, Context

DEFAULT_WORKDIR = "runs/experiments/{name}-{scale}"
COMPILATION_CACHE = "jax-cache"  # in the work directory, unless JAX_COMPILATION_CACHE_DIR names another
DOES_NOT_FIT = 4  # as `python -m embeddinggemma plan`


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", help=f"the ablation: {', '.join(ABLATIONS)}")
    p.add_argument("--list", action="store_true", help="list the ablations and what each compares")
    p.add_argument("--scale", choices=SCALES, default="smoke")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: the scale's)")
    p.add_argument("--workdir", type=as_path, default=None, help=f"default: {DEFAULT_WORKDIR}")
    p.add_argument("--corpus", default="~/.cache/embeddinggemma/corpus-v3",
                   help="training corpus (scripts/build_corpus.py; built when missing)")
    p.add_argument("--decoder", default=None,
                   help="Gemma 3 decoder for the init ablation (default: the fetched Gemma 3 270M GGUF)")
    p.add_argument("--tokenizer", default=None,
                   help="the decoder's SentencePiece model (default: the released EmbeddingGemma's)")
    p.add_argument("--teacher", default=None,
                   help="distillation teacher (default: the released EmbeddingGemma, fetched)")
    p.add_argument("--topology", default=None,
                   help="with --scale pod: compile every training stage for this TPU slice, e.g. v5e-64")
    return p


def _inputs(args: argparse.Namespace, needs: set[str]) -> dict[str, str]:
    """The decoder, its tokenizer and the teacher: given, or fetched (placeholders at pod scale)."""
    out = {"decoder": args.decoder, "tokenizer": args.tokenizer, "teacher": args.teacher}
    if args.scale == "pod":
        defaults = {"decoder": "gs://BUCKET/gemma-3-270m", "tokenizer": "gs://BUCKET/gemma-3-270m/tokenizer.model",
                    "teacher": "gs://BUCKET/embeddinggemma-300m"}
        return {k: v or defaults[k] for k, v in out.items()}
    from embeddinggemma.artefacts import fetch_gemma3_270m_gguf, fetch_release

    if "decoder" in needs and not out["decoder"]:
        out["decoder"] = str(fetch_gemma3_270m_gguf())
    if ("tokenizer" in needs and not out["tokenizer"]) or ("teacher" in needs and not out["teacher"]):
        release = fetch_release()
        out["tokenizer"] = out["tokenizer"] or str(Path(release) / "tokenizer.model")
        out["teacher"] = out["teacher"] or str(release)
    return {k: v or "" for k, v in out.items()}


def _plan_lines(reports: dict[str, dict]) -> list[str]:
    """One `#` line per planned stage: fits, memory per chip, step time at the plan's MFU."""
    lines = []
    for where, r in reports.items():
        used, hbm = (r["per_chip"][k] / 2 ** 30 for k in ("total_bytes", "hbm_bytes"))
        mfu, seconds = list(r["step_seconds"].items())[-1]
        lines.append(f"# plan {r['slice']} {where}: {'fits' if r['fits'] else 'DOES NOT FIT'}, "
                     f"{used:.2f} of {hbm:.0f} GiB per chip, "
                     f"{seconds:.3f} s per step at {mfu} MFU")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list or not args.name:
        for name, ablation in ABLATIONS.items():
            print(f"{name:14s} {ablation.question}")
        return 0 if args.list else 2
    ablation = ABLATIONS.get(args.name)
    if ablation is None:
        print(f"error: unknown ablation {args.name!r}; choose one of {', '.join(ABLATIONS)}", file=sys.stderr)
        return 2
    seeds = args.seeds if args.seeds is not None else ablation.default_seeds[args.scale]
    if seeds < 1:
        print(f"error: --seeds={seeds} must be >= 1", file=sys.stderr)
        return 2
    if args.topology and args.scale != "pod":
        print("error: --topology plans a pod grid; it needs --scale pod", file=sys.stderr)
        return 2
    workdir = args.workdir or as_path(DEFAULT_WORKDIR.format(name=ablation.name, scale=args.scale))
    context = Context(scale=args.scale, seeds=tuple(range(seeds)), corpus=args.corpus,
                      **_inputs(args, set(ablation.inputs)))
    from embeddinggemma.errors import ConfigError, NotOurDirectoryError, RunStopped
    from experiments.runner import ExperimentInUseError, launch_lines, run_grid

    if args.scale != "pod":
        import jax

        if not jax.config.jax_compilation_cache_dir:
            # Cells of a grid compile the same programs (every seed, most variants): kept on disk,
            # later cells and a resumed runner skip XLA's compilation, most of a short run's time here.
            cache = workdir.expanduser() / COMPILATION_CACHE
            jax.config.update("jax_compilation_cache_dir", str(cache))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    try:
        if args.scale == "pod":
            from experiments.pod import check_pod_cells

            check_pod_cells(ablation, context)
            if args.topology:
                from embeddinggemma.planning.slices import UnknownSliceError
                from experiments.pod import plan_pod_cells

                try:
                    reports = plan_pod_cells(ablation, context, args.topology)
                except UnknownSliceError as e:
                    print(f"error: {e}", file=sys.stderr)
                    return 2
                print("\n".join(_plan_lines(reports)))
                too_big = [where for where, report in reports.items() if not report["fits"]]
                if too_big:
                    print(f"error: on {args.topology}, {', '.join(too_big)} do not fit in the chips' memory "
                          f"(python -m embeddinggemma plan --topology {args.topology} names what to shrink)",
                          file=sys.stderr)
                    return DOES_NOT_FIT
            print("\n".join(launch_lines(ablation, context, workdir)))
            return 0
        cells = run_grid(ablation, context, workdir)
    except (ConfigError, NotOurDirectoryError, ExperimentInUseError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunStopped as e:  # SIGTERM or Ctrl-C during a training stage: it resumes from its checkpoint
        print(e, file=sys.stderr)
        return e.exit_status
    print(f"{len(cells)} cells; results in {workdir / 'results.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
