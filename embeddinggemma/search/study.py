"""Bayesian optimisation of a config's mixture weights with Optuna's TPE, stored on disk, resumable.

    DIR/search.json      what is searched: the resolved config, the datasets, the objective, the
                         seeds (it marks DIR as a search's, see embeddinggemma/atomic.py)
    DIR/study.journal    Optuna's journal (JournalStorage, file backend): every trial, its state
                         and parameters
    DIR/trials/NNNN/     trial NNNN's run directory (training/loop.py)
    DIR/trials.csv, trials.md, trials.png    the table and plot (report.py), after every trial

A trial's parameters are one uniform per dataset, mapped to the simplex by the flat-Dirichlet
trick (simplex.py). Trials 0..S-1 are enqueued before any other, as the paper seeds its search:
the config's own mixture, then `random_mixtures` flat-Dirichlet draws; TPE proposes the rest and
models the scores from its first proposal on (n_startup_trials = S). Each proposal's sampler is
seeded with (seed, trial number), so a resumed search proposes what an uninterrupted one would.

Resuming: one process at a time works in DIR (it holds an flock on the directory itself). A trial that a
kill left RUNNING is run again under its own number with its own parameters, so its run resumes
from its latest checkpoint, and is then finished; finished trials are never run again. A trial
whose loss turns NaN or infinite is finished as FAIL (that mixture diverges) and counts as done.

DIR is a local directory: a bucket (`gs://...`) is refused (`search_directory`), since it could hold
neither the lock nor Optuna's journal, which is appended to and repaired in place.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import ml_collections
import numpy as np
import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from embeddinggemma.atomic import atomic_write, check_target, try_lock_directory
from embeddinggemma.data.config import with_corpus_datasets, with_mixture_weights
from embeddinggemma.errors import ConfigError, NonFiniteLossError
from embeddinggemma.files import read_json
from embeddinggemma.paths import is_url
from embeddinggemma.search.objectives import SearchObjective
from embeddinggemma.search.simplex import LOW, random_uniforms, uniforms_for_weights, weights_from_uniforms
from embeddinggemma.training.inputs import ensure_corpus

logger = logging.getLogger(__name__)

SPEC_FILE = "search.json"
WHAT = "a mixture search (python -m embeddinggemma mixture_search)"
JOURNAL_FILE = "study.journal"
TRIALS_DIR = "trials"
STUDY_NAME = "mixture-search"

# A trial's work: (its run directory, dataset -> weight) -> (score, {dataset or task: score}).
TrialFn = Callable[[Path, Mapping[str, float]], tuple[float, Mapping[str, float]]]


class SearchInUseError(RuntimeError):
    """Another process is running a search in the same directory."""


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    """What a search explores; a resumed search must be given the same."""

    config: ml_collections.ConfigDict  # the trials' config; the mixture weights are the search's
    datasets: tuple[str, ...]          # the datasets mixed, in parameter order; the others are off
    objective: SearchObjective
    seed: int = 0                      # of the random seed mixtures and of TPE's proposals
    random_mixtures: int = 10          # flat-Dirichlet mixtures enqueued after the config's own

    def to_json(self) -> dict:
        return {"config": json.loads(self.config.to_json_best_effort()), "datasets": list(self.datasets),
                "objective": str(self.objective), "seed": self.seed, "random_mixtures": self.random_mixtures}

    @property
    def num_seeds(self) -> int:
        """Trials enqueued before TPE proposes any: the config's mixture and the random ones."""
        return 1 + self.random_mixtures


def config_datasets(config: ml_collections.ConfigDict) -> dict[str, float]:
    """Dataset name -> weight of every dataset the config trains on or could (its corpus's too).

    Builds the config's corpus when it is missing (training/inputs.py `ensure_corpus`).
    """
    data = config.data
    if data.corpus:
        data = ml_collections.ConfigDict(data.to_dict())
        data.corpus = str(ensure_corpus(data.corpus))
    return {name: float(d.weight) for name, d in sorted(with_corpus_datasets(data).datasets.items())}


def param_name(dataset: str) -> str:
    return f"uniform/{dataset}"


def trial_dir(workdir: str | Path, number: int) -> Path:
    return Path(workdir) / TRIALS_DIR / f"{number:04d}"


def trial_weights(spec: SearchSpec, params: Mapping[str, float]) -> dict[str, float]:
    """Dataset -> weight of a trial's parameters (each dataset's uniform)."""
    uniforms = [params[param_name(n)] for n in spec.datasets]
    return dict(zip(spec.datasets, weights_from_uniforms(uniforms).tolist(), strict=True))


def seed_uniforms(spec: SearchSpec, config_weights: Mapping[str, float]) -> np.ndarray:
    """[num_seeds, K] uniforms of the enqueued trials: the config's mixture, then random ones.

    Raises:
      ConfigError when the config gives every searched dataset weight 0.
    """
    own = [config_weights[n] for n in spec.datasets]
    if not any(own):
        raise ConfigError(f"The config gives every searched dataset ({', '.join(spec.datasets)}) weight 0, "
                          "so it has no mixture of its own to seed the search with.")
    return np.concatenate([uniforms_for_weights(own)[None],
                           random_uniforms(spec.seed, spec.random_mixtures, len(spec.datasets))])


def trial_config(config: ml_collections.ConfigDict, weights: Mapping[str, float]
                 ) -> ml_collections.ConfigDict:
    """A copy of `config` whose datasets (its corpus's included) have `weights`; others are off."""
    trial = copy.deepcopy(config)
    trial.data = with_mixture_weights(config.data, weights)
    return trial


def _first_difference(stored: object, given: object, path: str) -> str | None:
    """The first path (a.b.c) where two JSON values differ, with both values; None when equal."""
    if isinstance(stored, dict) and isinstance(given, dict):
        for key in sorted(stored.keys() | given.keys()):
            if key not in stored or key not in given:
                return f"{path}.{key} is {'absent' if key not in stored else 'present'} there"
            found = _first_difference(stored[key], given[key], f"{path}.{key}")
            if found:
                return found
        return None
    return None if stored == given else f"{path} is {stored!r} there and {given!r} here"


def search_directory(workdir: str | Path) -> Path:
    """The local search directory `workdir` (`~` expanded, absolute).

    Raises:
      ConfigError naming --workdir when it is in a bucket (see the module's docstring).
    """
    if is_url(workdir):
        raise ConfigError(f"--workdir {workdir}: the mixture search works in a local directory, not a "
                          "bucket: it locks the directory (flock) and appends to Optuna's journal "
                          "file, neither of which object storage can do. Choose a local directory; "
                          "data.corpus and --suite may still be in a bucket.")
    return Path(workdir).expanduser().absolute()


def _claim_workdir(workdir: Path, spec: SearchSpec) -> int:
    """Checks `workdir`, takes its lock and writes or checks search.json; returns the lock's descriptor.

    Raises:
      NotOurDirectoryError: `workdir` holds something else (nothing was changed).
      SearchInUseError: another process holds the lock.
      ConfigError: `workdir` holds a search of another config, datasets, objective or seeds.
    """
    check_target(workdir, SPEC_FILE, WHAT)
    workdir.mkdir(parents=True, exist_ok=True)
    lock = try_lock_directory(workdir)
    if lock is None:
        raise SearchInUseError(f"Another process is running the search in {workdir} (it holds a lock on "
                               "the directory).")
    given = json.loads(json.dumps(spec.to_json()))
    if (workdir / SPEC_FILE).is_file():
        difference = _first_difference(read_json(workdir / SPEC_FILE, f"The spec of {WHAT}"), given, "search")
        if difference:
            os.close(lock)
            raise ConfigError(f"{workdir} holds another search: {difference}. Run it with the arguments "
                              "it was started with, or choose another --workdir.")
    else:
        atomic_write(workdir / SPEC_FILE, json.dumps(given, indent=2) + "\n")
    return lock


def _repair_journal(journal: Path) -> None:
    """Drops what a kill during a write left: Optuna's lock file, and a last line cut short (the
    next append would glue onto it and make the journal unreadable). Only called under our lock."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{journal}.lock")
    if not journal.is_file():
        return
    data = journal.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(journal, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _sampler(spec: SearchSpec, number: int) -> optuna.samplers.TPESampler:
    seed = int(np.random.SeedSequence([spec.seed, number]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.num_seeds)


@contextlib.contextmanager
def open_study(workdir: str | Path, spec: SearchSpec, config_weights: Mapping[str, float],
               trials: int) -> Iterator[optuna.Study]:
    """The search's study in `workdir`, created or loaded, with its seed trials enqueued (the first
    `trials` of them); `workdir` is locked until the block ends.

    Raises:
      NotOurDirectoryError, SearchInUseError, ConfigError: see `_claim_workdir`; ConfigError also
      when the config has no mixture of its own (see `seed_uniforms`) or `workdir` is in a bucket
      (`search_directory`).
    """
    workdir = search_directory(workdir)
    seeds = seed_uniforms(spec, config_weights)
    lock = _claim_workdir(workdir, spec)
    try:
        journal = workdir / JOURNAL_FILE
        _repair_journal(journal)
        storage = JournalStorage(JournalFileBackend(str(journal)))
        study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize",
                                    load_if_exists=True, sampler=_sampler(spec, 0))
        # Seeds are enqueued before any trial is asked for, so they are trials 0..S-1 in order; a
        # kill between two enqueues left the first ones, and the rest follow here.
        existing = len(study.get_trials(deepcopy=False))
        for uniforms in seeds[existing:trials]:
            study.enqueue_trial({param_name(n): float(u)
                                 for n, u in zip(spec.datasets, uniforms, strict=True)})
        yield study
    finally:
        os.close(lock)


def _describe(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{n} {w:.3f}" for n, w in weights.items())


def run_trial(study: optuna.Study, trial: optuna.Trial, spec: SearchSpec, workdir: Path,
              run: TrialFn) -> FrozenTrial:
    """Suggests (or reads back) the trial's uniforms, runs it in its directory and finishes it."""
    uniforms = {param_name(n): trial.suggest_float(param_name(n), LOW, 1.0) for n in spec.datasets}
    weights = trial_weights(spec, uniforms)
    attempts = int(trial.user_attrs.get("attempts", 0)) + 1
    trial.set_user_attr("attempts", attempts)
    logger.warning("trial %d%s: %s", trial.number, f" (attempt {attempts}, resuming)" if attempts > 1 else "",
                   _describe(weights))
    started = time.perf_counter()
    try:
        score, details = run(trial_dir(workdir, trial.number), weights)
    except NonFiniteLossError as e:
        trial.set_user_attr("error", str(e))
        trial.set_user_attr("seconds", time.perf_counter() - started)
        return study.tell(trial, state=TrialState.FAIL)
    trial.set_user_attr("details", {k: float(v) for k, v in details.items()})
    trial.set_user_attr("seconds", time.perf_counter() - started)
    return study.tell(trial, float(score))


def run_search(workdir: str | Path, spec: SearchSpec, config_weights: Mapping[str, float], trials: int,
               run: TrialFn, on_trial_done: Callable[[optuna.Study], None] | None = None
               ) -> list[FrozenTrial]:
    """Runs the search in `workdir` until `trials` trials are finished, resuming what is there.

    Args:
      config_weights: dataset -> the config's own weight (`config_datasets`), the first seed.
      run: a trial's work (`train_and_score` trains and scores; tests pass cheaper functions).
      on_trial_done: called with the study after every finished trial (reports, progress).

    Returns:
      Every trial of the study, by number.

    Raises:
      ValueError when `trials` < 1; see `open_study` for the work directory's errors.
    """
    if trials < 1:
        raise ValueError(f"--trials={trials} must be >= 1.")
    workdir = Path(workdir).expanduser().absolute()
    with open_study(workdir, spec, config_weights, trials) as study:
        while True:
            all_trials = study.get_trials(deepcopy=False)
            done = sum(t.state.is_finished() for t in all_trials)
            if done >= trials:
                return study.get_trials()
            study.sampler = _sampler(spec, len(all_trials))
            running = [t for t in all_trials if t.state == TrialState.RUNNING]
            # A RUNNING trial is one a kill interrupted (we hold the lock): it goes on in place.
            # (FrozenTrial has no public id; Trial(study, id) is how Optuna itself reopens one.)
            trial = optuna.Trial(study, running[0]._trial_id) if running else study.ask()
            finished = run_trial(study, trial, spec, workdir, run)
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            best = max(complete, key=lambda t: t.value) if complete else None
            score = f" {finished.value:.4f}" if finished.value is not None else ""
            logger.warning("trial %d %s%s (%d of %d done, %d left); best %s", finished.number,
                           finished.state.name.lower(), score, done + 1, trials, trials - done - 1,
                           f"{best.value:.4f} (trial {best.number})" if best else "none yet")
            if on_trial_done:
                on_trial_done(study)


def train_and_score(spec: SearchSpec, tasks: Sequence | None = None) -> TrialFn:
    """A trial's work: train `spec.config` with the trial's weights in its run directory (resuming
    from the latest checkpoint there), then score the run by `spec.objective`."""
    from embeddinggemma.search.objectives import score_run
    from embeddinggemma.training.loop import train

    def run(run_dir: Path, weights: Mapping[str, float]) -> tuple[float, dict[str, float]]:
        config = trial_config(spec.config, weights)
        train(config, run_dir)
        return score_run(spec.objective, config, run_dir, tasks)

    return run
