"""Search providers behind one interface (FindingEmo §2.3.1: first N image results per query).

* ``DdgsSearch``: DuckDuckGo image search through the maintained ``ddgs`` library.
* ``HttpJsonSearch``: a search endpoint answering ``GET /search?q=...&max_results=N`` with a JSON
  list shaped like ddgs results; the embedded demo serves one on 127.0.0.1.
* URL lists (``load_url_list``): published lists such as FindingEmo-Light's
  ``dataset_urls_exploded.json`` (backup URLs per image, tried in ``idx_url`` order) and plain
  CSV / Parquet / JSONL lists. These are not searched: the list's items are the candidates.

Every hit keeps its provenance: provider, query, rank, source page, title, reported size.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

import pandas as pd
import requests

HIT_COLUMNS = [
    "query_id", "query", "rank", "provider", "image_url", "backup_urls", "source_page", "title",
    "reported_width", "reported_height", "item_id", "retrieved_at",
]
LOG_COLUMNS = ["query_id", "query", "provider", "status", "n_results", "error", "elapsed_s", "retrieved_at"]


class SearchProvider(Protocol):
    name: str

    def search(self, query: str, max_results: int) -> list[dict[str, Any]]:
        """Return up to ``max_results`` result dicts (keys as ddgs: image, url, title, width, height)."""


def _to_int(v: Any) -> int | None:
    try:
        i = int(float(v))
    except (TypeError, ValueError):
        return None
    return i if i > 0 else None


class DdgsSearch:
    """DuckDuckGo images via ``ddgs`` (``DDGS().images``)."""

    name = "ddgs"

    def __init__(self, region: str = "us-en", safesearch: str = "moderate", backend: str = "auto",
                 timeout: int = 10):
        self.region, self.safesearch, self.backend, self.timeout = region, safesearch, backend, timeout

    def search(self, query: str, max_results: int) -> list[dict[str, Any]]:
        from ddgs import DDGS

        return DDGS(timeout=self.timeout).images(
            query, region=self.region, safesearch=self.safesearch, max_results=max_results,
            backend=self.backend,
        )


class HttpJsonSearch:
    """A JSON search endpoint (``/search?q=&max_results=``) returning ddgs-shaped results."""

    name = "http_json"

    def __init__(self, base_url: str, timeout: float = 10.0, name: str = "http_json"):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.name = name
        self._session = requests.Session()

    def search(self, query: str, max_results: int) -> list[dict[str, Any]]:
        r = self._session.get(f"{self.base_url}/search", params={"q": query, "max_results": max_results},
                              timeout=self.timeout)
        r.raise_for_status()
        data = r.json()
        if not isinstance(data, list):
            raise ValueError(f"search endpoint {self.base_url} returned {type(data).__name__}, not a list")
        return data


def run_searches(provider: SearchProvider, queries: pd.DataFrame, max_results: int,
                 pause_seconds: float = 0.0,
                 progress: Callable[[int, int, str], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every query of ``queries`` (columns query_id, query); keep the first N hits per query.

    Returns (hits, log): one row per hit, and one row per query with its status (``ok``,
    ``no_results`` or ``error``) so that a failed query is recorded, never silently lost.
    """
    hits: list[dict[str, Any]] = []
    log: list[dict[str, Any]] = []
    total = len(queries)
    for i, (qid, q) in enumerate(zip(queries["query_id"], queries["query"])):
        if i and pause_seconds:
            time.sleep(pause_seconds)
        t0 = time.monotonic()
        now = datetime.now(timezone.utc)
        try:
            results = provider.search(q, max_results)[:max_results]
        except Exception as e:  # a provider failure is recorded per query
            log.append({"query_id": qid, "query": q, "provider": provider.name, "status": "error",
                        "n_results": 0, "error": f"{type(e).__name__}: {e}",
                        "elapsed_s": time.monotonic() - t0, "retrieved_at": now})
            if progress:
                progress(i + 1, total, "error")
            continue
        for rank, r in enumerate(results, start=1):
            hits.append({
                "query_id": qid, "query": q, "rank": rank, "provider": provider.name,
                "image_url": str(r.get("image") or ""), "backup_urls": [],
                "source_page": r.get("url") or None, "title": r.get("title") or None,
                "reported_width": _to_int(r.get("width")), "reported_height": _to_int(r.get("height")),
                "item_id": None, "retrieved_at": now,
            })
        status = "ok" if results else "no_results"
        log.append({"query_id": qid, "query": q, "provider": provider.name, "status": status,
                    "n_results": len(results), "error": None, "elapsed_s": time.monotonic() - t0,
                    "retrieved_at": now})
        if progress:
            progress(i + 1, total, status)
    return _frame(hits, HIT_COLUMNS), _frame(log, LOG_COLUMNS)


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    for c in ("rank", "reported_width", "reported_height", "n_results"):
        if c in df:
            df[c] = df[c].astype("Int64")
    return df


# ---- URL lists ----------------------------------------------------------------------------------

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
