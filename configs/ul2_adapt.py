"""UL2 adaptation: a decoder-only Gemma 3 becomes an encoder-decoder (the encoder then starts the
embedding model). `python -m embeddinggemma adapt --config configs/ul2_adapt.py:tiny --workdir DIR`

    :tiny    the tiny preset on this CPU (a random start unless model.init_checkpoint is set)
    :270m    Gemma 3 270M (preset gemma3_270m: width 640, 18 layers, from the decoder importer)
    :300m    the EmbeddingGemma-300M architecture on a TPU pod slice

model.init_checkpoint names the decoder to start from (training/denoising.decoder_start); "" is a
random encoder-decoder. The denoisers and every rate are `ul2.*` (data/ul2.py): by default UL2's
seven, equally weighted (R: mean span 3 and 8 at rate 0.15; X: 3 and 8 at 0.5, 64 at 0.15 and
0.5; S: prefix LM), e.g. `--config.ul2.denoisers.s_prefix.weight=2`,
`--config.ul2.denoisers.x_span3.noise_density=0.4`, `--config.ul2.mode_tokens=True`. Documents
are the corpus's train texts (data.corpus); its held-out splits give the held-out denoising loss.
Optimiser settings are our choices: neither the paper nor T5Gemma's states them for this scale.
"""

from embeddinggemma.training.config import sized_config

# Document lengths in pieces (the encoder gets 3 more, the decoder 1 more; data/ul2.py).
MAX_LENGTHS = {"tiny": 61, "270m": 509, "300m": 509}


def get_config(arg: str = "tiny"):
    if arg not in MAX_LENGTHS:
        raise ValueError(f"Unknown size {arg!r}; choose one of {sorted(MAX_LENGTHS)}.")
    c = sized_config("tiny" if arg == "tiny" else "300m", stage="denoising")
    c.ul2.max_length = MAX_LENGTHS[arg]
    c.eval.every_steps = 50
    if arg == "tiny":
        c.train.batch_size = 16
        c.train.num_steps = 200
        c.optimizer.learning_rate = 1e-3
        c.optimizer.warmup_steps = 20
        c.checkpoint.every_steps = 50
        c.eval.batch_size = 32
    else:
        c.model.preset = "gemma3_270m" if arg == "270m" else "embeddinggemma_300m"
        c.data.corpus = "~/.cache/embeddinggemma/corpus-v3"
        c.train.batch_size = 256
        c.train.num_steps = 10_000
        c.optimizer.learning_rate = 1e-4
        c.optimizer.warmup_steps = 500
        c.checkpoint.every_steps = 1_000
        c.eval.every_steps = 500
        c.ul2.logits_chunk = 128  # [B, 128, 262144] logits at a time, not [B, 510, 262144]
    return c
