"""Pre-finetuning: (query, target) pairs without hard negatives, large batches.

    --config configs/prefinetune.py:tiny    a CPU-sized run
    --config configs/prefinetune.py:300m    EmbeddingGemma-300M on a TPU pod slice

The paper states the data (evenly weighted QA, sentence similarity, code retrieval, web search,
title/body pairs; ~314B tokens) but no optimiser settings: the numbers below are our choices.
"""

from embeddinggemma.training.config import sized_config


def get_config(arg: str = "tiny"):
    c = sized_config(arg)
    c.train.hard_negatives = False
    if arg == "tiny":
        c.train.batch_size = 64
        c.train.num_steps = 300
        c.optimizer.learning_rate = 1e-3
        c.optimizer.warmup_steps = 30
        c.checkpoint.every_steps = 100
    else:
        # A large in-batch pool; gradient caching keeps the activations of one chunk at a time.
        c.train.batch_size = 8192
        c.train.grad_cache_chunk_size = 512
        c.train.num_steps = 100_000
        c.optimizer.learning_rate = 2e-4
        c.optimizer.warmup_steps = 2_000
        c.checkpoint.every_steps = 2_000
    return c
