"""What a run reads besides its config: a corpus directory is built only where nothing of the user's
is, and the tokenizer is cached only in a corpus."""

import sys

import pytest

from embeddinggemma.errors import NotOurDirectoryError
from embeddinggemma.training.inputs import corpus_tokenizer, ensure_corpus
from tests.training.conftest import REPO, run


@pytest.fixture
def notes_dir(tmp_path):
    """A user's directory: one file that must survive whatever is pointed at it."""
    directory = tmp_path / "notes"
    directory.mkdir()
    (directory / "notes.txt").write_text("my notes")
    return directory


def untouched(directory) -> bool:
    return ([p.name for p in directory.iterdir()] == ["notes.txt"]
            and (directory / "notes.txt").read_text() == "my notes"
            and [p.name for p in directory.parent.iterdir() if p.name.startswith(".")] == [])


def test_ensure_corpus_refuses_a_directory_that_is_not_a_corpus(notes_dir):
    with pytest.raises(NotOurDirectoryError, match=f"{notes_dir} is not empty and holds no manifest.json"):
        ensure_corpus(notes_dir)
    assert untouched(notes_dir)


def test_the_tokenizer_is_cached_only_in_a_corpus(notes_dir):
    with pytest.raises(FileNotFoundError, match=f"not found: {notes_dir / 'manifest.json'}"):
        corpus_tokenizer(notes_dir, 256)
    assert untouched(notes_dir)


def test_training_on_a_directory_that_is_not_a_corpus_fails_before_training(tmp_path, notes_dir):
    workdir = tmp_path / "run"
    result = run([sys.executable, "-m", "embeddinggemma", "train", "--config",
                  str(REPO / "configs/finetune.py:tiny"), "--workdir", str(workdir),
                  f"--config.data.corpus={notes_dir}", "--config.train.num_steps=2"])
    assert result.returncode != 0 and f"{notes_dir} is not empty and holds no manifest.json" in result.stderr
    assert untouched(notes_dir)
    assert not (workdir / "checkpoints").exists() and not (workdir / "metrics.jsonl").exists()


def test_a_truncated_init_checkpoint_is_an_input_error_naming_its_file(tmp_path, tiny_config, tiny_params,
                                                                       tiny_tokenizer_path):
    from embeddinggemma.checkpoint.sentence_transformers import export_sentence_transformers
    from embeddinggemma.errors import InputError
    from embeddinggemma.prompts import DEFAULT_PROMPTS
    from embeddinggemma.training.config import sized_config
    from embeddinggemma.training.loop import train

    start = export_sentence_transformers(tmp_path / "start", tiny_config, tiny_params, tiny_tokenizer_path,
                                         DEFAULT_PROMPTS)
    weights = start / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    config = sized_config("tiny")
    config.model.init_checkpoint = str(start)
    with pytest.raises(InputError, match=f"^{weights}: "):
        train(config, tmp_path / "run")
