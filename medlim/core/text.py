"""Text that leaves medlim: CSV cells and lines that carry names people chose.

Issue 14 ("Identifying data"): a file name or label can hold a newline that
forges an extra line in a table or progress output, or start with ``=`` and run
as a formula when a spreadsheet opens the CSV. Every CSV medlim writes goes
through :func:`csv_cell` / :func:`write_csv`, and every name printed in a line
through :func:`escape_control`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

__all__ = ["FORMULA_PREFIXES", "counted", "csv_cell", "csv_text", "escape_control", "write_csv"]

#: A spreadsheet treats a cell starting with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in the number it takes: ``counted(1, "file")`` is ``"1 file"``, ``counted(0, "file")``
    ``"0 files"``; ``plural`` for a noun that does not take an ``s``."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def escape_control(text: object) -> str:
    """``text`` with control characters (newlines, tabs, escapes, DEL, C1) shown as ``\\n``, ``\\x1b`` …

    Printable text, including non-ASCII letters, is unchanged.
    """
    out = []
    for char in str(text):
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029):
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"))
        else:
            out.append(char)
    return "".join(out)


def csv_cell(value: Any) -> Any:
    """A value safe to put in a CSV cell opened by a spreadsheet.

    Numbers (and ``None``, booleans) pass unchanged. Text has control characters
    escaped and, when it starts like a formula (``= + - @``, tab, CR), is
    prefixed with ``'`` (OWASP's advice), so it shows as text. Text that is a
    plain number such as ``-0.5`` is left as it is.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    if text.startswith(FORMULA_PREFIXES) and not _is_number(text):
        text = "'" + text
    return escape_control(text)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_csv(handle: TextIO, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> None:
    """Rows as CSV (header first, ``\\n`` line ends), every cell through :func:`csv_cell`; extra keys ignored."""
    writer = csv.DictWriter(handle, fieldnames=list(fieldnames), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: csv_cell(row.get(key)) for key in fieldnames})


def csv_text(rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> str:
    """:func:`write_csv` into a string (for downloads)."""
    buffer = io.StringIO()
    write_csv(buffer, rows, fieldnames)
    return buffer.getvalue()
