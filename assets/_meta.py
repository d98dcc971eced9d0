"""Small helpers that turn tables into Dagster metadata (row counts, breakdowns, examples)."""



import pandas as pd
from dagster import MetadataValue


def md_table(df: pd.DataFrame, max_rows: int = 5, max_chars: int = 60) -> MetadataValue:
    """A few example rows as a markdown table (long cells cut)."""
    if df.empty:
        return MetadataValue.md("_(no rows)_")
    head = df.head(max_rows).copy()
    for c in head.columns:
        head[c] = head[c].map(lambda v: str(v) if len(str(v)) <= max_chars else str(v)[: max_chars - 1] + "…")
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
