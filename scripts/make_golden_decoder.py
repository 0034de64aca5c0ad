"""Write golden next-token logits and perplexity of the Gemma 3 270M GGUF from transformers.

An independent implementation loads the same file: transformers' GGUF loader (it dequantises with
the `gguf` package too, so both sides start from the same float32 weights) and its torch
Gemma3ForCausalLM, float32, CPU. Before its numbers are trusted, its loaded tensors are compared
with ours (`load_decoder`) under Hugging Face names and its config with the conventions our loader
assumes (local RoPE base, layer pattern, attention scale); a mismatch stops the script.

Writes tests/golden/gemma3_270m_decoder.json:
  sentences: [{text, tokens ([BOS] + pieces), top_ids/top_logits (the reference's top-K logits at
              every position), next_log_probs (log p of each actual next token)}]
  license:   {file, tokens (the first N of [BOS] + pieces), next_log_probs, nll, perplexity}
  metadata:  versions, the GGUF's sha256, the largest tensor difference found.

Usage: .venv/bin/python scripts/make_golden_decoder.py [--gguf FILE] [--out tests/golden/...]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import sys
from pathlib import Path

import numpy as np

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital and largest city of France.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "She opened the window to let the fresh morning air into the room.",
)
LICENSE_FILE = Path("/usr/share/common-licenses/Apache-2.0")
LICENSE_TOKENS = 1024
TOP_K = 8
OUT = Path(__file__).resolve().parents[1] / "tests" / "golden" / "gemma3_270m_decoder.json"


def _check_config(config) -> None:
    want = {"rope_local_base_freq": 10_000.0, "query_pre_attn_scalar": 256, "sliding_window": 512,
            "rope_theta": 1_000_000.0, "final_logit_softcapping": None, "attn_logit_softcapping": None}
    got = {k: getattr(config, k, None) for k in want}
    params = getattr(config, "rope_parameters", None) or {}
    if got["rope_theta"] is None and "full_attention" in params:  # transformers >= 5 nests them
        got["rope_theta"] = params["full_attention"].get("rope_theta")
        got["rope_local_base_freq"] = params["sliding_attention"].get("rope_theta")
    bad = {k: (got[k], v) for k, v in want.items() if got[k] != v}
    if bad:
        raise SystemExit(f"transformers' config differs from the conventions (got, want): {bad}")
    pattern = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(18)]
    if list(config.layer_types) != pattern:
        raise SystemExit(f"transformers' layer_types {config.layer_types} are not Gemma 3's 5:1 pattern")


def _compare_tensors(model, gguf_path: Path, tokenizer: Path) -> float:
    from embeddinggemma.checkpoint.decoders import load_decoder
    from embeddinggemma.checkpoint.hf_gemma3 import transformer_to_hf

    ours = load_decoder(gguf_path, tokenizer)
    theirs = {k.removeprefix("model."): v.detach().numpy() for k, v in model.state_dict().items()}
    worst = 0.0
    for name, w in transformer_to_hf(ours.params, ours.config).items():
        if name not in theirs:
            raise SystemExit(f"transformers has no tensor {name}")
        diff = float(np.abs(theirs[name] - w).max())
        if diff > 1e-6:
            raise SystemExit(f"tensor {name} differs from ours by {diff}")
        worst = max(worst, diff)
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", default=None, help="GGUF file (default: fetched)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    import torch
    import transformers

    from embeddinggemma.artefacts import GGUF_SHA256, fetch_gemma3_270m_gguf, fetch_release, sha256_file
    from embeddinggemma.tokenizer import Tokenizer

    gguf_path = Path(args.gguf) if args.gguf else fetch_gemma3_270m_gguf()
    sha256 = sha256_file(gguf_path)
    tokenizer_path = fetch_release() / "tokenizer.model"
    tokenizer = Tokenizer(tokenizer_path)
    torch.set_grad_enabled(False)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    model.eval()
    _check_config(model.config)
    worst = _compare_tensors(model, gguf_path, tokenizer_path)
    print(f"tensors agree with ours within {worst:.2e}", file=sys.stderr)

    def run(ids: list[int]):
        logits = model(torch.tensor([ids])).logits[0].double()
        log_probs = torch.log_softmax(logits, dim=-1)
        nxt = log_probs[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        return logits, nxt.tolist()

    sentences = []
    for text in SENTENCES:
        ids = [tokenizer.bos_id] + tokenizer.processor.encode(text, out_type=int)
        logits, nxt = run(ids)
        top = torch.topk(logits, TOP_K, dim=-1)
        sentences.append({"text": text, "tokens": ids, "top_ids": top.indices.tolist(),
                          "top_logits": top.values.tolist(), "next_log_probs": nxt})
    text = LICENSE_FILE.read_text(encoding="utf-8")
    ids = ([tokenizer.bos_id] + tokenizer.processor.encode(text, out_type=int))[:LICENSE_TOKENS]
    _, nxt = run(ids)
    nll = -float(np.mean(nxt))
    print(f"license: {len(ids)} tokens, nll {nll:.5f}, perplexity {math.exp(nll):.4f}", file=sys.stderr)
    golden = {
        "sentences": sentences,
        "license": {"file": str(LICENSE_FILE), "tokens": ids, "next_log_probs": nxt, "nll": nll,
                    "perplexity": math.exp(nll)},
        "metadata": {"reference": "transformers Gemma3ForCausalLM from the GGUF, float32, CPU",
                     "transformers": transformers.__version__, "torch": torch.__version__,
                     "gguf": importlib.metadata.version("gguf"), "gguf_sha256": sha256,
                     "expected_gguf_sha256": GGUF_SHA256, "max_tensor_difference": worst,
                     "top_k": TOP_K, "created": datetime.date.today().isoformat()},
    }
    Path(args.out).write_text(json.dumps(golden) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
