"""The embedded demo: a generated image corpus behind a local search engine and image host.

The demo lets the whole pipeline (search, candidate filtering, careful download, pHash dedup) run
offline, deterministically and fast, against a server on 127.0.0.1 that behaves like the parts of
the real web the pipeline has to survive:

* a search endpoint (``GET /search?q=&max_results=``) answering with ddgs-shaped result dicts,
  whose reported sizes are sometimes missing or wrong, that links a stock-photo site and that
  repeats a URL across queries;
* image hosts that mostly serve good photos, but also re-posts (exact copies, re-encoded,
  resized, brightened copies), thumbnails, HTML error pages labelled ``image/jpeg``, cut-off files,
  huge files (with and without ``Content-Length``), decompression bombs, 404 / 500 / 429 answers,
  slow and stalled responses, resets, and redirects (a normal chain, a loop, a hop to a private
  address, a hop to another scheme).

Each corpus entry is one search result (:class:`DemoEntry`) and says which status the pipeline
should give it (the vocabulary of :mod:`ops.acquisition.statuses`), assuming :func:`ops.config.demo_config`
(800 < w < 1600, download.max_bytes 3,000,000, read timeout 2 s with 2 retries, at most 5
redirects, 127.0.0.1 allowed). The images are synthetic, not photos: smooth gradients, "scenery"
rectangles and people-like blobs (a body and a head) plus mild grain, JPEG quality 88, 900-1500 px
wide, so that they decode, pass FindingEmo's width filter and have distinct perceptual hashes.

Plain Python (no Dagster); ``python -m ops.demo.corpus --serve DIR`` builds and serves a corpus by hand.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from ops.acquisition import statuses as S
from warehouse.store import atomic_write_bytes

# Four emotion words of FindingEmo's emotion keyword set, two of its people words, three settings:
# 4 x 2 x 3 = 24 queries, "Happy people birthday" ... (emotion, people, setting order).
DEMO_KEYWORDS: dict[str, list[str]] = {
    "emotions": ["Happy", "Grieving", "Outraged", "Fearful"],
    "people": ["people", "children"],
    "settings": ["birthday", "funeral", "protest"],
}
DEMO_QUERIES: list[str] = [
    f"{e} {p} {s}"
    for e in DEMO_KEYWORDS["emotions"] for p in DEMO_KEYWORDS["people"] for s in DEMO_KEYWORDS["settings"]
]

CORPUS_VERSION = 1           # bump when the generator changes: cached corpora are rebuilt
MANIFEST = "manifest.json"
JPEG_QUALITY = 88
BLOCKED_REDIRECT_TARGET = "http://10.11.12.13/photo.jpg"  # a private address: never connected to
BLACKLISTED_HOST = "www.shutterstock.com"                 # on ops.config.DEFAULT_BLACKLIST
SLOW_MS = 500                # well under the demo read timeout (2 s): still ok
STALL_SECONDS = 10.0         # well over it, on every retry: timeout
RETRY_AFTER_SECONDS = 1      # under the demo max_retry_after (5 s): the downloader waits and retries
TOO_LARGE_SIDE = 1200        # noise PNG, 1200 x 1200 RGB: about 4.3 MB > max_bytes 3,000,000
BOMB_SIDE = 20_000           # 400 Mpx > 2 x PIL's MAX_IMAGE_PIXELS: DecompressionBombError on open


@dataclass(frozen=True)
class DemoEntry:
    """One search result of the demo corpus and what should become of it.

    ``path`` is the URL path on the demo server; the result's image URL is the server's base URL
    plus ``path``, or ``http://<host_override><path>`` (a blacklisted host: never fetched).
    ``rank`` is 1-based within ``query``. ``reported_width``/``reported_height`` are what the
    search result claims (``None``: not reported). ``duplicate_of`` names the original of an exact
    or near duplicate (the dedup stage should find them); a ``duplicate_url`` entry has the same
    ``path`` as its first occurrence (and ``duplicate_of`` None). ``file`` is the file name in the
    corpus directory that backs ``path`` (``None`` when the route has no content).
    """

    name: str
    kind: str
    path: str
    host_override: str | None
    query: str
    rank: int
    reported_width: int | None
    reported_height: int | None
    expected_status: str
    duplicate_of: str | None
    file: str | None

    def image_url(self, base_url: str) -> str:
        if self.host_override:
            return f"http://{self.host_override}{self.path}"
        return base_url.rstrip("/") + self.path


def expected_statuses(entries: Iterable[DemoEntry]) -> dict[tuple[str, int], str]:
    """``{(query, rank): expected status}`` for every entry."""
    return {(e.query, e.rank): e.expected_status for e in entries}


# ---- the plan: which entry is what, and where it ranks ---------------------------------------

# Fault kinds, one entry each, in the order they are kept when a small corpus has no room for all.
# (kind, expected status, true width, reported width: "true" = as decoded, None = not reported)
_FAULTS: list[tuple[str, str, int | None, Any]] = [
    ("html_as_jpeg", S.NOT_AN_IMAGE, None, "plausible"),          # hotlink-protection page
    ("truncated", S.TRUNCATED, 1200, "true"),                      # first 60 % of a JPEG
    ("missing", "http_404", None, "plausible"),                    # the file is gone
    ("redirect_blocked", S.BLOCKED_ADDRESS, None, "plausible"),    # 302 to a private address
    ("blacklisted", S.BLACKLISTED, 1100, "true"),                  # a stock-photo site's copy
    ("rate_limited_once", S.OK, 1150, "true"),                     # 429 Retry-After: 1, then 200
    ("too_small_unreported", S.TOO_SMALL, 640, None),              # a thumbnail, size unknown
    ("width_reported_small", S.WIDTH_OUT_OF_RANGE, 640, "true"),   # thumbnail, size reported
    ("too_large", S.TOO_LARGE, TOO_LARGE_SIDE, "true"),            # Content-Length > max_bytes
    ("redirect_chain", S.OK, 1250, "true"),                        # 302 -> 301 -> image
    ("slow", S.OK, 1000, "true"),                                  # answers after 0.5 s
    ("stalled", S.TIMEOUT, 1050, "true"),                          # answers after 10 s
    ("width_reported_wide", S.WIDTH_OUT_OF_RANGE, 2400, "true"),   # too wide by metadata
    ("too_wide_unreported", S.TOO_WIDE, 1600, None),               # 1600: w < 1600 fails
    ("server_error", "http_500", None, "plausible"),               # always 500
    ("connection_reset", S.CONNECTION_ERROR, None, "plausible"),   # closes without answering
    ("too_large_streamed", S.TOO_LARGE, TOO_LARGE_SIDE, None),     # chunked, no Content-Length
    ("redirect_scheme", S.BLOCKED_SCHEME, None, "plausible"),      # 302 to ftp://
    ("redirect_loop", S.TOO_MANY_REDIRECTS, None, "plausible"),    # endless 302s
    ("decompression_bomb", S.DECOMPRESSION_BOMB, BOMB_SIDE, None),  # ~50 KB PNG of 20000 x 20000
    ("mislabeled_webp", S.OK, 1200, "true"),                       # WebP bytes as image/jpeg
    ("octet_stream", S.OK, 1300, "true"),                          # JPEG as application/octet-stream
    ("too_small_misreported", S.TOO_SMALL, 700, 1024),             # metadata lies: 1024, really 700
    ("too_small_unreported", S.TOO_SMALL, 800, None),              # boundary: 800 is not > 800
    ("width_reported_small", S.WIDTH_OUT_OF_RANGE, 800, "true"),   # boundary, by metadata
]
_NEAR_KINDS = ("near_duplicate_reencode", "near_duplicate_resize", "near_duplicate_brightness")
_ASPECTS = (4 / 3, 4 / 3, 3 / 2, 3 / 2, 16 / 9, 5 / 4, 1.0)


@dataclass
class _Spec:
    kind: str
    status: str
    width: int | None = None
    height: int | None = None
    reported: Any = "true"
    source: int | None = None   # index into the spec list of the original (duplicates)
    slot: tuple[int, int] | None = None


def _counts(n_images: int) -> tuple[int, int, int, int]:
    """(exact duplicates, near duplicates per kind, fault entries, originals)."""
    if n_images < 20:
        raise ValueError(f"n_images must be at least 20 (got {n_images})")
    n_exact = max(1, n_images // 30)
    n_near = max(1, n_images // 60)
    dependents = n_exact + 3 * n_near + 1  # + the duplicate_url entry
    min_originals = max(dependents, n_images // 4)
    n_faults = max(0, min(len(_FAULTS), n_images - dependents - min_originals))
    return n_exact, n_near, n_faults, n_images - dependents - n_faults


def _slots(n_images: int) -> list[tuple[int, int]]:
    """(query index, rank) of every result, in search order: about n/24 results per query."""
    per, extra = divmod(n_images, len(DEMO_QUERIES))
    return [(q, r) for q in range(len(DEMO_QUERIES)) for r in range(1, per + (q < extra) + 1)]


def _plan(n_images: int, seed: int) -> list[_Spec]:
    """Every entry's kind, size and slot, in search order (query, rank)."""
    rng = np.random.default_rng([seed, 1])
    n_exact, n_near, n_faults, n_orig = _counts(n_images)

    # Originals of duplicates rank in the first queries and their copies in the last ones, so that
    # the copy is always the later result (and a repeated URL always comes from another query).
    slots = _slots(n_images)
    early = [i for i, (q, _) in enumerate(slots) if q < 10]
    late = [i for i, (q, _) in enumerate(slots) if q >= 12]
    dep_kinds = ["exact_duplicate"] * n_exact + [k for k in _NEAR_KINDS for _ in range(n_near)] + ["duplicate_url"]
    src_pos = [int(i) for i in rng.choice(early, size=len(dep_kinds), replace=False)]
    dep_pos = [int(i) for i in rng.choice(late, size=len(dep_kinds), replace=False)]
    taken = set(src_pos) | set(dep_pos)
    rest = [i for i in range(len(slots)) if i not in taken]
    rng.shuffle(rest)

    by_pos: dict[int, _Spec] = {}
    for k, (kind, status, width, reported) in enumerate(_FAULTS[:n_faults]):
        by_pos[rest[k]] = _Spec(kind, status, width, None, reported)
    for p in rest[n_faults:] + src_pos:
        by_pos[p] = _Spec("original", S.OK)
    for kind, sp, dp in zip(dep_kinds, src_pos, dep_pos):
        by_pos[dp] = _Spec(kind, S.DUPLICATE_URL if kind == "duplicate_url" else S.OK, source=sp)
        if kind == "near_duplicate_resize":
            by_pos[sp].width = int(rng.integers(1050, 1501))  # 0.8 x stays above 800
    assert len(by_pos) == len(slots) == n_images

    specs = [by_pos[i] for i in range(len(slots))]
    for i, sp in enumerate(specs):
        sp.slot = slots[i]
        if sp.kind == "original":
            if sp.width is None:
                sp.width = int(rng.integers(900, 1501))
            aspect = float(rng.choice(_ASPECTS))
            if sp.width <= 1100 and rng.random() < 0.25:
                aspect = 3 / 4  # a few portraits
            sp.height = int(round(sp.width / aspect))
            sp.reported = None if rng.random() < 0.08 else "true"  # search engines miss some sizes
        elif sp.kind in ("too_large", "too_large_streamed", "decompression_bomb"):
            sp.height = sp.width
        elif sp.width is not None and sp.height is None:
            sp.height = int(round(sp.width * 2 / 3))
    for sp in specs:  # sizes of copies follow their originals
        if sp.source is not None:
            src = specs[sp.source]
            if sp.kind == "near_duplicate_resize":
                sp.width, sp.height = int(round(src.width * 0.8)), int(round(src.height * 0.8))
            else:
                sp.width, sp.height = src.width, src.height
            sp.reported = src.reported if sp.kind == "duplicate_url" else "true"
    return specs


def _entries_from_plan(specs: list[_Spec], seed: int) -> list[DemoEntry]:
    rng = np.random.default_rng([seed, 2])
    names = [f"demo-{i + 1:04d}" for i in range(len(specs))]
    entries: list[DemoEntry] = []
    for i, sp in enumerate(specs):
        stem = f"{i + 1:04d}"
        q, rank = sp.slot
        host = None
        file: str | None = f"{stem}.jpg"
        path = f"/img/{file}"
        dup_of = None
        if sp.kind in ("exact_duplicate",) + _NEAR_KINDS:
            dup_of = names[sp.source]
        elif sp.kind == "duplicate_url":
            file, path = entries[sp.source].file, entries[sp.source].path
        elif sp.kind == "blacklisted":
            host = BLACKLISTED_HOST
        elif sp.kind == "octet_stream":
            file = f"{stem}.bin"
            path = f"/img/{file}"
        elif sp.kind in ("too_large", "decompression_bomb"):
            file = f"{stem}.png"
            path = f"/img/{file}"
        elif sp.kind == "too_large_streamed":
            file = f"{stem}.png"
            path = f"/stream/{file}"
        elif sp.kind == "missing":
            file = None  # /img/NNNN.jpg with no file behind it: 404
        elif sp.kind == "server_error":
            file, path = None, f"/status/500/{stem}.jpg"
        elif sp.kind == "slow":
            path = f"/slow/{SLOW_MS}/{file}"
        elif sp.kind == "stalled":
            path = f"/stall/{file}"
        elif sp.kind == "rate_limited_once":
            path = f"/once429/{file}"
        elif sp.kind == "redirect_chain":
            path = f"/redirect/chain/{file}"
        elif sp.kind == "redirect_blocked":
            file, path = None, f"/redirect/blocked/{stem}.jpg"
        elif sp.kind == "redirect_scheme":
            file, path = None, f"/redirect/scheme/{stem}.jpg"
        elif sp.kind == "redirect_loop":
            file, path = None, f"/redirect/loop/0/{stem}.jpg"
        elif sp.kind == "connection_reset":
            file, path = None, f"/reset/{stem}.jpg"
        if sp.reported == "true":
            rw, rh = sp.width, sp.height
        elif sp.reported == "plausible":  # nothing to measure behind the URL: a typical claim
            rw = int(rng.integers(9, 15)) * 100
            rh = rw * 2 // 3
        elif isinstance(sp.reported, int):  # a wrong claim
            rw, rh = sp.reported, int(round(sp.reported * (sp.height or 1) / (sp.width or 1)))
        else:
            rw = rh = None
        entries.append(DemoEntry(
            name=names[i], kind=sp.kind, path=path, host_override=host, query=DEMO_QUERIES[q],
            rank=rank, reported_width=rw, reported_height=rh, expected_status=sp.status,
            duplicate_of=dup_of, file=file,
        ))
    return entries


def plan_corpus(n_images: int = 240, seed: int = 7) -> list[DemoEntry]:
    """The entries :func:`build_corpus` would write, without writing any file (cheap)."""
    return _entries_from_plan(_plan(n_images, seed), seed)


# ---- image synthesis ----------------------------------------------------------------------------

def _noise_tile(seed: int, side: int = 1700) -> Image.Image:
    # One grain field per corpus (mode L, 128 = no change), cropped at a random offset per image:
    # cheap film grain.
    rng = np.random.default_rng([seed, 3])
    a = np.rint(rng.standard_normal((side, side), dtype=np.float32) * 2.5 + 128)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def _grain(noise: Image.Image, rng: np.random.Generator, w: int, h: int) -> Image.Image:
    tw, th = noise.size
    if h > th or w > tw:
        a = np.tile(np.asarray(noise), (-(-h // th), -(-w // tw)))
        noise = Image.fromarray(a)
        tw, th = noise.size
    ox, oy = int(rng.integers(0, tw - w + 1)), int(rng.integers(0, th - h + 1))
    g = noise.crop((ox, oy, ox + w, oy + h))
    return Image.merge("RGB", (g, g, g))


def _color(rng: np.random.Generator, lo: float = 15, hi: float = 240) -> tuple[int, int, int]:
    c = rng.uniform(lo, hi, 3)
    c = 0.75 * c + 0.25 * c.mean()  # a little desaturated: less cartoonish
    return tuple(int(v) for v in c)


def _render(rng: np.random.Generator, w: int, h: int, noise: Image.Image) -> Image.Image:
    """A natural-ish scene: sky/ground gradients, scenery rectangles, people-like blobs, grain.

    The gradients are computed on a coarse grid and upscaled; shapes are drawn at full size.
    """
    sw, sh = max(8, w // 16), max(8, h // 16)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    t = (xx / sw) * np.cos(ang) + (yy / sh) * np.sin(ang)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    c0 = np.array(_color(rng), np.float32)
    c1 = np.array(_color(rng), np.float32)
    bg = c0 * (1 - t[..., None]) + c1 * t[..., None]
    horizon = rng.uniform(0.35, 0.75)
    ground = np.array(_color(rng, 30, 200), np.float32)
    m = 0.65 / (1 + np.exp(-(yy / sh - horizon) * 25))
    bg = bg * (1 - m[..., None]) + ground * m[..., None]
    img = Image.fromarray(bg.clip(0, 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 7))):  # buildings, tables, banners
        x0, y0 = rng.uniform(-0.1, 0.9) * w, rng.uniform(0.0, 0.7) * h
        d.rectangle([x0, y0, x0 + rng.uniform(0.08, 0.4) * w, y0 + rng.uniform(0.1, 0.5) * h],
                    fill=_color(rng))
    for _ in range(int(rng.integers(2, 10))):  # people: a rounded body and a head
        s = rng.uniform(0.12, 0.38) * h
        cx, base = rng.uniform(0.03, 0.97) * w, rng.uniform(0.7, 1.15) * h
        bw = s * rng.uniform(0.35, 0.5)
        skin = tuple(int(v) for v in rng.uniform(0.3, 1.0) * np.array([232, 192, 160]))
        d.rounded_rectangle([cx - bw / 2, base - s, cx + bw / 2, base], radius=bw * 0.3, fill=_color(rng))
        hr = bw * 0.33
        d.ellipse([cx - hr, base - s - 2.1 * hr, cx + hr, base - s + 0.1 * hr], fill=skin)
    return ImageChops.add(img, _grain(noise, rng, w, h), 1.0, -128)


def _jpeg(img: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A valid 1-bit grayscale PNG of side x side zeros: ~50 KB that would decode to 400 Mpx."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)  # filter byte 0 + packed bits
    block = row * 500
    parts = [comp.compress(block) for _ in range(side // 500)]
    parts.append(comp.compress(row * (side % 500)))
    parts.append(comp.flush())
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")


def _noise_png(rng: np.random.Generator, side: int) -> bytes:
    """Pure noise does not compress: a valid PNG of about 3 x side^2 bytes."""
    a = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


_HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n<body>\n"
    "<h1>Hotlinking not permitted</h1>\n<p>This image is only available on {page}.</p>\n"
    "<!-- {name} -->\n</body></html>\n"
)


def _file_bytes(e: DemoEntry, sp: _Spec, seed: int, idx: int, noise: Image.Image,
                out_dir: Path, entries: list[DemoEntry]) -> bytes:
    rng = np.random.default_rng([seed, 4, idx])
    kind = sp.kind
    if kind == "exact_duplicate":
        return (out_dir / entries[sp.source].file).read_bytes()  # the same bytes, another URL
    if kind in _NEAR_KINDS:  # a re-post: decoded from the original and saved again
        with Image.open(out_dir / entries[sp.source].file) as src:
            img = src.convert("RGB")
        if kind == "near_duplicate_reencode":
            return _jpeg(img, 60)
        if kind == "near_duplicate_resize":
            return _jpeg(img.resize((sp.width, sp.height), Image.LANCZOS))
        a = np.asarray(img, dtype=np.float32) * 1.08  # brightness +8 %
        return _jpeg(Image.fromarray(a.clip(0, 255).astype(np.uint8)))
    if kind == "html_as_jpeg":
        return _HTML_PAGE.format(page="the photographer's site", name=e.name).encode()
    if kind in ("too_large", "too_large_streamed"):
        return _noise_png(rng, sp.width)
    if kind == "decompression_bomb":
        return _bomb_png(sp.width)
    img = _render(rng, sp.width, sp.height, noise)
    if kind == "mislabeled_webp":
        buf = io.BytesIO()
        img.save(buf, "WEBP", quality=85, method=4)
        return buf.getvalue()
    data = _jpeg(img)
    if kind == "truncated":
        return data[: int(len(data) * 0.6)]
    return data


# ---- building and caching the corpus --------------------------------------------------------------

def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(out_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def load_corpus(out_dir: Path) -> list[DemoEntry]:
    """The entries of an already built corpus (from its manifest)."""
    m = _read_manifest(Path(out_dir))
    if m is None:
        raise FileNotFoundError(f"no demo corpus manifest in {out_dir}")
    return [DemoEntry(**d) for d in m["entries"]]


def build_corpus(out_dir: Path, n_images: int = 240, seed: int = 7) -> list[DemoEntry]:
    """Write the demo corpus (files and ``manifest.json``) into ``out_dir``; return its entries.

    Deterministic: the same ``n_images`` and ``seed`` give the same bytes. Idempotent: when the
    manifest already describes this corpus and its files are intact (sizes), nothing is rewritten.
    Files are written atomically and the manifest last, so concurrent builders of the same corpus
    only ever race to write identical bytes.
    """
    out_dir = Path(out_dir)
    params = {"version": CORPUS_VERSION, "n_images": int(n_images), "seed": int(seed)}
    old = _read_manifest(out_dir)
    if old is not None and old.get("params") == params and all(
        (out_dir / f).is_file() and (out_dir / f).stat().st_size == size for f, size in old["files"].items()
    ):
        return [DemoEntry(**d) for d in old["entries"]]

    out_dir.mkdir(parents=True, exist_ok=True)
    specs = _plan(n_images, seed)
    entries = _entries_from_plan(specs, seed)
    noise = _noise_tile(seed)
    files: dict[str, int] = {}
    digests: dict[str, str] = {}
    for i, (e, sp) in enumerate(zip(entries, specs)):
        if e.file is None or e.file in files:
            continue
        data = _file_bytes(e, sp, seed, i, noise, out_dir, entries)
        atomic_write_bytes(out_dir / e.file, data, durable=False)
        files[e.file] = len(data)
        digests[e.file] = hashlib.sha256(data).hexdigest()
    if old is not None:  # files of an earlier, different corpus in the same directory
        for f in old.get("files", {}):
            if f not in files and "/" not in f and (out_dir / f).is_file():
                (out_dir / f).unlink()
    manifest = {"params": params, "files": files, "sha256": digests, "entries": [asdict(e) for e in entries]}
    atomic_write_bytes(out_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return entries


