"""Where emoforge's files live, and how they are written.

The data directory (default ``./data``; ``EMOFORGE_HOME`` or ``--data-dir`` override it) holds::

    blobs/ab/cd/<sha256>          images, content-addressed by the SHA-256 of their bytes
    tables/<name>.parquet         unpartitioned tables
    tables/<name>/<key>.parquet   partitioned tables (one file per scrape batch)
    state/                        journals and persistent indexes owned by individual stages
    warehouse.duckdb              the DuckDB catalog: one view per table, over the Parquet files
    dagster/                      the Dagster instance (DAGSTER_HOME) for CLI and UI runs

Parquet files are written to a temporary name in the same directory and renamed, so a crash never
leaves half a table. The DuckDB file is written only by :meth:`Warehouse.refresh_catalog`, under a
file lock, so parallel Dagster steps (which write only Parquet) never write it at once; readers
open it read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")


def default_data_dir() -> Path:
    return Path(os.environ.get("EMOFORGE_HOME", "./data")).expanduser().resolve()


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid table name {name!r}: use lowercase letters, digits and _")


def _check_key(key: str) -> None:
    if not _KEY_RE.match(key):
        raise ValueError(f"invalid partition key {key!r}: use letters, digits, '_', '.', '=', '-'")


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename.

    The rename makes the write atomic for readers; ``fsync`` also makes it durable before return.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_parquet(path: Path, table: pa.Table | pd.DataFrame) -> None:
    """Write a Parquet file atomically (temporary name + rename)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    nulls = [i for i, f in enumerate(table.schema) if pa.types.is_null(f.type)]
    if not nulls:
        return table.to_pandas()
    names = {table.schema.field(i).name for i in nulls}
    meta = dict(table.schema.metadata or {})
    if b"pandas" in meta:  # the stored pandas dtype of such a column would force it back to null
        info = json.loads(meta[b"pandas"])
        for col in info.get("columns", []):
            if col.get("name") in names:
                col.update({"pandas_type": "unicode", "numpy_type": "object", "metadata": None})
        meta[b"pandas"] = json.dumps(info).encode()
    for i in nulls:
        table = table.set_column(i, table.schema.field(i).name, table.column(i).cast(pa.string()))
    return table.replace_schema_metadata(meta).to_pandas()


class BlobStore:
    """Content-addressed image store: ``blobs/ab/cd/<sha256>``.

    Storing the same bytes twice costs nothing: the second ``put`` finds the file and returns.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def has_complete(self, sha256: str, n_bytes: int) -> bool:
        """The blob exists with the expected size (a cheap check after a crash or power cut)."""
        try:
            return self.path(sha256).stat().st_size == n_bytes
        except FileNotFoundError:
            return False

    def put(self, data: bytes, durable: bool = True) -> str:
        """Store ``data``; ``durable=False`` skips the fsync (the caller then verifies on resume,
        as the downloader does with ``has_complete``)."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_complete(sha, len(data)):  # absent, or cut short by a crash: (re)write
            atomic_write_bytes(self.path(sha), data, fsync=durable)
        return sha

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()


class Warehouse:
    """All file locations of one data directory, and the only writer of its DuckDB catalog."""

    def __init__(self, data_dir: str | os.PathLike | None = None):
        self.root = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
        self.tables_dir = self.root / "tables"
        self.state_dir = self.root / "state"
        self.blobs = BlobStore(self.root / "blobs")
        self.db_path = self.root / "warehouse.duckdb"
        self.dagster_home = self.root / "dagster"
        self.exports_dir = self.root / "exports"

    # ---- layout -------------------------------------------------------------------------------
    def ensure(self) -> "Warehouse":
        for d in (self.tables_dir, self.state_dir, self.blobs.root, self.exports_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def table_path(self, name: str, partition: str | None = None) -> Path:
        _check_name(name)
        if partition is None:
            return self.tables_dir / f"{name}.parquet"
        _check_key(partition)
        return self.tables_dir / name / f"{partition}.parquet"

    def state_path(self, *parts: str) -> Path:
        p = self.state_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def export_path(self, name: str) -> Path:
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        return self.exports_dir / name

    # ---- tables -------------------------------------------------------------------------------
    def write_table(self, name: str, df: pd.DataFrame | pa.Table, partition: str | None = None) -> Path:
        """Write one table (or one partition of it) atomically and register its view."""
        path = self.table_path(name, partition)
        atomic_write_parquet(path, df)
        self.refresh_catalog()
        return path

    def has_table(self, name: str, partition: str | None = None) -> bool:
        if partition is not None:
            return self.table_path(name, partition).exists()
        return self.table_path(name).exists() or any(self._partition_files(name))

    def partitions(self, name: str) -> list[str]:
        return sorted(p.stem for p in self._partition_files(name))

    def _partition_files(self, name: str) -> Iterator[Path]:
        d = self.tables_dir / name
        if d.is_dir():
            yield from sorted(d.glob("*.parquet"))

    def read_table(self, name: str, partition: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Read a table; for a partitioned table without ``partition``, all partitions together.

        Columns that are NULL in every row (Arrow type ``null``) are read as strings, so that
        pandas code filling them in (``where``, ``fillna``) works the same as on a filled column.
        """
        if partition is not None or self.table_path(name).exists():
            return _to_pandas(pq.read_table(self.table_path(name, partition), columns=columns))
        files = list(self._partition_files(name))
        if not files:
            raise FileNotFoundError(
                f"table {name!r} has not been materialized yet in {self.tables_dir} "
                f"(build it first, e.g. `emoforge build --select {name}`)"
            )
        tables = [pq.read_table(f, columns=columns) for f in files]
        return _to_pandas(pa.concat_tables(tables, promote_options="permissive"))

    def _view_sql(self, name: str) -> str | None:
        single = self.table_path(name)
        if single.exists():
            return f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{single.as_posix()}')"
        if any(self._partition_files(name)):
            glob = (self.tables_dir / name / "*.parquet").as_posix()
            return (
                f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM "
                f"read_parquet('{glob}', union_by_name = true, filename = 'partition_file')"
            )
        return None

    def table_names(self) -> list[str]:
        names = {p.stem for p in self.tables_dir.glob("*.parquet")}
        names |= {p.name for p in self.tables_dir.iterdir() if p.is_dir() and any(p.glob("*.parquet"))} if self.tables_dir.exists() else set()
        return sorted(n for n in names if _NAME_RE.match(n))

    @contextmanager
    def _writer(self, timeout: float = 120.0):
        """The one DuckDB writer: a file lock serialises processes; retry covers outside readers."""
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / ".warehouse.lock"), timeout=timeout):
            deadline = time.monotonic() + timeout
            while True:
                try:
                    con = duckdb.connect(str(self.db_path))
                    break
                except duckdb.IOException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            try:
                yield con
            finally:
                con.close()

    def refresh_catalog(self, extra_sql: list[str] | None = None) -> None:
        """(Re)create one view per Parquet table, plus any extra views, in the DuckDB file."""
        with self._writer() as con:
            for name in self.table_names():
                sql = self._view_sql(name)
                if sql:
                    con.execute(sql)
            for sql in extra_sql or []:
                con.execute(sql)

    def connect(self, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """Open the catalog. Readers get a read-only connection (the default)."""
        if not self.db_path.exists():
            raise FileNotFoundError(
                f"no warehouse at {self.db_path}: build something first (emoforge build --data-dir {self.root})"
            )
        return duckdb.connect(str(self.db_path), read_only=read_only)
