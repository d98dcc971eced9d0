"""The downloader's output rows (ops.acquisition.download): their columns, the per-row bookkeeping
of retries across builds (FindingEmo-Light lists are fetched over several builds; a transient
failure is tried again up to ``max_build_attempts`` builds), and the final status of every candidate
of a batch (``downloaded_images``).
"""

from __future__ import annotations

import pandas as pd

from ops.acquisition import statuses as st

# Output columns, in order (the contract with the assets that read the table).
COLUMNS = [
    "candidate_id", "status", "url", "final_url", "url_index", "attempts", "http_status",
    "sha256", "bytes", "width", "height", "image_format", "content_type", "error", "elapsed_s",
    "downloaded_at", "build_attempts", "transient", "phash", "phash_mode",
]
_INT_COLUMNS = ("url_index", "attempts", "http_status", "bytes", "width", "height", "build_attempts")

def build_attempts(row: dict) -> int:
    """How many runs have tried a journaled candidate (rows from before the column: 1)."""
    v = row.get("build_attempts")
    try:
        return max(1, int(v))
    except (TypeError, ValueError):  # None, NA, NaN
        return 1


def is_transient_row(row: dict) -> bool:
    """The candidate failed transiently (see :meth:`Downloader._process`); a row journaled before
    the ``transient`` column existed is judged by its final status."""
    v = row.get("transient")
    if v is True or v is False or type(v).__name__ == "bool_":
        return bool(v)
    status = row.get("status")
    return status != st.OK and st.is_transient(status)


def retry_due(row: dict, max_build_attempts: int) -> bool:
    """A journaled candidate that the next run must download again: a transient failure tried
    in fewer than ``max_build_attempts`` runs."""
    return is_transient_row(row) and build_attempts(row) < max_build_attempts


def retries_due(table: pd.DataFrame, max_build_attempts: int) -> int:
    """How many rows of a ``downloaded_images`` partition (or of a Downloader result) the next run
    would download again; the CLI builds such a batch again from ``downloaded_images`` on. Tables
    written before the ``build_attempts``/``transient`` columns existed are judged by status."""
    cols = [c for c in ("status", "transient", "build_attempts") if c in table.columns]
    if "status" not in cols:
        return 0
    return sum(retry_due(r, max_build_attempts) for r in table[cols].astype(object).to_dict("records"))


def _to_frame(rows: list[dict]) -> pd.DataFrame:
    """The output table: COLUMNS in order, nullable integers, UTC timestamps."""
    rows = [dict(r, build_attempts=build_attempts(r), transient=is_transient_row(r)) for r in rows]
    df = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], columns=COLUMNS)
    df["transient"] = df["transient"].astype(bool)
    for c in ("phash", "phash_mode"):
        df[c] = df[c].astype("string")
    for c in _INT_COLUMNS:
        df[c] = pd.array([None if v is None or v != v else int(v) for v in df[c]], dtype="Int64")
    df["elapsed_s"] = df["elapsed_s"].astype("float64")
    df["downloaded_at"] = pd.to_datetime(df["downloaded_at"], utc=True, format="ISO8601")
    return df


CANDIDATE_COLUMNS = ["candidate_id", "query_id", "query", "rank", "provider", "item_id", "url", "normalized_url",
                     "host", "source_page", "title", "batch", "filter_status", "filter_reason"]


def final_statuses(candidates: pd.DataFrame, results: pd.DataFrame, pending: str = "pending") -> pd.DataFrame:
    """``downloaded_images``: every candidate of a batch with exactly one final status — the
    filter's reason for candidates dropped before download, the downloader's for the others."""
    out = candidates[CANDIDATE_COLUMNS].merge(results, on="candidate_id", how="left", suffixes=("", "_download"))
    is_pending = out["filter_status"] == pending
    out["status"] = out["status"].where(is_pending, out["filter_status"])
    out["reason"] = out["error"].where(is_pending, out["filter_reason"])
    if "transient" in out.columns:  # NULL for candidates dropped before download
        out["transient"] = out["transient"].astype("boolean")
    return out.drop(columns=["error"])
