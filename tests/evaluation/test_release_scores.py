"""The released checkpoint scores through this codebase as sentence-transformers scores under mteb.

Golden scores: scripts/make_golden_scores.py (sentence-transformers 300M, float32, 512 tokens,
mteb's evaluators). Here: this codebase's model, encoder and metrics, no cache, on the suite
built from this machine; a task whose data differ from the golden's (another machine's man pages,
say) is skipped with its hash named, never compared.
"""

import json
from pathlib import Path

import pytest

from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR
from embeddinggemma.evaluation.encoders import EmbedderEncoder
from embeddinggemma.evaluation.runner import evaluate_task
from embeddinggemma.evaluation.tasks import ensure_suite, load_suite

GOLDEN = Path(__file__).parents[1] / "golden" / "eval_scores_embeddinggemma_300m.json"
TOLERANCE = 0.002

pytestmark = pytest.mark.release


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def release_encoder(release_dir, golden):
    return EmbedderEncoder(release_dir, max_length=golden["max_length"])


@pytest.fixture(scope="module")
def machine_suite():
    return {t.name: t for t in load_suite(ensure_suite(DEFAULT_SUITE_DIR))}


@pytest.mark.parametrize("name", sorted(json.loads(GOLDEN.read_text())["scores"]))
def test_main_score_equals_sentence_transformers(name, golden, machine_suite, release_encoder):
    task = machine_suite[name]
    if task.sha256 != golden["suite"][name]:
        pytest.skip(
            f"{name}: this machine's data (sha256 {task.sha256[:12]}) differ from the golden's "
            f"({golden['suite'][name][:12]}); regenerate with scripts/make_golden_scores.py"
        )
    ours = evaluate_task(task, release_encoder, [768])[768]
    assert ours["main_score"] == pytest.approx(golden["scores"][name]["main_score"], abs=TOLERANCE)
