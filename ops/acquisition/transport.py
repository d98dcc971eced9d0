"""HTTP plumbing of the downloader: a total deadline per request, and connections pinned to the
address the guard checked (DNS-rebinding defence, see ``ops.acquisition.netguard``).

* :class:`Deadline` / :class:`Watchdog`: one watchdog thread per run shuts down the socket of an
  overdue request, so a server trickling bytes cannot hold a worker past its deadline.
* :class:`PinnedAdapter`: a requests adapter that connects to the checked IP, never re-resolving.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ops.acquisition.netguard import BlockedAddressError


TLS = threading.local()  # .deadline: the Deadline of the request this worker thread is sending


class Deadline:
    def __init__(self, seconds: float):
        self.expires = time.monotonic() + seconds
        self.fired = False
        self.done = False
        self._conn: Any = None
        self._lock = threading.Lock()

    def attach(self, conn: Any) -> None:
        """Called by the connection when it sends/receives, so the watchdog knows its socket."""
        with self._lock:
            self._conn = conn
            fired = self.fired
        if fired:
            self._kill(conn)

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            conn = self._conn
        if conn is not None:
            self._kill(conn)

    @staticmethod
    def _kill(conn: Any) -> None:
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a recv blocked in another thread
            except OSError:
                pass

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self._conn = None

    @property
    def expired(self) -> bool:
        return self.fired or time.monotonic() >= self.expires


class Watchdog:
    """One thread per run that fires overdue deadlines (instead of a timer thread per request)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="download-watchdog", daemon=True)
        self._thread.start()

    def add(self, d: Deadline) -> None:
        with self._cv:
            heapq.heappush(self._heap, (d.expires, next(self._seq), d))
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    def _loop(self) -> None:
        with self._cv:
            while not self._closed:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    heapq.heappop(self._heap)[2].fire()
                self._cv.wait(self._heap[0][0] - now if self._heap else None)


def _attach_deadline(conn: Any) -> None:
    d = getattr(TLS, "deadline", None)
    if d is not None:
        d.attach(conn)


class _TrackedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_deadline(self)
        super().request(*args, **kwargs)

    def getresponse(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        _attach_deadline(self)  # again: the socket exists now, and the deadline may have fired
        return super().getresponse(*args, **kwargs)


class _TrackedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_deadline(self)
        super().request(*args, **kwargs)

    def getresponse(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        _attach_deadline(self)
        return super().getresponse(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


# ---------------------------------------------------------------------------------------------
# Address pinning (DNS-rebinding defence)
# ---------------------------------------------------------------------------------------------
def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def ascii_host(host: str) -> str:
    """The host as requests will send it: lower case, IDNA-encoded (bücher.de -> xn--bcher-kva.de)."""
    try:
        return host.encode("ascii").decode().lower()
    except UnicodeEncodeError:
        pass
    try:
        return requests.models.PreparedRequest._get_idna_encoded_host(host).lower()
    except Exception:  # noqa: BLE001 - requests raises UnicodeError or its own InvalidURL
        return host.encode("idna").decode("ascii").lower()


class PinnedAdapter(HTTPAdapter):
    """A requests adapter that connects to the address the guard checked, never re-resolving.

    Before each request the downloader calls :meth:`pin` with the (scheme, host, port) of the URL
    and the checked IP. The connection pool is then keyed and connected by that IP; the Host
    header carries the host name, and for HTTPS the SNI name and certificate check use the host
    name (``server_hostname``). A request with no pin fails closed (``BlockedAddressError``).
    """

    def __init__(self, **kwargs: Any):
        self._pins: dict[tuple[str, str, int], str] = {}
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def pin(self, scheme: str, host: str, port: int, ip: str) -> None:
        self._pins[(scheme, host.lower(), port)] = ip

    def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[override]
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        scheme = host_params["scheme"]
        host = (host_params["host"] or "").lower()
        port = host_params["port"] or default_port(scheme)
        ip = self._pins.get((scheme, host, port))
        if ip is None:
            raise BlockedAddressError(f"no checked address for {scheme}://{host}:{port} (not guarded)")
        host_params = dict(host_params, host=ip, port=port)
        if scheme == "https":
            pool_kwargs = dict(pool_kwargs, server_hostname=host)
        return host_params, pool_kwargs
