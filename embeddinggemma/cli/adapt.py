"""Command line: UL2 adaptation of a decoder into an encoder-decoder, resuming from the work
directory's latest checkpoint.

    python -m embeddinggemma adapt --config configs/ul2_adapt.py:tiny --workdir DIR \\
        [--config.model.init_checkpoint=DECODER --config.train.num_steps=200 ...]

The same trainer assembly, loop, checkpoints, metrics, progress, several-host flags and exit
statuses as `python -m embeddinggemma train`, with the denoising stage (training/denoising.py).
`DIR/export` holds the encoder-decoder; `checkpoint.encoder_decoder.load_adapted_encoder(DIR)` gives its
encoder to start an embedding model from.
"""

from __future__ import annotations

import sys

from embeddinggemma.cli.train import main as train_main


def main(argv: list[str] | None = None) -> int:
    return train_main(argv, program="adapt", required_stage="denoising")


if __name__ == "__main__":
    sys.exit(main())
