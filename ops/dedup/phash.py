"""Perceptual hashing (pHash) for near-duplicate detection.

StockEmotion §3.1 deduplicates scraped images with pHash.  The reference
algorithm is ``imagehash.phash`` (hash_size=8, highfreq_factor=4):

    grayscale "L" -> resize 32x32 (LANCZOS) -> 2-D DCT-II (scipy.fftpack.dct,
    axis 0 then axis 1, unnormalised) -> top-left 8x8 block -> bit = coeff > median

Two modes are provided:

* ``phash_exact``: bit-for-bit identical to ``imagehash.phash(Image.open(src))``.
* ``phash_fast`` / ``phash_fast_many``: the same algorithm, but JPEGs are decoded
  with libjpeg DCT scaling (``Image.draft``) straight to luma at a reduced size,
  and the DCT is applied to the whole batch as two small matrix products.
  The result differs from the exact hash by a few bits at most (see
  ``bench/results/phash.md`` for the measured distribution).

Hashes are 64-bit Python ints (or ``np.uint64`` arrays) whose bit order matches
``int(str(imagehash.phash(img)), 16)``: DCT coefficient [0, 0] is the most
significant bit, row-major after that.

This module is plain Python/NumPy/Pillow; it must not import dagster.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from typing import Union

import numpy as np
import scipy.fftpack
from PIL import Image

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image]

HASH_SIZE = 8  # 8x8 low-frequency block -> 64 bits
IMG_SIZE = 32  # HASH_SIZE * highfreq_factor (4), as in imagehash.phash

# Fast mode: ask libjpeg for the smallest DCT scale (1/1, 1/2, 1/4, 1/8) whose
# output is still at least this many pixels on each side.  32 is the minimum
# the algorithm needs, but then mid-sized frames (short side < ~1000 px) are
# hashed from a ~35-60 px thumbnail and drift further from the exact hash
# (up to 4 bits); 128 keeps them within 2 bits for ~15% less throughput.
# bench/bench_phash.py sweeps 32/64/128 (see bench/results/phash.md).
FAST_DRAFT_MIN_SIDE = 128

# MSB-first weights used to pack 64 booleans into one uint64.
_BIT_WEIGHTS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def _dct2_matrix(n: int) -> np.ndarray:
    """DCT-II matrix matching scipy.fftpack.dct(type=2, norm=None):
    y[k] = 2 * sum_n x[n] * cos(pi * k * (2n + 1) / (2N))."""
    k = np.arange(n, dtype=np.float64)[:, None]
    x = np.arange(n, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * x + 1.0) / (2.0 * n))


# Only the first 8 rows are needed: low = D8 @ X @ D8.T gives the 8x8 block
# that imagehash takes from dct(dct(X, axis=0), axis=1).
_D8 = np.ascontiguousarray(_dct2_matrix(IMG_SIZE)[:HASH_SIZE])
_D8T = np.ascontiguousarray(_D8.T)


def _open(source: Source) -> Image.Image:
    """Open a path / bytes / PIL image without applying EXIF orientation
    (imagehash does not apply it either)."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(source)))
    return Image.open(source)


def _bits_to_uint64(bits: np.ndarray) -> np.ndarray:
    """Pack (B, 64) booleans (row-major 8x8, first = MSB) into (B,) uint64."""
    return (bits.astype(np.uint64) * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64)


# ---------------------------------------------------------------------------
# Exact mode
# ---------------------------------------------------------------------------


def phash_exact(source: Source) -> int:
    """pHash exactly as imagehash.phash (StockEmotion §3.1 dedup hash).

    Same steps and same numerical routines as the reference (PIL convert('L'),
    LANCZOS resize to 32x32, scipy.fftpack.dct on axis 0 then axis 1, median
    of the 8x8 block), so the result is bit-for-bit equal to
    ``int(str(imagehash.phash(Image.open(source))), 16)``.  Raises on
    undecodable input.
    """
    img = _open(source)
    try:
        small = img.convert("L").resize((IMG_SIZE, IMG_SIZE), Image.Resampling.LANCZOS)
        pixels = np.asarray(small)
        dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
        low = dct[:HASH_SIZE, :HASH_SIZE]
        bits = (low > np.median(low)).reshape(1, -1)
        return int(_bits_to_uint64(bits)[0])
    finally:
        if img is not source:
            img.close()


# ---------------------------------------------------------------------------
# Fast mode
# ---------------------------------------------------------------------------


def _load_gray32_fast(source: Source, draft_min_side: int = FAST_DRAFT_MIN_SIDE) -> np.ndarray:
    """Decode to a 32x32 uint8 luma thumbnail, cheaply.

    JPEG (and MPO): ``draft('L', ...)`` makes libjpeg decode only the luma
    channel at 1/2, 1/4 or 1/8 scale (the smallest scale still >= draft_min_side
    px per side), skipping chroma IDCT/upsampling and most of the IDCT work.
    Other formats have no draft support and follow the exact path
    (convert('L') + LANCZOS), so for PNG/WebP the thumbnail equals the exact one.
    """
    opened = _open(source)
    try:
        img = opened
        box = None
        if draft_min_side and img is not source:
            # None (no-op) for formats without DCT scaling; never applied to a caller's image
            box = fast_draft(img, draft_min_side)
        return gray32_from_decoded(img, box)
    finally:
        if opened is not source:
            opened.close()


def fast_draft(img: Image.Image, draft_min_side: int = FAST_DRAFT_MIN_SIDE) -> tuple | None:
    """Ask a just-opened image for the fast mode's DCT-scaled luma decode (JPEG/MPO; a no-op
    returning None for other formats). Returns the box of the original frame in the scaled
    image, for :func:`gray32_from_decoded`. The downloader (``ops.acquisition.images``) calls
    this and then validates the image with the same decode, so its pHash is the fast pHash."""
    drafted = img.draft("L", (draft_min_side, draft_min_side))
    if drafted is None:
        return None
    # libjpeg rounds the scaled size up (ceil(W/s)); the box (0, 0, W/s, H/s) maps the
    # original frame exactly, so the LANCZOS footprint matches the full-size resize
    # (measured: mean bit difference to exact 0.67 -> 0.2 at scale 1/8).
    return drafted[1]


def gray32_from_decoded(img: Image.Image, box: tuple | None = None) -> np.ndarray:
    """The 32x32 uint8 luma thumbnail of an opened (possibly drafted, possibly loaded) image."""
    if img.mode != "L":
        img = img.convert("L")
    small = img.resize((IMG_SIZE, IMG_SIZE), Image.Resampling.LANCZOS, box=box)
    return np.asarray(small, dtype=np.uint8)


def phash_fast_decoded(img: Image.Image, box: tuple | None = None) -> int:
    """The fast pHash of an image already opened and drafted by :func:`fast_draft` (``box`` is
    what it returned; None for formats without draft): equal to :func:`phash_fast` on its bytes."""
    return int(_hash_batch(gray32_from_decoded(img, box)[None])[0])


def _hash_batch(pixels: np.ndarray) -> np.ndarray:
    """Batched pHash core: (B, 32, 32) luma -> (B,) uint64.

    DCT-II by matrix products (only the 8x8 low-frequency block is computed),
    threshold against each image's own median (mean of the 32nd/33rd values,
    as np.median).
    """
    x = pixels.astype(np.float64, copy=False)
    low = np.matmul(np.matmul(_D8, x), _D8T).reshape(len(x), HASH_SIZE * HASH_SIZE)
    med = np.median(low, axis=1, keepdims=True)
    return _bits_to_uint64(low > med)


def phash_fast_many(
    sources: Iterable[Source],
    *,
    on_error: str = "record",
    batch_size: int = 64,
    draft_min_side: int = FAST_DRAFT_MIN_SIDE,
) -> tuple[np.ndarray, list[str | None]]:
    """Fast approximate pHash (imagehash.phash algorithm, StockEmotion §3.1) for many images.

    Returns ``(hashes, errors)``: ``hashes`` is a uint64 array in input order,
    ``errors[i]`` is None on success or "<ExceptionType>: <message>" when item i
    could not be decoded; its hash is then 0.  ``on_error="raise"`` re-raises the
    first decoding error instead.  Images are decoded one by one (JPEG via
    draft mode) and hashed ``batch_size`` at a time with a batched DCT.
    """
    if on_error not in ("record", "raise"):
        raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    srcs = list(sources)
    n = len(srcs)
    hashes = np.zeros(n, dtype=np.uint64)
    errors: list[str | None] = [None] * n
    buf = np.zeros((min(batch_size, max(n, 1)), IMG_SIZE, IMG_SIZE), dtype=np.uint8)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        ok = np.zeros(stop - start, dtype=bool)
        for j, src in enumerate(srcs[start:stop]):
            try:
                buf[j] = _load_gray32_fast(src, draft_min_side)
                ok[j] = True
            except Exception as exc:  # undecodable / truncated / bomb: record, go on
                if on_error == "raise":
                    raise
                errors[start + j] = f"{type(exc).__name__}: {exc}"
        if ok.any():
            idx = np.flatnonzero(ok)
            hashes[start + idx] = _hash_batch(buf[: stop - start][idx])
    return hashes, errors


def phash_fast(source: Source, *, draft_min_side: int = FAST_DRAFT_MIN_SIDE) -> int:
    """Fast approximate pHash of one image (see phash_fast_many); raises on error."""
    hashes, _ = phash_fast_many([source], on_error="raise", draft_min_side=draft_min_side)
    return int(hashes[0])


# ---------------------------------------------------------------------------
# Helpers: hex conversion and Hamming distance
# ---------------------------------------------------------------------------


def hashes_to_hex(arr: Sequence[int] | np.ndarray) -> list[str]:
    """64-bit hashes -> 16-char lowercase hex, same text as str(imagehash.phash(img))."""
    return [f"{int(h):016x}" for h in np.asarray(arr, dtype=np.uint64).ravel()]


def hex_to_int(s: str) -> int:
    """Hex hash (as str(imagehash.ImageHash)) -> int with the same bit order."""
    return int(s, 16)


def hamming(a: int, b: int) -> int:
    """Hamming distance of two 64-bit hashes (= imagehash's `h1 - h2`)."""
    return (int(a) ^ int(b)).bit_count()


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming_many(arr: np.ndarray, h: int) -> np.ndarray:
    """Vectorised Hamming distance of every uint64 in ``arr`` to hash ``h``.

    Uses np.bitwise_count (NumPy >= 2.0) and falls back to a byte lookup table.
    Returns an array of the same shape as ``arr`` (uint8, values 0..64).
    """
    x = np.bitwise_xor(np.asarray(arr, dtype=np.uint64), np.uint64(int(h)))
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.uint8, copy=False)
    return _popcount_table(x)


def _popcount_table(x: np.ndarray) -> np.ndarray:
    """Popcount of uint64 values via a 256-entry table (NumPy 1.x fallback)."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    bytes_ = x.view(np.uint8).reshape(x.shape + (8,))
    return _POPCOUNT8[bytes_].sum(axis=-1, dtype=np.uint8)
