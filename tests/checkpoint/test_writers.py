"""Checkpoint writers (Orbax, sentence-transformers export) never leave half a directory and never
touch a directory that is not their own."""

import pytest

from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.checkpoint.sentence_transformers import export_sentence_transformers
from embeddinggemma.errors import NotOurDirectoryError
from embeddinggemma.prompts import DEFAULT_PROMPTS

WRITERS = {"orbax": save_orbax, "sentence-transformers": export_sentence_transformers}


def _users_directory(path):
    path.mkdir()
    (path / "thesis.tex").write_text("three years of work")
    return path


def _only(path):
    """The names in the parent of `path`: a writer leaves no temporary sibling behind."""
    return sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_users_directory_is_refused_and_kept(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path,
                                                writer):
    target = _users_directory(tmp_path / "mine")
    with pytest.raises(NotOurDirectoryError, match=r"mine is not empty"):
        WRITERS[writer](target, tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
    assert (target / "thesis.tex").read_text() == "three years of work"
    assert sorted(p.name for p in target.iterdir()) == ["thesis.tex"]
    assert _only(target) == ["mine"]


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_failed_write_leaves_nothing_and_can_be_retried(tmp_path, tiny_config, tiny_params,
                                                          tiny_tokenizer_path, writer):
    target = tmp_path / "out"
    with pytest.raises(FileNotFoundError):
        WRITERS[writer](target, tiny_config, tiny_params, tmp_path / "no-tokenizer.model", DEFAULT_PROMPTS)
    assert _only(target) == []
    WRITERS[writer](target, tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
    assert load_checkpoint(target).config == tiny_config


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_overwrite_replaces_only_the_writers_own_directory(tmp_path, tiny_config, tiny_params,
                                                           tiny_tokenizer_path, writer):
    target = WRITERS[writer](tmp_path / "out", tiny_config, tiny_params, tiny_tokenizer_path,
                             {"query": "old: "})
    with pytest.raises(FileExistsError, match="overwrite=True"):
        WRITERS[writer](target, tiny_config, tiny_params, tiny_tokenizer_path, {"query": "new: "})
    WRITERS[writer](target, tiny_config, tiny_params, tiny_tokenizer_path, {"query": "new: "},
                    overwrite=True)
    assert load_checkpoint(target).prompts["query"] == "new: "
    assert _only(target) == ["out"]


def test_a_refused_export_writes_nothing(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    target = tmp_path / "st"
    with pytest.raises(ValueError, match="pooling='attention' has no sentence-transformers equivalent"):
        export_sentence_transformers(target, tiny_config.replace(pooling="attention"), tiny_params,
                                     tiny_tokenizer_path, DEFAULT_PROMPTS)
    assert _only(target) == []
    export_sentence_transformers(target, tiny_config, tiny_params, tiny_tokenizer_path, DEFAULT_PROMPTS)
