"""Dagster resources: the validated configuration, the warehouse, and the demo web server."""


import os
from contextlib import contextmanager
from functools import cached_property
from typing import Iterator, Optional

import requests
from dagster import ConfigurableResource, InitResourceContext, ResourceDependency
from pydantic import PrivateAttr

from ops.config import EmoforgeConfig, load_config
from ops.demo.config import demo_config, demo_settings, resolve_world_paths
from warehouse.store import Warehouse


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class EmoforgeResource(ConfigurableResource):
    """The build's configuration and data directory.

    Defaults come from the environment, so ``dagster dev`` and the CLI see the same build:
    ``EMOFORGE_CONFIG`` (a YAML file), ``EMOFORGE_DEMO`` (1: the embedded demo configuration) and
    ``EMOFORGE_HOME`` (the data directory; the config file's ``data_dir`` otherwise, else ./data).
    """

    config_path: Optional[str] = None
    data_dir: Optional[str] = None
    demo: bool = False

    @classmethod
    def from_env(cls) -> "EmoforgeResource":
        return cls(
            config_path=os.environ.get("EMOFORGE_CONFIG") or None,
            data_dir=os.environ.get("EMOFORGE_HOME") or None,
            demo=_env_flag("EMOFORGE_DEMO"),
        )

    @cached_property
    def _loaded(self) -> EmoforgeConfig:
        if self.config_path:
            return load_config(self.config_path, base=demo_settings() if self.demo else None)
        return demo_config() if self.demo else EmoforgeConfig()

    @cached_property
    def settings(self) -> EmoforgeConfig:
        """The configuration: the file, layered over the demo settings with ``demo`` (so a file
        that sets only the port changes only the port), the demo settings alone, or the defaults;
        the demo world's generated files located in this data directory."""
        return resolve_world_paths(self._loaded, self.demo_site_dir / "world")

    @cached_property
    def warehouse(self) -> Warehouse:
        data_dir = self.data_dir or self._loaded.data_dir
        return Warehouse(data_dir).ensure()

    @property
    def demo_site_dir(self):
        """Where the demo corpus and world are generated (under the data directory's state)."""
        return self.warehouse.state_path("demo_corpus", "MANIFEST").parent

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator["EmoforgeResource"]:
        """A run holds the data directory's build lock (one build per directory; re-entrant, so
        the CLI, which holds it for the whole build, runs its jobs in process). Sensors and
        schedules evaluate without it."""
        run = getattr(context, "run", None)
        if run is None:
            yield self
            return
        from warehouse.locks import build_lock, held_by

        root = self.warehouse.root
        tags = run.tags or {}
        if held_by(root, build_id=tags.get("emoforge/build_id", ""), run_id=run.run_id):
            # a step on a cluster worker: its coordinating build (or another step of its own run)
            # holds the directory; run under that lock. Dead cluster runs are Dagster's run
            # monitoring's business (deploy/cluster/dagster.yaml), not a pid check on this host.
            yield self
            return
        with build_lock(root, command=f"dagster run {run.run_id} ({run.job_name})", run_id=run.run_id):
            instance = getattr(context, "instance", None)
            if instance is not None and os.environ.get("EMOFORGE_EXECUTOR", "in_process") == "in_process":
                instance.add_run_tags(run.run_id, {"emoforge/pid": str(os.getpid()), "emoforge/data_dir": str(root)})
                for rid in fail_dead_runs(instance, root, exclude=run.run_id):
                    context.log.warning(f"run {rid} was left STARTED by a process that died: marked failed")
            yield self


class DemoWebResource(ConfigurableResource):
    """Serves the embedded demo corpus on 127.0.0.1 for the duration of a run (demo provider only).

    The port is fixed by the config (``acquisition.provider.demo.port``) so that URLs, and with them
    candidate ids, stay the same from one build to the next. If a demo server for the same corpus
    already listens there (another step of the same build), it is reused.
    """

    emoforge: ResourceDependency[EmoforgeResource]
    _server: object = PrivateAttr(default=None)
    _base_url: Optional[str] = PrivateAttr(default=None)

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator["DemoWebResource"]:
        self._server = None
        self._base_url = None
        emo = self.emoforge
        if emo.settings.acquisition.provider.kind != "demo":
            yield self
            return
        from ops.demo.server import DemoServer, corpus_identity
        from ops.demo.site import build_site

        demo = emo.settings.acquisition.provider.demo
        corpus_dir = emo.demo_site_dir
        entries = build_site(corpus_dir, n_images=demo.n_images, seed=demo.seed, world=demo.world).entries
        base = f"http://127.0.0.1:{demo.port}"
        server = DemoServer(corpus_dir, entries, host="127.0.0.1", port=demo.port)
        try:
            server.start()
        except OSError as e:
            theirs = _running_identity(base)
            mine = corpus_identity(corpus_dir)
            if theirs != mine:
                what = ("something that is not an emoforge demo server" if theirs is None else
                        f"an emoforge demo server for another corpus ({theirs.get('corpus', {}).get('params')}, "
                        f"world {theirs.get('world', {}).get('params')}; this build's is "
                        f"{mine.get('corpus', {}).get('params')}, world {mine.get('world', {}).get('params')})")
                raise RuntimeError(
                    f"cannot start the demo server on 127.0.0.1:{demo.port} ({e.strerror}): {what} answers "
                    f"there; stop it or set acquisition.provider.demo.port to a free port"
                ) from None
            context.log.info(f"reusing the demo server already running at {base} (same corpus)")
            self._base_url = base
            yield self
            return
        self._server = server
        self._base_url = server.base_url
        context.log.info(f"demo server started at {server.base_url} ({len(entries)} corpus entries)")
        try:
            yield self
        finally:
            server.stop()
            context.log.info("demo server stopped")

    @property
    def base_url(self) -> str:
        if not getattr(self, "_base_url", None):
            raise RuntimeError("the demo server is not running (acquisition.provider.kind is not 'demo')")
        return self._base_url


def _running_identity(base: str) -> dict | None:
    """The identity a demo server on ``base`` reports, or None if what answers is no demo server."""
    from ops.demo.server import IDENTITY_PATH

    try:
        r = requests.get(base + IDENTITY_PATH, timeout=2)
        data = r.json() if r.ok else None
        return data if isinstance(data, dict) and data.get("service") == "emoforge-demo" else None
    except (requests.RequestException, ValueError):
        return None


def fail_dead_runs(instance, data_dir, exclude: str | None = None) -> list[str]:
    """Runs of this data directory that the instance still shows as started but whose process is
    gone (a build killed with kill -9): marked failed, so the UI does not show them running
    forever. Called while holding the directory's build lock, so no live build of this directory
    can own them. Runs of other data directories (a shared DAGSTER_HOME) are left alone."""
    from dagster import DagsterRunStatus, RunsFilter

    stale = []
    for rec in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING])):
        run = rec.dagster_run
        tags = run.tags or {}
        if run.run_id == exclude or tags.get("emoforge/data_dir") != str(data_dir):
            continue
        pid = tags.get("emoforge/pid", "")
        if pid.isdigit() and _pid_alive(int(pid)):
            continue
        instance.report_run_failed(run, message="the process running this build ended without finishing it "
                                                "(killed?); marked failed by the next build of this data directory")
        stale.append(run.run_id[:8])
    return stale


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
