"""Builds the offline evaluation suite from the sources reserved for evaluation (shared/DATA.md).

Deterministic: sorted inputs, fixed seeds. One JSON file per task under a versioned directory
(default `~/.cache/embeddinggemma/eval-v1`) with `manifest.json` recording each file's sha256,
which golden scores are checked against (a machine with other man pages or catalogs builds other
data and says so rather than comparing scores of different tasks).

| task | type | source | languages |
| --- | --- | --- | --- |
| StdlibCodeRetrieval | Retrieval (nDCG@10) | CPython standard library: docstring summary -> function | code |
| ManPageRetrieval | Retrieval (nDCG@10) | man pages: NAME summary -> DESCRIPTION | en |
| Glib20BitextMining | BitextMining (F1) | glib20 catalogs: English -> 8 languages | multilingual |
| DebianPackageClassification | Classification (accuracy) | Debian package index: summary -> section | en |
| ManPageSectionClustering | Clustering (V-measure) | man pages: "name - summary" by section | en |
| Glib20PairClassification | PairClassification (AP) | glib20: translation or a BM25-near one | multilingual |
"""

from __future__ import annotations

import functools
import hashlib
import json
import sysconfig
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embeddinggemma.atomic import atomic_directory, refuse_replacing
from embeddinggemma.data.corpus.code_pairs import file_pairs
from embeddinggemma.data.corpus.gettext_pairs import catalog_pairs
from embeddinggemma.data.corpus.hard_negatives import mine_hard_negatives
from embeddinggemma.data.corpus.pairs import CorpusExample, clip_text
from embeddinggemma.data.hashing import stable_seed
from embeddinggemma.evaluation.sources.debian_packages import DEFAULT_LISTS_DIR, index_files, read_packages
from embeddinggemma.evaluation.sources.man_pages import DEFAULT_MAN_DIR, man_page_files, read_man_page
from embeddinggemma.files import read_json
from embeddinggemma.paths import as_path

SUITE_VERSION = 1
DEFAULT_SUITE_DIR = Path(f"~/.cache/embeddinggemma/eval-v{SUITE_VERSION}")
MANIFEST = "manifest.json"
WHAT = "an evaluation suite"
DEFAULT_LOCALE_DIR = Path("/usr/share/locale")

MAX_DOCUMENT_CHARS = 800
BITEXT_LANGUAGES = ("ar", "de", "es", "fr", "hi", "ja", "ru", "zh_CN")
PAIR_LANGUAGES = ("it", "ko", "pl", "pt_BR", "tr", "uk")
PACKAGE_SECTIONS = (
    "admin",
    "database",
    "editors",
    "fonts",
    "games",
    "graphics",
    "mail",
    "net",
    "science",
    "sound",
)
CLUSTER_SECTIONS = ("1", "2", "3", "5", "7", "8")

# name -> (type, languages, domain)
TASKS = {
    "StdlibCodeRetrieval": ("Retrieval", ("python", "en"), "code"),
    "ManPageRetrieval": ("Retrieval", ("en",), "technical"),
    "Glib20BitextMining": ("BitextMining", ("en", *BITEXT_LANGUAGES), "software messages"),
    "DebianPackageClassification": ("Classification", ("en",), "software descriptions"),
    "ManPageSectionClustering": ("Clustering", ("en",), "technical"),
    "Glib20PairClassification": ("PairClassification", ("en", *PAIR_LANGUAGES), "software messages"),
}


def _sample(items: list, count: int, seed: int) -> list:
    """`count` items drawn without replacement (all when fewer), in their original order."""
    if len(items) <= count:
        return list(items)
    keep = np.sort(np.random.default_rng(seed).choice(len(items), count, replace=False))
    return [items[i] for i in keep]


def _retrieval(
    queries: list[tuple[str, str]], documents: list[tuple[str, str]], relevant: dict[str, str]
) -> dict:
    return {
        "queries": dict(queries),
        "corpus": {i: {"title": "", "text": t} for i, t in documents},
        "relevant_docs": {q: {d: 1} for q, d in relevant.items()},
    }


def stdlib_code_retrieval(seed: int, queries: int = 200, distractors: int = 100) -> dict:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p
        for p in root.rglob("*.py")
        if not {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3"}
        & set(p.relative_to(root).parts)
    )
    pairs, seen = [], set()
    for path in files:
        for pair in file_pairs(path, root):
            if pair.query not in seen and pair.positive not in seen:
                seen |= {pair.query, pair.positive}
                pairs.append(pair)
    chosen = _sample(pairs, queries + distractors, stable_seed(seed, "stdlib"))
    order = np.random.default_rng(stable_seed(seed, "stdlib-split")).permutation(len(chosen))
    relevant = [chosen[i] for i in sorted(order[:queries])]
    return _retrieval(
        [(p.id, p.query) for p in relevant],
        [(p.id, clip_text(p.positive, MAX_DOCUMENT_CHARS)) for p in chosen],
        {p.id: p.id for p in relevant},
    )


# Pages of one command family kept at most (e.g. the thousands of `gcloud_*` pages of one SDK).
MAX_PAGES_PER_FAMILY = 3


@functools.cache
def _all_man_pages(man_dir: Path) -> tuple:
    pages, seen, family = [], set(), defaultdict(int)
    for path in man_page_files(man_dir, CLUSTER_SECTIONS):
        page = read_man_page(path)
        if not page or page.name in seen or len(page.summary.split()) < 3 or len(page.description) <= 80:
            continue
        seen.add(page.name)
        family[page.name.split("_")[0]] += 1
        if family[page.name.split("_")[0]] <= MAX_PAGES_PER_FAMILY:
            pages.append(page)
    return tuple(pages)


def _man_pages(man_dir: Path, sections: tuple[str, ...]) -> list:
    return [p for p in _all_man_pages(Path(man_dir)) if p.section in sections]


def man_page_retrieval(
    seed: int, man_dir: Path = DEFAULT_MAN_DIR, queries: int = 200, distractors: int = 100
) -> dict:
    pages = _man_pages(man_dir, ("1", "5", "8"))
    # Distinct summaries: two pages sharing one would make each other's relevant document ambiguous.
    by_summary = defaultdict(list)
    for page in pages:
        by_summary[page.summary.lower()].append(page)
    pages = [group[0] for group in by_summary.values() if len(group) == 1]
    chosen = _sample(pages, queries + distractors, stable_seed(seed, "man"))
    order = np.random.default_rng(stable_seed(seed, "man-split")).permutation(len(chosen))
    relevant = [chosen[i] for i in sorted(order[:queries])]
    key = lambda p: f"{p.name}.{p.section}"  # noqa: E731
    return _retrieval(
        [(key(p), p.summary) for p in relevant],
        [(key(p), clip_text(p.description, MAX_DOCUMENT_CHARS)) for p in chosen],
        {key(p): key(p) for p in relevant},
    )


def _glib20(locale_dir: Path, language: str) -> list[CorpusExample]:
    path = locale_dir / language / "LC_MESSAGES" / "glib20.mo"
    if not path.is_file():
        raise FileNotFoundError(f"glib20 catalog not found: {path}")
    return catalog_pairs(path)


def glib20_bitext_mining(seed: int, locale_dir: Path = DEFAULT_LOCALE_DIR, pairs: int = 100) -> dict:
    """The same English messages in every language; sentence2[i] translates sentence1[i]."""
    catalogs = {lang: {p.query: p.positive for p in _glib20(locale_dir, lang)} for lang in BITEXT_LANGUAGES}
    common = sorted(set.intersection(*(set(c) for c in catalogs.values())))
    english = _sample(common, pairs, stable_seed(seed, "bitext"))
    return {
        "subsets": {
            f"en-{lang}": {"sentence1": english, "sentence2": [catalogs[lang][m] for m in english]}
            for lang in BITEXT_LANGUAGES
        }
    }


def glib20_pair_classification(
    seed: int, locale_dir: Path = DEFAULT_LOCALE_DIR, per_language: int = 30
) -> dict:
    """Label 1: an English message and its translation; 0: and the translation of the English message
    most similar to it by BM25 (a hard negative)."""
    s1, s2, labels = [], [], []
    for lang in PAIR_LANGUAGES:
        candidates = _sample(
            sorted(_glib20(locale_dir, lang), key=lambda p: p.id),
            4 * per_language,
            stable_seed(seed, "pairs", lang),
        )
        mined = [
            p
            for p in mine_hard_negatives(candidates, seed=stable_seed(seed, "mine", lang))
            if p.negative is not None
        ]
        picked = _sample(mined, 2 * per_language, stable_seed(seed, "pairs-pick", lang))
        for i, pair in enumerate(picked):
            positive = i % 2 == 0
            s1.append(pair.query)
            s2.append(pair.positive if positive else pair.negative)
            labels.append(int(positive))
    return {"sentence1": s1, "sentence2": s2, "labels": labels}


def debian_package_classification(
    seed: int, lists_dir: Path = DEFAULT_LISTS_DIR, train: int = 32, test: int = 16
) -> dict:
    files = index_files(lists_dir)
    if not files:
        raise FileNotFoundError(
            f"No Debian package index (*_main_binary-*_Packages*) in {lists_dir}; run apt-get update."
        )
    by_section = defaultdict(dict)
    for path in files:
        for package in read_packages(path):
            # The index carries only the one-line summary (long descriptions are in Translation files).
            if package.section in PACKAGE_SECTIONS and len(package.summary.split()) >= 3:
                by_section[package.section].setdefault(package.name, package.summary)
    splits = {"train": {"text": [], "label": []}, "test": {"text": [], "label": []}}
    for section in PACKAGE_SECTIONS:
        names = _sample(sorted(by_section[section]), train + test, stable_seed(seed, "debian", section))
        order = np.random.default_rng(stable_seed(seed, "debian-split", section)).permutation(len(names))
        for rank, index in enumerate(order):
            split = "train" if rank < train else "test"
            splits[split]["text"].append(by_section[section][names[index]])
            splits[split]["label"].append(section)
    return splits


def man_page_section_clustering(seed: int, man_dir: Path = DEFAULT_MAN_DIR, per_section: int = 50) -> dict:
    pages = _man_pages(man_dir, CLUSTER_SECTIONS)
    sentences, labels = [], []
    for section in CLUSTER_SECTIONS:
        for page in _sample(
            [p for p in pages if p.section == section], per_section, stable_seed(seed, "cluster", section)
        ):
            sentences.append(f"{page.name} - {page.summary}")
            labels.append(section)
    return {"sentences": sentences, "labels": labels}


BUILDERS: dict[str, Callable[[int], dict]] = {
    "StdlibCodeRetrieval": stdlib_code_retrieval,
    "ManPageRetrieval": man_page_retrieval,
    "Glib20BitextMining": glib20_bitext_mining,
    "DebianPackageClassification": debian_package_classification,
    "ManPageSectionClustering": man_page_section_clustering,
    "Glib20PairClassification": glib20_pair_classification,
}


def _json_bytes(data: dict) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()


def build_suite(
    out_dir: str | Path = DEFAULT_SUITE_DIR,
    *,
    seed: int = 0,
    tasks: tuple[str, ...] | None = None,
    overwrite: bool = False,
) -> dict:
    """Writes the tasks and the manifest into `out_dir` (atomically); returns the manifest.

    `out_dir` must be absent, empty, or (with `overwrite=True`) a suite, which is rebuilt; a
    directory holding anything else is refused untouched (NotOurDirectoryError).
    """
    out_dir = as_path(out_dir).expanduser()
    if not overwrite:
        refuse_replacing(out_dir, MANIFEST, WHAT)
    names = tasks or tuple(TASKS)
    unknown = set(names) - set(TASKS)
    if unknown:
        raise ValueError(f"Unknown tasks {sorted(unknown)}; valid: {', '.join(TASKS)}.")
    manifest = {"version": SUITE_VERSION, "seed": seed, "tasks": {}}
    with atomic_directory(out_dir, MANIFEST, WHAT) as partial:
        for name in names:
            task_type, languages, domain = TASKS[name]
            data = _json_bytes(BUILDERS[name](stable_seed(seed, name)))
            (partial / f"{name}.json").write_bytes(data)
            manifest["tasks"][name] = {
                "type": task_type,
                "languages": list(languages),
                "domain": domain,
                "file": f"{name}.json",
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        (partial / MANIFEST).write_bytes(_json_bytes(manifest))
    return manifest


def read_manifest(suite_dir: str | Path) -> dict:
    """The manifest of a built suite, checked for its version and its tasks; errors name the file."""
    path = as_path(suite_dir).expanduser() / MANIFEST
    manifest = read_json(path, "Evaluation suite manifest")
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(manifest).__name__}.")
    if manifest.get("version") != SUITE_VERSION:
        raise ValueError(f"{path}: suite version {manifest.get('version')}, expected {SUITE_VERSION}.")
    entries = manifest.get("tasks")
    fields = ("type", "languages", "domain", "file", "sha256")
    if not isinstance(entries, dict) or not all(
        isinstance(e, dict) and all(f in e for f in fields) for e in entries.values()
    ):
        raise ValueError(f"{path}: field 'tasks' must map each task to its {', '.join(fields)}.")
    return manifest
