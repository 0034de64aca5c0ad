"""The export command: every format from any checkpoint, refusals that leave nothing, and
sentence-transformers loading an export of the tiny model (its own vocabulary) as this codebase
embeds it."""

import gettext
from pathlib import Path

import jax
import numpy as np
import pytest

from embeddinggemma import Embedder
from embeddinggemma.checkpoint.loading import load_checkpoint
from embeddinggemma.checkpoint.orbax_io import save_orbax
from embeddinggemma.cli.export import export, main
from embeddinggemma.tokenizer import Tokenizer as SentencePieceTokenizer
from tests.souping.conftest import perturbed

PROMPTS = {"query": "task: search result | query: ", "document": "title: none | text: "}


def _same_params(a, b):
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(a), jax.device_get(b))


def catalog_texts(limit: int) -> list[str]:
    """English messages and their translations from the machine's gettext catalogs (many scripts)."""
    texts = []
    for mo in sorted(Path("/usr/share/locale").glob("*/LC_MESSAGES/*.mo"))[::5]:
        try:
            with mo.open("rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except (OSError, UnicodeDecodeError, gettext.error.__class__):
            continue
        texts += [t for pair in list(catalog.items())[1:6] for t in pair if isinstance(t, str) and t]
        if len(texts) >= limit:
            break
    return texts[:limit]


@pytest.fixture
def orbax_dir(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path):
    return save_orbax(tmp_path / "orbax", tiny_config, tiny_params, tiny_tokenizer_path, PROMPTS)


# The formats `load_checkpoint` reads back (gguf is read back in tests/checkpoint/test_gguf_export.py).
@pytest.mark.parametrize("fmt", ["orbax", "sentence-transformers"])
def test_every_format_loads_back_the_same_model(orbax_dir, tmp_path, tiny_config, tiny_params, fmt):
    assert main(["--checkpoint", str(orbax_dir), "--out", str(tmp_path / "out"), "--format", fmt]) == 0
    loaded = load_checkpoint(tmp_path / "out")
    assert loaded.config == tiny_config and loaded.prompts == PROMPTS
    _same_params(loaded.params, tiny_params)
    # And back again: an export is itself a checkpoint the command reads.
    again = tmp_path / "again"
    assert main(["--checkpoint", str(tmp_path / "out"), "--out", str(again), "--format", fmt]) == 0
    _same_params(load_checkpoint(again).params, tiny_params)


def test_out_is_refused_unless_ours_and_overwrite(orbax_dir, tmp_path, capsys):
    users = tmp_path / "mine"
    users.mkdir()
    (users / "notes.txt").write_text("keep me")
    assert main(["--checkpoint", str(orbax_dir), "--out", str(users), "--overwrite"]) == 2
    assert "mine is not empty" in capsys.readouterr().err
    assert [p.name for p in users.iterdir()] == ["notes.txt"]

    out = tmp_path / "st"
    assert main(["--checkpoint", str(orbax_dir), "--out", str(out)]) == 0
    assert main(["--checkpoint", str(orbax_dir), "--out", str(out)]) == 2
    assert "already holds a sentence-transformers export" in capsys.readouterr().err
    # Another format's marker does not make the directory this format's own.
    assert main(["--checkpoint", str(orbax_dir), "--out", str(out), "--format", "orbax", "--overwrite"]) == 2
    assert main(["--checkpoint", str(orbax_dir), "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "orbax", "st"]


def test_a_refused_export_leaves_nothing(tmp_path, tiny_config, tiny_params, tiny_tokenizer_path, capsys):
    attention = save_orbax(tmp_path / "attention", tiny_config.replace(pooling="attention"),
                           {**tiny_params, "pooling": {"query": np.zeros(64, np.float32)}},
                           tiny_tokenizer_path, PROMPTS)
    assert main(["--checkpoint", str(attention), "--out", str(tmp_path / "st")]) == 2
    assert "pooling='attention' has no sentence-transformers equivalent" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attention"]
    assert main(["--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path / "st")]) == 2
    assert "not found" in capsys.readouterr().err


def test_sentence_transformers_embeds_an_exported_soup_as_we_do(tmp_path, tiny_config, tiny_params,
                                                                 tiny_tokenizer_path):
    SentenceTransformer = pytest.importorskip("sentence_transformers").SentenceTransformer
    from embeddinggemma.cli.soup import main as soup

    ingredients = [save_orbax(tmp_path / f"ingredient{seed}", tiny_config, perturbed(tiny_params, seed),
                              tiny_tokenizer_path, PROMPTS) for seed in (1, 2)]
    assert soup(["--checkpoints", *map(str, ingredients), "--out", str(tmp_path / "soup")]) == 0
    out = tmp_path / "st"
    assert main(["--checkpoint", str(tmp_path / "soup"), "--out", str(out)]) == 0
    model = SentenceTransformer(str(out), device="cpu", local_files_only=True)
    ours = Embedder.load(tmp_path / "soup")
    texts = catalog_texts(2000) + ["an HTML <s>strike</s> and a <pad> in the text", ""]
    features = model.preprocess(texts)
    ids = [row[mask.bool()].tolist()
           for row, mask in zip(features["input_ids"], features["attention_mask"], strict=True)]
    assert ids == ours.tokenize(texts, max_length=model.max_seq_length)
    some = texts[::50]
    theirs = model.encode(some, prompt_name="query", batch_size=len(some))
    cosine = (theirs * ours.encode(some, prompt_name="query", batch_size=len(some))).sum(-1)
    assert cosine.min() >= 0.99999, some[int(np.argmin(cosine))]
    assert model.prompts == PROMPTS
    assert (out / "README.md").read_text().count("64, 32, 16") == 1


@pytest.mark.release
def test_exporting_the_release_reproduces_its_tensors_and_imports_back(release_dir, tmp_path):
    from safetensors import safe_open
    from tokenizers import Tokenizer

    out = export(release_dir, tmp_path / "st")
    for name in ("model.safetensors", "2_Dense/model.safetensors", "3_Dense/model.safetensors"):
        with safe_open(release_dir / name, "numpy") as original, safe_open(out / name, "numpy") as ours:
            assert sorted(ours.keys()) == sorted(original.keys()), name
            for key in original.keys():
                a, b = original.get_tensor(key), ours.get_tensor(key)
                assert a.dtype == b.dtype and np.array_equal(a, b), (name, key)
    imported, release = load_checkpoint(out), load_checkpoint(release_dir)
    assert imported.config == release.config and imported.prompts == release.prompts
    _same_params(imported.params, release.params)
    # The exported tokenizer.json gives SentencePiece's ids on real text in many scripts.
    texts = catalog_texts(2000)
    ids = [e.ids for e in Tokenizer.from_file(str(out / "tokenizer.json")).encode_batch(texts)]
    assert ids == SentencePieceTokenizer(release_dir / "tokenizer.model").encode(texts, max_length=1 << 20)


@pytest.mark.parametrize("where", ["same", "inside"])
def test_export_never_writes_onto_or_into_its_input(orbax_dir, capsys, where):
    before = {p: p.read_bytes() for p in orbax_dir.rglob("*") if p.is_file()}
    out = orbax_dir if where == "same" else orbax_dir / "params"
    assert main(["--checkpoint", str(orbax_dir), "--out", str(out), "--format", "orbax", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert str(orbax_dir) in err and str(out) in err
    assert {p: p.read_bytes() for p in orbax_dir.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("fmt, name", [("gguf", "theirs.gguf"), ("sentence-transformers", "theirs")])
def test_a_taken_out_is_refused_before_the_checkpoint_is_read(orbax_dir, tmp_path, monkeypatch, capsys,
                                                              fmt, name):
    theirs = tmp_path / name
    if fmt == "gguf":
        theirs.write_bytes(b"GGUF of somebody else")
    else:
        theirs.mkdir()
        (theirs / "notes.txt").write_text("keep me")

    def read_nothing(path):
        raise AssertionError("the checkpoint was read before --out was checked")

    monkeypatch.setattr("embeddinggemma.checkpoint.export.load_checkpoint", read_nothing)
    assert main(["--checkpoint", str(orbax_dir), "--out", str(theirs), "--format", fmt, "--overwrite"]) == 2
    assert str(theirs) in capsys.readouterr().err


def test_gguf_type_is_refused_for_the_other_formats(orbax_dir, tmp_path, capsys):
    out = tmp_path / "st"
    assert main(["--checkpoint", str(orbax_dir), "--out", str(out), "--gguf-type", "q8_0"]) == 2
    assert "does not take --gguf-type" in capsys.readouterr().err and not out.exists()
