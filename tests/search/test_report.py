"""trials.csv, trials.md and trials.png of a search, checked against the study read back from disk."""

import csv
import itertools

import matplotlib.image
import numpy as np
import pytest

from embeddinggemma.search.report import write_reports
from embeddinggemma.search.study import run_search
from tests.search.conftest import CONFIG_WEIGHTS, FakeTrials, spec, stored_trials

NAMES = tuple(CONFIG_WEIGHTS)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("search")
    s = spec(random_mixtures=2)
    run_search(workdir, s, CONFIG_WEIGHTS, 6, FakeTrials())
    return s, workdir, write_reports(s, workdir, stored_trials(workdir), asked=8, top_k=3)


def test_the_csv_has_every_trial_its_mixture_score_and_best_so_far(search):
    s, workdir, paths = search
    rows = list(csv.DictReader(paths["csv"].open()))
    trials = stored_trials(workdir)
    assert [int(r["trial"]) for r in rows] == [t.number for t in trials]
    assert [r["source"] for r in rows] == ["config", "random", "random", "tpe", "tpe", "tpe"]
    assert [float(r["score"]) for r in rows] == [t.value for t in trials]
    running_max = itertools.accumulate((t.value for t in trials), max)
    assert [float(r["best_so_far"]) for r in rows] == list(running_max)
    for r, t in zip(rows, trials, strict=True):
        exponentials = np.array([-np.log(t.params[f"uniform/{n}"]) for n in NAMES])
        np.testing.assert_allclose([float(r[f"weight/{n}"]) for n in NAMES],
                                   exponentials / exponentials.sum(), rtol=1e-14)
        assert [float(r[f"score/{n}"]) for n in NAMES] == [t.user_attrs["details"][n] for n in NAMES]
        assert r["run_dir"] == str(workdir / "trials" / f"{t.number:04d}")


def test_the_markdown_lists_the_best_mixtures_and_the_soup_command_for_them(search):
    s, workdir, paths = search
    text = paths["markdown"].read_text()
    assert text.startswith("# Mixture search: 6 of 8 trials done")
    by_score = sorted(stored_trials(workdir), key=lambda t: -t.value)[:3]
    runs = " ".join(str(workdir / "trials" / f"{t.number:04d}") for t in by_score)
    assert f"python -m embeddinggemma soup --checkpoints {runs} --out {workdir / 'soup'}" in text
    best_table = text.split("## The 3 best mixtures")[1]
    assert [int(line.split("|")[2]) for line in best_table.splitlines() if line.startswith("| ")
            and line.split("|")[1].strip().isdigit()] == [t.number for t in by_score]
    # The best mixture as the override that trains it again, exactly.
    from embeddinggemma.data.config import parse_mixture

    line = next(line for line in text.splitlines() if line.startswith("--config.data.mixture="))
    exponentials = np.array([-np.log(by_score[0].params[f"uniform/{n}"]) for n in NAMES])
    weights = parse_mixture(line.partition("=")[2])
    assert list(weights) == sorted(NAMES)
    np.testing.assert_allclose([weights[n] for n in NAMES], exponentials / exponentials.sum(), rtol=1e-14)


def test_the_plot_is_a_png(search):
    _, _, paths = search
    image = matplotlib.image.imread(paths["plot"])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
