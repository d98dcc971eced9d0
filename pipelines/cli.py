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

def _format_table(columns: list[str], rows: list[tuple], max_width: int = 60) -> str:
    def cell(v: Any) -> str:
        s = "NULL" if v is None else str(v)
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    body = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(c.ljust(w) for c, w in zip(columns, widths)), line]
    out += [" | ".join(v.ljust(w) for v, w in zip(r, widths)) for r in body]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


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
    import csv

    import duckdb

    from warehouse.store import Warehouse

    wh = Warehouse(args.data_dir)
    try:
        con = wh.connect(read_only=True)
    except FileNotFoundError as e:
        print(f"emoforge sql: {e}", file=sys.stderr)
        return EXIT_USAGE
    except duckdb.Error as e:
        print(f"emoforge sql: cannot open {wh.db_path} read-only: {e}", file=sys.stderr)
        return EXIT_FAILED
    try:
        cur = con.execute(args.query)
        columns = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchall() if columns else []
    except duckdb.Error as e:
        print(f"emoforge sql: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        con.close()
    if args.format == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if v is None else (json.dumps(_jsonable(v)) if isinstance(v, (list, dict)) else v) for v in r])
    elif args.format == "json":
        json.dump([{c: _jsonable(v) for c, v in zip(columns, r)} for r in rows], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(_format_table(columns, rows))
    return EXIT_OK


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
        elif ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error
            while err is not None and err.cause is not None:  # the user's exception, not Dagster's wrapper
                err = err.cause
            msg = err.message.strip() if err else "unknown error"
            problems.append(f"step {ev.step_key} failed: {msg}")
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

    try:
        from assets.resources import EmoforgeResource

        env = EmoforgeResource.from_env()
        # flags win over the environment; --demo without --config ignores EMOFORGE_CONFIG
        emo = EmoforgeResource(
            config_path=str(Path(args.config).resolve()) if args.config else (None if args.demo else env.config_path),
            data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else env.data_dir,
            demo=bool(args.demo or env.demo),
        )
        settings = emo.settings
        wh = emo.warehouse
    except ConfigError as e:
        print(f"emoforge build: {e}", file=sys.stderr)
        return EXIT_USAGE
    prepare_dagster_home(wh.root)

    from dagster import AssetSelection, DagsterInstance, materialize

    from assets.acquisition import planned_batches, scrape_batches
    from assets.resources import DemoWebResource
    from pipelines.definitions import ASSETS, CHECKS, defs

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
    resources = {"emoforge": emo, "demo_web": DemoWebResource(emoforge=emo)}
    instance = DagsterInstance.get()
    run_config = {"loggers": {"console": {"config": {"log_level": args.log_level}}}}
    everything = [*ASSETS, *CHECKS]

    _say(f"emoforge build: data directory {wh.root}")
    _say(f"  provider {settings.acquisition.provider.kind}; selected: "
         f"{', '.join(k.to_user_string() for k in [*pre, *part, *post])}")
    t0 = time.monotonic()
    stage_rows: list[dict] = []
    ok_all = True
    problems_all: list[str] = []

    def run(keys: list, partition: str | None, label: str) -> bool:
        nonlocal ok_all
        _say(f"▶ {label}")
        result = materialize(everything, instance=instance, resources=resources, selection=keys,
                             partition_key=partition, raise_on_error=False, run_config=run_config,
                             tags={"emoforge/cli": "build"})
        before = len(stage_rows)
        ok, problems = _report(result, stage_rows)
        for row in stage_rows[before:]:
            _print_stage(row)
        for p in problems:
            _say(f"  ✗ {p}")
        problems_all.extend(problems)
        ok_all &= ok
        return ok

    if pre and not run(pre, None, "prepare: " + ", ".join(k.to_user_string() for k in pre)):
        return _finish(False, wh, stage_rows, problems_all, t0)
    if part:
        known = set(instance.get_dynamic_partitions(scrape_batches.name))
        try:
            planned = planned_batches(settings, sorted(known))
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
            keys = list(part) if args.rebuild else [a for a in part if not _materialized(instance, a, k)]
            if keys:
                todo.append((k, keys))
        _say(f"  {len(planned)} scrape batches planned, {len(todo)} to build"
             + ("" if args.rebuild else f" ({len(planned) - len(todo)} already built)"))
        for i, (k, keys) in enumerate(todo, 1):
            run(keys, k, f"batch {k} ({i}/{len(todo)})")
    if post and ok_all:
        run(post, None, "global: " + ", ".join(k.to_user_string() for k in post))
    elif post:
        _say("  skipped the global stages: a batch failed (fix it and run the build again)")
    return _finish(ok_all, wh, stage_rows, problems_all, t0)


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
    return EXIT_OK if ok else EXIT_FAILED


# ---- entry point ---------------------------------------------------------------------------------

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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
