"""The demo's local web: a search endpoint and image hosts with the real web's faults.

``DemoServer`` serves a corpus built by :mod:`ops.demo.corpus` on 127.0.0.1: ``GET /search?q=&max_results=``
answers with ddgs-shaped result dicts; image routes add delays, stalls, resets, 429s, redirect chains
and loops, redirects to a private address or another scheme, chunked bodies without a length.
Plain Python (no Dagster); ``python -m ops.demo.server --serve DIR`` builds and serves a corpus by hand.
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable
from urllib.parse import parse_qs, quote, urlsplit

from ops.demo.corpus import (
    BLOCKED_REDIRECT_TARGET, DEMO_QUERIES, RETRY_AFTER_SECONDS, STALL_SECONDS, DemoEntry, build_corpus,
)

# ---- the server -----------------------------------------------------------------------------------

_CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                  ".bin": "application/octet-stream"}


def _titles(e: DemoEntry) -> str:
    emotion, people, setting = e.query.split(" ", 2)
    forms = (
        f"{emotion} {people} at a {setting}",
        f"{setting.capitalize()}: {people} looking {emotion.lower()}",
        f"Photo of {emotion.lower()} {people} ({setting})",
        f"{emotion} {people} - {setting} photos",
    )
    return forms[(e.rank + len(e.name)) % len(forms)]


class _DemoHTTPServer(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True       # a stalled handler never keeps the process alive
    block_on_close = False      # server_close() does not wait for handler threads
    allow_reuse_address = True

    def __init__(self, addr, handler, demo: "DemoServer"):
        self.demo = demo
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def server_bind(self):
        # HTTPServer.server_bind would look the host name up (getfqdn): no lookups here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler blocked on its socket (idle keep-alive, slow client)."""
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):  # clients hanging up are routine here
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, like real hosts
    server_version = "emoforge-demo/1"
    timeout = 5                     # an idle keep-alive connection is dropped after 5 s
    server: _DemoHTTPServer

    def log_message(self, format, *args):  # quiet
        pass

    def version_string(self) -> str:
        return self.server_version

    # -- plumbing

    @property
    def demo(self) -> "DemoServer":
        return self.server.demo

    def _send(self, code: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.command == "HEAD" or not body:
            self._done()
            self.end_headers()
            return
        self.end_headers()
        self.wfile.write(body[:-1])
        self._done()              # before the last byte: the client cannot have finished (see _done)
        self.wfile.write(body[-1:])

    def _redirect(self, code: int, location: str) -> None:
        self._send(code, f"Moved: {location}\n".encode(), headers={"Location": location})

    def _file(self, name: str) -> Path | None:
        if name not in self.demo._files:
            return None
        p = self.demo.corpus_dir / name
        return p if p.is_file() else None

    def _serve_file(self, name: str, chunked: bool = False) -> None:
        p = self._file(name)
        if p is None:
            self._send(404, b"Not Found\n")
            return
        data = p.read_bytes()
        # The type goes by the extension, as on many real servers: HTML or WebP saved as .jpg
        # goes out as image/jpeg, a .bin download as application/octet-stream.
        ctype = _CONTENT_TYPES.get(p.suffix.lower(), "application/octet-stream")
        if not chunked:
            self._send(200, data, ctype, {"Cache-Control": "max-age=86400"})
            return
        # Streamed without Content-Length: the size is known only by counting the bytes.
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        if self.command == "HEAD":
            self._done()
            self.end_headers()
            return
        self.end_headers()
        for i in range(0, len(data), 65536):
            chunk = data[i:i + 65536]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r")
        self._done()
        self.wfile.write(b"\n")

    def _done(self) -> None:
        """This request stops counting as in flight (DemoServer.stats). Called just before the
        response's last byte: a client frees its per-host slot only after it has read that byte, so a
        request that another worker sends on the freed slot always finds this one already counted
        out. Counting out after the last write (in do_GET's ``finally``) let such a request arrive
        while this thread had not yet run, and showed 3 in flight with 2 slots on a loaded machine."""
        if getattr(self, "_counted", False):
            self._counted = False
            self.demo._leave()

    def _wait(self, seconds: float) -> bool:
        """Sleep, unless the server is stopping; True if it is."""
        return self.demo._stopping.wait(seconds)

    # -- routes

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.demo._log(self.command, self.path)
        # a stalled response outlives the client, which gives up (timeout) and frees its slot: the
        # host keeps answering nobody, so it is not a request the client holds
        self._counted = not self.path.startswith(("/search", "/__emoforge/", "/stall/"))
        if self._counted:
            self.demo._enter()
        try:
            self._route()
        except (ConnectionError, socket.timeout, OSError):
            self.close_connection = True
        finally:
            self._done()          # responses that did not count out before their last byte

    def _route(self) -> None:
        split = urlsplit(self.path)
        parts = [p for p in split.path.split("/") if p]
        head = parts[0] if parts else ""
        if split.path == "/search":
            return self._search(split.query)
        if split.path == IDENTITY_PATH:
            return self._send(200, json.dumps(self.demo.identity).encode(), "application/json")
        if split.path == STATS_PATH:
            return self._send(200, json.dumps(self.demo.stats()).encode(), "application/json")
        if head == "page" and len(parts) == 2:
            return self._page(parts[1])
        if head == "img" and len(parts) == 2:
            return self._serve_file(parts[1])
        if head == "world" and len(parts) == 3:   # the demo world's images (ops.demo.site)
            return self._serve_file("/".join(parts))
        if head == "stream" and len(parts) == 2:
            return self._serve_file(parts[1], chunked=True)
        if head == "slow" and len(parts) == 3 and parts[1].isdigit():
            if self._wait(min(int(parts[1]), 30_000) / 1000):
                self.close_connection = True
                return
            return self._serve_file(parts[2])
        if head == "stall" and len(parts) == 2:
            # The host accepts the connection and then says nothing for STALL_SECONDS.
            if self._wait(STALL_SECONDS):
                self.close_connection = True
                return
            return self._serve_file(parts[1])
        if head == "once429" and len(parts) == 2:
            if self.demo._first_request(split.path):
                return self._send(429, b"Too Many Requests\n",
                                  headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            return self._serve_file(parts[1])
        if head == "status" and len(parts) == 3 and parts[1].isdigit() and 400 <= int(parts[1]) < 600:
            return self._send(int(parts[1]), f"error {parts[1]}\n".encode())
        if head == "reset":
            # Hang up without a response: the client sees a dropped connection.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if head == "redirect" and len(parts) >= 3:
            return self._redirects(parts[1:])
        return self._send(404, b"Not Found\n")

    def _redirects(self, parts: list[str]) -> None:
        kind, rest = parts[0], parts[1:]
        if kind == "blocked" and len(rest) == 1:
            return self._redirect(302, BLOCKED_REDIRECT_TARGET)
        if kind == "scheme" and len(rest) == 1:
            return self._redirect(302, f"ftp://127.0.0.1/{rest[0]}")
        if kind == "chain" and len(rest) == 1:  # 302 with an absolute Location ...
            return self._redirect(302, f"{self.demo.base_url}/redirect/hop/{rest[0]}")
        if kind == "hop" and len(rest) == 1:    # ... then 301 with a relative one, then the image
            return self._redirect(301, f"/img/{rest[0]}")
        if kind == "loop" and len(rest) == 2 and rest[0].isdigit():
            return self._redirect(302, f"/redirect/loop/{int(rest[0]) + 1}/{rest[1]}")
        return self._send(404, b"Not Found\n")

    def _search(self, query_string: str) -> None:
        qs = parse_qs(query_string)
        q = " ".join((qs.get("q") or [""])[0].split()).lower()
        try:
            limit = int((qs.get("max_results") or ["0"])[0]) or None
            if limit is not None and limit < 0:
                raise ValueError
        except ValueError:
            return self._send(400, b'{"error": "max_results must be a non-negative integer"}',
                              "application/json")
        base = self.demo.base_url
        results = [
            {
                "title": _titles(e),
                "image": e.image_url(base),
                "thumbnail": e.image_url(base),
                "url": f"{base}/page/{quote(e.name)}.html",
                "height": e.reported_height,
                "width": e.reported_width,
                "source": "demo",
            }
            for e in self.demo._by_query.get(q, [])[:limit]
        ]
        self._send(200, json.dumps(results).encode(), "application/json")

    def _page(self, file_name: str) -> None:
        name = file_name[:-5] if file_name.endswith(".html") else file_name
        e = self.demo._by_name.get(name)
        if e is None:
            return self._send(404, b"Not Found\n")
        src = e.image_url(self.demo.base_url)
        body = (f"<!DOCTYPE html>\n<html><head><title>{_titles(e)}</title></head>\n<body>\n"
                f"<h1>{_titles(e)}</h1>\n<img src=\"{src}\" alt=\"{e.query}\">\n</body></html>\n")
        self._send(200, body.encode(), "text/html; charset=utf-8")


IDENTITY_PATH = "/__emoforge/identity"
# what the host saw: image requests served at once (the most so far), for politeness checks
STATS_PATH = "/__emoforge/stats"


def corpus_identity(corpus_dir: Path) -> dict:
    """What a demo server serves: the corpus parameters and the SHA-256 of its manifest. A build
    reuses a server already on its port only if the identity is its own corpus's."""
    import hashlib

    out = {"service": "emoforge-demo"}
    for key, manifest in (("corpus", Path(corpus_dir) / "manifest.json"), ("world", Path(corpus_dir) / "world" / "world.json")):
        data = manifest.read_bytes() if manifest.exists() else b""
        out[key] = {"params": json.loads(data).get("params", {}) if data else None,
                    "manifest_sha256": hashlib.sha256(data).hexdigest() if data else None}
    return out


class DemoServer:
    """The demo's search engine and image hosts on one local port (a context manager)."""

    def __init__(self, corpus_dir: Path, entries: Iterable[DemoEntry], host: str = "127.0.0.1",
                 port: int = 0):
        self.corpus_dir = Path(corpus_dir)
        self.entries = list(entries)
        self.host, self.port = host, port
        self._by_query: dict[str, list[DemoEntry]] = {}
        for e in sorted(self.entries, key=lambda e: (e.query, e.rank)):
            self._by_query.setdefault(" ".join(e.query.split()).lower(), []).append(e)
        self._by_name = {e.name: e for e in self.entries}
        self.identity = corpus_identity(self.corpus_dir)
        self._files = {e.file for e in self.entries if e.file}
        self._log_lock = threading.Lock()
        self._request_log: list[tuple[str, str]] = []
        self._seen_paths: set[str] = set()
        self._in_flight = self._max_in_flight = self._served = 0
        self._stopping = threading.Event()
        self._httpd: _DemoHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the demo server is not running")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    @property
    def request_log(self) -> list[tuple[str, str]]:
        """(method, path with query string) of every request so far, in arrival order (a copy)."""
        with self._log_lock:
            return list(self._request_log)

    def _log(self, method: str, path: str) -> None:
        with self._log_lock:
            self._request_log.append((method, path))

    def _enter(self) -> None:
        with self._log_lock:
            self._in_flight += 1
            self._served += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._log_lock:
            self._in_flight -= 1

    def stats(self) -> dict:
        """Image requests (everything but search, these endpoints and stalled responses, which the
        client abandons): served, in flight now, and the most in flight at once since the start
        (every demo URL is one host, 127.0.0.1)."""
        with self._log_lock:
            return {"served": self._served, "in_flight": self._in_flight, "max_in_flight": self._max_in_flight}

    def _first_request(self, path: str) -> bool:
        with self._log_lock:
            first = path not in self._seen_paths
            self._seen_paths.add(path)
            return first

    def start(self) -> "DemoServer":
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _DemoHTTPServer((self.host, self.port), _Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="emoforge-demo-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly, even with slow or stalled requests in flight (they are cut off)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> "DemoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ops.demo.server", description=__doc__.split("\n")[0])
    ap.add_argument("--serve", metavar="DIR", required=True, help="corpus directory (built if needed)")
    ap.add_argument("--n-images", type=int, default=240)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    entries = build_corpus(Path(args.serve), args.n_images, args.seed)
    print(f"corpus: {len(entries)} entries in {args.serve} ({time.monotonic() - t0:.1f} s)")
    with DemoServer(Path(args.serve), entries, port=args.port) as srv:
        print(f"serving on {srv.base_url}  (try {srv.base_url}/search?q={quote(DEMO_QUERIES[0])})")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping")


if __name__ == "__main__":
    _main()
