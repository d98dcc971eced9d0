"""One build per data directory.

A build (``emoforge build``, or a run launched from the UI or by the sensor) holds an exclusive
``flock`` on ``<data dir>/.build.lock`` for its whole duration; the file names the holder (pid,
command, start time). A second build on the same directory refuses at once with
:class:`BuildLocked`, naming the running one. The lock is released by the kernel when the holder's
process ends, however it ends (kill -9 included), so a crashed build never leaves the directory
locked. Within one process the lock is re-entrant (the CLI holds it and runs its jobs in process).
Readers (``emoforge sql``) take no lock.

On a cluster the steps of one build run in other processes (Celery workers): the coordinating
``emoforge build --cluster`` holds the lock with a ``build_id`` that its runs carry as a tag, and a
step whose build (or run) is the holder proceeds under that lock (:func:`held_by`).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_HELD: dict[str, tuple[int, int]] = {}   # resolved lock path -> (fd, depth), this process
_GUARD = threading.Lock()


class BuildLocked(RuntimeError):
    """Another build holds the data directory."""

    def __init__(self, path: Path, holder: dict):
        self.path = path
        self.holder = holder
        who = ", ".join(f"{k} {v}" for k, v in holder.items() if k in ("pid", "host", "command", "started_at"))
        super().__init__(f"another emoforge build is running on {path.parent} ({who or 'holder unknown'}); "
                         f"wait for it to finish (readers such as `emoforge sql` are not affected)")


def lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / ".build.lock"


def read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


@contextmanager
def build_lock(data_dir: Path, command: str | None = None, **ids: str) -> Iterator[Path]:
    """Hold the data directory's build lock (see the module docstring). ``ids`` (``build_id``,
    ``run_id``) are recorded in the holder file, for :func:`held_by`."""
    path = lock_path(data_dir).resolve()
    key = str(path)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            _HELD[key] = (held[0], held[1] + 1)
            fd = None
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise BuildLocked(path, read_holder(path)) from None
            holder = {"pid": os.getpid(), "host": socket.gethostname(),
                      "command": command or " ".join(sys.argv)[:300],
                      "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **{k: v for k, v in ids.items() if v}}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            _HELD[key] = (fd, 1)
    try:
        yield path
    finally:
        with _GUARD:
            fd0, depth = _HELD[key]
            if depth > 1:
                _HELD[key] = (fd0, depth - 1)
            else:
                del _HELD[key]
                try:
                    os.ftruncate(fd0, 0)
                finally:
                    fcntl.flock(fd0, fcntl.LOCK_UN)
                    os.close(fd0)


def is_locked_elsewhere(data_dir: Path) -> dict | None:
    """The holder if another process holds the lock, else None (no lock taken)."""
    path = lock_path(data_dir).resolve()
    if str(path) in _HELD or not path.exists():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def held_by(data_dir: Path, **ids: str) -> bool:
    """Whether another live process holds the lock for the given build or run (``build_id=...`` or
    ``run_id=...``): a step of that build may then run under it."""
    holder = is_locked_elsewhere(data_dir)
    return bool(holder) and any(v and holder.get(k) == v for k, v in ids.items())
