"""Validation of downloaded bytes: is it an image, are its dimensions within the limits, and its
fast pHash from the same decode.

FindingEmo §2.3.1 keeps an image only if it really is one (decoded, whatever the Content-Type says)
and its width, after EXIF orientation, is strictly between the limits (800 < w < 1600).

The order of the work is the point (issue 7, items 7 and 18):

1. **The header** (``Image.open`` reads only the header, and the EXIF orientation is in it for
   JPEG, WebP and TIFF): width (FindingEmo's filter), height, pixel count and aspect ratio are
   checked BEFORE anything is decoded, so a small file declaring 9400x9400 or 1200x74000 pixels is
   refused for the cost of reading its header, never decoded.
2. **One decode**, which validates the data: a JPEG is decoded DCT-scaled to luma (libjpeg's
   ``draft``: 1/2 to 1/8 scale, no chroma IDCT, upsampling or colour conversion). The scaled
   decode still reads and Huffman-decodes the whole entropy-coded stream, so a file that stops
   early or whose stream is broken fails exactly as with a full decode (``truncated`` /
   ``not_an_image``; tests/test_download_limits.py checks it on truncated and corrupted JPEGs).
   Other formats keep a full decode.
3. **The fast pHash** (StockEmotion §3.1; ``ops.dedup.phash``) from that same decoded image, so
   ``image_hashes`` need not decode the image again: it is the same function of the same pixels
   as :func:`ops.dedup.phash.phash_fast` on the same bytes, hence the same 64 bits.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from ops.acquisition import statuses as st
from ops.dedup.phash import FAST_DRAFT_MIN_SIDE, fast_draft, hashes_to_hex, phash_fast_decoded

# Formats PIL may open. Restricting them keeps PIL from handing PostScript (EPS) to Ghostscript
# and similar surprises: a web image dataset needs no more than these.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

PHASH_MODE = "fast"  # the pHash computed at download time (ops.dedup.phash.phash_fast)

_ORIENTATION = 0x0112
_SWAPS_SIDES = frozenset({5, 6, 7, 8})  # EXIF orientations that rotate by 90 degrees


@dataclass(frozen=True)
class ImageLimits:
    """Dimension limits checked from the header, after EXIF orientation (``None``: no limit).

    ``min_width`` / ``max_width`` are FindingEmo's exclusive width filter (§2.3.1: ok only if
    ``min_width < w < max_width``); the others are upper bounds, inclusive: ``h <= max_height``,
    ``w * h <= max_pixels``, ``max(w, h) / min(w, h) <= max_aspect_ratio``.
    """

    min_width: int = 0
    max_width: int | None = None
    max_height: int | None = None
    max_pixels: int | None = None
    max_aspect_ratio: float | None = None

    def violation(self, w: int, h: int) -> tuple[str, str] | None:
        """(status, reason) of the first limit that ``w`` x ``h`` breaks, or None."""
        if w <= self.min_width:
            return st.TOO_SMALL, f"width {w} <= min_width {self.min_width}"
        if self.max_width is not None and w >= self.max_width:
            return st.TOO_WIDE, f"width {w} >= max_width {self.max_width}"
        if self.max_height is not None and h > self.max_height:
            return st.TOO_TALL, f"height {h} > max_height {self.max_height}"
        if self.max_pixels is not None and w * h > self.max_pixels:
            return st.TOO_MANY_PIXELS, f"{w}x{h} = {w * h} pixels > max_pixels {self.max_pixels}"
        if self.max_aspect_ratio is not None and max(w, h) > self.max_aspect_ratio * max(min(w, h), 1):
            return (st.EXTREME_ASPECT_RATIO,
                    f"{w}x{h}: aspect ratio {max(w, h) / max(min(w, h), 1):.2f} > max_aspect_ratio "
                    f"{self.max_aspect_ratio:g}")
        return None


@dataclass
class ImageCheck:
    status: str
    width: int | None = None
    height: int | None = None
    image_format: str | None = None
    error: str | None = None
    phash: str | None = None         # 16 hex digits, the fast pHash of the decoded image (ok only)
    phash_mode: str | None = None    # PHASH_MODE when phash is set


def _orientation(img: Image.Image, decoded: bool) -> int | None:
    """The EXIF orientation (1-8), read without decoding; None if it is not known yet.

    JPEG, WebP and TIFF carry it in what ``Image.open`` read. A PNG may put its eXIf chunk after
    the image data, which PIL reads only when decoding (``PngImageFile.getexif`` would decode):
    before the decode a PNG's orientation is known only if the chunk came first. Unparseable
    EXIF counts as no orientation (broken metadata is not a broken image).
    """
    if not decoded and img.format == "PNG" and "exif" not in img.info:
        return None
    try:
        exif = img.getexif() if decoded else Image.Image.getexif(img)  # base class: never decodes
        value = exif.get(_ORIENTATION, 1)
        return int(value) if value in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - garbage EXIF
        return 1


def _oriented(w: int, h: int, orientation: int) -> tuple[int, int]:
    return (h, w) if orientation in _SWAPS_SIDES else (w, h)


def inspect_image(data: bytes, min_width: int, max_width: int, limits: ImageLimits | None = None, *,
                  phash: bool = True) -> ImageCheck:
    """Validate ``data`` as an image and apply the dimension limits; see the module doc.

    Never trusts a Content-Type: only a decode makes an image. ``ImageFile.LOAD_TRUNCATED_IMAGES``
    stays False, so data that stops early is ``truncated``. PIL's decompression-bomb guard stays
    on: above ``Image.MAX_IMAGE_PIXELS`` pixels (PIL's warning level, here an error) or twice that
    (PIL's error level) the image is a ``decompression_bomb``, refused before its pixels are
    decoded. Dimensions are measured after EXIF orientation (a 700x900 JPEG with Orientation 6 is
    900 wide); ``min_width``/``max_width`` override ``limits``' (FindingEmo §2.3.1: exclusive).
    ``phash``: compute the fast pHash of an ok image from the validating decode.
    """
    base = limits or ImageLimits()
    limits = ImageLimits(min_width, max_width, base.max_height, base.max_pixels, base.max_aspect_ratio)
    try:
        img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return ImageCheck(st.DECOMPRESSION_BOMB, error=str(e))
    except UnidentifiedImageError:
        return ImageCheck(st.NOT_AN_IMAGE, error="PIL cannot identify the data as an image")
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds on garbage headers
        return ImageCheck(st.NOT_AN_IMAGE, error=f"{type(e).__name__}: {e}")
    with img:
        fmt = img.format
        w0, h0 = img.size
        limit = Image.MAX_IMAGE_PIXELS
        if limit and w0 * h0 > limit:  # PIL only warns between 1x and 2x: we refuse
            return ImageCheck(st.DECOMPRESSION_BOMB, w0, h0, fmt,
                              f"{w0}x{h0} = {w0 * h0} pixels exceeds MAX_IMAGE_PIXELS {limit}")
        # 1. the header: every limit before any decoding
        orientation = _orientation(img, decoded=False)
        if orientation is not None:
            w, h = _oriented(w0, h0, orientation)
            bad = limits.violation(w, h)
            if bad:
                return ImageCheck(bad[0], w, h, fmt, bad[1])
        else:  # orientation unknown until decoded: refuse now only what fails either way
            bad, bad_turned = limits.violation(w0, h0), limits.violation(h0, w0)
            if bad and bad_turned:
                return ImageCheck(bad[0], w0, h0, fmt, bad[1] + " (either orientation)")
        # 2. one decode that validates the data (JPEG: DCT-scaled luma; other formats: full)
        try:
            box = fast_draft(img, FAST_DRAFT_MIN_SIDE)
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            return ImageCheck(st.DECOMPRESSION_BOMB, w0, h0, fmt, str(e))
        except OSError as e:
            msg = str(e)
            if "truncated" in msg or "broken data stream" in msg:
                return ImageCheck(st.TRUNCATED, w0, h0, fmt, msg)
            return ImageCheck(st.NOT_AN_IMAGE, w0, h0, fmt, f"decode failed: {msg}")
        except Exception as e:  # noqa: BLE001 - corrupt data makes plugins raise anything
            return ImageCheck(st.NOT_AN_IMAGE, w0, h0, fmt, f"decode failed: {type(e).__name__}: {e}")
        if orientation is None:  # a PNG whose eXIf came after the image data
            orientation = _orientation(img, decoded=True)
            w, h = _oriented(w0, h0, orientation)
            bad = limits.violation(w, h)
            if bad:
                return ImageCheck(bad[0], w, h, fmt, bad[1])
        # 3. the fast pHash from the same decode (StockEmotion §3.1), as phash_fast computes it
        hexhash = None
        if phash:
            try:
                hexhash = hashes_to_hex([phash_fast_decoded(img, box)])[0]
            except Exception:  # noqa: BLE001 - e.g. an exotic mode convert() refuses: image_hashes retries
                hexhash = None
    return ImageCheck(st.OK, w, h, fmt, phash=hexhash, phash_mode=PHASH_MODE if hexhash else None)
