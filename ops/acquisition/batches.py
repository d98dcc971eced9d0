"""Scrape batches: the unit of work of a refresh (a Dagster dynamic partition).

A batch key names its own work, independent of later config changes: ``q000100-000150`` is
queries 100..149 of the generated query list (search providers), ``u0005000-0010000`` items
5000..9999 of a URL list. A refresh adds the keys for work not yet covered and leaves earlier
batches alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from ops.acquisition.queries import generate_queries, query_id
from ops.acquisition.url_lists import UrlListSpec, load_url_list

_KEY = re.compile(r"^(?P<kind>[qu])(?P<start>\d+)-(?P<end>\d+)$")


def batch_keys(kind: str, total: int, per_batch: int) -> list[str]:
    """Keys covering ``total`` units in consecutive batches of ``per_batch`` (kind q or u)."""
    if kind not in ("q", "u"):
        raise ValueError(f"batch kind must be 'q' (queries) or 'u' (URL-list items), not {kind!r}")
    width = 6 if kind == "q" else 7
    return [f"{kind}{s:0{width}d}-{min(s + per_batch, total):0{width}d}" for s in range(0, total, per_batch)]


def parse_batch_key(key: str) -> tuple[str, int, int]:
    """``q000100-000150`` -> ("q", 100, 150); a clear error for anything else."""
    m = _KEY.match(key)
    if not m or int(m["start"]) >= int(m["end"]):
        raise ValueError(
            f"invalid scrape batch key {key!r}: expected q<start>-<end> (queries) or u<start>-<end> "
            f"(URL-list items) with start < end"
        )
    return m["kind"], int(m["start"]), int(m["end"])


def extend_batches(kind: str, total: int, per_batch: int, existing: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The batch keys covering ``total`` units, keeping the batches that already exist.

    Existing keys of the same kind stay as they are (a refresh never redoes or re-cuts a batch);
    new batches start where the last existing one ends. So growing ``max_queries`` from 10 to 14
    with batches of 4 keeps q0-4, q4-8, q8-10 and adds q10-14.
    """
    mine = sorted((parse_batch_key(k) for k in existing if k[:1] == kind), key=lambda t: t[1])
    start = max((end for _, _, end in mine), default=0)
    width = 6 if kind == "q" else 7
    keys = [f"{kind}{s:0{width}d}-{e:0{width}d}" for _, s, e in mine]
    for s in range(start, total, per_batch):
        keys.append(f"{kind}{s:0{width}d}-{min(s + per_batch, total):0{width}d}")
    return keys


# ---- the plan of a configuration -------------------------------------------------------------------

@dataclass(frozen=True)
class ScrapePlan:
    """What a configuration asks to scrape, in plain values (``ops.config`` builds it).

    Search providers (``ddgs``, ``demo``): the queries are every combination of the keyword sets
    (FindingEmo §2.3.1), optionally cut to the first ``max_queries``, in batches of
    ``queries_per_batch``. URL lists: the list's items in batches of ``items_per_batch``.
    Both the CLI and the Dagster sensor plan batches with :meth:`batches`, and every asset that
    runs a batch takes its queries from :meth:`batch_queries` (from the current configuration,
    never from a stored query table that may be stale).
    """

    provider: str                                  # ddgs | demo | url_list
    keywords: Mapping[str, Sequence[str]] = field(default_factory=dict)   # emotions, people, settings
    max_queries: int | None = None
    queries_per_batch: int = 50
    url_list: UrlListSpec | None = None
    max_items: int | None = None
    items_per_batch: int = 5000
    cache_dir: Path | None = None                  # where a parsed URL list is kept between processes

    @property
    def kind(self) -> str:
        """The batch-key kind: ``u`` for URL-list items, ``q`` for queries."""
        return "u" if self.provider == "url_list" else "q"

    def queries(self) -> pd.DataFrame:
        """Every planned query (FindingEmo §2.3.1), with the batch key of each."""
        if self.provider == "url_list":
            items = self.url_items()
            qs = items["query"].dropna().drop_duplicates().tolist()
            q = pd.DataFrame({"query_index": range(len(qs)), "query_id": [query_id(x) for x in qs], "query": qs})
            q["batch"] = None
            return q
        k = self.keywords
        q = generate_queries(list(k["emotions"]), list(k["people"]), list(k["settings"]))
        if self.max_queries is not None:
            q = q.head(self.max_queries)
        keys = batch_keys("q", len(q), self.queries_per_batch)
        q["batch"] = [keys[i // self.queries_per_batch] for i in q["query_index"]]
        return q

    def url_items(self) -> pd.DataFrame:
        """The URL list's items (parsed once per process and file version)."""
        if self.url_list is None:
            raise ValueError("this plan has no URL list (provider is not url_list)")
        return _url_items_cached(self.url_list, self.max_items, self.cache_dir,
                                 *_file_version(self.url_list.path)).copy()

    def size(self) -> int:
        """Units to scrape: queries, or URL-list items."""
        return len(self.url_items()) if self.kind == "u" else len(self.queries())

    def batches(self, existing: Iterable[str] = ()) -> list[str]:
        """The batch keys this plan covers, keeping the existing batches as they are (a refresh
        registers only the missing ones, starting where the last batch ended)."""
        per = self.items_per_batch if self.kind == "u" else self.queries_per_batch
        return extend_batches(self.kind, self.size(), per, tuple(existing))

    def batch_queries(self, key: str) -> pd.DataFrame:
        """The queries a query batch names, from the current keyword sets."""
        kind, start, end = parse_batch_key(key)
        if kind != "q":
            raise ValueError(f"batch {key} is a URL-list batch, not a query batch")
        if self.provider == "url_list":
            raise ValueError(f"batch {key} is a query batch but the provider is 'url_list'")
        q = self.queries()
        return q[(q["query_index"] >= start) & (q["query_index"] < end)].reset_index(drop=True)

    def batch_items(self, key: str) -> pd.DataFrame:
        """The URL-list items a URL-list batch names."""
        kind, start, end = parse_batch_key(key)
        if kind != "u":
            raise ValueError(f"batch {key} is a query batch, not a URL-list batch")
        if self.provider != "url_list":
            raise ValueError(f"batch {key} is a URL-list batch but the provider is {self.provider!r}")
        return self.url_items().iloc[start:end]


def _file_version(path: Path) -> tuple[str, int, int]:
    st = Path(path).stat()
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns


@lru_cache(maxsize=4)
def _url_items_cached(spec: UrlListSpec, max_items: int | None, cache_dir: Path | None,
                      path: str, size: int, mtime: int) -> pd.DataFrame:
    """A URL list parsed once: per process (this cache) and, with ``cache_dir``, across processes (a
    Parquet file keyed by the list's path, size, modification time and reading options)."""
    if cache_dir is None:
        return load_url_list(spec, max_items=max_items)
    import hashlib

    from warehouse.store import atomic_write_parquet

    key = hashlib.sha256(repr((spec, max_items, path, size, mtime)).encode()).hexdigest()[:20]
    cached = Path(cache_dir) / f"url_list-{key}.parquet"
    if cached.exists():
        return pd.read_parquet(cached)
    items = load_url_list(spec, max_items=max_items)
    atomic_write_parquet(cached, items, durable=False)
    return items
