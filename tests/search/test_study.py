"""The study: seeds first and in order, resuming in place, failures, the work directory's guards.

Trials here train nothing (tests/search/conftest.py FakeTrials); tests/test_mixture_search.py
runs the command with real training runs and kills it.
"""

import fcntl
import json
import os

import numpy as np
import pytest
from optuna.trial import TrialState

from embeddinggemma.errors import ConfigError, NonFiniteLossError, NotOurDirectoryError
from embeddinggemma.search.simplex import random_uniforms, uniforms_for_weights
from embeddinggemma.search.study import (
    JOURNAL_FILE,
    SPEC_FILE,
    SearchInUseError,
    config_datasets,
    param_name,
    run_search,
    trial_config,
    trial_dir,
)
from tests.search.conftest import CONFIG_WEIGHTS, FakeTrials, spec, stored_trials

NAMES = tuple(CONFIG_WEIGHTS)


class Killed(Exception):
    """Stands for a kill in the middle of a trial."""


def uniforms(trial) -> np.ndarray:
    return np.array([trial.params[param_name(n)] for n in NAMES])


def test_the_config_mixture_and_the_random_mixtures_are_the_first_trials_in_order(tmp_path, fake_trials):
    s = spec(random_mixtures=3, seed=5)
    run_search(tmp_path, s, config_datasets(s.config), 6, fake_trials)
    trials = stored_trials(tmp_path)
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert [run_dir for run_dir, _ in fake_trials.calls] == [f"{i:04d}" for i in range(6)]
    # Trial 0 is the config's mixture: its uniforms came back from the journal bit for bit, and
    # the weights the trial trained with are the config's, normalised.
    np.testing.assert_array_equal(uniforms(trials[0]), uniforms_for_weights([2.0, 1.0, 1.0]))
    np.testing.assert_allclose(list(fake_trials.calls[0][1].values()), [0.5, 0.25, 0.25],
                               rtol=1e-12, atol=1e-15)
    # Then the flat-Dirichlet seeds, exactly, in order; then TPE's own proposals.
    seeds = random_uniforms(5, 3, len(NAMES))
    for i in range(3):
        np.testing.assert_array_equal(uniforms(trials[1 + i]), seeds[i])
    for t in trials[4:]:
        assert not any(np.array_equal(uniforms(t), u) for u in [uniforms(x) for x in trials if x is not t])
        assert "fixed_params" not in t.system_attrs
    for (_, weights), t in zip(fake_trials.calls, trials, strict=True):
        expected = -np.log(uniforms(t)) / -np.log(uniforms(t)).sum()
        np.testing.assert_allclose([weights[n] for n in NAMES], expected, rtol=1e-14)


def test_a_trial_interrupted_mid_way_is_resumed_under_its_own_number_and_parameters(tmp_path):
    s = spec(random_mixtures=1)
    interrupted = FakeTrials(fail_at=2, error=Killed())
    with pytest.raises(Killed):
        run_search(tmp_path, s, CONFIG_WEIGHTS, 4, interrupted)
    before = stored_trials(tmp_path)
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]

    resumed = FakeTrials()
    run_search(tmp_path, s, CONFIG_WEIGHTS, 4, resumed)
    after = stored_trials(tmp_path)
    assert [t.number for t in after] == [0, 1, 2, 3]  # nothing duplicated
    assert all(t.state == TrialState.COMPLETE for t in after)
    assert [d for d, _ in resumed.calls] == ["0002", "0003"]  # finished trials are not run again
    assert resumed.calls[0][1] == interrupted.calls[2][1]  # the same mixture as before the kill
    for old, new in zip(before, after, strict=False):
        assert old.params == new.params
    assert after[2].user_attrs["attempts"] == 2 and after[3].user_attrs["attempts"] == 1


def test_a_resumed_or_extended_search_proposes_what_an_uninterrupted_one_does(tmp_path):
    s = spec(random_mixtures=2)
    run_search(tmp_path / "straight", s, CONFIG_WEIGHTS, 10, FakeTrials())
    run_search(tmp_path / "extended", s, CONFIG_WEIGHTS, 5, FakeTrials())
    with pytest.raises(Killed):
        run_search(tmp_path / "extended", s, CONFIG_WEIGHTS, 10, FakeTrials(fail_at=7, error=Killed()))
    run_search(tmp_path / "extended", s, CONFIG_WEIGHTS, 10, FakeTrials())
    straight, extended = stored_trials(tmp_path / "straight"), stored_trials(tmp_path / "extended")
    assert [t.params for t in straight] == [t.params for t in extended]
    assert [t.value for t in straight] == [t.value for t in extended]


def test_a_diverging_trial_is_finished_as_failed_and_the_search_goes_on(tmp_path):
    s = spec(random_mixtures=2)
    error = NonFiniteLossError("step 3: the loss is nan (dataset 'code')")
    run_search(tmp_path, s, CONFIG_WEIGHTS, 4, FakeTrials(fail_at=1, error=error))
    trials = stored_trials(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert "loss is nan" in trials[1].user_attrs["error"]


def test_a_journal_cut_short_by_a_kill_and_a_stale_optuna_lock_are_repaired(tmp_path, fake_trials):
    s = spec(random_mixtures=1)
    run_search(tmp_path, s, CONFIG_WEIGHTS, 2, fake_trials)
    journal = tmp_path / JOURNAL_FILE
    with open(journal, "ab") as f:
        f.write(b'{"op_code":4,"worker_id":"x","trial_id":')  # a write cut short
    os.symlink(journal, f"{journal}.lock")  # Optuna's lock, left by the killed writer
    run_search(tmp_path, s, CONFIG_WEIGHTS, 3, fake_trials)
    assert [t.state for t in stored_trials(tmp_path)] == [TrialState.COMPLETE] * 3
    assert not os.path.lexists(f"{journal}.lock")


def test_a_directory_of_something_else_is_refused_untouched(tmp_path, fake_trials):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NotOurDirectoryError, match=f"{tmp_path}.*holds no {SPEC_FILE}"):
        run_search(tmp_path, spec(), CONFIG_WEIGHTS, 2, fake_trials)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert not fake_trials.calls


@pytest.mark.parametrize("changed, named", [
    (dict(objective="suite"), "search.objective is 'heldout' there and 'suite' here"),
    (dict(seed=1), "search.seed is 0 there and 1 here"),
])
def test_a_directory_holding_another_search_is_refused_naming_the_difference(tmp_path, changed, named):
    run_search(tmp_path, spec(), CONFIG_WEIGHTS, 1, FakeTrials())
    with pytest.raises(ConfigError, match=named):
        run_search(tmp_path, spec(**changed), CONFIG_WEIGHTS, 2, FakeTrials())


def test_another_config_is_named_by_its_field(tmp_path):
    run_search(tmp_path, spec(), CONFIG_WEIGHTS, 1, FakeTrials())
    other = spec()
    other.config.optimizer.learning_rate = 1e-3
    named = r"search\.config\.optimizer\.learning_rate is 0.0005 there and 0.001 here"
    with pytest.raises(ConfigError, match=named):
        run_search(tmp_path, other, CONFIG_WEIGHTS, 2, FakeTrials())


def test_a_search_running_in_the_directory_is_not_joined(tmp_path, fake_trials):
    run_search(tmp_path, spec(), CONFIG_WEIGHTS, 1, fake_trials)
    held = os.open(tmp_path, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the running search holds it
        with pytest.raises(SearchInUseError, match=f"running the search in {tmp_path}"):
            run_search(tmp_path, spec(), CONFIG_WEIGHTS, 2, fake_trials)
    finally:
        os.close(held)
    assert len(fake_trials.calls) == 1


def test_fewer_than_one_trial_is_refused(tmp_path, fake_trials):
    with pytest.raises(ValueError, match="--trials=0 must be >= 1"):
        run_search(tmp_path, spec(), CONFIG_WEIGHTS, 0, fake_trials)
    assert not tmp_path.joinpath(SPEC_FILE).exists()


def test_a_config_without_a_mixture_of_its_own_is_refused(tmp_path, fake_trials):
    with pytest.raises(ConfigError, match="gives every searched dataset .* weight 0"):
        run_search(tmp_path, spec(), dict.fromkeys(NAMES, 0.0), 2, fake_trials)


def test_the_trial_config_carries_the_mixture_and_switches_the_others_off():
    config = spec().config
    trial = trial_config(config, {"code": 0.75, "bitext": 0.25})
    assert {n: d.weight for n, d in trial.data.datasets.items()} == {"bitext": 0.25, "code": 0.75,
                                                                     "package_metadata": 0.0}
    assert config.data.datasets.code.weight == 1.0  # the search's config is left as it was
    assert json.loads(trial.to_json())["optimizer"] == json.loads(config.to_json())["optimizer"]
    assert trial_dir("/runs/s", 12).as_posix() == "/runs/s/trials/0012"
