"""The model card's example with the released checkpoint (`make model-card`).

Prints the similarity of the query "Which planet is known as the Red Planet?" to four documents,
at every Matryoshka dimension.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from embeddinggemma.api import Embedder
from embeddinggemma.artefacts import fetch_release

QUERY = "Which planet is known as the Red Planet?"
DOCUMENTS = [
    "Venus is often called Earth's twin because of its similar size and proximity.",
    "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
    "Jupiter, the largest planet in our solar system, has a prominent red spot.",
    "Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m embeddinggemma model_card",
                            description=__doc__.split("\n\n")[0]).parse_args(argv)
    start = time.perf_counter()
    model_dir = fetch_release()
    embedder = Embedder.load(model_dir)
    print(f"loaded {model_dir} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    dims = embedder.config.matryoshka_dims
    scores = np.stack([
        embedder.encode(DOCUMENTS, prompt_name="document", dim=d)
        @ embedder.encode(QUERY, prompt_name="query", dim=d)
        for d in dims
    ], axis=1)  # [documents, dims]
    print(f"query: {QUERY}\n")
    print(f"{'cosine similarity at dimension':<82}" + "".join(f"{d:>8}" for d in dims))
    for doc, row in zip(DOCUMENTS, scores, strict=True):
        print(f"{doc[:80]:<82}" + "".join(f"{s:8.4f}" for s in row))
    print(f"\nbest match: {DOCUMENTS[int(np.argmax(scores[:, 0]))]}")
    print(f"total {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
