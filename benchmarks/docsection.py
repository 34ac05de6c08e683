"""A generated section of a Markdown doc: the text between two HTML-comment markers.

The scripts that render tables into docs (format_matrix.py, arch_table.py) read it to
check the doc is current and replace it to update the doc; the rest of the file is prose.
"""
from __future__ import annotations

from pathlib import Path


def read_section(doc: Path, start: str, end: str) -> str:
    """The section's text ("" when the markers are missing)."""
    text = Path(doc).read_text(encoding="utf-8")
    if start not in text or end not in text:
        return ""
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def write_section(doc: Path, start: str, end: str, body: str) -> None:
    """Replace the section with ``body``; the markers must be there."""
    text = Path(doc).read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise SystemExit(f"{doc} has no {start} … {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    Path(doc).write_text(f"{head}{start}\n{body}{end}{tail}", encoding="utf-8")
