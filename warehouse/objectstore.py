"""The data directory's tables and blobs on S3-compatible object storage (fsspec / s3fs).

With ``EMOFORGE_OBJECT_STORE=s3://bucket/prefix`` (and, for a non-AWS endpoint such as MinIO or
moto, ``EMOFORGE_S3_ENDPOINT=http://host:port``; credentials the usual ``AWS_*`` variables), every
table file the warehouse writes, every blob it stores and the catalog's description are also
written to the store, under the same relative paths::

    s3://bucket/prefix/tables/<name>/<key>.parquet     s3://bucket/prefix/blobs/ab/cd/<sha256>
    s3://bucket/prefix/state/catalog.json, views.json

so the store holds the dataset that cluster workers build, whichever machine wrote each part.
:func:`publish` copies what is missing or changed (a data directory built before the store was
configured; ``emoforge publish``). :func:`open_remote_session` is the catalog over the store: the
same table views and registered statistics views, read by DuckDB through the fsspec filesystem
registered on the connection (no DuckDB extension download), with file access limited to the
store's prefix and the configuration locked, as for a local ``emoforge sql``.

The local data directory stays each process's working copy (journals, indexes, feature caches
live there; on several machines it is a shared volume); the store is where the results meet.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

ENV_URL, ENV_ENDPOINT = "EMOFORGE_OBJECT_STORE", "EMOFORGE_S3_ENDPOINT"
PUBLISHED = ("tables", "blobs")          # directories mirrored file by file
CATALOG_FILES = ("state/catalog.json", "state/views.json")


class ObjectStore:
    """One prefix of an fsspec filesystem (``s3://bucket/prefix``, ``memory://x`` in tests)."""

    def __init__(self, url: str, endpoint_url: str | None = None):
        import fsspec

        parts = urlsplit(url)
        if not parts.scheme or not (parts.netloc or parts.path.strip("/")):
            raise ValueError(f"object store {url!r}: expected scheme://bucket/prefix, e.g. s3://emoforge/demo")
        self.url = url.rstrip("/")
        self.protocol = parts.scheme
        opts = {}
        if self.protocol == "s3":
            if endpoint_url:
                opts["endpoint_url"] = endpoint_url
            opts["use_listings_cache"] = False
        self.fs = fsspec.filesystem(self.protocol, **opts)
        self.base = self.fs._strip_protocol(self.url).rstrip("/")   # the path inside the filesystem

    @classmethod
    def from_env(cls) -> "ObjectStore | None":
        url = os.environ.get(ENV_URL, "").strip()
        return cls(url, os.environ.get(ENV_ENDPOINT) or None) if url else None

    def key(self, rel: str) -> str:
        return f"{self.base}/{rel.lstrip('/')}"

    def uri(self, rel: str) -> str:
        return f"{self.protocol}://{self.key(rel)}"

    def put(self, local: Path, rel: str) -> None:
        """Upload one file (the store's PUT replaces the object whole: readers never see half)."""
        self.fs.put_file(str(local), self.key(rel))

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.key(rel))

    def read_text(self, rel: str) -> str:
        with self.fs.open(self.key(rel), "rb") as fh:
            return fh.read().decode()

    def listing(self, rel_dir: str) -> dict[str, dict]:
        """Relative path -> the object's details, for every object under ``rel_dir``."""
        root = self.key(rel_dir)
        try:
            found = self.fs.find(root, detail=True)
        except FileNotFoundError:
            return {}
        base = self.base + "/"
        return {k[len(base):]: v for k, v in found.items() if k.startswith(base)}


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _same(local: Path, info: dict | None, immutable: bool, store: ObjectStore, rel: str) -> bool:
    if info is None or int(info.get("size", -1)) != local.stat().st_size:
        return False
    if immutable:                     # blobs are named by their content
        return True
    etag = str(info.get("ETag", info.get("etag", ""))).strip('"')
    if etag and "-" not in etag:      # S3's ETag of a single-part upload is the MD5 of the bytes
        return etag == _md5(local)
    with store.fs.open(store.key(rel), "rb") as fh:   # a store without MD5s: compare the bytes
        return hashlib.md5(fh.read(), usedforsecurity=False).hexdigest() == _md5(local)


def publish(root: Path, store: ObjectStore) -> dict:
    """Copy the data directory's tables, blobs and catalog description to the store: files that
    are missing there or differ (size, or for tables the MD5 the store reports). Returns counts."""
    root = Path(root)
    out = {"uploaded": 0, "unchanged": 0, "bytes": 0}
    for top in PUBLISHED:
        local_dir = root / top
        if not local_dir.is_dir():
            continue
        remote = store.listing(top)
        for p in sorted(local_dir.rglob("*")):
            if not p.is_file() or p.name.startswith("."):     # temporary files of atomic writes
                continue
            rel = p.relative_to(root).as_posix()
            if _same(p, remote.get(rel), top == "blobs", store, rel):
                out["unchanged"] += 1
                continue
            store.put(p, rel)
            out["uploaded"] += 1
            out["bytes"] += p.stat().st_size
    for rel in CATALOG_FILES:
        if (root / rel).exists():
            store.put(root / rel, rel)
    return out


def open_remote_session(store: ObjectStore) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB session over the store's tables and views (see the module docstring)."""
    from warehouse.catalog import _quote, lock_down

    try:
        cat = json.loads(store.read_text("state/catalog.json"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no emoforge catalog at {store.uri('state/catalog.json')}: "
                                f"build with {ENV_URL} set, or run `emoforge publish`") from None
    views = json.loads(store.read_text("state/views.json")) if store.exists("state/views.json") else {}
    con = duckdb.connect()
    try:
        con.register_filesystem(store.fs)
        for name, info in cat.get("tables", {}).items():
            if info.get("partitioned"):
                src = (f"read_parquet({_quote(store.uri(f'tables/{name}/*.parquet'))}, union_by_name = true, "
                       f"filename = 'partition_file')")
            else:
                src = f"read_parquet({_quote(store.uri(info['files'][0]))})"
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {src}")
        pending = dict(views)
        while pending:   # views over views: create what binds, retry the rest
            made = [n for n, sql in list(pending.items()) if _try_view(con, n, sql)]
            for n in made:
                del pending[n]
            if not made:
                break
        con.execute(f"SET allowed_directories = [{_quote(store.uri('') )}]")
        lock_down(con)
    except BaseException:
        con.close()
        raise
    return con


def _try_view(con: duckdb.DuckDBPyConnection, name: str, sql: str) -> bool:
    try:
        con.execute(f"CREATE VIEW {name} AS\n{sql}")
        return True
    except duckdb.Error:
        return False
