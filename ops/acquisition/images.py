"""Validation of downloaded bytes: is it an image, and does it pass FindingEmo's width filter.

FindingEmo §2.3.1 keeps an image only if it really is one (decoded, whatever the Content-Type says)
and its width, after EXIF orientation, is strictly between the limits (800 < w < 1600).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from ops.acquisition import statuses as st

# Formats PIL may open. Restricting them keeps PIL from handing PostScript (EPS) to Ghostscript
# and similar surprises: a web image dataset needs no more than these.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")


@dataclass
class ImageCheck:
    status: str
    width: int | None = None
    height: int | None = None
    image_format: str | None = None
    error: str | None = None


def inspect_image(data: bytes, min_width: int, max_width: int) -> ImageCheck:
    """Decode ``data`` fully with PIL and apply FindingEmo's width filter (§2.3.1).

    Never trusts a Content-Type: only a full decode (``Image.open`` + ``load``) makes an image.
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` stays False, so data that stops early is ``truncated``.
    PIL's decompression-bomb guard stays on: above ``Image.MAX_IMAGE_PIXELS`` pixels (PIL's
    warning level, here an error) or twice that (PIL's error level) the image is a
    ``decompression_bomb``, refused before its pixels are decoded. The width is measured after
    EXIF orientation (a 700x900 JPEG with Orientation 6 is 900 wide) and the limits are exclusive:
    ok only if ``min_width < w < max_width``.
    """
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
        try:
            img.load()                               # the full decode
            ImageOps.exif_transpose(img, in_place=True)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            return ImageCheck(st.DECOMPRESSION_BOMB, w0, h0, fmt, str(e))
        except OSError as e:
            msg = str(e)
            if "truncated" in msg or "broken data stream" in msg:
                return ImageCheck(st.TRUNCATED, w0, h0, fmt, msg)
            return ImageCheck(st.NOT_AN_IMAGE, w0, h0, fmt, f"decode failed: {msg}")
        except Exception as e:  # noqa: BLE001 - corrupt data makes plugins raise anything
            return ImageCheck(st.NOT_AN_IMAGE, w0, h0, fmt, f"decode failed: {type(e).__name__}: {e}")
        w, h = img.size
    if w <= min_width:
        return ImageCheck(st.TOO_SMALL, w, h, fmt, f"width {w} <= min_width {min_width}")
    if w >= max_width:
        return ImageCheck(st.TOO_WIDE, w, h, fmt, f"width {w} >= max_width {max_width}")
    return ImageCheck(st.OK, w, h, fmt)
