"""Benchmark of ops.dedup.hash_index (multi-index hashing near-duplicate search).

Run from the repository root:

    python bench/bench_neardup.py            # full run (~2-4 min), writes bench/results/neardup.md
    python bench/bench_neardup.py --quick    # 100k-scale smoke run, prints only

What it measures (t = 4 throughout):

1. ``find_pairs`` on 1,000,000 hashes + 10,000 planted near-duplicate pairs
   (2,500 each at distances 1, 2, 3, 4) for three hash distributions:
   uniform random bits, biased bits (each bit 1 with p = 0.3, independent),
   and simulated pHashes (thresholded low-frequency "DCT" coefficients drawn
   from 2,000 scene templates, so bits are biased and correlated).  Default
   bands (t + 1 = 5, one table per band) and bands = 6 (15 tables keyed on
   pairs of bands).
   Exactness check: every planted pair is reported with its true distance,
   and for a sample of 2,000 query hashes (1,000 for the biased and pHash
   sets; half planted-pair members, half uniform) the set of partners within distance 4 computed by brute
   force (vectorised xor + popcount against all ~1.01M hashes) equals the
   set of partners in find_pairs' output.
2. pybktree at 100,000 random hashes: build time and query time at t = 4
   for a sample of queries, extrapolated to all 100k; vs find_pairs at 100k.
3. ``HashIndex``: initial add of the 1.01M random hashes, reopen, then add a
   batch of 10,000 new hashes (100 of them near-duplicates of stored ones),
   including persistence (fsync on), and an idempotent re-add of that batch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ops.dedup.hash_index import HashIndex, _table_masks, find_pairs  # noqa: E402

T = 4
RESULTS = ROOT / "bench" / "results" / "neardup.md"


# ------------------------------------------------------------------ data


def _pack(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def gen_random(rng, n):
    return rng.integers(0, 2**64, n, dtype=np.uint64)


def gen_biased(rng, n, p=0.3, block=200_000):
    return np.concatenate(
        [_pack(rng.random((min(block, n - s), 64)) < p) for s in range(0, n, block)]
    )


def gen_phash_like(rng, n, n_templates=2000, noise=0.7, block=200_000):
    """Simulated pHash: 8x8 low-frequency coefficients, bit = coefficient > median.

    Energy decays with frequency (1/(1+u+v)), the DC term is large and
    positive (bit almost always 1, as in imagehash.phash), images are drawn
    around 2,000 scene templates, so bits are biased and correlated.
    """
    u, v = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    scale = (1.0 / (1.0 + u + v)).ravel()
    tmpl = rng.normal(size=(n_templates, 64)) * scale
    tmpl[:, 0] = np.abs(tmpl[:, 0]) * 4 + 2
    out = []
    for s in range(0, n, block):
        m = min(block, n - s)
        coef = tmpl[rng.integers(0, n_templates, m)] + noise * rng.normal(size=(m, 64)) * scale
        out.append(_pack(coef > np.median(coef, axis=1, keepdims=True)))
    return np.concatenate(out)


def flip_bits(rng, h, d):
    bits = np.argsort(rng.random((h.size, 64)), axis=1)[:, :d].astype(np.uint64)
    return h ^ np.bitwise_or.reduce(np.uint64(1) << bits, axis=1)


def with_planted(rng, base, n_pairs=10_000, distances=(1, 2, 3, 4)):
    """Append one near copy for ``n_pairs`` distinct base hashes; return hashes, planted (i, j, d)."""
    src = rng.choice(base.size, n_pairs, replace=False)
    d = np.repeat(np.array(distances), n_pairs // len(distances))
    copies = np.empty(n_pairs, dtype=np.uint64)
    for dist in distances:
        sel = d == dist
        copies[sel] = flip_bits(rng, base[src[sel]], dist)
    h = np.concatenate([base, copies])
    j = np.arange(base.size, h.size)
    return h, (src, j, d)


# ------------------------------------------------------------------ checks


def n_candidates(h, bands):
    """Candidate pairs find_pairs verifies: sum over tables of C(bucket size, 2)."""
    total = 0
    for m in _table_masks(T, bands):
        _, c = np.unique(h & m, return_counts=True)
        c = c.astype(np.int64)
        total += int((c * (c - 1) // 2).sum())
    return total


def check_planted(pairs, planted):
    i, j, d = pairs
    key = i * np.int64(2**32) + j
    pi, pj, pd_ = planted
    pkey = np.minimum(pi, pj) * np.int64(2**32) + np.maximum(pi, pj)
    order = np.argsort(key)
    pos = np.searchsorted(key[order], pkey)
    pos = np.minimum(pos, key.size - 1)
    found = key[order][pos] == pkey
    dist_ok = d[order][pos][found] == pd_[found]
    return int(found.sum()), bool(found.all() and dist_ok.all())


def check_sample(h, pairs, queries, t=T, block=8):
    """Brute force: partners of each query among all h must equal find_pairs' partners."""
    i, j, _ = pairs
    qset = set(queries.tolist())
    qi = np.isin(i, queries)
    qj = np.isin(j, queries)
    got = {q: set() for q in qset}
    for a, b in zip(i[qi].tolist(), j[qi].tolist()):
        got[a].add(b)
    for a, b in zip(i[qj].tolist(), j[qj].tolist()):
        got[b].add(a)
    n_partners = 0
    ok = True
    for s in range(0, queries.size, block):
        q = queries[s : s + block]
        dist = np.bitwise_count(h[q][:, None] ^ h[None, :])
        rows, cols = np.nonzero(dist <= t)
        for r, c in zip(rows.tolist(), cols.tolist()):
            if c == q[r]:
                continue
            n_partners += 1
            if c not in got[int(q[r])]:
                ok = False
        # reverse direction: nothing reported that brute force does not find
        for r, qq in enumerate(q.tolist()):
            for c in got[qq]:
                if dist[r, c] > t:
                    ok = False
    return ok, n_partners


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def timed_cpu(fn, *args, **kw):
    """(wall seconds, CPU seconds of this process, result)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, time.process_time() - c0, out


# ------------------------------------------------------------------ benchmark


def bench_find_pairs(rng, name, gen, n, rows, repeats, n_queries=2000):
    base = gen(rng, n)
    h, planted = with_planted(rng, base)
    times = {}
    results = {}
    for bands in (None, T + 2):
        best = None
        for _ in range(repeats if bands is None else 1):
            sec, cpu, out = timed_cpu(find_pairs, h, T, bands)
            if best is None or sec < best[0]:
                best = (sec, cpu)
        times[bands] = best
        results[bands] = out
    a, b = results[None], results[T + 2]
    same = all(np.array_equal(x, y) for x, y in zip(a, b))
    n_found, planted_ok = check_planted(a, planted)
    qs = np.unique(
        np.concatenate(
            [
                rng.choice(np.concatenate([planted[0], planted[1]]), n_queries // 2, replace=False),
                rng.choice(h.size, n_queries // 2, replace=False),
            ]
        )
    )
    bsec, (sample_ok, n_partners) = timed(check_sample, h, a, qs)
    ok = same and planted_ok and sample_ok
    cand5, cand6 = n_candidates(h, T + 1), n_candidates(h, T + 2)
    rows.append(
        {
            "cand5": cand5,
            "cand6": cand6,
            "data": name,
            "n": h.size,
            "t5": times[None][0],
            "t6": times[T + 2][0],
            "c5": times[None][1],
            "c6": times[T + 2][1],
            "pairs": a[0].size,
            "planted": f"{n_found}/{planted[0].size}",
            "sample": f"{qs.size} queries, {n_partners} partners, {'OK' if sample_ok else 'MISMATCH'}",
            "ok": ok,
            "brute_sample_s": bsec,
        }
    )
    print(
        f"[{name}] n={h.size} find_pairs b=5 {times[None][0]:.2f}s (cpu {times[None][1]:.2f}s)  "
        f"b=6 {times[T + 2][0]:.2f}s (cpu {times[T + 2][1]:.2f}s)  "
        f"pairs={a[0].size} planted={n_found}/{planted[0].size} b5==b6:{same} "
        f"sample({qs.size} q, {n_partners} partners, brute {bsec:.1f}s): {sample_ok}",
        flush=True,
    )
    return h, ok


def bench_bktree(rng, n, n_queries):
    import pybktree

    n_planted = n // 20
    h, planted = with_planted(rng, gen_random(rng, n - n_planted), n_pairs=n_planted)
    hl = h.tolist()

    def hamming(x, y):
        return (x ^ y).bit_count()

    build, tree = timed(pybktree.BKTree, hamming, hl)
    members = np.concatenate([planted[0], planted[1]])
    q = np.unique(
        np.concatenate(
            [
                rng.choice(members, n_queries // 2, replace=False),
                rng.choice(n, n_queries - n_queries // 2, replace=False),
            ]
        )
    )
    n_queries = q.size
    t0 = time.perf_counter()
    found = {}
    for qi in q.tolist():
        found[qi] = tree.find(hl[qi], T)
    qsec = time.perf_counter() - t0
    fp, pairs = timed(find_pairs, h, T)
    # agreement on the sampled queries (partner hashes within T)
    partners = {int(x): set() for x in q}
    for a, b in zip(pairs[0].tolist(), pairs[1].tolist()):
        if a in partners:
            partners[a].add(b)
        if b in partners:
            partners[b].add(a)
    agree = all(
        sorted(v for d, v in found[qi] if d <= T) == sorted([hl[qi]] + [hl[p] for p in partners[qi]])
        for qi in q.tolist()
    )
    n_partners = sum(len(v) for v in partners.values())
    res = {
        "n": n,
        "n_planted": n_planted,
        "n_partners": n_partners,
        "build": build,
        "queries": n_queries,
        "query_sample": qsec,
        "query_all_est": qsec / n_queries * n,
        "find_pairs": fp,
        "agree": agree,
    }
    print(
        f"[bktree] n={n} ({n_planted} planted pairs) build {build:.2f}s, {n_queries} queries "
        f"({n_partners} partners) {qsec:.2f}s "
        f"-> all {res['query_all_est']:.0f}s (extrapolated); find_pairs {fp:.2f}s; agree={agree}",
        flush=True,
    )
    return res


def bench_index(rng, h, n_new):
    tmp = Path(tempfile.mkdtemp(prefix="neardup_bench_"))
    try:
        keys = np.array([f"img/{i:08d}.jpg" for i in range(h.size)], dtype=object)
        build, idx = timed(lambda: HashIndex(tmp, T))
        sec_init, first = timed(idx.add, keys, h)
        load, idx = timed(lambda: HashIndex(tmp, T))
        new = gen_random(rng, n_new)
        near = rng.choice(h.size, 100, replace=False)
        new[:100] = flip_bits(rng, h[near], 2)
        new_keys = [f"new/{i:06d}.jpg" for i in range(n_new)]
        sec_add, added = timed(idx.add, new_keys, new)
        sec_readd, readd = timed(idx.add, new_keys, new)
        disk = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        planted_found = {(f"img/{a:08d}.jpg", f"new/{b:06d}.jpg") for a, b in zip(near, range(100))}
        got = set(zip(added["key_a"], added["key_b"]))
        res = {
            "n": h.size,
            "initial_add": sec_init,
            "initial_pairs": len(first),
            "load": load,
            "add": sec_add,
            "add_pairs": len(added),
            "planted_ok": planted_found <= got,
            "readd": sec_readd,
            "readd_pairs": len(readd),
            "disk_mb": disk / 1e6,
        }
        print(f"[index] {res}", flush=True)
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def machine_note():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (
        f"{os.cpu_count()} cores ({cpu}), shared with other processes/agents "
        f"(load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}); "
        f"Python {platform.python_version()}, numpy {np.__version__}. "
        "Absolute times are noisy; compare ratios."
    )


def write_markdown(path, note, rows, bk, ix, total, started):
    speedup = float(f"{(bk['build'] + bk['query_all_est']) / bk['find_pairs']:.2g}")
    lines = [
        "# Near-duplicate search benchmark (`ops/neardup.py`)",
        "",
        f"- Command: `python bench/bench_neardup.py` (from the repository root)",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
        f"- Machine: {note}",
        f"- Threshold t = {T}; 64-bit hashes; total bench wall time {total:.0f} s.",
        "- find_pairs is single-threaded numpy; its CPU time (process time) is shown next "
        "to wall time because the machine was shared: wall >> CPU means we were waiting "
        "for a core.",
        "",
        "## find_pairs at ~1M hashes",
        "",
        "Each data set is 1,000,000 hashes plus 10,000 planted near-duplicate pairs "
        "(2,500 each at distances 1, 2, 3, 4). `b=5` is the default (bands = t + 1, "
        "one lookup table per 12-13-bit band); `b=6` keys 15 tables on pairs of "
        "~11-bit bands (at least 2 of 6 bands must agree), which makes buckets far smaller.",
        "",
        "| data | n | find_pairs b=5, wall (CPU) s | find_pairs b=6, wall (CPU) s | candidates b=5 | "
        "candidates b=6 | pairs found | planted found | brute-force sample check | "
        "all checks pass |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['n']:,} | {r['t5']:.2f} ({r['c5']:.2f}) | "
            f"{r['t6']:.2f} ({r['c6']:.2f}) | "
            f"{r['cand5'] / 1e6:,.0f}M | {r['cand6'] / 1e6:,.1f}M | {r['pairs']:,} | "
            f"{r['planted']} | {r['sample']} | {'yes' if r['ok'] else 'NO'} |"
        )
    lines += [
        "",
        "What was verified, per data set: (1) every planted pair is reported, with its "
        "true distance; (2) for a sample of query hashes (2,000 for random bits, 1,000 for "
        "the other two; half members of planted pairs, half uniform; duplicates removed) "
        "a brute-force scan (xor + popcount "
        "against all ~1.01M hashes) finds exactly the partners within distance 4 that "
        "find_pairs reports for them, no more, no fewer; (3) b=5 and b=6 return identical "
        "arrays. For random bits find_pairs b=5 is the best of 2 runs, all others 1 run. "
        "Full all-pairs brute force at 1M (5*10^11 pairs) was not run; "
        "`tests/test_neardup.py` does a complete brute-force comparison on ~3,000 hashes "
        "for t in {0, 2, 4, 6}.",
        "",
        "Cost is proportional to the number of candidate pairs verified (sum over "
        "tables of C(bucket size, 2)), so biased bits, which fill some buckets, cost "
        "more at b=5; keying on pairs of bands (b=6) shrinks the candidates by "
        "roughly two orders of magnitude at the price of 15 instead of 5 sorts (and "
        "3x the table storage in HashIndex). Memory stays bounded either way: "
        "candidates are verified in chunks of 131,072.",
        "",
        f"## pybktree vs find_pairs at {bk['n']:,} hashes (t = {T})",
        "",
        f"{bk['n'] - bk['n_planted']:,} random hashes + {bk['n_planted']:,} planted near copies "
        "(distances 1-4). pybktree (pure Python, distance = `(a ^ b).bit_count()`) "
        "is built over all items; querying every item at t = 4 would take too long, so "
        f"{bk['queries']} items (half of them planted-pair members) are queried and the time "
        "is extrapolated linearly to all items.",
        "",
        "| method | time (s) |",
        "|---|---:|",
        f"| pybktree build | {bk['build']:.2f} |",
        f"| pybktree query, {bk['queries']} sampled items (measured) | {bk['query_sample']:.2f} |",
        f"| pybktree query, all {bk['n']:,} items (**extrapolated** from the sample) | "
        f"{bk['query_all_est']:.0f} |",
        f"| pybktree total (build + all queries, extrapolated) | "
        f"{bk['build'] + bk['query_all_est']:.0f} |",
        f"| find_pairs (all pairs, default bands) | {bk['find_pairs']:.2f} |",
        "",
        f"Speed-up of find_pairs over pybktree (all pairs): "
        f"~{speedup:,.0f}x. "
        f"pybktree and find_pairs return the same partners for all sampled queries "
        f"({bk['n_partners']} partners in total): {'yes' if bk['agree'] else 'NO'}.",
        "",
        f"## Incremental HashIndex (t = {T}, default bands, fsync on)",
        "",
        "| step | time (s) | pairs returned |",
        "|---|---:|---:|",
        f"| initial add of {ix['n']:,} hashes into an empty index (incl. persistence) | "
        f"{ix['initial_add']:.2f} | {ix['initial_pairs']:,} |",
        f"| reopen index from disk (load keys, hashes, sorted tables) | {ix['load']:.2f} | |",
        f"| add 10,000 new hashes (100 planted near-dups of stored ones) incl. merge + "
        f"persistence | {ix['add']:.2f} | {ix['add_pairs']:,} |",
        f"| re-add the same 10,000 (idempotent) | {ix['readd']:.2f} | {ix['readd_pairs']:,} |",
        "",
        f"All 100 planted pairs returned by the incremental add: "
        f"{'yes' if ix['planted_ok'] else 'NO'}. Index size on disk: {ix['disk_mb']:.0f} MB.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100k-scale smoke run; no results file")
    args = ap.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    note = machine_note()
    print(note, flush=True)
    t_start = time.perf_counter()
    rng = np.random.default_rng(20240601)
    n = 100_000 if args.quick else 1_000_000
    rows = []
    h_random, ok1 = bench_find_pairs(rng, "random bits", gen_random, n, rows, repeats=2)
    # 1,000 brute-force queries for the slower data sets keep the bench under ~5 min
    _, ok2 = bench_find_pairs(
        rng, "biased bits (p=0.3)", gen_biased, n, rows, repeats=1, n_queries=1000
    )
    _, ok3 = bench_find_pairs(
        rng, "simulated pHash", gen_phash_like, n, rows, repeats=1, n_queries=1000
    )
    bk = bench_bktree(rng, 100_000 if not args.quick else 20_000, 500 if not args.quick else 100)
    ix = bench_index(rng, h_random, 10_000)
    total = time.perf_counter() - t_start
    print(f"total {total:.0f}s", flush=True)
    if not args.quick:
        write_markdown(RESULTS, note, rows, bk, ix, total, started)
        print(f"wrote {RESULTS}")
    ok = ok1 and ok2 and ok3 and bk["agree"] and ix["planted_ok"] and ix["readd_pairs"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
