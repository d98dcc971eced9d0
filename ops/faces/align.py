"""Face alignment: a similarity transform (rotation, uniform scale, translation; no reflection,
no shear) from a face's five landmarks onto a canonical template, and the aligned crop as PNG
bytes, so the crop can be stored content-addressed (its SHA-256 is the ``crop_sha256`` of the
``faces`` table).

The template is ArcFace's 112×112 five-point template (insightface, the layout face recognition
and most face-attribute models are trained on), in the landmark order of ``detect.Face``: eye on
the image's left, eye on the image's right, nose tip, mouth corners (image left, image right).
Other sizes scale it; ``padding`` shrinks the face towards the centre to keep more context
(padding=0.25 leaves a quarter of the face size on each side beyond ArcFace's framing).

The transform is the least-squares similarity (Umeyama 1991, the closed form that
``skimage.transform.SimilarityTransform`` and OpenCV's ``estimateAffinePartial2D`` without RANSAC
compute); the crop is resampled with Pillow (bilinear, pixel centres at integer coordinates: the same
warp as insightface's ``norm_crop`` with ``cv2.warpAffine``), so no OpenCV is needed. PNG bytes are
deterministic for a given Pillow/zlib build; the crop's pixels are deterministic given the image,
the landmarks and the parameters.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ops.faces.detect import Face, as_rgb

ARCFACE_112 = np.array([
    [38.2946, 51.6963],   # eye on the image's left (subject's right eye)
    [73.5318, 51.5014],   # eye on the image's right
    [56.0252, 71.7366],   # nose tip
    [41.5493, 92.3655],   # mouth corner, image left
    [70.7299, 92.2041],   # mouth corner, image right
], dtype=np.float64)


def template(size: int = 112, padding: float = 0.0) -> np.ndarray:
    """ArcFace's template for a ``size``×``size`` crop; ``padding`` > 0 zooms out."""
    c = 56.0
    return ((ARCFACE_112 - c) / (1.0 + 2.0 * padding) + c) * (size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 matrix M of the least-squares similarity with dst ≈ M @ [src; 1] (Umeyama)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching (N, 2) point sets with N >= 2, got {src.shape}, {dst.shape}")
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    var = (s0 ** 2).sum() / len(src)
    if var <= 0:
        raise ValueError("the source points coincide")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    r = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = md - scale * r @ ms
    return m


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points with a 2×3 matrix."""
    p = np.asarray(points, np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]


@dataclass(frozen=True)
class AlignedFace:
    png: bytes = field(repr=False)  # the aligned crop, PNG, RGB
    sha256: str                     # of ``png``: the content address of the crop
    size: int                       # the crop is size × size
    matrix: np.ndarray = field(compare=False)  # 2×3, original image pixels -> crop pixels
    residual_px: float = 0.0        # RMS distance of the mapped landmarks from the template
    template: str = "arcface-112"

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.png)).convert("RGB")

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Original-image points in crop pixels."""
        return apply(self.matrix, points)


def align_face(image: Image.Image | np.ndarray, landmarks: np.ndarray | Face, size: int = 112,
               padding: float = 0.0) -> AlignedFace:
    """Warp the face whose five landmarks are given onto the ArcFace template (``size`` px)."""
    if isinstance(landmarks, Face):
        if landmarks.landmarks is None:
            raise ValueError("this face has no landmarks (WholeImage?): nothing to align on")
        landmarks = landmarks.landmarks
    pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
    if pts.shape != (5, 2):
        raise ValueError(f"expected 5 landmarks, got {pts.shape[0]}")
    dst = template(size, padding)
    m = similarity_transform(pts, dst)
    residual = float(np.sqrt(((apply(m, pts) - dst) ** 2).sum(1).mean()))
    # Pillow's AFFINE takes the inverse map: crop (x, y) -> image (a x + b y + c, d x + e y + f)
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    # pixel centres sit at integers here, as in cv2.warpAffine (insightface's norm_crop) and at
    # i + 0.5 in Pillow's continuous coordinates: shift by half a pixel on both sides
    shift_in = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    shift_out = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    inv = (shift_in @ np.linalg.inv(full) @ shift_out)[:2].ravel()
    rgb = Image.fromarray(as_rgb(image))
    crop = rgb.transform((size, size), Image.AFFINE, data=tuple(inv), resample=Image.BILINEAR,
                         fillcolor=(0, 0, 0))
    buf = io.BytesIO()
    crop.save(buf, format="PNG", compress_level=6)
    png = buf.getvalue()
    return AlignedFace(png=png, sha256=hashlib.sha256(png).hexdigest(), size=size, matrix=m,
                       residual_px=residual,
                       template="arcface-112" if size == 112 and padding == 0
                       else f"arcface-112@{size}px+pad{padding:g}")
