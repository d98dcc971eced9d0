"""The per-host download limit shared through Redis (ops.acquisition.politeness.SharedHostGate):
downloaders in different processes, as on two Celery workers, together never hold more than
``per_host`` requests to one host, measured by the host itself. A real redis-server is started on
127.0.0.1 for the module."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy"))

from helpers import LocalServer, make_image, send  # noqa: E402
from localcluster import _port_open, free_port, wait_for  # noqa: E402

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(d)], stdout=subprocess.DEVNULL)
    try:
        wait_for("redis", lambda: _port_open(port), proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _settings(redis_url: str, per_host: int):
    from ops.config.acquisition import DownloadConfig

    return DownloadConfig(concurrency=6, per_host=per_host, connect_timeout=2, read_timeout=5, retries=0,
                          allow_hosts=["127.0.0.1"], shared_limiter=redis_url)


def _download(redis_url: str, per_host: int, urls: list[str], out) -> None:
    """One 'worker': its own process, its own Downloader and Redis connection."""
    import tempfile

    from ops.acquisition.download import DownloadItem, Downloader

    d = Downloader(_settings(redis_url, per_host), min_width=10, max_width=5000, put_blob=lambda b: "x")
    df = d.run([DownloadItem(f"c{i}", (u,)) for i, u in enumerate(urls)], Path(tempfile.mkdtemp()) / "journal")
    out.put(sorted(df["status"].tolist()))


def test_downloaders_in_two_processes_share_the_per_host_limit(redis_url):
    server = LocalServer()
    body = make_image(64, 48)

    def slow(h, n):       # long enough that the two processes' requests overlap
        time.sleep(0.15)
        send(h, 200, body, "image/jpeg")

    urls = []
    for i in range(24):
        server.routes[f"/img{i}.jpg"] = slow
        urls.append(server.url(f"/img{i}.jpg"))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_download, args=(redis_url, 2, urls[k::2], out)) for k in range(2)]
    try:
        for p in procs:
            p.start()
        results = [out.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(timeout=60)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        server.close()
    assert [s for r in results for s in r] == ["ok"] * 24, results
    # each process alone would allow 2 at once (4 together); shared, the host never saw more than 2
    assert server.max_inflight == 2, f"the host saw {server.max_inflight} requests at once"


def test_a_pause_set_by_one_worker_holds_for_the_others(redis_url):
    import redis

    from ops.acquisition.politeness import SharedHostGate

    client = redis.Redis.from_url(redis_url)
    a = SharedHostGate(client, "pause.example", 2, lease_s=30, prefix="t1:")
    b = SharedHostGate(client, "pause.example", 2, lease_s=30, prefix="t1:")
    stop = threading.Event()
    a.pause_until(time.monotonic() + 0.6)       # a 429 with Retry-After seen by worker A
    t0 = time.monotonic()
    assert b.acquire(stop)                      # worker B waits for the pause to end
    assert time.monotonic() - t0 >= 0.5
    b.release()
    a.pause_until(time.monotonic() + 30)
    assert b.acquire(stop, until=time.monotonic() + 0.3) is False   # its URL's deadline comes first


def test_a_dead_holders_slot_frees_itself_after_its_lease(redis_url):
    import redis

    from ops.acquisition.politeness import SharedHostGate

    client = redis.Redis.from_url(redis_url)
    dead = SharedHostGate(client, "lease.example", 1, lease_s=0.5, prefix="t2:")
    alive = SharedHostGate(client, "lease.example", 1, lease_s=0.5, prefix="t2:")
    stop = threading.Event()
    assert dead.acquire(stop)                   # ... and its process is killed without releasing
    assert alive.acquire(stop, until=time.monotonic() + 0.2) is False
    assert alive.acquire(stop, until=time.monotonic() + 5)   # the lease ran out
    alive.release()
    assert client.zcard("t2:lease.example:slots") == 0
