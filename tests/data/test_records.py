"""Record validation: every malformed record is named by where it is and what is wrong."""

import pytest

from embeddinggemma.data.records import RawRecord, parse_example
from embeddinggemma.errors import MalformedRecordError
from embeddinggemma.schema import RECORD_FIELDS

FIELDS = {f: f for f in RECORD_FIELDS}
GOOD = b'{"task": "STS", "query": "a", "positive": "b"}'


@pytest.mark.parametrize("payload, reason", [
    (b'{"task": "query", "positive": "b"}', "missing field 'query'"),
    (b'{"task": "query", "query": 3, "positive": "b"}', "field 'query' is a int, not a string"),
    (b'{"task": "query", "query": "a", "positive": "  "}', "field 'positive' is empty"),
    (b'{"task": "query", "query": "\xff", "positive": "b"}', "invalid UTF-8 at byte 28"),
    (b'{"task": "query", "query": ', "invalid JSON"),
    (b'["query"]', "is a JSON list, not an object"),
    (b'{"task": "Poetry", "query": "a", "positive": "b"}', "unknown task 'Poetry'"),
    (b'{"query": "a", "positive": "b"}', "missing field 'task'"),
    (b'{"task": "query", "query": "a", "positive": "b", "title": 7}', "field 'title' is a int"),
    (b'{"task": "query", "query": "a", "positive": "b", "id": [1]}', "field 'id' is a list"),
])
def test_malformed_records_are_named(payload, reason):
    with pytest.raises(MalformedRecordError, match="^data.jsonl:7: ") as e:
        parse_example(RawRecord("data.jsonl:7", payload), FIELDS)
    assert reason in str(e.value)


def test_negative_and_id_required_when_asked():
    with pytest.raises(MalformedRecordError, match="missing field 'negative'"):
        parse_example(RawRecord("x:1", GOOD), FIELDS, require_negative=True)
    with pytest.raises(MalformedRecordError, match="missing field 'id'"):
        parse_example(RawRecord("x:1", GOOD), FIELDS, require_id=True)


def test_field_names_default_task_and_optional_fields():
    fields = {**FIELDS, "query": "question", "positive": "answer"}
    raw = RawRecord("tfds:qa/train[record 0]", {"question": b"why", "answer": "because", "id": 12,
                                                 "title": ""})
    example = parse_example(raw, fields, default_task="QuestionAnswering")
    assert (example.task, example.query, example.positive) == ("QuestionAnswering", "why", "because")
    assert example.id == "12" and example.title is None and example.negative is None
    assert parse_example(RawRecord("x:1", GOOD), FIELDS, default_task="query").task == "STS"
