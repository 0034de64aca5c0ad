"""Task prompts: the exact strings (trailing space included) prepended to texts before tokenising.

Names follow the released checkpoint's `config_sentence_transformers.json` (MTEB task types plus
`query` and `document`); `QuestionAnswering` and `FactChecking` add the paper's two other prompts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

SEARCH_QUERY = "task: search result | query: "
DOCUMENT = "title: none | text: "

DEFAULT_PROMPTS: dict[str, str] = {
    "query": SEARCH_QUERY,
    "document": DOCUMENT,
    "BitextMining": SEARCH_QUERY,
    "Clustering": "task: clustering | query: ",
    "Classification": "task: classification | query: ",
    "InstructionRetrieval": "task: code retrieval | query: ",
    "MultilabelClassification": "task: classification | query: ",
    "PairClassification": "task: sentence similarity | query: ",
    "Reranking": SEARCH_QUERY,
    "Retrieval": SEARCH_QUERY,
    "Retrieval-query": SEARCH_QUERY,
    "Retrieval-document": DOCUMENT,
    "STS": "task: sentence similarity | query: ",
    "Summarization": "task: summarization | query: ",
    "QuestionAnswering": "task: question answering | query: ",
    "FactChecking": "task: fact checking | query: ",
}


def document_prompt(title: str | None) -> str:
    """`title: {title} | text: `, with `none` when there is no title."""
    return f"title: {'none' if title is None else title} | text: "


def load_prompts(model_dir: str | Path, defaults: Mapping[str, str] = DEFAULT_PROMPTS) -> dict[str, str]:
    """`defaults`, overridden and extended by the prompts of `config_sentence_transformers.json`."""
    prompts = dict(defaults)
    path = Path(model_dir) / "config_sentence_transformers.json"
    if path.exists():
        try:
            found = json.loads(path.read_text()).get("prompts") or {}
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
        bad = [k for k, v in found.items() if not isinstance(v, str)]
        if bad:
            raise ValueError(f"{path}: prompts {bad} are not strings.")
        prompts.update(found)
    return prompts


def resolve_prompt(prompts: Mapping[str, str], prompt_name: str | None) -> str:
    """The prompt string for a name ("" for None); an unknown name lists the valid ones."""
    if prompt_name is None:
        return ""
    if prompt_name not in prompts:
        raise ValueError(f"Unknown prompt name {prompt_name!r}; valid names: {', '.join(sorted(prompts))}.")
    return prompts[prompt_name]
