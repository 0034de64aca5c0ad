"""The offline suite: its sources' parsers, its tasks' shape, determinism and integrity checks."""

import gzip
import hashlib
import json

import pytest

from embeddinggemma.evaluation.build import MANIFEST, build_suite
from embeddinggemma.evaluation.sources.debian_packages import read_packages
from embeddinggemma.evaluation.sources.man_pages import read_man_page
from embeddinggemma.evaluation.tasks import MAIN_SCORES, load_suite

PAGE = r""".\" A comment line
.TH FROB 1 "2024" "frob 1.0"
.SH NAME
frob \- twiddle the \fBbits\fR of a file
.SH SYNOPSIS
.B frob
[\fIOPTION\fR]... \fIFILE\fR
.SH DESCRIPTION
.B Frob
reads
.I FILE
and flips every bit\(emslowly.
.PP
It writes the result to standard output \(aqas is\(aq.
.SH SEE ALSO
.BR xxd (1)
"""


def test_a_man_page_gives_its_name_summary_and_plain_description(tmp_path):
    (tmp_path / "man1").mkdir()
    path = tmp_path / "man1" / "frob.1.gz"
    path.write_bytes(gzip.compress(PAGE.encode()))
    page = read_man_page(path)
    assert (page.name, page.section, page.summary) == ("frob", "1", "twiddle the bits of a file")
    assert (
        page.description
        == "Frob reads FILE and flips every bit-slowly. It writes the result to standard output 'as is'."
    )


def test_redirecting_and_mdoc_pages_are_left_out(tmp_path):
    (tmp_path / "redirect.1").write_text(".so man1/frob.1\n")
    (tmp_path / "bsd.1").write_text(".Dd March 1, 2020\n.Dt BSD 1\n.Sh NAME\n")
    assert read_man_page(tmp_path / "redirect.1") is None and read_man_page(tmp_path / "bsd.1") is None


def test_the_package_index_gives_name_section_and_summary(tmp_path):
    path = tmp_path / "x_main_binary-amd64_Packages"
    path.write_text(
        "Package: vim\nVersion: 2\nDescription: Vi IMproved - enhanced vi editor\nSection: editors\n\n"
        "Package: nosection\nDescription: left out\n\n"
        "Package: foo\nSection: contrib/net\nDescription: a tool\n long text\n .\n second paragraph\n"
    )
    packages = list(read_packages(path))
    assert [(p.name, p.section, p.summary, p.description) for p in packages] == [
        ("vim", "editors", "Vi IMproved - enhanced vi editor", ""),
        ("foo", "net", "a tool", "long text"),
    ]


def test_the_suite_has_five_task_types_code_and_many_languages(suite):
    types = {t.type for t in suite.values()}
    assert len(suite) >= 5 and types == set(MAIN_SCORES) - {"STS"}
    assert any("python" in t.languages for t in suite.values())
    assert max(len(t.languages) for t in suite.values()) >= 9


def test_retrieval_tasks_point_every_query_at_a_document_of_the_corpus(suite):
    for name in ("StdlibCodeRetrieval", "ManPageRetrieval"):
        d = suite[name].data
        assert len(d["queries"]) == 200 and len(d["corpus"]) == 300
        assert set(d["relevant_docs"]) == set(d["queries"])
        assert all(set(docs) <= set(d["corpus"]) for docs in d["relevant_docs"].values())
        assert len(set(d["queries"].values())) == len(d["queries"])  # no two queries alike


def test_the_other_tasks_are_balanced_and_aligned(suite):
    bitext = suite["Glib20BitextMining"].data["subsets"]
    assert len(bitext) == 8 and {len(s["sentence1"]) for s in bitext.values()} == {100}
    assert all(len(s["sentence1"]) == len(s["sentence2"]) for s in bitext.values())
    classification = suite["DebianPackageClassification"].data
    assert {classification["train"]["label"].count(s) for s in set(classification["train"]["label"])} == {32}
    assert {classification["test"]["label"].count(s) for s in set(classification["test"]["label"])} == {16}
    assert not set(classification["train"]["text"]) & set(classification["test"]["text"])
    pairs = suite["Glib20PairClassification"].data
    assert sum(pairs["labels"]) * 2 == len(pairs["labels"]) == 360
    clustering = suite["ManPageSectionClustering"].data
    assert sorted(set(clustering["labels"])) == ["1", "2", "3", "5", "7", "8"]


def test_building_again_gives_the_same_files(tmp_path, suite):
    names = ("Glib20BitextMining", "DebianPackageClassification")
    manifest = build_suite(tmp_path / "again", tasks=names)
    assert {n: manifest["tasks"][n]["sha256"] for n in names} == {n: suite[n].sha256 for n in names}


def test_a_changed_task_file_is_refused_naming_it(tmp_path):
    out = tmp_path / "suite"
    build_suite(out, tasks=("Glib20BitextMining",))
    path = out / "Glib20BitextMining.json"
    data = json.loads(path.read_text())
    data["subsets"]["en-de"]["sentence2"][0] = "verändert"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"Glib20BitextMining.json: sha256 .* differs from the manifest"):
        load_suite(out)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["tasks"]["Glib20BitextMining"]["sha256"] != hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="Unknown tasks \\['Nope'\\]"):
        load_suite(out, ["Nope"])
