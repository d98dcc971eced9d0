"""The demo world: synthetic face crops and scenes whose emotional content is known, their simulated
annotation exports, and a truth manifest that tests and benchmarks read and the pipeline never does.

Layout of ``out_dir`` (written by :func:`build_world`)::

    faces/face-0001.jpg ...      the AffectNet branch: one face per image (a few non-faces), square
    scenes/scene-0001.jpg ...    the FindingEmo branch: scenes 900-1500 px wide, keeps and rejects
    annotations/findingemo.ann   FindingEmo .ann export of the scenes (gold images + overlap)
    annotations/gold.csv         reference answers of the 5 gold images (FindingEmo §2.3.3)
    annotations/face_votes.csv   AffectNet-style vote counts per face, with a split column
    truth/faces.json             per face image: file, sha256, AUs, mixture, V/A, landmarks, pose, attributes ...
    truth/scenes.json            per scene: file, sha256, image_path, keep / reject reason, mixture, V/A, people ...
    truth/annotators.json        the simulated annotators (ids, kinds, configured rates) and the gold ids
    world.json                   manifest: params, file sizes and SHA-256 (written last)

Face image size: the acquisition width filter keeps 800 < w < 1600 (FindingEmo §2.3.1), so face
crops default to 896 x 896 (a demo serving them as downloads passes the filter); models crop and
resize to 64-112 px anyway. ``face_size`` makes them smaller for tests.

Deterministic: every image is drawn from its own generator seeded by (seed, branch, index), so the
same parameters give the same bytes. Idempotent like :func:`ops.demo.corpus.build_corpus`: when the
manifest describes the same parameters and every file is intact (sizes), nothing is rewritten. Files
are written atomically and the manifest last. ``workers`` > 1 renders in that many processes (same
bytes). Build time on this machine (one worker, 2 cores shared with other jobs): 61-82 s for the
default 400 faces + 200 scenes (about 90 MB); a tiny test world (24 faces of 256 px, 20 scenes) ~5 s.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ops.demo import annotators as A
from ops.demo.affect import face_va
from ops.demo.face_render import add_grain, backdrop, render_face
from ops.demo.faces import EMOTIONS, EXPRESSION_NOISE, sample_face
from ops.demo.scenes import REJECT_TAGS, make_scene

WORLD_VERSION = 1
MANIFEST = "world.json"
ANN_FILE, GOLD_FILE, VOTES_FILE = "annotations/findingemo.ann", "annotations/gold.csv", "annotations/face_votes.csv"
TRUTH_FACES, TRUTH_SCENES, TRUTH_ANNOTATORS = "truth/faces.json", "truth/scenes.json", "truth/annotators.json"
JPEG_QUALITY = 90


@dataclass(frozen=True)
class World:
    """A built demo world: its directory, parameters and truth (tests and benchmarks only)."""

    out_dir: Path
    params: dict[str, Any]
    faces: list[dict[str, Any]]
    scenes: list[dict[str, Any]]
    annotators: dict[str, Any]

    @property
    def ann_path(self) -> Path:
        return self.out_dir / ANN_FILE

    @property
    def gold_path(self) -> Path:
        return self.out_dir / GOLD_FILE

    @property
    def votes_path(self) -> Path:
        return self.out_dir / VOTES_FILE

    def path(self, record: dict[str, Any]) -> Path:
        """The image file of a face or scene record."""
        return self.out_dir / record["file"]


# ---- one item ---------------------------------------------------------------------------------------

def _jpeg(img: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _nonface(size: int, rng: np.random.Generator) -> Image.Image:
    """A crop without a face (objects on a blurred background): the "Non-Face" items."""
    img = backdrop((size, size), rng)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        x, y, r = rng.uniform(0.1, 0.9, 2).tolist() + [rng.uniform(0.08, 0.3)]
        fill = tuple(int(v) for v in rng.uniform(20, 240, 3))
        box = [(x - r) * size, (y - r) * size, (x + r) * size, (y + r) * size]
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill)
    return add_grain(img, rng)


def _face_item(args: tuple) -> tuple[bytes, dict[str, Any]]:
    seed, i, size, dominant, is_face, split, compound_p, intensity, render_size, face_fraction = args
    rng = np.random.default_rng([seed, 1, i])
    final = size
    size = render_size or size   # drawn at render_size, scaled up to the served size below
    rec: dict[str, Any] = {"item_id": f"face-{i + 1:04d}", "file": f"faces/face-{i + 1:04d}.jpg", "split": split}
    if not is_face:
        img = _nonface(size, rng)
        rec.update({"is_face": False, "dominant_emotion": None, "emotion_mixture": {}, "intensity": 0.0,
                    "landmarks": None, "face_box": None, "width": size, "height": size})
    else:
        spec = sample_face(rng, dominant, compound_p=compound_p, intensity=intensity, **EXPRESSION_NOISE)
        img, truth = render_face(spec, size, rng=rng, face_fraction=face_fraction)
        rec.update({"is_face": True, **truth})
        rec["valence"], rec["arousal"] = face_va(truth["emotion_mixture"], truth["intensity"])
    rec["clarity"] = round(A.face_clarity(rec), 4)
    if final != size:  # scale the image and every pixel coordinate of the truth to the served size
        img = img.resize((final, final), Image.Resampling.LANCZOS)
        _scale_truth(rec, final / size)
    data = _jpeg(img)
    rec["sha256"] = hashlib.sha256(data).hexdigest()
    return data, rec


def _scale_truth(rec: dict[str, Any], f: float) -> None:
    """Pixel coordinates of a face's truth (landmarks, face box, size) scaled by ``f``."""
    if rec.get("landmarks") is not None:
        rec["landmarks"] = [[round(x * f, 2), round(y * f, 2)] for x, y in rec["landmarks"]]
    for key in ("face_box", "head_box"):
        box = rec.get(key)
        if isinstance(box, (list, tuple)):
            rec[key] = [round(v * f, 2) for v in box]
    for k in ("width", "height"):
        if isinstance(rec.get(k), (int, float)):
            rec[k] = int(round(rec[k] * f))


def _scene_item(args: tuple) -> tuple[bytes, dict[str, Any]]:
    seed, i, kind = args
    rng = np.random.default_rng([seed, 2, i])
    img, truth = make_scene(rng, kind)
    name = f"scene-{i + 1:04d}.jpg"
    data = _jpeg(img)
    sha = hashlib.sha256(data).hexdigest()
    # the annotation export names the image by its content hash (the file name of its FindingEmo-style
    # path), so annotations link to the acquired image whatever URL it was found at
    rec = {"item_id": f"scene-{i + 1:04d}", "file": f"scenes/{name}",
           "image_path": f"/Run_1/{truth['query']}/{sha}.jpg", "sha256": sha, **truth}
    return data, rec


# ---- planning -----------------------------------------------------------------------------------------

def _face_plan(seed: int, n: int, size: int, non_face_fraction: float, compound_p: float,
               intensity: tuple[float, float], render_size: int | None = None, face_fraction: float = 0.6) -> list[tuple]:
    rng = np.random.default_rng([seed, 0, 1])
    n_non = round(non_face_fraction * n)
    labels = [EMOTIONS[k % len(EMOTIONS)] for k in range(n - n_non)] + [None] * n_non  # balanced classes
    rng.shuffle(labels)
    splits = np.where(rng.random(n) < 0.8, "train", "validation")
    return [(seed, i, size, lab, lab is not None, str(splits[i]), compound_p, tuple(intensity), render_size, face_fraction)
            for i, lab in enumerate(labels)]


def _scene_plan(seed: int, n: int, reject_fraction: float) -> list[tuple]:
    rng = np.random.default_rng([seed, 0, 2])
    kinds = list(REJECT_TAGS)
    n_rej = round(reject_fraction * n)
    plan = [kinds[k % len(kinds)] for k in range(n_rej)] + ["keep"] * (n - n_rej)
    rng.shuffle(plan)
    return [(seed, i, k) for i, k in enumerate(plan)]


# ---- building ------------------------------------------------------------------------------------------

def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def load_world(out_dir: str | Path) -> World:
    """A built world (its manifest and truth files)."""
    out_dir = Path(out_dir)
    m = _read_manifest(out_dir)
    if m is None:
        raise FileNotFoundError(f"no demo world manifest in {out_dir}")
    read = lambda rel: json.loads((out_dir / rel).read_text())
    return World(out_dir, m["params"], read(TRUTH_FACES), read(TRUTH_SCENES), read(TRUTH_ANNOTATORS))


def _map(fn, items: list, workers: int):
    if workers <= 1 or len(items) < 8:
        return map(fn, items)
    ex = ProcessPoolExecutor(max_workers=workers)
    try:
        return list(ex.map(fn, items, chunksize=4))
    finally:
        ex.shutdown()


def build_world(out_dir: str | Path, *, seed: int = 11, n_faces: int = 400, n_scenes: int = 200,
                face_size: int = 896, reject_fraction: float = 0.25, non_face_fraction: float = 0.02,
                compound_p: float = 0.3, intensity: tuple[float, float] = (0.45, 1.0),
                n_scene_annotators: int = 14, n_face_annotators: int = 20, votes_per_face: int = 10,
                overlap_fraction: float = 0.2, workers: int = 1, render_size: int | None = None,
                face_fraction: float = 0.6) -> World:
    """Write the demo world into ``out_dir`` (layout in the module docstring) and return it.

    ``reject_fraction`` of the scenes are rejects, spread over the five reject kinds of FindingEmo
    §2.3.2; ``non_face_fraction`` of the face images hold no face; faces cycle over the 8 AffectNet
    emotions (balanced), a ``compound_p`` share as two-emotion compounds, at ``intensity`` (range).
    ``workers`` does not enter the parameters: it changes no byte.
    """
    out_dir = Path(out_dir)
    params = {"version": WORLD_VERSION, "seed": int(seed), "n_faces": int(n_faces), "n_scenes": int(n_scenes),
              "face_size": int(face_size), "reject_fraction": float(reject_fraction),
              "non_face_fraction": float(non_face_fraction), "compound_p": float(compound_p),
              "intensity": [float(x) for x in intensity], "n_scene_annotators": int(n_scene_annotators),
              "n_face_annotators": int(n_face_annotators), "votes_per_face": int(votes_per_face),
              "overlap_fraction": float(overlap_fraction),
              "render_size": None if render_size in (None, face_size) else int(render_size),
              **({"face_fraction": float(face_fraction)} if face_fraction != 0.6 else {})}
    old = _read_manifest(out_dir)
    if old is not None and old.get("params") == params and all(
        (out_dir / f).is_file() and (out_dir / f).stat().st_size == size for f, size in old["files"].items()
    ):
        return load_world(out_dir)
    if n_scenes < 6:
        raise ValueError("n_scenes must be at least 6 (5 gold images + one more)")
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, int] = {}
    digests: dict[str, str] = {}

    def put(rel: str, data: bytes) -> None:
        _write_atomic(out_dir / rel, data)
        files[rel] = len(data)
        digests[rel] = hashlib.sha256(data).hexdigest()

    faces, scenes = [], []
    for data, rec in _map(_face_item, _face_plan(seed, n_faces, face_size, non_face_fraction, compound_p, intensity,
                                                  None if render_size in (None, face_size) else render_size, face_fraction), workers):
        put(rec["file"], data)
        faces.append(rec)
    for data, rec in _map(_scene_item, _scene_plan(seed, n_scenes, reject_fraction), workers):
        put(rec["file"], data)
        scenes.append(rec)

    rng = np.random.default_rng([seed, 3])
    scene_ann = A.make_annotators(A.default_scene_annotators(n_scene_annotators), rng)
    face_ann = A.make_annotators(A.default_face_annotators(n_face_annotators), rng)
    gold = A.choose_gold(scenes)
    for i, s in enumerate(scenes):
        s["is_gold"] = i in gold
    rows = A.simulate_findingemo(scenes, scene_ann, rng, gold=gold, overlap_fraction=overlap_fraction)
    gold_rows = [A.gold_reference(scenes[i], scenes[i]["image_path"]) for i in gold]
    votes = A.simulate_votes(faces, face_ann, rng, n_votes=votes_per_face)
    put(ANN_FILE, A.ann_bytes(rows))
    put(GOLD_FILE, A.gold_bytes(gold_rows))
    put(VOTES_FILE, A.votes_bytes(votes))
    ann_truth = {"scene_annotators": [a.to_dict() for a in scene_ann], "face_annotators": [a.to_dict() for a in face_ann],
                 "gold": [scenes[i]["image_path"] for i in gold], "gold_references": gold_rows}
    put(TRUTH_FACES, json.dumps(faces, sort_keys=True).encode())
    put(TRUTH_SCENES, json.dumps(scenes, sort_keys=True).encode())
    put(TRUTH_ANNOTATORS, json.dumps(ann_truth, indent=1, sort_keys=True).encode())
    if old is not None:  # files of an earlier, different world in the same directory
        for f in old.get("files", {}):
            if f not in files and (out_dir / f).is_file():
                (out_dir / f).unlink()
    manifest = {"params": params, "files": files, "sha256": digests}
    _write_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return World(out_dir, params, faces, scenes, ann_truth)


def main(argv: list[str] | None = None) -> None:
    """``python -m ops.demo.world OUT_DIR [--seed N] [--faces N] [--scenes N] [--workers N]``"""
    import argparse
    import time
    p = argparse.ArgumentParser(description="Build the demo world (synthetic faces and scenes with known emotions).")
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--faces", type=int, default=400)
    p.add_argument("--scenes", type=int, default=200)
    p.add_argument("--face-size", type=int, default=896)
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args(argv)
    t = time.perf_counter()
    w = build_world(a.out_dir, seed=a.seed, n_faces=a.faces, n_scenes=a.scenes, face_size=a.face_size, workers=a.workers)
    print(f"{len(w.faces)} faces, {len(w.scenes)} scenes in {w.out_dir} ({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
