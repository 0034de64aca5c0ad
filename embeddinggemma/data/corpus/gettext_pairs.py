"""Bitext pairs from gettext catalogs: an English message -> its translation.

Read from `<locale dir>/<language>/LC_MESSAGES/*.mo`; English variants (en, en_GB, en@quot, ...)
are not bitext and glib20 catalogs are reserved for evaluation. Hard negatives are mined within one
language, by BM25 between the English messages.
"""

from __future__ import annotations

import gettext
from pathlib import Path

from embeddinggemma.data.corpus.pairs import Pair, sample_spread
from embeddinggemma.data.corpus.reserved import reserved_reason
from embeddinggemma.data.hashing import short_digest

TASK = "BitextMining"
PER_CATALOG = 8
MIN_WORDS = 3
MAX_CHARS = 500
_CONTEXT_SEPARATOR = "\x04"  # msgctxt + "\x04" + msgid in a compiled catalog


def catalog_files(locale_dir: str | Path) -> tuple[list[Path], int]:
    """(sorted non-English catalogs that may be read, number of reserved catalogs left out)."""
    found = sorted(Path(locale_dir).glob("*/LC_MESSAGES/*.mo"))
    english = [f for f in found if f.parts[-3] == "en" or f.parts[-3].startswith(("en_", "en@"))]
    allowed = [f for f in found if f not in set(english) and reserved_reason(f) is None]
    return allowed, len(found) - len(english) - len(allowed)


def catalog_pairs(path: Path) -> list[Pair]:
    """The pairs of one catalog (none when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            messages = gettext.GNUTranslations(f)._catalog  # the catalog has no public listing
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    language, pairs = path.parts[-3], []
    for msgid, msgstr in messages.items():
        if not isinstance(msgid, str) or not isinstance(msgstr, str):  # plural forms: (msgid, n) keys
            continue
        msgid, msgstr = msgid.split(_CONTEXT_SEPARATOR)[-1].strip(), msgstr.strip()
        if (len(msgid.split()) < MIN_WORDS or not msgstr or msgstr == msgid
                or max(len(msgid), len(msgstr)) > MAX_CHARS):
            continue
        pairs.append(Pair(id=f"{language}/{short_digest(msgid)}", task=TASK, query=msgid, positive=msgstr,
                          mining_group=language, mining_text=msgid))
    return pairs


def bitext_pairs(locale_dir: str | Path, *, seed: int, max_pairs: int) -> tuple[list[Pair], dict]:
    """(pairs sorted by id, provenance); a message is used once per language."""
    catalogs, reserved = catalog_files(locale_dir)
    pairs = sample_spread(catalogs, catalog_pairs, seed=seed, max_pairs=max_pairs, per_group=PER_CATALOG)
    return pairs, {"locale_dir": str(locale_dir), "catalogs": len(catalogs),
                   "reserved_catalogs_left_out": reserved,
                   "languages": len({p.mining_group for p in pairs})}
