"""Users' input files (URL lists, annotation exports): where they are not UTF-8 text.

A decoding error from a CSV reader says "position 45801 of a chunk"; people need the file and the
line. :func:`non_utf8_location` finds the first line that does not decode, reading the file as bytes.
"""

from __future__ import annotations

from pathlib import Path


def non_utf8_location(path: str | Path) -> tuple[int, int, bytes] | None:
    """(line number, byte offset in the file, the offending bytes) of the first non-UTF-8 byte
    sequence, or None if the whole file decodes (a UTF-8 BOM is fine)."""
    offset = 0
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                return lineno, offset + e.start, line[e.start:e.end]
            offset += len(line)
    return None


def describe_non_utf8(path: str | Path) -> str:
    """"not UTF-8 text: line 3002 (byte 45801) has b'\\xe9'; save the file as UTF-8" (or a generic
    message if the file decodes after all)."""
    loc = non_utf8_location(path)
    if loc is None:
        return "not UTF-8 text"
    line, off, bad = loc
    return f"not UTF-8 text: line {line} (byte {off}) has {bad!r}; save the file as UTF-8"
