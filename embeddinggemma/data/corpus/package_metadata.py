"""Package metadata pairs: a pinned package's summary -> its description (title: the package name).

Read from the `*.dist-info/METADATA` member of each pinned wheel (wheels.py), never from the
running environment.
"""

from __future__ import annotations

import email
import email.message
import re
import zipfile
from collections.abc import Sequence

from embeddinggemma.data.corpus.pairs import CorpusExample, clip_text, sample_spread
from embeddinggemma.data.corpus.wheels import Wheel

TASK = "query"
MIN_SUMMARY_WORDS = 3
MIN_DESCRIPTION_CHARS = 200
MAX_DESCRIPTION_CHARS = 3000
# Badge, image and HTML lines say nothing a reader of the description would search for.
_DECORATION = re.compile(r"^\s*(\[!\[|!\[|\.\. (\|[^|]*\| )?image::|<)")


def wheel_metadata(wheel: Wheel) -> email.message.Message:
    """The core metadata of a wheel (its top-level `*.dist-info/METADATA`), parsed as
    importlib.metadata parses it.

    Raises:
      ValueError when the wheel holds no METADATA.
    """
    with zipfile.ZipFile(wheel.path) as archive:
        members = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(members) != 1:
            raise ValueError(f"{wheel.path} holds {len(members)} *.dist-info/METADATA files, not one.")
        return email.message_from_string(archive.read(members[0]).decode("utf-8"))


def _description(metadata: email.message.Message) -> str:
    body = metadata.get_payload() or metadata.get("Description") or ""
    lines = [line for line in body.splitlines() if not _DECORATION.match(line)]
    return clip_text(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)), MAX_DESCRIPTION_CHARS)


def _pairs_of(wheel: Wheel) -> list[CorpusExample]:
    metadata = wheel_metadata(wheel)
    name, summary = metadata.get("Name") or "", (metadata.get("Summary") or "").strip()
    description = _description(metadata)
    if (not name or len(summary.split()) < MIN_SUMMARY_WORDS or summary == "UNKNOWN"
            or len(description) < MIN_DESCRIPTION_CHARS):
        return []
    canonical = re.sub(r"[-_.]+", "-", name).lower()
    return [CorpusExample(id=f"pypi/{canonical}", task=TASK, query=summary, positive=description, title=name)]


def metadata_pairs(wheels: Sequence[Wheel], *, seed: int, max_pairs: int) -> tuple[list[CorpusExample], dict]:
    """(pairs sorted by id, provenance): at most one pair per distribution name."""
    pairs = sample_spread(wheels, _pairs_of, seed=seed, max_pairs=max_pairs, per_group=1,
                          unique=("id", "positive"))
    return pairs, {"wheels": len(wheels)}
