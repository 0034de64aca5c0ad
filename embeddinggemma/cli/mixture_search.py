"""Command line: Bayesian optimisation (Optuna TPE) of the mixture weights of a config's datasets.

    python -m embeddinggemma mixture_search --config configs/finetune.py:tiny --trials 8 --workdir DIR \\
        [--config.model.init_checkpoint=START --config.train.num_steps=100 ...] \\
        [--objective suite|suite:TASK1,TASK2|heldout] [--datasets A,B,C] [--random_mixtures 10] \\
        [--seed 0] [--top_k 3] [--suite DIR]

Each trial is a training run of the config (a short finetune from its `model.init_checkpoint`)
with the trial's mixture, in DIR/trials/NNNN, scored by the objective (search/objectives.py). The
first trials are the config's own mixture and `--random_mixtures` flat-Dirichlet mixtures; TPE
proposes the rest. `--datasets` names the datasets mixed (default: every dataset the config gives
a weight above 0, its corpus's included); the others are switched off.

Run the same command again to resume a killed search: finished trials are kept, the trial that
was running goes on from its run's latest checkpoint, under its own number and parameters. A
larger --trials extends a finished search. DIR must be absent, empty or a search's own.

Writes DIR/trials.csv, DIR/trials.md (with the best mixtures and the soup command for the --top_k
best runs) and DIR/trials.png after every trial. Trials run one after another in this process on
its devices; their compiled programs are cached in DIR/jax-cache (or JAX_COMPILATION_CACHE_DIR).

Exit status: 0 done, 2 bad arguments, config, input or work directory (a message, no traceback);
any other error is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from absl import flags

from embeddinggemma.atomic import check_target
from embeddinggemma.errors import ConfigError, NotOurDirectoryError
from embeddinggemma.training.config import validate_config
from embeddinggemma.training.config_files import config_from_command_line

COMPILATION_CACHE = "jax-cache"  # in DIR, unless JAX_COMPILATION_CACHE_DIR names another place


def parse_command_line(argv: list[str]):
    """(config with its overrides, the other flags) of the arguments after the program name.

    Raises:
      ConfigError naming the flag or the config field.
    """
    from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR

    fv = flags.FlagValues()
    flags.DEFINE_string("workdir", None, "The search's directory: study, trial runs, reports.",
                        flag_values=fv)
    flags.DEFINE_integer("trials", None, "Trials to finish, the seed mixtures included.", flag_values=fv)
    flags.DEFINE_string("objective", "suite", "heldout, suite or suite:TASK1,TASK2.", flag_values=fv)
    flags.DEFINE_list("datasets", [], "Datasets to mix (default: those with a weight above 0).",
                      flag_values=fv)
    flags.DEFINE_integer("random_mixtures", 10, "Flat-Dirichlet mixtures tried after the config's own.",
                         flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the random mixtures and of TPE's proposals.", flag_values=fv)
    flags.DEFINE_integer("top_k", 3, "Best trials listed, and souped by the printed command.", flag_values=fv)
    flags.DEFINE_string("suite", str(DEFAULT_SUITE_DIR), "The evaluation suite (built when missing).",
                        flag_values=fv)
    config = config_from_command_line("mixture_search", argv, fv)
    if not fv.workdir:
        raise ConfigError("--workdir is required.")
    if fv.trials is None or fv.trials < 1:
        raise ConfigError(f"--trials={fv.trials} must be given and >= 1.")
    if fv.random_mixtures < 0 or fv.top_k < 1:
        raise ConfigError(f"--random_mixtures={fv.random_mixtures} must be >= 0 and --top_k={fv.top_k} >= 1.")
    return config, fv


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    from embeddinggemma.search.objectives import SUITE, SearchObjective, check_objective
    from embeddinggemma.search.study import SPEC_FILE, WHAT, SearchInUseError, search_directory

    try:
        config, fv = parse_command_line(sys.argv[1:] if argv is None else argv)
        objective = SearchObjective.parse(fv.objective)
        validate_config(config)
        check_objective(objective, config)
        workdir = check_target(search_directory(fv.workdir), SPEC_FILE, WHAT)
    except (ConfigError, NotOurDirectoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import optuna

    from embeddinggemma.errors import InputError, MalformedRecordError, RunStopped
    from embeddinggemma.evaluation.tasks import ensure_suite, load_suite
    from embeddinggemma.search.report import write_reports
    from embeddinggemma.search.study import SearchSpec, config_datasets, run_search, train_and_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what each trial did
    # Inputs first: reading the corpus's and the suite's manifests runs no JAX, so a ValueError here
    # is about them (or an unknown task) and gets a message, not a traceback.
    try:
        weights = config_datasets(config)
        datasets = tuple(fv.datasets) or tuple(n for n, w in weights.items() if w > 0)
        unknown = [n for n in datasets if n not in weights]
        if unknown:
            raise ConfigError(f"--datasets: unknown datasets {unknown}; the config has "
                              f"{', '.join(weights) or 'none'} (data.datasets, data.corpus).")
        tasks = None
        if objective.kind == SUITE:
            tasks = load_suite(ensure_suite(fv.suite), objective.tasks or None)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    spec = SearchSpec(config, datasets, objective, seed=fv.seed, random_mixtures=fv.random_mixtures)

    def report(study: optuna.Study) -> dict[str, Path]:
        return write_reports(spec, workdir, study.get_trials(), fv.trials, fv.top_k)

    import jax

    if not jax.config.jax_compilation_cache_dir:
        # Every trial compiles the same programs: kept on disk, later trials and a resumed search
        # skip XLA's compilation (on 2 CPU cores it is most of a short trial's time).
        jax.config.update("jax_compilation_cache_dir", str(workdir / COMPILATION_CACHE))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    try:
        trials = run_search(workdir, spec, weights, fv.trials, train_and_score(spec, tasks),
                            on_trial_done=report)
    # Only what the user can fix; JAX's own ValueErrors keep their traceback (as in the train command).
    except (ConfigError, InputError, MalformedRecordError, FileNotFoundError, NotOurDirectoryError,
            SearchInUseError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunStopped as e:  # SIGTERM or Ctrl-C during a trial: the trial resumes from its checkpoint
        print(e, file=sys.stderr)
        return e.exit_status
    paths = write_reports(spec, workdir, trials, fv.trials, fv.top_k)
    print(paths["markdown"].read_text())
    print(f"{fv.trials} trials: " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
