"""The data fields of a training config: datasets, their mixture weights, malformed records, teacher.

A config file adds datasets under `data.datasets` (the returned ConfigDict is locked, so new names
go in inside `unlocked()`; each entry stays locked, so a misspelt field is an error):

    c.data = data_config()
    with c.unlocked():
        c.data.datasets.code = dataset_config("~/corpus/code/train.jsonl", weight=2.0)
        c.data.datasets.nq = dataset_config("natural_questions", format="tfds", task="query",
                                            fields=dict(query="question", positive="answer"))
    # or every dataset of a corpus built by scripts/build_corpus.py, with equal weights:
    c.data.datasets = corpus_datasets("~/.cache/embeddinggemma/corpus-v3")

Weights of existing datasets are overridden on the command line like any field:
`--config.data.datasets.code.weight=0.5` (0 switches a dataset off). A whole mixture, including
datasets a corpus adds at run time, is one field: `--config.data.mixture=bitext=0.6,code=0.4`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import ml_collections

from embeddinggemma.data.corpus.manifest import read_manifest
from embeddinggemma.paths import as_path
from embeddinggemma.schema import RECORD_FIELDS

FORMATS = ("jsonl", "array_record", "tfds")


def dataset_config(path: str = "", *, format: str = "jsonl", weight: float = 1.0, split: str = "train",
                   data_dir: str = "", task: str = "", fields: Mapping[str, str] | None = None,
                   teacher_dir: str = "") -> ml_collections.ConfigDict:
    """One dataset of the mixture, locked against misspelt fields.

    Args:
      path: a JSON-lines or ArrayRecord file, local or in a bucket (`gs://...`; ArrayRecord: a glob
        is allowed), or a TFDS name.
      format: one of FORMATS.
      weight: relative probability that a batch comes from this dataset; 0 switches it off.
      split, data_dir: the TFDS split and data directory ("" = TFDS's default); other formats
        ignore them.
      task: the prompt name for records without a `task` field ("" = every record must have one).
      fields: record field (schema.RECORD_FIELDS) -> the field's name in the source, for those that
        differ.
      teacher_dir: teacher embeddings of this dataset; "" = beside the records (see teacher.py).
    """
    unknown = set(fields or {}) - set(RECORD_FIELDS)
    if unknown:
        raise ValueError(f"Unknown record fields {sorted(unknown)}; valid: {', '.join(RECORD_FIELDS)}.")
    d = ml_collections.ConfigDict()
    d.path = path
    d.format = format
    d.weight = float(weight)
    d.split = split
    d.data_dir = data_dir
    d.task = task
    d.fields = ml_collections.ConfigDict({f: (fields or {}).get(f, f) for f in RECORD_FIELDS})
    d.teacher_dir = teacher_dir
    d.lock()
    return d


def data_config() -> ml_collections.ConfigDict:
    """All data fields with their defaults, locked; no datasets yet."""
    c = ml_collections.ConfigDict()
    c.datasets = ml_collections.ConfigDict()  # name -> dataset_config(...)
    # A corpus directory of scripts/build_corpus.py ("" = none): its train splits join `datasets`
    # (weight 1, unless a dataset of that name is configured) and its held-out splits are the
    # evaluation sets. The training command builds it with the default settings when missing.
    c.corpus = ""
    # "NAME=WEIGHT,...": the whole mixture, applied once the corpus's datasets are added (datasets
    # it does not name are switched off); "" = each dataset's own weight.
    c.mixture = ""
    c.skip_malformed = False   # False: a malformed record is an error naming file:line; True: skip, count
    c.teacher = ""             # name of the precomputed teacher embeddings to add; "" = none
    c.bucket_lengths = True    # pad to length buckets per batch; False (and multi-host): to the maximum
    c.read_threads = 2         # threads preparing batches ahead of the training step
    c.prefetch_batches = 4     # batches prepared ahead
    c.lock()
    return c


def corpus_datasets(corpus_dir: str | Path, split: str = "train") -> ml_collections.ConfigDict:
    """Every dataset of a corpus built by scripts/build_corpus.py (from its manifest), weight 1 each.

    Raises:
      FileNotFoundError or ValueError naming the manifest when it is missing or unreadable.
    """
    corpus_dir = as_path(corpus_dir).expanduser()
    manifest = read_manifest(corpus_dir)
    datasets = ml_collections.ConfigDict()
    for name, entry in sorted(manifest["datasets"].items()):
        if split not in entry["splits"]:
            raise ValueError(f"{corpus_dir}: dataset {name!r} has no split {split!r}.")
        datasets[name] = dataset_config(str(corpus_dir / entry["splits"][split]["path"]))
    return datasets


def with_corpus_datasets(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of the data config with `corpus`'s train splits added to `datasets`, then `mixture`
    applied (and emptied, so that resolving again changes nothing).

    A dataset already configured under the same name keeps its settings, so
    `--config.data.datasets.bitext.weight=0` style overrides apply to corpus datasets too when a
    config file declares them.

    Raises:
      ValueError naming `data.mixture` when it is malformed or names a dataset the config lacks.
    """
    resolved = ml_collections.ConfigDict(c.to_dict())
    if c.corpus:
        with resolved.unlocked():
            for name, dataset in corpus_datasets(c.corpus, "train").items():
                if name not in resolved.datasets:
                    resolved.datasets[name] = dataset
    if c.get("mixture"):
        _set_weights(resolved, parse_mixture(c.mixture), f"data.mixture={c.mixture!r}")
        resolved.mixture = ""
    return resolved


def with_mixture_weights(c: ml_collections.ConfigDict, weights: Mapping[str, float]
                         ) -> ml_collections.ConfigDict:
    """A locked copy of the data config (its corpus's datasets added) with the datasets' weights.

    Datasets named in `weights` get that weight; every other dataset is switched off (weight 0), so
    `weights` is the whole mixture.

    Raises:
      ValueError naming a dataset of `weights` that the config does not have (and those it has).
    """
    resolved = with_corpus_datasets(c)
    _set_weights(resolved, weights, "The mixture")
    resolved.lock()
    return resolved


def parse_mixture(text: str) -> dict[str, float]:
    """"bitext=0.6,code=0.4" -> {"bitext": 0.6, "code": 0.4}.

    Raises:
      ValueError naming `data.mixture` and the entry that is not NAME=WEIGHT with a weight >= 0.
    """
    weights = {}
    for entry in text.split(","):
        name, sep, value = (part.strip() for part in entry.partition("="))
        try:
            weight = float(value) if sep and name else -1.0
        except ValueError:
            weight = -1.0
        if weight < 0 or name in weights:
            raise ValueError(f"data.mixture={text!r}: {entry.strip()!r} is not NAME=WEIGHT with a weight "
                             f">= 0 and a name given once (e.g. bitext=0.6,code=0.4).")
        weights[name] = weight
    return weights


def mixture_text(weights: Mapping[str, float]) -> str:
    """{"code": 0.4, "bitext": 0.6} -> "bitext=0.6,code=0.4": `data.mixture`'s form (exact floats)."""
    return ",".join(f"{name}={float(weight)!r}" for name, weight in sorted(weights.items()))


def _set_weights(resolved: ml_collections.ConfigDict, weights: Mapping[str, float], what: str) -> None:
    unknown = sorted(set(weights) - set(resolved.datasets))
    if unknown:
        raise ValueError(f"{what}: unknown datasets {unknown}; the config has "
                         f"{', '.join(sorted(resolved.datasets)) or 'none'} (data.datasets, data.corpus).")
    for name, dataset in resolved.datasets.items():
        dataset.weight = float(weights.get(name, 0.0))


def validate_data_config(c: ml_collections.ConfigDict) -> None:
    """Checks values the schema's types cannot; each error names the field."""
    if not any(d.weight > 0 for d in c.datasets.values()):
        raise ValueError("data.datasets has no dataset with a weight above 0"
                         + (" (data.corpus is set: resolve it first, see with_corpus_datasets)."
                            if c.get("corpus") else "."))
    for name, d in c.datasets.items():
        where = f"data.datasets.{name}"
        if d.format not in FORMATS:
            raise ValueError(f"{where}.format={d.format!r}; valid: {', '.join(FORMATS)}.")
        if d.weight < 0:
            raise ValueError(f"{where}.weight={d.weight} is negative.")
        if not d.path:
            raise ValueError(f"{where}.path is empty.")
    if c.read_threads < 0 or c.prefetch_batches < 0:
        raise ValueError("data.read_threads and data.prefetch_batches must be >= 0.")
