"""Published URL lists as scrape input (FindingEmo-Light's ``dataset_urls_exploded.json`` with backup
URLs per image in ``idx_url`` order; plain CSV / Parquet / JSONL lists with a column mapping).

These are not searched: the list's items are the candidates, one hit per item, with the same
columns as search hits (``ops.acquisition.search.HIT_COLUMNS``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ops.acquisition.search import HIT_COLUMNS


class UrlListError(ValueError):
    """A URL list could not be read: names the file (and column or line)."""


@dataclass(frozen=True)
class UrlListSpec:
    path: Path
    format: str = "auto"
    url_column: str = "url"
    id_column: str | None = None
    order_column: str | None = None
    query_column: str | None = None


def _detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "findingemo_json"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise UrlListError(f"{path}: cannot tell the URL list format from the suffix {suffix!r}; set url_list.format")


def _read_jsonl(path: Path) -> pd.DataFrame:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise UrlListError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise UrlListError(f"{path}, line {lineno}: expected a JSON object")
            obj["_line"] = lineno
            rows.append(obj)
    return pd.DataFrame(rows)


def load_url_list(spec: UrlListSpec, max_items: int | None = None) -> pd.DataFrame:
    """Read a published URL list into one row per image item, backups in order.

    Columns: item_id, image_url (the first URL), backup_urls (the rest, in order), query (the
    query folder for FindingEmo lists, or the query column), rel_path, source_line.
    FindingEmo-Light's ``dataset_urls_exploded.json`` has one record per (image, backup): records
    of one ``rel_path`` are grouped and sorted by ``idx_url``.
    """
    path = Path(spec.path)
    if not path.exists():
        raise UrlListError(f"URL list {path} does not exist")
    fmt = _detect_format(path, spec.format)
    id_col, order_col, query_col, url_col = spec.id_column, spec.order_column, spec.query_column, spec.url_column
    try:
        if fmt == "findingemo_json":
            with open(path, encoding="utf-8") as fh:
                df = pd.DataFrame(json.load(fh))
            df["_line"] = range(1, len(df) + 1)
            id_col, order_col, url_col = id_col or "rel_path", order_col or "idx_url", "url"
        elif fmt == "csv":
            df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str,
                             keep_default_na=False)
            df["_line"] = range(2, len(df) + 2)  # line 1 is the header
        elif fmt == "parquet":
            df = pd.read_parquet(path)
            df["_line"] = range(1, len(df) + 1)
        else:
            df = _read_jsonl(path)
    except UrlListError:
        raise
    except UnicodeDecodeError:
        from ops.inputs import describe_non_utf8

        raise UrlListError(f"URL list {path}: {describe_non_utf8(path)}") from None
    except (OSError, ValueError) as e:
        raise UrlListError(f"URL list {path} could not be read as {fmt}: {e}") from None
    for col in (url_col, id_col, order_col, query_col):
        if col is not None and col not in df.columns:
            raise UrlListError(f"URL list {path}: column {col!r} is missing (columns: {sorted(map(str, df.columns))})")
    df = df.rename(columns={url_col: "_url"})
    df["_url"] = df["_url"].fillna("").astype(str).str.strip()
    if id_col is None:
        df["_id"] = df["_url"].where(df["_url"] != "", "line-" + df["_line"].astype(str))
    else:
        df["_id"] = df[id_col].astype(str)
    df["_order"] = pd.to_numeric(df[order_col], errors="coerce") if order_col else df["_line"]
    df = df.sort_values(["_line"])
    first_line = df.groupby("_id", sort=False)["_line"].min()
    df = df.sort_values(["_id", "_order", "_line"], kind="stable")
    grouped = df.groupby("_id", sort=False)
    items = pd.DataFrame({
        "item_id": list(grouped.groups.keys()),
    })
    urls = grouped["_url"].apply(list)
    items["image_url"] = [u[0] for u in urls.loc[items["item_id"]]]
    items["backup_urls"] = [u[1:] for u in urls.loc[items["item_id"]]]
    items["source_line"] = first_line.loc[items["item_id"]].to_numpy()
    if fmt == "findingemo_json":
        from ops.acquisition.queries import query_folder

        items["rel_path"] = items["item_id"]
        items["query"] = [query_folder(p) for p in items["item_id"]]
    else:
        items["rel_path"] = None
        items["query"] = grouped[query_col].first().loc[items["item_id"]].to_numpy() if query_col else None
    items = items.sort_values("source_line", kind="stable").reset_index(drop=True)
    if max_items is not None:
        items = items.head(max_items)
    return items


def url_list_hits(items: pd.DataFrame, provider_name: str = "url_list") -> pd.DataFrame:
    """Turn URL-list items into hits (same columns as search hits; rank = position in the list)."""
    from ops.acquisition.queries import query_id

    now = datetime.now(timezone.utc)
    df = pd.DataFrame({
        "query_id": [query_id(q) if isinstance(q, str) and q else None for q in items["query"]],
        "query": items["query"],
        "rank": items["source_line"].astype("Int64"),
        "provider": provider_name,
        "image_url": items["image_url"],
        "backup_urls": items["backup_urls"],
        "source_page": None,
        "title": None,
        "reported_width": pd.array([None] * len(items), dtype="Int64"),
        "reported_height": pd.array([None] * len(items), dtype="Int64"),
        "item_id": items["item_id"],
        "retrieved_at": now,
    })
    return df[HIT_COLUMNS]


def url_list_log(n_hits: int, provider_name: str = "url_list") -> pd.DataFrame:
    """The ``search_log`` row of a URL-list batch (nothing is searched: one row saying how many items)."""
    from ops.acquisition.search import LOG_COLUMNS

    return pd.DataFrame([{"query_id": None, "query": None, "provider": provider_name, "status": "ok",
                          "n_results": n_hits, "error": None, "elapsed_s": 0.0,
                          "retrieved_at": pd.Timestamp.now(tz="UTC")}], columns=LOG_COLUMNS)
