"""Benchmark of the annotation stage: ingest, merge and statistics.

Run from the repository root:

    python bench/bench_annotations.py             # 100k and 1M rows, writes bench/results/annotations.md
    python bench/bench_annotations.py --quick     # 100k rows only, prints only
    python bench/bench_annotations.py --profile   # also cProfile every stage (top functions in bench/_work/)

Data: a long-format CSV (``item, worker, label, v, a, amb, age, ts``), generated deterministically
(numpy seed) into ``bench/_work/annotations/`` and reused when already there: N/4 images x 4
annotators drawn (without repetition per image) from a pool of 2,000 annotator ids with skewed
activity; Plutchik Emo24 labels correlated within an image (a per-image "true" emotion, each
annotator picks it, a sibling in the same leaf, a neighbouring leaf or a random label); valence
(-3..3) and arousal (0..6) correlated within the image and with the emotion; ambiguity 0..6; age
groups per image with annotator noise; timestamps per annotator session. 0.1 % of the rows are
bad, in equal parts: out-of-range valence, unknown label, duplicate (item, worker).

Each stage runs in its own fresh Python subprocess, so its peak RSS (``ru_maxrss``) is its own:

1. ingest: ``read_long`` (mapping to the annotations fields, FindingEmo scales, integer scales,
   age-group vocabulary) -> ``annotations_to_arrow`` -> Parquet (+ rejects Parquet);
2. merge: Parquet -> ``merge_annotations(..., Majority())`` -> ``merged_to_arrow`` -> Parquet;
3a. statistics, DuckDB: ``read_parquet`` views ``annotations`` / ``merged_annotations`` and every
    view of ``ops.annotation_stats.VIEWS`` created with ``view_ddl`` and fully fetched;
3b. statistics, pandas: both Parquet files read into pandas, ``compute_stats(annotations, merged)``.

Times exclude interpreter start and imports (reported separately as the RSS baseline).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = ROOT / "bench" / "_work" / "annotations"
RESULTS = ROOT / "bench" / "results" / "annotations.md"
SEED = 20240601
GEN_VERSION = 1  # bump when the generator changes (cached files are then regenerated)
POOL = 2000
PER_IMAGE = 4
BAD_SHARE = 0.001
AGE_GROUPS = ("Children", "Youth", "Young Adults", "Adults", "Seniors")
MAPPING = {
    "image_id": "item", "annotator_id": "worker", "emotion": "label", "valence": "v",
    "arousal": "a", "ambiguity": "amb", "age_groups": "age", "annotated_at": "ts",
}
STAGES = ("ingest", "merge", "stats_sql", "stats_pandas")
STAGE_TITLES = {
    "ingest": "1. ingest (read_long -> Parquet)",
    "merge": "2. merge (Majority -> Parquet)",
    "stats_sql": "3a. statistics, DuckDB views (all 11)",
    "stats_pandas": "3b. statistics, pandas compute_stats",
}


def paths(n_rows: int) -> dict[str, Path]:
    return {
        "csv": WORK / f"annotations_{n_rows}.csv",
        "meta": WORK / f"annotations_{n_rows}.json",
        "ann": WORK / f"annotations_{n_rows}.parquet",
        "rej": WORK / f"rejects_{n_rows}.parquet",
        "merged": WORK / f"merged_{n_rows}.parquet",
    }


# ------------------------------------------------------------------ data


def generate(n_rows: int, seed: int = SEED) -> dict:
    """Write the long-format CSV for ``n_rows`` rows (n_rows / 4 images x 4 annotators)."""
    import numpy as np
    import pandas as pd

    from ops.annotations.taxonomy import get_taxonomy

    rng = np.random.default_rng(seed + n_rows)
    tax = get_taxonomy("plutchik24")
    labels = np.array(tax.labels, dtype=object)  # 24, wheel order: 3 per leaf (mild, basic, intense)
    n_img = n_rows // PER_IMAGE
    n = n_img * PER_IMAGE

    # annotators: 4 distinct per image from a pool of 2,000, activity skewed (a few annotate a lot)
    weights = 1.0 / np.arange(1, POOL + 1) ** 0.6
    weights /= weights.sum()
    perm = rng.permutation(POOL)  # activity rank -> id, so w0001 is not the busiest
    workers = perm[rng.choice(POOL, size=(n_img, PER_IMAGE), p=weights)]
    while True:
        s = np.sort(workers, axis=1)
        dup = (s[:, 1:] == s[:, :-1]).any(axis=1)
        if not dup.any():
            break
        workers[dup] = perm[rng.choice(POOL, size=(int(dup.sum()), PER_IMAGE), p=weights)]

    # emotions: a per-image "true" Emo24 label; annotators agree often, else drift on the wheel
    leaf_w = np.array([0.22, 0.10, 0.10, 0.07, 0.14, 0.07, 0.10, 0.20])  # Joy, Trust, ..., Anticipation
    lab_w = np.repeat(leaf_w, 3) * np.tile([0.3, 0.5, 0.2], 8)
    true = rng.choice(24, size=n_img, p=lab_w / lab_w.sum())
    true_r = np.repeat(true, PER_IMAGE)
    u = rng.random(n)
    leaf, intra = true_r // 3, true_r % 3
    sibling = leaf * 3 + (intra + rng.integers(1, 3, n)) % 3
    neighbour = ((leaf + rng.choice([-1, 1], n)) % 8) * 3 + 1
    anyl = rng.integers(0, 24, n)
    lab = np.where(u < 0.55, true_r, np.where(u < 0.80, sibling, np.where(u < 0.90, neighbour, anyl)))

    # valence / arousal: per-image level (by the true emotion's leaf) + annotator noise
    leaf_val = np.array([2.0, 1.5, -1.5, 0.5, -2.0, -1.5, -2.0, 1.0])
    img_val = leaf_val[true // 3] + rng.normal(0, 0.7, n_img)
    img_aro = 1.5 + 1.2 * (true % 3) + rng.normal(0, 0.9, n_img)
    val = np.clip(np.rint(np.repeat(img_val, PER_IMAGE) + rng.normal(0, 0.8, n)), -3, 3).astype(int)
    aro = np.clip(np.rint(np.repeat(img_aro, PER_IMAGE) + rng.normal(0, 1.0, n)), 0, 6).astype(int)
    amb = np.clip(np.rint(np.abs(rng.normal(1.5, 1.6, n))), 0, 6).astype(int)

    # age groups: 1-2 groups per image; each annotator ticks each with p = 0.85, plus a stray one
    g1 = rng.integers(0, 5, n_img)
    g2 = np.where(rng.random(n_img) < 0.4, rng.integers(0, 5, n_img), g1)
    img_mask = (1 << g1) | (1 << g2)
    mask = np.repeat(img_mask, PER_IMAGE) & np.where(rng.random((n, 5)) < 0.85, 1, 0).dot(1 << np.arange(5))
    mask |= np.where(rng.random(n) < 0.1, 1 << rng.integers(0, 5, n), 0)
    age_text = np.array([",".join(g for b, g in enumerate(AGE_GROUPS) if m >> b & 1) for m in range(32)], dtype=object)
    age = age_text[mask]

    # timestamps: one session start per annotator, then a few minutes per annotation
    w_flat = workers.ravel()
    start = np.datetime64("2024-01-01T08:00:00") + rng.integers(0, 180 * 86400, POOL).astype("timedelta64[s]")
    order = np.argsort(w_flat, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    cnt = np.bincount(w_flat, minlength=POOL)
    first = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    rank[order] = np.arange(n) - np.repeat(first, cnt)
    ts = start[w_flat] + (rank * 40 + rng.integers(0, 30, n)).astype("timedelta64[s]")
    ts_text = pd.Series(np.datetime_as_string(ts, unit="s")).str.replace("T", " ", regex=False)

    item = np.array([f"img{i:07d}" for i in range(n_img)], dtype=object)
    wid = np.array([f"w{i + 1:04d}" for i in range(POOL)], dtype=object)
    df = pd.DataFrame({
        "item": np.repeat(item, PER_IMAGE), "worker": wid[w_flat], "label": labels[lab],
        "v": val.astype(str).astype(object), "a": aro, "amb": amb, "age": age, "ts": ts_text,
    })

    # 0.1 % bad rows in equal parts, never in an image's first slot (the duplicate's target)
    n_bad = max(3, int(round(n * BAD_SHARE)))
    cand = np.flatnonzero(np.arange(n) % PER_IMAGE != 0)
    bad = np.sort(rng.choice(cand, n_bad, replace=False))
    kinds = rng.permutation(np.arange(n_bad) % 3)
    oor, unk, dup = bad[kinds == 0], bad[kinds == 1], bad[kinds == 2]
    df.loc[oor, "v"] = rng.choice(["4", "-4", "5", "7", "-9"], oor.size)
    df.loc[unk, "label"] = rng.choice(["Happyness", "Confusion", "Neutral", "Contempt", "Joyful"], unk.size)
    df.loc[dup, "worker"] = df["worker"].to_numpy()[dup - dup % PER_IMAGE]  # the image's first annotator

    WORK.mkdir(parents=True, exist_ok=True)
    p = paths(n_rows)
    tmp = p["csv"].with_suffix(".csv.tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(p["csv"])
    meta = {
        "gen_version": GEN_VERSION, "seed": seed, "rows": n, "images": n_img, "pool": POOL,
        "annotators_used": int(np.unique(w_flat).size),
        "planted": {"out_of_range": int(oor.size), "unknown_label": int(unk.size), "duplicate_annotation": int(dup.size)},
        "csv_bytes": p["csv"].stat().st_size,
    }
    p["meta"].write_text(json.dumps(meta, indent=1))
    return meta


def ensure_data(n_rows: int) -> tuple[dict, bool, float]:
    """(generator metadata, reused?, generation seconds). Generation runs in a subprocess: the driver
    must stay small, because on Linux a child's ``ru_maxrss`` starts from its parent's RSS at
    fork/exec time (the high-water mark survives exec), which would inflate the stages' peaks."""
    p = paths(n_rows)
    if p["csv"].exists() and p["meta"].exists():
        meta = json.loads(p["meta"].read_text())
        if meta.get("gen_version") == GEN_VERSION and meta.get("seed") == SEED and meta.get("csv_bytes") == p["csv"].stat().st_size:
            return meta, True, 0.0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", "generate", "--rows", str(n_rows)],
                   check=True, cwd=ROOT)
    return json.loads(p["meta"].read_text()), False, time.perf_counter() - t0


# ------------------------------------------------------------------ stages (run in a subprocess)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class Clock:
    """Wall and CPU time of named steps."""

    def __init__(self):
        self.steps: dict[str, float] = {}
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self._last = self.t0

    def step(self, name: str) -> None:
        now = time.perf_counter()
        self.steps[name] = now - self._last
        self._last = now

    def total(self) -> tuple[float, float]:
        return time.perf_counter() - self.t0, time.process_time() - self.c0


def stage_ingest(n_rows: int, out: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ops.annotations.readers import FINDINGEMO_AGE_GROUPS, FINDINGEMO_SCALES, annotations_to_arrow, read_long

    p = paths(n_rows)
    clk = Clock()
    res = read_long(p["csv"], MAPPING, source="bench", taxonomy="plutchik24", scales=FINDINGEMO_SCALES,
                    integer_scales=True, vocab={"age_groups": FINDINGEMO_AGE_GROUPS})
    clk.step("read_long")
    rss_df = _rss_mb()
    pq.write_table(annotations_to_arrow(res.annotations), p["ann"])
    rej = res.rejects
    pq.write_table(pa.Table.from_pandas(rej, preserve_index=False), p["rej"])
    clk.step("to Arrow + write Parquet")
    out["wall"], out["cpu"] = clk.total()
    out["steps"] = clk.steps
    out["rss_after_read_long_mb"] = rss_df
    out["rows_in"] = n_rows
    out["rows_out"] = int(len(res.annotations))
    reason = rej["reason"].str.replace(r" \(.*\)$", "", regex=True)
    out["rejects"] = {f"{r} ({f})": int(k) for (r, f), k in rej.groupby([reason, rej["field"]]).size().items()}
    out["reject_rows"] = int(rej[["file", "line"]].drop_duplicates().shape[0])


def stage_merge(n_rows: int, out: dict) -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    from ops.labels.merge import Majority, merge_annotations, merged_to_arrow

    p = paths(n_rows)
    clk = Clock()
    ann = pd.read_parquet(p["ann"])
    clk.step("read Parquet")
    merged = merge_annotations(ann, Majority())
    clk.step("merge_annotations")
    pq.write_table(merged_to_arrow(merged), p["merged"])
    clk.step("to Arrow + write Parquet")
    out["wall"], out["cpu"] = clk.total()
    out["steps"] = clk.steps
    out["rows_in"] = int(len(ann))
    out["images"] = int(len(merged))
    out["columns"] = int(merged.shape[1])
    out["status"] = {k: int(v) for k, v in merged["emotion8_status"].value_counts().items()}
    out["emotion24_status"] = {k: int(v) for k, v in merged["emotion24_status"].value_counts().items()}


def _check_values(res: dict) -> dict:
    """A few statistics to compare DuckDB and pandas (same numbers expected)."""
    e8 = res["emotion8_stats"]
    km = res["keep_majority_counts"]
    va = res["va_max_distance"]
    return {
        "emotion8_n": {str(k): int(v) for k, v in zip(e8["emotion8"], e8["n"])},
        "emotion8_valence_mean": {str(k): round(float(v), 9) for k, v in zip(e8["emotion8"], e8["valence_mean"])},
        "keep_majority": {str(k): int(v) for k, v in zip(km["keep_majority"], km["n_images"])},
        "annotators": int(len(res["annotations_per_annotator"])),
        "pairs": int(res["emotion8_pair_prevalence"]["n_images"].sum()),
        "va_max_distance_n": int(va["n_images"].iloc[0]),
        "va_cooccurrence_n": int(res["va_cooccurrence"]["n"].sum()),
    }


def stage_stats_sql(n_rows: int, out: dict) -> None:
    import duckdb

    from ops.annotations.statistics import VIEWS, view_ddl

    p = paths(n_rows)
    clk = Clock()
    con = duckdb.connect()
    con.execute(f"CREATE VIEW annotations AS SELECT * FROM read_parquet('{p['ann']}')")
    con.execute(f"CREATE VIEW merged_annotations AS SELECT * FROM read_parquet('{p['merged']}')")
    for name in VIEWS:
        con.execute(view_ddl(name))
    clk.step("create views")
    res, per_view = {}, {}
    for name in VIEWS:
        t0 = time.perf_counter()
        res[name] = con.execute(f"SELECT * FROM {name}").df()
        per_view[name] = time.perf_counter() - t0
    clk.step("query all views")
    con.close()
    out["wall"], out["cpu"] = clk.total()
    out["steps"] = clk.steps
    out["per_view"] = per_view
    out["threads"] = os.cpu_count()
    out["check"] = _check_values(res)


def stage_stats_pandas(n_rows: int, out: dict) -> None:
    import pandas as pd

    from ops.annotations.statistics import compute_stats

    p = paths(n_rows)
    clk = Clock()
    ann = pd.read_parquet(p["ann"])
    merged = pd.read_parquet(p["merged"])
    clk.step("read Parquet (both)")
    res = compute_stats(ann, merged)
    clk.step("compute_stats")
    out["wall"], out["cpu"] = clk.total()
    out["steps"] = clk.steps
    out["check"] = _check_values(res)


STAGE_IMPORTS = {
    "ingest": ("pandas", "pyarrow.parquet", "ops.annotations.readers"),
    "merge": ("pandas", "pyarrow.parquet", "ops.labels.merge"),
    "stats_sql": ("duckdb", "ops.annotations.statistics"),
    "stats_pandas": ("pandas", "pyarrow.parquet", "ops.annotations.statistics"),
}


def run_worker(stage: str, n_rows: int, result: Path, profile: bool) -> None:
    import importlib

    for mod in STAGE_IMPORTS[stage]:  # imports first, so the baseline and the timings exclude them
        importlib.import_module(mod)
    out: dict = {"stage": stage, "n_rows": n_rows, "rss_baseline_mb": _rss_mb()}
    fn = globals()[f"stage_{stage}"]
    if profile:
        import cProfile
        import io
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        fn(n_rows, out)
        pr.disable()
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(30)
        buf.write("\n\n")
        pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(25)
        (WORK / f"profile_{stage}_{n_rows}.txt").write_text(buf.getvalue())
    else:
        fn(n_rows, out)
    out["peak_rss_mb"] = _rss_mb()
    result.write_text(json.dumps(out, indent=1))


# ------------------------------------------------------------------ driver


def run_stage(stage: str, n_rows: int, profile: bool) -> dict:
    result = WORK / f"result_{stage}_{n_rows}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", stage, "--rows", str(n_rows)]
    if profile:
        cmd.append("--profile")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    out = json.loads(result.read_text())
    out["process_wall"] = time.perf_counter() - t0
    print(f"  [{n_rows:,}] {stage:12s} wall {out['wall']:7.2f}s  cpu {out['cpu']:7.2f}s  "
          f"peak RSS {out['peak_rss_mb']:7.0f} MB  steps "
          + ", ".join(f"{k} {v:.2f}s" for k, v in out["steps"].items()), flush=True)
    return out


def machine_note() -> str:
    from importlib.metadata import version  # no heavy imports in the driver (see ensure_data)

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{os.cpu_count()} cores ({cpu}){mem}, shared with other processes (load average at start "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}); Python {platform.python_version()}, pandas "
            f"{version('pandas')}, numpy {version('numpy')}, pyarrow {version('pyarrow')}, duckdb {version('duckdb')}. "
            "Absolute times are noisy: compare ratios (and CPU vs wall).")


def rate(n: float, sec: float) -> str:
    return f"{n / sec:,.0f}" if sec > 0 else "-"


def write_markdown(started: dt.datetime, note: str, runs: dict, total: float) -> None:
    sizes = sorted(runs)
    lines = [
        "# Annotation stage benchmark (ingest, merge, statistics)",
        "",
        "- Command: `python bench/bench_annotations.py` (from the repository root; `--quick` for 100k only, "
        "`--profile` to cProfile each stage into `bench/_work/annotations/profile_*.txt`)",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
        f"- Machine: {note}",
        f"- Total bench wall time {total:.0f} s (including data generation when not cached).",
        "- Each stage runs in a fresh Python subprocess; **peak RSS** is that process's `ru_maxrss` "
        "(including the interpreter and imported libraries, whose baseline is shown separately); "
        "wall = `time.perf_counter`, CPU = `time.process_time` (all threads of the process: DuckDB uses "
        "both cores, so its CPU can exceed wall), both without interpreter start and imports. "
        "rows/s = annotation rows entering the stage / wall seconds. Each stage ran `--repeat` times "
        "(default 2, the whole chain again); the table shows the run with the lowest wall time, and all walls.",
        "",
        "## Data",
        "",
        "Long-format CSV (`item, worker, label, v, a, amb, age, ts`), generated with a fixed numpy seed into "
        "`bench/_work/annotations/` (git-ignored) and reused on later runs. N/4 images x 4 distinct annotators "
        f"from a pool of {POOL:,} ids (activity skewed, weight ~ rank^-0.6); per image a \"true\" Emo24 emotion "
        "(Plutchik names as in `ops/data/taxonomies.json`), each annotator choosing it with p = 0.55, a sibling "
        "of the same leaf with 0.25, the basic emotion of a neighbouring leaf with 0.10, any label with 0.10; "
        "valence -3..3 and arousal 0..6 correlated within the image and with the emotion; ambiguity 0..6; "
        "1-2 age groups per image, each ticked by an annotator with p = 0.85 plus a stray group with p = 0.1; "
        "timestamps per annotator session. 0.1 % bad rows in equal parts: out-of-range valence (4, -4, 5, 7, -9), "
        "unknown label (Happyness, Confusion, Neutral, Contempt, Joyful), duplicate (item, worker) "
        "(a row re-using its image's first annotator).",
        "",
        "Ingest call: `read_long(csv, {image_id: item, annotator_id: worker, emotion: label, valence: v, "
        "arousal: a, ambiguity: amb, age_groups: age, annotated_at: ts}, taxonomy=\"plutchik24\", "
        "scales=FINDINGEMO_SCALES, integer_scales=True, vocab={age_groups: FINDINGEMO_AGE_GROUPS})`; "
        "merge: `merge_annotations(annotations, Majority())` (Emo24 and Emo8 levels); statistics: all "
        "views of `ops.annotation_stats.VIEWS` over DuckDB `read_parquet` views, and `compute_stats` in pandas.",
        "",
    ]
    for n in sizes:
        r = runs[n]
        meta = r["meta"]
        lines += [
            f"## {n:,} rows ({meta['images']:,} images x {PER_IMAGE}, {meta['annotators_used']:,} annotators used)",
            "",
            f"CSV {meta['csv_bytes'] / 1e6:.0f} MB, " + ("reused from an earlier run." if r["reused"] else
                                                          f"generated in {r['gen_s']:.1f} s."),
            "",
            "| stage | wall s | CPU s | peak RSS MB | RSS after imports MB | rows/s | wall s, all runs | steps of the best run (wall s) |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for st in STAGES:
            o = r[st]
            steps = "; ".join(f"{k} {v:.2f}" for k, v in o["steps"].items())
            walls = ", ".join(f"{w:.2f}" for w in o["walls"])
            lines.append(f"| {STAGE_TITLES[st]} | {o['wall']:.2f} | {o['cpu']:.2f} | {o['peak_rss_mb']:,.0f} | "
                         f"{o['rss_baseline_mb']:,.0f} | {rate(o.get('rows_in', r['merge']['rows_in']), o['wall'])} | "
                         f"{walls} | {steps} |")
        ing = r["ingest"]
        lines += [
            "",
            f"Ingest: {ing['rows_in']:,} rows in, {ing['rows_out']:,} annotations out, "
            f"{ing['reject_rows']:,} rejected rows (planted: " +
            ", ".join(f"{k} {v}" for k, v in meta["planted"].items()) + "). Rejects by reason (field):",
            "",
            "| reason (field) | rejects |",
            "|---|---:|",
        ]
        for k, v in sorted(ing["rejects"].items()):
            lines.append(f"| {k} | {v:,} |")
        m = r["merge"]
        lines += [
            "",
            f"Merge: {m['images']:,} merged rows x {m['columns']} columns; Emo8 status " +
            ", ".join(f"{k} {v:,}" for k, v in sorted(m["status"].items())) + "; Emo24 status " +
            ", ".join(f"{k} {v:,}" for k, v in sorted(m["emotion24_status"].items())) + ".",
            "",
            "DuckDB per view (s): " + ", ".join(f"{k} {v:.2f}" for k, v in r["stats_sql"]["per_view"].items()) + ".",
            "",
            "DuckDB and pandas agree on the checked numbers (Emo8 n and valence means, keep-majority counts, "
            "annotators, Emo8 pairs, V/A counts): " + ("yes" if r["stats_sql"]["check"] == r["stats_pandas"]["check"] else "**NO**") + ".",
            "",
        ]
    if len(sizes) == 2:
        a, b = sizes
        f = b / a
        lines += [
            f"## Scaling {a:,} -> {b:,} rows (x{f:.0f} data)",
            "",
            "| stage | wall ratio | CPU ratio | peak RSS ratio | peak RSS minus import baseline, ratio |",
            "|---|---:|---:|---:|---:|",
        ]
        for st in STAGES:
            x, y = runs[a][st], runs[b][st]
            dx = x["peak_rss_mb"] - x["rss_baseline_mb"]
            dy = y["peak_rss_mb"] - y["rss_baseline_mb"]
            lines.append(f"| {STAGE_TITLES[st]} | {y['wall'] / x['wall']:.1f} | {y['cpu'] / x['cpu']:.1f} | "
                         f"{y['peak_rss_mb'] / x['peak_rss_mb']:.1f} | {dy / dx if dx > 0 else float('nan'):.1f} |")
        lines.append("")
    lines += ["## Reading", "", "READING_TEXT", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = RESULTS.read_text() if RESULTS.exists() else ""
    text = "\n".join(lines)
    if "## Reading" in old:  # keep the hand-written reading of an earlier run
        text = text.replace("READING_TEXT", old.split("## Reading", 1)[1].strip())
    RESULTS.write_text(text + ("\n" if not text.endswith("\n") else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100k rows only, print only")
    ap.add_argument("--profile", action="store_true", help="cProfile each stage (bench/_work/annotations/profile_*.txt)")
    ap.add_argument("--rows", type=int, nargs="*", default=None, help="sizes (default 100000 1000000)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per stage and size; the best (lowest wall) is reported")
    ap.add_argument("--worker", choices=STAGES + ("generate",), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "generate":
        generate(args.rows[0])
        return
    if args.worker:
        n = args.rows[0]
        run_worker(args.worker, n, WORK / f"result_{args.worker}_{n}.json", args.profile)
        return
    sizes = args.rows or ([100_000] if args.quick else [100_000, 1_000_000])
    started = dt.datetime.now(dt.timezone.utc)
    note = machine_note()
    print(note, flush=True)
    t0 = time.perf_counter()
    runs = {}
    for n in sizes:
        meta, reused, gen_s = ensure_data(n)
        print(f"[{n:,}] data: {'reused' if reused else f'generated in {gen_s:.1f}s'} ({meta['csv_bytes'] / 1e6:.0f} MB)", flush=True)
        r = {"meta": meta, "reused": reused, "gen_s": gen_s}
        reps: dict[str, list[dict]] = {st: [] for st in STAGES}
        for _ in range(args.repeat):  # the whole chain again, so a slow moment hits one run only
            for st in STAGES:
                reps[st].append(run_stage(st, n, args.profile))
        for st in STAGES:  # best (lowest wall) run of each stage; all walls kept
            r[st] = dict(min(reps[st], key=lambda o: o["wall"]), walls=[o["wall"] for o in reps[st]])
        ok = r["stats_sql"]["check"] == r["stats_pandas"]["check"]
        print(f"  [{n:,}] rejects {r['ingest']['rejects']}; DuckDB == pandas on checked stats: {ok}", flush=True)
        runs[n] = r
    total = time.perf_counter() - t0
    print(f"total {total:.0f}s", flush=True)
    if not args.quick and args.rows is None and not args.profile:  # profiled times are inflated
        (WORK / "last_run.json").write_text(json.dumps({str(k): v for k, v in runs.items()}, indent=1, default=str))
        write_markdown(started, note, runs, total)
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
