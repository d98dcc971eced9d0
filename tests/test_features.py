"""The feature cache (FindingEmo §3 footnote 4, buffered activations): warehouse.features and
ops.features: incremental, resumable, keyed by extractor, failures recorded, reads memory-mapped."""

from __future__ import annotations

import hashlib
import io
import math

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import warehouse.features as wf
from models.backbones import create_backbone
from models.preprocess import Preprocess
from ops.features.extract import extract_features, extractor_meta, feature_key
from warehouse.features import (
    STATUS_DECODE_ERROR,
    STATUS_OK,
    FeatureStore,
    FeatureStoreMismatch,
    image_features_rows,
)
from warehouse.store import atomic_write_parquet

N_GOOD = 10


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared
    yield
    torch.set_num_threads(threads)


def _jpeg(seed: int, w: int = 400, h: int = 300) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (3, 4, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC), np.float32)
    img = img + rng.normal(0, 12, img.shape)
    buf = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=88)
    return buf.getvalue()


def _write(d, data: bytes):
    sha = hashlib.sha256(data).hexdigest()
    p = d / f"{sha[:12]}.jpg"
    p.write_bytes(data)
    return sha, p


@pytest.fixture
def corpus(tmp_path):
    """(good items, bad items): N_GOOD JPEGs, one garbage file, one truncated JPEG."""
    d = tmp_path / "images"
    d.mkdir()
    good = [_write(d, _jpeg(i, 400 + 8 * i, 300)) for i in range(N_GOOD)]
    bad = [_write(d, b"this is not an image at all"), _write(d, _jpeg(99)[:600])]
    return good, bad


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture(scope="module")
def backbone():
    return create_backbone("tiny_cnn", weights="none", autocast=False)


def _store(data_dir, bb, preprocess=None, **kw) -> FeatureStore:
    key = feature_key(bb, preprocess, **kw)
    return FeatureStore(data_dir / "features" / key, key, bb.feature_dim, meta=extractor_meta(bb, preprocess, **kw))


def test_incremental_second_run_computes_nothing(corpus, data_dir, backbone):
    good, bad = corpus
    store = _store(data_dir, backbone)
    assert store.known() == set() and not store.read([good[0][0]])[1].any()
    r1 = extract_features(good[:7] + bad, backbone, store, batch_size=4, decode_workers=2)
    assert (r1.computed, r1.failed, r1.reused, r1.missing) == (7, 2, 0, 0)
    assert r1.images_per_s > 0 and 0 < r1.decode_share < 1 and r1.decode_share + r1.inference_share == pytest.approx(1)
    r2 = extract_features(good[:7] + bad, backbone, store, batch_size=4)
    assert (r2.computed, r2.failed, r2.reused, r2.shards) == (0, 0, 9, 0)
    r3 = extract_features(good + bad, backbone, store, batch_size=4)  # a new batch: only its images
    assert (r3.computed, r3.failed, r3.reused) == (3, 0, 9)
    assert len(store) == N_GOOD and store.known() == {s for s, _ in good + bad}
    # another process opening the same directory sees the same store
    again = FeatureStore(store.root, store.extractor, store.dim)
    assert again.known() == store.known() and len(again) == N_GOOD


def test_resume_after_interruption_keeps_committed_shards(corpus, data_dir, backbone):
    good, _ = corpus
    store = _store(data_dir, backbone)

    class Stop(Exception):
        pass

    def stop_after_first_shard(report):
        if report.shards >= 1:
            raise Stop

    with pytest.raises(Stop):
        extract_features(good, backbone, store, batch_size=2, shard_size=4, progress=stop_after_first_shard)
    reopened = FeatureStore(store.root, store.extractor, store.dim)
    assert len(reopened) == 4
    r = extract_features(good, backbone, reopened, batch_size=2, shard_size=4)
    assert (r.computed, r.reused) == (N_GOOD - 4, 4)
    rows = reopened.index(all_rows=True)
    assert len(rows) == N_GOOD and rows["sha256"].is_unique  # nothing twice, nothing lost
    assert set(rows["sha256"]) == {s for s, _ in good}
    assert reopened.orphans() == []


def test_crash_between_shard_and_index_leaves_an_invisible_orphan(corpus, data_dir, backbone, monkeypatch):
    good, _ = corpus
    store = _store(data_dir, backbone)
    calls = {"n": 0}

    def failing_commit(path, table, durable=True):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk gone")
        atomic_write_parquet(path, table, durable)

    monkeypatch.setattr(wf, "atomic_write_parquet", failing_commit)
    with pytest.raises(OSError):
        extract_features(good, backbone, store, batch_size=4, shard_size=4)
    monkeypatch.undo()
    reopened = FeatureStore(store.root, store.extractor, store.dim)
    assert len(reopened) == 4 and len(reopened.orphans()) == 1  # the second shard has no index part
    r = extract_features(good, backbone, reopened, batch_size=4, shard_size=4)
    assert r.computed == N_GOOD - 4  # only the uncommitted shard and the rest are recomputed
    assert reopened.index(all_rows=True)["sha256"].is_unique
    assert len(reopened.remove_orphans(older_than_s=0)) == 1 and reopened.orphans() == []
    assert len(reopened) == N_GOOD


def test_changed_weights_or_preprocessing_is_a_new_extractor(corpus, data_dir, tmp_path, backbone):
    good, _ = corpus
    sd = backbone.module.state_dict()
    w1, w2 = tmp_path / "w1.pth", tmp_path / "w2.pth"
    torch.save(sd, w1)
    sd2 = {k: v.clone() for k, v in sd.items()}
    sd2["features.0.weight"] += 0.01
    torch.save(sd2, w2)
    b1 = create_backbone("tiny_cnn", weights=w1, autocast=False)
    b2 = create_backbone("tiny_cnn", weights=w2, autocast=False)
    k1, k2 = feature_key(b1), feature_key(b2)
    assert k1 != k2
    assert feature_key(b1, Preprocess.imagenet(size=96, resize_size=110)) != k1
    assert feature_key(b1, draft=False) != k1  # full decoding gives other pixels: another key

    s1 = _store(data_dir, b1)
    extract_features(good, b1, s1, batch_size=4)
    before, _ = s1.read([s for s, _ in good])
    with pytest.raises(ValueError, match="extractor"):
        extract_features(good, b2, s1)  # never a silent overwrite
    with pytest.raises(FeatureStoreMismatch):
        FeatureStore(s1.root, k2, b2.feature_dim)
    s2 = _store(data_dir, b2)
    assert s2.root != s1.root
    assert extract_features(good, b2, s2, batch_size=4).computed == N_GOOD  # nothing reused across keys
    after, _ = FeatureStore(s1.root, k1, b1.feature_dim).read([s for s, _ in good])
    np.testing.assert_array_equal(before, after)
    assert not np.allclose(s2.read([s for s, _ in good])[0], before)
    assert s1.info()["meta"]["weights"].startswith("sha256:") and s1.info()["meta"]["preprocess"]["draft"]


def test_decode_failures_are_recorded_not_retried(corpus, data_dir, backbone, tmp_path):
    good, bad = corpus
    store = _store(data_dir, backbone)
    missing = ("f" * 64, tmp_path / "nowhere.jpg")
    r = extract_features(good[:2] + bad + [missing], backbone, store, batch_size=8)
    assert (r.computed, r.failed, r.missing) == (2, 2, 1)
    idx = store.index().set_index("sha256")
    for sha, _ in bad:
        assert idx.loc[sha, "status"] == STATUS_DECODE_ERROR
        assert isinstance(idx.loc[sha, "error"], str) and idx.loc[sha, "error"]
        assert pd.isna(idx.loc[sha, "shard"]) and pd.isna(idx.loc[sha, "row"])
    assert "UnidentifiedImageError" in idx.loc[bad[0][0], "error"]
    assert missing[0] not in idx.index  # a file that could not be opened is not recorded
    assert {f["status"] for f in r.failures} == {STATUS_DECODE_ERROR, "missing"}
    assert extract_features(good[:2] + bad, backbone, store).failed == 0  # not retried
    retry = extract_features(good[:2] + bad, backbone, store, retry_failed=True)
    assert (retry.computed, retry.failed) == (0, 2)
    assert len(store.index(all_rows=True)) == 6 and store.index()["sha256"].is_unique
    vecs, found = store.read([s for s, _ in good[:2] + bad])
    assert found.tolist() == [True, True, False, False] and not vecs[2:].any()


def test_reads_are_memory_mapped(corpus, data_dir, backbone):
    good, _ = corpus
    store = _store(data_dir, backbone)
    extract_features(good, backbone, store, batch_size=4, shard_size=6)
    assert len(store.shard_ids()) == 2
    for shas, mm in store.iter_shards():
        assert isinstance(mm, np.memmap) and mm.mode == "r" and mm.dtype == np.float16
        view, found = store.read(shas, dtype=None)  # a whole shard in row order: a view, no copy
        assert found.all() and np.shares_memory(view, mm) and isinstance(view, np.memmap)
        sub, _ = store.read(shas[1:3], dtype=None)
        assert np.shares_memory(sub, mm)
        gathered, _ = store.read(shas[::-1])  # any order: only those rows, as float32
        assert gathered.dtype == np.float32 and not np.shares_memory(gathered, mm)
        np.testing.assert_array_equal(gathered[::-1], np.asarray(mm, np.float32))


def _independent_features(bb, path) -> np.ndarray:
    """Decode with PIL's draft and torchvision transforms, then the backbone directly."""
    from torchvision import transforms as T

    pp = bb.preprocess
    with Image.open(path) as im:
        w, h = im.size
        s = pp.resize_size / min(w, h)
        im.draft("RGB", (math.ceil(w * s), math.ceil(h * s)))
        assert im.size[0] < w  # DCT scaling did reduce the decoded size
        img = im.convert("RGB")
    tf = T.Compose([T.Resize(pp.resize_size), T.CenterCrop(pp.size), T.ToTensor(), T.Normalize(pp.mean, pp.std)])
    return bb.forward_features(tf(img).unsqueeze(0))[0].numpy()


@pytest.mark.parametrize("decode_mode,autocast", [("thread", False), ("process", False), ("thread", None)])
def test_vectors_equal_a_direct_forward(corpus, data_dir, backbone, decode_mode, autocast):
    good, _ = corpus
    bb = backbone if autocast is False else create_backbone("tiny_cnn", weights="none")  # None: bf16 if native
    store = _store(data_dir, bb)
    extract_features(good, bb, store, batch_size=3, decode_mode=decode_mode)
    got, found = store.read([s for s, _ in good])
    want = np.stack([_independent_features(bb, p) for _, p in good])  # one image at a time
    assert found.all()
    tol = 2e-3 if bb.autocast_dtype is None else 3e-2  # float16 storage; bf16 batch-size effects
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.slow
def test_image_features_rows_one_per_image_and_extractor(corpus, data_dir, backbone):
    good, bad = corpus
    tables = []
    for pp in (None, Preprocess.imagenet(size=96, resize_size=110)):
        store = _store(data_dir, backbone, pp)
        extract_features(good + bad, backbone, store, preprocess=pp, batch_size=4, shard_size=4)
        extract_features(good + bad, backbone, store, preprocess=pp, retry_failed=True)  # more rows in the index
        t = image_features_rows(store, data_dir)
        assert t.schema.equals(wf.IMAGE_FEATURES_SCHEMA) and t.num_rows == N_GOOD + 2
        tables.append(t)
        df = t.to_pandas().set_index("sha256")
        for sha, _ in good[:3]:  # the pointer leads to the stored vector
            v = np.load(data_dir / df.loc[sha, "shard_path"], mmap_mode="r")[int(df.loc[sha, "row"])]
            np.testing.assert_array_equal(v.astype(np.float32), store.read([sha])[0][0])
        assert df.loc[bad[0][0], "status"] == STATUS_DECODE_ERROR and pd.isna(df.loc[bad[0][0], "shard_path"])
    part = data_dir / "tables" / "image_features"
    for i, t in enumerate(tables):
        atomic_write_parquet(part / f"{i}.parquet", t)
    con = duckdb.connect()
    n, pairs, extractors, ok = con.execute(
        f"select count(*), count(distinct (sha256, extractor)), count(distinct extractor), "
        f"count(*) filter (where status = '{STATUS_OK}') from '{part}/*.parquet'"
    ).fetchone()
    assert (n, pairs, extractors, ok) == (2 * (N_GOOD + 2), n, 2, 2 * N_GOOD)
    with_vec = image_features_rows(store, data_dir, with_vectors=True).to_pandas().set_index("sha256")
    assert with_vec.loc[bad[0][0], "vector"] is None
    np.testing.assert_allclose(with_vec.loc[good[0][0], "vector"], store.read([good[0][0]])[0][0])
