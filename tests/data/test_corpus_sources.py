"""The builder's parts on small inputs: sampling, BM25 mining, code, metadata and gettext pairs, and
the pinned wheels they are read from."""

import hashlib
import subprocess
from pathlib import Path

import pytest

from embeddinggemma.data.corpus import wheels as wheels_module
from embeddinggemma.data.corpus.code_pairs import code_pairs, file_pairs, package_files
from embeddinggemma.data.corpus.gettext_pairs import bitext_pairs, catalog_files, catalog_pairs
from embeddinggemma.data.corpus.hard_negatives import mine_hard_negatives
from embeddinggemma.data.corpus.package_metadata import metadata_pairs
from embeddinggemma.data.corpus.pairs import CorpusExample, sample_spread
from embeddinggemma.data.corpus.wheels import PINNED_WHEELS, SourceError, fetch_wheels
from embeddinggemma.data.records import example_record
from tests.data.conftest import make_wheel

LOCALE = Path("/usr/share/locale")
SOURCE = '''
class Box:
    @staticmethod
    def area(w, h):
        """Area of a box of the given sides.

        More details that the query leaves out.
        """
        return w * h

def _private(x):
    """Not a public function at all."""
    return x

def stub(x):
    """A stub with nothing in it."""
    ...
'''


def pair(pair_id: str, task: str, query: str, positive: str, **extra) -> CorpusExample:
    return CorpusExample(id=pair_id, task=task, query=query, positive=positive, **extra)


def test_hard_negative_is_the_top_bm25_document_other_than_the_positive():
    pairs = [pair("a", "query", "red apple pie recipe", "bake an apple pie slowly"),
             pair("b", "query", "fix a car engine", "red apple orchard harvest"),
             pair("c", "query", "apple pie", "bake an apple pie slowly"),  # same document as a's
             pair("d", "query", "engine oil", "car engine repair manual")]
    negatives = {p.id: p.negative for p in mine_hard_negatives(pairs, seed=0)}
    assert negatives["a"] == "red apple orchard harvest"
    assert negatives["c"] == "red apple orchard harvest"
    assert negatives["b"] == "car engine repair manual"


def test_mining_stays_within_a_group_and_drops_lonely_pairs():
    pairs = [pair(f"{g}{i}", "BitextMining", f"open the file {i}", f"{g} text {i}", mining_group=g,
                  mining_text=f"open the file {i}") for g in ("de", "fr") for i in range(3)]
    pairs.append(pair("it0", "BitextMining", "open the file", "apri il file", mining_group="it"))
    mined = mine_hard_negatives(pairs, seed=0)
    assert [p.id for p in mined] == ["de0", "de1", "de2", "fr0", "fr1", "fr2"]
    assert all(p.negative.startswith(p.mining_group) and p.negative != p.positive for p in mined)


def test_sample_spread_caps_each_group_and_the_total_deterministically():
    groups = [[pair(f"{g}-{i}", "query", f"q{g}{i % 3}", f"p{g}{i}") for i in range(10)] for g in range(6)]
    sample = sample_spread(groups, list, seed=0, max_pairs=7, per_group=2, unique=("query",))
    assert len(sample) == 7 and sample == sorted(sample, key=lambda p: p.id)
    assert max(sum(p.id.startswith(f"{g}-") for p in sample) for g in range(6)) == 2
    assert len({p.query for p in sample}) == 7
    assert sample == sample_spread(groups, list, seed=0, max_pairs=7, per_group=2, unique=("query",))
    assert sample != sample_spread(groups, list, seed=1, max_pairs=7, per_group=2, unique=("query",))


def test_code_pairs_pair_a_docstring_summary_with_the_code_without_it(tmp_path):
    source = tmp_path / "pkg" / "mod.py"
    source.parent.mkdir()
    source.write_text(SOURCE)
    [found] = file_pairs(source, tmp_path)
    assert found.id == "pkg/mod.py:Box.area" and found.task == "InstructionRetrieval"
    assert found.query == "Area of a box of the given sides."
    assert found.positive == "@staticmethod\ndef area(w, h):\n    return w * h"


def test_a_property_getter_and_setter_get_different_ids(tmp_path):
    source = tmp_path / "prop.py"
    source.write_text('''
class Cell:
    @property
    def value(self):
        """The value held in this cell right now."""
        return self._value

    @value.setter
    def value(self, new):
        """Replaces the value held in this cell."""
        self._value = new
''')
    found = file_pairs(source, tmp_path)
    assert [(p.id, p.query) for p in found] == [
        ("prop.py:Cell.value", "The value held in this cell right now."),
        ("prop.py:Cell.value#2", "Replaces the value held in this cell.")]


def test_code_pairs_are_read_from_a_wheel_without_its_tests_or_other_packages(tmp_path):
    wheel = make_wheel(tmp_path, "pkg", "2.5", files={
        "pkg/mod.py": SOURCE, "pkg/tests/test_mod.py": SOURCE, "pkg/mod_test.py": SOURCE,
        "other/mod.py": SOURCE, "pkg/data.txt": SOURCE})
    [(found_wheel, members)] = package_files([wheel], ["pkg"]).values()
    assert found_wheel == wheel and members == ["pkg/mod.py"]
    pairs, provenance = code_pairs([wheel], ["pkg"], seed=0, max_pairs=10)
    assert [example_record(p) for p in pairs] == [{
        "id": "pkg/mod.py:Box.area", "task": "InstructionRetrieval",
        "query": "Area of a box of the given sides.",
        "positive": "@staticmethod\ndef area(w, h):\n    return w * h"}]
    assert provenance == {"packages": {"pkg": "pkg==2.5"}, "files": 1}


def test_a_standard_library_package_or_a_missing_one_is_refused(tmp_path):
    wheel = make_wheel(tmp_path, "json", files={"json/decoder.py": SOURCE})
    with pytest.raises(ValueError, match=r"\['json'\] are reserved: CPython standard library"):
        package_files([wheel], ["json"])
    with pytest.raises(ValueError, match=r"\['numpy'\] are in none of the wheels"):
        package_files([wheel], ["numpy"])


def test_metadata_pairs_take_summary_description_and_name(tmp_path):
    body = "[![badge](x)](y)\n" + "Good-Pkg does a useful thing, explained at length.\n" * 6
    wheels = [make_wheel(tmp_path, "Good-Pkg", summary="Does a useful thing well", description=body),
              make_wheel(tmp_path, "Bare", summary="Too short", description=body)]
    pairs, provenance = metadata_pairs(wheels, seed=0, max_pairs=10)
    assert provenance == {"wheels": 2}
    [found] = pairs
    assert (found.id, found.title, found.query) == ("pypi/good-pkg", "Good-Pkg", "Does a useful thing well")
    assert found.positive.startswith("Good-Pkg does") and "badge" not in found.positive


def test_pinned_wheels_are_pure_python_and_fetched_by_their_sha256(tmp_path, monkeypatch):
    assert all(name.endswith(("-py3-none-any.whl", "-py2.py3-none-any.whl")) for name in PINNED_WHEELS)
    assert all(len(digest) == 64 and int(digest, 16) >= 0 for digest in PINNED_WHEELS.values())
    (tmp_path / "index").mkdir()
    built = make_wheel(tmp_path / "index", "pkg", "2.5")
    commands = []

    def fake_pip(command, **kwargs):  # what `pip download` does: the wheel appears in --dest
        commands.append(command)
        dest = Path(command[command.index("--dest") + 1])
        (dest / built.path.name).write_bytes(built.path.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    pins = {built.path.name: built.sha256}
    [fetched] = fetch_wheels(pins, tmp_path / "cache")
    assert fetched.path == tmp_path / "cache" / built.path.name and fetched.sha256 == built.sha256
    assert (fetched.name, fetched.version) == ("pkg", "2.5")
    assert "--no-deps" in commands[0] and commands[0][-1] == "pkg==2.5"
    assert fetch_wheels(pins, tmp_path / "cache") == [fetched] and len(commands) == 1  # cached
    with pytest.raises(SourceError, match=f"{tmp_path / 'cache' / built.path.name} has sha256"):
        fetch_wheels({built.path.name: hashlib.sha256(b"other").hexdigest()}, tmp_path / "cache")


def test_the_sources_cache_follows_embeddinggemma_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDDINGGEMMA_CACHE", str(tmp_path))
    assert wheels_module.default_sources_dir() == tmp_path / "corpus-sources"


def test_gettext_catalogs_leave_out_english_and_glib20(tmp_path):
    real = sorted(p for p in (LOCALE / "de" / "LC_MESSAGES").glob("*.mo") if p.stem != "glib20")
    if not real or not (LOCALE / "de" / "LC_MESSAGES" / "glib20.mo").exists():
        pytest.skip("no German catalogs on this machine")
    for language, name, target in (("de", "app.mo", real[0]), ("de", "glib20.mo", real[0]),
                                   ("en_GB", "app.mo", real[0])):
        (tmp_path / language / "LC_MESSAGES").mkdir(parents=True, exist_ok=True)
        (tmp_path / language / "LC_MESSAGES" / name).symlink_to(target)
    (tmp_path / "de" / "LC_MESSAGES" / "unlisted.mo").symlink_to(real[0])
    catalogs, reserved = catalog_files(tmp_path, domains=("app", "glib20"))
    assert catalogs == [tmp_path / "de" / "LC_MESSAGES" / "app.mo"] and reserved == 1
    pairs = catalog_pairs(catalogs[0])
    assert pairs and all(p.id.startswith("de/") and p.mining_group == "de" and p.mining_text == p.query
                         and len(p.query.split()) >= 3 and p.positive != p.query for p in pairs)
    _, provenance = bitext_pairs(tmp_path, ("app", "glib20"), seed=0, max_pairs=5)
    listing = f"de/LC_MESSAGES/app.mo {hashlib.sha256(real[0].read_bytes()).hexdigest()}\n"
    assert provenance["languages"] == ["de"] and provenance["catalogs_read"] == 1
    assert provenance["catalogs_read_sha256"] == hashlib.sha256(listing.encode()).hexdigest()


def test_the_lock_file_is_read_line_by_line_and_a_bad_line_is_named(tmp_path):
    from embeddinggemma.data.corpus.wheels import LOCK_FILE, read_lock

    assert read_lock(LOCK_FILE) == PINNED_WHEELS and len(PINNED_WHEELS) == 154
    lock = tmp_path / "wheels.lock"
    lock.write_text("# comment\n" + "a" * 64 + "  x-1.0-py3-none-any.whl\n"
                    + "b" * 63 + "  y-1.0-py3-none-any.whl\n")
    with pytest.raises(ValueError, match=rf"{lock}:3: expected"):
        read_lock(lock)
