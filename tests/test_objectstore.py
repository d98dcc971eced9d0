"""Tables and blobs written through to object storage, and the catalog read back from it
(warehouse/objectstore.py). fsspec's in-memory filesystem stands in for S3 here; the cluster test
runs the same code against a real S3 server (moto) over HTTP."""

from __future__ import annotations

import hashlib
import uuid

import duckdb
import pandas as pd
import pytest

from warehouse.objectstore import ObjectStore, open_remote_session, publish
from warehouse.store import Warehouse


@pytest.fixture
def store_url(monkeypatch):
    url = f"memory://emoforge-{uuid.uuid4().hex[:8]}/demo"
    monkeypatch.setenv("EMOFORGE_OBJECT_STORE", url)
    monkeypatch.delenv("EMOFORGE_S3_ENDPOINT", raising=False)
    return url


def _fill(wh: Warehouse) -> dict:
    wh.ensure()
    a = pd.DataFrame({"sha256": ["a1", "b2"], "n": [1, 2]})
    b = pd.DataFrame({"sha256": ["c3"], "n": [5]})
    wh.write_table("hashes", a, partition="q000000-000004")
    wh.write_table("hashes", b, partition="q000004-000008")
    wh.write_table("summary", pd.DataFrame({"k": ["x", "y"], "v": [1.5, 2.5]}))
    wh.register_views({"hash_total": "select sum(n) as total from hashes"})
    sha = wh.blobs.put(b"\xff\xd8 not really a jpeg")
    return {"sha": sha}


def test_writes_go_through_to_the_store(tmp_path, store_url):
    wh = Warehouse(tmp_path / "data")
    made = _fill(wh)
    store = ObjectStore(store_url)
    listed = store.listing("")
    assert {"tables/hashes/q000000-000004.parquet", "tables/hashes/q000004-000008.parquet",
            "tables/summary.parquet", "state/catalog.json", "state/views.json"} <= set(listed)
    blob = f"blobs/{made['sha'][:2]}/{made['sha'][2:4]}/{made['sha']}"
    assert blob in listed
    with store.fs.open(store.key(blob), "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == made["sha"]


def test_the_remote_catalog_answers_like_the_local_one(tmp_path, store_url):
    wh = Warehouse(tmp_path / "data")
    _fill(wh)
    con = open_remote_session(ObjectStore(store_url))
    try:
        assert con.execute("select count(*), sum(n) from hashes").fetchone() == (3, 8)
        assert con.execute("select total from hash_total").fetchone() == (8,)
        assert con.execute("select sum(v) from summary").fetchone() == (4.0,)
        local = wh.query("select sha256, n from hashes order by sha256")
        remote = con.execute("select sha256, n from hashes order by sha256").df()
        pd.testing.assert_frame_equal(local, remote)
        with pytest.raises(duckdb.Error, match="disabled|Permission"):    # nothing outside the store
            con.execute("select * from read_csv('/etc/passwd')").fetchall()
        with pytest.raises(duckdb.Error):                                  # configuration locked
            con.execute("set enable_external_access = true")
    finally:
        con.close()


def test_publish_copies_only_what_the_store_lacks(tmp_path, monkeypatch):
    monkeypatch.delenv("EMOFORGE_OBJECT_STORE", raising=False)
    wh = Warehouse(tmp_path / "data")
    _fill(wh)                                    # built without a store: nothing written through
    store = ObjectStore(f"memory://emoforge-{uuid.uuid4().hex[:8]}/late")
    assert store.listing("") == {}
    first = publish(wh.root, store)
    assert first["uploaded"] == 4 and first["unchanged"] == 0      # 3 table files + 1 blob
    again = publish(wh.root, store)
    assert again["uploaded"] == 0 and again["unchanged"] == 4
    wh.write_table("summary", pd.DataFrame({"k": ["x"], "v": [9.0]}))   # a changed table goes again
    third = publish(wh.root, store)
    assert third["uploaded"] == 1
    con = open_remote_session(store)
    try:
        assert con.execute("select sum(v) from summary").fetchone() == (9.0,)
    finally:
        con.close()


def test_a_store_without_a_catalog_says_what_to_do(store_url):
    with pytest.raises(FileNotFoundError, match="emoforge publish"):
        open_remote_session(ObjectStore(store_url.replace("/demo", "/empty")))


@pytest.mark.parametrize("bad", ["s3://", "no-scheme", ""])
def test_a_malformed_store_url_is_refused(bad):
    with pytest.raises(ValueError, match="scheme://bucket/prefix"):
        ObjectStore(bad)
