"""The CLI contract: `emoforge build` and `emoforge sql`, exit codes included."""

import csv
import io
import json

import pandas as pd
import pytest
import yaml

from helpers import seed_demo_corpus
from ops.demo.config import demo_config
from pipelines.cli import main
from warehouse.store import Warehouse


@pytest.fixture
def small_wh(tmp_path):
    wh = Warehouse(tmp_path / "wh").ensure()
    wh.write_table("downloaded_images", pd.DataFrame({
        "status": ["ok", "ok", "http_404"], "width": [1000, 1200, None], "tags": [["a"], [], None]}),
        partition="q000000-000003")
    return wh


def test_sql_formats(small_wh, capsys):
    q = "select status, count(*) as n from downloaded_images group by 1 order by 1"
    assert main(["sql", "--data-dir", str(small_wh.root), q]) == 0
    out = capsys.readouterr().out
    assert "http_404" in out and "(2 rows)" in out
    assert main(["sql", "--data-dir", str(small_wh.root), "--format", "csv", q]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows == [["status", "n"], ["http_404", "1"], ["ok", "2"]]
    assert main(["sql", "--data-dir", str(small_wh.root), "--format", "json", q]) == 0
    assert json.loads(capsys.readouterr().out) == [{"status": "http_404", "n": 1}, {"status": "ok", "n": 2}]


def test_sql_errors_and_read_only(small_wh, tmp_path, capsys):
    assert main(["sql", "--data-dir", str(small_wh.root), "select * from nope"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["sql", "--data-dir", str(small_wh.root), "create table x(a int)"]) == 1
    assert "read-only" in capsys.readouterr().err.lower()
    assert main(["sql", "--data-dir", str(tmp_path / "empty"), "select 1"]) == 2
    assert "no warehouse" in capsys.readouterr().err


def test_build_rejects_bad_config_and_selection(clean_env, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("acquisition:\n  download:\n    concurrancy: 3\n")
    assert main(["build", "--config", str(bad), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "acquisition.download.concurrancy: unknown key" in err and str(bad) in err
    assert main(["build", "--demo", "--data-dir", str(tmp_path / "d"), "--select", "no_such_asset"]) == 2
    assert "no_such_asset" in capsys.readouterr().err


@pytest.mark.slow
def test_build_groups_then_a_failing_blocking_check(clean_env, demo_corpus, reserved_port, tmp_path, capsys):
    # The builds start their demo server on the configured port, one the test holds (no free-port
    # race). The corpus is the session's copy: the build finds it intact instead of generating it.
    cfg = demo_config().model_dump(mode="json")
    cfg["acquisition"]["provider"]["demo"]["port"] = reserved_port
    cfg["acquisition"]["provider"]["demo"]["world"]["enabled"] = False   # the fault corpus only
    cfg["acquisition"]["download"]["max_build_attempts"] = 1  # no retries of transient failures across builds
    cfg_path = tmp_path / "demo.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    data = tmp_path / "data"
    seed_demo_corpus(demo_corpus[0], data)
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select", "group:acquisition"]) == 0
    out = capsys.readouterr().out
    assert "downloaded_images" in out and "dropped:" in out and "warehouse:" in out
    assert not (data / "tables" / "unique_images.parquet").exists()
    # then dedup and the annotation group (the models need the demo world's labelled images: they
    # are built from the full demo in tests/test_models_demo.py)
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select",
                 "group:demo or group:dedup or group:annotations"]) == 0
    out = capsys.readouterr().out
    assert "unique_images" in out and "annotation_queue" in out and "build succeeded" in out
    assert (data / "exports" / "annotation_queue.csv").exists()
    assert main(["sql", "--data-dir", str(data), "--format", "json",
                 "select count(*) as n from unique_images"]) == 0
    n_unique = json.loads(capsys.readouterr().out)[0]["n"]
    assert n_unique > 150
    # the rebuild skips built batches
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select", "group:acquisition"]) == 0
    assert "0 to build" in capsys.readouterr().out
    # narrower width limits than the stored images: the blocking check fails, exit code 1
    cfg["acquisition"]["max_width"] = 1200
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select", "unique_images"]) == 1
    out = capsys.readouterr().out
    assert "unique_images_valid" in out and "build FAILED" in out
