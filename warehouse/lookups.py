"""Persistent lookups over the history of a partitioned table, so that a batch's cost does not grow
with the number of batches before it.

Two questions are asked of every earlier batch: "was this URL already a candidate?" (``candidate_urls``
de-duplication) and "was this image already hashed?" (``image_hashes`` reuse). Reading every earlier
partition to answer them made each batch cost more than the one before (2,157 batches for the default
keyword sets). A :class:`PartitionIndex` keeps the answers in a SQLite file under ``state/``: one row
per (key, batch) with a few value columns. It is derived data: on every use it ingests the partition
files it has not seen and forgets those that are gone (a directory listing, no per-file stat), and
the warehouse marks a partition for re-reading whenever it rewrites it (:meth:`invalidate`), so it
can never disagree with the Parquet files, and deleting it only costs a rebuild.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow.parquet as pq

_CHUNK = 900   # SQLite's default limit on host parameters is 999


class PartitionIndex:
    """``key -> (batch, values...)`` over the partition files of one table."""

    def __init__(self, db_path: Path, table_dir: Path, key: str, values: Sequence[str] = ()):
        self.db_path = Path(db_path)
        self.table_dir = Path(table_dir)
        self.key = key
        self.values = list(values)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db_path, timeout=120)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        cols = ", ".join(f"v{i} TEXT" for i in range(len(self.values)))
        con.execute(f"CREATE TABLE IF NOT EXISTS rows (k TEXT NOT NULL, batch TEXT NOT NULL{', ' + cols if cols else ''}, "
                    "PRIMARY KEY (k, batch))")
        con.execute("CREATE TABLE IF NOT EXISTS files (batch TEXT PRIMARY KEY, dirty INTEGER NOT NULL DEFAULT 0)")
        return con

    def invalidate(self, batch: str) -> None:
        """The partition ``batch`` was rewritten: re-read it on the next use."""
        if not self.db_path.exists():
            return
        con = self._connect()
        try:
            with con:
                con.execute("UPDATE files SET dirty = 1 WHERE batch = ?", (batch,))
        finally:
            con.close()

    def sync(self, con: sqlite3.Connection | None = None) -> int:
        """Ingest new (or rewritten) partition files, drop vanished ones; returns files ingested."""
        own = con is None
        con = con or self._connect()
        try:
            have = dict(con.execute("SELECT batch, dirty FROM files"))
            present = {}
            if self.table_dir.is_dir():
                with os.scandir(self.table_dir) as it:
                    for e in it:
                        if e.name.endswith(".parquet") and not e.name.startswith("."):
                            present[e.name[: -len(".parquet")]] = e.path
            n = 0
            with con:
                for batch in set(have) - set(present):
                    con.execute("DELETE FROM rows WHERE batch = ?", (batch,))
                    con.execute("DELETE FROM files WHERE batch = ?", (batch,))
                for batch in sorted(b for b in present if have.get(b, 1)):
                    p = present[batch]
                    cols = [self.key, *self.values]
                    names = pq.read_schema(p).names
                    t = pq.read_table(p, columns=[c for c in cols if c in names])
                    data = {c: (t.column(c).to_pylist() if c in t.column_names else [None] * t.num_rows) for c in cols}
                    rows = [(k, batch, *[None if v is None else str(v) for v in vals])
                            for k, *vals in zip(*(data[c] for c in cols)) if k is not None]
                    con.execute("DELETE FROM rows WHERE batch = ?", (batch,))
                    ph = ", ".join("?" * (2 + len(self.values)))
                    con.executemany(f"INSERT OR REPLACE INTO rows VALUES ({ph})", rows)
                    con.execute("INSERT OR REPLACE INTO files VALUES (?, 0)", (batch,))
                    n += 1
            return n
        finally:
            if own:
                con.close()

    def lookup(self, keys: Iterable[str]) -> list[tuple]:
        """(key, batch, values...) rows for the given keys, after a sync."""
        keys = [k for k in dict.fromkeys(keys) if k is not None]
        con = self._connect()
        try:
            self.sync(con)
            out: list[tuple] = []
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i:i + _CHUNK]
                ph = ", ".join("?" * len(chunk))
                out.extend(con.execute(f"SELECT * FROM rows WHERE k IN ({ph})", chunk).fetchall())
            return out
        finally:
            con.close()
