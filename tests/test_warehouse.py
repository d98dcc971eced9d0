import hashlib

import duckdb
import pandas as pd
import pytest

from warehouse.store import Warehouse


def test_tables_partitions_views_and_read_only(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    wh.write_table("things", pd.DataFrame({"a": [1, 2]}), partition="q000000-000002")
    wh.write_table("things", pd.DataFrame({"a": [3]}), partition="q000002-000003")
    wh.write_table("single", pd.DataFrame({"b": ["x"]}))
    assert wh.partitions("things") == ["q000000-000002", "q000002-000003"]
    assert sorted(wh.read_table("things")["a"]) == [1, 2, 3]
    con = wh.connect()
    assert con.execute("select sum(a) from things").fetchone()[0] == 6
    assert con.execute("select b from single").fetchone()[0] == "x"
    with pytest.raises(duckdb.Error):
        con.execute("create table t(x int)")
    con.close()
    # no temporary files left behind
    assert not list(tmp_path.rglob("*.tmp"))


def test_failed_write_leaves_previous_table(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    wh.write_table("t", pd.DataFrame({"a": [1]}))

    class Boom:
        pass
    with pytest.raises(Exception):
        wh.write_table("t", pd.DataFrame({"a": [Boom()]}))
    assert wh.read_table("t")["a"].tolist() == [1]
    assert not list(tmp_path.rglob("*.tmp"))


def test_blob_store_is_content_addressed(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    data = b"\xff\xd8 not really a jpeg"
    sha = wh.blobs.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert wh.blobs.put(data) == sha
    assert wh.blobs.get(sha) == data
    assert len(list((tmp_path / "blobs").rglob("*"))) == 3  # two fan-out dirs + one file


def test_bad_names_rejected(tmp_path):
    wh = Warehouse(tmp_path)
    with pytest.raises(ValueError):
        wh.table_path("Bad-Name")
    with pytest.raises(ValueError):
        wh.table_path("ok", partition="../x")
    with pytest.raises(FileNotFoundError, match="not been materialized"):
        wh.read_table("nothing")


def test_all_null_columns_read_back_as_strings(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    wh.write_table("t", pd.DataFrame({"sha": ["a", "b"], "item": [None, None]}))
    df = wh.read_table("t")
    filled = df["item"].where(df["item"].notna(), df["sha"])
    assert filled.tolist() == ["a", "b"]
    wh.write_table("p", pd.DataFrame({"x": [None]}), partition="k1")
    wh.write_table("p", pd.DataFrame({"x": ["v"]}), partition="k2")
    assert wh.read_table("p")["x"].tolist()[1] == "v"


@pytest.mark.slow
def test_all_null_arrow_typed_column_round_trip(tmp_path):
    """A column pandas holds as null[pyarrow] (as pandas 3 may produce) still reads back usable."""
    import pyarrow as pa

    wh = Warehouse(tmp_path).ensure()
    df = pd.DataFrame({"sha": ["a"], "item": pd.array([None], dtype=pd.ArrowDtype(pa.null()))})
    wh.write_table("t", df)
    back = wh.read_table("t")
    assert back["item"].where(back["item"].notna(), back["sha"]).tolist() == ["a"]
    wh.write_table("t2", back.assign(item=["x"]))
    assert wh.read_table("t2")["item"].tolist() == ["x"]
