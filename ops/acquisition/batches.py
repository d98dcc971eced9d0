"""Scrape batches: the unit of work of a refresh (a Dagster dynamic partition).

A batch key names its own work, independent of later config changes: ``q000100-000150`` is
queries 100..149 of the generated query list (search providers), ``u0005000-0010000`` items
5000..9999 of a URL list. A refresh adds the keys for work not yet covered and leaves earlier
batches alone.
"""

from __future__ import annotations

import re

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
