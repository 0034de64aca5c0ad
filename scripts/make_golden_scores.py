"""Write golden suite scores of the released EmbeddingGemma-300M: sentence-transformers under mteb.

The reference side of the test that the released checkpoint scores the same through this codebase:
mteb (its own evaluators) runs the sentence-transformers model (torch, float32, CPU, 512 tokens,
prompts from the model's config) on every task of the offline suite. Writes
tests/golden/eval_scores_embeddinggemma_300m.json with the suite's sha256 per task, so the test
compares only scores of identical data.

Usage: .venv/bin/python scripts/make_golden_scores.py [--model-dir DIR] [--suite DIR]
(needs `make install-eval`; about 10 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "golden" / "eval_scores_embeddinggemma_300m.json"
MAX_LENGTH = 512


def main(argv: list[str] | None = None) -> int:
    from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the fetched release")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE_DIR)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    # mteb creates its result cache when imported; keep it out of the home directory.
    os.environ.setdefault("MTEB_CACHE", tempfile.mkdtemp(prefix="mteb-cache-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from embeddinggemma.artefacts import fetch_release
    from embeddinggemma.evaluation.mteb_adapter import evaluate_with_mteb
    from embeddinggemma.evaluation.tasks import ensure_suite, load_suite

    model_dir = args.model_dir or fetch_release()
    tasks = load_suite(ensure_suite(args.suite))
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = MAX_LENGTH
    started = time.perf_counter()
    scores = evaluate_with_mteb(SentenceTransformerEncoderWrapper(model), tasks)
    seconds = time.perf_counter() - started
    versions = {
        p: importlib.metadata.version(p) for p in ("mteb", "sentence-transformers", "transformers", "torch")
    }
    golden = {
        "model": "google/embeddinggemma-300m (sentence-transformers, float32, CPU)",
        "max_length": MAX_LENGTH,
        "generated": datetime.date.today().isoformat(),
        "seconds": round(seconds, 1),
        "versions": versions,
        "suite": {t.name: t.sha256 for t in tasks},
        "scores": scores,
    }
    args.out.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    for name, s in sorted(scores.items()):
        print(f"{name:<32}{s['main_score']:.4f}")
    print(f"wrote {args.out} in {seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
