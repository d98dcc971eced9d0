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


