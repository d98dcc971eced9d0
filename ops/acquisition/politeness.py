"""Politeness of the downloader (ops.acquisition.download): Retry-After parsing (seconds or an HTTP
date) and the per-host gate: at most ``per_host`` simultaneous requests per host and a per-host "not
before" time that a 429/503 sets for the whole host.
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from datetime import datetime, timezone

# ---------------------------------------------------------------------------------------------
# Retry-After and backoff (politeness)
# ---------------------------------------------------------------------------------------------
def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date); None if absent/bad."""
    if value is None:
        return None
    v = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", v):
        return float(v)
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


class _Stopped(Exception):
    """The run is being abandoned (interrupt): a worker stops waiting and exits."""


class _HostGate:
    """Politeness for one host: a semaphore of ``per_host`` slots and a "not before" time.

    A 429/503 moves "not before" forward; every request to the host, from any worker, waits for
    it before taking a slot.
    """

    def __init__(self, slots: int):
        self._sem = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._not_before = 0.0

    def pause_until(self, t: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, t)

    def acquire(self, stop: threading.Event, until: float | None = None) -> bool:
        """Take a slot once the host is not paused; False if that cannot happen before the
        monotonic time ``until`` (a URL's overall deadline), without a slot then."""
        while True:
            now = time.monotonic()
            wait = self._not_before - now
            if wait > 0:
                if until is not None and self._not_before >= until:
                    return False
                if stop.wait(wait):
                    raise _Stopped
                continue
            while not self._sem.acquire(timeout=0.25 if until is None else max(0.0, min(0.25, until - now))):
                if stop.is_set():
                    raise _Stopped
                now = time.monotonic()
                if until is not None and now >= until:
                    return False
            if time.monotonic() >= self._not_before:
                return True
            self._sem.release()  # paused while we waited for the slot: wait again

    def release(self) -> None:
        self._sem.release()




# ---------------------------------------------------------------------------------------------
# The same gate shared by every process of a cluster (Redis)
# ---------------------------------------------------------------------------------------------
# KEYS: the host's slot set (token -> lease expiry, server ms), its "not before" (server ms)
# ARGV: slots, lease ms, token. Returns {1, 0} with a slot, {0, ms to wait} when the host is paused,
# {0, 0} when every slot is taken. Time is Redis's own clock, the same for every client.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nb = tonumber(redis.call('GET', KEYS[2]) or '0')
if nb > now then return {0, nb - now} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return {1, 0}
end
return {0, 0}
"""
# KEYS: the host's "not before"; ARGV: seconds from now. Only ever moves forward.
_PAUSE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want = now + math.floor(tonumber(ARGV[1]) * 1000)
local nb = tonumber(redis.call('GET', KEYS[1]) or '0')
if want > nb then redis.call('SET', KEYS[1], want, 'PX', math.max(1, want - now) + 1000) end
return want
"""


class SharedHostGate:
    """:class:`_HostGate` for a whole cluster: the ``per_host`` slots and the host's pause live in
    Redis, so every worker process that downloads from a host shares them (issue 11: the per-host
    limit holds globally). A slot is a lease: if its holder dies (a killed worker), the slot frees
    itself after ``lease_s``, which the downloader sets above its longest request. Waiting for a full
    host polls Redis every ``poll_s`` (there is no cross-process event to wait on)."""

    def __init__(self, client, host: str, slots: int, lease_s: float, prefix: str = "emoforge:host:",
                 poll_s: float = 0.05):
        import uuid

        self._r = client
        self._keys = [f"{prefix}{host}:slots", f"{prefix}{host}:not_before"]
        self._slots, self._lease_ms, self._poll = int(slots), max(1, int(lease_s * 1000)), poll_s
        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._pause = client.register_script(_PAUSE_LUA)
        self._local = threading.local()
        self._uuid = uuid.uuid4

    def pause_until(self, t: float) -> None:
        self._pause(keys=self._keys[1:], args=[max(0.0, t - time.monotonic())])

    def acquire(self, stop: threading.Event, until: float | None = None) -> bool:
        token = self._uuid().hex
        while True:
            got, wait_ms = self._acquire(keys=self._keys, args=[self._slots, self._lease_ms, token])
            if got:
                self._local.__dict__.setdefault("tokens", []).append(token)
                return True
            now = time.monotonic()
            wait = wait_ms / 1000 if wait_ms else self._poll
            if until is not None and now + (wait if wait_ms else 0) >= until:
                return False
            if stop.wait(min(wait, until - now) if until is not None else wait):
                raise _Stopped

    def release(self) -> None:
        tokens = self._local.__dict__.get("tokens") or []
        if tokens:
            self._r.zrem(self._keys[0], tokens.pop())


def shared_gate_factory(url: str, slots: int, lease_s: float):
    """``host -> SharedHostGate`` over the Redis at ``url`` (redis://host:port/db)."""
    try:
        import redis
    except ImportError as e:  # the optional [cluster] dependencies
        raise RuntimeError(f"download.shared_limiter {url!r} needs the redis package (pip install 'emoforge[cluster]')") from e
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    return lambda host: SharedHostGate(client, host, slots, lease_s)
