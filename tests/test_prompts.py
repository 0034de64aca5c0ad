import json

import pytest

from embeddinggemma.prompts import DEFAULT_PROMPTS, document_prompt, load_prompts, resolve_prompt


def test_paper_prompts_are_exact():
    assert DEFAULT_PROMPTS["query"] == "task: search result | query: "
    assert DEFAULT_PROMPTS["document"] == "title: none | text: "
    assert DEFAULT_PROMPTS["InstructionRetrieval"] == "task: code retrieval | query: "
    assert DEFAULT_PROMPTS["QuestionAnswering"] == "task: question answering | query: "
    assert document_prompt("Mars") == "title: Mars | text: "
    assert document_prompt(None) == DEFAULT_PROMPTS["document"]


def test_checkpoint_prompts_override_defaults(tmp_path):
    (tmp_path / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "Q: ", "custom": "C: "}}))
    prompts = load_prompts(tmp_path)
    assert prompts["query"] == "Q: " and prompts["custom"] == "C: "
    assert prompts["STS"] == DEFAULT_PROMPTS["STS"]


def test_bad_prompt_file_names_file_and_line(tmp_path):
    (tmp_path / "config_sentence_transformers.json").write_text('{\n"prompts": {,}}')
    with pytest.raises(ValueError, match=r"config_sentence_transformers.json: invalid JSON at line 2"):
        load_prompts(tmp_path)


def test_unknown_prompt_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown prompt name 'qeury'; valid names: .*query"):
        resolve_prompt(DEFAULT_PROMPTS, "qeury")
    assert resolve_prompt(DEFAULT_PROMPTS, None) == ""
