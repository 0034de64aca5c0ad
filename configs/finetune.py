"""Finetuning: one hard negative per example, smaller batches.

    --config configs/finetune.py:tiny     a CPU-sized run
    --config configs/finetune.py:300m     EmbeddingGemma-300M on a TPU pod slice
    --config configs/finetune.py:release  the released 300M finetuned on your own pairs, distilled
                                          from itself (README: Training, "Your pairs, the release")

The paper states the data (task-, language- and code-diversity mixtures; ~20B tokens) and the
hardness weighting (alpha 5.0) but no optimiser settings: the numbers below are our choices.
"""

from embeddinggemma.data.config import dataset_config
from embeddinggemma.training.config import sized_config

# Where the worked example's pairs come from; point `data.datasets.pairs.path` at your own triples
# (`python -m embeddinggemma mine ... --out triples.jsonl`).
RELEASE_PAIRS = "~/.cache/embeddinggemma/corpus-v3/code/train.jsonl"


def get_config(arg: str = "tiny"):
    if arg == "release":
        return release_config()
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


def release_config():
    """A short finetune of the released checkpoint on one dataset of (query, positive, negative)."""
    c = sized_config("300m")
    # Start from the release (the sentence-transformers directory `python -m embeddinggemma fetch`
    # caches); its tokenizer and prompts come with it.
    c.model.init = "embedder"
    c.model.init_checkpoint = "~/.cache/embeddinggemma/embeddinggemma-300m"
    # float32 compute: on a CPU bfloat16 is slower, and a few hundred steps at a small learning
    # rate are where bfloat16's rounding of the updates would show. On a TPU or GPU set
    # model.dtype=bfloat16 (the :300m setting) for speed. "full" remat keeps one block's
    # activations at a time: 300M with 64-example chunks fits a 16 GiB chip.
    c.model.dtype = "float32"
    c.model.remat = "full"
    # Plain data parallelism: the whole model (1.2 GB of parameters, 3.6 GB more of Adam state)
    # fits on every chip, and one device (the CPU) is the same config.
    c.mesh.shape = (-1, 1, 1)
    # The user's pairs: one dataset, its records with `negative` (mined by `mine`).
    c.data.corpus = ""
    with c.unlocked():
        c.data.datasets.pairs = dataset_config(RELEASE_PAIRS)
    c.train.hard_negatives = True  # the mined negatives are the point of mining them
    # 64 in-batch negatives per query, computed 16 at a time by gradient caching: the negatives of
    # a large batch with the memory of a small one (on a pod slice, raise batch_size, not the chunk).
    c.train.batch_size = 64
    c.train.grad_cache_chunk_size = 16
    # Queries are short; 256 document tokens hold most functions and paragraphs (the release's
    # 2048 would cost 8x the attention for the few that are longer).
    c.train.max_query_length = 64
    c.train.max_document_length = 256
    # A finetune of a trained model: a learning rate ~1/10 of pre-training's and a short warm-up
    # (the Adam statistics settle in a few steps), decaying to 0 over a short run.
    c.optimizer.learning_rate = 2e-5
    c.optimizer.warmup_steps = 10
    c.optimizer.decay = "cosine"
    c.train.num_steps = 200
    # Keep what the release knew: distil every role's embedding towards the release's own (the
    # teacher is the starting checkpoint, embedded once into the run directory), with the same
    # weight as the contrastive term.
    c.loss.teacher_is_init = True
    c.loss.distillation_weight = 1.0
    # The paper's Matryoshka dims, so 768..128 stay usable after the finetune.
    c.loss.matryoshka_dims = (768, 512, 256, 128)
    # No held-out split of user data is known here; evaluate the export with `evaluate`.
    c.eval.every_steps = 0
    c.checkpoint.every_steps = 50
    c.checkpoint.keep = 2
    return c
