"""Small helpers that turn tables into Dagster metadata (row counts, breakdowns, examples)."""


from typing import Any

import pandas as pd
from dagster import MetadataValue


def md_table(df: pd.DataFrame, max_rows: int = 5, max_chars: int = 60) -> MetadataValue:
    """A few example rows as a markdown table (long cells cut)."""
    if df.empty:
        return MetadataValue.md("_(no rows)_")
    head = df.head(max_rows).copy()
    for c in head.columns:
        head[c] = head[c].map(lambda v: (s := str(v)) if len(str(v)) <= max_chars else str(v)[: max_chars - 1] + "…")
    cols = list(head.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in head.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return MetadataValue.md("\n".join(lines))


def breakdown(series: pd.Series) -> dict[str, int]:
    counts = series.fillna("(null)").astype(str).value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def breakdown_md(series: pd.Series, title: str = "status") -> MetadataValue:
    counts = breakdown(series)
    lines = [f"| {title} | n |", "|---|---|"] + [f"| {k} | {v} |" for k, v in counts.items()]
    return MetadataValue.md("\n".join(lines))


def stage_metadata(n_in: int, n_out: int, dropped: dict[str, int] | None = None, **extra: Any) -> dict[str, Any]:
    """The in/out/why figures every stage reports (read back by ``emoforge build``)."""
    meta: dict[str, Any] = {
        "dagster/row_count": MetadataValue.int(int(n_out)),
        "items_in": MetadataValue.int(int(n_in)),
        "items_out": MetadataValue.int(int(n_out)),
        "dropped": MetadataValue.json({k: int(v) for k, v in (dropped or {}).items()}),
    }
    meta.update(extra)
    return meta
