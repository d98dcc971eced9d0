"""Dagster resources: the validated configuration, the warehouse, and the demo web server."""


import os
from contextlib import contextmanager
from functools import cached_property
from typing import Iterator, Optional

import requests
from dagster import ConfigurableResource, InitResourceContext, ResourceDependency
from pydantic import PrivateAttr

from ops.config import EmoforgeConfig, load_config
from ops.demo.config import demo_config
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
    def settings(self) -> EmoforgeConfig:
        if self.config_path:
            return load_config(self.config_path)
        return demo_config() if self.demo else EmoforgeConfig()

    @cached_property
    def warehouse(self) -> Warehouse:
        data_dir = self.data_dir or self.settings.data_dir
        return Warehouse(data_dir).ensure()


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
        from ops.demo.corpus import build_corpus
        from ops.demo.server import DemoServer

        demo = emo.settings.acquisition.provider.demo
        corpus_dir = emo.warehouse.state_path("demo_corpus", "MANIFEST").parent
        entries = build_corpus(corpus_dir, n_images=demo.n_images, seed=demo.seed)
        base = f"http://127.0.0.1:{demo.port}"
        server = DemoServer(corpus_dir, entries, host="127.0.0.1", port=demo.port)
        try:
            server.start()
        except OSError as e:
            if not _same_demo_running(base):
                raise RuntimeError(
                    f"cannot start the demo server on 127.0.0.1:{demo.port} ({e.strerror}); "
                    f"set acquisition.provider.demo.port to a free port"
                ) from None
            context.log.info(f"reusing the demo server already running at {base}")
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


def _same_demo_running(base: str) -> bool:
    try:
        r = requests.get(f"{base}/search", params={"q": "", "max_results": 1}, timeout=2)
        return r.ok and isinstance(r.json(), list)
    except (requests.RequestException, ValueError):
        return False
