"""Contact sheets: pictures of the data where people would rather look than read (PIL only).

A sheet is a grid of thumbnails, each with a caption and, optionally, a small bar chart (a soft
label). Thumbnails come from the blob store and are cached by content hash (``thumb_path(sha,
size)`` decides where), so drawing the same sheet again decodes nothing. Output is a PNG, byte
identical for the same inputs (no clock, PIL's built-in font).

    near_duplicate_sheet   per near-duplicate group: the representative (framed) and its members
    keep_reject_sheet      kept and rejected images side by side with p_keep
    faces_by_subset_sheet  faces per difficulty subset with their soft labels as bars
    queue_sheet            the annotation queue's next images with why each was chosen
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

BG, FG, FRAME, BAR, BAR_HI = (250, 250, 250), (30, 30, 30), (220, 40, 40), (120, 160, 210), (230, 120, 40)


@dataclass
class Tile:
    sha256: str
    caption: str = ""
    bars: Sequence[float] | None = None      # values in [0, 1]; the largest is highlighted
    framed: bool = False


def thumbnail(sha: str, blob_path: Callable[[str], Path], thumb_path: Callable[[str, int], Path], size: int) -> Image.Image | None:
    """The cached thumbnail of blob ``sha`` (longest side ``size``), made once; None if unreadable."""
    cached = thumb_path(sha, size)
    if cached.exists():
        try:
            with Image.open(cached) as im:
                return im.convert("RGB")
        except OSError:
            pass
    try:
        with Image.open(blob_path(sha)) as im:
            im.draft("RGB", (size, size))
            im = im.convert("RGB")
            im.thumbnail((size, size))
    except (OSError, ValueError):
        return None
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    im.save(tmp, "PNG")
    tmp.replace(cached)
    return im


def sheet(rows: Sequence[tuple[str, Sequence[Tile]]], blob_path, thumb_path, size: int = 96, cols: int = 8,
          title: str = "") -> bytes:
    """A PNG of labelled rows of tiles (each row: a label and up to ``cols`` tiles)."""
    font = ImageFont.load_default()
    cap_h, bar_h, pad, label_w = 12, 18, 4, 110
    has_bars = any(t.bars is not None for _, tiles in rows for t in tiles)
    tile_h = size + cap_h + (bar_h if has_bars else 0)
    lines = []
    for label, tiles in rows:
        tiles = list(tiles)
        for i in range(0, max(len(tiles), 1), cols):
            lines.append((label if i == 0 else "", tiles[i:i + cols]))
    W = label_w + cols * (size + pad) + pad
    H = (16 if title else 0) + len(lines) * (tile_h + pad) + pad
    img = Image.new("RGB", (W, max(H, 20)), BG)
    d = ImageDraw.Draw(img)
    y = pad
    if title:
        d.text((pad, y), title, fill=FG, font=font)
        y += 16
    for label, tiles in lines:
        d.text((pad, y + size // 2 - 6), label[:18], fill=FG, font=font)
        x = label_w
        for t in tiles:
            th = thumbnail(t.sha256, blob_path, thumb_path, size)
            if th is not None:
                img.paste(th, (x + (size - th.width) // 2, y + (size - th.height) // 2))
            else:
                d.text((x + 4, y + size // 2), "unreadable", fill=FRAME, font=font)
            if t.framed:
                d.rectangle([x, y, x + size - 1, y + size - 1], outline=FRAME, width=2)
            d.text((x, y + size), t.caption[: size // 6], fill=FG, font=font)
            if t.bars is not None and len(t.bars):
                n = len(t.bars)
                bw = max(1, (size - 2) // n)
                hi = max(range(n), key=lambda i: t.bars[i])
                base = y + size + cap_h + bar_h - 2
                for i, v in enumerate(t.bars):
                    h = int(round(max(0.0, min(1.0, float(v))) * (bar_h - 3)))
                    d.rectangle([x + 1 + i * bw, base - h, x + i * bw + bw - 1, base], fill=BAR_HI if i == hi else BAR)
            x += size + pad
        y += tile_h + pad
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def near_duplicate_sheet(groups: pd.DataFrame, blob_path, thumb_path, max_groups: int = 8, size: int = 80) -> bytes | None:
    """groups: sha256, group_id, is_representative, group_size — the largest groups first."""
    g = groups[groups["group_size"] > 1]
    if g.empty:
        return None
    order = g.groupby("group_id")["group_size"].first().sort_values(ascending=False, kind="stable")
    rows = []
    for gid in order.index[:max_groups]:
        m = g[g["group_id"] == gid].sort_values(["is_representative", "sha256"], ascending=[False, True])
        rows.append((f"group of {len(m)}", [Tile(r.sha256, "kept" if r.is_representative else "dropped",
                                                  framed=bool(r.is_representative)) for r in m.itertuples()]))
    return sheet(rows, blob_path, thumb_path, size=size, title="near-duplicate groups (framed: kept representative)")


def keep_reject_sheet(kept: pd.DataFrame, blob_path, thumb_path, per_side: int = 8, size: int = 80) -> bytes | None:
    """kept: sha256, p_keep, kept — the most and least certain of each side."""
    k = kept[kept["p_keep"].notna()]
    if k.empty:
        return None
    yes = k[k["kept"]].sort_values("p_keep", ascending=False).head(per_side)
    no = k[~k["kept"].astype(bool)].sort_values("p_keep").head(per_side)
    rows = [("kept", [Tile(r.sha256, f"p={r.p_keep:.2f}") for r in yes.itertuples()]),
            ("rejected", [Tile(r.sha256, f"p={r.p_keep:.2f}") for r in no.itertuples()])]
    return sheet(rows, blob_path, thumb_path, size=size, cols=per_side, title="keep/reject (p_keep)")


def faces_by_subset_sheet(soft: pd.DataFrame, emotion_columns: Sequence[str], blob_path, thumb_path,
                          per_subset: int = 8, size: int = 72) -> bytes | None:
    """soft: crop_sha256, hard_label, difficulty and the soft-label columns; bars in column order."""
    rows = []
    for subset in ("Easy", "Challenging", "Difficult"):
        s = soft[soft["difficulty"] == subset].sort_values("face_id" if "face_id" in soft else "crop_sha256").head(per_subset)
        if len(s):
            rows.append((subset, [Tile(r["crop_sha256"], str(r["hard_label"]), [r[c] for c in emotion_columns])
                                  for _, r in s.iterrows()]))
    if not rows:
        return None
    return sheet(rows, blob_path, thumb_path, size=size, cols=per_subset,
                 title="faces per subset: caption = hard label, bars = soft label (" + ", ".join(emotion_columns) + ")")


def queue_sheet(queue: pd.DataFrame, blob_path, thumb_path, n: int = 16, size: int = 80) -> bytes | None:
    """queue: position, sha256, selection, drawn_label — the next ``n`` images to annotate."""
    q = queue[queue["sha256"].notna()].sort_values("position").head(n) if "sha256" in queue else queue.iloc[:0]
    if q.empty:
        return None
    tiles = [Tile(r.sha256, f"{r.position}:{r.selection}"[:16]) for r in q.itertuples()]
    return sheet([("next", tiles)], blob_path, thumb_path, size=size, cols=8, title="annotation queue: next images")
