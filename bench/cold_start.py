"""One cold start, run in a fresh process by `bench/run.py`: import, load, embed one batch.

    python bench/cold_start.py {embedder,sentence_transformers} MODEL_DIR TEXTS_JSON

TEXTS_JSON holds {"texts": [...], "prompt_name": ..., "max_length": ..., "torch_threads": ...}.
Prints one JSON line: import_s, load_s, first_batch_s and since_start_s (from the first line of this
script, so interpreter start-up is excluded; the parent also times the whole process).
"""

import time

_START = time.perf_counter()  # before any other import: imports are part of a cold start

import json  # noqa: E402
import sys  # noqa: E402


def _embedder(model_dir: str, spec: dict) -> dict:
    t0 = time.perf_counter()
    from embeddinggemma import Embedder
    t1 = time.perf_counter()
    embedder = Embedder.load(model_dir, dtype="float32")
    t2 = time.perf_counter()
    embedder.encode(spec["texts"], prompt_name=spec["prompt_name"], batch_size=len(spec["texts"]),
                    max_length=spec["max_length"], show_progress=False)
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "load_s": t2 - t1, "first_batch_s": t3 - t2}


def _sentence_transformers(model_dir: str, spec: dict) -> dict:
    t0 = time.perf_counter()
    import torch
    from sentence_transformers import SentenceTransformer
    t1 = time.perf_counter()
    torch.set_num_threads(spec["torch_threads"])
    model = SentenceTransformer(model_dir, device="cpu")
    model.max_seq_length = spec["max_length"]
    t2 = time.perf_counter()
    model.encode(spec["texts"], prompt_name=spec["prompt_name"], batch_size=len(spec["texts"]),
                 show_progress_bar=False)
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "load_s": t2 - t1, "first_batch_s": t3 - t2}


def main(argv: list[str]) -> int:
    impl, model_dir, texts_path = argv
    with open(texts_path, encoding="utf-8") as f:
        spec = json.load(f)
    runners = {"embedder": _embedder, "sentence_transformers": _sentence_transformers}
    result = runners[impl](model_dir, spec)
    result["since_start_s"] = time.perf_counter() - _START
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
