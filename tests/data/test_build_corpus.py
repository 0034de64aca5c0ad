"""The corpus builder: deterministic, reads declared sources only (never a reserved one, never the
running environment), splits and mines as documented, and never writes where it does not own."""

import hashlib
import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from embeddinggemma.data.corpus import wheels as wheels_module
from embeddinggemma.data.corpus.build import DEFAULT_CONTENT_SHA256, build_corpus, split_of
from embeddinggemma.data.corpus.manifest import FORMAT_VERSION
from embeddinggemma.data.corpus.reserved import reserved_reason
from embeddinggemma.errors import NotOurDirectoryError
from tests.data.conftest import LONG_DESCRIPTION, make_wheel

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE = Path(sysconfig.get_paths()["purelib"])
CODE = '''
def area(w, h):
    """Area of a rectangle of the given sides, in square units."""
    return w * h


def volume(w, h, d):
    """Volume of a box of the given sides, in cubic units."""
    return area(w, h) * d
'''
# A small build: test wheels (no network), the machine's gettext catalogs.
SMALL = {"max_pairs": 16, "code_packages": ("shapes",)}

# Two small builds in a fresh interpreter; every file opened by the second one is logged (the first
# one performs the lazy imports, which open standard-library modules, before the audit starts).
AUDITED_BUILDS = r"""
import json, os, sys
from pathlib import Path
from embeddinggemma.data.corpus.build import build_corpus
from embeddinggemma.data.corpus.wheels import Wheel
out, settings = sys.argv[1], json.loads(sys.argv[2])
wheels = [Wheel(Path(p), s) for p, s in settings.pop("wheels")]
build_corpus(out + "/a", wheels=wheels, **settings)
opened = []
sys.addaudithook(lambda event, args: opened.append(os.fsdecode(args[0]))
                 if event == "open" and isinstance(args[0], (str, bytes)) else None)
build_corpus(out + "/b", wheels=wheels, **settings)
print(json.dumps(opened))
"""


def small_wheels(directory: Path) -> list:
    """A wheel of code (package `shapes`, five modules) and five wheels of metadata only."""
    directory.mkdir(parents=True, exist_ok=True)
    code = make_wheel(directory, "shapes", "1.0", files={f"shapes/m{i}.py": CODE.replace("area", f"area{i}")
                                                         for i in range(5)})
    return [code, *(make_wheel(directory, f"tool{i}", summary=f"Tool number {i} does its one job",
                               description=f"Tool {i}: {LONG_DESCRIPTION}") for i in range(5))]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    out = tmp_path_factory.mktemp("corpus")
    settings = {**SMALL, "wheels": [(str(w.path), w.sha256) for w in small_wheels(out / "wheels")]}
    result = subprocess.run([sys.executable, "-c", AUDITED_BUILDS, str(out), json.dumps(settings)],
                            capture_output=True, text=True, check=True, timeout=120)
    return out / "a", out / "b", json.loads(result.stdout.splitlines()[-1])


@pytest.fixture
def pinned(tmp_path, monkeypatch) -> list:
    """The small wheels as the pinned sources, in a cache at $EMBEDDINGGEMMA_CACHE."""
    wheels = small_wheels(tmp_path / "cache" / "corpus-sources")
    monkeypatch.setattr(wheels_module, "PINNED_WHEELS", {w.path.name: w.sha256 for w in wheels})
    monkeypatch.setenv("EMBEDDINGGEMMA_CACHE", str(tmp_path / "cache"))
    return wheels


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


def test_a_package_linked_to_the_standard_library_is_reserved(tmp_path):
    (tmp_path / "json").symlink_to(STDLIB / "json")
    assert reserved_reason(tmp_path / "json" / "decoder.py") == "CPython standard library"


def test_builds_are_identical_and_read_no_reserved_source(builds):
    a, b, opened = builds
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    datasets, splits = ("bitext", "code", "package_metadata"), ("heldout", "train")
    assert [str(f) for f in files] == sorted(["manifest.json", *(f"{d}/{s}.jsonl" for d in datasets
                                                                 for s in splits)])
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files if f.name != "manifest.json")
    assert json.loads((a / "manifest.json").read_text())["content_sha256"] == \
        json.loads((b / "manifest.json").read_text())["content_sha256"]
    assert any(p.endswith(".mo") for p in opened) and any(p.endswith(".whl") for p in opened)
    assert [p for p in opened if reserved_reason(p)] == []
    assert [p for p in opened if p.startswith(str(SITE))] == []  # nothing of the running environment


def test_splits_counts_and_hard_negatives(builds):
    corpus = builds[0]
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert "glib20" not in manifest["datasets"]["bitext"]["sources"]["domains"]
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
                                              tokenizer, monkeypatch):
    import shutil

    from embeddinggemma import Embedder
    from embeddinggemma.checkpoint.orbax_io import save_orbax
    from embeddinggemma.data.config import corpus_datasets, data_config
    from embeddinggemma.data.corpus.teacher_embeddings import add_teacher_embeddings
    from embeddinggemma.data.hashing import text_id
    from embeddinggemma.data.pipeline import make_train_iterator
    from embeddinggemma.prompts import DEFAULT_PROMPTS

    corpus = shutil.copytree(builds[0], tmp_path / "corpus")
    checkpoint = save_orbax(tmp_path / "teacher", tiny_config, tiny_params, tiny_tokenizer_path,
                            DEFAULT_PROMPTS)
    manifest = add_teacher_embeddings(corpus, checkpoint, name="tiny", max_length=32, batch_size=16)
    assert manifest["teachers"]["tiny"]["dim"] == tiny_config.output_dim
    assert (corpus / "code" / "train.teacher" / "tiny" / "negative.npy").is_file()

    # A killed precomputation resumes: only the split without embeddings is embedded again.
    written = corpus / "code" / "train.teacher" / "tiny"
    before = np.load(written / "query.npy")
    shutil.rmtree(written)
    calls = []
    original = Embedder.encode
    monkeypatch.setattr(Embedder, "encode", lambda self, texts, **kw: calls.append(len(texts)) or
                        original(self, texts, **kw))
    add_teacher_embeddings(corpus, checkpoint, name="tiny", max_length=32, batch_size=16)
    assert len(calls) == 1 and calls[0] == 3 * len(lines(corpus / "code" / "train.jsonl"))
    np.testing.assert_allclose(np.load(written / "query.npy"), before, atol=1e-6)
    monkeypatch.setattr(Embedder, "encode", original)

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


def build_script():
    import runpy

    return runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "build_corpus.py"))["main"]


def test_command_line_builds_keeps_and_refuses_other_settings(tmp_path, capsys, pinned):
    main = build_script()
    args = ["--out", str(tmp_path / "corpus-v3"), "--max-pairs", "6", "--code-package", "shapes"]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "code: train" in printed.out and "content_sha256" in printed.out and "built" in printed.err
    assert main(args) == 0 and "kept the existing corpus" in capsys.readouterr().err
    assert main([*args, "--seed", "1"]) == 2 and "--force" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "corpus-v3" / "manifest.json").read_text())
    (tmp_path / "corpus-v3" / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    assert main(args) == 2 and "other settings or format" in capsys.readouterr().err  # a v1 corpus
    (tmp_path / "corpus-v3" / "manifest.json").write_text("{")
    assert main(args) == 2
    assert f"{tmp_path / 'corpus-v3' / 'manifest.json'}: invalid JSON" in capsys.readouterr().err


def test_an_extra_installed_package_leaves_the_corpus_unchanged(tmp_path, monkeypatch, pinned):
    first = build_corpus(tmp_path / "first", **SMALL)
    extra = tmp_path / "extra-site"
    (extra / "shapes").mkdir(parents=True)
    (extra / "shapes" / "__init__.py").write_text(CODE.replace("area", "perimeter"))
    (extra / "extra_tool-1.0.dist-info").mkdir()
    (extra / "extra_tool-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: extra-tool\nVersion: 1.0\nSummary: An extra tool installed later\n\n"
        + "The extra tool would change the corpus if the builder read the environment.\n" * 5)
    monkeypatch.syspath_prepend(str(extra))
    monkeypatch.setattr(site, "getsitepackages", lambda real=site.getsitepackages: [str(extra), *real()])
    import shapes  # noqa: F401  (importable now: the environment did change)

    second = build_corpus(tmp_path / "second", **SMALL)
    assert second["content_sha256"] == first["content_sha256"]
    assert (tmp_path / "second" / "code" / "train.jsonl").read_bytes() == \
        (tmp_path / "first" / "code" / "train.jsonl").read_bytes()
    assert first["format_version"] == FORMAT_VERSION == 3
    assert first["sources"]["wheels"] == [w.provenance() for w in sorted(pinned, key=lambda w: w.path.name)]


def test_a_directory_that_is_not_a_corpus_is_refused_and_kept(tmp_path, capsys, monkeypatch, pinned):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("my notes")
    with pytest.raises(NotOurDirectoryError, match=f"{user} is not empty and holds no manifest.json"):
        build_corpus(user, overwrite=True, **SMALL)
    monkeypatch.setattr(wheels_module, "_download", lambda *a: pytest.fail("downloaded before refusing"))
    monkeypatch.setattr(wheels_module, "PINNED_WHEELS", {"missing-1.0-py3-none-any.whl": "0" * 64})
    assert build_script()(["--out", str(user), "--force"]) == 2
    assert str(user) in capsys.readouterr().err
    assert [p.name for p in user.iterdir()] == ["notes.txt"]
    assert (user / "notes.txt").read_text() == "my notes"
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["mine"]  # no partial left


def test_an_empty_directory_is_built_and_a_corpus_rebuilt_only_when_asked(tmp_path, pinned):
    (tmp_path / "corpus").mkdir()
    built = build_corpus(tmp_path / "corpus", **SMALL)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_corpus(tmp_path / "corpus", **SMALL)
    rebuilt = build_corpus(tmp_path / "corpus", overwrite=True, **SMALL)
    assert rebuilt["content_sha256"] == built["content_sha256"]


def test_records_sharing_an_id_are_refused_before_anything_is_written(tmp_path, monkeypatch, pinned):
    from embeddinggemma.data.corpus import build as build_module
    from embeddinggemma.data.corpus.pairs import CorpusExample
    twins = [CorpusExample(id="m.py:Cell.value", task="InstructionRetrieval", query=q, positive=q)
             for q in ("The value held now.", "Replaces the value.")]
    monkeypatch.setattr(build_module, "code_pairs", lambda *a, **k: (twins, {}))
    with pytest.raises(ValueError, match=r"Dataset 'code': 1 id\(s\) shared by several records, e.g. "
                                         "'m.py:Cell.value'"):
        build_corpus(tmp_path / "corpus", **SMALL)
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []


@pytest.mark.slow  # the real corpus: downloads the pinned wheels once (about 53 MB), then ~15 s
def test_the_default_corpus_is_the_stated_one_whatever_else_is_installed(tmp_path):
    extra = tmp_path / "extra-site"
    (extra / "networkx").mkdir(parents=True)  # shadows a pinned package, with other code
    (extra / "networkx" / "__init__.py").write_text(CODE)
    (extra / "networkx-0.1.dist-info").mkdir()
    (extra / "networkx-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: networkx\nVersion: 0.1\nSummary: Another networkx, installed later\n\n"
        + "A package that would change the corpus if the builder read the environment.\n" * 5)
    script = Path(__file__).parents[2] / "scripts" / "build_corpus.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), str(extra)])}
    result = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "corpus")], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    assert manifest["datasets"]["code"]["sources"]["packages"]["networkx"] == "networkx==3.6.1"
    assert manifest["content_sha256"] == DEFAULT_CONTENT_SHA256, \
        "another corpus than README states (another image's gettext catalogs?)"
