"""The training input pipeline: a weighted mixture of datasets, one dataset per batch.

Each dataset is a grain MapDataset: records shuffled (reshuffled every epoch), repeated forever,
validated, and grouped into global batches of `batch_size` consecutive records. Host p of P takes
the p-th of the P equal slices of each global batch, so it reads only its own records, and the P
hosts together see exactly the records a single host would. `WeightedBatchSelection` maps each step
to a dataset and to that dataset's next batch, so the whole stream is a function of (config, seed,
step): the iterator state is the next step, and a restored iterator continues with the same batches.

Hosts must agree on array shapes, but a host does not see the others' examples: with P > 1 every
batch is padded to the maximum lengths rather than to a per-batch length bucket.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator, Mapping, Sequence

import grain
import ml_collections
import numpy as np

from embeddinggemma.data.config import validate_data_config
from embeddinggemma.data.hashing import stable_seed
from embeddinggemma.data.mixture import WeightedBatchSelection
from embeddinggemma.data.records import Example, RawRecord, Skipped, parse_example
from embeddinggemma.data.sources import open_source
from embeddinggemma.data.teacher import TeacherEmbeddings, default_teacher_dir
from embeddinggemma.data.transforms import BatchCollator
from embeddinggemma.errors import MalformedRecordError
from embeddinggemma.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

# Skipped records logged per dataset; later ones are only counted.
_LOGGED_SKIPS = 10


@dataclasses.dataclass(frozen=True)
class _LocalBatch:
    """A host's batch, the index of its dataset and the records skipped in it."""

    arrays: dict[str, np.ndarray]
    dataset: int
    skipped: tuple[Skipped, ...]


def _prepare(raw: RawRecord, *, fields: Mapping[str, str], default_task: str, hard_negatives: bool,
             teacher: TeacherEmbeddings | None, skip_malformed: bool) -> Example | Skipped:
    try:
        example = parse_example(raw, fields, default_task, require_negative=hard_negatives,
                                require_id=teacher is not None)
        if teacher is not None:
            vectors = teacher.vectors(example.id)
            if vectors is None:
                raise MalformedRecordError(raw.where, f"id {example.id!r} has no teacher embedding in "
                                           f"{teacher.directory}")
            example = dataclasses.replace(example, teacher=vectors)
        return example
    except MalformedRecordError as e:
        if not skip_malformed:
            raise
        return Skipped(e.where, e.reason)


def read_options(data_cfg: ml_collections.ConfigDict) -> grain.ReadOptions:
    """The threads and prefetching `data.read_threads` and `data.prefetch_batches` ask for."""
    return grain.ReadOptions(num_threads=data_cfg.read_threads,
                             prefetch_buffer_size=data_cfg.prefetch_batches)


def _collate(rows: Sequence[Example | Skipped], *, collator: BatchCollator, dataset: int) -> _LocalBatch:
    return _LocalBatch(collator(rows), dataset, tuple(r for r in rows if isinstance(r, Skipped)))


def _open_teacher(data_cfg: ml_collections.ConfigDict, name: str, hard_negatives: bool) -> TeacherEmbeddings:
    d = data_cfg.datasets[name]
    teacher = TeacherEmbeddings(d.teacher_dir or default_teacher_dir(d.path, data_cfg.teacher))
    if hard_negatives and "negative" not in teacher.roles:
        raise ValueError(f"data.datasets.{name}: hard negatives are on but {teacher.directory} has no "
                         f"negative.npy.")
    return teacher


def _source_records(data_cfg: ml_collections.ConfigDict, name: str) -> grain.MapDataset:
    source = open_source(data_cfg.datasets[name])
    if not len(source):
        raise ValueError(f"data.datasets.{name}: {source!r} has no records.")
    return grain.MapDataset.source(source)


def _preparer(data_cfg: ml_collections.ConfigDict, name: str, *, hard_negatives: bool,
              teacher: TeacherEmbeddings | None) -> functools.partial:
    """RawRecord -> Example (or Skipped, when malformed records are skipped)."""
    d = data_cfg.datasets[name]
    return functools.partial(_prepare, fields=d.fields.to_dict(), default_task=d.task,
                             hard_negatives=hard_negatives, teacher=teacher,
                             skip_malformed=data_cfg.skip_malformed)


class TrainIterator(Iterator[dict[str, np.ndarray]]):
    """Local batches of the mixture (see BatchCollator for the arrays).

    `get_state()` is a JSON-serialisable dict; `set_state(state)` on an iterator made with the same
    config, seed and batch sizes resumes with exactly the batches that followed. `last_dataset` names
    the dataset of the latest batch; `skipped` counts malformed records skipped per dataset.
    """

    def __init__(self, dataset: grain.IterDataset, dataset_names: Sequence[str]):
        self._iterator = iter(dataset)
        self.dataset_names = tuple(dataset_names)
        self.skipped = dict.fromkeys(self.dataset_names, 0)
        self.last_dataset: str | None = None

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._iterator)
        name = self.last_dataset = self.dataset_names[batch.dataset]
        for record in batch.skipped:
            self.skipped[name] += 1
            if self.skipped[name] <= _LOGGED_SKIPS:
                logger.warning("Skipped a malformed record of %s: %s: %s", name, record.where, record.reason)
        if batch.skipped and not batch.arrays["example_mask"].any():
            # The records are shuffled: a whole batch of malformed ones means the dataset is broken,
            # and a step on it would train on nothing (loss 0) as if all were well.
            first = batch.skipped[0]
            raise MalformedRecordError(
                first.where, f"all {len(batch.skipped)} records of a batch of dataset {name!r} are malformed "
                f"(data.skip_malformed=True skips them; this one: {first.reason}): the dataset has nothing "
                "to train on.")
        return batch.arrays

    def get_state(self) -> dict:
        return {"pipeline": self._iterator.get_state(), "skipped": dict(self.skipped)}

    def set_state(self, state: Mapping) -> None:
        self._iterator.set_state(dict(state["pipeline"]))
        self.skipped = {name: int(state["skipped"].get(name, 0)) for name in self.dataset_names}


def make_train_iterator(data_cfg: ml_collections.ConfigDict, tokenizer: Tokenizer, *, batch_size: int,
                        max_query_length: int, max_document_length: int, hard_negatives: bool, seed: int,
                        process_index: int = 0, process_count: int = 1) -> TrainIterator:
    """This host's batches of the training mixture: dicts of [batch_size / process_count, ...] arrays.

    Args:
      data_cfg: `config.data_config()` with datasets added.
      tokenizer: the student's tokenizer.
      batch_size: the global batch size (all hosts together).
      max_query_length, max_document_length: tokens per text, BOS and EOS included.
      hard_negatives: add `negative` (records without one are malformed).
      seed: shuffles every dataset and draws the dataset of every step.
      process_index, process_count: this host and the number of hosts (`jax.process_index()`, ...).
    """
    validate_data_config(data_cfg)
    if batch_size % process_count:
        raise ValueError(f"batch_size={batch_size} does not split over {process_count} hosts.")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} is outside 0..{process_count - 1}.")
    names = sorted(n for n, d in data_cfg.datasets.items() if d.weight > 0)
    teachers = {n: _open_teacher(data_cfg, n, hard_negatives) for n in names} if data_cfg.teacher else {}
    dims = {n: t.dim for n, t in teachers.items()}
    if len(set(dims.values())) > 1:
        raise ValueError(f"Teacher embeddings differ in width across datasets: {dims}.")
    collator = BatchCollator(tokenizer, max_query_length=max_query_length,
                             max_document_length=max_document_length, hard_negatives=hard_negatives,
                             bucket=data_cfg.bucket_lengths and process_count == 1,
                             teacher_dim=next(iter(dims.values()), 0))
    per_dataset = []
    for index, name in enumerate(names):
        # A shuffle seed of the dataset's own: adding a dataset does not reorder the others.
        records = (_source_records(data_cfg, name).shuffle(seed=stable_seed(seed, name)).repeat()
                   .map(_preparer(data_cfg, name, hard_negatives=hard_negatives, teacher=teachers.get(name))))
        batches = records.batch(batch_size // process_count,
                                batch_fn=functools.partial(_collate, collator=collator, dataset=index))
        per_dataset.append(batches[process_index::process_count])
    selection = WeightedBatchSelection([data_cfg.datasets[n].weight for n in names], seed)
    mixed = grain.MapDataset.select_from_datasets(per_dataset, selection)
    return TrainIterator(mixed.to_iter_dataset(read_options(data_cfg)), names)


def make_eval_batches(data_cfg: ml_collections.ConfigDict, name: str, tokenizer: Tokenizer, *,
                      batch_size: int, max_query_length: int, max_document_length: int,
                      hard_negatives: bool) -> Iterator[dict[str, np.ndarray]]:
    """One pass over one dataset (e.g. a held-out split) in record order, on one host.

    Batches as in `make_train_iterator` (teacher embeddings included when `data.teacher` is set);
    the last batch is padded to `batch_size` with rows whose `example_mask` is False.
    """
    validate_data_config(data_cfg)
    teacher = _open_teacher(data_cfg, name, hard_negatives) if data_cfg.teacher else None
    collator = BatchCollator(tokenizer, max_query_length=max_query_length,
                             max_document_length=max_document_length, hard_negatives=hard_negatives,
                             bucket=data_cfg.bucket_lengths, teacher_dim=teacher.dim if teacher else 0)
    padding = Skipped(where="", reason="padding")

    def collate(rows: Sequence[Example | Skipped]) -> dict[str, np.ndarray]:
        return collator([*rows, *[padding] * (batch_size - len(rows))])

    records = _source_records(data_cfg, name).map(
        _preparer(data_cfg, name, hard_negatives=hard_negatives, teacher=teacher))
    return iter(records.batch(batch_size, batch_fn=collate).to_iter_dataset(read_options(data_cfg)))
