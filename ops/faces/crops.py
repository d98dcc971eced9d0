"""Face crops and their geometry, in continuous pixel coordinates (origin at the top-left corner of
the top-left pixel: pixel (i, j) covers [i, i+1) × [j, j+1)), the convention of the detectors'
boxes and landmarks, of MediaPipe's points and of the demo world's truth.

    png_bytes(img)                  PNG bytes (compress level 6, as align.py) and their SHA-256
    continuous_matrix(m)            align.py's 2×3 matrix (pixel centres at integers, as
                                    cv2.warpAffine) in continuous coordinates
    letterbox(img, region, size)    a region scaled into a size² canvas, aspect kept, black around
    aligned_crop(img, lm5, size, padding)
                                    align.py's ArcFace alignment, with an antialiased reduction of
                                    the face's neighbourhood first when the warp would shrink it
                                    more than 2× (a bilinear warp alone aliases)

Every crop comes with the 2×3 matrix [[a, b, c], [d, e, f]] mapping image points to crop points,
x' = a·x + b·y + c, y' = d·x + e·y + f (continuous coordinates on both sides).
"""

from __future__ import annotations

import hashlib
import io
import math

import numpy as np
from PIL import Image

from ops.faces.align import align_face, similarity_transform, template


def png_bytes(img: Image.Image) -> tuple[bytes, str]:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def continuous_matrix(m_int: np.ndarray) -> np.ndarray:
    """align.py's matrix (pixel centres at integers, as cv2.warpAffine) in continuous coordinates
    (pixel centres at i + 0.5): x_c' = A (x_c - 0.5) + t + 0.5."""
    a = m_int[:, :2]
    return np.hstack([a, (m_int[:, 2] + 0.5 - a @ np.array([0.5, 0.5]))[:, None]])


def letterbox(img: Image.Image, region: tuple[float, float, float, float], size: int,
              orig_per_img: tuple[float, float] = (1.0, 1.0)) -> tuple[Image.Image, np.ndarray]:
    """``region`` (x0, y0, x1, y1 of ``img``) scaled into a ``size``² canvas, aspect kept, centred,
    black around. The matrix maps the ORIGINAL image (``img`` may be a draft-decoded reduction by
    ``orig_per_img`` = original px per img px) to the crop, continuous coordinates."""
    x0, y0, x1, y1 = region
    rw, rh = x1 - x0, y1 - y0
    s = size / max(rw, rh)
    nw, nh = max(1, min(size, round(rw * s))), max(1, min(size, round(rh * s)))
    ox, oy = (size - nw) // 2, (size - nh) // 2
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    canvas.paste(img.resize((nw, nh), Image.Resampling.BILINEAR, box=region), (ox, oy))
    sx, sy = nw / rw / orig_per_img[0], nh / rh / orig_per_img[1]
    m = np.array([[sx, 0.0, ox - x0 * orig_per_img[0] * sx],
                  [0.0, sy, oy - y0 * orig_per_img[1] * sy]])
    return canvas, m


def aligned_crop(img: Image.Image, lm5: np.ndarray, size: int, padding: float):
    """(PNG, sha256, continuous matrix, residual px): align.py's crop, after an antialiased
    reduction of the face's neighbourhood when the warp would shrink it more than 2×."""
    m = similarity_transform(lm5, template(size, padding))
    scale = math.hypot(m[0, 0], m[1, 0])
    inv = np.linalg.inv(np.vstack([continuous_matrix(m), [0, 0, 1]]))[:2]
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    pts = corners @ inv[:, :2].T + inv[:, 2]  # the crop's corners in the image
    w, h = img.size
    x0, y0 = max(0.0, math.floor(pts[:, 0].min()) - 2.0), max(0.0, math.floor(pts[:, 1].min()) - 2.0)
    x1, y1 = min(float(w), math.ceil(pts[:, 0].max()) + 2.0), min(float(h), math.ceil(pts[:, 1].max()) + 2.0)
    if scale >= 0.5 or x1 - x0 < 4 or y1 - y0 < 4:
        al = align_face(img, lm5, size=size, padding=padding)
        return al.png, al.sha256, continuous_matrix(al.matrix), al.residual_px
    f = 2.0 * scale  # after the reduction the warp scales by 0.5
    pw, ph = max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f))
    patch = img.resize((pw, ph), Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))
    fx, fy = pw / (x1 - x0), ph / (y1 - y0)
    reduce = np.array([[fx, 0.0, -x0 * fx], [0.0, fy, -y0 * fy]])  # continuous: image -> patch
    lm_patch = ((lm5 + 0.5) - [x0, y0]) * [fx, fy] - 0.5           # align.py's convention
    al = align_face(patch, lm_patch, size=size, padding=padding)
    mc = continuous_matrix(al.matrix)
    total = mc[:, :2] @ reduce
    total[:, 2] += mc[:, 2]
    return al.png, al.sha256, total, al.residual_px
