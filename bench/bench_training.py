"""Benchmark training on cached features (issue "Training and evaluation").

    .venv/bin/python bench/bench_training.py [--threads 1] [--images 256] [--rounds 5]
                                             [--sizes 200 800 3200] [--runs 1 2]     (from the repo root)

1. One epoch of a linear head (models.heads.LinearHead, Adam, cross-entropy, batch 64) on cached
   features already in memory, vs one epoch that recomputes the backbone's features for every batch
   (Backbone.forward_features: eval, inference mode, the registry's bf16 + channels_last) and then
   trains the same head. Backbones from models/backbones.py with weights="none": tiny_cnn at its demo
   size (112 px) and torchvision resnet18 (224 px). Recomputing is measured twice: from uint8 pixels
   decoded once and kept in memory (forward cost only, the conservative ratio), and from JPEG bytes in
   memory decoded (PIL draft mode, resize, crop) every epoch. Rounds interleaved a, b, c, a, b, c, …;
   medians reported.
2. The whole FindingEmo grid for one backbone (3 tasks × 2 losses × 4 lrs × runs; FindingEmo §3) with
   ops.training.baselines.findingemo_run on synthetic 128-d features with planted class means, for
   n images in --sizes and runs in --runs: wall time of the grid and its peak memory, one fresh
   subprocess per image count running the seeds one after the other (the first r × 24 runs are the
   grid for r runs, read at that mark; tracemalloc peak in a second, traced pass of the same grid;
   VmHWM / ru_maxrss growth over the untraced pass).

Everything is generated in memory (nothing is written but the results); results go to
bench/results/training.md.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import io
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results" / "training.md"
TASKS = ("emo8", "arousal3", "valence3")
LOSSES = ("ce", "uce")
LRS = (0.1, 0.01, 0.001, 0.0001)          # ops.config.training.FindingEmoBaselinesConfig.lrs (§3 grid)
EMO8_P = (0.25, 0.18, 0.08, 0.07, 0.12, 0.05, 0.10, 0.15)  # imbalanced, as FindingEmo's Emo8 is
AROUSAL3_P = (0.20, 0.55, 0.25)
VALENCE3_P = (0.30, 0.40, 0.30)
BATCH = 64                                 # FindingEmoBaselinesConfig.batch_size
med = statistics.median


def mem_status() -> dict[str, float]:
    """VmHWM / VmRSS from /proc (MB) and ru_maxrss (MB). VmHWM starts afresh at exec; ru_maxrss on
    Linux keeps the parent's peak over fork + exec, so the driver stays small while children run."""
    out = {"ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


# ---- 2. the FindingEmo grid (child process) -------------------------------------------------------
def grid_data(n: int, dim: int = 128, seed: int = 0, s8: float = 0.15, s3: float = 0.12):
    """Features = planted class means of Emo8, Arousal3 and Valence3 (independent labels) + N(0, 1)
    noise; the signal is set so that a linear head reaches roughly FindingEmo's accuracies (Emo8
    ~0.5, Arousal3/Valence3 ~0.7 at 3200 images). 80/20 split stratified per Emo8 (FindingEmo §3)."""
    rng = np.random.default_rng(seed)
    e = rng.choice(8, n, p=EMO8_P)
    a = rng.choice(3, n, p=AROUSAL3_P)
    v = rng.choice(3, n, p=VALENCE3_P)
    m8, ma, mv = (rng.normal(size=(k, dim)) for k in (8, 3, 3))
    X = (s8 * m8[e] + s3 * ma[a] + s3 * mv[v] + rng.normal(size=(n, dim))).astype(np.float32)
    is_test = np.zeros(n, bool)
    for c in range(8):
        idx = np.flatnonzero(e == c)
        rng.shuffle(idx)
        is_test[idx[:round(len(idx) * 0.2)]] = True
    return X, {"emo8": e, "arousal3": a, "valence3": v}, is_test


def grid_child(n: int, runs_list: list[int], threads: int) -> None:
    """One process per image count: the grid for max(runs_list) seeds, seed-outer (seed 0's 24 runs, then
    seed 1's, …), so that its first r × 24 runs are exactly the grid for r runs; wall, CPU, resident
    high-water mark and (in a second, traced pass) the tracemalloc peak are read at each such mark."""
    import torch

    torch.set_num_threads(threads)
    import tracemalloc

    from ops.training.baselines import findingemo_run
    from ops.training.tasks import get_task

    mem_imports = mem_status()
    X, Y, is_test = grid_data(n)
    per_seed = len(TASKS) * len(LOSSES) * len(LRS)
    plan = [(t, loss, lr, seed) for seed in range(max(runs_list)) for t in TASKS for loss in LOSSES for lr in LRS]
    marks = {r * per_seed: r for r in runs_list}

    def grid(at_mark):
        outs = []  # held as a build holds them until the tables are written (metrics, curves, model bytes)
        for i, (t, loss, lr, seed) in enumerate(plan, 1):
            outs.append(findingemo_run(X, Y[t], is_test, get_task(t), loss, lr, seed, batch_size=BATCH))
            if i in marks:
                at_mark(marks[i], outs)
        return outs

    findingemo_run(X, Y["emo8"], is_test, get_task("emo8"), "uce", 0.01, 0, max_epochs=2)  # warm-up
    gc.collect()
    mem0 = mem_status()
    res: dict[int, dict] = {}

    def timed(r, outs):
        res[r] = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "mem1": mem_status(),
                  "held_mb": float(sum(len(o.model_bytes) + o.metrics.memory_usage(deep=True).sum()
                                       + o.curve.memory_usage(deep=True).sum() for o in outs)) / 2**20}

    t0, c0 = time.perf_counter(), time.process_time()
    outs = grid(timed)
    rows = []
    for (t, loss, lr, seed), o in zip(plan, outs):
        acc = float(o.metrics.loc[o.metrics.metric == "accuracy", "value"].iloc[0])
        rows.append({"task": t, "loss": loss, "lr": lr, "seed": seed, "epochs": o.epochs, "stop": o.stop_reason,
                     "seconds": o.seconds, "acc": acc})
    del outs
    gc.collect()

    def traced(r, outs):
        res[r]["wall_traced"] = time.perf_counter() - t0
        res[r]["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20

    tracemalloc.start()
    t0 = time.perf_counter()
    outs = grid(traced)
    tracemalloc.stop()
    del outs
    print(json.dumps([{"n": n, "runs": r, "n_runs": r * per_seed, **res[r], "mem_imports": mem_imports, "mem0": mem0,
                       "n_train": int((~is_test).sum()), "n_test": int(is_test.sum()),
                       "rows": [x for x in rows if x["seed"] < r]} for r in runs_list]))


def run_grids(sizes, runs_list, threads: int) -> list[dict]:
    out = []
    for n in sizes:
        r = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--grid-child", str(n),
                            ",".join(map(str, runs_list))], capture_output=True, text=True, cwd=REPO, check=False)
        if r.returncode:
            raise SystemExit(r.stderr[-3000:])
        for j in json.loads(r.stdout.strip().splitlines()[-1]):
            print(f"grid n={n} runs={j['runs']}: {j['wall']:.1f} s, {sum(x['epochs'] for x in j['rows'])} epochs, "
                  f"tracemalloc peak {j['tracemalloc_peak_mb']:.1f} MB", flush=True)
            out.append(j)
    return out


def report_grid(res: list[dict], say, threads: int) -> tuple[float, float]:
    say("## 2. The whole FindingEmo grid for one backbone (3 tasks × 2 losses × 4 lrs × runs)")
    say()
    say(f"`ops.training.baselines.findingemo_run` for every (task, loss, lr, seed) of "
        f"`ops.training.experiments.findingemo_plan`'s grid, the configured defaults (`FindingEmoBaselinesConfig`: lrs "
        f"{', '.join(f'{x:g}' for x in LRS)}, batch {BATCH}, patience 6, max 250 epochs, stopping on the test side, "
        f"UCE penalty log). Synthetic 128-d float32 features with planted class means for Emo8 (8 classes, imbalanced "
        f"{'/'.join(f'{p:.2f}' for p in EMO8_P)}), Arousal3 and Valence3 (3 classes each) plus N(0, 1) noise; 80/20 "
        f"split stratified per Emo8. Each image count runs in a fresh subprocess (torch threads = {threads}), after "
        f"one 2-epoch warm-up run, with the seeds outermost (all 24 runs of seed 0, then of seed 1, …; the plan's "
        f"order puts the seed innermost, which changes no run): the first r × 24 runs are exactly the grid for r "
        f"runs, and its wall, CPU and memory are read when they are done. Every RunOutput is kept until the grid ends, "
        f"as a build keeps them until its tables are written. One measurement per grid (not repeated).")
    say()
    say("| images (train / test) | runs | heads trained | **grid wall s** | CPU s | epochs (sum; min–median–max per run) "
        "| wall ms per epoch | **tracemalloc peak MB** | VmHWM growth MB | ru_maxrss growth MB | RSS after imports + data MB "
        "| outputs held MB |")
    say("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for j in res:
        ep = [r["epochs"] for r in j["rows"]]
        say(f"| {j['n']:,} ({j['n_train']:,} / {j['n_test']:,}) | {j['runs']} | {j['n_runs']} | **{j['wall']:.1f}** | "
            f"{j['cpu']:.1f} | {sum(ep):,} ({min(ep)}–{med(ep):g}–{max(ep)}) | {1e3 * j['wall'] / sum(ep):.1f} | "
            f"**{j['tracemalloc_peak_mb']:.1f}** | {j['mem1']['VmHWM'] - j['mem0']['VmHWM']:.1f} | "
            f"{j['mem1']['ru_maxrss'] - j['mem0']['ru_maxrss']:.1f} | {j['mem0']['VmRSS']:.0f} | {j['held_mb']:.1f} |")
    say()
    say("Memory columns: *tracemalloc peak* = Python and NumPy allocations (NumPy reports its buffers to "
        "tracemalloc; torch's CPU tensors do not) during a second, traced pass of the same runs, started after the "
        "untraced pass (tracemalloc makes it "
        f"{med(j['wall_traced'] / j['wall'] for j in res):.1f}× slower, so it is not the timed one); "
        "*VmHWM growth* / *ru_maxrss growth* = the process's resident high-water mark after the untraced grid minus "
        "before it (same quantity read from /proc and from getrusage; 0 means the grid never went above what imports, "
        "data and the warm-up had already touched); *outputs held* = model bytes + metrics + curves of all RunOutputs.")
    say()

    # scaling
    by = {(j["n"], j["runs"]): j for j in res}
    sizes = sorted({j["n"] for j in res})
    runs_list = sorted({j["runs"] for j in res})
    say("Scaling (ratios between grids; epochs differ because early stopping does):")
    say()
    say("| from → to | images × | runs × | grid wall × | grid CPU × | epochs × | CPU per epoch × "
        "| CPU per (epoch × train image) × |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|")
    pairs = [((a, r), (b, r)) for r in runs_list for a, b in itertools.pairwise(sizes)]
    pairs += [((n, runs_list[0]), (n, r)) for n in sizes for r in runs_list[1:]]
    for k0, k1 in pairs:
        j0, j1 = by[k0], by[k1]
        e0, e1 = (sum(r["epochs"] for r in j["rows"]) for j in (j0, j1))
        say(f"| {k0[0]:,} img × {k0[1]} run{'s' * (k0[1] > 1)} → {k1[0]:,} img × {k1[1]} run{'s' * (k1[1] > 1)} | {k1[0] / k0[0]:g} | {k1[1] / k0[1]:g} | "
            f"**{j1['wall'] / j0['wall']:.2f}** | **{j1['cpu'] / j0['cpu']:.2f}** | {e1 / e0:.2f} | "
            f"{(j1['cpu'] / e1) / (j0['cpu'] / e0):.2f} | "
            f"{(j1['cpu'] / e1 / j1['n_train']) / (j0['cpu'] / e0 / j0['n_train']):.2f} |")
    say()
    # CPU ≈ α·epochs + β·(epochs × training images): least squares over the grids
    A = np.array([[sum(r["epochs"] for r in j["rows"]), sum(r["epochs"] for r in j["rows"]) * j["n_train"]] for j in res],
                 float)
    cpu = np.array([j["cpu"] for j in res])
    (alpha, beta), *_ = np.linalg.lstsq(A, cpu, rcond=None)
    fitted = A @ np.array([alpha, beta])
    say(f"A model of the cost: grid CPU s ≈ {alpha * 1e3:.1f} ms × epochs + {beta * 1e6:.1f} µs × (epochs × training "
        f"images), least squares over the {len(res)} grids (fitted / measured CPU: "
        + ", ".join(f"{f:.1f}/{c:.1f}" for f, c in zip(fitted, cpu))
        + "). The per-epoch term is what does not grow with the images (not timed separately): the loop's "
        "Python overhead, the lr update, sklearn's weighted-F1 call, the state-dict copy of a new best epoch; the "
        "mini-batch steps and the test-side logits (a quarter as many images) fall in the per-image term. "
        "Wall time above CPU time in a row means the process waited for a core (the machine is shared); CPU-time "
        "ratios are the steadier ones.")
    say()

    # epochs per lr
    last = max(runs_list)
    say(f"Epochs until early stopping, mean over tasks × losses × {last} seed(s), and test accuracy (mean) per lr_0:")
    say()
    say("| images | " + " | ".join(f"lr {lr:g}: epochs / acc" for lr in LRS) + " | stop reasons |")
    say("|---|" + "---:|" * len(LRS) + "---|")
    for n in sizes:
        rows = by[(n, last)]["rows"]
        cells = []
        for lr in LRS:
            rr = [r for r in rows if r["lr"] == lr]
            cells.append(f"{statistics.mean(r['epochs'] for r in rr):.0f} / {statistics.mean(r['acc'] for r in rr):.2f}")
        reasons: dict[str, int] = {}
        for r in rows:
            reasons[r["stop"]] = reasons.get(r["stop"], 0) + 1
        say(f"| {n:,} | " + " | ".join(cells) + " | " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) + " |")
    say()
    accs = {t: statistics.mean(r["acc"] for r in by[(sizes[-1], last)]["rows"] if r["task"] == t and r["lr"] == 0.001)
            for t in TASKS}
    say(f"Test accuracy at {sizes[-1]:,} images, lr_0 0.001 (mean over losses and seeds): "
        + ", ".join(f"{t} {a:.2f}" for t, a in accs.items()) + ".")
    say()
    return float(alpha), float(beta)


# ---- 1. one epoch: cached features vs recomputing the backbone -------------------------------------------
def synth_jpegs(n: int, w: int = 640, h: int = 480, seed: int = 0) -> list[bytes]:
    """Photo-like JPEGs (q 90) in memory: a smooth colour field, a few blurred shapes, grain."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = rng.uniform(20, 235, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)).astype(np.uint8)
        img = Image.fromarray(base, "RGB").resize((w, h), Image.Resampling.BICUBIC)
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 9))):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(rng.integers(w // 16, w // 2)), y0 + int(rng.integers(h // 16, h // 2))
            (d.ellipse if rng.integers(2) else d.rectangle)([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 3.0))))
        a = np.asarray(img, np.float32) + rng.normal(0, 4, size=(h, w, 3)).astype(np.float32)
        buf = io.BytesIO()
        Image.fromarray(a.clip(0, 255).astype(np.uint8), "RGB").save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def time_backbone(name: str, k: int, jpegs: list[bytes], y) -> tuple[str, str, dict]:
    """Interleaved rounds of (a) cached, (b) recompute from pixels, (c) recompute with decoding for one
    backbone: (summary row, per-round row) of the markdown tables."""
    import torch
    from PIL import Image

    from models.backbones import create_backbone
    from models.heads import LinearHead
    from ops.features.decode import to_batch

    n_images = len(jpegs)
    crit = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(1)
    bb = create_backbone(name, weights="none")
    pp = bb.preprocess.replace(draft=True)
    t0 = time.perf_counter()
    pixels = np.stack([np.asarray(pp.resize_image(Image.open(io.BytesIO(b))), np.uint8) for b in jpegs])
    t_decode_once = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = torch.cat([bb.forward_features(to_batch(pixels[i:i + BATCH], pp))
                       for i in range(0, n_images, BATCH)])  # the cache: features computed once, kept in RAM
    t_extract_once = time.perf_counter() - t0
    head = LinearHead(bb.feature_dim, 8)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)

    def step(x, yb):
        opt.zero_grad(set_to_none=True)
        loss = crit(head(x), yb)
        loss.backward()
        opt.step()

    def cached_epoch():
        head.train()
        order = torch.randperm(n_images, generator=gen)
        for s in range(0, n_images, BATCH):
            idx = order[s:s + BATCH]
            step(feats[idx], y[idx])

    def recompute_epoch(decode: bool):
        head.train()
        order = torch.randperm(n_images, generator=gen)
        for s in range(0, n_images, BATCH):
            idx = order[s:s + BATCH]
            if decode:
                px = [np.asarray(pp.resize_image(Image.open(io.BytesIO(jpegs[i]))), np.uint8) for i in idx.tolist()]
            else:
                px = pixels[idx.numpy()]
            f = bb.forward_features(to_batch(px, pp)).clone()  # inference tensor → normal tensor for autograd
            step(f, y[idx])

    cached_epoch()  # warm-up
    recompute_epoch(False)
    ta, tb, tc = [], [], []
    for _ in range(k):  # interleaved: a, b, c, a, b, c, …
        per = []
        for _ in range(10):  # the cached epoch is ~ms: median of 10 consecutive epochs per slot
            t0 = time.perf_counter()
            cached_epoch()
            per.append(time.perf_counter() - t0)
        ta.append(med(per))
        t0 = time.perf_counter()
        recompute_epoch(False)
        tb.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        recompute_epoch(True)
        tc.append(time.perf_counter() - t0)
    a, b, c = med(ta), med(tb), med(tc)
    row = (f"| {name} | {pp.size[0]} px | {bb.feature_dim} | {bb.precision}{' + channels_last' if bb.channels_last else ''} "
           f"| {k} | {a * 1e3:.2f} ms | {b:.2f} s | {c:.2f} s | **{b / a:,.0f}×** | **{c / a:,.0f}×** "
           f"| {'yes' if b / a >= 50 else 'NO'} |")
    detail = (f"| {name} | {' / '.join(f'{x * 1e3:.2f}' for x in ta)} ms | {' / '.join(f'{x:.2f}' for x in tb)} s "
              f"| {' / '.join(f'{x:.2f}' for x in tc)} s | {' / '.join(f'{x / z:,.0f}' for x, z in zip(tb, ta))} "
              f"| {n_images / b:.0f} | {t_decode_once:.2f} s | {t_extract_once:.2f} s |")
    print(f"{name}: cached {a * 1e3:.2f} ms, recompute {b:.2f} s / with decode {c:.2f} s", flush=True)
    return row, detail, {"a": a, "b": b, "c": c, "dim": bb.feature_dim, "size": pp.size[0]}


def bench_epochs(n_images: int, rounds: dict[str, int], say, epoch_range: str) -> dict[str, dict]:
    import torch

    jpegs = synth_jpegs(n_images)
    kb = [len(b) / 1024 for b in jpegs]
    y = torch.randint(0, 8, (n_images,), generator=torch.Generator().manual_seed(0))
    rows, detail, summary = [], [], {}
    for name, k in rounds.items():
        r, d, summary[name] = time_backbone(name, k, jpegs, y)
        rows.append(r)
        detail.append(d)

    say("## 1. One training epoch: cached features vs recomputing the backbone each epoch (target ≥ 50×)")
    say()
    say(f"{n_images} synthetic photo-like JPEGs, 640×480, q 90 ({min(kb):.0f}–{max(kb):.0f} KB), held in memory as bytes; "
        f"random labels (8 classes). Each epoch trains `models.heads.LinearHead(dim, 8)` with Adam (lr 1e-3) and "
        f"cross-entropy over shuffled mini-batches of {BATCH}, forward + backward + step per batch. "
        f"Backbones: `create_backbone(name, weights=\"none\")` (random init, nothing downloaded), the registry's "
        f"preprocessing and defaults.")
    say()
    say("- **(a) cached**: the features (float32, in RAM) were computed once before; an epoch indexes them per batch.")
    say("- **(b) recompute, pixels in RAM**: uint8 pixels decoded and resized once and kept in memory; every batch is "
        "normalised (`ops.features.decode.to_batch`), goes through `Backbone.forward_features` (eval, inference mode, "
        "no grad) and then trains the head. Forward cost only: the conservative ratio.")
    say("- **(c) recompute with decoding**: as (b) but every batch decodes its JPEG bytes again (PIL draft mode, "
        "resize + center crop as `Preprocess.resize_image`, in the training thread).")
    say()
    say("Rounds interleaved (a, b, c, a, b, c, …) after one warm-up epoch each of (a) and (b); each (a) slot is the "
        "median of 10 consecutive epochs; the table gives medians over rounds.")
    say()
    say("| backbone | input | feature dim | precision | rounds | (a) cached epoch | (b) recompute epoch | "
        "(c) recompute + decode epoch | **(b) / (a)** | **(c) / (a)** | ≥ 50× |")
    say("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        say(r)
    say()
    say("Per round (a / b / c), the (b)/(a) ratio per round, the forward throughput of (b), and the one-off costs "
        "of building the cache (decoding the images once; extracting the features once):")
    say()
    say("| backbone | (a) per round | (b) per round | (c) per round | (b)/(a) per round | (b) img/s | decode once | extract once |")
    say("|---|---|---|---|---|---:|---:|---:|")
    for r in detail:
        say(r)
    say()
    say("The cached epoch is a few matrix products on (64, dim) batches; the recomputed one is dominated by the "
        "backbone's forward passes, so the ratio grows with the backbone and is the same for every later epoch "
        f"(a FindingEmo run of section 2 trained {epoch_range} epochs). Fine-tuning the backbone would add a backward pass on top. "
        "Reading the features from the feature store instead of RAM is measured in `bench/results/features.md` §2.")
    say()
    return summary


def summarize(ep: dict[str, dict], grids: list[dict], alpha: float, beta: float) -> list[str]:
    """The headline numbers, computed from this run's tables."""
    out = ["## Summary", ""]
    out.append("- **Epoch from cached features vs recomputing the backbone** (target ≥ 50×): "
               + "; ".join(f"{n} ({e['size']} px, {e['dim']}-d): {e['a'] * 1e3:.1f} ms vs {e['b']:.2f} s = "
                           f"**{e['b'] / e['a']:,.0f}×** ({e['c'] / e['a']:,.0f}× with JPEG decoding each epoch)"
                           for n, e in ep.items())
               + (". Target met for every backbone." if all(e["b"] / e["a"] >= 50 for e in ep.values())
                  else ". **Target missed** for " + ", ".join(n for n, e in ep.items() if e["b"] / e["a"] < 50) + "."))
    out.append("- **Whole FindingEmo grid for one backbone** (128-d features), wall s / tracemalloc peak MB / resident "
               "high-water growth MB: " + "; ".join(
                   f"{j['n']:,} img × {j['runs']} run{'s' if j['runs'] > 1 else ''} ({j['n_runs']} heads): "
                   f"**{j['wall']:.1f} s** / {j['tracemalloc_peak_mb']:.1f} / {j['mem1']['VmHWM'] - j['mem0']['VmHWM']:.1f}"
                   for j in grids) + ".")
    by = {(j["n"], j["runs"]): j for j in grids}
    sizes = sorted({j["n"] for j in grids})
    runs_list = sorted({j["runs"] for j in grids})
    r0 = runs_list[-1]
    if len(sizes) > 1:
        lo, hi = by[(sizes[0], r0)], by[(sizes[-1], r0)]
        e_lo, e_hi = (sum(r["epochs"] for r in j["rows"]) for j in (lo, hi))
        out.append(f"- **Scaling with images**: {sizes[0]:,} → {sizes[-1]:,} images ({sizes[-1] / sizes[0]:g}×, "
                   f"{r0} run(s)): CPU {hi['cpu'] / lo['cpu']:.1f}×, wall {hi['wall'] / lo['wall']:.1f}×, of which "
                   f"epochs until early stopping {e_hi / e_lo:.1f}× (per lr_0 in the table of section 2) and "
                   f"CPU per epoch {(hi['cpu'] / e_hi) / (lo['cpu'] / e_lo):.1f}×. Cost ≈ {alpha * 1e3:.1f} ms per epoch "
                   f"+ {beta * 1e6:.1f} µs per training image per epoch: per-epoch overhead dominates below "
                   f"~{alpha / beta:,.0f} training images; above that the per-image term dominates and the cost approaches "
                   "linear in epochs × images.")
    if len(runs_list) > 1:
        k = runs_list[-1] / runs_list[0]
        cpu_x = [by[(n, runs_list[-1])]["cpu"] / by[(n, runs_list[0])]["cpu"] for n in sizes]
        linear = all(0.8 * k <= x <= 1.25 * k for x in cpu_x)
        out.append("- **Scaling with runs**: " + ", ".join(
            f"{n:,} img: CPU {x:.2f}× (wall {by[(n, runs_list[-1])]['wall'] / by[(n, runs_list[0])]['wall']:.2f}×)"
            for n, x in zip(sizes, cpu_x))
            + f" for {k:g}× runs: " + ("linear in CPU time (each seed is an independent run)." if linear
                                       else "not within 20 % of linear in CPU time."))
    growth = max(j["mem1"]["VmHWM"] - j["mem0"]["VmHWM"] for j in grids)
    out.append(f"- **Memory**: tracemalloc peak {min(j['tracemalloc_peak_mb'] for j in grids):.1f}–"
               f"{max(j['tracemalloc_peak_mb'] for j in grids):.1f} MB, resident high-water growth at most "
               f"{growth:.1f} MB over imports + data (~{statistics.mean(j['mem0']['VmRSS'] for j in grids):.0f} MB "
               f"resident, mostly torch); outputs kept at most {max(j['held_mb'] for j in grids):.1f} MB.")
    out.append("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: stable on the shared 2-core machine)")
    ap.add_argument("--images", type=int, default=256, help="images for the epoch comparison")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per backbone (resnet18: at most 3)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 800, 3200])
    ap.add_argument("--runs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--grid-child", nargs=2, metavar=("N", "RUNS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.grid_child:
        grid_child(int(a.grid_child[0]), [int(x) for x in a.grid_child[1].split(",")], a.threads)
        return

    t_all = time.perf_counter()
    load0 = os.getloadavg()
    # 2 first, from a driver that has not imported torch yet (ru_maxrss is inherited over fork + exec)
    grids = run_grids(a.sizes, sorted(set(a.runs)), a.threads)

    import torch

    torch.set_num_threads(a.threads)
    sec1: list[str] = []
    sec2: list[str] = []
    eps = [r["epochs"] for j in grids for r in j["rows"]]
    ep_sum = bench_epochs(a.images, {"tiny_cnn": a.rounds, "resnet18": min(a.rounds, 3)}, lambda s="": (print(s), sec1.append(s)),
                 f"{min(eps)}–{max(eps)}")
    alpha, beta = report_grid(grids, lambda s="": sec2.append(s), a.threads)
    summary = summarize(ep_sum, grids, alpha, beta)

    defaults = {k: ap.get_default(k) for k in ("threads", "images", "rounds", "sizes", "runs")}
    opts = "".join(f" --{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                   for k, v in vars(a).items() if k in defaults and v != defaults[k])
    if a.out != RESULTS:
        opts += f" --out {a.out}"
    try:
        cpu_name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu_name = platform.processor() or platform.machine()
    try:
        ram = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal"))) / 2**20
    except (OSError, StopIteration):
        ram = float("nan")
    import pandas as pd
    import sklearn

    head = [
        "# Training on cached features: one epoch vs recomputing the backbone, and the whole FindingEmo grid",
        "",
        f"- Reproduce: `.venv/bin/python bench/bench_training.py{opts}` (from the repo root; all data generated in memory)",
        f"- Date: {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC",
        (f"- Machine: {cpu_name}, {os.cpu_count()} CPUs, {ram:.0f} GiB RAM, no GPU, **shared with other engineers** "
         f"(load average {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f} at start, {os.getloadavg()[0]:.2f} at the "
         f"end; wall-clock times are noisy, compare ratios measured in the same run); torch threads = {a.threads}"),
        (f"- Software: Python {platform.python_version()}, torch {torch.__version__}, NumPy {np.__version__}, "
         f"pandas {pd.__version__}, scikit-learn {sklearn.__version__}"),
        f"- Total benchmark time: {time.perf_counter() - t_all:.0f} s",
        "",
    ]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(head + summary + sec1 + sec2) + "\n")
    print("\n".join(sec2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
