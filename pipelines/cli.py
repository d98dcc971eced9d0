"""The ``emoforge`` command line (CONTRACT, DESIGN.md):

    emoforge build [--config FILE] [--data-dir DIR] [--select SELECTION] [--demo]
    emoforge sql [--data-dir DIR] [--format table|csv|json] "SQL"

``build`` materializes assets headlessly with the same definitions ``dagster dev`` shows, one
run per scrape batch for the partitioned assets, and exits 0 only if every selected asset
materialized and every blocking check passed. ``sql`` opens the warehouse read-only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
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
        con = wh.connect()
    except FileNotFoundError as e:
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


# ---- build ---------------------------------------------------------------------------------------

def prepare_dagster_home(data_dir: Path) -> Path:
    """Use DAGSTER_HOME if set, else ``<data_dir>/dagster`` with the repo's dagster.yaml, so that
    CLI builds and ``dagster dev`` (``make ui``) share one persistent instance per data directory."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"])
    else:
        home = data_dir / "dagster"
        os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    src = REPO_ROOT / "dagster.yaml"
    if src.exists() and not (home / "dagster.yaml").exists():
        shutil.copyfile(src, home / "dagster.yaml")
    return home


def _say(msg: str) -> None:
    print(msg, flush=True)


def _phases(defs, selected_keys: set) -> tuple[list, list, list]:
    """Split the selected assets: unpartitioned upstream of batches, partitioned, unpartitioned after."""
    graph = defs.resolve_asset_graph()
    part = {k for k in selected_keys if graph.get(k).partitions_def is not None}
    pre, post = [], []
    for k in selected_keys - part:
        ancestors = graph.get(k).parent_keys
        # walk up: does any ancestor have partitions?
        stack, seen, has_part = list(ancestors), set(), False
        while stack:
            a = stack.pop()
            if a in seen:
                continue
            seen.add(a)
            if graph.get(a).partitions_def is not None:
                has_part = True
                break
            stack.extend(graph.get(a).parent_keys)
        (post if has_part else pre).append(k)
    order = {k: i for i, k in enumerate(graph.toposorted_asset_keys)}
    key = lambda k: order.get(k, 0)  # noqa: E731
    return sorted(pre, key=key), sorted(part, key=key), sorted(post, key=key)


def _report(result, stage_rows: list[dict]) -> tuple[bool, list[str]]:
    """Collect per-asset in/out/dropped figures and failed checks from one run's events."""
    problems: list[str] = []
    for ev in result.get_asset_materialization_events():
        mat = ev.event_specific_data.materialization
        md = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        stage_rows.append({
            "asset": mat.asset_key.to_user_string(), "partition": mat.partition,
            "in": md.get("items_in"), "out": md.get("items_out", md.get("dagster/row_count")),
            "dropped": md.get("dropped") or {},
        })
    for ev in result.all_events:
        if ev.event_type_value == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if not data.passed:
                problems.append(f"check {data.asset_check_key.name} on {data.asset_key.to_user_string()} "
                                f"failed: {data.description}")
        elif ev.event_type_value in ("STEP_FAILURE", "RESOURCE_INIT_FAILURE", "RUN_FAILURE", "ENGINE_EVENT"):
            err = getattr(ev.event_specific_data, "error", None)
            if err is None:
                continue
            while err.cause is not None:  # the user's exception, not Dagster's wrapper
                err = err.cause
            msg = err.message.strip()
            where = f"step {ev.step_key}" if ev.step_key else "run"
            line = f"{where} failed: {msg}"
            if line not in problems:
                problems.append(line)
    if not result.success and not problems:
        problems.append("run failed (see the Dagster log above)")
    return result.success and not problems, problems


def _print_stage(row: dict) -> None:
    part = f" [{row['partition']}]" if row["partition"] else ""
    if row["in"] is not None:
        fig = f"in {row['in']:>6} → out {row['out']:>6}"
    else:
        fig = f"rows {row['out']:>6}" if row["out"] is not None else "done"
    dropped = ", ".join(f"{k}: {v}" for k, v in sorted(row["dropped"].items(), key=lambda kv: -kv[1]) if v)
    _say(f"  {row['asset']:<20}{part:<18} {fig}" + (f"   dropped: {dropped}" if dropped else ""))


def cmd_build(args: argparse.Namespace) -> int:
    from ops.config import ConfigError
    from warehouse.locks import BuildLocked, build_lock

    try:
        from assets.resources import EmoforgeResource

        env = EmoforgeResource.from_env()
        # flags win over the environment; --demo without --config ignores EMOFORGE_CONFIG;
        # --demo with --config layers the file over the demo settings
        emo = EmoforgeResource(
            config_path=str(Path(args.config).resolve()) if args.config else (None if args.demo else env.config_path),
            data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else env.data_dir,
            demo=bool(args.demo or (env.demo and not args.config)),
        )
        settings = emo.settings
        wh = emo.warehouse
    except ConfigError as e:
        print(f"emoforge build: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with build_lock(wh.root, command=" ".join(["emoforge", *sys.argv[1:]])[:300]):
            return _build(args, emo, settings, wh)
    except BuildLocked as e:
        print(f"emoforge build: {e}", file=sys.stderr)
        return EXIT_USAGE


def _build(args: argparse.Namespace, emo, settings, wh) -> int:
    prepare_dagster_home(wh.root)

    from dagster import AssetSelection, DagsterInstance

    from assets.acquisition import scrape_batches
    from assets.resources import DemoWebResource
    from assets.resources import fail_dead_runs
    from pipelines.definitions import JOB_ORDER, build_definitions, job_of

    defs = build_definitions({"emoforge": emo, "demo_web": DemoWebResource(emoforge=emo)})
    graph = defs.resolve_asset_graph()
    try:
        selection = AssetSelection.from_string(args.select) if args.select else AssetSelection.all()
        selected = set(selection.resolve(graph))
    except Exception as e:  # a selection syntax error or an unknown asset
        print(f"emoforge build: invalid --select {args.select!r}: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not selected:
        print(f"emoforge build: --select {args.select!r} matches no asset", file=sys.stderr)
        return EXIT_USAGE
    pre, part, post = _phases(defs, selected)
    instance = DagsterInstance.get()
    stale = fail_dead_runs(instance, wh.root)
    run_config = {"loggers": {"console": {"config": {"log_level": args.log_level}}}}
    plan = settings.acquisition.scrape_plan(wh.url_list_cache_dir())

    _say(f"emoforge build: data directory {wh.root}")
    if stale:
        _say(f"  marked {len(stale)} run(s) left STARTED by a killed build as failed: {', '.join(stale)}")
    try:
        units = plan.size() if part or pre else None
    except Exception as e:  # an unreadable URL list: say so before anything runs
        print(f"emoforge build: cannot plan scrape batches: {e}", file=sys.stderr)
        return EXIT_USAGE
    p = settings.acquisition.provider
    what = (f"{units} URL-list items" if plan.kind == "u" else f"{units} queries") if units is not None else "no scraping"
    _say(f"  provider {p.kind}" + (f" ({p.demo.n_images}-image demo corpus on 127.0.0.1:{p.demo.port})" if p.kind == "demo" else "")
         + f"; {what}; selected: {', '.join(k.to_user_string() for k in [*pre, *part, *post])}")
    t0 = time.monotonic()
    stage_rows: list[dict] = []
    ok_all = True
    problems_all: list[str] = []

    def run(keys: list, partition: str | None, label: str) -> bool:
        nonlocal ok_all
        ok = True
        for job_name, chunk in _job_chunks(keys, graph, job_of, JOB_ORDER):
            _say(f"▶ {label}: {', '.join(k.to_user_string() for k in chunk)} [{job_name}]"
                 if partition is None else f"▶ {label} [{job_name}]")
            result = run_job(defs, job_name, chunk, instance, partition, run_config,
                             {"emoforge/cli": "build", "emoforge/pid": str(os.getpid()), "emoforge/data_dir": str(wh.root)})
            before = len(stage_rows)
            chunk_ok, problems = _report(result, stage_rows)
            for row in stage_rows[before:]:
                _print_stage(row)
            for pr in problems:
                _say(f"  ✗ {pr}")
            problems_all.extend(problems)
            ok &= chunk_ok
            if not chunk_ok:
                break
        ok_all &= ok
        return ok

    if pre and not run(pre, None, "prepare"):
        return _finish(False, wh, stage_rows, problems_all, t0)
    if part:
        known = set(instance.get_dynamic_partitions(scrape_batches.name))
        try:
            planned = plan.batches(sorted(known))
        except Exception as e:
            print(f"emoforge build: cannot plan scrape batches: {e}", file=sys.stderr)
            return EXIT_FAILED
        new = [k for k in planned if k not in known]
        if new:
            instance.add_dynamic_partitions(scrape_batches.name, new)
        if args.max_batches is not None:
            planned = planned[: args.max_batches]
        todo = []
        for k in planned:
            keys = list(part) if args.rebuild or not _batch_complete(wh, plan, k) else \
                [a for a in part if not _materialized(instance, a, k)] or _download_retries(wh, settings, part, k)
            if keys:
                todo.append((k, keys))
        _say(f"  {len(planned)} scrape batches planned, {len(todo)} to build"
             + ("" if args.rebuild else f" ({len(planned) - len(todo)} already built)"))
        for i, (k, keys) in enumerate(todo, 1):
            run(keys, k, f"batch {k} ({i}/{len(todo)})")
    if post and ok_all:
        run(post, None, "global")
    elif post:
        _say("  skipped the global stages: a batch failed (fix it and run the build again)")
    return _finish(ok_all, wh, stage_rows, problems_all, t0)


def run_job(defs, job_name: str, asset_keys: list, instance, partition: str | None, run_config: dict, tags: dict):
    """Run the named job for ``asset_keys`` in this process, recorded in the instance as a run of
    that job of the ``emoforge`` code location (the origin ``dagster dev`` loads from pyproject), so
    the UI links the run to its job and can re-execute it."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run
    from dagster._core.remote_origin import (
        LoadableTargetOrigin, ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin,
    )

    job = defs.resolve_job_def(job_name).get_subset(asset_selection=set(asset_keys))
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=ManagedGrpcPythonEnvCodeLocationOrigin(
                loadable_target_origin=LoadableTargetOrigin(executable_path=sys.executable, module_name=CODE_MODULE,
                                                            working_directory=str(REPO_ROOT)),
                location_name=CODE_LOCATION),
            repository_name="__repository__"),
        job_name=job_name)
    if partition is not None:
        tags = {**tags, "dagster/partition": partition}
    run = instance.create_run_for_job(job_def=job, run_config=run_config, tags=tags,
                                      asset_selection=frozenset(asset_keys), remote_job_origin=origin)
    return execute_run(InMemoryJob(job), run, instance, raise_on_error=False)


CODE_MODULE, CODE_LOCATION = "pipelines.definitions", "emoforge"   # pyproject.toml [tool.dagster]


def _job_chunks(keys: list, graph, job_of, job_order: list[str] | None = None) -> list[tuple[str, list]]:
    """The assets grouped into as few runs of named jobs as the dependencies allow: a topological
    order that stays in one job while any asset of it is ready (ties between jobs: ``job_order``)."""
    keys = list(keys)
    pos = {k: i for i, k in enumerate(keys)}           # keys come in graph (topological) order
    jobs = {k: job_of(k, graph) for k in keys}
    rank = {j: i for i, j in enumerate(job_order or [])}
    selected = set(keys)

    def deps(k):  # selected ancestors, through unselected assets too
        out, stack, seen = set(), list(graph.get(k).parent_keys), set()
        while stack:
            a = stack.pop()
            if a in seen:
                continue
            seen.add(a)
            if a in selected:
                out.add(a)
            else:
                stack.extend(graph.get(a).parent_keys)
        return out

    waiting = {k: deps(k) for k in keys}
    done: set = set()
    out: list[tuple[str, list]] = []
    current = None
    while len(done) < len(keys):
        ready = [k for k in keys if k not in done and waiting[k] <= done]
        same = [k for k in ready if jobs[k] == current]
        if not same:
            current = min((jobs[k] for k in ready), key=lambda j: (rank.get(j, len(rank)), min(pos[k] for k in ready if jobs[k] == j)))
            same = [k for k in ready if jobs[k] == current]
            out.append((current, []))
        nxt = min(same, key=pos.get)
        out[-1][1].append(nxt)
        done.add(nxt)
    return out


def _batch_complete(wh, plan, key: str) -> bool:
    """A batch counts as built only if its search log holds every query its key names under the
    current plan (a batch that ran a stale or empty query list is built again)."""
    from ops.acquisition.batches import parse_batch_key

    if not wh.has_table("search_log", key):
        return False
    kind, start, end = parse_batch_key(key)
    if kind != "q":
        return True
    try:
        expected = max(0, min(end, plan.size()) - start)
    except Exception:  # noqa: BLE001 - planning errors are reported elsewhere
        return True
    return len(wh.read_table("search_log", partition=key, columns=["query_id"])) == expected


def _download_retries(wh, settings, part: list, key: str) -> list:
    """The batch's assets from ``downloaded_images`` on when its downloads hold transient failures
    (timeout, connection_error, http_429, http_5xx) tried in fewer builds than
    ``download.max_build_attempts``: the downloader tries those again (issue 7, item 4); the search
    and candidate stages are not run again. Empty otherwise."""
    import pyarrow.parquet as pq

    from ops.acquisition.download import retries_due

    names = [a.to_user_string() for a in part]
    if "downloaded_images" not in names or not wh.has_table("downloaded_images", key):
        return []
    have = pq.read_schema(wh.table_path("downloaded_images", key)).names
    cols = [c for c in ("status", "transient", "build_attempts") if c in have]
    table = wh.read_table("downloaded_images", partition=key, columns=cols)
    if not retries_due(table, settings.acquisition.download.max_build_attempts):
        return []
    return list(part[names.index("downloaded_images"):])


def _materialized(instance, asset_key, partition: str) -> bool:
    return partition in instance.get_materialized_partitions(asset_key)


def _totals(rows: list[dict]) -> list[dict]:
    """Per asset over all batches of this build: items in, out, and the reasons for the rest."""
    out: dict[str, dict] = {}
    for r in rows:
        if not r["partition"]:
            continue
        t = out.setdefault(r["asset"], {"asset": r["asset"], "partition": f"{0} batches", "in": 0, "out": 0,
                                        "dropped": {}, "n": 0})
        t["n"] += 1
        t["partition"] = f"{t['n']} batch{'es' if t['n'] > 1 else ''}"
        t["in"] = None if r["in"] is None or t["in"] is None else t["in"] + int(r["in"])
        t["out"] = (t["out"] or 0) + int(r["out"] or 0)
        for k, v in r["dropped"].items():
            t["dropped"][k] = t["dropped"].get(k, 0) + int(v)
    return list(out.values())


def _finish(ok: bool, wh, rows: list[dict], problems: list[str], t0: float) -> int:
    totals = _totals(rows)
    if totals:
        _say("")
        _say("totals over the batches built:")
        for t in totals:
            _print_stage(t)
    _say("")
    _say(f"{'✓ build succeeded' if ok else '✗ build FAILED'} in {time.monotonic() - t0:.1f} s")
    if problems:
        _say(f"  {len(problems)} problem(s); the first: {problems[0]}")
    if wh.db_path.exists():
        _say(f"warehouse: {wh.db_path}")
        _say(f"  query it:  emoforge sql --data-dir {wh.root} \"select status, count(*) from downloaded_images group by 1\"")
        _say(f"             emoforge sql --data-dir {wh.root} \"select * from emotion8_stats\"")
        _say(f"  or any DuckDB client, read-only: duckdb -readonly {wh.db_path}")
        _say(f"  images:    {wh.blobs.root}  (content-addressed by SHA-256)")
        if wh.has_table("training_runs"):
            _say(f"  baselines: emoforge sql --data-dir {wh.root} \"select * from findingemo_table5\"")
        for name in sorted(p.name for p in (wh.root / "releases").glob("*") if p.is_dir()):
            versions = wh.releases(name)
            if versions:
                from ops.release import version_key

                newest = max(versions, key=version_key)
                _say(f"  release:   {wh.release_path(name, newest)}  (datasheet.md, manifest.json)")
    return EXIT_OK if ok else EXIT_FAILED


# ---- entry point ---------------------------------------------------------------------------------

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
    b.add_argument("--rebuild", action="store_true", help="rebuild scrape batches already materialized")
    b.add_argument("--max-batches", type=int, default=None, help="build at most the first N planned batches")
    b.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="Dagster log level on the console (default INFO: progress and warnings)")
    b.set_defaults(func=cmd_build)
    s = sub.add_parser("sql", help="run SQL on the warehouse (read-only)")
    s.add_argument("--data-dir", help="data directory (default: $EMOFORGE_HOME or ./data)")
    s.add_argument("--format", choices=["table", "csv", "json"], default="table")
    s.add_argument("query", help="the SQL to run")
    s.set_defaults(func=cmd_sql)
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
