"""Stable hashes: the same value on every machine, Python version and run (unlike `hash()`)."""

from __future__ import annotations

import hashlib


def _digest(text: str, size: int) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=size).digest()


def text_id(text: str) -> int:
    """A signed int32 identity of a text; equal texts get equal ids (duplicates in a batch)."""
    return int.from_bytes(_digest(text, 4), "little", signed=True)


def stable_seed(*parts: object) -> int:
    """A seed in [0, 2**32) derived from the parts' string forms (e.g. the run seed and a name)."""
    return int.from_bytes(_digest("\x1f".join(map(str, parts)), 4), "little")


def stable_percent(text: str) -> int:
    """A bucket in [0, 100) for a text: splits by id that never move when the corpus grows."""
    return int.from_bytes(_digest(text, 8), "little") % 100


def short_digest(text: str) -> str:
    """12 hex digits naming a text, for readable record ids."""
    return _digest(text, 6).hex()
