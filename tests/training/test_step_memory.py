"""The train step's memory per token against the arithmetic of each remat choice
(planning/remat.py), from XLA's compile-only memory analysis: nothing runs.

What a layer adds is the difference between the step of the tiny preset cut to 3 layers and to 1
(what does not grow with the layers cancels); it must stay within twice what the remat choice
requires the backward pass to keep. Before the elementwise work was recomputed and the softmax
kept only its probabilities, `none` held 2.8 times its requirement here.
"""

from __future__ import annotations

import jax
import pytest

from embeddinggemma.planning.plan import memory, programs
from embeddinggemma.planning.remat import saved_bytes
from embeddinggemma.training.config_files import load_config
from embeddinggemma.training.embedding_config import model_config

BATCH = 16


def _temp_bytes(remat: str, layers: int) -> tuple[int, object]:
    config = load_config("configs/finetune.py:tiny")
    with config.unlocked():
        config.model.keep_layers = layers
        config.model.remat = remat
        config.train.batch_size = BATCH
        config.mesh.shape = (1, 1, 1)
    assert config.model.dtype == "float32"  # 4-byte values on every backend
    _, (train_step, _) = programs(config, jax.devices()[:1])
    compiled = train_step.jitted.lower(*train_step.args).compile()
    return memory(compiled)["temp_bytes"], config


@pytest.mark.slow  # two compiles of the tiny step per choice, about 40 s each on 2 cores
@pytest.mark.parametrize("remat", ["none", "matmuls", "full"])
def test_each_layer_holds_within_twice_what_its_remat_requires(remat):
    one, _ = _temp_bytes(remat, 1)
    three, config = _temp_bytes(remat, 3)
    t = config.train
    lengths = {t.max_query_length: BATCH, t.max_document_length: 2 * BATCH}  # query, positive, negative
    two_layers = model_config(config).transformer.first_layers(2)
    required = saved_bytes(two_layers, remat, lengths, itemsize=4)
    assert three - one <= 2 * required, (remat, three - one, required)
