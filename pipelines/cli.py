"""The ``emoforge`` command line (CONTRACT, DESIGN.md):

    emoforge build [--config FILE] [--data-dir DIR] [--select SELECTION] [--demo] [--cluster WORKSPACE]
    emoforge sql [--data-dir DIR] [--format table|csv|json] "SQL"

``build`` materializes assets headlessly with the same definitions ``dagster dev`` shows, one
run per scrape batch for the partitioned assets, and exits 0 only if every selected asset
materialized and every blocking check passed. With ``--cluster`` the runs are submitted to the
Dagster deployment a workspace file names (daemon, Celery workers; pipelines/cluster.py) instead of
running in this process. ``sql`` opens the warehouse read-only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
REPO_ROOT = Path(__file__).resolve().parents[1]


# ---- sql -----------------------------------------------------------------------------------------

def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def cmd_sql(args: argparse.Namespace) -> int:
    """Run SQL on a read-only, locked-down session over the warehouse; results are streamed."""
    import duckdb

    from warehouse.catalog import check_read_only
    from warehouse.exports import safe_cell
    from warehouse.store import Warehouse

    wh = Warehouse(args.data_dir)
    try:
        check_read_only(args.query)
    except PermissionError as e:
        print(f"emoforge sql: {e}", file=sys.stderr)
        return EXIT_FAILED
    try:
        if getattr(args, "object_store", None):
            from warehouse.objectstore import ObjectStore, open_remote_session

            con = open_remote_session(ObjectStore(args.object_store, os.environ.get("EMOFORGE_S3_ENDPOINT") or None))
        else:
            con = wh.connect()
    except (FileNotFoundError, ValueError) as e:
        print(f"emoforge sql: {e}", file=sys.stderr)
        return EXIT_USAGE
    except duckdb.Error as e:
        print(f"emoforge sql: cannot open {wh.db_path} read-only: {e}", file=sys.stderr)
        return EXIT_FAILED
    out = sys.stdout
    try:
        cur = con.execute(args.query)
        columns = [d[0] for d in cur.description] if cur.description else []

        def chunks():
            while columns:
                rows = cur.fetchmany(SQL_CHUNK_ROWS)
                if not rows:
                    return
                yield rows

        n = 0
        if args.format == "csv":
            import csv

            w = csv.writer(out, lineterminator="\n")
            w.writerow([safe_cell(c) for c in columns])
            for rows in chunks():
                for r in rows:
                    w.writerow(["" if v is None else safe_cell(json.dumps(_jsonable(v)) if isinstance(v, (list, dict))
                                                               else v) for v in r])
        elif args.format == "json":
            out.write("[")
            for rows in chunks():
                for r in rows:
                    out.write(("\n " if n == 0 else ",\n ") + json.dumps({c: _jsonable(v) for c, v in zip(columns, r)}))
                    n += 1
            out.write("\n]\n" if n else "]\n")
        else:
            widths = None
            for rows in chunks():
                if widths is None:
                    widths = _table_widths(columns, rows)
                    out.write(_table_header(columns, widths))
                for r in rows:
                    out.write(_table_row(r, widths))
                n += len(rows)
            if widths is None and columns:
                widths = _table_widths(columns, [])
                out.write(_table_header(columns, widths))
            out.write(f"({n} row{'s' if n != 1 else ''})\n")
    except duckdb.Error as e:
        msg = str(e)
        if "read-only" in msg or "file system operations are disabled" in msg or "configuration has been locked" in msg:
            msg += " (emoforge sql is read-only: it reads the warehouse's tables and views, nothing else)"
        print(f"emoforge sql: {type(e).__name__}: {msg}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        con.close()
    return EXIT_OK


SQL_CHUNK_ROWS = 10_000


def _cell(v: Any, max_width: int = 60) -> str:
    s = "NULL" if v is None else str(v)
    return s if len(s) <= max_width else s[: max_width - 1] + "…"


def _table_widths(columns: list[str], rows: list[tuple]) -> list[int]:
    """Column widths from the header and the first chunk of rows (later rows may be wider)."""
    return [max([len(c)] + [len(_cell(r[i])) for r in rows]) for i, c in enumerate(columns)]


def _table_header(columns: list[str], widths: list[int]) -> str:
    return " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + "\n" + "+".join("-" * (w + 2) for w in widths) + "\n"


def _table_row(r: tuple, widths: list[int]) -> str:
    return " | ".join(_cell(v).ljust(w) for v, w in zip(r, widths)) + "\n"


# ---- build (pipelines/build.py) --------------------------------------------------------------------

def _say(msg: str) -> None:
    print(msg, flush=True)


def cmd_build(args: argparse.Namespace) -> int:
    from pipelines.build import cmd_build as run

    return run(args)


def __getattr__(name: str):   # the build's helpers, where tests and older callers look for them
    if name in ("_download_retries", "_job_chunks", "run_job", "prepare_dagster_home", "CODE_LOCATION", "CODE_MODULE"):
        from pipelines import build

        return getattr(build, name)
    raise AttributeError(name)


# ---- entry point ---------------------------------------------------------------------------------

def _cluster_cli():
    from pipelines import cluster_cli

    return cluster_cli


def _release_cli():
    from pipelines import release_cli

    return release_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emoforge", description="Build emotion-recognition image datasets.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="materialize assets headlessly")
    b.add_argument("--config", help="YAML configuration file")
    b.add_argument("--data-dir", help="data directory (default: $EMOFORGE_HOME, the config's data_dir, ./data)")
    b.add_argument("--select", help="Dagster asset selection, e.g. 'group:acquisition' or 'unique_images+'")
    b.add_argument("--demo", action="store_true", help="the embedded demo: generated corpus on a local server")
    b.add_argument("--rebuild", action="store_true", help="rebuild scrape batches already materialized and run the global stages "
                                                             "whose inputs did not change (a plain build leaves those out)")
    b.add_argument("--max-batches", type=int, default=None, help="build at most the first N planned batches")
    b.add_argument("--cluster", metavar="WORKSPACE",
                   help="submit the runs to the Dagster deployment this workspace file names (code server, "
                        "daemon, Celery workers; DAGSTER_HOME is its instance) instead of running them here")
    b.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="Dagster log level on the console (default INFO: progress and warnings)")
    b.set_defaults(func=cmd_build)
    s = sub.add_parser("sql", help="run SQL on the warehouse (read-only)")
    s.add_argument("--data-dir", help="data directory (default: $EMOFORGE_HOME or ./data)")
    s.add_argument("--format", choices=["table", "csv", "json"], default="table")
    s.add_argument("--object-store", metavar="URL",
                   help="query the tables published to object storage (s3://bucket/prefix) instead of the data directory")
    s.add_argument("query", help="the SQL to run")
    s.set_defaults(func=cmd_sql)
    d = sub.add_parser("demo-server", help="serve a demo build's corpus until stopped (for cluster builds)")
    d.add_argument("--data-dir", help="data directory (default: $EMOFORGE_HOME or ./data)")
    d.add_argument("--config", help="YAML configuration layered over the demo settings (e.g. the port)")
    d.set_defaults(func=lambda a: _cluster_cli().cmd_demo_server(a))
    pb = sub.add_parser("publish", help="copy the data directory's tables, blobs and catalog to object storage")
    pb.add_argument("--data-dir", help="data directory (default: $EMOFORGE_HOME or ./data)")
    pb.add_argument("--to", help="object store URL, e.g. s3://bucket/prefix (default: $EMOFORGE_OBJECT_STORE)")
    pb.set_defaults(func=lambda a: _cluster_cli().cmd_publish(a))
    r = sub.add_parser("release", help="freeze the warehouse into a versioned release (and export it)")
    r.add_argument("--data-dir", help="data directory (default: $EMOFORGE_HOME, the config's data_dir, ./data)")
    r.add_argument("--config", help="the YAML configuration the data was built with (recorded in the release)")
    r.add_argument("--demo", action="store_true", help="the data was built with --demo")
    r.add_argument("--name", required=True, help="release name, e.g. findingemo-rebuild")
    r.add_argument("--version", required=True, help="release version, e.g. 1.0.0 (a release never changes)")
    r.add_argument("--format", action="append", choices=["hf", "webdataset"],
                   help="also export as a Hugging Face dataset and/or WebDataset shards (repeatable)")
    r.set_defaults(func=lambda a: _release_cli().cmd_release(a))
    v = sub.add_parser("verify-release", help="check a release folder against its manifest")
    v.add_argument("path", help="the release folder (…/releases/<name>/<version>)")
    v.set_defaults(func=lambda a: _release_cli().cmd_verify_release(a))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
