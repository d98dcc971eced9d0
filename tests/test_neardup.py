"""Tests for ops.dedup.hash_index: multi-index-hashing near-duplicate search vs brute force."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ops.dedup import hash_index as neardup
from ops.dedup.grouping import choose_representatives, connected_components
from ops.dedup.hash_index import (
    HashIndex,
    IndexParameterMismatch,
    band_masks,
    find_pairs,
    hashes_from_hex,
)

THRESHOLDS = [0, 2, 4, 6]


# ---------------------------------------------------------------- data


def _flip(rng, hashes: np.ndarray, d: int) -> np.ndarray:
    """Copy of ``hashes`` with exactly ``d`` distinct random bits flipped in each."""
    if d == 0:
        return hashes.copy()
    bits = np.argsort(rng.random((hashes.size, 64)), axis=1)[:, :d].astype(np.uint64)
    masks = np.bitwise_or.reduce(np.uint64(1) << bits, axis=1)
    return hashes ^ masks


def _pack(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def _dataset(kind: str, t: int, seed: int = 0, n: int = 3000, per_distance: int = 40):
    """n base hashes + planted copies at distances 0..t+2 (+ a few chains)."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        base = rng.integers(0, 2**64, n, dtype=np.uint64)
    else:
        # biased bits: some bits almost always 0, others 1 with p=0.2 or 0.5,
        # bit 0 (like pHash's DC term) almost always 1
        p = np.where(np.arange(64) % 3 == 0, 0.03, np.where(np.arange(64) % 3 == 1, 0.2, 0.5))
        p[0] = 0.97
        base = _pack(rng.random((n, 64)) < p)
    parts = [base]
    for d in range(t + 3):
        src = base[rng.choice(n, per_distance, replace=False)]
        parts.append(_flip(rng, src, d))
    # chains: a -> b -> c, each hop t bits (a..c usually farther than t)
    if t:
        a = base[rng.choice(n, 10, replace=False)]
        b = _flip(rng, a, t)
        parts += [b, _flip(rng, b, t)]
    h = np.concatenate(parts)
    return h[rng.permutation(h.size)]


def _brute(h: np.ndarray, t: int):
    d = np.bitwise_count(h[:, None] ^ h[None, :])
    i, j = np.nonzero(np.triu(d <= t, k=1))
    return i.astype(np.int64), j.astype(np.int64), d[i, j].astype(np.int64)


# ---------------------------------------------------------------- find_pairs


@pytest.mark.parametrize("kind", ["random", "biased"])
@pytest.mark.parametrize("t", THRESHOLDS)
def test_find_pairs_matches_brute_force(kind, t):
    h = _dataset(kind, t, seed=t)
    expected = _brute(h, t)
    assert expected[0].size > 0 or t == 0
    for bands in (None, t + 2):
        # small chunk: exercises candidate runs split across chunks
        got = find_pairs(h, t, bands, chunk=997)
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
    # default chunk, int64 input
    got = find_pairs(h.view(np.int64), t)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_find_pairs_big_bucket_and_exact_duplicates():
    # one giant bucket: everything identical except the low bits
    rng = np.random.default_rng(5)
    h = rng.integers(0, 8, 500, dtype=np.uint64)
    i, j, d = find_pairs(h, 3, chunk=1000)
    ei, ej, ed = _brute(h, 3)
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_array_equal(j, ej)
    np.testing.assert_array_equal(d, ed)
    assert i.size == 500 * 499 // 2


def test_find_pairs_edge_cases():
    for h in (np.zeros(0, np.uint64), np.array([7], np.uint64)):
        i, j, d = find_pairs(h, 3)
        assert i.size == j.size == d.size == 0
    with pytest.raises(ValueError, match="bands"):
        find_pairs(np.zeros(3, np.uint64), 4, bands=4)
    masks = band_masks(5)
    assert sum(masks) == 2**64 - 1
    assert sorted(bin(m).count("1") for m in masks) == [12, 13, 13, 13, 13]
    np.testing.assert_array_equal(
        hashes_from_hex(["ffffffffffffffff", "0000000000000001"]),
        np.array([2**64 - 1, 1], dtype=np.uint64),
    )


# ---------------------------------------------------------------- HashIndex


def _batches(n: int, rng, k: int = 4):
    cuts = np.sort(rng.choice(np.arange(1, n), k - 1, replace=False))
    return np.split(np.arange(n), cuts)


@pytest.mark.parametrize("kind", ["random", "biased"])
@pytest.mark.parametrize("t", THRESHOLDS)
def test_index_incremental_matches_brute_force(tmp_path, kind, t):
    rng = np.random.default_rng(100 + t)
    h = _dataset(kind, t, seed=50 + t, n=2500, per_distance=30)
    keys = np.array([f"img/{i:05d}" for i in range(h.size)], dtype=object)
    bands = None if kind == "random" else t + 2
    returned = []
    inserted: list[str] = []
    for bi, idx in enumerate(_batches(h.size, rng)):
        index = HashIndex(tmp_path / "idx", t, bands, fsync=False, chunk=4099)  # reload
        assert len(index) == len(inserted)
        bkeys, bh = list(keys[idx]), h[idx]
        if bi >= 2:  # re-send some old keys (with junk hashes): must be ignored
            old = rng.choice(len(inserted), 20, replace=False)
            bkeys += [inserted[o] for o in old]
            bh = np.concatenate([bh, rng.integers(0, 2**64, 20, dtype=np.uint64)])
        new_pairs = index.add(bkeys, bh)
        assert list(new_pairs.columns) == ["key_a", "key_b", "distance"]
        inserted += list(keys[idx])
        returned.append(new_pairs)

    pos = {k: i for i, k in enumerate(inserted)}
    got = pd.concat(returned, ignore_index=True)
    a = got["key_a"].map(pos).to_numpy()
    b = got["key_b"].map(pos).to_numpy()
    assert (a < b).all(), "key_a must be the earlier-inserted key"
    order = np.lexsort((b, a))
    hs = h[[int(k[4:]) for k in inserted]]
    ei, ej, ed = _brute(hs, t)
    np.testing.assert_array_equal(a[order], ei)
    np.testing.assert_array_equal(b[order], ej)
    np.testing.assert_array_equal(got["distance"].to_numpy()[order], ed)

    reopened = HashIndex(tmp_path / "idx", t, bands)
    assert len(reopened) == len(inserted)
    pd.testing.assert_frame_equal(reopened.pairs(), got, check_dtype=False)
    np.testing.assert_array_equal(reopened.hashes, hs)
    assert list(reopened.keys) == inserted


def test_index_idempotent_readd(tmp_path):
    h = _dataset("random", 4, seed=9, n=500)
    keys = [f"k{i}" for i in range(h.size)]
    idx = HashIndex(tmp_path, 4)
    first = idx.add(keys, h)
    assert len(first) > 0
    assert len(idx.add(keys, h)) == 0
    again = HashIndex(tmp_path, 4)
    assert len(again.add(keys, h)) == 0
    assert len(again) == h.size
    pd.testing.assert_frame_equal(again.pairs(), first)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["n_batches"] == 1 and meta["n_items"] == h.size
    # duplicate keys inside one batch: first occurrence wins
    out = again.add(["dup", "dup"], np.array([h[0], 12345], dtype=np.uint64))
    assert list(out["key_b"]) == ["dup"] and out["key_a"].iloc[0] == "k0"
    assert len(again) == h.size + 1


def test_index_parameter_mismatch(tmp_path):
    HashIndex(tmp_path, 4).add(["a", "b"], np.array([1, 3], dtype=np.uint64))
    with pytest.raises(IndexParameterMismatch, match="threshold=4, bands=5") as exc:
        HashIndex(tmp_path, 3)
    assert "rebuild" in str(exc.value)
    with pytest.raises(IndexParameterMismatch, match="rebuild"):
        HashIndex(tmp_path, 4, bands=6)
    HashIndex(tmp_path, 4, bands=5)  # explicit default is fine
    rebuilt = HashIndex.rebuild(tmp_path, tmp_path / "new", 1)
    assert list(rebuilt.pairs().itertuples(index=False)) == [("a", "b", 1)]


def test_index_crash_before_commit_keeps_previous_state(tmp_path, monkeypatch):
    idx = HashIndex(tmp_path, 2, fsync=False)
    idx.add(["a", "b"], np.array([0, 1], dtype=np.uint64))
    real = neardup.atomic_write

    def failing(path, write, *, durable):
        if path.name == "meta.json":
            raise OSError("disk full")
        real(path, write, durable=durable)

    monkeypatch.setattr(neardup, "atomic_write", failing)
    with pytest.raises(OSError):
        HashIndex(tmp_path, 2).add(["c"], np.array([3], dtype=np.uint64))
    monkeypatch.setattr(neardup, "atomic_write", real)
    idx = HashIndex(tmp_path, 2)
    assert list(idx.keys) == ["a", "b"]
    out = idx.add(["c", "d"], np.array([3, 2**64 - 2**16], dtype=np.uint64))
    assert sorted(map(tuple, out[["key_a", "key_b"]].to_numpy())) == [("a", "c"), ("b", "c")]
    assert len(list(tmp_path.glob("tables-*"))) == 1
    assert len(HashIndex(tmp_path, 2).pairs()) == 3


# ---------------------------------------------------------------- grouping


def test_connected_components_chain():
    t = 2
    a = np.uint64(0)
    b = a ^ np.uint64(0b11)  # d(a,b)=2
    c = b ^ np.uint64(0b1100)  # d(b,c)=2, d(a,c)=4 > t
    far = np.uint64(2**64 - 1)
    h = np.array([far, a, b, c], dtype=np.uint64)
    i, j, d = find_pairs(h, t)
    assert set(zip(i.tolist(), j.tolist())) == {(1, 2), (2, 3)}
    labels = connected_components(4, (i, j))
    assert labels.tolist() == [0, 1, 1, 1]
    keys = ["far", "a", "b", "c"]
    pairs = pd.DataFrame({"key_a": ["a", "b"], "key_b": ["b", "c"], "distance": [2, 2]})
    assert connected_components(keys, pairs).tolist() == [0, 1, 1, 1]
    with pytest.raises(KeyError):
        connected_components(["a", "b"], pairs)


def test_choose_representatives():
    df = pd.DataFrame(
        {
            "key": ["small", "big_late", "big_early", "solo", "tie_b", "tie_a"],
            "width": [100, 400, 200, 50, 10, 10],
            "height": [100, 100, 200, 50, 10, 10],  # big_late/big_early: same area
            "first_seen": pd.to_datetime(
                ["2024-01-01", "2024-03-01", "2024-02-01", "2024-01-01", "2024-01-01", "2024-01-01"]
            ),
            "group": [0, 0, 0, 1, 2, 2],
        }
    )
    out = choose_representatives(df)
    assert list(out.columns) == [
        "key",
        "group_id",
        "is_representative",
        "representative_key",
        "group_size",
    ]
    assert out["representative_key"].tolist() == [
        "big_early", "big_early", "big_early", "solo", "tie_a", "tie_a"
    ]
    assert out["is_representative"].tolist() == [False, False, True, True, False, True]
    assert out["group_size"].tolist() == [3, 3, 3, 1, 2, 2]
    assert out["group_id"].tolist() == out["representative_key"].tolist()
    # resolution beats first_seen
    df2 = df.assign(width=[100, 401, 200, 50, 10, 10])
    assert choose_representatives(df2)["representative_key"].iloc[0] == "big_late"
    # integer first_seen works too
    df3 = df.assign(first_seen=[5, 1, 2, 0, 0, 0])
    assert choose_representatives(df3)["representative_key"].iloc[0] == "big_late"
