"""The offline suite's tasks as files: loading, checking, and the prompt each input gets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from embeddinggemma.evaluation.build import DEFAULT_SUITE_DIR, MANIFEST, build_suite, read_manifest
from embeddinggemma.paths import AnyPath, as_path

logger = logging.getLogger(__name__)

# The score each task type is ranked by, as MTEB names it.
MAIN_SCORES = {
    "Retrieval": "ndcg_at_10",
    "BitextMining": "f1",
    "Classification": "accuracy",
    "Clustering": "v_measure",
    "PairClassification": "max_ap",
    "STS": "cosine_spearman",
}


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    type: str
    languages: tuple[str, ...]
    domain: str
    sha256: str  # of the task file: the data's identity (caches and golden scores key on it)
    data: Mapping

    @property
    def main_score(self) -> str:
        return MAIN_SCORES[self.type]


def prompt_name(prompts: Mapping[str, str], task_name: str, task_type: str, prompt_type: str | None
                ) -> str | None:
    """The prompt MTEB's sentence-transformers wrapper would pick: the first of
    "<task>-<query|document>", "<task>", "<type>-<query|document>", "<type>", "<query|document>"
    that the model's prompts define (None: the text as given)."""
    candidates = [f"{task_name}-{prompt_type}" if prompt_type else None, task_name,
                  f"{task_type}-{prompt_type}" if prompt_type else None, task_type, prompt_type]
    return next((c for c in candidates if c and c in prompts), None)


def ensure_suite(suite_dir: str | Path = DEFAULT_SUITE_DIR) -> AnyPath:
    """The suite directory (local or in a bucket), built (once, about 30 s) when it has no
    manifest; a directory holding anything else is refused untouched (NotOurDirectoryError)."""
    suite_dir = as_path(suite_dir).expanduser()
    if not (suite_dir / MANIFEST).is_file():
        logger.warning("Building the evaluation suite %s ...", suite_dir)
        build_suite(suite_dir)
    return suite_dir


def load_suite(suite_dir: str | Path = DEFAULT_SUITE_DIR, tasks: Sequence[str] | None = None) -> list[Task]:
    """The tasks of a built suite, each file checked against the manifest's sha256."""
    suite_dir = as_path(suite_dir).expanduser()
    if not (suite_dir / MANIFEST).is_file():
        raise FileNotFoundError(
            f"Evaluation suite manifest not found: {suite_dir / MANIFEST} "
            "(build it with scripts/build_eval_suite.py)."
        )
    manifest = read_manifest(suite_dir)
    names = list(tasks) if tasks else list(manifest["tasks"])
    unknown = [n for n in names if n not in manifest["tasks"]]
    if unknown:
        raise ValueError(f"Unknown tasks {unknown}; the suite has {', '.join(manifest['tasks'])}.")
    loaded = []
    for name in names:
        entry = manifest["tasks"][name]
        raw = (suite_dir / entry["file"]).read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest != entry["sha256"]:
            raise ValueError(
                f"{suite_dir / entry['file']}: sha256 {digest} differs from the manifest's; "
                "rebuild the suite (scripts/build_eval_suite.py --force)."
            )
        loaded.append(
            Task(
                name=name,
                type=entry["type"],
                languages=tuple(entry["languages"]),
                domain=entry["domain"],
                sha256=digest,
                data=json.loads(raw),
            )
        )
    return loaded
