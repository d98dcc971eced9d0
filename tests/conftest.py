"""Shared fixtures.

- ``local_server``: a scriptable HTTP server on 127.0.0.1, bound to port 0 (helpers.LocalServer).
- ``small_demo_corpus`` / ``demo_corpus``: the demo corpus built once per session (60 images for
  the corpus and server tests; the demo configuration's own size for the builds).
- ``reserved_port``: a loopback port held (bound, not listening) for a server that the code under
  test starts on the port its configuration names, e.g. the demo server of a build: no free-port
  race, since the port is never released while the test runs.
- ``clean_env``: no EMOFORGE_* variable and a private DAGSTER_HOME for tests that run the CLI; any
  variable the CLI exports during the test is restored afterwards.

Waiting helpers (``wait_for``) and row/image builders are plain functions in helpers.py.
"""

from __future__ import annotations

import os
from pathlib import Path

# Under pytest-xdist (`make test-fast`: one worker per core) each worker's torch/OpenMP pool would
# otherwise start one thread per core too, so two workers run four compute threads on two cores and
# every torch op waits at its barriers for a thread that is not scheduled. One compute thread per
# worker, set before anything imports torch or numpy (conftest is imported before the test modules,
# and these lines before its own imports). A serial run (`make test`) keeps the libraries' defaults.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest

from helpers import SMALL_DEMO_N, LocalServer, reserve_port

# variables the CLI or the resources read or export: set-then-delete makes monkeypatch restore them
# (monkeypatch.delenv of an unset variable records nothing, so a value set by the code under test
# would leak into later tests)
_CLI_ENV = ("EMOFORGE_HOME", "EMOFORGE_CONFIG", "EMOFORGE_DEMO", "DAGSTER_HOME")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No EMOFORGE_* variable, DAGSTER_HOME in tmp_path; everything restored after the test."""
    names = set(_CLI_ENV) | {k for k in os.environ if k.startswith("EMOFORGE_")}
    for var in sorted(names):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return monkeypatch


@pytest.fixture
def local_server():
    s = LocalServer()
    yield s
    s.close()


@pytest.fixture(scope="session")
def small_demo_corpus(tmp_path_factory):
    """(directory, entries) of a 60-image demo corpus, seed 7."""
    from ops.demo.corpus import build_corpus

    d = tmp_path_factory.mktemp("demo_small")
    return d, build_corpus(d, n_images=SMALL_DEMO_N, seed=7)


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """(directory, entries) of the corpus the demo configuration builds (its n_images and seed)."""
    from ops.demo.config import demo_config
    from ops.demo.corpus import build_corpus

    demo = demo_config().acquisition.provider.demo
    d = tmp_path_factory.mktemp("demo_corpus")
    return d, build_corpus(d, n_images=demo.n_images, seed=demo.seed)


@pytest.fixture
def demo_server(demo_corpus):
    """A running DemoServer over ``demo_corpus`` (the fault corpus, no world) on a port it bound
    itself; a build whose config names that port and disables the world finds the same corpus there
    (same identity) and reuses the server instead of binding the port."""
    from ops.demo.server import DemoServer

    d, entries = demo_corpus
    with DemoServer(Path(d), entries, host="127.0.0.1", port=0) as srv:
        yield srv


@pytest.fixture
def reserved_port():
    """A loopback port held for a server the code under test starts itself (helpers.reserve_port)."""
    s, port = reserve_port()
    yield port
    s.close()


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory):
    """The full demo (``make demo``: corpus, world, acquisition, dedup, annotations, backbones,
    features, predictors, queue), built once per session through the CLI on a held port, with a
    private DAGSTER_HOME and no EMOFORGE_* variable. Tests read what it wrote; the truth manifest of
    the world is at ``world_dir / "truth"``."""
    import types

    import yaml

    from helpers import reserve_port
    from pipelines.cli import main
    from warehouse.store import Warehouse

    root = tmp_path_factory.mktemp("demo_build")
    data = root / "data"
    sock, port = reserve_port()
    cfg = root / "port.yaml"
    cfg.write_text(yaml.safe_dump({"acquisition": {"provider": {"demo": {"port": port}}}}))
    args = ["--demo", "--config", str(cfg), "--data-dir", str(data)]
    with pytest.MonkeyPatch.context() as mp:
        for var in sorted(set(_CLI_ENV) | {k for k in os.environ if k.startswith("EMOFORGE_")}):
            mp.setenv(var, "")
            mp.delenv(var)
        mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        rc = main(["build", *args])
    assert rc == 0, "the demo build failed (see its output above)"
    wh = Warehouse(data)
    feats = wh.read_table("image_features")
    yield types.SimpleNamespace(data_dir=data, world_dir=data / "state" / "demo_corpus" / "world", args=args,
                                port=port, root=root, n_models=len(wh.models.all()),
                                features_at=feats["computed_at"].max())
    sock.close()


# the cluster tests start PostgreSQL, RabbitMQ, Redis, an S3 server, the Dagster daemon and Celery
# workers (deploy/localcluster.py): `make cluster-test` runs them, with the servers installed
collect_ignore = [] if os.environ.get("EMOFORGE_CLUSTER_TEST") == "1" else ["cluster"]
