"""MTEB (v2) for any checkpoint this codebase loads: an encoder implementing mteb's protocol, and
the offline suite's tasks as mteb tasks.

    import mteb
    from embeddinggemma.evaluation.mteb_adapter import MTEBEncoder
    model = MTEBEncoder.load("runs/ft/export", dim=256)            # Matryoshka: 256 dims
    results = mteb.evaluate(model, mteb.get_benchmark("MTEB(Multilingual, v2)"))

Prompts are picked as mteb's sentence-transformers wrapper picks them from the checkpoint's prompts
("<task>-<query|document>", "<task>", "<type>-<query|document>", "<type>", "query"/"document"),
and documents reach the model as mteb forms them ("title text"), so the scores are those mteb
reports for the released model through sentence-transformers. Needs the `eval` extras (mteb, torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embeddinggemma.api import Embedder
from embeddinggemma.evaluation.encoders import DEFAULT_MAX_LENGTH
from embeddinggemma.evaluation.tasks import Task, prompt_name


class MTEBEncoder:
    """`mteb.EncoderProtocol` over an `Embedder`; `dim` truncates to a Matryoshka prefix."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        name: str = "embeddinggemma/checkpoint",
        dim: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 32,
    ):
        from mteb.models.model_meta import ModelMeta

        self.embedder, self.dim, self.max_length, self.batch_size = embedder, dim, max_length, batch_size
        self.mteb_model_meta = ModelMeta(
            loader=None,
            name=name if "/" in name else f"embeddinggemma/{name}",
            revision=None,
            release_date=None,
            languages=None,
            n_parameters=None,
            memory_usage_mb=None,
            max_tokens=max_length,
            embed_dim=dim or embedder.dim,
            license=None,
            open_weights=None,
            public_training_code=None,
            public_training_data=None,
            framework=["JAX"],
            similarity_fn_name="cosine",
            use_instructions=True,
            training_datasets=None,
        )

    @classmethod
    def load(cls, checkpoint: str | Path, *, dtype: str = "float32", **kwargs) -> MTEBEncoder:
        name = "embeddinggemma/" + Path(checkpoint).expanduser().resolve().name
        return cls(Embedder.load(checkpoint, dtype=dtype), name=kwargs.pop("name", name), **kwargs)

    def prompt_name(self, task_name: str, task_type: str, prompt_type: str | None) -> str | None:
        return prompt_name(self.embedder.prompts, task_name, task_type, prompt_type)

    def encode(
        self, inputs, *, task_metadata, hf_split: str, hf_subset: str, prompt_type=None, **kwargs
    ) -> np.ndarray:
        texts = [text for batch in inputs for text in batch["text"]]
        kind = getattr(prompt_type, "value", prompt_type)
        name = self.prompt_name(task_metadata.name, task_metadata.type, kind)
        return self.embedder.encode(
            texts,
            prompt_name=name,
            dim=self.dim,
            max_length=self.max_length,
            batch_size=kwargs.get("batch_size") or self.batch_size,
        )

    def similarity(self, a, b):
        from mteb.similarity_functions import cos_sim

        return cos_sim(a, b)

    def similarity_pairwise(self, a, b):
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(a, b)


def mteb_task(task: Task):
    """An mteb task (its evaluators, its procedure) over one of the offline suite's tasks."""
    from datasets import Dataset, DatasetDict
    from mteb import TaskMetadata
    from mteb.abstasks import (
        AbsTaskBitextMining,
        AbsTaskClassification,
        AbsTaskClustering,
        AbsTaskPairClassification,
        AbsTaskRetrieval,
        AbsTaskSTS,
    )

    d = task.data
    bases = {
        "Retrieval": AbsTaskRetrieval,
        "BitextMining": AbsTaskBitextMining,
        "Classification": AbsTaskClassification,
        "Clustering": AbsTaskClustering,
        "PairClassification": AbsTaskPairClassification,
        "STS": AbsTaskSTS,
    }
    subsets = list(d["subsets"]) if task.type == "BitextMining" else None
    metadata = TaskMetadata(
        name=task.name,
        type=task.type,
        main_score=task.main_score,
        description=f"{task.name} (embeddinggemma offline suite, {task.domain})",
        dataset={"path": f"embeddinggemma/{task.name}", "revision": task.sha256},
        eval_splits=["test"],
        eval_langs={s: ["eng-Latn"] for s in subsets} if subsets else ["eng-Latn"],
    )

    def load_data(self, num_proc=None, **kwargs):
        if task.type == "Retrieval":
            corpus = Dataset.from_list(
                [
                    {"id": i, "title": doc.get("title", ""), "text": doc["text"]}
                    for i, doc in d["corpus"].items()
                ]
            )
            queries = Dataset.from_list([{"id": i, "text": t} for i, t in d["queries"].items()])
            self.dataset = {
                "default": {
                    "test": {
                        "corpus": corpus,
                        "queries": queries,
                        "relevant_docs": d["relevant_docs"],
                        "top_ranked": None,
                    }
                }
            }
        elif task.type == "BitextMining":
            self.dataset = {
                s: DatasetDict({"test": Dataset.from_dict(dict(pairs))}) for s, pairs in d["subsets"].items()
            }
        elif task.type == "Classification":
            self.dataset = DatasetDict(
                {split: Dataset.from_dict(dict(d[split])) for split in ("train", "test")}
            )
        elif task.type == "Clustering":
            self.dataset = DatasetDict(
                {"test": Dataset.from_dict({"sentences": d["sentences"], "labels": d["labels"]})}
            )
        elif task.type == "PairClassification":
            self.dataset = DatasetDict(
                {
                    "test": Dataset.from_dict(
                        {"sentence1": d["sentence1"], "sentence2": d["sentence2"], "labels": d["labels"]}
                    )
                }
            )
        else:
            self.dataset = DatasetDict(
                {
                    "test": Dataset.from_dict(
                        {"sentence1": d["sentence1"], "sentence2": d["sentence2"], "score": d["scores"]}
                    )
                }
            )
        self.data_loaded = True

    attributes = {"metadata": metadata, "load_data": load_data}
    if task.type == "Clustering":
        attributes["max_fraction_of_documents_to_embed"] = None  # embed every sentence, as the suite does
    return type(task.name, (bases[task.type],), attributes)()


def evaluate_with_mteb(encoder: MTEBEncoder, tasks: Sequence[Task]) -> dict[str, dict[str, float]]:
    """{task: mteb's scores of the test split (the mean over subsets for bitext mining)} without
    touching the network or writing results."""
    import mteb

    result = mteb.evaluate(
        encoder,
        [mteb_task(t) for t in tasks],
        cache=None,
        overwrite_strategy="always",
        show_progress_bar=False,
    )
    if result.exceptions:
        raise RuntimeError(f"mteb failed: {result.exceptions}")
    out = {}
    for task_result in result.task_results:
        per_subset = task_result.scores["test"]
        keys = set.intersection(*(set(s) for s in per_subset))
        out[task_result.task_name] = {
            k: float(np.mean([s[k] for s in per_subset]))
            for k in keys
            if all(isinstance(s[k], int | float) for s in per_subset)
        }
    return out
