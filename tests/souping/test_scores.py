"""The suite score greedy soup ranks by: parameters in memory score as the evaluate command scores
the same parameters saved as a checkpoint."""

import numpy as np

from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.evaluation.evaluate_checkpoints import evaluate_checkpoints
from embeddinggemma.evaluation.tasks import Task
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.souping.scores import suite_score
from tests.souping.conftest import perturbed
from tests.test_export import catalog_texts


def test_the_suite_score_is_the_evaluate_commands_mean_main_score(tmp_path, tiny_config, tiny_params,
                                                                   tiny_tokenizer_path):
    texts = catalog_texts(60)
    first, second = texts[0::2], texts[1::2]  # a message and its translation
    tasks = [Task(f"Pairs{k}", "PairClassification", ("en",), "test", f"sha{k}",
                  {"sentence1": first[k:] + first[k:],
                   "sentence2": second[k:] + second[k + 1:] + second[k:k + 1],  # and another's
                   "labels": [1] * (len(first) - k) + [0] * (len(first) - k)}) for k in (0, 5)]
    params = perturbed(tiny_params, 7)
    score = suite_score(tasks, tiny_config, tiny_tokenizer_path, DEFAULT_PROMPTS)(params)

    ckpt = save_orbax(tmp_path / "ckpt", tiny_config, params, tiny_tokenizer_path, DEFAULT_PROMPTS)
    rows = evaluate_checkpoints([ckpt], tasks, dims=[64], progress=False)
    assert len(rows) == 2
    assert abs(score - np.mean([r["main_score"] for r in rows])) < 1e-6
