"""Shared test helpers (plain functions and classes; the fixtures that use them live in conftest.py).

- ``wait_for``: poll a condition instead of sleeping "long enough"; the timeout only guards
  against a hang, so it is generous and never the thing a test measures.
- ``LocalServer`` and the ``send``/``serve``/``redirect`` route helpers: a scriptable HTTP server
  on 127.0.0.1, bound to port 0 by the server itself (the port is read from the bound socket, so
  there is no window in which another process can take it).
- Row and image builders used by several test files: ``annotation_row``/``vote_rows`` (one row of
  the ``annotations`` table), ``make_image`` (small synthetic images), ``noisy_jpeg``.
- ``seed_demo_corpus``: copy an already built demo corpus where a build would generate it.
"""

from __future__ import annotations

import io
import random
import shutil
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

HANG_TIMEOUT = 30.0  # seconds; a guard against a hang, never a performance bound
SMALL_DEMO_N = 60    # the small demo corpus: builds in a few seconds, holds every fault kind


# ---------------------------------------------------------------------------------------------
# waiting on conditions
# ---------------------------------------------------------------------------------------------
def wait_for(predicate: Callable[[], object], timeout: float = HANG_TIMEOUT, interval: float = 0.01,
             message: str | None = None):
    """Poll ``predicate`` until it returns something truthy and return that value.

    Fails the test (AssertionError) if it is still falsy after ``timeout`` seconds; the timeout is
    there to turn a hang into a failure, not to measure anything.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout:g} s: {predicate}")
        time.sleep(interval)


def wait_event(event: threading.Event, timeout: float = HANG_TIMEOUT, message: str | None = None) -> None:
    """``event.wait`` that fails the test instead of returning False."""
    assert event.wait(timeout), message or f"event not set within {timeout:g} s"


def threads_started_during(before: set[threading.Thread]) -> list[threading.Thread]:
    """The threads alive now that were not in ``before`` (a ``set(threading.enumerate())``)."""
    return [t for t in threading.enumerate() if t not in before]


# ---------------------------------------------------------------------------------------------
# a small scriptable HTTP server on 127.0.0.1
# ---------------------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    request_queue_size = 64
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # a client hanging up is not news here
        pass


class LocalServer:
    """Routes: path -> handler(h, n) where n is how many times the path was requested before.

    Bound to port 0 in the constructor (bind, then read the port): no free-port race.
    ``log`` holds (monotonic time, path) per request, ``counts`` requests per path, ``inflight`` the
    requests being handled now and ``max_inflight`` the most at once; ``changed`` is a Condition
    notified whenever one of them changes.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict = {}
        self.log: list[tuple[float, str]] = []
        self.counts: Counter = Counter()
        self.inflight = 0
        self.hosts: list = []
        self.max_inflight = 0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                path = self.path
                with outer.lock:
                    n = outer.counts[path]
                    outer.counts[path] += 1
                    outer.log.append((time.monotonic(), path))
                    outer.hosts.append(self.headers.get("Host"))
                    outer.inflight += 1
                    outer.max_inflight = max(outer.max_inflight, outer.inflight)
                    outer.changed.notify_all()
                try:
                    fn = outer.routes.get(path)
                    if fn is None:
                        send(self, 404, b"not found", "text/plain")
                    else:
                        fn(self, n)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with outer.lock:
                        outer.inflight -= 1
                        outer.changed.notify_all()

        server_cls = _Server if ":" not in host else type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        self.httpd = server_cls((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_until(self, predicate: Callable[["LocalServer"], bool], timeout: float = HANG_TIMEOUT) -> None:
        """Block until ``predicate(self)`` holds (checked under the lock at every request start/end)."""
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self), timeout), \
                f"server condition not met within {timeout:g} s"

    def wrap_tls(self, certfile: str, keyfile: str) -> None:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send(h, code, body=b"", ctype="image/jpeg", headers=None):
    h.send_response(code)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def send_chunked(h, body, ctype="image/jpeg", chunk=1000):
    h.send_response(200)
    h.send_header("Content-Type", ctype)
    h.send_header("Transfer-Encoding", "chunked")
    h.send_header("Connection", "close")
    h.end_headers()
    for i in range(0, len(body), chunk):
        part = body[i:i + chunk]
        h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
    h.wfile.write(b"0\r\n\r\n")
    h.close_connection = True


def serve(body, ctype="image/jpeg", code=200, headers=None):
    return lambda h, n: send(h, code, body, ctype, headers)


def redirect(to, code=302):
    return lambda h, n: send(h, code, b"", "text/plain", {"Location": to})


def reserve_port() -> tuple[socket.socket, int]:
    """A loopback port for a server that the code under test starts (possibly several times) on a
    port named in its configuration, reserved without a free-port race.

    The port is bound (port 0, then read back) by a socket that keeps it and never listens. With
    SO_REUSEADDR on it, a server that also sets SO_REUSEADDR (DemoServer does) can bind and listen
    there; any other bind fails, and the kernel hands it out to nobody else (no ephemeral bind or
    outgoing connection takes a port with a bound socket). Close the socket when done.
    """
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def refused_port() -> tuple[socket.socket, int]:
    """A loopback port where a connection is refused, held by a bound socket that does not listen.

    Keep the returned socket open as long as the port is used (closing it would free the port for
    anyone); a SYN to a bound, non-listening TCP socket is answered with RST on Linux.
    """
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------------------------
def make_image(w, h, fmt="JPEG", noise=False, exif_orientation=None) -> bytes:
    """A w x h image (flat colour, or seeded noise that compresses badly) encoded as ``fmt``."""
    if noise:
        rnd = random.Random(w * 7919 + h)
        img = Image.frombytes("RGB", (w, h), rnd.randbytes(w * h * 3))
    else:
        img = Image.new("RGB", (w, h), (200, 120, 40))
    buf = io.BytesIO()
    kw = {}
    if exif_orientation is not None:
        ex = Image.Exif()
        ex[0x0112] = exif_orientation
        kw["exif"] = ex
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noisy_jpeg(seed: int, width: int = 1000, height: int = 700) -> bytes:
    """A photo-like JPEG (gradient plus noise): distinct perceptual hashes for distinct seeds."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 3), np.float32)
    blob = rng.normal(0, 30, (height, width, 3)).astype(np.float32)
    img = np.clip(base * rng.uniform(0.3, 1.0, 3) + blob, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def annotation_row(image, annotator, e24=None, keep=True, v=None, a=None, amb=None, age=(), q=None,
                   *, e8="derive", source="t", **extra) -> dict:
    """One row of the ``annotations`` table (Plutchik-24 taxonomy); ``emotion8`` is the leaf of
    ``e24`` unless given."""
    from ops.annotations.taxonomy import EMO24_TO_EMO8

    row = {"image_id": image, "annotator_id": annotator, "source": source, "keep": keep,
           "valence": v, "arousal": a, "ambiguity": amb, "emotion24": e24,
           "emotion8": EMO24_TO_EMO8.get(e24) if e8 == "derive" else e8, "emotion": e24,
           "taxonomy": "plutchik24", "age_groups": list(age), "deciding_factors": [], "tags": [],
           "query_emotion": q}
    row.update(extra)
    return row


def vote_rows(image, labels, q=None, start=0) -> list[dict]:
    """One kept annotation per label, by annotators u<start>, u<start+1>, ..."""
    return [annotation_row(image, f"u{start + i}", lab, q=q) for i, lab in enumerate(labels)]


# ---------------------------------------------------------------------------------------------
# the demo corpus
# ---------------------------------------------------------------------------------------------
def demo_corpus_dir(data_dir: Path) -> Path:
    """Where a build with ``data_dir`` keeps the demo corpus (as DemoWebResource computes it)."""
    from warehouse.store import Warehouse

    return Warehouse(data_dir).state_path("demo_corpus", "MANIFEST").parent


def seed_demo_corpus(src: Path, data_dir: Path) -> Path:
    """Copy a built demo corpus into ``data_dir``'s corpus location, so that the build finds it
    intact and does not generate it again; returns that location."""
    dst = demo_corpus_dir(data_dir)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def call_with_hang_guard(fn: Callable[[], object], timeout: float = HANG_TIMEOUT, what: str = "the call"):
    """Run ``fn()`` in a daemon thread and return its result once it has finished (an Event);
    fail the test if it has not finished after ``timeout`` seconds (it is then left running)."""
    done = threading.Event()
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=target, name="hang-guarded-call", daemon=True).start()
    assert done.wait(timeout), f"{what} did not return within {timeout:g} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def demo_server_port(server) -> int:
    """The port a running DemoServer is bound to (it may have been asked for port 0)."""
    from urllib.parse import urlsplit

    return int(urlsplit(server.base_url).port)
