"""Content hashes shared by the steps that decide whether something changed: a file's SHA-256 (annotation
exports, files an asset wrote, a release's manifest, packaged face-model weights) and a hash of the
project's own source (the code part of an asset's inputs key and of a release's version).

models/ keeps its own memoized file hash (models/weights.py ``file_sha256``): the layers point one way
and models/ does not import ops/."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


REPO_ROOT = Path(__file__).resolve().parent.parent


def source_hash(packages: Iterable[str], extra: Iterable[str] = (), root: Path = REPO_ROOT) -> str:
    """16 hex digits over every ``*.py`` of ``packages`` under ``root`` (relative path and bytes, in
    sorted order, so the value is the same on every machine with the same source) and then ``extra``
    strings (library versions, for instance)."""
    h = hashlib.sha256()
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    for s in extra:
        h.update(s.encode())
    return h.hexdigest()[:16]
