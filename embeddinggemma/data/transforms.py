"""Per-batch transforms: prompt, tokenise, truncate and pad examples into the arrays a step consumes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embeddinggemma.batching import bucket_length
from embeddinggemma.data.hashing import text_id
from embeddinggemma.data.records import Example, Skipped
from embeddinggemma.prompts import DEFAULT_PROMPTS, document_prompt, resolve_prompt
from embeddinggemma.schema import ROLES
from embeddinggemma.tokenizer import Tokenizer, pad_batch


def prompted_texts(example: Example) -> dict[str, str]:
    """The texts the model sees: the task's prompt on the query, the document prompt (with the
    title, or "none") on the positive and the negative."""
    texts = {"query": resolve_prompt(DEFAULT_PROMPTS, example.task) + example.query,
             "positive": document_prompt(example.title) + example.positive}
    if example.negative is not None:
        texts["negative"] = document_prompt(example.negative_title) + example.negative
    return texts


class BatchCollator:
    """Examples (or Skipped padding rows) -> a local batch, a dict of numpy arrays [B, ...]:

      query [B, Tq], positive [B, Td], negative [B, Td] (with hard negatives): int32 token ids
          `[BOS] + prompted text + [EOS]`, right-padded; Tq and Td are the length buckets of the
          longest query and the longest document of the batch (or the maximum lengths when
          `bucket` is off); positives and negatives share Td.
      query_id, positive_id [B] int32: hashes of the prompted texts (equal texts, equal ids; a rare
          collision, about B**2 / 2**33 per batch, only hides one in-batch negative).
      example_mask [B] bool: False on Skipped rows.
      teacher_query, teacher_positive, teacher_negative [B, Dt] float32 (when teacher_dim > 0).
    """

    def __init__(self, tokenizer: Tokenizer, *, max_query_length: int, max_document_length: int,
                 hard_negatives: bool, bucket: bool = True, teacher_dim: int = 0):
        self.tokenizer = tokenizer
        self.max_lengths = {"query": max_query_length, "document": max_document_length}
        self.roles = ROLES if hard_negatives else ROLES[:2]
        self.bucket, self.teacher_dim = bucket, teacher_dim

    def _padded(self, token_lists: Sequence[Sequence[int]], max_length: int) -> np.ndarray:
        length = max_length
        if self.bucket:
            length = bucket_length(max(len(t) for t in token_lists), max_length)
        return pad_batch(token_lists, length, self.tokenizer.pad_id)

    def __call__(self, rows: Sequence[Example | Skipped]) -> dict[str, np.ndarray]:
        mask = np.array([isinstance(r, Example) for r in rows], dtype=bool)
        texts = [prompted_texts(r) if isinstance(r, Example) else {} for r in rows]
        tokens = {f: self.tokenizer.encode([t.get(f, "") for t in texts],
                                           self.max_lengths["query" if f == "query" else "document"])
                  for f in self.roles}
        batch = {"query": self._padded(tokens["query"], self.max_lengths["query"])}
        documents = self._padded([t for f in self.roles[1:] for t in tokens[f]],
                                 self.max_lengths["document"])
        for i, field in enumerate(self.roles[1:]):
            batch[field] = documents[i * len(rows):(i + 1) * len(rows)]
        for field in ("query", "positive"):
            batch[f"{field}_id"] = np.array([text_id(t.get(field, "")) for t in texts], dtype=np.int32)
        batch["example_mask"] = mask
        if self.teacher_dim:
            for field in self.roles:
                batch[f"teacher_{field}"] = np.stack([
                    r.teacher[field] if isinstance(r, Example) else np.zeros(self.teacher_dim, np.float32)
                    for r in rows]).astype(np.float32)
        return batch
