"""Search providers behind one interface (FindingEmo §2.3.1: first N image results per query).

* ``DdgsSearch``: DuckDuckGo image search through the maintained ``ddgs`` library.
* ``HttpJsonSearch``: a search endpoint answering ``GET /search?q=...&max_results=N`` with a JSON
  list shaped like ddgs results; the embedded demo serves one on 127.0.0.1.
* URL lists (``ops.acquisition.url_lists``): published lists such as FindingEmo-Light's
  ``dataset_urls_exploded.json`` (backup URLs per image, tried in ``idx_url`` order) and plain
  CSV / Parquet / JSONL lists. These are not searched: the list's items are the candidates.

Every hit keeps its provenance: provider, query, rank, source page, title, reported size.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
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


