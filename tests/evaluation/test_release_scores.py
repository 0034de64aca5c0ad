"""The released checkpoint scores through this codebase as sentence-transformers scores under mteb.

Golden scores: scripts/make_golden_scores.py (sentence-transformers 300M, float32, 512 tokens,
mteb's evaluators). Here: this codebase's model, encoder and metrics, no cache, on the suite
built from this machine. A task whose data differ from the golden's (another machine's man pages,
say) is left out with its hash named, never compared; the test says how many tasks it compared
and fails when it compared none.
"""

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR
from embeddinggemma.evaluation.encoders import EmbedderEncoder
from embeddinggemma.evaluation.runner import evaluate_task
from embeddinggemma.evaluation.tasks import ensure_suite, load_suite

GOLDEN = Path(__file__).parents[1] / "golden" / "eval_scores_embeddinggemma_300m.json"
TOLERANCE = 0.002


def comparable_tasks(golden: dict, suite: dict) -> list[str]:
    """The golden tasks whose data on this machine are the golden's; warns which are left out
    and fails when none is left."""
    names = sorted(golden["scores"])
    same = [n for n in names if n in suite and suite[n].sha256 == golden["suite"][n]]
    differing = [
        f"{n} (sha256 {suite[n].sha256[:12] if n in suite else 'absent'}, golden {golden['suite'][n][:12]})"
        for n in names
        if n not in same
    ]
    if not same:
        pytest.fail(
            f"none of the {len(names)} golden tasks has this machine's data, so nothing was compared: "
            f"{', '.join(differing)}; regenerate with scripts/make_golden_scores.py",
            pytrace=False,
        )
    if differing:
        warnings.warn(
            f"compared {len(same)} of {len(names)} golden tasks; left out, their data differ: "
            f"{', '.join(differing)}",
            stacklevel=2,
        )
    return same


@pytest.mark.release
def test_main_scores_equal_sentence_transformers(release_dir):
    golden = json.loads(GOLDEN.read_text())
    suite = {t.name: t for t in load_suite(ensure_suite(DEFAULT_SUITE_DIR))}
    encoder = EmbedderEncoder(release_dir, max_length=golden["max_length"])
    names = comparable_tasks(golden, suite)
    scores = {n: evaluate_task(suite[n], encoder, [768])[768]["main_score"] for n in names}
    wrong = {
        n: (round(s, 5), golden["scores"][n]["main_score"])
        for n, s in scores.items()
        if abs(s - golden["scores"][n]["main_score"]) > TOLERANCE
    }
    assert not wrong, f"{len(wrong)} of the {len(names)} compared tasks differ (ours, golden): {wrong}"


def test_a_suite_with_no_golden_data_fails_and_names_the_hashes():
    golden = {"scores": {"A": {}, "B": {}}, "suite": {"A": "a" * 64, "B": "b" * 64}}
    suite = {"A": SimpleNamespace(sha256="c" * 64)}
    with pytest.raises(pytest.fail.Exception, match=r"none of the 2 golden tasks .*A \(sha256 cccccccccccc, "
                                                    r"golden aaaaaaaaaaaa\), B \(sha256 absent"):
        comparable_tasks(golden, suite)
    suite["B"] = SimpleNamespace(sha256="b" * 64)
    with pytest.warns(UserWarning, match=r"compared 1 of 2 golden tasks; left out.*A \(sha256 ccc"):
        assert comparable_tasks(golden, suite) == ["B"]
