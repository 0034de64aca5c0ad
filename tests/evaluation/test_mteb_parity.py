"""The suite's scores equal the scores mteb itself computes for the same model on the same tasks.

mteb runs its own evaluators (pytrec_eval, logistic regression experiments, bootstrapped k-means,
...) through the adapter, so this checks both the adapter and that metrics.py computes what mteb
computes, for every task type of the suite.
"""

import os

import pytest

from embeddinggemma.evaluation.runner import evaluate_task

if os.environ.get("CI", "").lower() in ("true", "1"):
    # CI installs the eval extras: there a missing or broken mteb is a failure, never a skip.
    import mteb  # noqa: F401
else:
    pytest.importorskip("mteb", reason="the eval extras (mteb) are not installed")


@pytest.fixture
def offline_mteb(monkeypatch, tmp_path):
    monkeypatch.setenv("MTEB_CACHE", str(tmp_path / "mteb-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from embeddinggemma.evaluation import mteb_adapter

    return mteb_adapter


def test_every_task_scores_as_mteb_scores_it(offline_mteb, suite, tiny_embedder, tiny_encoder):
    encoder = offline_mteb.MTEBEncoder(tiny_embedder, name="test/tiny", max_length=tiny_encoder.max_length)
    theirs = offline_mteb.evaluate_with_mteb(encoder, list(suite.values()))
    assert sorted(theirs) == sorted(suite)
    for name, task in suite.items():
        ours = evaluate_task(task, tiny_encoder, [64])[64]
        assert ours["main_score"] == pytest.approx(theirs[name]["main_score"], abs=2e-5), name
        for key in ("ndcg_at_10", "map_at_10", "f1", "accuracy", "v_measure", "max_ap", "cosine_ap"):
            if key in ours and key in theirs[name]:
                assert ours[key] == pytest.approx(theirs[name][key], abs=2e-5), (name, key)


def test_matryoshka_dimension_and_prompts_reach_the_model(offline_mteb, tiny_embedder, monkeypatch):
    encoder = offline_mteb.MTEBEncoder(tiny_embedder, name="test/tiny", dim=32)
    assert encoder.prompt_name("AnyRetrieval", "Retrieval", "query") == "Retrieval-query"
    assert encoder.prompt_name("AnyRetrieval", "Retrieval", "document") == "Retrieval-document"
    assert encoder.prompt_name("AnyClustering", "Clustering", None) == "Clustering"
    seen = {}

    def spy(texts, **kwargs):
        seen.update(kwargs, texts=list(texts))
        return original(texts, **kwargs)

    original = tiny_embedder.encode
    monkeypatch.setattr(tiny_embedder, "encode", spy)

    class Metadata:
        name, type = "AnyClustering", "Clustering"

    vectors = encoder.encode(
        [{"text": ["a b", "c"]}, {"text": ["d"]}],
        task_metadata=Metadata,
        hf_split="test",
        hf_subset="default",
    )
    assert vectors.shape == (3, 32) and seen["dim"] == 32 and seen["prompt_name"] == "Clustering"
    assert seen["texts"] == ["a b", "c", "d"]
