"""Man pages (troff `man` macros) -> name, section, one-line summary and description text.

Only what the evaluation tasks need: the NAME line ("ls \\- list directory contents") and the
plain text of the DESCRIPTION section, with formatting macros and escapes removed. Pages that
only redirect to another (`.so`) and pages in the `mdoc` dialect are left out.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
from pathlib import Path

DEFAULT_MAN_DIR = Path("/usr/share/man")
# Macros whose arguments are running text (fonts); every other request line is dropped.
_TEXT_MACROS = {"B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "SM", "SB", "IP", "TP", "HP"}
_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\s[+-]?\d+"), ""),  # size changes
    (re.compile(r"\\[hvwoxlLNDzbk]'[^']*'"), ""),  # motions, widths, drawing
    (re.compile(r"\\n(\[[^\]]*\]|\(..|.)"), ""),  # number registers
    (re.compile(r"\\\*(\[[^\]]*\]|\(..|.)"), ""),  # strings
    (re.compile(r"\\\((em|en)"), "-"),
    (re.compile(r"\\\((aq|cq|oq)"), "'"),
    (re.compile(r"\\\((dq|lq|rq)"), '"'),
    (re.compile(r"\\\(bu"), "*"),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),  # other special characters
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\[&|^%:c]"), ""),
    (re.compile(r"\\ "), " "),
    (re.compile(r"\\\"(.*)$", re.M), ""),  # comments
]


@dataclasses.dataclass(frozen=True)
class ManPage:
    name: str
    section: str  # the directory's: "1", "8", ...
    summary: str  # the NAME line after the dash
    description: str  # the DESCRIPTION section as plain text


def _plain(text: str) -> str:
    for pattern, replacement in _ESCAPES:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def _section_text(lines: list[str], heading: str) -> str | None:
    """Plain text of a `.SH heading` section, None when the page has none."""
    out, inside = [], False
    for line in lines:
        if line.startswith((".SH", ".sh")):
            title = _plain(line[3:]).strip('" ').upper()
            if inside:
                break
            inside = title == heading
            continue
        if not inside:
            continue
        if line.startswith((".", "'")):
            macro, _, args = line[1:].partition(" ")
            if macro.strip() in _TEXT_MACROS and args:
                out.append(args.replace('"', " "))
            continue
        out.append(line)
    return _plain(" ".join(out)) if inside else None


def read_man_page(path: Path) -> ManPage | None:
    """The page at `path` (`name.section[.gz]`), or None when it is not a plain `man` page."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    text = raw.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if not lines or any(line.startswith((".so ", ".Dd")) for line in lines[:5]):
        return None
    name_line = _section_text(lines, "NAME")
    description = _section_text(lines, "DESCRIPTION")
    if not name_line or not description or " - " not in name_line:
        return None
    names, summary = name_line.split(" - ", 1)
    stem = path.name[:-3] if path.suffix == ".gz" else path.name
    return ManPage(
        name=stem.rsplit(".", 1)[0],
        section=path.parent.name.removeprefix("man"),
        summary=summary.strip(),
        description=description,
    )


def man_page_files(
    man_dir: str | Path = DEFAULT_MAN_DIR, sections: tuple[str, ...] = ("1", "2", "3", "5", "7", "8")
) -> list[Path]:
    """English pages (the top-level `manN` directories) of the given sections, sorted."""
    man_dir = Path(man_dir)
    return sorted(p for s in sections for p in (man_dir / f"man{s}").glob("*") if p.is_file())
