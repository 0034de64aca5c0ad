"""Package metadata pairs: an installed package's summary -> its description (title: the package name).

Read from `*.dist-info/METADATA` in the given site-packages directories.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Sequence
from pathlib import Path

from embeddinggemma.data.corpus.pairs import Pair, clip_text, sample_spread
from embeddinggemma.data.corpus.reserved import reserved_reason

TASK = "query"
MIN_SUMMARY_WORDS = 3
MIN_DESCRIPTION_CHARS = 200
MAX_DESCRIPTION_CHARS = 3000
# Badge, image and HTML lines say nothing a reader of the description would search for.
_DECORATION = re.compile(r"^\s*(\[!\[|!\[|\.\. (\|[^|]*\| )?image::|<)")


def dist_info_dirs(site_dirs: Sequence[str | Path]) -> list[Path]:
    """Every `*.dist-info` directory of the site directories, sorted within each."""
    found = []
    for site in site_dirs:
        found += [d for d in sorted(Path(site).glob("*.dist-info")) if reserved_reason(d) is None]
    return found


def installed_versions(site_dirs: Sequence[str | Path]) -> dict[str, str]:
    """Top-level import name -> "distribution==version" for the packages in the site directories."""
    versions: dict[str, str] = {}
    for directory in dist_info_dirs(site_dirs):
        dist = importlib.metadata.Distribution.at(directory)
        metadata = dist.metadata
        top_level = (dist.read_text("top_level.txt") or "").split()
        if not top_level:
            top_level = sorted({f.parts[0] for f in dist.files or () if len(f.parts) > 1
                                and not f.parts[0].endswith((".dist-info", ".data"))})
        for name in top_level:
            versions.setdefault(name, f"{metadata['Name']}=={metadata['Version']}")
    return versions


def _description(metadata: importlib.metadata.PackageMetadata) -> str:
    body = metadata.get_payload() or metadata.get("Description") or ""
    lines = [line for line in body.splitlines() if not _DECORATION.match(line)]
    return clip_text(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)), MAX_DESCRIPTION_CHARS)


def _pairs_of(directory: Path) -> list[Pair]:
    metadata = importlib.metadata.Distribution.at(directory).metadata
    name, summary = metadata.get("Name") or "", (metadata.get("Summary") or "").strip()
    description = _description(metadata)
    if (not name or len(summary.split()) < MIN_SUMMARY_WORDS or summary == "UNKNOWN"
            or len(description) < MIN_DESCRIPTION_CHARS):
        return []
    canonical = re.sub(r"[-_.]+", "-", name).lower()
    return [Pair(id=f"pypi/{canonical}", task=TASK, query=summary, positive=description, title=name)]


def metadata_pairs(site_dirs: Sequence[str | Path], *, seed: int, max_pairs: int) -> tuple[list[Pair], dict]:
    """(pairs sorted by id, provenance): at most one pair per distribution name."""
    directories = dist_info_dirs(site_dirs)
    pairs = sample_spread(directories, _pairs_of, seed=seed, max_pairs=max_pairs, per_group=1,
                          unique=("id", "positive"))
    return pairs, {"site_dirs": [str(s) for s in site_dirs], "dist_info_dirs": len(directories)}
