"""The builder's parts on small inputs: sampling, BM25 mining, code, metadata and gettext pairs."""

from pathlib import Path

import pytest

from embeddinggemma.data.corpus.code_pairs import file_pairs
from embeddinggemma.data.corpus.gettext_pairs import catalog_files, catalog_pairs
from embeddinggemma.data.corpus.hard_negatives import mine_hard_negatives
from embeddinggemma.data.corpus.package_metadata import metadata_pairs
from embeddinggemma.data.corpus.pairs import Pair, sample_spread

LOCALE = Path("/usr/share/locale")


def test_hard_negative_is_the_top_bm25_document_other_than_the_positive():
    pairs = [Pair("a", "query", "red apple pie recipe", "bake an apple pie slowly"),
             Pair("b", "query", "fix a car engine", "red apple orchard harvest"),
             Pair("c", "query", "apple pie", "bake an apple pie slowly"),  # same document as a's
             Pair("d", "query", "engine oil", "car engine repair manual")]
    negatives = {p.id: p.negative for p in mine_hard_negatives(pairs, seed=0)}
    assert negatives["a"] == "red apple orchard harvest"
    assert negatives["c"] == "red apple orchard harvest"
    assert negatives["b"] == "car engine repair manual"


def test_mining_stays_within_a_group_and_drops_lonely_pairs():
    pairs = [Pair(f"{g}{i}", "BitextMining", f"open the file {i}", f"{g} text {i}", mining_group=g,
                  mining_text=f"open the file {i}") for g in ("de", "fr") for i in range(3)]
    pairs.append(Pair("it0", "BitextMining", "open the file", "apri il file", mining_group="it"))
    mined = mine_hard_negatives(pairs, seed=0)
    assert [p.id for p in mined] == ["de0", "de1", "de2", "fr0", "fr1", "fr2"]
    assert all(p.negative.startswith(p.mining_group) and p.negative != p.positive for p in mined)


def test_sample_spread_caps_each_group_and_the_total_deterministically():
    groups = [[Pair(f"{g}-{i}", "query", f"q{g}{i % 3}", f"p{g}{i}") for i in range(10)] for g in range(6)]
    sample = sample_spread(groups, list, seed=0, max_pairs=7, per_group=2, unique=("query",))
    assert len(sample) == 7 and sample == sorted(sample, key=lambda p: p.id)
    assert max(sum(p.id.startswith(f"{g}-") for p in sample) for g in range(6)) == 2
    assert len({p.query for p in sample}) == 7
    assert sample == sample_spread(groups, list, seed=0, max_pairs=7, per_group=2, unique=("query",))
    assert sample != sample_spread(groups, list, seed=1, max_pairs=7, per_group=2, unique=("query",))


def test_code_pairs_pair_a_docstring_summary_with_the_code_without_it(tmp_path):
    source = tmp_path / "pkg" / "mod.py"
    source.parent.mkdir()
    source.write_text('''
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
''')
    [pair] = file_pairs(source, tmp_path)
    assert pair.id == "pkg/mod.py:Box.area" and pair.task == "InstructionRetrieval"
    assert pair.query == "Area of a box of the given sides."
    assert pair.positive == "@staticmethod\ndef area(w, h):\n    return w * h"


def test_metadata_pairs_take_summary_description_and_name(tmp_path):
    for name, summary in (("Good-Pkg", "Does a useful thing well"), ("Bare", "Too short")):
        info = tmp_path / f"{name}-1.0.dist-info"
        info.mkdir()
        body = "[![badge](x)](y)\n" + "Good-Pkg does a useful thing, explained at length.\n" * 6
        info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
                                             f"Summary: {summary}\n\n{body}")
    pairs, provenance = metadata_pairs([tmp_path], seed=0, max_pairs=10)
    assert provenance["dist_info_dirs"] == 2
    [pair] = pairs
    assert (pair.id, pair.title, pair.query) == ("pypi/good-pkg", "Good-Pkg", "Does a useful thing well")
    assert pair.positive.startswith("Good-Pkg does") and "badge" not in pair.positive


def test_gettext_catalogs_leave_out_english_and_glib20(tmp_path):
    real = sorted(p for p in (LOCALE / "de" / "LC_MESSAGES").glob("*.mo") if p.stem != "glib20")
    if not real or not (LOCALE / "de" / "LC_MESSAGES" / "glib20.mo").exists():
        pytest.skip("no German catalogs on this machine")
    for language, name, target in (("de", "app.mo", real[0]), ("de", "glib20.mo", real[0]),
                                   ("en_GB", "app.mo", real[0])):
        (tmp_path / language / "LC_MESSAGES").mkdir(parents=True, exist_ok=True)
        (tmp_path / language / "LC_MESSAGES" / name).symlink_to(target)
    catalogs, reserved = catalog_files(tmp_path)
    assert catalogs == [tmp_path / "de" / "LC_MESSAGES" / "app.mo"] and reserved == 1
    pairs = catalog_pairs(catalogs[0])
    assert pairs and all(p.id.startswith("de/") and p.mining_group == "de" and p.mining_text == p.query
                         and len(p.query.split()) >= 3 and p.positive != p.query for p in pairs)
