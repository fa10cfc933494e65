"""CSV for people: every CSV Peil writes to be opened in a spreadsheet is written here (ASVS 1.2.10).

A text that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel, LibreOffice
and Google Sheets (``=HYPERLINK(...)`` in a unit's name, a comment, an attribute value from HR's upload), so it
is written with a leading apostrophe, which keeps it text. Numbers are Peil's own figures (an eNPS of -12, a
change of -0.31) and are written as numbers: a number cannot hold a formula, and escaping it would turn a
column of figures into text that no longer sums or charts. Text that merely looks like a number ("-12" as an
attribute value) is text from outside, and is escaped like any other text.

Line breaks inside a value are written as LF inside a quoted field; a lone CR (which Python's csv module
leaves unquoted when lines end in LF) becomes LF too, so no value can end a row early.

Not for data transport: the export's CSV staging for PostgreSQL's COPY (``service/exports/sql.py``) must
keep every value exactly as it is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One value as a spreadsheet must read it: figures as figures, text as text, nothing as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        text = "'" + text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A header and rows as CSV text, every value through ``cell``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([cell(name) for name in header])
    writer.writerows([cell(value) for value in row] for row in rows)
    return buffer.getvalue()
