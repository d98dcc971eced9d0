"""The feature store: cached backbone activations, one vector per (image sha256, extractor).

FindingEmo §3 trains only a new last layer on frozen backbones and, footnote 4, "buffered model
activations whenever possible": features are computed once per image and extractor and every later
model reads them. An extractor key (``models.backbones.extractor_key``) covers backbone, layer,
weights fingerprint, preprocessing and precision; each key has its own directory, so a change of any
of these is a new store, never a silent overwrite (the directory's ``store.json`` names its key and
dimension, and opening it with another key or dimension raises :class:`FeatureStoreMismatch`).

Layout of one store (``<data dir>/features/<extractor key>/`` when the Warehouse owns it)::

    store.json            extractor key, dim, dtype, created_at, a description of the extractor
    shards/<id>.npy       float16 (n, dim) vectors of one append, C order, memory-mapped on read
    index/<id>.parquet    one row per item of that append: sha256, extractor, dim, shard, row,
                          status, error, computed_at (failed items too, with shard NULL)

Why ``.npy`` shards and not Parquet fixed-size float16 lists (bench/bench_features.py section 0,
20,000 × 2048 float16 on this machine): appending is about 2× faster even with the index part and
fsync (0.7 s vs 1.6 s), the first mini-batch is readable after reading the index only (0.2 s vs
1.5 s to decode every row group), the full matrix as float32 takes 0.19 s vs 1.2 s, and nothing is
copied into private memory (np.load(mmap_mode="r"): the page cache is the buffer, shared by every
reader process; Parquet holds an 82 MB decoded copy per reader). Parquet is 12 % smaller on disk.
DuckDB still sees every vector through the ``image_features`` table (pointers, or the vectors
themselves with ``with_vectors=True``).

Append-only and crash-safe: an append writes its shard atomically, then commits its index part
(also atomically). A shard without an index part is an orphan of an interrupted run (invisible to
readers; :meth:`FeatureStore.remove_orphans` deletes them). Shard ids are unique per append
(timestamp + content hash), so concurrent writers of one store never collide; should one sha256 be
written twice, readers take its first ok row.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.store import atomic_write, atomic_write_bytes, atomic_write_parquet

STATUS_OK = "ok"
STATUS_DECODE_ERROR = "decode_error"  # the image could not be decoded (recorded, not retried)
STATUS_NONFINITE = "nonfinite"  # the backbone gave NaN/inf, or the vector overflows float16
STORE_DTYPE = np.float16
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")

INDEX_SCHEMA = pa.schema([
    ("sha256", pa.string()),
    ("extractor", pa.string()),
    ("dim", pa.int32()),
    ("shard", pa.string()),
    ("row", pa.int32()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("computed_at", pa.timestamp("us", tz="UTC")),
])

# CONTRACT table `image_features` (DESIGN.md): sha256, extractor, dim, and a pointer to the vector
# (shard_path relative to the data directory, row); `vector` only with with_vectors=True.
IMAGE_FEATURES_SCHEMA = pa.schema([
    ("sha256", pa.string()),
    ("extractor", pa.string()),
    ("dim", pa.int32()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("shard_path", pa.string()),
    ("row", pa.int32()),
    ("computed_at", pa.timestamp("us", tz="UTC")),
])


class FeatureStoreMismatch(ValueError):
    """A store directory holds another extractor key or dimension than the one asked for."""


class FeatureStore:
    """Vectors of one extractor key in ``root_dir`` (see the module docstring for the layout).

    ``meta``: a JSON-able description of the extractor (backbone, layer, weights, preprocessing)
    written to ``store.json`` on the first append, for provenance.
    """

    def __init__(self, root_dir: str | Path, extractor_key: str, dim: int, *, meta: dict | None = None):
        if not _KEY_RE.match(extractor_key):
            raise ValueError(f"invalid extractor key {extractor_key!r}")
        if int(dim) < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.root = Path(root_dir)
        self.extractor = extractor_key
        self.dim = int(dim)
        self.meta = dict(meta or {})
        self.shards_dir = self.root / "shards"
        self.index_dir = self.root / "index"
        self._parts: dict[str, pd.DataFrame] = {}
        self._view: pd.DataFrame | None = None  # one row per sha256 (see _dedup)
        self._ok_pos: pd.Index | None = None  # sha256 → position among the ok rows (with the next three)
        self._ok_code = self._ok_row = self._ok_ids = np.empty(0, dtype=np.int64)
        self._mmaps: dict[str, np.ndarray] = {}
        info = self.info()
        if info is not None and (info.get("extractor") != extractor_key or int(info.get("dim", -1)) != self.dim):
            raise FeatureStoreMismatch(
                f"{self.root} holds features of extractor {info.get('extractor')!r} (dim {info.get('dim')}), "
                f"not {extractor_key!r} (dim {self.dim}); a changed extractor needs its own directory"
            )

    # ---- identity -----------------------------------------------------------------------------
    def info(self) -> dict | None:
        p = self.root / "store.json"
        return json.loads(p.read_text("utf-8")) if p.exists() else None

    def _ensure(self) -> None:
        if (self.root / "store.json").exists():
            return
        doc = {"extractor": self.extractor, "dim": self.dim, "dtype": np.dtype(STORE_DTYPE).name,
               "created_at": _now().isoformat(), "meta": self.meta}
        atomic_write_bytes(self.root / "store.json", json.dumps(doc, indent=1, sort_keys=True).encode())

    # ---- the index ----------------------------------------------------------------------------
    def _sync(self) -> None:
        """Read index parts committed since the last look (by this or another process)."""
        if not self.index_dir.is_dir():
            return
        new = sorted(p for p in self.index_dir.glob("*.parquet") if p.stem not in self._parts)
        for p in new:
            self._parts[p.stem] = pq.read_table(p).to_pandas()
        if new:
            self._view = self._ok_pos = None

    def index(self, *, all_rows: bool = False) -> pd.DataFrame:
        """The committed index. Default: one row per sha256 (its first ok row, else its latest
        failure); ``all_rows``: every committed row, in commit order."""
        self._sync()
        if all_rows:
            return _concat(self._parts[k] for k in sorted(self._parts))
        if self._view is None:
            self._view = _dedup(_concat(self._parts[k] for k in sorted(self._parts)))
        return self._view

    def known(self, *, retry_failed: bool = False) -> set[str]:
        """sha256s with a stored outcome: ok and failed (a decode failure is recorded and not
        retried on every run); ``retry_failed=True``: only the ok ones."""
        df = self.index()
        if retry_failed:
            df = df[df["status"] == STATUS_OK]
        return set(df["sha256"])

    def __len__(self) -> int:
        return int((self.index()["status"] == STATUS_OK).sum())

    # ---- writing ------------------------------------------------------------------------------
    def append(self, shas: Sequence[str], vectors, statuses: Sequence[str] | None = None,
               errors: Sequence[str | None] | None = None) -> str | None:
        """Commit one shard: ``vectors`` is a (n, dim) array (all ok) or one vector-or-None per
        item; ``statuses`` default to "ok" where a vector is given and "decode_error" elsewhere.
        Returns the shard id (None for an empty append)."""
        shas = [str(s) for s in shas]
        n = len(shas)
        if n == 0:
            return None
        if len(set(shas)) != n:
            raise ValueError("duplicate sha256 in one append")
        vecs = list(vectors) if not isinstance(vectors, np.ndarray) else list(vectors.reshape(n, -1))
        statuses = list(statuses) if statuses is not None else [
            STATUS_OK if v is not None else STATUS_DECODE_ERROR for v in vecs]
        errors = list(errors) if errors is not None else [None] * n
        if not (len(vecs) == len(statuses) == len(errors) == n):
            raise ValueError(f"append needs one vector, status and error per sha256 ({n})")
        ok = [i for i, s in enumerate(statuses) if s == STATUS_OK]
        if any(vecs[i] is None for i in ok):
            raise ValueError("an item with status 'ok' needs a vector")
        block = np.zeros((len(ok), self.dim), dtype=STORE_DTYPE)
        for j, i in enumerate(ok):
            v = np.asarray(vecs[i])
            if v.shape != (self.dim,):
                raise ValueError(f"vector of {shas[i]} has shape {v.shape}, the store holds ({self.dim},)")
            block[j] = v
        if not np.isfinite(block).all():
            raise ValueError("non-finite vector (or one that overflows float16) with status 'ok': "
                             "record it with status 'nonfinite' instead")
        now = _now()
        shard_id = f"{now:%Y%m%dT%H%M%S%f}-{hashlib.sha256(chr(10).join(shas).encode()).hexdigest()[:10]}"
        self._ensure()
        if ok:
            atomic_write(self._shard_path(shard_id), lambda fh: np.save(fh, block))
        rows = np.full(n, -1, dtype=np.int64)
        rows[ok] = np.arange(len(ok))
        has = rows >= 0
        part = pd.DataFrame({
            "sha256": shas,
            "extractor": self.extractor,
            "dim": np.int32(self.dim),
            "shard": pd.array([shard_id if h else None for h in has], dtype=object),
            "row": pd.Series(rows, dtype="Int32").mask(~has),
            "status": statuses,
            "error": pd.array([None if s == STATUS_OK else (e or s) for s, e in zip(statuses, errors)], dtype=object),
            "computed_at": pd.Timestamp(now),
        })
        table = pa.Table.from_pandas(part, schema=INDEX_SCHEMA, preserve_index=False)
        atomic_write_parquet(self.index_dir / f"{shard_id}.parquet", table)  # the commit
        self._parts[shard_id] = table.to_pandas()
        self._view = self._ok_pos = None
        return shard_id

    # ---- reading ------------------------------------------------------------------------------
    def _shard_path(self, shard_id: str) -> Path:
        return self.shards_dir / f"{shard_id}.npy"

    def shard(self, shard_id: str) -> np.memmap:
        """The (n, dim) float16 vectors of one shard, memory-mapped read-only (never copied)."""
        mm = self._mmaps.get(shard_id)
        if mm is None:
            mm = self._mmaps[shard_id] = np.load(self._shard_path(shard_id), mmap_mode="r")
        return mm

    def shard_ids(self) -> list[str]:
        df = self.index()
        return sorted(df.loc[df["status"] == STATUS_OK, "shard"].unique())

    def _positions(self, shas: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(shard code per sha or -1, row per sha or -1, found) against the ok rows."""
        if self._ok_pos is None:
            ok = self.index()
            ok = ok[ok["status"] == STATUS_OK]
            codes, ids = pd.factorize(ok["shard"])
            self._ok_code, self._ok_ids = codes.astype(np.int64), np.asarray(ids, dtype=object)
            self._ok_row = ok["row"].to_numpy(dtype=np.int64)
            self._ok_pos = pd.Index(ok["sha256"])
        pos = self._ok_pos.get_indexer(list(shas))
        found = pos >= 0
        if not found.any():
            return np.full(len(pos), -1, dtype=np.int64), np.full(len(pos), -1, dtype=np.int64), found
        code = np.where(found, self._ok_code[pos], -1)
        row = np.where(found, self._ok_row[pos], -1)
        return code, row, found

    def locate(self, shas: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(shard id per sha or None, row per sha or -1, found mask) of the ok vectors."""
        code, row, found = self._positions(shas)
        shard = np.full(len(code), None, dtype=object)
        shard[found] = self._ok_ids[code[found]]
        return shard, row, found

    def read(self, shas: Sequence[str], dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (n, dim), found mask). Rows not found are zeros.

        ``dtype=None`` keeps the stored float16 and, when the sha256s are a run of consecutive rows
        of one shard (e.g. a whole shard, in order), returns a read-only view of its memory map: no
        copy at all. Otherwise only the requested rows are gathered (and cast to ``dtype``)."""
        code, row, found = self._positions(shas)
        n = len(row)
        if dtype is None and n and found.all() and (code == code[0]).all():
            r0 = int(row[0])
            if np.array_equal(row, np.arange(r0, r0 + n)):
                return self.shard(self._ok_ids[code[0]])[r0:r0 + n], found
        out = np.zeros((n, self.dim), dtype=dtype or STORE_DTYPE)
        order = np.argsort(code, kind="stable")
        bounds = np.flatnonzero(np.diff(code[order])) + 1
        for sel in np.split(order, bounds):
            if len(sel) and code[sel[0]] >= 0:
                out[sel] = self.shard(self._ok_ids[code[sel[0]]])[row[sel]]  # only the requested rows
        return out, found

    def iter_shards(self) -> Iterable[tuple[list[str], np.memmap]]:
        """(sha256s in row order, memory-mapped vectors) per shard: a full pass without copies."""
        ok = self.index()
        ok = ok[ok["status"] == STATUS_OK]
        for sid, g in ok.groupby("shard", sort=True):
            mm = self.shard(sid)
            g = g.sort_values("row")
            if len(g) == len(mm):
                yield list(g["sha256"]), mm
            else:  # rows superseded by an earlier ok row of the same sha256 elsewhere
                yield list(g["sha256"]), mm[g["row"].to_numpy(dtype=np.int64)]

    # ---- maintenance --------------------------------------------------------------------------
    def orphans(self) -> list[Path]:
        """Shard files without a committed index part (left by an interrupted append)."""
        committed = {p.stem for p in self.index_dir.glob("*.parquet")} if self.index_dir.is_dir() else set()
        return sorted(p for p in self.shards_dir.glob("*.npy") if p.stem not in committed) \
            if self.shards_dir.is_dir() else []

    def remove_orphans(self, older_than_s: float = 3600.0) -> list[Path]:
        """Delete orphan shards older than ``older_than_s`` (younger ones may belong to a
        concurrent writer between its two writes)."""
        import time

        gone = []
        for p in self.orphans():
            if time.time() - p.stat().st_mtime >= older_than_s:
                p.unlink(missing_ok=True)
                gone.append(p)
        return gone

    # ---- the CONTRACT table -------------------------------------------------------------------
    def table_rows(self, data_dir: str | Path, *, with_vectors: bool = False) -> pa.Table:
        """Rows of ``image_features`` (see :func:`image_features_rows`)."""
        return image_features_rows(self, data_dir, with_vectors=with_vectors)


def image_features_rows(store: FeatureStore, data_dir: str | Path, *, with_vectors: bool = False) -> pa.Table:
    """One row per (sha256, extractor) of ``store``, typed by :data:`IMAGE_FEATURES_SCHEMA`, for the
    warehouse to write as Parquet (queryable in DuckDB). ``shard_path`` is the shard file relative to
    ``data_dir`` (NULL for failed items, which keep their status and error). ``with_vectors`` adds
    ``vector`` as fixed_size_list<float32>[dim] (SQL over the vectors, at 4 bytes per value)."""
    df = store.index()
    base = Path(data_dir).resolve()
    try:
        rel = store.shards_dir.resolve().relative_to(base).as_posix()
    except ValueError:
        raise ValueError(f"the feature store {store.root} is not inside the data directory {base}") from None
    has = df["shard"].notna().to_numpy()
    out = pd.DataFrame({
        "sha256": df["sha256"].to_numpy(),
        "extractor": df["extractor"].to_numpy(),
        "dim": df["dim"].to_numpy(dtype=np.int32),
        "status": df["status"].to_numpy(),
        "error": df["error"].to_numpy(),
        "shard_path": np.where(has, rel + "/" + df["shard"].fillna("").astype(str) + ".npy", None),
        "row": df["row"].astype("Int32"),
        "computed_at": df["computed_at"],
    })
    table = pa.Table.from_pandas(out, schema=IMAGE_FEATURES_SCHEMA, preserve_index=False)
    if with_vectors:
        vecs, found = store.read(list(out["sha256"]), dtype=np.float32)
        flat = pa.array(vecs.reshape(-1), pa.float32())
        arr = pa.FixedSizeListArray.from_arrays(flat, store.dim, mask=pa.array(~found))
        table = table.append_column("vector", arr)
    return table


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return INDEX_SCHEMA.empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True)


def _dedup(df: pd.DataFrame) -> pd.DataFrame:
    """One row per sha256: the first ok row (commit order), else the latest failure."""
    if df.empty:
        return df
    ok = df["status"] == STATUS_OK
    first_ok = df[ok].drop_duplicates("sha256", keep="first")
    failed = df[~ok & ~df["sha256"].isin(first_ok["sha256"])].drop_duplicates("sha256", keep="last")
    return pd.concat([first_ok, failed]).sort_index().reset_index(drop=True)
