"""The corpus builder: deterministic, never reads a reserved source, splits and mines as documented."""

import hashlib
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from embeddinggemma.data.corpus.build import split_of
from embeddinggemma.data.corpus.code_pairs import package_files
from embeddinggemma.data.corpus.reserved import reserved_reason

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE = Path(sysconfig.get_paths()["purelib"])

# Two small builds in a fresh interpreter; every file opened by the second one is logged (the first
# one performs the lazy imports, which open standard-library modules, before the audit starts).
AUDITED_BUILDS = r"""
import json, os, sys
from embeddinggemma.data.corpus.build import build_corpus
out = sys.argv[1]
settings = dict(max_pairs=16, code_packages=("absl", "ml_collections"))
build_corpus(out + "/a", **settings)
opened = []
sys.addaudithook(lambda event, args: opened.append(os.fsdecode(args[0]))
                 if event == "open" and isinstance(args[0], (str, bytes)) else None)
build_corpus(out + "/b", **settings)
print(json.dumps(opened))
"""


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    out = tmp_path_factory.mktemp("corpus")
    result = subprocess.run([sys.executable, "-c", AUDITED_BUILDS, str(out)], capture_output=True, text=True,
                            check=True, timeout=120)
    return out / "a", out / "b", json.loads(result.stdout.splitlines()[-1])


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("path, reason", [
    (STDLIB / "json" / "__init__.py", "CPython standard library"),
    ("/usr/lib/python3.11/os.py", "CPython standard library"),
    ("/usr/share/man/man1/ls.1.gz", "man pages"),
    ("/usr/share/man/fr/man1/ls.1.gz", "man pages"),
    ("/usr/share/locale/fr/LC_MESSAGES/glib20.mo", "glib20 translation catalog"),
    ("/var/lib/dpkg/status", "Debian package index"),
    ("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_Packages", "Debian package index"),
    (SITE / "numpy" / "__init__.py", None),
    ("/usr/lib/python3/dist-packages/yaml/__init__.py", None),
    ("/usr/share/locale/fr/LC_MESSAGES/gtk20.mo", None),
])
def test_reserved_sources_are_recognised(path, reason):
    assert reserved_reason(path) == reason


def test_a_package_linked_to_the_standard_library_is_refused(tmp_path):
    (tmp_path / "json").symlink_to(STDLIB / "json")
    assert reserved_reason(tmp_path / "json" / "decoder.py") == "CPython standard library"
    with pytest.raises(FileNotFoundError, match="reserved"):
        package_files([tmp_path], ["json"])


def test_builds_are_identical_and_read_no_reserved_source(builds):
    a, b, opened = builds
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    datasets, splits = ("bitext", "code", "package_metadata"), ("heldout", "train")
    assert [str(f) for f in files] == sorted(["manifest.json", *(f"{d}/{s}.jsonl" for d in datasets
                                                                 for s in splits)])
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files if f.name != "manifest.json")
    assert json.loads((a / "manifest.json").read_text())["content_sha256"] == \
        json.loads((b / "manifest.json").read_text())["content_sha256"]
    assert any(p.endswith(".mo") for p in opened) and any(p.endswith("METADATA") for p in opened)
    assert [p for p in opened if reserved_reason(p)] == []


def test_splits_counts_and_hard_negatives(builds):
    corpus = builds[0]
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert manifest["datasets"]["bitext"]["sources"]["reserved_catalogs_left_out"] > 0
    for name, entry in manifest["datasets"].items():
        ids = {}
        for split, info in entry["splits"].items():
            records = lines(corpus / info["path"])
            assert info["records"] == len(records)
            assert info["sha256"] == hashlib.sha256((corpus / info["path"]).read_bytes()).hexdigest()
            assert [r["id"] for r in records] == sorted(r["id"] for r in records)
            assert all(split_of(r["id"], manifest["heldout_percent"]) == split for r in records)
            assert all(r["negative"] != r["positive"] and r["task"] in entry["tasks"] for r in records)
            ids[split] = {r["id"] for r in records}
        assert ids["train"] and not ids["train"] & ids["heldout"], name


@pytest.mark.slow  # compiles the tiny model for several shapes
def test_teacher_embeddings_reach_the_batches(builds, tmp_path, tiny_config, tiny_params, tiny_tokenizer_path,
                                              tokenizer):
    import shutil

    from embeddinggemma import Embedder
    from embeddinggemma.checkpoint.orbax_io import save_orbax
    from embeddinggemma.data import corpus_datasets, data_config, make_train_iterator
    from embeddinggemma.data.corpus.teacher_embeddings import add_teacher_embeddings
    from embeddinggemma.data.hashing import text_id
    from embeddinggemma.prompts import DEFAULT_PROMPTS

    corpus = shutil.copytree(builds[0], tmp_path / "corpus")
    checkpoint = save_orbax(tmp_path / "teacher", tiny_config, tiny_params, tiny_tokenizer_path,
                            DEFAULT_PROMPTS)
    manifest = add_teacher_embeddings(corpus, checkpoint, name="tiny", max_length=32, batch_size=16)
    assert manifest["teachers"]["tiny"]["dim"] == tiny_config.output_dim
    assert (corpus / "code" / "train.teacher" / "tiny" / "negative.npy").is_file()

    config = data_config()
    config.datasets = corpus_datasets(corpus)
    config.teacher = "tiny"
    it = make_train_iterator(config, tokenizer, batch_size=4, max_query_length=32, max_document_length=32,
                             hard_negatives=True, seed=0)
    batch = next(it)
    records = lines(corpus / f"{it.last_dataset}/train.jsonl")
    by_id = {text_id(q): q for q in (DEFAULT_PROMPTS[r["task"]] + r["query"] for r in records)}
    queries = [by_id[i] for i in batch["query_id"].tolist()]
    expected = Embedder.load(checkpoint).encode(queries, max_length=32)
    assert batch["teacher_query"].shape == (4, tiny_config.output_dim)
    assert abs(batch["teacher_query"] - expected).max() < 1e-5


def test_command_line_builds_keeps_and_refuses_other_settings(tmp_path, capsys):
    import runpy

    main = runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "build_corpus.py"))["main"]
    args = ["--out", str(tmp_path / "corpus-v1"), "--max-pairs", "6", "--site-dir", str(SITE),
            "--code-package", "ml_collections"]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "code: train" in printed.out and "content_sha256" in printed.out and "built" in printed.err
    assert main(args) == 0 and "kept the existing corpus" in capsys.readouterr().err
    assert main([*args, "--seed", "1"]) == 2 and "--force" in capsys.readouterr().err
