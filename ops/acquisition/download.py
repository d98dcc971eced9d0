"""The image downloader: candidate URLs in, one status row per candidate out (plain Python).

What it implements, and where:

* **Acquisition filter of FindingEmo §2.3.1**: an image is kept only if it really is an image
  (decoded by PIL, whatever the Content-Type says) and its width, after EXIF orientation, is
  strictly between the limits (FindingEmo: 800 < w < 1600). Width, height, pixel count and aspect
  ratio are checked from the header before anything is decoded (``max_height``, ``max_pixels``,
  ``max_aspect_ratio``); a JPEG is then validated by one DCT-scaled decode, and the fast pHash
  (StockEmotion §3.1) of an ok image is computed from that same decode and kept in the row
  (``phash``, ``phash_mode``) so that ``image_hashes`` does not decode it again. See
  :func:`ops.acquisition.images.inspect_image`.
* **Backups**: a candidate has a primary URL and backups (FindingEmo-Light lists several URLs per
  image); they are tried in order until one gives an ok image (:meth:`Downloader._process`).
* **Politeness** (:class:`ops.acquisition.politeness._HostGate`): at most ``per_host`` simultaneous requests per host, and a
  per-host "not before" time: a 429/503 pauses the whole host (Retry-After in seconds or as an
  HTTP date, capped by ``max_retry_after``; a longer one gives up with http_429/http_503).
* **Retries** (:meth:`Downloader._fetch_url`): timeouts, connection errors, 429 and 5xx are
  retried up to ``retries`` times with exponential backoff and full jitter; other 4xx are final.
* **Limits** (:meth:`Downloader._request_once`): connect/read timeouts, a total deadline per
  request (``connect_timeout + 3 * read_timeout``), and an overall deadline per URL
  (``url_deadline``, below), both enforced by a watchdog that shuts the request's socket down, so
  a server trickling bytes cannot hold a worker whatever the shape of its response (Content-Length,
  chunked, or read until the connection closes); ``max_bytes`` (refused early on Content-Length,
  else counted while streaming).
* **Overall deadline per URL** (``url_deadline`` seconds, :meth:`Downloader._fetch_url`): the
  clock starts when the URL's first request is sent and covers everything done for that URL
  afterwards: every request, redirect hop and retry, the backoff sleeps and Retry-After pauses
  between them, and the waits for the host's politeness gate. Each request's own deadline is cut
  to what remains; a retry or a pause that would end past it is not started (the URL ends with
  its last status, and the error says so). Time spent waiting for a free per-host slot before the
  first request does not count (it is the queue, not the URL). Backup URLs of a candidate each
  have their own clock.
* **Retries across builds** (:meth:`Downloader.run`, ``max_build_attempts``): a candidate that
  ended in a transient failure (timeout, connection_error, http_429, http_5xx, on any of its URLs,
  and no ok image) is downloaded again by the next run over the same journal, until it has been
  tried in ``max_build_attempts`` runs; the row's ``build_attempts`` counts them and ``transient``
  says whether the failure was transient. Permanent failures (http_404, not_an_image,
  blocked_address, ...) are not retried.
* **SSRF guard** (``ops.acquisition.netguard``): redirects are followed by hand, at most ``max_redirects``, and
  every hop is checked (scheme http/https, every resolved address global unless allow-listed)
  BEFORE any connection. The connection then goes to the checked address (:class:`PinnedAdapter`),
  so DNS rebinding between check and connect cannot redirect it. Environment proxies are ignored.
* **Resume** (:class:`_Journal`): every finished candidate is appended to a JSON-lines journal
  (flushed and fsynced per group of lines) before it is counted; a rerun returns journaled rows
  without downloading them again; a partially written last line is dropped on reload.

The output rows (columns, retry bookkeeping, final statuses) live in
``ops.acquisition.download_rows`` and the politeness gate in ``ops.acquisition.politeness``; both
are re-exported here.

Known limits: only the first checked address of a host is tried (no fallback to the others); a
host's politeness gate is keyed by host name, so two names of one server are two hosts; the TLS
handshake is bounded by the socket timeouts, not by the watchdog; a worker waiting for a paused
host (Retry-After) waits rather than taking another host's item meanwhile; cookies set by one
server stay in that worker's session (they are only ever sent back to the same site).
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urljoin, urlsplit, urlunsplit

import pandas as pd
import requests
import urllib3
from urllib3.exceptions import ReadTimeoutError

from ops.acquisition import statuses as st
from ops.acquisition.images import ImageCheck, ImageLimits, inspect_image  # noqa: F401  (inspect_image: part of this module's API)
from ops.acquisition.journal import Journal
from ops.acquisition.netguard import AllowList, BlockedAddressError, ResolutionError, guard_host
from ops.acquisition.transport import TLS, Deadline, PinnedAdapter, Watchdog, ascii_host, default_port

from ops.acquisition.download_rows import (  # noqa: F401,E402  (rows of this module's output; re-exported)
    CANDIDATE_COLUMNS, COLUMNS, _to_frame, build_attempts, final_statuses, is_transient_row, retries_due, retry_due,
)

# Formats PIL may open. Restricting them keeps PIL from handing PostScript (EPS) to Ghostscript
# and similar surprises: a web image dataset needs no more than these.
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


# ---------------------------------------------------------------------------------------------
# The parameters
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DownloadSettings:
    """The downloader's limits and politeness (``acquisition.download`` of the configuration)."""

    concurrency: int = 8
    per_host: int = 2
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    max_bytes: int = 20_000_000
    retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 60.0        # a longer Retry-After: give up with http_429/503
    max_redirects: int = 5
    user_agent: str = "emoforge/0.1 (+research dataset builder)"
    allow_hosts: tuple[str, ...] = ()    # hosts/IPs/CIDRs exempt from the address guard
    url_deadline: float = 120.0          # overall seconds per URL: requests, redirects, retries, pauses
    max_build_attempts: int = 3          # runs (builds) that may try a transiently failed candidate
    max_height: int | None = 10_000      # header limits, after EXIF orientation (width: min/max_width)
    max_pixels: int | None = 40_000_000
    max_aspect_ratio: float | None = 5.0  # long side / short side
    shared_limiter: str | None = None    # redis://…: per_host holds across every process using it

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow_hosts", tuple(self.allow_hosts))


# ---------------------------------------------------------------------------------------------
# The input
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DownloadItem:
    """One candidate image: its id and its URLs, primary first, then backups."""

    candidate_id: str          # unique per candidate
    urls: tuple[str, ...]      # primary URL then backups, tried in order until one gives an ok image

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):
            raise TypeError("DownloadItem.urls must be a sequence of URLs, not one string")
        object.__setattr__(self, "urls", tuple(self.urls))
        if not self.urls:
            raise ValueError(f"candidate {self.candidate_id!r} has no URL")


from ops.acquisition.politeness import _HostGate, _Stopped, parse_retry_after, shared_gate_factory  # noqa: E402,F401


# ---------------------------------------------------------------------------------------------
# Total deadline per request: one watchdog thread shuts down the socket of an overdue request
# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# The downloader
# ---------------------------------------------------------------------------------------------
@dataclass
class _Hop:
    """The outcome of one HTTP request (one attempt of one hop)."""

    kind: str                       # "body", "redirect", "http", or a failure status
    http_status: int | None = None
    location: str | None = None
    retry_after: float | None = None
    body: bytes | None = None
    nbytes: int | None = None
    content_type: str | None = None
    error: str | None = None


@dataclass
class _UrlResult:
    status: str
    url: str
    final_url: str
    attempts: int = 0
    http_status: int | None = None
    body: bytes | None = None
    nbytes: int | None = None
    content_type: str | None = None
    error: str | None = None


@dataclass
class _Run:
    stop: threading.Event = field(default_factory=threading.Event)
    watchdog: Watchdog = field(default_factory=Watchdog)


class Downloader:
    """Downloads candidates with the politeness, limits and guards described in the module doc.

    ``put_blob(bytes) -> sha256`` stores an ok image's original bytes (content-addressed, e.g.
    ``warehouse.store.BlobStore.put``). ``session_factory()`` may supply the base
    ``requests.Session`` of each worker thread; the downloader always mounts its pinning adapter
    on it for http:// and https:// and switches off ``trust_env`` (environment proxies would
    bypass the address guard). It must return a NEW session on each call (one per worker thread):
    the pinning adapter holds per-thread state.

    ``is_stored(sha256, n_bytes) -> bool``, when given, is asked on a rerun about every ok row of
    the journal: a row whose blob is missing or has the wrong size (a blob store that does not
    fsync each file can lose the last ones in a power cut) is downloaded again instead of being
    trusted. This lets ``put_blob`` skip the per-file fsync, the largest cost after decoding.
    """

    def __init__(self, cfg: DownloadSettings, *, min_width: int, max_width: int,
                 put_blob: Callable[[bytes], str], session_factory: Callable[[], requests.Session] | None = None,
                 is_stored: Callable[[str, int], bool] | None = None):
        self.cfg = cfg
        self.min_width = min_width
        self.max_width = max_width
        self.put_blob = put_blob
        self.is_stored = is_stored
        self.session_factory = session_factory or requests.Session
        self.allow = AllowList.parse(cfg.allow_hosts)
        self.deadline_s = cfg.connect_timeout + 3 * cfg.read_timeout  # per request
        self.url_deadline_s = float(_setting(cfg, "url_deadline"))     # per URL, everything included
        self.limits = ImageLimits(min_width, max_width, _setting(cfg, "max_height"),
                                  _setting(cfg, "max_pixels"), _setting(cfg, "max_aspect_ratio"))
        self._gates: dict = {}
        self._gates_lock = threading.Lock()
        shared = _setting(cfg, "shared_limiter") or os.environ.get("EMOFORGE_HOST_LIMITER") or None
        # a slot's lease outlives the longest request it can cover (the request deadline + margin)
        self._new_gate = (shared_gate_factory(shared, cfg.per_host, self.deadline_s + 30.0) if shared
                          else (lambda host: _HostGate(cfg.per_host)))
        self.shared_limiter = shared
        self._rng = random.Random()
        self.retried = 0  # candidates the last run() downloaded again after a transient failure

    # ---- plumbing ------------------------------------------------------------------------------
    def _gate(self, host: str) -> _HostGate:
        with self._gates_lock:
            g = self._gates.get(host)
            if g is None:
                g = self._gates[host] = self._new_gate(host)
            return g

    def _new_session(self) -> tuple[requests.Session, PinnedAdapter]:
        s = self.session_factory()
        s.trust_env = False
        adapter = PinnedAdapter(pool_connections=16, pool_maxsize=4, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        s.headers.update({
            "User-Agent": self.cfg.user_agent,
            "Accept": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.9,*/*;q=0.5",
            "Accept-Encoding": "identity",  # the original bytes, as the server stores them
        })
        return s, adapter

    def _backoff(self, k: int) -> float:
        """Exponential backoff with full jitter: uniform(0, min(backoff_max, base * 2**k))."""
        return self._rng.uniform(0.0, min(self.cfg.backoff_max, self.cfg.backoff_base * 2 ** k))

    # ---- one request -----------------------------------------------------------------------------
    def _request_once(self, session: requests.Session, url: str, host_header: str, run: _Run,
                      seconds: float | None = None, what: str | None = None) -> _Hop:
        """One GET without following redirects, bounded by timeouts, max_bytes and a deadline of
        ``seconds`` (default: the per-request deadline); ``what`` names it in the error."""
        cfg = self.cfg
        seconds = self.deadline_s if seconds is None else seconds
        what = what or f"total deadline {seconds:g}s"
        deadline = Deadline(seconds)
        run.watchdog.add(deadline)
        TLS.deadline = deadline
        resp = None
        try:
            resp = session.get(url, headers={"Host": host_header}, allow_redirects=False, stream=True,
                               timeout=(cfg.connect_timeout, cfg.read_timeout))
            code = resp.status_code
            ctype = resp.headers.get("Content-Type")
            if deadline.fired:  # the watchdog cut the headers short: what arrived is not to be trusted
                return _Hop(st.TIMEOUT, None, content_type=ctype,
                            error=f"{what} exceeded while reading headers")
            if code in _REDIRECT_CODES and resp.headers.get("Location"):
                return _Hop("redirect", code, location=resp.headers["Location"], content_type=ctype)
            if not 200 <= code < 300:
                return _Hop("http", code, retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                            content_type=ctype, error=f"HTTP {code} {resp.reason or ''}".strip())
            clen = resp.headers.get("Content-Length")
            if clen is not None and clen.strip().isdigit() and int(clen) > cfg.max_bytes:
                return _Hop(st.TOO_LARGE, code, content_type=ctype,
                            error=f"Content-Length {int(clen)} > max_bytes {cfg.max_bytes}")
            if clen is not None and clen.strip().isdigit() and \
                    (resp.headers.get("Content-Encoding") or "identity").strip().lower() == "identity":
                # the common case, cheaply: one read of exactly Content-Length bytes into one bytes
                # object (no chunk loop, no copies; a trickling server is cut by the watchdog)
                n = int(clen)
                body = resp.raw.read(n, decode_content=False) if n else b""
                if deadline.fired:
                    return _Hop(st.TIMEOUT, code, nbytes=len(body), content_type=ctype,
                                error=f"{what} exceeded while reading")
                if len(body) != n:
                    return _Hop(st.CONNECTION_ERROR, code, nbytes=len(body), content_type=ctype,
                                error=f"connection closed after {len(body)} of {n} bytes (Content-Length)")
                resp.raw.release_conn()  # complete: the kept-alive connection goes back to the pool
                return _Hop("body", code, body=body, nbytes=n, content_type=ctype)
            buf = bytearray()
            for chunk in resp.iter_content(_CHUNK):
                buf += chunk
                if len(buf) > cfg.max_bytes:
                    return _Hop(st.TOO_LARGE, code, nbytes=len(buf), content_type=ctype,
                                error=f"body exceeds max_bytes {cfg.max_bytes} (stopped at {len(buf)})")
                if deadline.expired:
                    return _Hop(st.TIMEOUT, code, nbytes=len(buf), content_type=ctype,
                                error=f"{what} exceeded while reading")
            if deadline.fired:  # the stream was cut by the watchdog, not ended by the server
                return _Hop(st.TIMEOUT, code, nbytes=len(buf), content_type=ctype,
                            error=f"{what} exceeded while reading")
            return _Hop("body", code, body=bytes(buf), nbytes=len(buf), content_type=ctype)
        except BlockedAddressError as e:
            return _Hop(st.BLOCKED_ADDRESS, error=str(e))
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as e:
            return _Hop(st.INVALID_URL, error=f"{type(e).__name__}: {e}")
        except requests.exceptions.Timeout as e:
            if deadline.fired:
                return _Hop(st.TIMEOUT, resp.status_code if resp is not None else None, error=f"{what} exceeded")
            return _Hop(st.TIMEOUT, resp.status_code if resp is not None else None, error=_short(e))
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as e:
            # (urllib3's own errors come from the Content-Length read, which bypasses requests)
            code = resp.status_code if resp is not None else None
            if deadline.fired:
                return _Hop(st.TIMEOUT, code, error=f"{what} exceeded")
            if isinstance(e, ReadTimeoutError) or (e.args and isinstance(e.args[0], ReadTimeoutError)):
                return _Hop(st.TIMEOUT, code, error=_short(e))
            return _Hop(st.CONNECTION_ERROR, code, error=_short(e))
        finally:
            TLS.deadline = None
            deadline.finish()
            if resp is not None:
                resp.close()

    # ---- one URL, with its redirects and retries ------------------------------------------------
    def _fetch_url(self, session: requests.Session, adapter: PinnedAdapter, url: str, run: _Run) -> _UrlResult:
        """Fetch one URL: guard every hop, follow redirects by hand, retry with backoff, all within
        the URL's overall deadline (``url_deadline``; see the module doc)."""
        cfg = self.cfg
        res = _UrlResult(status=st.CONNECTION_ERROR, url=url, final_url=url)
        current = url
        hops = 0
        retries_used = 0
        url_end: float | None = None  # monotonic end of the URL's overall deadline (set at its first request)
        over = f"url_deadline {self.url_deadline_s:g}s"
        while True:
            res.final_url = current
            # -- check the hop: scheme, host, port, addresses (before any connection)
            try:
                parts = urlsplit(current)
                scheme = parts.scheme.lower()
                host = parts.hostname
                port = parts.port or default_port(scheme)
            except ValueError as e:
                res.status, res.error = st.INVALID_URL, f"unparseable URL: {e}"
                return res
            if scheme not in ("http", "https"):
                res.status = st.BLOCKED_SCHEME
                res.error = f"scheme {scheme or '(none)'!r} is not http/https"
                return res
            if not host:
                res.status, res.error = st.INVALID_URL, "URL has no host"
                return res
            try:
                host = ascii_host(host)
            except (UnicodeError, ValueError) as e:
                res.status, res.error = st.INVALID_URL, f"host {host!r} is not a valid IDNA name: {e}"
                return res
            try:
                addrs = guard_host(host, port, self.allow)
                resolved: str | None = None
            except BlockedAddressError as e:
                res.status, res.error, res.http_status = st.BLOCKED_ADDRESS, f"{host}: {e}", None
                return res
            except ResolutionError as e:
                addrs, resolved = [], str(e)
            if addrs:
                adapter.pin(scheme, host, port, str(addrs[0]))
                host_header = f"[{host}]" if ":" in host else host
                if parts.port is not None and parts.port != default_port(scheme):
                    host_header += f":{parts.port}"
                gate = self._gate(host)
                if not gate.acquire(run.stop, until=url_end):  # (only once the URL's clock runs)
                    if res.status == st.OK:  # after a redirect: the URL timed out; else its last failure stays
                        res.status = st.TIMEOUT
                    res.error = (f"{over} exceeded while waiting for host {host} (paused or busy)"
                                 + (f"; last: {res.error}" if res.error else ""))
                    return res
                try:
                    now = time.monotonic()
                    if url_end is None:
                        url_end = now + self.url_deadline_s
                    left = url_end - now
                    res.attempts += 1
                    if left < self.deadline_s:  # the URL's deadline comes first
                        hop = self._request_once(session, current, host_header, run, max(left, 0.0), over)
                    else:
                        hop = self._request_once(session, current, host_header, run)
                finally:
                    gate.release()
            else:
                hop = _Hop(st.CONNECTION_ERROR, error=resolved)
            res.http_status = hop.http_status
            res.content_type = hop.content_type
            res.error = hop.error
            res.nbytes = hop.nbytes

            # -- follow a redirect (each hop is checked again at the top of the loop)
            if hop.kind == "redirect":
                hops += 1
                if hops > cfg.max_redirects:
                    res.status = st.TOO_MANY_REDIRECTS
                    res.error = f"more than {cfg.max_redirects} redirects (last: HTTP {hop.http_status} to {hop.location})"
                    return res
                nxt = urlsplit(urljoin(current, hop.location or ""))
                current = urlunsplit((nxt.scheme, nxt.netloc, nxt.path, nxt.query, ""))
                res.status = st.OK  # no failure so far (the gate's give-up above reports a timeout)
                continue
            if hop.kind == "body":
                res.status, res.body = st.OK, hop.body  # bytes in hand; inspect_image decides
                return res

            # -- failure: retry or give up
            status = f"{st.HTTP_PREFIX}{hop.http_status}" if hop.kind == "http" else hop.kind
            res.status = status
            code = hop.http_status if hop.kind == "http" else None
            retryable = hop.kind in (st.TIMEOUT, st.CONNECTION_ERROR) or code == 429 or (code or 0) >= 500
            if not retryable:
                return res
            if code in (429, 503) and hop.retry_after is not None and hop.retry_after > cfg.max_retry_after:
                res.error = (f"{hop.error}; Retry-After {hop.retry_after:g}s exceeds max_retry_after "
                             f"{cfg.max_retry_after:g}s: gave up")
                return res
            if retries_used >= cfg.retries:
                if cfg.retries:
                    res.error = f"{hop.error} (after {cfg.retries} retries)"
                return res
            if code in (429, 503):
                # politeness: pause the whole host, honouring Retry-After when given
                wait = hop.retry_after if hop.retry_after is not None else self._backoff(retries_used)
            else:
                wait = self._backoff(retries_used)
            left = (url_end - time.monotonic()) if url_end is not None else float("inf")
            if wait >= left:  # the retry could not start before the URL's deadline
                res.error = (f"{hop.error}; no retry: waiting {wait:.3g}s would pass {over} "
                             f"({max(left, 0.0):.3g}s left after {res.attempts} requests)")
                return res
            if code in (429, 503):
                self._gate(host).pause_until(time.monotonic() + wait)
            elif run.stop.wait(wait):
                raise _Stopped
            retries_used += 1

    # ---- one candidate --------------------------------------------------------------------------
    def _process(self, item: DownloadItem, session: requests.Session, adapter: PinnedAdapter, run: _Run) -> dict:
        """Try the item's URLs in order until one gives an ok image; build its output row."""
        t0 = time.monotonic()
        failures: list[str] = []
        attempts = 0
        transient = False
        row: dict[str, Any] = {}
        for idx, url in enumerate(item.urls):
            r = self._fetch_url(session, adapter, url, run)
            attempts += r.attempts
            transient |= st.is_transient(r.status)
            check = ImageCheck(r.status, error=r.error)
            sha = None
            if r.status == st.OK and r.body is not None:
                body, r.body = r.body, None
                check = inspect_image(body, self.min_width, self.max_width, self.limits)
                if check.status == st.OK:
                    sha = self.put_blob(body)
                del body
            row = {
                "candidate_id": item.candidate_id, "status": check.status, "url": url,
                "final_url": r.final_url, "url_index": idx, "attempts": attempts,
                "http_status": r.http_status, "sha256": sha, "bytes": r.nbytes,
                "width": check.width, "height": check.height, "image_format": check.image_format,
                "content_type": r.content_type, "error": check.error,
                "phash": check.phash, "phash_mode": check.phash_mode,
            }
            if check.status == st.OK:
                break
            failures.append(f"[{idx}] {url}: {check.status}" + (f" ({check.error})" if check.error else ""))
        if failures and (len(failures) > 1 or row["status"] == st.OK):
            row["error"] = " | ".join(failures)
        # retried by a later run (up to max_build_attempts) if no URL gave an image and one failed
        # transiently: the primary's timeout counts even when a backup then answered 404
        row["transient"] = transient and row["status"] != st.OK
        row["elapsed_s"] = round(time.monotonic() - t0, 4)
        row["downloaded_at"] = datetime.now(timezone.utc).isoformat()
        return row

    def _worker(self, work: "queue.Queue[DownloadItem]", results: queue.Queue, run: _Run) -> None:
        session, adapter = self._new_session()
        try:
            while not run.stop.is_set():
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    row = self._process(item, session, adapter, run)
                except _Stopped:
                    return
                except BaseException as e:  # a bug or a failing put_blob: abort the run
                    results.put(e)
                    return
                results.put(row)
        finally:
            session.close()

    # ---- the run --------------------------------------------------------------------------------
    def _still_valid(self, row: dict) -> bool:
        """A journaled row is trusted unless it is ok and its blob is gone or cut short, or it
        failed transiently and may be tried by another run (:func:`retry_due`)."""
        if retry_due(row, _setting(self.cfg, "max_build_attempts")):
            return False
        if self.is_stored is None or row.get("status") != "ok":
            return True
        sha, n = row.get("sha256"), row.get("bytes")
        return isinstance(sha, str) and isinstance(n, int) and self.is_stored(sha, n)

    def run(self, items: Iterable[DownloadItem], journal_path: Path,
            progress: Callable[[int, int, str], None] | None = None) -> pd.DataFrame:
        """Download every item not already in the journal; return one row per item, in order.

        ``progress(done, total, status)`` is called after each newly finished item; ``done``
        counts items already journaled by an earlier run too. An exception raised by ``progress``
        (e.g. KeyboardInterrupt) stops the run: journaled items are kept, in-flight ones are lost.
        """
        items = list(items)
        ids = [it.candidate_id for it in items]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"duplicate candidate_id {dup!r} in the download items")
        journal = Journal(Path(journal_path))
        known = journal.load()
        rows: dict[str, dict] = {cid: known[cid] for cid in ids if cid in known and self._still_valid(known[cid])}
        todo = [it for it in items if it.candidate_id not in rows]
        # runs that tried each candidate before (a row journaled before this column existed: 1)
        tried_before = {it.candidate_id: build_attempts(known[it.candidate_id])
                        for it in todo if it.candidate_id in known}
        self.retried = sum(1 for cid in tried_before if retry_due(known[cid], _setting(self.cfg, "max_build_attempts")))
        total, done = len(items), len(rows)
        if todo:
            run = _Run()
            work: queue.Queue = queue.Queue()
            for it in todo:
                work.put(it)
            results: queue.Queue = queue.Queue()
            threads = [threading.Thread(target=self._worker, args=(work, results, run),
                                        name=f"download-{i}", daemon=True)
                       for i in range(min(self.cfg.concurrency, len(todo)))]
            for t in threads:
                t.start()
            try:
                pending = len(todo)
                while pending:
                    try:
                        batch = [results.get(timeout=0.5)]
                    except queue.Empty:
                        if not any(t.is_alive() for t in threads) and results.empty():
                            raise RuntimeError("download workers exited with items left") from None
                        continue
                    while len(batch) < 256:  # group commit: one fsync for what is ready
                        try:
                            batch.append(results.get_nowait())
                        except queue.Empty:
                            break
                    for r in batch:
                        if isinstance(r, BaseException):
                            raise r
                        r["build_attempts"] = tried_before.get(r["candidate_id"], 0) + 1
                    journal.append(batch)  # durable BEFORE it is counted
                    for r in batch:
                        rows[r["candidate_id"]] = r
                        pending -= 1
                        done += 1
                        if progress is not None:
                            progress(done, total, r["status"])
                for t in threads:
                    t.join()
            finally:
                run.stop.set()
                run.watchdog.close()
                journal.close()
        else:
            journal.close()
        return _to_frame([rows[cid] for cid in ids])


def _setting(cfg: Any, name: str) -> Any:
    """A setting of ``cfg`` (DownloadSettings or the config model), the default if it has none."""
    return getattr(cfg, name, getattr(DownloadSettings, name))


def _short(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}"
    return msg if len(msg) <= 300 else msg[:297] + "..."
