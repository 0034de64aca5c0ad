"""The record schema (field names: schema.RECORD_FIELDS), its validation and its writing.

A record is a JSON object (JSON lines, ArrayRecord) or a feature dict (TFDS) with the fields
    task            prompt name of the query side (a key of prompts.DEFAULT_PROMPTS); optional when
                    the dataset's config names a default task
    query           text
    positive        text (a document: it gets the document prompt with `title`)
    negative        text, a hard negative document (required when hard negatives are on)
    title           title of the positive (optional; missing, null or "" means "none")
    negative_title  title of the negative (optional, likewise)
    id              string or integer identity (required when teacher embeddings are used)
Other fields are ignored. Texts must be non-empty strings (not only whitespace).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

import numpy as np

from embeddinggemma.errors import MalformedRecordError
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.schema import RECORD_FIELDS


@dataclasses.dataclass(frozen=True)
class RawRecord:
    """A record as a source holds it, with where it came from (`file:line`, `file[record i]`)."""

    where: str
    payload: bytes | Mapping[str, object]


@dataclasses.dataclass(frozen=True)
class Example:
    """A validated record; `teacher` maps each role (schema.ROLES) to a [Dt] float32 vector."""

    task: str
    query: str
    positive: str
    negative: str | None = None
    title: str | None = None
    negative_title: str | None = None
    id: str | None = None
    teacher: Mapping[str, np.ndarray] | None = None


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A malformed record left out of its batch (the batch row becomes padding)."""

    where: str
    reason: str


def _decode_text(value: object) -> object:
    if isinstance(value, np.generic):
        value = value.item()
    return value.decode("utf-8") if isinstance(value, bytes) else value


def decode_record(raw: RawRecord) -> Mapping[str, object]:
    """The record's fields, with bytes decoded as strict UTF-8."""
    try:
        if isinstance(raw.payload, Mapping):
            return {k: _decode_text(v) for k, v in raw.payload.items()}
        record = json.loads(raw.payload.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise MalformedRecordError(raw.where, f"invalid UTF-8 at byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise MalformedRecordError(raw.where, f"invalid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(record, dict):
        raise MalformedRecordError(raw.where, f"is a JSON {type(record).__name__}, not an object")
    return record


def parse_example(raw: RawRecord, fields: Mapping[str, str], default_task: str = "",
                  require_negative: bool = False, require_id: bool = False) -> Example:
    """Validates a raw record into an Example; `fields` maps schema fields to the source's names.

    Raises MalformedRecordError naming the record and the broken field.
    """
    record = decode_record(raw)

    def get(field: str) -> object:
        return record.get(fields[field])

    def text(field: str, required: bool) -> str | None:
        value = get(field)
        if value is None:
            if required:
                raise MalformedRecordError(raw.where, f"missing field {fields[field]!r}")
            return None
        if not isinstance(value, str):
            raise MalformedRecordError(raw.where, f"field {fields[field]!r} is a "
                                       f"{type(value).__name__}, not a string")
        if not value.strip():
            raise MalformedRecordError(raw.where, f"field {fields[field]!r} is empty")
        return value

    def title(field: str) -> str | None:
        value = get(field)
        if value is not None and not isinstance(value, str):
            raise MalformedRecordError(raw.where, f"field {fields[field]!r} is a "
                                       f"{type(value).__name__}, not a string")
        return value or None

    task = get("task") or default_task
    if not task:
        raise MalformedRecordError(raw.where, f"missing field {fields['task']!r} (and the dataset "
                                   f"config names no default task)")
    if not isinstance(task, str) or task not in DEFAULT_PROMPTS:
        raise MalformedRecordError(raw.where, f"unknown task {task!r}; valid: "
                                   f"{', '.join(sorted(DEFAULT_PROMPTS))}")
    record_id = get("id")
    if record_id is None and require_id:
        raise MalformedRecordError(raw.where, f"missing field {fields['id']!r} (teacher embeddings "
                                   f"are found by id)")
    if record_id is not None and (isinstance(record_id, bool) or not isinstance(record_id, str | int)):
        raise MalformedRecordError(raw.where, f"field {fields['id']!r} is a {type(record_id).__name__}, "
                                   f"not a string or integer")
    return Example(task=task, query=text("query", True), positive=text("positive", True),
                   negative=text("negative", require_negative), title=title("title"),
                   negative_title=title("negative_title"),
                   id=None if record_id is None else str(record_id))


def example_record(example: Example) -> dict[str, str]:
    """The record of an example, the inverse of `parse_example`: its fields that are set."""
    return {f: getattr(example, f) for f in RECORD_FIELDS if getattr(example, f) is not None}
