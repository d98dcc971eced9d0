"""The DuckDB catalog of a data directory, and the read-only query sessions over it.

Writing (one writer at a time, under a file lock): :func:`build_catalog` creates a NEW DuckDB file
next to ``warehouse.duckdb`` with one view per table (paths relative to the data directory, so a
copied or moved directory reads its own files) plus the registered statistics views, and renames
it into place. A reader that holds the old file open (``duckdb -readonly warehouse.duckdb``) keeps
the snapshot it opened and never blocks a build.

Reading (:func:`open_session`): the catalog opened read-only; every table registered as an Arrow
dataset over its Parquet files (complete files only: every file is written by a rename), then file
system access disabled and the configuration locked. User SQL can read the warehouse's tables and
views and nothing else: no ``COPY … TO``, no ``ATTACH`` of a file, no ``read_csv('/etc/passwd')``,
no extension installs, no writes to the catalog.

External clients: the views name their files relative to the data directory, so run them from it
(``cd <data dir> && duckdb -readonly warehouse.duckdb``) or ``SET file_search_path = '<data dir>'``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Mapping

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from filelock import FileLock

CATALOG_FORMAT = 2
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _table_files(tables_dir: Path) -> dict[str, list[Path]]:
    """Table name -> its Parquet files (one for a plain table, one per partition)."""
    out: dict[str, list[Path]] = {}
    if not tables_dir.exists():
        return out
    for p in sorted(tables_dir.glob("*.parquet")):
        if _NAME_RE.match(p.stem):
            out[p.stem] = [p]
    for d in sorted(x for x in tables_dir.iterdir() if x.is_dir()):
        files = sorted(d.glob("*.parquet"))
        if files and _NAME_RE.match(d.name) and d.name not in out:
            out[d.name] = files
    return out


def file_schema(path: Path) -> pa.Schema:
    """A Parquet file's schema, with columns that are NULL in every row typed ``null`` (an empty or
    all-NULL batch written before the schemas were fixed may carry any type there)."""
    meta = pq.read_metadata(path)
    schema = meta.schema.to_arrow_schema()
    n = meta.num_rows
    if n == 0:
        return pa.schema([pa.field(f.name, f.type) for f in schema])
    # leaf columns by path ("a", or "votes.list.element.label" for nested ones): only top-level
    # flat columns are judged, by their own column chunk statistics
    leaf = {meta.row_group(0).column(j).path_in_schema: j for j in range(meta.num_columns)} if meta.num_row_groups else {}
    fields = []
    for f in schema:
        j = leaf.get(f.name)
        all_null = j is not None and not pa.types.is_nested(f.type)
        nulls = 0
        for rg in range(meta.num_row_groups if all_null else 0):
            st = meta.row_group(rg).column(j).statistics
            if st is None or not st.has_null_count:
                all_null = False
                break
            nulls += st.null_count
        fields.append(pa.field(f.name, pa.null() if all_null and nulls == n else f.type))
    return pa.schema(fields)


def unified_schema(files: list[Path], cache: dict | None = None) -> pa.Schema:
    """One schema over a table's files: columns by name, in order of first appearance; a column's
    type comes from the files where it holds values (numeric types widen; on a real conflict the
    latest file wins: files are keyed by batch, the latest is written with the current schema); a
    column that is NULL in every file keeps the latest file's declared type (string if that is null).
    ``cache``: path -> (mtime_ns, size, (declared, valued)) of files seen before (footers not re-read)."""
    pairs = [_cached_file_schema(f, cache) for f in files]
    order: list[str] = []
    declared: dict[str, pa.DataType] = {}
    valued: dict[str, list[pa.DataType]] = {}
    for decl, val in pairs:
        for f in decl:
            if f.name not in declared:
                order.append(f.name)
            if not pa.types.is_null(f.type) or f.name not in declared:
                declared[f.name] = f.type
        for f in val:
            if not pa.types.is_null(f.type):
                valued.setdefault(f.name, []).append(f.type)
    fields = []
    for name in order:
        types = valued.get(name)
        if types:
            try:
                t = pa.unify_schemas([pa.schema([pa.field(name, x)]) for x in types],
                                     promote_options="permissive").field(name).type
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                t = types[-1]
        else:
            t = declared[name]
        fields.append(pa.field(name, pa.string() if pa.types.is_null(t) else t))
    return pa.schema(fields)


def _cached_file_schema(path: Path, cache: dict | None) -> tuple[pa.Schema, pa.Schema]:
    """(declared schema, schema with all-NULL columns typed null) of one file."""
    if cache is None:
        return pq.read_schema(path), file_schema(path)
    st = path.stat()
    key = str(path)
    hit = cache.get(key)
    if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
        return hit[2]
    pair = (pq.read_schema(path), file_schema(path))
    cache[key] = (st.st_mtime_ns, st.st_size, pair)
    return pair


def schema_covers(catalog_schema: pa.Schema, new: pa.Schema) -> bool:
    """Every column of ``new`` is in the catalog's schema with the same type (or NULL-only)."""
    for f in new:
        if f.name not in catalog_schema.names:
            return False
        t = catalog_schema.field(f.name).type
        if not (pa.types.is_null(f.type) or f.type.equals(t)):
            return False
    return True


def _schema_b64(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def _schema_from_b64(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def _rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix()


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


_SCHEMA_CACHE: dict = {}


def build_catalog(root: Path, db_path: Path, views: Mapping[str, str], lock_path: Path,
                  timeout: float = 600.0) -> dict:
    """(Re)build the catalog: table views over the Parquet files and the registered ``views``, in a
    new file renamed over ``db_path``; the table list and schemas also go to ``catalog.json``.
    Returns the catalog description. Views whose tables do not exist yet are skipped (listed)."""
    root = Path(root)
    tables = _table_files(root / "tables")
    with FileLock(str(lock_path), timeout=timeout):
        desc = {"format": CATALOG_FORMAT, "built_at": time.time(), "tables": {}, "views": {}, "skipped_views": {}}
        fd, tmp = tempfile.mkstemp(prefix=".warehouse.", suffix=".duckdb.tmp", dir=root)
        os.close(fd)
        os.unlink(tmp)  # DuckDB creates the file itself
        try:
            con = duckdb.connect(tmp)
            try:
                con.execute(f"SET file_search_path = {_quote(str(root))}")
                for name, files in tables.items():
                    schema = unified_schema(files, _SCHEMA_CACHE)
                    partitioned = not (len(files) == 1 and files[0].parent == root / "tables")
                    desc["tables"][name] = {       # partitioned: the files are whatever the directory holds
                        "partitioned": partitioned,
                        "files": [] if partitioned else [_rel(root, f) for f in files],
                        "schema": _schema_b64(schema),
                    }
                    src = (f"read_parquet({_quote(_rel(root, files[0]))})" if not partitioned else
                           f"read_parquet({_quote('tables/' + name + '/*.parquet')}, union_by_name = true, "
                           f"filename = 'partition_file')")
                    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {src}")
                pending = dict(views)
                while pending:  # views over views: create what binds, retry the rest
                    progressed = False
                    errors = {}
                    for name, sql in list(pending.items()):
                        try:
                            con.execute(f"CREATE OR REPLACE VIEW {name} AS\n{sql}")
                            desc["views"][name] = sql
                            del pending[name]
                            progressed = True
                        except duckdb.Error as e:
                            errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
                    if not progressed:
                        desc["skipped_views"] = errors
                        break
                con.execute("CHECKPOINT")
            finally:
                con.close()
            os.replace(tmp, db_path)
        except BaseException:
            for p in (tmp, tmp + ".wal"):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            raise
        _write_json(root / "state" / "catalog.json", desc)
    return desc


def _write_json(path: Path, obj: dict) -> None:
    from warehouse.store import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())


def read_catalog(root: Path) -> dict:
    try:
        return json.loads((Path(root) / "state" / "catalog.json").read_text())
    except FileNotFoundError:
        return {"format": CATALOG_FORMAT, "tables": {}, "views": {}}


def open_session(root: Path, db_path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only, locked-down DuckDB session over the warehouse (see the module docstring)."""
    root = Path(root)
    if not db_path.exists():
        raise FileNotFoundError(f"no warehouse at {db_path}: build something first (emoforge build --data-dir {root})")
    cat = read_catalog(root)
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        for name, info in cat.get("tables", {}).items():
            files = [str(root / f) for f in info["files"]]
            if info.get("partitioned"):  # the partitions present now (a build may have added some)
                files = [str(p) for p in sorted((root / "tables" / name).glob("*.parquet"))]
            files = [f for f in files if os.path.exists(f)]
            if not files:
                continue
            schema = _schema_from_b64(info["schema"])
            if info.get("partitioned"):
                schema = _with_new_columns(schema, files)
            con.register(name, ds.dataset(files, schema=schema, format="parquet"))
        lock_down(con)
    except BaseException:
        con.close()
        raise
    return con


def _with_new_columns(schema: pa.Schema, files: list[str]) -> pa.Schema:
    """Columns present in the newest partition but not in the catalog's schema (a build after the
    catalog was written) are added, so they are not silently invisible."""
    try:
        newest = file_schema(Path(files[-1]))
    except Exception:  # noqa: BLE001 - a file being replaced: keep the catalog's schema
        return schema
    extra = [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
             for f in newest if f.name not in schema.names]
    return pa.schema(list(schema) + extra) if extra else schema


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """No file system access, no extensions, configuration locked: the session can read what was
    registered and nothing else."""
    con.execute("SET enable_external_access = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET lock_configuration = true")


READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN", "PRAGMA", "RELATION", "ANALYZE")


def check_read_only(sql: str) -> None:
    """Refuse statements that would write (the session refuses them anyway; this names the reason)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return  # a syntax error: DuckDB reports it when the query runs
    for st in statements:
        kind = str(st.type).split(".")[-1].upper()
        if kind not in READ_ONLY_STATEMENTS:
            raise PermissionError(f"the warehouse is read-only here: {kind} statements are not allowed "
                                  f"(SELECT, EXPLAIN, DESCRIBE/SHOW, PRAGMA are)")


def table_names(root: Path) -> list[str]:
    return sorted(_table_files(Path(root) / "tables"))


def views_registry_path(root: Path) -> Path:
    return Path(root) / "state" / "views.json"


def registered_views(root: Path) -> dict[str, str]:
    try:
        return json.loads(views_registry_path(root).read_text())
    except FileNotFoundError:
        return {}


def register_views(root: Path, views: Mapping[str, str], lock_path: Path) -> None:
    """Persist view definitions (name -> SELECT) so that every catalog build recreates them."""
    with FileLock(str(lock_path), timeout=600):
        cur = registered_views(root)
        cur.update(views)
        _write_json(views_registry_path(root), cur)

