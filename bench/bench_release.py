"""Benchmark releases (ops.release): freezing a warehouse, and the Hugging Face / WebDataset exports.

    .venv/bin/python bench/bench_release.py [--sizes 1000,4000,16000] [--budget 600]   (from the repo root)

For each size N a synthetic warehouse is built in a temporary directory (its own subprocess): N
photo-like 320x240 JPEGs (colour field, shapes, grain; ~5 % also get a re-encoded near duplicate
that only ``duplicate_groups`` lists), one face crop (64x64 PNG cut from the image) for every
second image, and the tables a release reads: unique_images, duplicate_groups, merged_annotations
(plutchik24, Emo8), kept_images, faces, soft_labels (AffectNet-8, summing to 1, with the crop's
sha256 as the real SOFT_LABELS_SCHEMA has it) and dataset_splits (findingemo_80_20 image rows,
source face rows). Then, each step in a fresh subprocess:

1. ``make_release`` without exports (freeze: tables, hard-linked images, manifest hashing,
   datasheet, contact sheets), then ``verify`` of the release (any problem aborts the benchmark),
   with a breakdown of the freeze by part;
2. ``export_hf`` and ``export_webdataset`` on that release (the row counts per split are checked
   against the generated data, and a sample of each is read back);
3. the same three steps again under tracemalloc, on a second release of the same data;
4. a second version of the release (1.1.0 after 1.0.0: changes.json diffs every table).

Memory per step: tracemalloc peak (Python allocations only), the Arrow memory pool's peak, the
process's peak RSS (VmHWM of the subprocess, and the growth of ru_maxrss over the baseline taken after
the imports) and the peak anonymous RSS sampled every 20 ms. 16000 runs only if the rounds before it
predict that the whole script stays within ``--budget`` seconds. Results: bench/results/release.md.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results" / "release.md"
EMO8 = ["Joy", "Trust", "Fear", "Surprise", "Sadness", "Disgust", "Anger", "Anticipation"]
AFFECTNET8 = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
SOFT = [c.lower() for c in AFFECTNET8]
CONFIG_YAML = "data_dir: ./data\nbench_release: true\n"
FINGERPRINT = "benchfp000000000"
OUT: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    OUT.append(line)


# ---- memory probes (in the step's subprocess) ------------------------------------------------------
def _status() -> dict[str, float]:
    """VmHWM, VmRSS, RssAnon, RssFile of this process in MiB (/proc/self/status)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) / 1024
    except OSError:
        pass
    return out


def _maxrss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Sampler:
    """Peak RssAnon / RssFile, sampled every ``every`` seconds in a thread (misses spikes shorter than that)."""

    def __init__(self, every: float = 0.02):
        self.every, self.anon, self.file = every, 0.0, 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            s = _status()
            self.anon, self.file = max(self.anon, s.get("RssAnon", 0)), max(self.file, s.get("RssFile", 0))
            self._stop.wait(self.every)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        s = _status()
        self.anon, self.file = max(self.anon, s.get("RssAnon", 0)), max(self.file, s.get("RssFile", 0))


def _du(path: Path, skip: str | None = None) -> int:
    total = 0
    for d, dirs, files in os.walk(path):
        if skip:
            dirs[:] = [x for x in dirs if x != skip]
        total += sum(os.stat(os.path.join(d, f)).st_size for f in files)
    return total


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


# ---- the synthetic warehouse (child "build") -------------------------------------------------------
def build_child(root: Path, n: int, seed: int) -> dict:
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image, ImageDraw, ImageFilter

    from warehouse.store import Warehouse

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    wh = Warehouse(root).ensure()

    def jpeg(img, q):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=q)
        return buf.getvalue()

    def put(data: bytes) -> str:
        return wh.blobs.put(data, durable=False)   # setup, not measured: no fsync per blob

    uniq, dups, merged, kept, faces, soft, splits = [], [], [], [], [], [], []
    img_bytes = crop_bytes = 0
    t_first = pd.Timestamp("2024-01-01 00:00:00")
    grain = rng.integers(-10, 11, (480, 640, 3), dtype=np.int16)   # cropped at a random offset per image
    for i in range(n):
        w, h = 320, 240
        base = rng.integers(0, 256, (int(rng.integers(2, 5)), int(rng.integers(2, 5)), 3), dtype=np.uint8)
        img = Image.fromarray(base, "RGB").resize((w, h), Image.Resampling.BICUBIC)
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 9))):
            x0, y0 = int(rng.integers(-40, w)), int(rng.integers(-30, h))
            x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
            col = tuple(int(c) for c in rng.integers(0, 256, 3))
            (d.ellipse if rng.integers(2) else d.rectangle)([x0, y0, x1, y1], fill=col)
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
        gy, gx = int(rng.integers(0, 480 - h)), int(rng.integers(0, 640 - w))
        a = np.asarray(img, np.int16) + grain[gy:gy + h, gx:gx + w]
        img = Image.fromarray(a.clip(0, 255).astype(np.uint8), "RGB")
        data = jpeg(img, int(rng.integers(80, 93)))
        sha = put(data)
        img_bytes += len(data)
        host = ("a.example.com", "b.example.org", "c.example.net")[i % 3]
        uniq.append({"sha256": sha, "url": f"https://{host}/img/{i}.jpg",
                     "final_url": f"https://{host}/final/{i}.jpg" if i % 4 == 0 else None,
                     "query": f"query {i % 50}", "width": w, "height": h, "image_format": "jpeg",
                     "first_seen": t_first + pd.Timedelta(minutes=i)})
        if i % 20 == 7:        # a near duplicate (re-encoded), listed only in duplicate_groups
            dup = put(jpeg(img, 55))
            dups += [{"sha256": sha, "group_id": sha, "is_representative": True, "group_size": 2},
                     {"sha256": dup, "group_id": sha, "is_representative": False, "group_size": 2}]
        else:
            dups.append({"sha256": sha, "group_id": sha, "is_representative": True, "group_size": 1})
        p_keep = float(rng.uniform(0, 1))
        kept.append({"sha256": sha, "p_keep": round(p_keep, 4), "kept": p_keep >= 0.3,
                     "status": "kept" if p_keep >= 0.3 else "rejected"})
        if i % 10 != 9:        # 90 % annotated; 80/20 split of those
            e8 = EMO8[int(rng.integers(0, 8))]
            iid = f"img{i:06d}"
            merged.append({"image_id": iid, "taxonomy": "plutchik24", "sha256": sha, "emotion8": e8,
                           "valence_mean": round(float(rng.uniform(-3, 3)), 3),
                           "arousal_mean": round(float(rng.uniform(0, 6)), 3), "keep_majority": "keep"})
            splits.append({"scheme": "findingemo_80_20", "item_id": iid, "item_kind": "image",
                           "split": "train" if rng.random() < 0.8 else "test", "sha256": sha, "group_id": sha,
                           "label": e8, "seed": 0, "source_split": None})
        if i % 2 == 0:         # one face on every second image
            x, y = int(rng.integers(0, w - 64)), int(rng.integers(0, h - 64))
            buf = io.BytesIO()
            img.crop((x, y, x + 64, y + 64)).save(buf, "PNG")
            crop = put(buf.getvalue())
            crop_bytes += buf.tell()
            fid = f"{sha}:0"
            faces.append({"face_id": fid, "sha256": sha, "crop_sha256": crop, "x": float(x), "y": float(y),
                          "w": 64.0, "h": 64.0, "mode": "detect"})
            p = rng.dirichlet(np.full(8, 0.6))
            hard = AFFECTNET8[int(rng.integers(0, 8))] if rng.random() < 0.9 else None
            diff = None
            if hard is not None:
                rank = int((p > p[AFFECTNET8.index(hard)]).sum())
                diff = "Easy" if rank == 0 else ("Challenging" if rank <= 2 else "Difficult")
            fsplit = "train" if rng.random() < 0.85 else "validation"
            soft.append({"face_id": fid, **{c: float(v) for c, v in zip(SOFT, p)}, "hard_label": hard,
                         "difficulty": diff, "sha256": sha, "crop_sha256": crop, "mode": "detect", "split": fsplit})
            splits.append({"scheme": "source", "item_id": fid, "item_kind": "face", "split": fsplit, "sha256": sha,
                           "group_id": sha, "label": hard, "seed": 0, "source_split": fsplit})
    t_gen = time.perf_counter() - t0
    assert len({r["sha256"] for r in uniq} | {r["crop_sha256"] for r in faces}) == len(uniq) + len(faces)
    tables = {"unique_images": uniq, "duplicate_groups": dups, "merged_annotations": merged, "kept_images": kept,
              "faces": faces, "soft_labels": soft, "dataset_splits": splits}
    for name, rows in tables.items():
        wh.write_table(name, pd.DataFrame(rows), refresh=False)
    wh.refresh_catalog()
    count = lambda rows: {s: sum(1 for r in rows if r["split"] == s) for s in sorted({r["split"] for r in rows})}
    img_split = {r["sha256"]: r["split"] for r in splits if r["scheme"] == "findingemo_80_20"}
    exp_images = {}
    for r in uniq:
        s = img_split.get(r["sha256"], "unsplit")
        exp_images[s] = exp_images.get(s, 0) + 1
    exp = {"n": n, "images": dict(sorted(exp_images.items())),
           "faces": count([r for r in splits if r["scheme"] == "source"]),
           "rows": {k: len(v) for k, v in tables.items()}, "n_release_images": len(uniq) + len(faces),
           "image_mb": img_bytes / 2**20, "crop_mb": crop_bytes / 2**20,
           "gen_s": t_gen, "build_s": time.perf_counter() - t0}
    (root / "bench_expected.json").write_text(json.dumps(exp, indent=1))
    return exp


# ---- the steps (children "freeze", "hf", "wds") ----------------------------------------------------
def step_child(step: str, root: Path, name: str, version: str, trace: bool) -> dict:
    import tracemalloc

    import datasets  # noqa: F401  - imported before the baseline, as the steps import them
    import duckdb  # noqa: F401
    import pyarrow as pa
    import webdataset  # noqa: F401

    import ops.release as rel
    from ops.release import datasheet, exports, freeze
    from warehouse.store import Warehouse

    exp = json.loads((root / "bench_expected.json").read_text())
    wh = Warehouse(root)
    pool = pa.default_memory_pool()
    parts: dict[str, float] = {}

    def timed(label, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                parts[label] = parts.get(label, 0.0) + time.perf_counter() - t
        return wrapper

    if step == "freeze":
        rel.code_version = timed("code_version (hash ops/, models/, warehouse/ sources)", rel.code_version)
        wh.read_arrow = timed("read warehouse tables", wh.read_arrow)
        freeze._link = timed("hard-link images", freeze._link)
        rel.release_pictures = timed("contact sheets (pictures)", rel.release_pictures)
        datasheet.build_datasheet = timed("datasheet", datasheet.build_datasheet)
        freeze.sha256_file = timed("manifest: SHA-256 of every file", freeze.sha256_file)
        freeze._changes = timed("changes.json (diff against previous)", freeze._changes)

        def run():
            return rel.make_release(wh, name=name, version=version, config_yaml=CONFIG_YAML,
                                    config_fingerprint=FINGERPRINT, formats=())
    elif step == "hf":
        import datasets as hf

        exports.splits_of = timed("splits_of (SQL per collection)", exports.splits_of)
        hf.Dataset.from_generator = timed("Dataset.from_generator (SQL, read images, write Arrow cache)",
                                          hf.Dataset.from_generator)
        hf.DatasetDict.save_to_disk = timed("DatasetDict.save_to_disk (copy cache to dest)", hf.DatasetDict.save_to_disk)
        dest = wh.release_export_path(name, version, "hf")

        def run():
            return exports.export_hf(wh.release_path(name, version), dest)
    else:
        import webdataset as wds

        exports.splits_of = timed("splits_of (SQL per collection)", exports.splits_of)
        wds.ShardWriter.write = timed("ShardWriter.write (tar)", wds.ShardWriter.write)
        dest = wh.release_export_path(name, version, "webdataset")

        def run():
            return exports.export_webdataset(wh.release_path(name, version), dest)

    st0, rss0 = _status(), _maxrss()
    if trace:
        tracemalloc.start()
    with Sampler() as smp:
        t0, c0 = time.perf_counter(), _cpu()
        out = run()
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
    tm_peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    if trace:
        tracemalloc.stop()
    st1, rss1 = _status(), _maxrss()
    res = {"step": step, "n": exp["n"], "trace": trace, "wall": wall, "cpu": cpu, "parts": parts,
           "tracemalloc_peak_mb": tm_peak, "arrow_pool_peak_mb": pool.max_memory() / 2**20,
           "hwm0": st0.get("VmHWM"), "hwm1": st1.get("VmHWM"), "maxrss0": rss0, "maxrss1": rss1,
           "anon0": st0.get("RssAnon"), "anon_peak": smp.anon, "file_peak": smp.file}

    # checks (not timed): a broken release or export must not produce numbers
    rpath = wh.release_path(name, version)
    if step == "freeze":
        assert out["reused"] is False, "the release existed already"
        m = out["manifest"]
        assert m["n_images"] == exp["n_release_images"], (m["n_images"], exp["n_release_images"])
        assert m["tables"] == exp["rows"], (m["tables"], exp["rows"])
        t0 = time.perf_counter()
        problems = freeze.verify(rpath)
        res["verify_s"] = time.perf_counter() - t0
        assert problems == [], problems[:5]
        res["n_files"] = len(m["files"])
        res["release_mb_no_images"] = _du(rpath, skip="images") / 2**20
        res["pictures"] = sorted(p.name for p in (rpath / "pictures").glob("*.png"))
        res["previous"] = m["previous"]
    elif step == "hf":
        assert out == {"images": exp["images"], "faces": exp["faces"]}, (out, exp["images"], exp["faces"])
        import datasets as hf

        dd = hf.load_from_disk(str(dest / "images"))
        assert {k: len(v) for k, v in dd.items()} == exp["images"]
        im = dd["train"][0]["image"]
        assert im.size == (320, 240), im.size
        fd = hf.load_from_disk(str(dest / "faces"))
        assert fd["train"][0]["image"].size == (64, 64)
        res["export_mb"] = _du(dest) / 2**20
    else:
        import tarfile

        assert out == {"images": exp["images"], "faces": exp["faces"]}, (out, exp["images"], exp["faces"])
        got: dict = {}
        shards = sorted(dest.glob("*.tar"))
        for sh in shards:
            col, split = sh.name.split("-")[:2]
            with tarfile.open(sh) as tf:
                got.setdefault(col, {}).setdefault(split, 0)
                got[col][split] += sum(1 for m in tf.getmembers() if m.name.endswith(".json"))
        assert got == {"images": exp["images"], "faces": exp["faces"]}, got
        res["shards"] = len(shards)
        res["export_mb"] = _du(dest) / 2**20
    res["samples"] = exp["n_release_images"]
    return res


def versions_child() -> dict:
    import datasets
    import duckdb
    import PIL
    import pyarrow
    import webdataset

    try:
        from importlib.metadata import version
        wds_v = version("webdataset")
    except Exception:  # noqa: BLE001
        wds_v = getattr(webdataset, "__version__", "?")
    return {"python": platform.python_version(), "datasets": datasets.__version__, "webdataset": wds_v,
            "pyarrow": pyarrow.__version__, "duckdb": duckdb.__version__, "Pillow": PIL.__version__}


# ---- the parent ------------------------------------------------------------------------------------
def child(*args: str) -> dict:
    """Run this script as a subprocess; its last stdout line is the JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-6000:])
        raise SystemExit(f"child {' '.join(args)} failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_size(tmp: Path, n: int) -> dict:
    root = tmp / f"n{n}" / "data"
    root.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    r = {"build": child("build", "--root", str(root), "--n", str(n))}
    print(f"  N={n}: warehouse built in {r['build']['build_s']:.0f}s", flush=True)
    plan = [("freeze", "bench", "1.0.0", False), ("hf", "bench", "1.0.0", False), ("wds", "bench", "1.0.0", False),
            ("freeze", "bench-tm", "1.0.0", True), ("hf", "bench-tm", "1.0.0", True),
            ("wds", "bench-tm", "1.0.0", True), ("freeze", "bench", "1.1.0", False)]
    for step, name, version, trace in plan:
        key = f"{step}{'-tm' if trace else ''}{'-v2' if version != '1.0.0' else ''}"
        args = [step, "--root", str(root), "--name", name, "--version", version] + (["--trace"] if trace else [])
        r[key] = child(*args)
        print(f"  N={n}: {key:10s} {r[key]['wall']:6.1f}s  VmHWM {r[key]['hwm1']:.0f} MiB", flush=True)
    shutil.rmtree(root.parent, ignore_errors=True)
    r["round_s"] = time.perf_counter() - t0
    return r


def mb(x) -> str:
    return "–" if x is None else f"{x:.0f}"


def report(results: dict[int, dict], vers: dict, args, skipped: str, total: float) -> None:
    sizes = sorted(results)
    say("# Release benchmark: freeze (make_release), verify, Hugging Face and WebDataset exports\n")
    opts = "" if args.sizes == "1000,4000,16000" and args.budget == 600 else \
        f" --sizes {args.sizes} --budget {args.budget:g}"
    say(f"- Reproduce: `.venv/bin/python bench/bench_release.py{opts}` (from the repo root; the warehouses are "
        "built in a temporary directory and removed)")
    say(f"- Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    say(f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores **shared with other "
        "engineers** (wall-clock timings are noisy: compare within this run, and look at CPU time too)")
    say(f"- Software: Python {vers['python']}, datasets {vers['datasets']}, webdataset {vers['webdataset']}, "
        f"pyarrow {vers['pyarrow']}, duckdb {vers['duckdb']}, Pillow {vers['Pillow']}")
    b0 = results[sizes[0]]["build"]
    say(f"- Data per N: N photo-like 320×240 JPEGs (q 80-92, mean {b0['image_mb'] * 1024 / b0['n']:.0f} KB), "
        f"a 64×64 PNG face crop for every second image (mean {b0['crop_mb'] * 1024 / max(1, b0['rows']['faces']):.1f} KB), "
        "a re-encoded near duplicate for 5 % of the images (in duplicate_groups only, not released); "
        "90 % of the images annotated (Emo8) and split 80/20, faces split 85/15 train/validation, 90 % of faces "
        "with a hard label. Release images = N + N/2 (images + crops).")
    say(f"- Sizes run: {', '.join(map(str, sizes))}{skipped}")
    say("- Every step runs in a fresh subprocess (`python bench/bench_release.py --child …`), in this order per N: "
        "build → freeze → hf → webdataset (timed, no tracemalloc) → the same three under tracemalloc on a second "
        "release (`bench-tm`) of the same data → freeze of version 1.1.0 after 1.0.0. Every freeze is followed by "
        "`verify()` (asserted empty) and a check of the manifest's image and row counts; every export's rows per "
        "split are asserted equal to the generated data and a sample is read back.\n")

    say("## 1. Time\n")
    say("images/s = release images (N + N/2: images and face crops) per wall second; an export writes each of "
        "them once as a sample. CPU = user + system time of the step's process (DuckDB threads included).\n")
    say("| step | N | wall s | CPU s | images/s | written |")
    say("|---|---:|---:|---:|---:|---|")
    labels = [("freeze", "make_release, no exports (freeze)"), ("hf", "export_hf"), ("wds", "export_webdataset"),
              ("freeze-v2", "make_release 1.1.0 after 1.0.0 (diff)")]
    for key, label in labels:
        for n in sizes:
            s = results[n][key]
            if key.startswith("freeze"):
                wr = f"{s['n_files']} files in the manifest; {s['release_mb_no_images']:.1f} MB besides the hard-linked images"
            elif key == "hf":
                wr = f"{s['export_mb']:.0f} MB (save_to_disk)"
            else:
                wr = f"{s['export_mb']:.0f} MB in {s['shards']} shards"
            say(f"| {label} | {n} | {s['wall']:.2f} | {s['cpu']:.2f} | {s['samples'] / s['wall']:.0f} | {wr} |")
    say("| verify() of the release (in the freeze process, after it) | " + " / ".join(str(n) for n in sizes) + " | "
        + " / ".join(f"{results[n]['freeze']['verify_s']:.2f}" for n in sizes) + " | | "
        + " / ".join(f"{results[n]['freeze']['samples'] / results[n]['freeze']['verify_s']:.0f}" for n in sizes)
        + " | reads and hashes every file again |")
    say("| building the synthetic warehouse (setup, not the release) | " + " / ".join(str(n) for n in sizes) + " | "
        + " / ".join(f"{results[n]['build']['build_s']:.1f}" for n in sizes) + " | | | |")

    say("\nWhere the time goes (seconds inside each part, from the timed runs; the rest is sorting the tables, "
        "writing Parquet, listing files, chmod, JSON):\n")
    for key, label in (("freeze", "freeze"), ("hf", "export_hf"), ("wds", "export_webdataset"),
                       ("freeze-v2", "freeze 1.1.0 (diff)")):
        names = []
        for n in sizes:
            for k in results[n][key]["parts"]:
                if k not in names:
                    names.append(k)
        say(f"| {label}: part | " + " | ".join(f"N={n}" for n in sizes) + " |")
        say("|---|" + "---:|" * len(sizes))
        for k in names:
            say(f"| {k} | " + " | ".join(
                f"{results[n][key]['parts'].get(k, 0):.2f} s ({results[n][key]['parts'].get(k, 0) / results[n][key]['wall']:.0%})"
                for n in sizes) + " |")
        say("| rest | " + " | ".join(
            f"{results[n][key]['wall'] - sum(results[n][key]['parts'].values()):.2f} s" for n in sizes) + " |")
        say("")

    say("## 2. Memory\n")
    say("Per step, in its own subprocess. **tracemalloc peak**: Python allocations only (not Arrow buffers, not "
        "DuckDB), from the run under tracemalloc. **Arrow pool peak**: pyarrow's default memory pool "
        "(`max_memory()`). **VmHWM**: the step process's peak RSS (/proc/self/status; the process started after "
        "`exec`, so it is the step's own). **ru_maxrss growth**: `getrusage(RUSAGE_SELF).ru_maxrss` at the end "
        "minus the same value after the imports; ru_maxrss is a high-water mark of the process (it never goes "
        "down), so the growth is what the step added on top of the imports, and 0 means the step stayed under "
        "the import-time peak. **Peak anon RSS**: RssAnon (heap, not file-backed pages such as memory-mapped Arrow "
        "files or the page cache) sampled every 20 ms. The RSS figures are from the timed runs, tracemalloc from "
        "the traced ones (tracemalloc adds its own bookkeeping to the RSS).\n")
    say("| step | N | tracemalloc peak MiB | Arrow pool peak MiB | VmHWM after imports → end MiB | ru_maxrss growth MiB "
        "| peak anon RSS MiB (growth) | peak file-backed RSS MiB |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, label in labels:
        for n in sizes:
            s = results[n][key]
            tm = results[n].get(key.replace("-v2", "") + "-tm", {}) if not key.endswith("v2") else {}
            say(f"| {label} | {n} | {mb(tm.get('tracemalloc_peak_mb'))} | {s['arrow_pool_peak_mb']:.0f} | "
                f"{s['hwm0']:.0f} → {s['hwm1']:.0f} | {s['maxrss1'] - s['maxrss0']:.0f} | "
                f"{s['anon_peak']:.0f} (+{s['anon_peak'] - s['anon0']:.0f}) | {s['file_peak']:.0f} |")

    say("\n## 3. Scaling from N to 4N\n")
    say("Ratio of the larger size's figure to the smaller one's (4.0 = linear in N; 1.0 = flat).\n")
    pairs = [(a, b) for a in sizes for b in sizes if b == 4 * a]
    say("| step | sizes | wall | CPU | tracemalloc peak | Arrow pool peak | VmHWM growth over imports | peak anon RSS growth |")
    say("|---|---|---:|---:|---:|---:|---:|---:|")

    def ratio(x, y):
        return "–" if x is None or y is None or x <= 0 else f"{y / x:.2f}×"

    for key, label in labels:
        for a, b in pairs:
            sa, sb = results[a][key], results[b][key]
            ta = results[a].get(key + "-tm", {}).get("tracemalloc_peak_mb")
            tb = results[b].get(key + "-tm", {}).get("tracemalloc_peak_mb")
            ga, gb = sa["hwm1"] - sa["hwm0"], sb["hwm1"] - sb["hwm0"]
            aa, ab = sa["anon_peak"] - sa["anon0"], sb["anon_peak"] - sb["anon0"]
            say(f"| {label} | {a} → {b} | {ratio(sa['wall'], sb['wall'])} | {ratio(sa['cpu'], sb['cpu'])} | "
                f"{ratio(ta, tb)} | {ratio(sa['arrow_pool_peak_mb'], sb['arrow_pool_peak_mb'])} | "
                f"{ratio(max(ga, 1), max(gb, 1))} ({ga:.0f} → {gb:.0f} MiB) | "
                f"{ratio(max(aa, 1), max(ab, 1))} ({aa:.0f} → {ab:.0f} MiB) |")
    say("")
    for line in verdicts(results, sizes):
        say(line)
    say("\n## 4. Observations\n")
    for line in observations(results, sizes):
        say(line)
    say(f"\nTotal benchmark time: {total:.0f} s.")


def verdicts(results: dict, sizes: list[int]) -> list[str]:
    """Plain statements of the scaling, computed from the numbers above (last N → 4N step decides)."""
    out = []
    pairs = [(a, b) for a in sizes for b in sizes if b == 4 * a]
    if not pairs:
        return out
    a, b = pairs[-1]

    def grow(x, y, slack=40.0):
        """flat: at most ``slack`` MiB or 20 % more at 4N."""
        if y <= max(1.2 * x, x + slack):
            return f"flat ({x:.0f} → {y:.0f} MiB)"
        return f"grows ×{y / max(x, 1e-9):.1f} ({x:.0f} → {y:.0f} MiB)"

    for key, label in (("freeze", "Freeze"), ("hf", "export_hf"), ("wds", "export_webdataset")):
        sa, sb = results[a][key], results[b][key]
        ta, tb = results[a][key + "-tm"]["tracemalloc_peak_mb"], results[b][key + "-tm"]["tracemalloc_peak_mb"]
        ra, rb = sa["samples"] / sa["wall"], sb["samples"] / sb["wall"]
        note = (": time grows less than N, the fixed costs of the step are amortised" if rb > 1.15 * ra else
                ": time roughly proportional to N" if rb > ra / 1.15 else ": time grows faster than N")
        out.append(
            f"- **{label}**, N={a} → {b}: wall ×{sb['wall'] / sa['wall']:.1f}, CPU ×{sb['cpu'] / sa['cpu']:.1f} "
            f"({ra:.0f} → {rb:.0f} images/s{note}). Memory: Python heap (tracemalloc peak) {grow(ta, tb, 10)}; Arrow pool peak "
            f"{grow(sa['arrow_pool_peak_mb'], sb['arrow_pool_peak_mb'], 10)}; anonymous RSS growth "
            f"{grow(sa['anon_peak'] - sa['anon0'], sb['anon_peak'] - sb['anon0'])}; file-backed RSS peak "
            f"{grow(sa['file_peak'], sb['file_peak'])}; VmHWM growth {grow(sa['hwm1'] - sa['hwm0'], sb['hwm1'] - sb['hwm0'])}.")
    return out


def observations(results: dict, sizes: list[int]) -> list[str]:
    """What the breakdown shows, with this run's numbers (largest N)."""
    n = sizes[-1]
    r = results[n]
    fz, v2, hf, wd = r["freeze"], r["freeze-v2"], r["hf"], r["wds"]
    part = lambda s, k: next((v for kk, v in s["parts"].items() if kk.startswith(k)), 0.0)
    tm = r["freeze-tm"]["tracemalloc_peak_mb"]
    n0 = sizes[0]
    r0 = results[n0]
    f0, tm0 = r0["freeze"], r0["freeze-tm"]["tracemalloc_peak_mb"]
    return [
        (f"- Freeze hashes every file it writes for the manifest, images included ({part(fz, 'manifest') / fz['wall']:.0%} "
         f"of the freeze at N={n}), although an image's file name already is its SHA-256 (the blob store is "
         f"content-addressed); `verify()` reads and hashes everything again ({fz['verify_s']:.1f} s)."),
        (f"- Freeze is not streamed: every table is read into Arrow, sorted (`take`) and kept, and the manifest keeps one "
         f"entry (and one Path) per file: tracemalloc peak {tm0:.0f} MiB at N={n0}, {tm:.0f} MiB at N={n}, i.e. "
         f"{tm0 * 1024 / f0['samples']:.1f} and {tm * 1024 / fz['samples']:.1f} KiB of Python heap per release image."),
        (f"- A second version pays `changes.json`: `table_changes` JSON-encodes and hashes every row of every table "
         f"several times (key, all columns, labels; old and new) in Python: {part(r0['freeze-v2'], 'changes'):.2f} s at "
         f"N={n0}, {part(v2, 'changes'):.2f} s ({part(v2, 'changes') / v2['wall']:.0%} of that freeze) at N={n}."),
        (f"- export_hf writes the data twice: `Dataset.from_generator` into an Arrow cache in the system temp dir, then "
         f"`save_to_disk` copies it to the destination ({part(hf, 'DatasetDict.save') / hf['wall']:.0%} of the export at "
         f"N={n}; {hf['export_mb']:.0f} MB written twice, and as much temporary space needed). Its VmHWM also counts "
         f"file-backed pages (the datasets are memory-mapped Arrow files): file-backed RSS peak "
         f"{r0['hf']['file_peak']:.0f} MiB at N={n0}, {hf['file_peak']:.0f} MiB at N={n}."),
        (f"- Both exports run the full join (with its ORDER BY) once for `splits_of` and again for every split, filtering "
         f"outside the sorted subquery: cheap here ({part(wd, 'splits_of'):.2f} s for the `splits_of` calls at N={n})."),
        (f"- The contact sheets and the datasheet draw a few dozen thumbnails and run a few queries whatever N: "
         f"{part(f0, 'contact') + part(f0, 'datasheet'):.2f} s ({(part(f0, 'contact') + part(f0, 'datasheet')) / f0['wall']:.0%} "
         f"of the freeze) at N={n0}, {part(fz, 'contact') + part(fz, 'datasheet'):.2f} s "
         f"({(part(fz, 'contact') + part(fz, 'datasheet')) / fz['wall']:.0%}) at N={n}."),
        ("- `release_pictures` draws the faces sheet from `soft_labels` without checking its columns (the other two "
         "sheets check theirs): a soft_labels table without `crop_sha256` makes `make_release` fail with "
         "KeyError 'crop_sha256'. The real SOFT_LABELS_SCHEMA has the column, so this benchmark's soft_labels carries it."),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,4000,16000")
    ap.add_argument("--budget", type=float, default=600.0,
                    help="seconds for the whole script: a size runs only if the previous one predicts it fits")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", nargs="?", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path)
    ap.add_argument("--n", type=int)
    ap.add_argument("--name")
    ap.add_argument("--version")
    ap.add_argument("--trace", action="store_true")
    args = ap.parse_args()
    if args.child == "build":
        print(json.dumps(build_child(args.root, args.n, seed=args.n)))
        return
    if args.child == "versions":
        print(json.dumps(versions_child()))
        return
    if args.child:
        print(json.dumps(step_child(args.child, args.root, args.name, args.version, args.trace)))
        return

    t_all = time.perf_counter()
    vers = child("versions")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="releasebench-"))
    results: dict[int, dict] = {}
    skipped = ""
    try:
        for i, n in enumerate(sizes):
            if i >= 2:   # predict from the last round: fixed cost per subprocess + work linear in N (+15 %)
                prev = sizes[i - 1]
                r = results[prev]
                work = r["build"]["build_s"] + sum(v["wall"] + v.get("verify_s", 0) for k, v in r.items()
                                                   if isinstance(v, dict) and "wall" in v)
                est = (r["round_s"] - work) + work * n / prev * 1.15
                spent = time.perf_counter() - t_all
                if spent + est > args.budget:
                    skipped = (f" ({n} skipped: the N={prev} round took {results[prev]['round_s']:.0f} s, so N={n} "
                               f"would take ~{est:.0f} s after {spent:.0f} s spent, over the {args.budget:.0f} s budget)")
                    print("skip", n, skipped, flush=True)
                    break
            print(f"N={n}", flush=True)
            results[n] = run_size(tmp, n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, vers, args, skipped, time.perf_counter() - t_all)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(OUT) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
