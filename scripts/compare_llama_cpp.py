"""Embed a few texts with llama.cpp (llama-cpp-python) from this codebase's GGUF export and compare
with `Embedder.encode` of the same checkpoint: the cosine per GGUF type, and whether llama.cpp's
tokenizer gives this codebase's token ids.

llama-cpp-python compiles llama.cpp from source (`pip install llama-cpp-python`, a reference-only
tool, never a dependency of the package). Not a CI test: it exports the checkpoint once per type.

Usage: .venv/bin/python scripts/compare_llama_cpp.py --checkpoint ~/.cache/embeddinggemma/embeddinggemma-300m
           [--types f32,q8_0] [--prompt query] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "How do I export a JAX model to GGUF for llama.cpp?",
    "Gemma 3 alternates five sliding-window layers with one global attention layer.",
    "La tour Eiffel a été construite pour l'Exposition universelle de 1889.",
    "東京は日本の首都です。",
    "def mean(xs):\n    return sum(xs) / len(xs)",
    "Quantisation to eight bits per weight keeps embeddings close to the float model.",
    "What is the boiling point of water at sea level?",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--types", default="f32,q8_0", help="comma-separated GGUF types to export and run")
    parser.add_argument("--prompt", default="query", help="the prompt name prepended to every text")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    from llama_cpp import Llama

    from embeddinggemma import Embedder
    from embeddinggemma.checkpoint.export import export
    from embeddinggemma.checkpoint.gguf_export import SCHEME_OF_TYPE
    from embeddinggemma.model.layout import embedder_layout
    from embeddinggemma.quantization import quantize_params

    ours = Embedder.load(args.checkpoint)
    prefix = ours.prompts.get(args.prompt, "")
    texts = [prefix + t for t in TEXTS]
    reference = ours.encode(texts)
    our_ids = ours.tokenize(texts)
    with tempfile.TemporaryDirectory() as tmp:
        for gguf_type in args.types.split(","):
            path = export(args.checkpoint, Path(tmp) / f"model-{gguf_type}.gguf", "gguf", gguf_type=gguf_type)
            start = time.perf_counter()
            llm = Llama(model_path=str(path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                        n_threads=args.threads, verbose=False)
            theirs = np.array([llm.embed(t, normalize=True) for t in texts], np.float32)
            seconds = time.perf_counter() - start
            ids_agree = sum(llm.tokenize(t.encode("utf-8"), add_bos=True, special=False) == ids
                            for t, ids in zip(texts, our_ids, strict=True))
            same_scheme = reference
            if gguf_type in SCHEME_OF_TYPE:  # against our own model on the same quantisation grid
                quantized = Embedder(ours.config, quantize_params(ours.params, SCHEME_OF_TYPE[gguf_type],
                                                                   embedder_layout(ours.config)),
                                     ours.tokenizer.model_path, ours.prompts)
                same_scheme = quantized.encode(texts)
            cos = np.sum(theirs * reference, axis=-1)
            cos_same = np.sum(theirs * same_scheme, axis=-1)
            print(f"{gguf_type}: 1 - cosine with our float32 embeddings max {1 - cos.min():.2e} "
                  f"mean {1 - cos.mean():.2e}; with ours on the same grid max {1 - cos_same.min():.2e} "
                  f"mean {1 - cos_same.mean():.2e}; token ids equal for {ids_agree}/{len(texts)} texts; "
                  f"llama.cpp {seconds:.1f} s", flush=True)
            del llm
    return 0


if __name__ == "__main__":
    sys.exit(main())
