"""Near-duplicate groups and their representatives (StockEmotion §3.1).

Pairs within the Hamming threshold (from :mod:`ops.dedup.hash_index`) form a graph; its connected
components are the near-duplicate groups (transitive: a~b~c is one group); each group keeps one
representative.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["choose_representatives", "connected_components", "near_duplicate_groups", "unique_image_rows"]



def connected_components(n_or_keys, pairs) -> np.ndarray:
    """Group labels of the near-duplicate graph (StockEmotion §3.1: groups of near-duplicates).

    ``n_or_keys`` is either the number of items (then ``pairs`` is ``(i, j[, dist])``
    integer arrays or a DataFrame with columns ``i``, ``j``) or a sequence of unique
    keys (then ``pairs`` is a DataFrame with ``key_a``, ``key_b`` -- e.g. the output of
    ``HashIndex.add``/``pairs()`` -- or a pair of key sequences).  Pairs naming
    unknown keys raise ``KeyError``: silently dropping them could split a chain.

    Returns an int64 array aligned with the items; labels are ``0..n_groups-1``
    numbered in order of each group's first item.  Uses
    ``scipy.sparse.csgraph.connected_components`` (transitive closure, so a~b~c
    is one group even if a and c are farther apart than the threshold).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as _cc

    if isinstance(n_or_keys, (int, np.integer)):
        n = int(n_or_keys)
        if isinstance(pairs, pd.DataFrame):
            i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
        else:
            i, j = pairs[0], pairs[1]
        i = np.asarray(i, dtype=np.int64)
        j = np.asarray(j, dtype=np.int64)
        if i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
            raise IndexError("pair index out of range")
    else:
        index = pd.Index(np.asarray(list(n_or_keys), dtype=object), dtype=object)
        if not index.is_unique:
            raise ValueError("keys must be unique")
        n = len(index)
        if isinstance(pairs, pd.DataFrame):
            ka, kb = pairs["key_a"], pairs["key_b"]
        else:
            ka, kb = pairs[0], pairs[1]
        ka = np.asarray(ka, dtype=object)
        kb = np.asarray(kb, dtype=object)
        i = index.get_indexer(ka)
        j = index.get_indexer(kb)
        missing = (i < 0) | (j < 0)
        if missing.any():
            bad = np.concatenate([ka[i < 0], kb[j < 0]])[:5]
            raise KeyError(f"{int(missing.sum())} pairs name keys not in the key list, e.g. {list(bad)}")
        i, j = i.astype(np.int64), j.astype(np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    _, labels = _cc(graph, directed=False)
    # canonical numbering: by first occurrence
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse].astype(np.int64)


def choose_representatives(df: pd.DataFrame) -> pd.DataFrame:
    """Pick one representative per near-duplicate group (StockEmotion §3.1).

    ``df`` has columns ``key`` (unique), ``width``, ``height``, ``first_seen``
    (anything sortable: timestamp or integer order) and ``group`` (e.g. from
    ``connected_components``).  The representative is the member with the
    largest resolution ``width*height``, then the earliest ``first_seen``, then
    the smallest ``key``.  Missing width/height count as resolution 0, missing
    ``first_seen`` sorts last.

    Returns, in the input row order: ``key``, ``group_id`` (the representative's
    key, so it is stable when unrelated items are added), ``is_representative``,
    ``representative_key``, ``group_size``.
    """
    required = {"key", "width", "height", "first_seen", "group"}
    missing = required - set(df.columns)
    if missing:
        raise ValueError(f"choose_representatives: missing columns {sorted(missing)}")
    if not df["key"].is_unique:
        raise ValueError("choose_representatives: keys must be unique")
    work = pd.DataFrame(
        {
            "key": df["key"].to_numpy(),
            "group": df["group"].to_numpy(),
            "area": (
                pd.to_numeric(df["width"], errors="coerce").fillna(0).astype(np.int64).to_numpy()
                * pd.to_numeric(df["height"], errors="coerce").fillna(0).astype(np.int64).to_numpy()
            ),
            "first_seen": df["first_seen"].to_numpy(),
            "row": np.arange(len(df)),
        }
    )
    ranked = work.sort_values(
        ["group", "area", "first_seen", "key"],
        ascending=[True, False, True, True],
        na_position="last",
        kind="mergesort",
    )
    rep_of_group = ranked.drop_duplicates("group", keep="first").set_index("group")["key"]
    size_of_group = work.groupby("group", sort=False).size()
    rep = work["group"].map(rep_of_group)
    out = pd.DataFrame(
        {
            "key": work["key"],
            "group_id": rep.to_numpy(),
            "is_representative": (work["key"] == rep).to_numpy(),
            "representative_key": rep.to_numpy(),
            "group_size": work["group"].map(size_of_group).astype(np.int64).to_numpy(),
        }
    )
    out.index = df.index
    return out


# ---- the dedup stage: index -> groups -> unique images -----------------------------------------------

UNIQUE_IMAGE_COLUMNS = [
    "sha256", "width", "height", "phash", "group_id", "n_near_duplicates", "n_candidates", "url", "final_url",
    "query", "query_id", "rank", "provider", "item_id", "candidate_id", "image_format", "bytes", "first_batch",
    "first_seen",
]


@dataclass
class Groups:
    """The result of :func:`near_duplicate_groups`."""

    groups: pd.DataFrame          # one row per hashed image: group_id, is_representative, ...
    pairs: pd.DataFrame           # every pair within the threshold: sha256_a, sha256_b, distance
    new_pairs: int = 0            # pairs this call added to the index
    indexed_before: int = 0       # hashes the index held before


def near_duplicate_groups(hashes: pd.DataFrame, index_dir: Path, *, mode: str, threshold: int, bands: int,
                          on_rebuild: Callable[[Exception], None] | None = None) -> Groups:
    """Near-duplicate groups of all hashed images (StockEmotion §3.1): new hashes go into the
    persistent multi-index-hashing index (compared with everything before), pairs become connected
    components, each group gets its representative (largest resolution, then earliest).

    ``hashes``: ``image_hashes`` rows (sha256, phash, hash_mode, width, height, first_seen, batch);
    rows of another pHash mode or without a hash are left out. An index built with other parameters
    is rebuilt (``on_rebuild`` is told why)."""
    from ops.dedup.hash_index import HashIndex, IndexParameterMismatch

    hashes = hashes[hashes["phash"].notna() & (hashes["hash_mode"] == mode)]
    hashes = hashes.sort_values(["first_seen", "sha256"]).drop_duplicates("sha256", keep="first")
    try:
        index = HashIndex(index_dir, threshold, bands)
    except IndexParameterMismatch as e:
        if on_rebuild is not None:
            on_rebuild(e)
        shutil.rmtree(index_dir)
        index = HashIndex(index_dir, threshold, bands)
    n_before = len(index)
    new_pairs = index.add(hashes["sha256"].tolist(), np.array([int(h, 16) for h in hashes["phash"]], dtype=np.uint64))
    pairs = index.pairs()
    pairs = pairs[pairs["key_a"].isin(hashes["sha256"]) & pairs["key_b"].isin(hashes["sha256"])]
    keys = hashes["sha256"].astype(str).tolist()
    labels = connected_components(keys, pairs) if keys else np.zeros(0, dtype=np.int64)
    df = pd.DataFrame({"key": keys, "width": hashes["width"].to_numpy(), "height": hashes["height"].to_numpy(),
                       "first_seen": hashes["first_seen"].to_numpy(), "group": labels})
    groups = choose_representatives(df).rename(columns={"key": "sha256"})
    groups["sha256"] = groups["sha256"].astype("string")
    info = hashes[["sha256", "phash", "width", "height", "first_seen", "batch"]].astype({"sha256": "string"})
    groups = groups.merge(info, on="sha256", how="left")
    return Groups(groups, pairs.rename(columns={"key_a": "sha256_a", "key_b": "sha256_b"}).reset_index(drop=True),
                  new_pairs=len(new_pairs), indexed_before=n_before)


def unique_image_rows(groups: pd.DataFrame, ok: pd.DataFrame) -> pd.DataFrame:
    """``unique_images``: one row per group representative, with the provenance of the first
    candidate that gave its bytes (query, URL, batch) and how many candidates and duplicates it
    stands for. ``ok``: the ok rows of ``downloaded_images``."""
    ok = ok.sort_values(["downloaded_at", "candidate_id"])
    first = ok.drop_duplicates("sha256", keep="first").set_index("sha256")
    n_cand = ok.groupby("sha256").size()
    reps = groups[groups["is_representative"]].copy()
    reps["n_candidates"] = reps["sha256"].map(n_cand).fillna(0).astype(int)
    for col in ("url", "final_url", "query", "query_id", "rank", "provider", "item_id", "candidate_id",
                "image_format", "bytes"):
        reps[col] = reps["sha256"].map(first[col]) if col in first else None
    reps["first_batch"] = reps["sha256"].map(first["batch"])
    reps = reps.rename(columns={"group_size": "n_near_duplicates"})
    reps["n_near_duplicates"] = reps["n_near_duplicates"] - 1
    return reps[UNIQUE_IMAGE_COLUMNS].sort_values(["first_seen", "sha256"]).reset_index(drop=True)
