"""``emoforge build``: the build's plan (phases, named jobs, batches to (re)build) and its runs,
in this process (the in-process executor) or on a Dagster deployment (``--cluster``,
pipelines/cluster.py); the per-stage figures and the exit code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from pipelines.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, REPO_ROOT  # noqa: F401

from pipelines.cli import _say  # noqa: E402


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
    if getattr(args, "cluster", None) and not Path(args.cluster).is_file():
        print(f"emoforge build: --cluster {args.cluster}: no such workspace file", file=sys.stderr)
        return EXIT_USAGE
    import uuid

    build_id = uuid.uuid4().hex[:12]
    try:
        with build_lock(wh.root, command=" ".join(["emoforge", *sys.argv[1:]])[:300], build_id=build_id):
            return _build(args, emo, settings, wh, build_id)
    except BuildLocked as e:
        print(f"emoforge build: {e}", file=sys.stderr)
        return EXIT_USAGE


def _build(args: argparse.Namespace, emo, settings, wh, build_id: str) -> int:
    prepare_dagster_home(wh.root)

    from dagster import AssetSelection, DagsterInstance, in_process_executor

    from assets.resources import DemoWebResource, fail_dead_runs
    from pipelines.definitions import JOB_ORDER, build_definitions, job_of

    defs = build_definitions({"emoforge": emo, "demo_web": DemoWebResource(emoforge=emo)}, executor=in_process_executor)
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
    runner = None
    if args.cluster:
        from pipelines.cluster import ClusterRunner

        try:
            runner = ClusterRunner(instance, args.cluster, location=CODE_LOCATION).__enter__()
        except Exception as e:  # noqa: BLE001 - an unreachable code server or a bad workspace file
            print(f"emoforge build: --cluster {args.cluster}: {e}", file=sys.stderr)
            return EXIT_USAGE
        _say(f"  cluster: runs go to the queue of the instance at {os.environ.get('DAGSTER_HOME')} "
             f"(code location {CODE_LOCATION!r} of {args.cluster})")
        tags = {"emoforge/cli": "build", "emoforge/build_id": build_id, "emoforge/data_dir": str(wh.root)}
    else:
        tags = {"emoforge/cli": "build", "emoforge/pid": str(os.getpid()), "emoforge/data_dir": str(wh.root)}

    def show(result) -> tuple[bool, list[str]]:
        before = len(stage_rows)
        ok, problems = _report(result, stage_rows)
        for row in stage_rows[before:]:
            _print_stage(row)
        for pr in problems:
            _say(f"  ✗ {pr}")
        problems_all.extend(problems)
        return ok, problems

    # a refresh leaves out the global assets whose inputs did not change (assets/_inputs.py); an explicit
    # --select or --rebuild runs what it names
    skip_unchanged = not args.rebuild and not args.select

    def run(keys: list, partition: str | None, label: str) -> bool:
        nonlocal ok_all
        ok = True
        for job_name, chunk in _job_chunks(keys, graph, job_of, JOB_ORDER):
            if partition is None and skip_unchanged:
                chunk, same = _unchanged(instance, graph, chunk, settings, wh.root)
                if same:
                    _say(f"= {label}: unchanged since they were built, not run: {', '.join(k.to_user_string() for k in same)}")
                if not chunk:
                    continue
            _say(f"▶ {label}: {', '.join(k.to_user_string() for k in chunk)} [{job_name}]"
                 if partition is None else f"▶ {label} [{job_name}]")
            if runner is None:
                result = run_job(defs, job_name, chunk, instance, partition, run_config, tags)
            else:
                rid = runner.submit(job_name, chunk, partition, run_config, tags)
                result = runner.wait([rid])[rid]
            chunk_ok, _ = show(result)
            ok &= chunk_ok
            if not chunk_ok:
                break
        ok_all &= ok
        return ok

    def run_batches_on_cluster(todo: list) -> None:
        """Every batch's run submitted at once: the daemon runs them side by side on the workers."""
        nonlocal ok_all
        label = {}
        for k, keys in todo:
            for job_name, chunk in _job_chunks(keys, graph, job_of, JOB_ORDER):
                label[runner.submit(job_name, chunk, k, run_config, tags)] = f"batch {k} [{job_name}]"
        _say(f"▶ submitted {len(label)} batch runs; waiting for the workers")

        oks = []

        def done(outcome) -> None:
            _say(f"▶ {label[outcome.run_id]}: {outcome.status.value.lower()} (run {outcome.run_id[:8]})")
            oks.append(show(outcome)[0])

        runner.wait(list(label), on_done=done)
        ok_all &= all(oks)
        return all(oks)

    try:
        return _build_phases(args, wh, settings, instance, plan, pre, part, post, run,
                             run_batches_on_cluster if runner is not None else None,
                             lambda ok: _finish(ok and ok_all, wh, stage_rows, problems_all, t0))
    finally:
        if runner is not None:
            runner.__exit__(None, None, None)


def _build_phases(args, wh, settings, instance, plan, pre, part, post, run, run_batches, finish) -> int:
    """The build's order: the global stages the batches need, the scrape batches, the global stages
    after them. ``run`` runs one phase's assets (job by job); ``run_batches``, on a cluster, all
    batches at once. ``finish(ok)`` prints the totals and gives the exit code."""
    from assets.acquisition import scrape_batches

    batches_ok = True
    if pre and not run(pre, None, "prepare"):
        return finish(False)
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
        if run_batches is not None and todo:
            batches_ok = run_batches(todo)
        else:
            for i, (k, keys) in enumerate(todo, 1):
                batches_ok = run(keys, k, f"batch {k} ({i}/{len(todo)})") and batches_ok
    if post and batches_ok:
        run(post, None, "global")
    elif post:
        _say("  skipped the global stages: a batch failed (fix it and run the build again)")
    return finish(True)


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


def _unchanged(instance, graph, chunk: list, settings, root) -> tuple[list, list]:
    """Split one job's assets into those to run and those whose inputs, code, configuration and files
    are those of their latest successful materialization (assets._inputs.skip_reason). An asset runs
    when a parent runs in the same job: what that parent will write is not known yet."""
    from assets._inputs import skip_reason

    run, same = [], []
    for k in chunk:
        node = graph.get(k)
        if set(node.parent_keys) & set(run) or skip_reason(instance, k, node.parent_keys, node.code_version,
                                                            settings, root) is not None:
            run.append(k)
        else:
            same.append(k)
    return run, same


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


