"""`loss.teacher_is_init`: the starting checkpoint as the distillation teacher, and
`configs/finetune.py:release`, which sets it, cut down to the tiny preset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embeddinggemma import Embedder
from embeddinggemma.data.teacher import TeacherEmbeddings
from embeddinggemma.errors import ConfigError
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.training.config import validate_config
from embeddinggemma.training.config_files import load_config
from embeddinggemma.training.loop import train

QUERY_LENGTH, DOCUMENT_LENGTH = 12, 20


def records(n: int) -> list[dict]:
    return [{"id": f"r{i}", "task": "query", "query": f"how do I open file number {i} for reading",
             "positive": f"Use open(path_{i}, 'r') and read the lines of file {i} one by one, then close it.",
             "negative": f"Directory {i} is listed with os.listdir and nothing is read from it at all."}
            for i in range(n)]


@pytest.fixture
def start(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    return Embedder(tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS).save(tmp_path / "start")


def release_at_tiny_size(start, pairs, **overrides):
    """configs/finetune.py:release with the model and the run cut down to the tiny preset."""
    return load_config("finetune:release", {
        "model.preset": "tiny", "model.init_checkpoint": str(start), "loss.matryoshka_dims": (64, 32),
        "data.datasets.pairs.path": str(pairs), "train.batch_size": 16, "train.grad_cache_chunk_size": 8,
        "train.max_query_length": QUERY_LENGTH, "train.max_document_length": DOCUMENT_LENGTH,
        "train.num_steps": 2, "optimizer.warmup_steps": 1, "checkpoint.async_save": False,
        "data.read_threads": 0, **overrides})


@pytest.mark.slow
def test_the_release_config_runs_with_its_start_as_teacher_embedded_once(tmp_path, start):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in records(16)))
    config = release_at_tiny_size(start, pairs)
    validate_config(config)
    train(config, tmp_path / "run")

    # By hand: the start's embeddings of the prompted texts, cut to the run's lengths.
    embedder = Embedder.load(start)
    rows = records(16)
    want = {"query": embedder.encode([DEFAULT_PROMPTS["query"] + r["query"] for r in rows],
                                     max_length=QUERY_LENGTH),
            "positive": embedder.encode(["title: none | text: " + r["positive"] for r in rows],
                                        max_length=DOCUMENT_LENGTH),
            "negative": embedder.encode(["title: none | text: " + r["negative"] for r in rows],
                                        max_length=DOCUMENT_LENGTH)}
    teacher = TeacherEmbeddings(tmp_path / "run" / "teacher" / "pairs")
    for i, r in enumerate(rows):
        got = teacher.vectors(r["id"])
        for role in ("query", "positive", "negative"):
            np.testing.assert_allclose(got[role], want[role][i], atol=1e-5, err_msg=f"{r['id']} {role}")
    # The student starts at its teacher: the first step's distillation term is zero.
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    distillation = {k: v for k, v in first.items() if k.startswith("distillation")}
    assert distillation and all(abs(v) < 1e-4 for k, v in distillation.items() if k.endswith("loss"))

    # Resuming under a longer run does not embed the records again (same settings, same files).
    stamp = (tmp_path / "run" / "teacher" / "pairs" / "info.json").stat().st_mtime_ns
    train(release_at_tiny_size(start, pairs, **{"train.num_steps": 3}), tmp_path / "run")
    assert (tmp_path / "run" / "teacher" / "pairs" / "info.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("overrides, message", [
    ({"model.init": "random", "model.init_checkpoint": ""},
     "loss.teacher_is_init needs model.init='embedder'"),
    ({"data.teacher": "other"}, "loss.teacher_is_init and data.teacher='other'"),
    ({"loss.distillation_weight": 0.0}, "loss.distillation_weight is 0"),
])
def test_a_teacher_is_init_that_cannot_work_is_named(tmp_path, overrides, message):
    config = release_at_tiny_size(tmp_path / "start", tmp_path / "pairs.jsonl", **overrides)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_config(config)
