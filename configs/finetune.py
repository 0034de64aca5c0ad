"""Finetuning: one hard negative per example, smaller batches.

    --config configs/finetune.py:tiny    a CPU-sized run
    --config configs/finetune.py:300m    EmbeddingGemma-300M on a TPU pod slice

The paper states the data (task-, language- and code-diversity mixtures; ~20B tokens) and the
hardness weighting (alpha 5.0) but no optimiser settings: the numbers below are our choices.
"""

from embeddinggemma.training.config import sized_config


def get_config(arg: str = "tiny"):
    c = sized_config(arg)
    c.train.hard_negatives = True
    if arg == "tiny":
        c.train.batch_size = 32
        c.train.num_steps = 300
        c.optimizer.learning_rate = 5e-4
        c.optimizer.warmup_steps = 30
        c.checkpoint.every_steps = 100
    else:
        c.train.batch_size = 1024
        c.train.grad_cache_chunk_size = 256
        c.train.num_steps = 20_000
        c.optimizer.learning_rate = 5e-5
        c.optimizer.warmup_steps = 500
        c.checkpoint.every_steps = 1_000
    return c
