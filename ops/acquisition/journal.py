"""The downloader's resume journal: append-only JSON lines, fsynced before an item is counted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class Journal:
    """Append-only JSON lines, one per finished candidate, fsynced before the item is counted."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh: Any = None

    def load(self) -> dict[str, dict]:
        """Rows already journaled, by candidate_id (the last one wins). Repairs a torn tail.

        A last line without its newline is a write cut short by a crash: kept if it still parses
        as a complete row (its newline is then added), else cut off the file, so that new lines
        never get glued to it.
        """
        rows: dict[str, dict] = {}
        if not self.path.exists():
            return rows
        data = self.path.read_bytes()
        complete_end = data.rfind(b"\n") + 1
        body, tail = data[:complete_end], data[complete_end:]
        for line in body.splitlines():
            row = self._parse(line)
            if row is not None:
                rows[row["candidate_id"]] = row
        if tail:
            row = self._parse(tail)
            with open(self.path, "r+b") as fh:
                if row is not None:
                    rows[row["candidate_id"]] = row
                    fh.seek(0, os.SEEK_END)
                    fh.write(b"\n")
                else:
                    fh.truncate(complete_end)
                fh.flush()
                os.fsync(fh.fileno())
        return rows

    @staticmethod
    def _parse(line: bytes) -> dict | None:
        try:
            row = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(row, dict) or not isinstance(row.get("candidate_id"), str) \
                or not isinstance(row.get("status"), str):
            return None
        return row

    def append(self, rows: list[dict]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")
        payload = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)
        self._fh.write(payload)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
