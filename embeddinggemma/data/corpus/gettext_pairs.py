"""Bitext pairs from gettext catalogs: an English message -> its translation.

Read from `<locale dir>/<language>/LC_MESSAGES/<domain>.mo` for the listed DOMAINS only, so a
package installed later adds no catalog; English variants (en, en_GB, en@quot, ...) are not bitext
and glib20 catalogs are reserved for evaluation. Hard negatives are mined within one language, by
BM25 between the English messages. The manifest lists the languages read and a sha256 of the
catalogs read.
"""

from __future__ import annotations

import gettext
import hashlib
from collections.abc import Sequence
from pathlib import Path

from embeddinggemma.data.corpus.pairs import CorpusExample, sample_spread
from embeddinggemma.data.corpus.reserved import reserved_reason
from embeddinggemma.data.hashing import short_digest

TASK = "BitextMining"
PER_CATALOG = 8
MIN_WORDS = 3
MAX_CHARS = 500
_CONTEXT_SEPARATOR = "\x04"  # msgctxt + "\x04" + msgid in a compiled catalog
# Debian's catalogs of the packages of this image (every domain but glib20 in /usr/share/locale).
DOMAINS = ("Linux-PAM", "PackageKit", "adduser", "appstream", "apt", "at-spi2-core", "avahi", "bash",
           "bfd", "binutils", "coreutils", "diffutils", "dpkg", "dpkg-dev", "elfutils", "findutils", "gas",
           "gdk-pixbuf", "gettext-runtime", "gettext-tools", "git", "gnupg2", "gnutls30", "gold", "gprof",
           "grep", "gsettings-desktop-schemas", "gstreamer-1.0", "gtk20", "gtk20-properties", "initdb-15",
           "iso_15924", "iso_3166", "iso_3166-1", "iso_3166-2", "iso_3166-3", "iso_3166_2", "iso_4217",
           "iso_639", "iso_639-2", "iso_639-3", "iso_639-5", "iso_639_3", "iso_639_5", "ld",
           "libapt-pkg6.0", "libc", "libidn2", "libpq5-15", "make", "man-db", "man-db-gnulib", "mit-krb5",
           "net-tools", "opcodes", "pg_amcheck-15", "pg_archivecleanup-15", "pg_basebackup-15",
           "pg_checksums-15", "pg_config-15", "pg_controldata-15", "pg_ctl-15", "pg_dump-15",
           "pg_resetwal-15", "pg_rewind-15", "pg_test_fsync-15", "pg_test_timing-15", "pg_upgrade-15",
           "pg_verifybackup-15", "pg_waldump-15", "pgscripts-15", "plpgsql-15", "polkit-1", "postgres-15",
           "procps-ng", "psmisc", "psql-15", "python-apt", "sed", "shadow", "shared-mime-info",
           "software-properties", "systemd", "tar", "wget", "wget-gnulib", "xdg-user-dirs",
           "xkeyboard-config", "xz")


def catalog_files(locale_dir: str | Path, domains: Sequence[str] = DOMAINS) -> tuple[list[Path], int]:
    """(sorted non-English catalogs of `domains` that may be read, number of reserved ones left out)."""
    found = sorted(p for d in domains for p in Path(locale_dir).glob(f"*/LC_MESSAGES/{d}.mo"))
    english = [f for f in found if f.parts[-3] == "en" or f.parts[-3].startswith(("en_", "en@"))]
    allowed = [f for f in found if f not in set(english) and reserved_reason(f) is None]
    return allowed, len(found) - len(english) - len(allowed)


def catalog_pairs(path: Path) -> list[CorpusExample]:
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
        pairs.append(CorpusExample(id=f"{language}/{short_digest(msgid)}", task=TASK, query=msgid,
                                   positive=msgstr, mining_group=language, mining_text=msgid))
    return pairs


def bitext_pairs(locale_dir: str | Path, domains: Sequence[str] = DOMAINS, *, seed: int,
                 max_pairs: int) -> tuple[list[CorpusExample], dict]:
    """(pairs sorted by id, provenance); a message is used once per language."""
    catalogs, reserved = catalog_files(locale_dir, domains)
    read: list[Path] = []

    def pairs_of(path: Path) -> list[CorpusExample]:
        read.append(path)
        return catalog_pairs(path)

    pairs = sample_spread(catalogs, pairs_of, seed=seed, max_pairs=max_pairs, per_group=PER_CATALOG)
    listing = "".join(f"{p.relative_to(locale_dir)} {hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                      for p in sorted(read))
    return pairs, {"locale_dir": str(locale_dir), "domains": list(domains), "catalogs": len(catalogs),
                   "reserved_catalogs_left_out": reserved, "catalogs_read": len(read),
                   "catalogs_read_sha256": hashlib.sha256(listing.encode()).hexdigest(),
                   "languages": sorted({p.mining_group for p in pairs})}
