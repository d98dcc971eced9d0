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
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

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


def atomic_write(path: Path, write: Callable[[BinaryIO], None], *, durable: bool = True) -> None:
    """The one way emoforge writes a file: ``write(fh)`` into a temporary file in the same directory,
    then a rename, so readers see the old file or the new one, never half of one.

    ``durable``: the file's bytes and the rename are on disk before return (fsync of the file and of
    its directory). Without it the write is still atomic for readers, but a power cut may lose it
    (callers that skip it check their files on the next run, as the downloader does with blobs).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """:func:`atomic_write` of bytes."""
    atomic_write(path, lambda fh: fh.write(data), durable=durable)


def atomic_write_parquet(path: Path, table: pa.Table | pd.DataFrame, durable: bool = True) -> None:
    """:func:`atomic_write` of a Parquet file (zstd)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    atomic_write(path, lambda fh: pq.write_table(table, fh, compression="zstd"), durable=durable)


def to_arrow(df: pd.DataFrame | pa.Table, schema: pa.Schema | None = None) -> pa.Table:
    """A DataFrame (or table) as Arrow, cast to ``schema`` when given: missing columns become NULL
    columns of the schema's type, extra columns are kept after the schema's (typed as inferred)."""
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    if schema is None:
        return table
    cols, fields = [], []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            if not col.type.equals(f.type):
                col = _cast(col, f, name_of=f.name)
        else:
            col = pa.nulls(len(table), f.type)
        cols.append(col)
        fields.append(f)
    for name in table.column_names:
        if name not in schema.names:
            cols.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def _cast(col: pa.ChunkedArray, field: pa.Field, name_of: str) -> pa.ChunkedArray:
    """One column to its schema type; timestamps may lose sub-microsecond digits, nothing else may
    lose data (a value that does not fit is an error naming the column)."""
    if pa.types.is_null(col.type):
        return pa.nulls(len(col), field.type) if len(col) else pa.chunked_array([], field.type)
    try:
        return col.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        if pa.types.is_timestamp(col.type) and pa.types.is_timestamp(field.type):
            return col.cast(field.type, safe=False)
        raise ValueError(f"column {name_of!r}: cannot store {col.type} values as {field.type}: {e}") from None


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

    def __init__(self, root: Path, mirror: Callable[[Path], None] | None = None):
        self.root = Path(root)
        self.mirror = mirror      # called with each newly stored blob's path (object storage)

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
            atomic_write_bytes(self.path(sha), data, durable=durable)
            if self.mirror is not None:
                self.mirror(self.path(sha))
        return sha

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()


# partitioned tables with a persistent lookup over their history (warehouse.lookups): key, values
INDEXED_TABLES: dict[str, tuple[str, list[str]]] = {
    "candidate_urls": ("normalized_url", []),
    "image_hashes": ("sha256", ["phash", "hash_error", "hash_mode"]),
}


class Warehouse:
    """All file locations of one data directory, and the only writer of its DuckDB catalog."""

    def __init__(self, data_dir: str | os.PathLike | None = None):
        self.root = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
        self.tables_dir = self.root / "tables"
        self.state_dir = self.root / "state"
        self.blobs = BlobStore(self.root / "blobs", mirror=self._mirror if os.environ.get("EMOFORGE_OBJECT_STORE") else None)
        self.db_path = self.root / "warehouse.duckdb"
        self.dagster_home = self.root / "dagster"
        self.exports_dir = self.root / "exports"

    # ---- object storage (warehouse.objectstore) ------------------------------------------------
    @property
    def object_store(self):
        """The object store this directory's files are also written to ($EMOFORGE_OBJECT_STORE), or None."""
        if not hasattr(self, "_object_store"):
            from warehouse.objectstore import ObjectStore

            self._object_store = ObjectStore.from_env()
        return self._object_store

    def _mirror(self, path: Path) -> None:
        store = self.object_store
        if store is not None:
            store.put(path, Path(path).relative_to(self.root).as_posix())

    def publish(self) -> dict:
        """Copy what the object store lacks of this directory (``emoforge publish``)."""
        from warehouse.objectstore import publish

        if self.object_store is None:
            raise ValueError("no object store: set EMOFORGE_OBJECT_STORE (e.g. s3://bucket/prefix)")
        return publish(self.root, self.object_store)

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

    def download_journal(self, batch: str) -> Path:
        """The downloader's resume journal of one scrape batch."""
        _check_key(batch)
        return self.state_path("download_journal", f"{batch}.jsonl")

    @property
    def models(self):
        """The content-addressed model store (``models/``)."""
        from warehouse.models import ModelStore

        return ModelStore(self.root / "models")

    def write_model_versions(self) -> Path:
        """Rebuild the ``model_versions`` table from the model store."""
        return self.write_table("model_versions", self.models.table())

    def set_current_model(self, task: str, model_version: str | None) -> None:
        """The model version a task's predictions use from now on (None: no model)."""
        path = self.state_path("current_models.json")
        cur = json.loads(path.read_text()) if path.exists() else {}
        cur[task] = model_version
        atomic_write_bytes(path, json.dumps(cur, indent=1, sort_keys=True).encode())

    def current_model(self, task: str) -> str | None:
        path = self.state_path("current_models.json")
        return json.loads(path.read_text()).get(task) if path.exists() else None

    def feature_store(self, extractor: str, dim: int, meta: dict | None = None):
        """The cached activations of one extractor (``features/<extractor key>/``)."""
        from warehouse.features import FeatureStore

        return FeatureStore(self.root / "features" / extractor, extractor, dim, meta=meta)

    def image_features_rows(self, store, only: Iterable[str] | None = None) -> pa.Table:
        """The CONTRACT ``image_features`` rows of a feature store (pointers relative to the data dir),
        restricted to the sha256s ``only`` when given (a store is shared: an extractor's store holds
        the vectors of every image and face crop it was run on)."""
        import pyarrow.compute as pc

        from warehouse.features import image_features_rows

        rows = image_features_rows(store, self.root)
        if only is None:
            return rows
        return rows.filter(pc.is_in(rows.column("sha256"), value_set=pa.array(sorted(set(map(str, only))), pa.string())))

    def url_list_cache_dir(self) -> Path:
        """Parsed URL lists, kept between processes (keyed by the list file's version)."""
        return self.state_path("url_lists", "x").parent

    def check_results(self) -> "ResultCache":
        """Outcomes of data-quality suites by the hash of (rows, suite): a check of an unchanged
        table is answered from here (ops.quality.validate)."""
        return ResultCache(self.state_path("check_results", "x").parent)

    def figure_cache(self) -> "ResultCache":
        """PNG figures by a key of what they show (ops.figures.cached_png)."""
        return ResultCache(self.state_path("figures", "x").parent)

    def phash_index_dir(self, mode: str) -> Path:
        """The persistent near-duplicate index of one pHash mode."""
        return self.state_path(f"phash_index_{mode}", "x").parent

    # ---- lookups over the history of partitioned tables (warehouse.lookups) ----------------------
    def _index(self, table: str, key: str, values: list[str]):
        from warehouse.lookups import PartitionIndex

        return PartitionIndex(self.state_path("lookups", f"{table}.sqlite"), self.tables_dir / table, key, values)

    def seen_urls(self, before: str, among: Iterable[str] | None = None) -> set[str]:
        """Normalized URLs (of ``among``, or all) that ``candidate_urls`` partitions before ``before``
        made candidates; answered from a persistent index, so it costs the same at every batch."""
        idx = self._index("candidate_urls", *INDEXED_TABLES["candidate_urls"])
        if among is None:
            idx.sync()
            import sqlite3

            with sqlite3.connect(idx.db_path) as con:
                return {k for k, b in con.execute("SELECT k, batch FROM rows") if b < before}
        return {row[0] for row in idx.lookup(among) if row[1] < before}

    def known_hashes(self, shas: list[str], mode: str, exclude_batch: str | None = None) -> dict[str, tuple]:
        """pHashes (hex, error) already computed in ``mode`` for these SHA-256s by other batches."""
        idx = self._index("image_hashes", *INDEXED_TABLES["image_hashes"])
        out: dict[str, tuple] = {}
        for sha, batch, phash, err, m in sorted(idx.lookup(shas), key=lambda r: r[1]):
            if batch != exclude_batch and m == mode and sha not in out:
                out[sha] = (phash, err)
        return out

    def record_annotation_exports(self, fingerprint: dict[str, str]) -> None:
        """Remember the fingerprint of the annotation exports just ingested (``state/annotation_exports.json``)."""
        atomic_write_bytes(self.state_path("annotation_exports.json"),
                           json.dumps(fingerprint, indent=1, sort_keys=True).encode())

    def recorded_annotation_exports(self) -> dict[str, str] | None:
        """The fingerprint the last ingest recorded, or None before the first."""
        try:
            return json.loads(self.state_path("annotation_exports.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def release_path(self, name: str, version: str) -> Path:
        """``releases/<name>/<version>/``: an immutable, versioned copy of the dataset (ops.release)."""
        _check_key(name)
        _check_key(version)
        return self.root / "releases" / name / version

    def thumbnail_path(self, sha256: str, size: int) -> Path:
        """``state/thumbs/<size>/<ab>/<sha256>.png``: a cached thumbnail of a blob (ops.pictures)."""
        _check_key(sha256)
        return self.state_dir / "thumbs" / str(int(size)) / sha256[:2] / f"{sha256}.png"

    def release_export_path(self, name: str, version: str, fmt: str) -> Path:
        """``exports/releases/<name>/<version>/<format>/``: exports of a release (outside it: the
        release folder itself never changes after it is written)."""
        _check_key(name)
        _check_key(version)
        _check_key(fmt)
        return self.exports_dir / "releases" / name / version / fmt

    def releases(self, name: str) -> list[str]:
        """The versions of release ``name`` that were written (complete: with a manifest)."""
        d = self.root / "releases" / name
        return sorted(p.name for p in d.iterdir() if (p / "manifest.json").exists()) if d.is_dir() else []

    def read_arrow(self, name: str) -> pa.Table:
        """A whole table (every partition) as one Arrow table under its unified schema."""
        if self.table_path(name).exists():
            return pq.read_table(self.table_path(name))
        files = list(self._partition_files(name))
        if not files:
            raise FileNotFoundError(f"table {name!r} has not been materialized yet in {self.tables_dir}")
        from warehouse.catalog import unified_schema

        return ds.dataset([str(f) for f in files], schema=unified_schema(files), format="parquet").to_table()

    def export_path(self, name: str) -> Path:
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        return self.exports_dir / name

    # ---- tables -------------------------------------------------------------------------------
    def write_table(self, name: str, df: pd.DataFrame | pa.Table, partition: str | None = None,
                    schema: pa.Schema | None = None, refresh: bool = True) -> Path:
        """Write one table (or one partition of it) atomically; rebuild the catalog unless it
        already covers the table (a new partition of a known table with the known columns needs no
        rebuild: its view reads every partition file at query time, so a batch costs the same at
        batch 10 and batch 1,000). ``refresh=False`` leaves the catalog to the caller.

        ``schema``: the table's fixed Arrow schema; the data is cast to it (an empty batch or a
        column that is NULL in every row then has the same types as every other batch)."""
        path = self.table_path(name, partition)
        table = to_arrow(df, schema)
        atomic_write_parquet(path, table)
        self._mirror(path)
        if partition is not None and name in INDEXED_TABLES:
            self._index(name, *INDEXED_TABLES[name]).invalidate(partition)
        if refresh and not self.catalog_covers(name, path):
            self.refresh_catalog()
        return path

    def catalog_covers(self, name: str, path: Path) -> bool:
        """The catalog already has table ``name`` with a schema that holds every column of the file
        ``path`` (the same columns for a plain table), so it needs no rebuild for this file."""
        from warehouse.catalog import _schema_from_b64, file_schema, read_catalog, schema_covers

        info = read_catalog(self.root).get("tables", {}).get(name)
        if info is None or not self.db_path.exists():
            return False
        known, new = _schema_from_b64(info["schema"]), file_schema(path)
        if not info.get("partitioned") and set(known.names) != set(new.names):
            return False  # a plain table's view binds its columns: any change needs a rebuild
        return schema_covers(known, new)

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
        """Read a table; for a partitioned table without ``partition``, all partitions together,
        under one schema (files written before the schemas were fixed are read too: a column that
        is NULL in every row of a file takes the type the other files give it).

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
        from warehouse.catalog import unified_schema

        schema = unified_schema(files)
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns if c in schema.names])
        dataset = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
        return _to_pandas(dataset.to_table(columns=columns))

    def table_names(self) -> list[str]:
        from warehouse.catalog import table_names

        return table_names(self.root)

    # ---- the DuckDB catalog -----------------------------------------------------------------------
    @property
    def _lock_path(self) -> Path:
        return self.root / ".warehouse.lock"

    def refresh_catalog(self) -> dict:
        """Rebuild the DuckDB catalog (a new file renamed into place; see ``warehouse.catalog``)."""
        from warehouse.catalog import build_catalog, registered_views

        self.root.mkdir(parents=True, exist_ok=True)
        desc = build_catalog(self.root, self.db_path, registered_views(self.root), self._lock_path)
        for rel in ("state/catalog.json", "state/views.json"):
            if (self.root / rel).exists():
                self._mirror(self.root / rel)
        return desc

    def register_views(self, views: dict[str, str]) -> dict:
        """Add or replace SQL views (name -> SELECT) that every catalog build recreates; rebuild."""
        from warehouse.catalog import register_views

        register_views(self.root, views, self._lock_path)
        return self.refresh_catalog()

    def connect(self, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """A read-only, locked-down session over the catalog (``warehouse.catalog.open_session``)."""
        if not read_only:
            raise ValueError("the catalog is written only by Warehouse.refresh_catalog; sessions are read-only")
        from warehouse.catalog import open_session

        return open_session(self.root, self.db_path)

    def query(self, sql: str) -> pd.DataFrame:
        """Run a read-only query and return the result as a DataFrame."""
        con = self.connect()
        try:
            return con.execute(sql).df()
        finally:
            con.close()

    def write_export(self, name: str, data: bytes) -> Path:
        """A file for people or other tools under ``exports/`` (atomic)."""
        path = self.export_path(name)
        atomic_write_bytes(path, data)
        return path


class ResultCache:
    """A directory of small JSON documents by key (one file each, written atomically)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def get(self, key: str) -> dict | None:
        p = self.root / f"{key}.json"
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.root / f"{key}.json", json.dumps(value, default=str, sort_keys=True).encode(), durable=False)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return (self.root / f"{key}.bin").read_bytes()
        except OSError:
            return None

    def put_bytes(self, key: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.root / f"{key}.bin", data, durable=False)

    def get_rows(self, key: str):
        """The sorted uint64 row hashes stored under ``key`` (rows that passed a suite's row-wise
        expectations), or None."""
        import numpy as np

        try:
            return np.load(self.root / f"{key}.npy", allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put_rows(self, key: str, hashes) -> None:
        import io

        import numpy as np

        self.root.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, np.unique(np.asarray(hashes, dtype=np.uint64)), allow_pickle=False)
        atomic_write_bytes(self.root / f"{key}.npy", buf.getvalue(), durable=False)
