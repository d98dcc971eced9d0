"""Cost per scrape batch at batch 10 and at batch 1,000 (issue 7, item 16): flat, not growing.

What a batch asks of its history, besides its own work: which of its URLs earlier batches already
made candidates (``candidate_urls`` de-duplication), which of its images earlier batches already
hashed (``image_hashes`` reuse), and writing its partitions into the warehouse (with the catalog kept
up to date). This benchmark builds a synthetic history of N batches (200 candidate URLs and 150
hashed images each, 5 % of them repeats of earlier ones), then times those steps for 5 further
batches, at N = 10 and N = 1,000, side by side in one run. For contrast it also times the way it was
done before (reading every earlier partition), which grows linearly with N.

    python bench/bench_batch_cost.py            # writes bench/results/batch_cost.md
    python bench/bench_batch_cost.py --quick    # N = 10 and 200, prints only
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from warehouse.store import Warehouse  # noqa: E402

URLS_PER_BATCH = 200
IMAGES_PER_BATCH = 150
RESULTS = ROOT / "bench" / "results" / "batch_cost.md"


def key(b: int) -> str:
    return f"q{b * 4:06d}-{b * 4 + 4:06d}"


def batch_frames(b: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    n_rep = URLS_PER_BATCH // 20
    urls = [f"https://host{b % 97}.example/img/{b}-{i}.jpg" for i in range(URLS_PER_BATCH - n_rep)]
    if b:
        urls += [f"https://host{(r) % 97}.example/img/{r}-0.jpg" for r in rng.integers(0, b, n_rep)]
    else:
        urls += [f"https://host0.example/img/0-x{i}.jpg" for i in range(n_rep)]
    cands = pd.DataFrame({"candidate_id": [f"c{b}-{i}" for i in range(len(urls))], "normalized_url": urls,
                          "filter_status": "pending", "batch": key(b)})
    shas = [f"{b:08d}{i:056d}" for i in range(IMAGES_PER_BATCH)]
    hashes = pd.DataFrame({"sha256": shas, "phash": [f"{(b * 1000 + i) & 0xffffffffffffffff:016x}" for i in range(len(shas))],
                           "hash_error": None, "hash_mode": "fast", "batch": key(b)})
    return cands, hashes


def history(root: Path, n: int) -> Warehouse:
    wh = Warehouse(root).ensure()
    rng = np.random.default_rng(0)
    for b in range(n):
        c, h = batch_frames(b, rng)
        wh.write_table("candidate_urls", c, partition=key(b))
        wh.write_table("image_hashes", h, partition=key(b))
    wh.seen_urls(before=key(n), among=["warm-up"])         # the index has followed the history
    wh.known_hashes(["warm-up"], "fast")
    return wh


def one_batch_new(wh: Warehouse, b: int, rng) -> float:
    c, h = batch_frames(b, rng)
    t0 = time.perf_counter()
    seen = wh.seen_urls(before=key(b), among=c["normalized_url"].tolist())
    known = wh.known_hashes(h["sha256"].tolist(), "fast", exclude_batch=key(b))
    wh.write_table("candidate_urls", c.assign(dup=c["normalized_url"].isin(seen)), partition=key(b))
    wh.write_table("image_hashes", h, partition=key(b))
    dt = time.perf_counter() - t0
    assert len(known) == 0
    return dt


def one_batch_old(wh: Warehouse, b: int, rng) -> float:
    """The way before: read every earlier partition for each question."""
    c, h = batch_frames(b, rng)
    t0 = time.perf_counter()
    seen: set[str] = set()
    for k in wh.partitions("candidate_urls"):
        if k < key(b):
            seen.update(wh.read_table("candidate_urls", partition=k, columns=["normalized_url"])["normalized_url"])
    known = {}
    for k in wh.partitions("image_hashes"):
        prev = wh.read_table("image_hashes", partition=k, columns=["sha256", "phash"])
        known.update(zip(prev["sha256"], prev["phash"]))
    dt = time.perf_counter() - t0
    return dt


def measure(n: int, tmp: Path, reps: int = 5) -> dict:
    t0 = time.perf_counter()
    wh = history(tmp / f"h{n}", n)
    build = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    new = [one_batch_new(wh, n + i, rng) for i in range(reps)]
    old = [one_batch_old(wh, n + reps + i, rng) for i in range(reps)]
    return {"n": n, "new_ms": 1000 * statistics.median(new), "old_ms": 1000 * statistics.median(old),
            "history_build_s": build}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = (10, 200) if args.quick else (10, 1000)
    tmp = Path(tempfile.mkdtemp(prefix="batch_cost_"))
    try:
        rows = [measure(n, tmp) for n in sizes]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lo, hi = rows
    lines = [
        "# Cost per scrape batch against its history (issue 7, item 16)",
        "",
        "- Command: `python bench/bench_batch_cost.py` (from the repository root)",
        f"- Per batch: {URLS_PER_BATCH} candidate URLs (5 % repeats of earlier batches), {IMAGES_PER_BATCH} hashed images.",
        "- Timed: the seen-URL lookup, the known-hash lookup and writing both partitions (catalog kept current);",
        "  median of 5 consecutive batches after a synthetic history of N batches, both sizes in one run.",
        "- `before`: reading every earlier partition to answer the two questions (the code before the fix).",
        "",
        "| history N | per batch now (ms) | per batch before (ms) |",
        "|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['n']} | {r['new_ms']:.1f} | {r['old_ms']:.1f} |")
    lines += ["", f"Ratio batch {hi['n']} / batch {lo['n']}: now {hi['new_ms'] / lo['new_ms']:.2f}×, "
              f"before {hi['old_ms'] / lo['old_ms']:.1f}×.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
