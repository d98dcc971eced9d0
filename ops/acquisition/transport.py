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
    """The deadline of one request, fired by the :class:`Watchdog`.

    The watchdog cannot interrupt a thread blocked in ``recv``; it shuts the request's socket down
    instead, which wakes the reader with end-of-file or an error. It must therefore hold the SOCKET
    itself, not only the connection: when a response is read until the connection closes (no
    Content-Length, or ``Connection: close``), ``http.client`` passes the socket to the response
    and sets ``conn.sock = None`` before returning it, so a watchdog that looked at ``conn.sock``
    when it fired found nothing to shut down and a server trickling one byte at a time held the
    worker for as long as it liked (issue 7, item 6). :meth:`attach` is called when the connection
    connects, sends and starts reading the response, and records ``conn.sock`` each time.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.fired = False
        self.done = False
        self._conn: Any = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def attach(self, conn: Any) -> None:
        """Called by the connection when it connects, sends and reads: remember its socket."""
        with self._lock:
            if self.done:
                return
            self._conn = conn
            sock = getattr(conn, "sock", None)
            if sock is not None:
                self._sock = sock
            if self.fired:  # fired before the socket existed: cut it now
                self._kill()

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            self._kill()

    def _kill(self) -> None:
        """Shut the socket down (lock held, so :meth:`finish` cannot return meanwhile and the
        connection cannot go back to the pool and serve another request while it is cut)."""
        sock = self._sock if self._sock is not None else getattr(self._conn, "sock", None)
        if sock is None:
            return
        try:
            # the plain socket's shutdown, also for an SSLSocket (whose own shutdown() would also
            # drop its SSL object under the feet of the reading thread): wakes a blocked recv
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except (OSError, ValueError, TypeError):
            pass

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self._conn = None
            self._sock = None

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
    """Tells the request's deadline about its socket at connect, send and response time."""

    def connect(self) -> None:
        super().connect()
        _attach_deadline(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_deadline(self)  # a kept-alive connection has its socket already
        super().request(*args, **kwargs)

    def getresponse(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        _attach_deadline(self)  # the socket exists now (and the deadline may have fired)
        return super().getresponse(*args, **kwargs)


class _TrackedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _attach_deadline(self)

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
