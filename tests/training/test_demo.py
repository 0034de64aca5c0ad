"""`make demo`: trains, improves held-out retrieval, and leaves a model that Embedder.load reads."""

import sys

import numpy as np
import pytest

from embeddinggemma import Embedder
from embeddinggemma.training.metrics import read_jsonl
from tests.training.conftest import run


@pytest.mark.slow  # a 60-step training run in a subprocess
def test_the_demo_improves_heldout_ndcg_and_exports_a_loadable_model(tmp_path, small_corpus):
    result = run([sys.executable, "-m", "embeddinggemma", "demo", "--workdir", str(tmp_path / "demo"),
                  "--steps", "60", "--corpus", str(small_corpus)])
    assert result.returncode == 0, result.stderr[-3000:]
    evals = read_jsonl(tmp_path / "demo" / "eval.jsonl")
    assert [e["step"] for e in evals] == [0, 20, 40, 60]
    assert evals[-1]["eval/ndcg_at_10"] > evals[0]["eval/ndcg_at_10"]
    for line in ("held-out retrieval nDCG@10", "mean", "TensorBoard  tensorboard --logdir"):
        assert line in result.stdout
    assert sorted(p.name for p in (tmp_path / "demo" / "checkpoints").iterdir()) == ["20", "40", "60"]

    model = Embedder.load(tmp_path / "demo" / "export")
    vectors = model.encode(["def add(a, b): return a + b", "the sum of two numbers"], prompt_name="query")
    assert vectors.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
