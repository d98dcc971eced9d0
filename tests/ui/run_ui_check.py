"""Browser check of the Dagster UI as users meet it (issue 11; run by ``make ui-test`` through
tests/ui/ui_test.sh). Not a pytest module: it needs Debian's Chromium and Playwright, and a demo
build of about five minutes, so the normal suite never collects it (its name does not start with
``test_``).

What it does:

1. takes a demo build: ``--data-dir DIR`` reuses DIR when it already holds one (else builds the demo
   into it, as ``make demo`` does); without ``--data-dir`` it builds the demo into a fresh temporary
   directory with the demo server on a free port (as the suite's ``demo_build`` fixture does) and
   removes it afterwards (``--keep`` keeps it);
2. starts ``dagster dev -h 127.0.0.1 -p <free port>`` on that build with the environment of
   ``make ui`` (DAGSTER_HOME, EMOFORGE_HOME, EMOFORGE_DEMO) and waits until GraphQL lists the assets;
3. drives headless Debian Chromium through Playwright (no browser download) over five pages: the
   asset graph (the global lineage with every group, and the acquisition group with its assets), an
   asset whose latest materialization carries a plot (opened from its metadata; the plot's <img> must
   have loaded), the partitions of the scrape-batch asset, and a run of the build. Each page must show
   the expected names/keys/status and raise no console error and no uncaught page error. Dagster's
   sign-up dialog, shown once per instance, is dismissed with Skip as a user would;
4. writes one full-page screenshot per page and ``report.md`` to tests/ui/results/ (``--results``).

Requests to anything but the local UI are aborted (this machine has no network besides the package
registries) and listed in the report; a console error is ignored only when it is the browser's
report of one of those aborted requests. The script exits 1 with the failed checks listed on any
failure (2 on a setup error) and stops the ``dagster dev`` process group it started, whatever happens.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# assets whose latest materialization carries a picture (markdown with an embedded PNG), in the order
# tried: the first one materialized in the build is the "asset page with its plots"
PLOT_ASSETS = (("findingemo_baselines", "learning_curve"), ("affectnet_baselines", "confusion_matrix"),
               ("kept_images", "contact_sheet"), ("duplicate_groups", "contact_sheet"),
               ("soft_labels", "faces_by_subset"), ("annotation_queue", "next_batch"))
PARTITIONED_ASSET = "downloaded_images"           # the scrape-batch asset of the acquisition group
ACQUISITION_ASSETS = ("search_queries", "search_results", "candidate_urls", "downloaded_images")
GROUPS = ("acquisition", "dedup", "annotations", "models", "features", "faces", "labels", "training", "release")
CODE_LOCATION = "emoforge"   # pyproject.toml [tool.dagster]; the UI's paths name it alone (repository __repository__)
# the UI's own error states (Dagster's wording): none may show on a page
ERROR_STATE = re.compile(r"Something went wrong|An unexpected error|Unexpected GraphQL error|PythonError|Empty graph|"
                         r"\b(?:Asset|Run|Job|Partition|Graph|Code location|Repository|Pipeline|Page) not found")
# the sign-up dialog Dagster shows once per instance on a local UI (dismissed with Skip, as a user would)
NUX_TITLE = "Join the Dagster community"


class CheckFailed(Exception):
    pass


# ---- processes and GraphQL ----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gql(url: str, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
    req = urllib.request.Request(url, data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        out = json.loads(r.read())
    if out.get("errors"):
        raise CheckFailed(f"GraphQL errors: {out['errors']}")
    return out["data"]


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("EMOFORGE_") and k != "DAGSTER_HOME"}


def holds_build(data: Path, dagster_home: Path) -> bool:
    """A finished demo build: the warehouse, a release, and the Dagster instance with its run history."""
    return ((data / "warehouse.duckdb").is_file() and (data / "releases").is_dir()
            and (dagster_home / "dagster.yaml").is_file() and (dagster_home / "history" / "runs.db").is_file())


def build_demo(data: Path, config: Path | None, log_path: Path, say) -> float:
    cmd = [str(BIN / "emoforge"), "build", "--demo", "--data-dir", str(data)]
    if config is not None:
        cmd[3:3] = ["--config", str(config)]
    say(f"building the demo: {' '.join(cmd)} (about 5 minutes on 2 cores; log {log_path})")
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        rc = subprocess.run(cmd, cwd=REPO, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        raise CheckFailed(f"the demo build failed (exit {rc}); last lines of {log_path}:\n  " + "\n  ".join(tail))
    return time.monotonic() - t0


class DagsterDev:
    """``dagster dev`` in its own process group, stopped (SIGTERM, then SIGKILL) by ``stop``."""

    def __init__(self, data: Path, dagster_home: Path, config: Path | None, log_path: Path):
        self.port = free_port()
        env = clean_env()
        env.update(EMOFORGE_HOME=str(data), EMOFORGE_DEMO="1", DAGSTER_HOME=str(dagster_home))
        if config is not None:
            env["EMOFORGE_CONFIG"] = str(config)
        self.log_path = log_path
        self.log = open(log_path, "w")   # noqa: SIM115 - open while the server runs, closed by stop()
        self.proc = subprocess.Popen([str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(self.port)],
                                     cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        self.graphql = self.base + "/graphql"

    def wait_ready(self, timeout: float) -> list[dict]:
        """Poll GraphQL until the code location is loaded and lists its asset nodes (an HTTP server's
        readiness has no event to wait on)."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CheckFailed(f"dagster dev exited with {self.proc.returncode} before it was ready; see {self.log_path}")
            try:
                nodes = gql(self.graphql, "{ assetNodes { assetKey { path } groupName isPartitioned } }", timeout=30)
                if nodes["assetNodes"]:
                    return nodes["assetNodes"]
                last = "no asset nodes yet"
            except (OSError, CheckFailed, ValueError) as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(1)
        raise CheckFailed(f"dagster dev did not list the assets within {timeout:.0f} s (last: {last}); see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
            except ProcessLookupError:
                pass
        # the group may outlive its leader (the daemon, the code server): make sure none is left
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


# ---- what the pages must show (from GraphQL) ----------------------------------------------------

LATEST_MD = """
query($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 1) { runId partition
        metadataEntries { label __typename ... on MarkdownMetadataEntry { mdStr } } } }
  }
}"""

PARTITIONS = """
query($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode { partitionKeys
      assetPartitionStatuses { __typename ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } }
  }
}"""

RUNS = """
{ runsOrError(limit: 200) { __typename ... on Runs { results { runId jobName status
    tags { key value } assetSelection { path } } } } }"""


def plot_asset(url: str) -> tuple[str, str]:
    for asset, label in PLOT_ASSETS:
        mats = gql(url, LATEST_MD, {"path": [asset]})["assetOrError"].get("assetMaterializations") or []
        for e in (mats[0]["metadataEntries"] if mats else []):
            if e["label"] == label and "data:image/png;base64," in (e.get("mdStr") or ""):
                return asset, label
    raise CheckFailed(f"no materialization with a plot among {[a for a, _ in PLOT_ASSETS]}: is the build complete?")


def partitions_of(url: str, asset: str) -> tuple[list[str], list[str]]:
    node = gql(url, PARTITIONS, {"path": [asset]})["assetNodeOrError"]
    keys = node.get("partitionKeys") or []
    st = node.get("assetPartitionStatuses") or {}
    if not keys:
        raise CheckFailed(f"{asset} has no partitions (scrape batches) in the instance")
    return keys, st.get("materializedPartitions") or []


def a_run(url: str, partitioned: str) -> dict:
    """A successful run of the build, preferably one of a scrape batch (it names its partition)."""
    runs = gql(url, RUNS)["runsOrError"]
    if runs["__typename"] != "Runs" or not runs["results"]:
        raise CheckFailed(f"no run in the instance: {runs}")
    ok = [r for r in runs["results"] if r["status"] == "SUCCESS"]
    if not ok:
        raise CheckFailed("no successful run in the instance: " + ", ".join(f"{r['runId'][:8]} {r['status']}"
                                                                            for r in runs["results"][:10]))
    batch = [r for r in ok if any(t["key"] == "dagster/partition" for t in r["tags"])
             and any(p["path"][-1] == partitioned for p in r["assetSelection"] or [])]
    return (batch or ok)[0]


# ---- the browser --------------------------------------------------------------------------------

@dataclass
class PageResult:
    name: str
    url: str
    screenshot: str = ""
    checks: list[tuple[str, bool, str]] = field(default_factory=list)   # (what, ok, detail)
    console_errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks) and not self.console_errors


class Browser:
    def __init__(self, chromium: str, base: str, timeout_ms: int):
        from playwright.sync_api import expect, sync_playwright

        self.base = base
        self.timeout_ms = timeout_ms
        self.profile = tempfile.mkdtemp(prefix="emoforge-ui-chromium-")
        self.pw = sync_playwright().start()
        # a persistent context on a new, empty profile (Playwright's launch() refuses --user-data-dir)
        self.ctx = self.pw.chromium.launch_persistent_context(
            self.profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1000}, timeout=timeout_ms)
        self.ctx.set_default_timeout(timeout_ms)
        self.ctx.set_default_navigation_timeout(timeout_ms)
        expect.set_options(timeout=timeout_ms)   # expect() has its own 5 s default
        self.blocked: list[str] = []
        self.nux_dismissed: list[str] = []
        self.ctx.route("**/*", self._route)

    def _route(self, route) -> None:
        u = urlparse(route.request.url)
        if u.scheme in ("data", "blob") or u.hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:   # no network here but the registries: abort at once, and say so in the report
            self.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    def visit(self, result: PageResult, check, shot: Path, expect_nux: bool = False) -> None:
        """Open ``result.url`` in a new tab, run ``check(page, result)``, take the screenshot, and
        sort the console errors and page errors into real ones and aborted external fetches."""
        from playwright.sync_api import expect

        page = self.ctx.new_page()
        errors: list[tuple[str, str]] = []   # (text, location url)
        page.on("console", lambda m: errors.append((m.text, (m.location or {}).get("url", "")))
                if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append((f"uncaught {e.name}: {e.message}", "")))
        nux = page.get_by_role("dialog").filter(has_text=NUX_TITLE)

        def skip_nux():
            nux.get_by_role("button", name="Skip").click()
            self.nux_dismissed.append(result.url)
        t0 = time.monotonic()
        try:
            page.goto(self.base + result.url, wait_until="domcontentloaded")
            try:
                if expect_nux:   # the instance says it will show (shouldShowNux): wait for it, then Skip
                    def shown_and_skipped() -> str:
                        expect(nux).to_be_visible()
                        skip_nux()
                        expect(nux).to_be_hidden()
                        return ""
                    _check(result, f"'{NUX_TITLE}' dialog shown on the first visit, dismissed with Skip",
                           shown_and_skipped)
                # from then on, whenever the dialog stands in the way of a check, skip it as a user would
                page.add_locator_handler(nux, skip_nux)
                check(page, result)
            finally:
                try:
                    page.screenshot(path=str(shot), full_page=True)
                    result.screenshot = shot.name
                except Exception as e:  # noqa: BLE001 - a screenshot failure is reported, not fatal
                    result.checks.append(("screenshot", False, f"{type(e).__name__}: {e}"))
        except Exception as e:  # noqa: BLE001 - a timeout or assertion on this page fails this page only
            if not any(not ok for _, ok, _ in result.checks):
                result.checks.append(("page loaded and checked", False, f"{type(e).__name__}: {str(e).splitlines()[0]}"))
        finally:
            result.seconds = time.monotonic() - t0
            blocked = set(self.blocked)
            for text, where in errors:
                hit = next((b for b in blocked if b in text or b == where), None)
                if hit is not None:
                    result.ignored.append(f"{text[:200]} (the browser's report of the aborted external fetch {hit})")
                else:
                    result.console_errors.append(f"{text[:500]}" + (f" [at {where}]" if where else ""))
            page.close()

    def close(self) -> None:
        try:
            self.ctx.close()
        finally:
            self.pw.stop()
            shutil.rmtree(self.profile, ignore_errors=True)


def _check(result: PageResult, what: str, fn) -> None:
    """Run one assertion; record it and re-raise so later checks of the page that depend on it stop."""
    try:
        detail = fn()
        result.checks.append((what, True, detail or ""))
    except Exception as e:
        result.checks.append((what, False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
        raise


def _visible(locator) -> str:
    from playwright.sync_api import expect

    expect(locator).to_be_visible()
    return ""


def _no_error_state(page, result: PageResult) -> None:
    def f():
        found = ERROR_STATE.findall(page.locator("body").inner_text())
        if found:
            raise AssertionError(f"the page shows {sorted(set(found))}")
        return ""
    _check(result, "no error state shown (Dagster's error / not-found texts)", f)


def check_global_graph(page, result: PageResult) -> None:
    # the global lineage draws each group as a node (HTML in an SVG foreignObject), edges between them
    for g in GROUPS:
        _check(result, f"group {g!r} drawn in the graph",
               lambda g=g: _visible(page.locator("svg foreignObject").get_by_text(g, exact=True).first))
    _no_error_state(page, result)


def check_group_graph(partitions: int):
    def check(page, result: PageResult) -> None:
        _check(result, "page titled 'acquisition'", lambda: _visible(page.get_by_text("acquisition", exact=True).first))
        _check(result, f"'Asset Group in {CODE_LOCATION}'",
               lambda: _visible(page.get_by_text(re.compile(rf"Asset Group in\s*{CODE_LOCATION}")).first))
        for name in ACQUISITION_ASSETS:
            _check(result, f"asset node {name!r} drawn",
                   lambda name=name: _visible(page.locator("svg foreignObject").get_by_text(name, exact=True).first))
        link = page.locator(f"svg foreignObject a[href*='/assets/{PARTITIONED_ASSET}?view=partitions']")
        _check(result, f"node {PARTITIONED_ASSET!r} shows '{partitions} partitions'",
               lambda: _visible(link.filter(has_text=re.compile(rf"^{partitions} partitions$")).first))
        _no_error_state(page, result)
    return check


def check_plot_asset(asset: str, label: str):
    def check(page, result: PageResult) -> None:

        _check(result, f"asset name {asset!r} in the header",
               lambda: _visible(page.get_by_text(asset, exact=True).first))
        # the latest materialization's metadata table: Dagster shows a markdown entry as a
        # [Show Markdown] link that opens it in a dialog; the figure is an <img> with a data: URI
        row = page.locator("tr").filter(has=page.get_by_text(label, exact=True)).last   # innermost row
        _check(result, f"metadata entry {label!r} listed", lambda: _visible(row))
        link = row.get_by_text("[Show Markdown]")
        _check(result, f"{label!r} offers [Show Markdown]", lambda: _visible(link))
        link.click()
        dialog = page.get_by_role("dialog").filter(has_text=label)
        _check(result, "markdown dialog opened", lambda: _visible(dialog))
        img = dialog.locator("img[src^='data:image/png']").first
        _check(result, "plot <img> visible", lambda: _visible(img))

        def loaded():
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
            w, h = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
            if not (w > 0 and h > 0):
                raise AssertionError(f"naturalWidth x naturalHeight = {w} x {h}")
            return f"naturalWidth x naturalHeight = {w} x {h}"
        _check(result, "plot image loaded (naturalWidth > 0)", loaded)
        _no_error_state(page, result)
    return check


def check_partitions(asset: str, keys: list[str], materialized: list[str]):
    def check(page, result: PageResult) -> None:
        from playwright.sync_api import expect

        _check(result, f"asset name {asset!r} in the header",
               lambda: _visible(page.get_by_text(asset, exact=True).first))
        _check(result, f"'{len(keys)} Partitions Selected'",
               lambda: _visible(page.get_by_text(re.compile(rf"^{len(keys)} Partitions? Selected$", re.IGNORECASE)).first))
        _check(result, f"'Materialized ({len(materialized)})' of {len(keys)}",
               lambda: _visible(page.get_by_text(f"Materialized ({len(materialized)})", exact=True).first))
        _check(result, "'Failed (0)'", lambda: _visible(page.get_by_text("Failed (0)", exact=True).first))
        if set(materialized) != set(keys):
            _check(result, "every scrape batch materialized (GraphQL)", lambda: (_ for _ in ()).throw(
                AssertionError(f"materialized {sorted(materialized)} of {sorted(keys)}")))
        shown = sorted(keys)[:10]   # the list is virtualized (sorted A-Z): only its top is in the page
        for k in shown:
            _check(result, f"partition key {k!r} listed",
                   lambda k=k: _visible(page.get_by_text(k, exact=True).first))
        # a user picks a batch: its latest materialization and metadata show on the right
        last = shown[-1]
        page.get_by_text(last, exact=True).first.click()

        def selected() -> str:
            expect(page.get_by_text("No partition selected")).to_be_hidden()
            _visible(page.get_by_text("Latest materialization", exact=True).first)
            _visible(page.get_by_role("link", name="scrape_batch_job").first)
            row = page.get_by_role("row", name=re.compile(r"^items_out \d+$")).first
            _visible(row)
            return " ".join(row.inner_text().split())
        _check(result, f"selecting {last!r} shows its materialization and metadata", selected)
        _no_error_state(page, result)
    return check


def check_run(run: dict):
    status_word = {"SUCCESS": "Success", "FAILURE": "Failure", "CANCELED": "Canceled"}.get(run["status"], run["status"])
    partition = next((t["value"] for t in run["tags"] if t["key"] == "dagster/partition"), None)

    def check(page, result: PageResult) -> None:
        _check(result, f"run id {run['runId'][:8]} in the title",
               lambda: _visible(page.get_by_text(run["runId"][:8]).first))
        _check(result, f"status {status_word!r} shown", lambda: _visible(page.get_by_text(status_word, exact=True).first))
        _check(result, f"job {run['jobName']!r} named", lambda: _visible(page.get_by_text(run["jobName"]).first))
        if partition:
            _check(result, f"partition {partition!r} shown", lambda: _visible(page.get_by_text(partition).first))
        _check(result, "event log shows RUN_SUCCESS",
               lambda: _visible(page.get_by_text("RUN_SUCCESS", exact=True).first))
        _no_error_state(page, result)
    return check


# ---- report -------------------------------------------------------------------------------------

def write_report(path: Path, started: dt.datetime, results: list[PageResult], context: dict, blocked: list[str],
                 failure: str | None) -> None:
    ok = failure is None and results and all(r.ok for r in results)
    lines = [f"# Dagster UI browser check: {'PASSED' if ok else 'FAILED'}", "",
             f"- started: {started.isoformat(timespec='seconds')}",
             f"- finished: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}"]
    lines += [f"- {k}: {v}" for k, v in context.items()]
    if failure:
        lines += ["", "## Failure", "", "```", failure.rstrip(), "```"]
    for r in results:
        lines += ["", f"## {r.name}: {'ok' if r.ok else 'FAILED'}", "",
                  f"- URL: `{r.url}`", f"- screenshot: `{r.screenshot or '(none)'}`", f"- time: {r.seconds:.1f} s",
                  "", "| check | result | detail |", "| --- | --- | --- |"]
        lines += [f"| {w} | {'ok' if k else 'FAILED'} | {d.replace('|', '/')} |" for w, k, d in r.checks]
        lines += ["", "Console errors: " + ("none" if not r.console_errors else "")]
        lines += [f"- {e}" for e in r.console_errors]
        if r.ignored:
            lines += ["", "Ignored (aborted external fetches; this machine has no network):"]
            lines += [f"- {e}" for e in r.ignored]
    lines += ["", "## External requests aborted", ""]
    lines += ([f"- `{u}`" for u in sorted(set(blocked))] or ["none: every request went to the local UI"])
    path.write_text("\n".join(lines) + "\n")


# ---- main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, help="a demo data directory: reused if it holds a build, else built")
    ap.add_argument("--dagster-home", type=Path, help="the build's DAGSTER_HOME (default: DATA_DIR/dagster)")
    ap.add_argument("--config", type=Path, help="EMOFORGE_CONFIG for the build and the UI (layered over the demo)")
    ap.add_argument("--results", type=Path, default=HERE / "results", help="screenshots and report.md go here")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--page-timeout", type=float, default=120, help="seconds per wait on a page")
    ap.add_argument("--ready-timeout", type=float, default=600, help="seconds for dagster dev to list the assets")
    ap.add_argument("--keep", action="store_true", help="keep the temporary demo build")
    args = ap.parse_args(argv)

    # dagster dev stops its webserver, daemon and code server with SIGINT: were SIGINT ignored here (a
    # background job of a shell ignores it), they would inherit that and dagster dev would wait for them
    # forever on SIGTERM. A handled signal is reset to the default in the programs this script starts.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = dt.datetime.now().astimezone()
    t_start = time.monotonic()
    results_dir = args.results.resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    for old in results_dir.glob("*.png"):
        old.unlink()

    def say(msg: str) -> None:
        print(f"[ui-test {time.monotonic() - t_start:6.1f}s] {msg}", flush=True)

    if not Path(args.chromium).exists():
        print(f"ui-test: no Chromium at {args.chromium} (tests/ui/ui_test.sh installs Debian's chromium)", file=sys.stderr)
        return 2
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("ui-test: Playwright is not installed in this venv (tests/ui/ui_test.sh installs it)", file=sys.stderr)
        return 2

    tmp_root: Path | None = None
    dev: DagsterDev | None = None
    browser: Browser | None = None
    results: list[PageResult] = []
    context: dict = {}
    failure: str | None = None
    try:
        config = args.config.resolve() if args.config else None
        if args.data_dir is None:
            tmp_root = Path(tempfile.mkdtemp(prefix="emoforge-ui-"))
            data = tmp_root / "data"
            config = tmp_root / "port.yaml"   # the demo server on a free port, as the suite's demo_build
            config.write_text(f"acquisition:\n  provider:\n    demo:\n      port: {free_port()}\n")
        else:
            data = args.data_dir.resolve()
        home = (args.dagster_home or data / "dagster").resolve()
        if holds_build(data, home):
            say(f"reusing the demo build in {data} (DAGSTER_HOME {home})")
            context["demo build"] = f"reused {data}"
        else:
            if args.dagster_home:
                raise CheckFailed(f"{data} with DAGSTER_HOME {home} holds no finished build")
            secs = build_demo(data, config, results_dir / "build.log", say)
            say(f"demo built in {secs:.0f} s")
            context["demo build"] = f"built in {secs:.0f} s into {data}"

        say("starting dagster dev")
        t0 = time.monotonic()
        dev = DagsterDev(data, home, config, results_dir / "dagster_dev.log")
        nodes = dev.wait_ready(args.ready_timeout)
        say(f"dagster dev on {dev.base} lists {len(nodes)} assets after {time.monotonic() - t0:.0f} s")
        context["dagster dev"] = f"{dev.base}, ready (assets listed over GraphQL) after {time.monotonic() - t0:.0f} s"
        groups = sorted({n["groupName"] for n in nodes})
        names = {n["assetKey"]["path"][-1] for n in nodes}
        missing = [g for g in GROUPS if g not in groups] + [a for a in ACQUISITION_ASSETS if a not in names]
        if missing:
            raise CheckFailed(f"GraphQL lists no group/asset {missing} (groups: {groups})")

        asset, label = plot_asset(dev.graphql)
        keys, materialized = partitions_of(dev.graphql, PARTITIONED_ASSET)
        run = a_run(dev.graphql, PARTITIONED_ASSET)
        nux = bool(gql(dev.graphql, "{ shouldShowNux }").get("shouldShowNux"))
        context["plot"] = f"{asset} / {label}"
        context["partitions"] = f"{PARTITIONED_ASSET}: {len(keys)} ({', '.join(keys[:6])}{', …' if len(keys) > 6 else ''})"
        context["run"] = f"{run['runId']} ({run['jobName']}, {run['status']})"

        pages = [
            ("Asset graph: global lineage", "/asset-groups", check_global_graph, "1_asset_graph.png"),
            ("Asset graph: the acquisition group", f"/locations/{CODE_LOCATION}/asset-groups/acquisition",
             check_group_graph(len(keys)), "2_acquisition_graph.png"),
            (f"Asset {asset} with its plot {label}", f"/assets/{quote(asset)}",
             check_plot_asset(asset, label), "3_asset_plot.png"),
            (f"Partitions of {PARTITIONED_ASSET}", f"/assets/{quote(PARTITIONED_ASSET)}?view=partitions",
             check_partitions(PARTITIONED_ASSET, keys, materialized), "4_partitions.png"),
            (f"Run {run['runId'][:8]} ({run['jobName']})", f"/runs/{run['runId']}", check_run(run), "5_run.png"),
        ]
        say(f"starting Chromium ({args.chromium}) through Playwright")
        browser = Browser(args.chromium, dev.base, int(args.page_timeout * 1000))
        for i, (name, url, check, shot) in enumerate(pages):
            r = PageResult(name, url)
            results.append(r)
            browser.visit(r, check, results_dir / shot, expect_nux=nux and i == 0)
            say(f"{'ok    ' if r.ok else 'FAILED'} {name} ({r.seconds:.1f} s)"
                + "".join(f"\n    ✗ {w}: {d}" for w, k, d in r.checks if not k)
                + "".join(f"\n    ✗ console error: {e}" for e in r.console_errors))
    except CheckFailed as e:
        failure = str(e)
    except Exception:  # noqa: BLE001 - reported in full, then the exit code says it failed
        failure = traceback.format_exc()
    finally:
        blocked = list(browser.blocked) if browser else []
        if browser is not None:
            context["Dagster's sign-up dialog"] = (f"shown, dismissed with Skip on {', '.join(browser.nux_dismissed)}"
                                                   if browser.nux_dismissed else "not shown")
        if browser is not None:
            try:
                browser.close()
            except Exception as e:  # noqa: BLE001
                print(f"ui-test: closing the browser: {e}", file=sys.stderr)
        if dev is not None:
            dev.stop()
            say("dagster dev stopped")
        if tmp_root is not None:
            if args.keep:
                say(f"kept the demo build in {tmp_root}")
            else:
                shutil.rmtree(tmp_root, ignore_errors=True)
        context["total time"] = f"{time.monotonic() - t_start:.0f} s"
        write_report(results_dir / "report.md", started, results, context, blocked, failure)

    bad = [r for r in results if not r.ok]
    if failure or bad or len(results) < 5:
        print("\nui-test FAILED:", file=sys.stderr)
        if failure:
            print("  " + failure.rstrip().replace("\n", "\n  "), file=sys.stderr)
        for r in bad:
            print(f"  {r.name} ({r.url}):", file=sys.stderr)
            for w, k, d in r.checks:
                if not k:
                    print(f"    ✗ {w}: {d}", file=sys.stderr)
            for e in r.console_errors:
                print(f"    ✗ console error: {e}", file=sys.stderr)
        print(f"  report: {results_dir / 'report.md'}", file=sys.stderr)
        return 1
    say(f"ui-test passed: {len(results)} pages, screenshots and report in {results_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
