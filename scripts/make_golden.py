"""Write golden reference embeddings of the released EmbeddingGemma-300M.

Runs the reference implementation (sentence-transformers on torch, float32, CPU) on a fixed set
of texts and writes
  tests/golden/embeddinggemma_300m.json  records (text, prompt, token ids) plus metadata
  tests/golden/embeddinggemma_300m.npz   `embeddings`, float32 [N, 768], in the JSON's order
Each text is encoded alone (batch of 1, no padding), so the vectors do not depend on batching.

Inputs are chosen deterministically: hand-written sentences, gettext catalogs (sorted, fixed
languages, never glib20, which is reserved for evaluation), one numpy function's source, and
licences from /usr/share/common-licenses cut by token count.

Usage: .venv/bin/python scripts/make_golden.py [--model-dir DIR] [--out-dir tests/golden]
"""

from __future__ import annotations

import argparse
import datetime
import gettext
import importlib.metadata
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

MAX_SEQ_LENGTH = 2048
OUT_NAME = "embeddinggemma_300m"
LOCALE_ROOT = Path("/usr/share/locale")
LICENSE_ROOT = Path("/usr/share/common-licenses")
RESERVED_CATALOGS = {"glib20.mo"}
# Scripts: Japanese, Chinese, Cyrillic, Arabic, Devanagari, Greek, Hangul, Hebrew.
NON_LATIN_LANGS = (("ja", "Retrieval-query"), ("zh_CN", "document"), ("ru", "STS"),
                   ("ar", "Classification"), ("hi", "query"), ("el", "Clustering"),
                   ("ko", "document"), ("he", None))

# One short text per prompt name of config_sentence_transformers.json.
PROMPT_NAME_TEXTS = {
    "query": "How do I check that a downloaded file has not been corrupted?",
    "document": "The sha256sum utility prints a SHA-256 digest for each file it reads; compare it "
                "with the value published by the distributor.",
    "BitextMining": "The weather in Lisbon stays mild throughout the winter.",
    "Clustering": "Quarterly earnings beat analyst expectations as cloud revenue grew 28 percent.",
    "Classification": "This movie was a complete waste of two hours; the plot made no sense.",
    "InstructionRetrieval": "Find Python code that parses a date string in ISO 8601 format.",
    "MultilabelClassification": "The phone has a brilliant display, but the battery barely lasts a "
                                "day and it overheats while gaming.",
    "PairClassification": "A man is playing a guitar on stage.",
    "Reranking": "best practices for securing an SSH server",
    "Retrieval": "what is the boiling point of water at high altitude",
    "Retrieval-query": "symptoms of vitamin D deficiency",
    "Retrieval-document": "Vitamin D deficiency can cause bone pain, muscle weakness and fatigue; "
                          "in children a severe deficiency leads to rickets.",
    "STS": "Two dogs are running through a snowy field.",
    "Summarization": "The city council voted on Tuesday to extend the bike lane network by 40 "
                     "kilometres over the next three years, funded by a parking levy.",
}

# PAPER.md prompts that the checkpoint's json does not name.
EXPLICIT_PROMPT_TEXTS = (
    ("question_answering", "task: question answering | query: ",
     "Who wrote the novel One Hundred Years of Solitude?"),
    ("fact_checking", "task: fact checking | query: ",
     "The Great Wall of China is visible from the Moon with the naked eye."),
)

MODEL_CARD_QUERY = "Which planet is known as the Red Planet?"
MODEL_CARD_DOCUMENTS = (
    "Venus is often called Earth's twin because of its similar size and proximity.",
    "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
    "Jupiter, the largest planet in our solar system, has a prominent red spot.",
    "Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
)

# (record name, licence file, target token count, prompt name); the last one exceeds 2048.
LONG_TEXTS = (
    ("license_apache_600_tokens", "Apache-2.0", 600, "document"),
    ("license_gpl2_1200_tokens", "GPL-2", 1200, "Retrieval-document"),
    ("license_gpl3_over_2048_tokens", "GPL-3", 3000, "document"),
)


def record(name: str, text: str, prompts: dict[str, str], prompt_name: str | None = None,
           prompt: str | None = None, title: str | None = None, source: str = "hand-written"
           ) -> dict:
    """Build one record; `prompt` is resolved from `prompt_name` unless given explicitly."""
    if prompt is None:
        prompt = prompts[prompt_name] if prompt_name is not None else ""
    return {"name": name, "text": text, "prompt_name": prompt_name, "prompt": prompt,
            "title": title, "source": source}


def catalog_paragraph(lang: str, n_messages: int = 3) -> tuple[str, str]:
    """Join the first few long translated messages of the first usable catalog of `lang`.

    Catalogs are scanned in sorted order (glib20 excluded); a message qualifies when its English
    msgid is 60..400 characters and it has a translation different from the msgid.
    """
    catalog_dir = LOCALE_ROOT / lang / "LC_MESSAGES"
    for path in sorted(catalog_dir.glob("*.mo")):
        if path.name in RESERVED_CATALOGS or path.name.startswith("iso_"):
            continue
        with open(path, "rb") as handle:
            messages = gettext.GNUTranslations(handle)._catalog
        picked = sorted((msgid, text) for msgid, text in messages.items()
                        if isinstance(msgid, str) and 60 <= len(msgid) <= 400
                        and text and text != msgid)
        if len(picked) >= n_messages:
            return " ".join(text for _, text in picked[:n_messages]), str(path)
    raise RuntimeError(f"no usable gettext catalog for {lang} in {catalog_dir}")


def package_title_and_body(package: str) -> tuple[str, str]:
    """Return (Summary, first prose paragraph of the description) from a package's METADATA."""
    metadata = importlib.metadata.metadata(package)
    description = metadata.get_payload() or metadata.get("Description") or ""
    for paragraph in description.split("\n\n"):
        paragraph = " ".join(paragraph.split())
        if len(paragraph) >= 80 and paragraph[0] not in "#[!<|-*`=":
            return metadata["Summary"], paragraph
    raise RuntimeError(f"no prose paragraph in the description of {package}")


def cut_to_tokens(text: str, target: int, count_tokens) -> str:
    """Keep whole lines of `text` until the token count first reaches `target`."""
    kept: list[str] = []
    for line in text.splitlines():
        kept.append(line)
        if count_tokens("\n".join(kept)) >= target:
            break
    return "\n".join(kept)


def build_records(prompts: dict[str, str], count_tokens) -> list[dict]:
    """Assemble the full, ordered list of golden records."""
    records = [record(f"prompt_{name}", text, prompts, prompt_name=name)
               for name, text in PROMPT_NAME_TEXTS.items()]
    if set(PROMPT_NAME_TEXTS) != set(prompts):
        raise RuntimeError(f"checkpoint prompt names changed: {sorted(prompts)}")
    for name, prompt, text in EXPLICIT_PROMPT_TEXTS:
        records.append(record(f"explicit_{name}", text, prompts, prompt=prompt))
    for package in ("jinja2", "optax"):
        title, body = package_title_and_body(package)
        records.append(record(f"titled_document_{package}", body, prompts,
                              prompt=f"title: {title} | text: ", title=title,
                              source=f"{package} METADATA"))
    records += [
        record("no_prompt_english", "The quick brown fox jumps over the lazy dog.", prompts),
        record("no_prompt_whitespace_symbols", "Tabs\tand  double  spaces\nnew lines, emoji "
               "\U0001F680\U0001F642, accents café naïve Zürich, math \u2211 x\u00b2 \u2264 10, "
               "\u201cquotes\u201d \u2014 dash", prompts),
        record("empty_no_prompt", "", prompts),
        record("empty_query_prompt", "", prompts, prompt_name="query"),
        record("model_card_query", MODEL_CARD_QUERY, prompts, prompt_name="query",
               source="model card"),
    ]
    for index, text in enumerate(MODEL_CARD_DOCUMENTS):
        records.append(record(f"model_card_document_{index}", text, prompts,
                              prompt_name="document", source="model card"))
    for lang, prompt_name in NON_LATIN_LANGS:
        text, source = catalog_paragraph(lang)
        records.append(record(f"gettext_{lang}", text, prompts, prompt_name=prompt_name,
                              source=source))
    code = inspect.getsource(np.outer)
    docstring_summary = inspect.getdoc(np.outer).split("\n\n")[0]
    records.append(record("code_query_numpy_outer_docstring", docstring_summary, prompts,
                          prompt_name="InstructionRetrieval", source="numpy.outer docstring"))
    records.append(record("code_document_numpy_outer_source", code, prompts,
                          prompt_name="document", source="inspect.getsource(numpy.outer)"))
    for name, license_name, target, prompt_name in LONG_TEXTS:
        path = LICENSE_ROOT / license_name
        text = cut_to_tokens(path.read_text(encoding="utf-8"), target, count_tokens)
        records.append(record(name, text, prompts, prompt_name=prompt_name, source=str(path)))
    return records


def encode_alone(model, item: dict) -> tuple[list[int], np.ndarray]:
    """Token ids and the float32 embedding of one record, encoded as a batch of one."""
    prompt = item["prompt"] or None
    features = model.preprocess([item["text"]], prompt=prompt)
    token_ids = features["input_ids"][0].tolist()
    expected = model.tokenizer(item["prompt"] + item["text"], truncation=True,
                               max_length=MAX_SEQ_LENGTH)["input_ids"]
    if token_ids != expected or token_ids[0] != 2 or token_ids[-1] != 1:
        raise RuntimeError(f"unexpected tokenization for record {item['name']}")
    if item["prompt_name"] is not None:
        kwargs = {"prompt_name": item["prompt_name"]}
    else:
        kwargs = {"prompt": prompt}
    embedding = model.encode([item["text"]], batch_size=1, convert_to_numpy=True, **kwargs)[0]
    return token_ids, embedding.astype(np.float32)


def golden_json(metadata: dict, records: list[dict]) -> str:
    """Serialise as {"metadata": ..., "records": [...]} with one record per line (diffable, small)."""
    lines = [json.dumps(item, ensure_ascii=False) for item in records]
    return ('{\n"metadata": ' + json.dumps(metadata, ensure_ascii=False, indent=1)
            + ',\n"records": [\n' + ",\n".join(lines) + "\n]\n}\n")


def main(argv: list[str] | None = None) -> int:
    """Generate the golden JSON and npz files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=None,
                        help="release directory (default: embeddinggemma.artefacts.fetch_release())")
    parser.add_argument("--out-dir", default=str(Path(__file__).resolve().parents[1] / "tests"
                                                 / "golden"))
    args = parser.parse_args(argv)

    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    from embeddinggemma import artefacts as fetch

    started = time.perf_counter()
    model_dir = Path(args.model_dir) if args.model_dir else fetch.fetch_release()
    torch.manual_seed(0)
    model = SentenceTransformer(str(model_dir), device="cpu", model_kwargs={"dtype": torch.float32})
    model.eval()
    if model.max_seq_length != MAX_SEQ_LENGTH:
        raise RuntimeError(f"max_seq_length is {model.max_seq_length}, expected {MAX_SEQ_LENGTH}")

    def count_tokens(text: str) -> int:
        return len(model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    records = build_records(dict(model.prompts), count_tokens)
    embeddings = []
    with torch.inference_mode():
        for item in records:
            item["token_ids"], vector = encode_alone(model, item)
            embeddings.append(vector)
            print(f"{item['name']}: {len(item['token_ids'])} tokens", file=sys.stderr)

    weights = model_dir / fetch.WEIGHTS_FILE
    model_sha256 = (fetch.RELEASE_SHA256 if fetch.is_verified(model_dir)
                    else fetch.sha256_file(weights))
    metadata = {
        "generator": "scripts/make_golden.py",
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "model": "google/embeddinggemma-300m",
        "model_sha256": model_sha256,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "sentence_transformers": sentence_transformers.__version__,
                     "numpy": np.__version__, "python": sys.version.split()[0]},
        "device": "cpu",
        "dtype": "float32",
        "attn_implementation": model[0].auto_model.config._attn_implementation,
        "max_seq_length": MAX_SEQ_LENGTH,
        "encoding": "each record alone: batch of 1, no padding; embeddings L2-normalised",
        "num_records": len(records),
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{OUT_NAME}.json").write_text(golden_json(metadata, records), encoding="utf-8")
    np.savez(out_dir / f"{OUT_NAME}.npz", embeddings=np.stack(embeddings).astype(np.float32))
    print(f"wrote {len(records)} records to {out_dir} in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
