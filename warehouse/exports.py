"""Files handed to people and other tools: CSV written safely for spreadsheets.

A CSV cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab / carriage return) is read as a
formula by spreadsheet programs (CSV / formula injection): an image title scraped from the web could
run one on an annotator's machine. Such text cells are written with a leading apostrophe, which
spreadsheets show as text. Numbers are written as numbers (a negative valence stays ``-2``).
"""

from __future__ import annotations

import csv
import io
from typing import Any, Iterable, Sequence

import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell: text that a spreadsheet would run as a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def frame_to_csv_bytes(df: pd.DataFrame) -> bytes:
    """A DataFrame as UTF-8 CSV, text cells escaped against formula injection."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(safe_cell)
    return out.to_csv(index=False).encode("utf-8")


def write_csv_rows(fh: Any, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Rows (already JSON-encoded where nested) to a text stream as CSV, text cells escaped."""
    w = csv.writer(fh, lineterminator="\n")
    w.writerow([safe_cell(c) for c in columns])
    for r in rows:
        w.writerow([safe_cell(v) for v in r])


def rows_to_csv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    write_csv_rows(buf, columns, rows)
    return buf.getvalue()
