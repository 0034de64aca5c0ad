"""The search's objectives: parsing, the config fields they need, and the suite score of an export
against nDCG@10 computed from the model's own embeddings by other code."""

import hashlib
import json

import numpy as np
import pytest

from embeddinggemma.api import Embedder
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.errors import ConfigError
from embeddinggemma.evaluation.tasks import Task, prompt_name
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.search.objectives import HELDOUT, SUITE, SearchObjective, check_objective, score_run
from embeddinggemma.training.heldout import ndcg_at_10
from tests.conftest import TOKENIZER_TEXT
from tests.search.conftest import declared_config


@pytest.mark.parametrize("text, kind, tasks", [("heldout", HELDOUT, ()), ("suite", SUITE, ()),
                                               ("suite:A, B", SUITE, ("A", "B"))])
def test_objectives_parse_and_print_back(text, kind, tasks):
    objective = SearchObjective.parse(text)
    assert (objective.kind, objective.tasks) == (kind, tasks)
    assert SearchObjective.parse(str(objective)) == objective


@pytest.mark.parametrize("text", ["suite:", "heldout:A", "mteb", ""])
def test_a_bad_objective_is_named(text):
    with pytest.raises(ConfigError, match=f"--objective={text!r}; valid"):
        SearchObjective.parse(text)


def test_each_objective_names_the_config_field_it_needs():
    config = declared_config()
    with pytest.raises(ConfigError, match="data.corpus, which is empty"):
        check_objective(SearchObjective(HELDOUT), config)
    config.checkpoint.export_params = False
    with pytest.raises(ConfigError, match="checkpoint.export_params is False"):
        check_objective(SearchObjective(SUITE), config)


def retrieval_task(name: str, lines: list[str]) -> Task:
    """Each line's first four words find the line among all of them."""
    data = {"queries": {f"q{i}": " ".join(line.split()[:4]) for i, line in enumerate(lines)},
            "corpus": {f"d{i}": {"title": "", "text": line} for i, line in enumerate(lines)},
            "relevant_docs": {f"q{i}": {f"d{i}": 1} for i in range(len(lines))}}
    digest = hashlib.sha256(json.dumps(data).encode()).hexdigest()
    return Task(name, "Retrieval", ("eng",), "Legal", digest, data)


def test_the_suite_score_is_the_mean_main_score_of_the_tasks_at_full_width(
        tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    save_orbax(tmp_path / "export", tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
    lines = [line.strip() for line in TOKENIZER_TEXT.read_text().splitlines() if len(line.split()) >= 8]
    tasks = [retrieval_task("FirstLines", lines[:12]), retrieval_task("LaterLines", lines[100:112])]
    config = declared_config()  # finetune:tiny: the same preset and Matryoshka dims as tiny_config

    score, details = score_run(SearchObjective(SUITE), config, tmp_path, tasks)

    embedder = Embedder(tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
    expected = {}
    for task in tasks:
        d = task.data
        queries, docs = (
            embedder.encode(texts, prompt_name=prompt_name(DEFAULT_PROMPTS, task.name, task.type, role),
                            max_length=512)
            for texts, role in ((list(d["queries"].values()), "query"),
                                ([doc["text"] for doc in d["corpus"].values()], "document")))
        assert queries.shape[1] == tiny_config.output_dim
        expected[task.name] = float(ndcg_at_10(queries @ docs.T, np.arange(len(queries))).mean())
    assert details.keys() == expected.keys()
    for name in expected:
        assert details[name] == pytest.approx(expected[name], abs=1e-5)
    assert score == pytest.approx(np.mean(list(expected.values())), abs=1e-5)
