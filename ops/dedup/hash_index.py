"""Near-duplicate search over 64-bit perceptual hashes.

This implements the near-duplicate removal step of StockEmotion §3.1: images
are hashed with pHash (64 bits), two images whose hashes differ in at most
``threshold`` bits are near-duplicates, near-duplicates are grouped into
connected components and each group keeps one representative (largest
resolution, then earliest seen, then smallest key).

Candidate generation uses multi-index hashing (Norouzi, Punjani & Fleet,
"Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012; the same
block-permutation idea as Manku et al., WWW 2007):

* the 64 bits are split into ``bands`` contiguous bands of near-equal width
  (``bands > threshold``, default ``threshold + 1``);
* if two hashes differ in at most ``t`` bits, at most ``t`` bands differ, so
  by pigeonhole at least ``bands - t`` bands agree exactly.  With the default
  ``bands = t + 1`` that is "at least one band agrees": one lookup table per
  band.  With ``bands > t + 1`` we key each table on a combination of
  ``bands - t`` bands (``C(bands, t)`` tables with much longer keys, hence
  much smaller buckets -- a speed/space trade-off, see ``_table_masks``);
* every table is a sorted array of the masked hash values, so equal keys are
  contiguous runs; candidates are the pairs inside a run (or, incrementally,
  a new value's ``searchsorted`` range in the persisted sorted array), and
  each candidate is verified by ``popcount(a ^ b) <= t``;
* a verified pair found in table ``k`` is kept only if no earlier table
  ``k' < k`` also keys it (``(a ^ b) & mask_k' != 0``), which deduplicates
  pairs found through several bands without any global ``unique``.

Candidates are enumerated in fixed-size chunks over a flat "candidate index
space", so memory stays bounded even when a band value is very common (real
pHash bits are biased).  Time is proportional to the number of candidates,
which is what fuller buckets cost; there is no all-pairs comparison.  On
biased bits (real pHashes) ``bands = threshold + 2`` is usually much faster
than the default (bench/results/neardup.md: ~2x on random bits, ~9x with
p(bit)=0.3 at 1M hashes, t=4), at the cost of C(t+2, 2) instead of t+1
tables (3x the index storage for t=4).

Grouping the pairs into near-duplicate groups lives in ``ops.dedup.grouping``.

One cohesive algorithm, hence one module above 600 lines: the index layout, candidate enumeration,
verification, persistence and the incremental update all share the same band masks and sorted arrays.
Plain numpy/pandas/pyarrow; no Dagster imports (enforced by import-linter).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import math
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.store import atomic_write

__all__ = [
    "HashIndex",
    "IndexParameterMismatch",
    "band_masks",
    "brute_force_pairs",
    "find_pairs",
    "hashes_from_hex",
]

HASH_BITS = 64
DEFAULT_CHUNK = 1 << 17  # candidate pairs verified per numpy step (bounds memory)
MAX_TABLES = 512
FORMAT_VERSION = 1
PAIR_COLUMNS = ["key_a", "key_b", "distance"]


# --------------------------------------------------------------------------
# hash helpers
# --------------------------------------------------------------------------


def hashes_from_hex(values: Sequence[str]) -> np.ndarray:
    """Convert hex strings (e.g. ``str(imagehash.phash(img))``) to uint64."""
    return np.fromiter((int(v, 16) for v in values), dtype=np.uint64, count=len(values))


def _as_uint64(hashes) -> np.ndarray:
    """Return ``hashes`` as a contiguous 1-D uint64 array (int64 is reinterpreted)."""
    arr = np.asarray(hashes)
    if arr.dtype == np.uint64:
        out = arr
    elif arr.dtype == np.int64:
        out = arr.view(np.uint64)
    elif arr.dtype.kind in "ui":
        if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
            raise ValueError("negative hashes of a dtype narrower than int64")
        out = arr.astype(np.uint64)
    elif arr.dtype == object or arr.size == 0:
        out = np.array([int(v) for v in arr.ravel()], dtype=np.uint64).reshape(arr.shape)
    else:
        raise TypeError(f"hashes must be 64-bit integers, got dtype {arr.dtype}")
    if out.ndim != 1:
        raise ValueError(f"hashes must be 1-D, got shape {out.shape}")
    return np.ascontiguousarray(out)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


# --------------------------------------------------------------------------
# bands and lookup tables
# --------------------------------------------------------------------------


def _resolve_bands(threshold: int, bands: int | None) -> tuple[int, int]:
    threshold = int(threshold)
    if not 0 <= threshold < HASH_BITS:
        raise ValueError(f"threshold must be in [0, {HASH_BITS - 1}], got {threshold}")
    b = threshold + 1 if bands is None else int(bands)
    if not threshold < b <= HASH_BITS:
        raise ValueError(
            f"bands must satisfy threshold < bands <= {HASH_BITS} "
            f"(pigeonhole needs more bands than allowed differing bits), got bands={b}, "
            f"threshold={threshold}"
        )
    n_tables = math.comb(b, threshold)
    if n_tables > MAX_TABLES:
        raise ValueError(
            f"bands={b} with threshold={threshold} needs C({b},{threshold})={n_tables} "
            f"lookup tables (> {MAX_TABLES}); use fewer bands (default threshold+1)"
        )
    return threshold, b


def band_masks(bands: int) -> list[int]:
    """Bit masks of ``bands`` contiguous bands of near-equal width covering 64 bits.

    The first ``64 % bands`` bands are one bit wider; band 0 holds the most
    significant bits.
    """
    q, r = divmod(HASH_BITS, bands)
    masks, hi = [], HASH_BITS
    for k in range(bands):
        width = q + (1 if k < r else 0)
        lo = hi - width
        masks.append(((1 << width) - 1) << lo)
        hi = lo
    return masks


def _table_masks(threshold: int, bands: int) -> np.ndarray:
    """One 64-bit key mask per lookup table.

    Hashes within distance ``t`` agree on at least ``bands - t`` of the bands,
    so every combination of ``bands - t`` bands gets a table keyed on those
    bands.  For the default ``bands = t + 1`` this is one table per band.
    """
    bm = band_masks(bands)
    keep = bands - threshold
    masks = [sum(bm[k] for k in combo) for combo in itertools.combinations(range(bands), keep)]
    return np.array(masks, dtype=np.uint64)


# --------------------------------------------------------------------------
# candidate enumeration and verification
# --------------------------------------------------------------------------


def _verify_candidates(
    counts: np.ndarray,
    first: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    masks: np.ndarray,
    k: int,
    threshold: int,
    chunk: int,
):
    """Verify candidate pairs ``(i, first[i] + r)`` for ``r < counts[i]``.

    ``left[i]`` is compared with ``right[first[i] + r]`` by popcount of the xor.
    The candidates of all items are laid out in one flat index space (item
    ``i`` owns ``[start_i, start_i + counts[i])``) and processed in chunks of at
    most ``chunk`` entries, splitting an item across chunks if needed, so a
    single huge bucket never materialises more than ``chunk`` candidates.
    Returns ``(i, partner, dist)`` of the pairs within ``threshold`` for which
    table ``k`` is the first table keying them.
    """
    out_i, out_q, out_d = [], [], []
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return _cat(out_i), _cat(out_q), _cat(out_d)
    cnt = counts[nz].astype(np.int64)
    end = np.cumsum(cnt)
    start = end - cnt
    shift = first[nz].astype(np.int64) - start  # partner = shift[item] + flat index
    left_vals = left[nz]
    total = int(end[-1])
    for s in range(0, total, chunk):
        e = min(s + chunk, total)
        a = int(np.searchsorted(end, s, side="right"))
        b = int(np.searchsorted(end, e - 1, side="right")) + 1
        take = np.minimum(end[a:b], e) - np.maximum(start[a:b], s)
        partner = np.repeat(shift[a:b], take)
        partner += np.arange(s, e, dtype=np.int64)
        x = np.repeat(left_vals[a:b], take)  # sequential copy, cheaper than a gather
        x ^= right[partner]
        d = _popcount(x)
        hit = np.flatnonzero(d <= threshold)
        if hit.size == 0:
            continue
        hit = hit[_first_table_filter(x[hit], masks, k)]
        item = nz[a + np.searchsorted(np.cumsum(take), hit, side="right")]
        out_i.append(item)
        out_q.append(partner[hit])
        out_d.append(d[hit])
    return _cat(out_i), _cat(out_q), _cat(out_d)


def _first_table_filter(x: np.ndarray, masks: np.ndarray, k: int) -> np.ndarray:
    """True where table ``k`` is the first table that keys the pair with xor ``x``."""
    keep = np.ones(x.shape, dtype=bool)
    for m in masks[:k]:
        keep &= (x & m) != 0
    return keep


def _sort_order(h: np.ndarray, mask: np.uint64) -> np.ndarray:
    """Argsort of ``h & mask`` (groups equal keys; order within a group is irrelevant).

    For a contiguous mask of at most 16 bits (single bands for t >= 3) the
    shifted band value fits in uint16, for which numpy's stable sort is a
    radix sort; otherwise numpy's default (SIMD) sort of the masked uint64 is
    the fastest option measured (timsort of uint64 was 2-4x slower).
    """
    m = int(mask)
    lo = (m & -m).bit_length() - 1 if m else 0
    width = m.bit_length() - lo
    if m and width <= 16 and (m >> lo) == (1 << width) - 1:
        key = (h >> np.uint64(lo)).astype(np.uint16) & np.uint16((1 << width) - 1)
        return np.argsort(key, kind="stable")
    return np.argsort(h & mask)


def _runs(sorted_vals: np.ndarray) -> np.ndarray:
    """For each position of a sorted array, how many later positions hold the same value."""
    n = sorted_vals.size
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    change = np.flatnonzero(sorted_vals[1:] != sorted_vals[:-1]) + 1
    bounds = np.concatenate(([0], change, [n]))
    sizes = np.diff(bounds)
    run_end = np.repeat(bounds[1:], sizes)
    return run_end - np.arange(n, dtype=np.int64) - 1


def _pairs_within_sorted(
    sorted_hashes: np.ndarray,
    sorted_vals: np.ndarray,
    masks: np.ndarray,
    k: int,
    threshold: int,
    chunk: int,
):
    """Verified pairs ``(p, q, dist)`` (positions in the sorted order) inside equal-key runs."""
    n = sorted_vals.size
    first = np.arange(1, n + 1, dtype=np.int64)
    return _verify_candidates(
        _runs(sorted_vals), first, sorted_hashes, sorted_hashes, masks, k, threshold, chunk
    )


def _pairs_across_sorted(
    new_hashes: np.ndarray,
    new_vals: np.ndarray,
    old_hashes: np.ndarray,
    old_vals: np.ndarray,
    masks: np.ndarray,
    k: int,
    threshold: int,
    chunk: int,
):
    """Verified pairs ``(p_new, q_old, dist)`` between two key-sorted arrays of one table."""
    if new_vals.size == 0 or old_vals.size == 0:
        return _cat([]), _cat([]), _cat([])
    lo = np.searchsorted(old_vals, new_vals, side="left")
    hi = np.searchsorted(old_vals, new_vals, side="right")
    return _verify_candidates(hi - lo, lo, new_hashes, old_hashes, masks, k, threshold, chunk)


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(parts).astype(np.int64, copy=False)


def _ordered(i: np.ndarray, j: np.ndarray, d: np.ndarray):
    """Return pairs with ``i < j``, sorted by ``(i, j)``."""
    a, b = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((b, a))
    return a[order], b[order], d[order]


def find_pairs(
    hashes: np.ndarray,
    threshold: int,
    bands: int | None = None,
    *,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of one in-memory hash set within Hamming distance ``threshold``.

    Multi-index hashing (see module docstring): per lookup table, sort the
    masked hashes, enumerate pairs inside runs of equal keys in chunks of at
    most ``chunk`` candidates, verify by popcount, keep each pair only in the
    first table that keys it.

    Returns ``(i, j, dist)`` int64 arrays with ``i < j`` (positions in
    ``hashes``), sorted by ``(i, j)``.  Exact duplicates are pairs at distance 0.
    """
    h = _as_uint64(hashes)
    threshold, b = _resolve_bands(threshold, bands)
    masks = _table_masks(threshold, b)
    pi, pj, pd_ = [], [], []
    for k, m in enumerate(masks):
        order = _sort_order(h, m)
        vals = h & m
        p, q, d = _pairs_within_sorted(h[order], vals[order], masks, k, threshold, chunk)
        pi.append(order[p])
        pj.append(order[q])
        pd_.append(d)
    return _ordered(_cat(pi), _cat(pj), _cat(pd_))


def brute_force_pairs(hashes: np.ndarray, threshold: int, *, block: int = 2048):
    """Reference all-pairs computation (O(n^2) xor+popcount, blocked); for tests/benchmarks."""
    h = _as_uint64(hashes)
    out_i, out_j, out_d = [], [], []
    for s in range(0, h.size, block):
        blk = h[s : s + block]
        d = _popcount(blk[:, None] ^ h[None, :])
        ii, jj = np.nonzero(d <= threshold)
        ii = ii + s
        m = jj > ii
        out_i.append(ii[m])
        out_j.append(jj[m])
        out_d.append(d[ii[m] - s, jj[m]])
    return _ordered(_cat(out_i), _cat(out_j), _cat(out_d))


# --------------------------------------------------------------------------
# persistent incremental index
# --------------------------------------------------------------------------


class IndexParameterMismatch(ValueError):
    """The persisted index was built with other threshold/bands."""


def _save_npy(path: Path, arr: np.ndarray, *, fsync: bool) -> None:
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False), durable=fsync)


def _save_parquet(path: Path, table: pa.Table, *, fsync: bool) -> None:
    atomic_write(path, lambda f: pq.write_table(table, f), durable=fsync)


class HashIndex:
    """Persistent, incremental near-duplicate index over 64-bit hashes.

    ``add(keys, hashes)`` returns the pairs within ``threshold`` that are new:
    between the new hashes and everything stored before, and among the new
    hashes.  Keys already stored (or repeated within a batch) are ignored, so
    re-adding a batch returns no pairs.  ``key_a`` is always the
    earlier-inserted key.

    On-disk layout of ``directory`` (each file written to a temp file and
    ``os.replace``-d; ``meta.json`` is replaced last and is the commit point,
    so a crash mid-``add`` leaves the previous state intact)::

        meta.json                     format, threshold, bands, table masks,
                                      n_items, n_batches, n_pairs, tables_dir
        items/part-000000.parquet     per batch: key (string), hash (uint64)
                                      in insertion order (item id = row
                                      number over all parts)
        pairs/part-000000.parquet     per batch: key_a, key_b, distance
        tables-000000/values-00.npy   per lookup table: masked hashes, sorted
        tables-000000/order-00.npy    item ids in that sorted order (int64)

    The table arrays are merged with the new batch (``searchsorted`` +
    ``np.insert``, O(n) per table, no re-sort) into a fresh ``tables-<batch>``
    directory; older table directories are removed after the commit.
    ``add`` holds an ``fcntl`` lock on ``directory/.lock`` and reloads if
    another process committed since this object loaded.
    """

    def __init__(
        self,
        directory: Path | str,
        threshold: int,
        bands: int | None = None,
        *,
        fsync: bool = True,
        chunk: int = DEFAULT_CHUNK,
    ):
        self.directory = Path(directory)
        self.threshold, self.bands = _resolve_bands(threshold, bands)
        self.masks = _table_masks(self.threshold, self.bands)
        self.fsync = fsync
        self.chunk = chunk
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._load()

    # ---- state -----------------------------------------------------------

    def _empty_state(self) -> None:
        self._n_batches = 0
        self._n_pairs = 0
        self._tables_dir: str | None = None
        self._keys = np.zeros(0, dtype=object)
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._key_index: pd.Index | None = None
        self._tables = [
            (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)) for _ in self.masks
        ]

    def _meta_path(self) -> Path:
        return self.directory / "meta.json"

    def _read_meta(self) -> dict | None:
        try:
            return json.loads(self._meta_path().read_text())
        except FileNotFoundError:
            return None

    def _check_params(self, meta: dict) -> None:
        if meta.get("format") != FORMAT_VERSION:
            raise IndexParameterMismatch(
                f"{self.directory} has index format {meta.get('format')!r}, expected "
                f"{FORMAT_VERSION}; rebuild it with HashIndex.rebuild(...)"
            )
        masks = [int(m, 16) for m in meta["table_masks"]]
        if (
            meta["threshold"] != self.threshold
            or meta["bands"] != self.bands
            or masks != [int(m) for m in self.masks]
        ):
            raise IndexParameterMismatch(
                f"near-duplicate index at {self.directory} was built with "
                f"threshold={meta['threshold']}, bands={meta['bands']}, but it was opened with "
                f"threshold={self.threshold}, bands={self.bands}. Either open it with the "
                f"persisted parameters, or rebuild it from the stored keys/hashes with "
                f"HashIndex.rebuild({str(self.directory)!r}, NEW_DIRECTORY, "
                f"threshold={self.threshold}, bands={self.bands}) (or delete the directory "
                f"and re-add all hashes)."
            )

    def _load(self) -> None:
        self._empty_state()
        meta = self._read_meta()
        if meta is None:
            return
        self._check_params(meta)
        n_batches = int(meta["n_batches"])
        keys, hashes = _read_items(self.directory, n_batches)
        if keys.size != int(meta["n_items"]):
            raise RuntimeError(
                f"{self.directory}: meta.json says {meta['n_items']} items, parts hold {keys.size}"
            )
        self._n_batches = n_batches
        self._n_pairs = int(meta["n_pairs"])
        self._keys, self._hashes = keys, hashes
        self._tables_dir = meta["tables_dir"]
        if self._tables_dir is not None:
            tdir = self.directory / self._tables_dir
            self._tables = [
                (np.load(tdir / f"values-{k:02d}.npy"), np.load(tdir / f"order-{k:02d}.npy"))
                for k in range(len(self.masks))
            ]

    @contextlib.contextmanager
    def _locked(self):
        with open(self.directory / ".lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # ---- public API --------------------------------------------------------

    def __len__(self) -> int:
        return int(self._hashes.size)

    @property
    def keys(self) -> np.ndarray:
        """Stored keys in insertion order (object array)."""
        return self._keys

    @property
    def hashes(self) -> np.ndarray:
        """Stored hashes in insertion order (uint64)."""
        return self._hashes

    def __contains__(self, key: str) -> bool:
        return key in self._index()

    def _index(self) -> pd.Index:
        if self._key_index is None:
            # object dtype: hashtable lookups (arrow-backed string isin is a Python loop)
            self._key_index = pd.Index(self._keys, dtype=object)
        return self._key_index

    def add(self, keys: Sequence[str], hashes: np.ndarray) -> pd.DataFrame:
        """Insert a batch; return the new pairs (``key_a``, ``key_b``, ``distance``)."""
        keys = np.asarray(list(keys), dtype=object)
        h = _as_uint64(hashes)
        if keys.size != h.size:
            raise ValueError(f"{keys.size} keys but {h.size} hashes")
        with self._locked():
            meta = self._read_meta()
            if (meta or {}).get("n_batches", 0) != self._n_batches:
                self._load()  # another process committed since we loaded
            fresh = ~pd.Index(keys, dtype=object).duplicated(keep="first")
            if len(self):
                fresh &= self._index().get_indexer(keys) < 0
            keys, h = keys[fresh], h[fresh]
            if keys.size == 0:
                return _empty_pairs()
            return self._add_new(keys, h)

    def _add_new(self, keys: np.ndarray, h: np.ndarray) -> pd.DataFrame:
        base = len(self)
        t, masks, chunk = self.threshold, self.masks, self.chunk
        all_hashes = np.concatenate([self._hashes, h])
        pa_, pb_, pd_ = [], [], []
        new_tables = []
        for k, m in enumerate(masks):
            old_vals, old_order = self._tables[k]
            order = _sort_order(h, m)
            vals = h & m
            svals, shash = vals[order], h[order]
            # new vs new
            p, q, d = _pairs_within_sorted(shash, svals, masks, k, t, chunk)
            pa_.append(order[p] + base)
            pb_.append(order[q] + base)
            pd_.append(d)
            # new vs stored
            if old_vals.size:
                p, q, d = _pairs_across_sorted(
                    shash, svals, self._hashes[old_order], old_vals, masks, k, t, chunk
                )
                pa_.append(old_order[q])
                pb_.append(order[p] + base)
                pd_.append(d)
            # merge the sorted new run into the stored sorted arrays (ties: new after old)
            pos = np.searchsorted(old_vals, svals, side="right")
            new_tables.append(
                (np.insert(old_vals, pos, svals), np.insert(old_order, pos, order + base))
            )
        ia, ib, dist = _ordered(_cat(pa_), _cat(pb_), _cat(pd_))
        all_keys = np.concatenate([self._keys, keys])
        pairs = pd.DataFrame(
            {
                "key_a": pd.array(all_keys[ia], dtype="string"),
                "key_b": pd.array(all_keys[ib], dtype="string"),
                "distance": dist.astype(np.int64),
            }
        )
        self._commit(keys, h, pairs, new_tables)
        self._keys, self._hashes, self._tables = all_keys, all_hashes, new_tables
        self._key_index = None
        return pairs

    def _commit(self, keys, h, pairs: pd.DataFrame, tables) -> None:
        batch = self._n_batches
        fs = self.fsync
        items = pa.table(
            {"key": pa.array(keys.tolist(), type=pa.string()), "hash": pa.array(h, type=pa.uint64())}
        )
        _save_parquet(self.directory / "items" / f"part-{batch:06d}.parquet", items, fsync=fs)
        _save_parquet(
            self.directory / "pairs" / f"part-{batch:06d}.parquet",
            pa.Table.from_pandas(pairs, schema=_PAIRS_SCHEMA, preserve_index=False),
            fsync=fs,
        )
        tables_dir = f"tables-{batch:06d}"
        tdir = self.directory / tables_dir
        if tdir.exists():  # leftover of a crashed add
            shutil.rmtree(tdir)
        for k, (vals, order) in enumerate(tables):
            _save_npy(tdir / f"values-{k:02d}.npy", vals, fsync=fs)
            _save_npy(tdir / f"order-{k:02d}.npy", order, fsync=fs)
        meta = {
            "format": FORMAT_VERSION,
            "threshold": self.threshold,
            "bands": self.bands,
            "band_masks": [f"{m:016x}" for m in band_masks(self.bands)],
            "table_masks": [f"{int(m):016x}" for m in self.masks],
            "n_items": len(self) + int(keys.size),
            "n_batches": batch + 1,
            "n_pairs": self._n_pairs + len(pairs),
            "tables_dir": tables_dir,
        }
        atomic_write(self._meta_path(), lambda f: f.write(json.dumps(meta, indent=1).encode()), durable=fs)
        self._n_batches, self._n_pairs, self._tables_dir = batch + 1, meta["n_pairs"], tables_dir
        for d in self.directory.glob("tables-*"):
            if d.name != tables_dir and d.is_dir():
                shutil.rmtree(d, ignore_errors=True)

    def pairs(self) -> pd.DataFrame:
        """All pairs found so far (``key_a`` inserted before ``key_b``), in discovery order."""
        parts = [
            pq.read_table(self.directory / "pairs" / f"part-{b:06d}.parquet", schema=_PAIRS_SCHEMA)
            for b in range(self._n_batches)
        ]
        if not parts:
            return _empty_pairs()
        df = pa.concat_tables(parts).to_pandas()
        df["key_a"] = df["key_a"].astype("string")
        df["key_b"] = df["key_b"].astype("string")
        return df

    @classmethod
    def rebuild(
        cls,
        source: Path | str,
        destination: Path | str,
        threshold: int,
        bands: int | None = None,
        **kwargs,
    ) -> "HashIndex":
        """Build a new index at ``destination`` from the keys/hashes stored at ``source``
        (in their original insertion order), e.g. after changing threshold or bands."""
        source = Path(source)
        meta = json.loads((source / "meta.json").read_text())
        keys, hashes = _read_items(source, int(meta["n_batches"]))
        dest = cls(destination, threshold, bands, **kwargs)
        if len(dest):
            raise ValueError(f"rebuild destination {destination} is not empty")
        dest.add(keys, hashes)
        return dest


_PAIRS_SCHEMA = pa.schema(
    [("key_a", pa.string()), ("key_b", pa.string()), ("distance", pa.int64())]
)


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key_a": pd.array([], dtype="string"),
            "key_b": pd.array([], dtype="string"),
            "distance": np.zeros(0, dtype=np.int64),
        }
    )


def _read_items(directory: Path, n_batches: int) -> tuple[np.ndarray, np.ndarray]:
    if n_batches == 0:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.uint64)
    tbl = pa.concat_tables(
        [pq.read_table(directory / "items" / f"part-{b:06d}.parquet") for b in range(n_batches)]
    )
    keys = np.asarray(tbl.column("key").to_pylist(), dtype=object)
    hashes = tbl.column("hash").to_numpy().astype(np.uint64, copy=False)
    return keys, hashes


