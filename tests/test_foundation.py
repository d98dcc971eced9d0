"""A foundation that loses nothing (issue 7): refresh paths, fixed schemas, taxonomy-adaptive
statistics, the warehouse's read-only sessions, one build per data directory, errors at load.

Each test names the item it covers; each failed before its fix (the behaviour it asserts did not
exist: stale query tables, type-mixing batches, Plutchik-only views, writable SQL sessions ...).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.cli import main
from warehouse.store import Warehouse

ROOT = Path(__file__).resolve().parents[1]


def _demo_cfg(port: int, **acq) -> dict:
    from ops.demo.config import demo_settings

    cfg = demo_settings()
    cfg["acquisition"]["provider"]["demo"] = {"port": port, "world": {"enabled": False}}
    cfg["acquisition"].update(acq)
    return cfg


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


# ---- item 1: every launch path runs the batch's queries from the current configuration -------------

@pytest.mark.slow
def test_sensor_batches_after_a_keyword_is_added_run_their_queries(clean_env, demo_server, tmp_path):
    from dagster import DagsterInstance, build_sensor_context

    from assets.resources import DemoWebResource, EmoforgeResource
    from pipelines.definitions import build_definitions, new_scrape_batches

    port = int(demo_server.base_url.rsplit(":", 1)[1])
    kw = {"emotions": ["Happy"], "people": ["people", "children"], "settings": ["birthday", "funeral", "protest"]}
    cfg_path = _write(tmp_path / "c.yaml", _demo_cfg(port, keywords=kw, queries_per_batch=4))
    data = tmp_path / "data"
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select", "group:acquisition"]) == 0
    # a keyword is added: 2 x 3 more queries; the old batches stay as they were
    kw["emotions"].append("Grieving")
    _write(cfg_path, _demo_cfg(port, keywords=kw, queries_per_batch=4))
    emo = EmoforgeResource(config_path=str(cfg_path), data_dir=str(data))
    instance = DagsterInstance.get()
    known = set(instance.get_dynamic_partitions("scrape_batches"))
    assert known == {"q000000-000004", "q000004-000006"}
    with build_sensor_context(instance=instance, resources={"emoforge": emo}) as ctx:
        result = new_scrape_batches(ctx)
    new = [r.partition_key for r in result.run_requests]
    assert new == ["q000006-000010", "q000010-000012"]
    instance.add_dynamic_partitions("scrape_batches", new)
    defs = build_definitions({"emoforge": emo, "demo_web": DemoWebResource(emoforge=emo)})
    job = defs.resolve_job_def("scrape_batch_job")
    for key in new:   # what the sensor's run requests launch: the job for one partition
        res = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
        assert res.success
        checks = [e.event_specific_data for e in res.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert checks and all(c.passed for c in checks)
    wh = Warehouse(data)
    log = wh.read_table("search_log")
    per_batch = log.groupby("batch").size().to_dict()
    assert per_batch == {"q000000-000004": 4, "q000004-000006": 2, "q000006-000010": 4, "q000010-000012": 2}
    assert set(log.loc[log["batch"] == "q000010-000012", "query"]) == {"Grieving children funeral", "Grieving children protest"}


@pytest.mark.slow
def test_a_batch_that_ran_fewer_queries_fails_its_check_and_is_built_again(clean_env, demo_server, tmp_path, capsys):
    port = int(demo_server.base_url.rsplit(":", 1)[1])
    kw = {"emotions": ["Happy"], "people": ["people"], "settings": ["birthday", "funeral"]}
    cfg_path = _write(tmp_path / "c.yaml", _demo_cfg(port, keywords=kw, queries_per_batch=2))
    data = tmp_path / "data"
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select", "group:acquisition"]) == 0
    wh = Warehouse(data)
    # what the stale-query bug left behind: a materialized batch whose log holds fewer queries
    log = wh.read_table("search_log", partition="q000000-000002")
    wh.write_table("search_log", log.head(0), partition="q000000-000002")
    capsys.readouterr()
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select", "group:acquisition"]) == 0
    out = capsys.readouterr().out
    assert "1 to build" in out
    assert len(wh.read_table("search_log", partition="q000000-000002")) == 2


# ---- item 2: one fixed Arrow schema per table, empty or not; old files still read ------------------

@pytest.mark.slow
def test_a_batch_with_no_results_does_not_break_later_reads(clean_env, demo_server, tmp_path):
    port = int(demo_server.base_url.rsplit(":", 1)[1])
    # "Serene" is no emotion word of the demo corpus: its batch's queries all return nothing
    kw = {"emotions": ["Serene", "Happy"], "people": ["people"], "settings": ["birthday", "funeral", "protest"]}
    cfg_path = _write(tmp_path / "c.yaml", _demo_cfg(port, keywords=kw, queries_per_batch=3))
    data = tmp_path / "data"
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select", "*unique_images"]) == 0
    wh = Warehouse(data)
    empty = pq.read_schema(wh.table_path("candidate_urls", "q000000-000003"))
    full = pq.read_schema(wh.table_path("candidate_urls", "q000003-000006"))
    assert empty.remove_metadata().equals(full.remove_metadata())
    assert len(wh.read_table("candidate_urls", partition="q000000-000003")) == 0
    assert len(wh.read_table("unique_images")) > 0


def test_files_written_before_the_fix_are_read_with_the_others(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    # an all-NULL item_id as pandas used to write it (double), and a current batch (string)
    old = pa.Table.from_pandas(pd.DataFrame({"candidate_id": ["a"], "item_id": [float("nan")], "rank": [1]}))
    pq.write_table(old, wh.table_path("candidate_urls", "q000000-000001").parent.mkdir(parents=True) or
                   wh.table_path("candidate_urls", "q000000-000001"))
    wh.write_table("candidate_urls", pd.DataFrame({"candidate_id": ["b"], "item_id": ["/Run_1/x.jpg"], "rank": [2]}),
                   partition="q000001-000002")
    df = wh.read_table("candidate_urls").sort_values("candidate_id")
    assert df["item_id"].tolist()[1] == "/Run_1/x.jpg" and pd.isna(df["item_id"].tolist()[0])
    assert wh.query("select count(*) as n, count(item_id) as k from candidate_urls").to_dict("records") == [{"n": 2, "k": 1}]


# ---- item 3: statistics views adapt to the taxonomies present ---------------------------------------

def _vote_source(tmp_path: Path) -> Path:
    p = tmp_path / "votes.csv"
    p.write_text("face,Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger,Contempt,None,Uncertain,Non-Face,split\n"
                 "f1,0,9,1,0,0,0,0,0,0,0,0,train\n"
                 "f2,1,0,5,0,0,0,4,0,0,0,0,train\n"
                 "f3,0,0,0,0,0,0,0,0,0,10,0,validation\n")
    return p


@pytest.mark.slow
def test_annotation_group_with_only_affectnet8_vote_counts(clean_env, tmp_path, capsys):
    votes = _vote_source(tmp_path)
    cfg = {"annotations": {"sources": [{"kind": "vote_counts", "path": str(votes), "item_column": "face",
                                        "label_columns": ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust",
                                                          "Anger", "Contempt", "None", "Uncertain", "Non-Face"],
                                        "split_column": "split"}]}}
    cfg_path = _write(tmp_path / "c.yaml", cfg)
    data = tmp_path / "data"
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select", "group:annotations"]) == 0
    capsys.readouterr()
    assert main(["sql", "--data-dir", str(data), "--format", "json",
                 "select label, n_votes, n_images_won from label_counts order by n_votes desc"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # counted by hand from the file: Uncertain 10 (f3), Happy 9 (f1), Sad 1 + 5, Anger 4, Neutral 1;
    # f2's Sad has 5 of 10 votes, not more than half: unresolved under the majority policy
    assert rows[:4] == [{"label": "Uncertain", "n_votes": 10, "n_images_won": 1},
                        {"label": "Happy", "n_votes": 9, "n_images_won": 1},
                        {"label": "Sad", "n_votes": 6, "n_images_won": 0},
                        {"label": "Anger", "n_votes": 4, "n_images_won": 0}]
    assert main(["sql", "--data-dir", str(data), "select * from emotion8_stats"]) == 1  # no Plutchik data: no view
    assert "emotion8_stats" in capsys.readouterr().err


# ---- item 5: --demo with --config layers the file over the demo settings -----------------------------

def test_demo_with_a_config_file_changes_only_what_the_file_says(tmp_path):
    from assets.resources import EmoforgeResource
    from ops.demo.config import demo_config

    f = _write(tmp_path / "port.yaml", {"acquisition": {"provider": {"demo": {"port": 19999}}}})
    s = EmoforgeResource(config_path=str(f), demo=True).settings
    d = demo_config()
    assert s.acquisition.provider.kind == "demo" and s.acquisition.provider.demo.port == 19999
    assert s.acquisition.keywords == d.acquisition.keywords
    assert s.acquisition.download.allow_hosts == ["127.0.0.1"]
    assert s.acquisition.provider.results_per_query == d.acquisition.provider.results_per_query


@pytest.mark.slow
def test_build_says_provider_and_queries_before_it_starts(clean_env, demo_server, tmp_path, capsys):
    port = int(demo_server.base_url.rsplit(":", 1)[1])
    f = _write(tmp_path / "port.yaml", {"acquisition": {"provider": {"demo": {"port": port}}, "max_queries": 2}})
    assert main(["build", "--demo", "--config", str(f), "--data-dir", str(tmp_path / "d"),
                 "--select", "search_queries"]) == 0
    out = capsys.readouterr().out
    assert f"provider demo (240-image demo corpus on 127.0.0.1:{port}); 2 queries" in out


# ---- item 8: vote counts validated against a maximum per cell -----------------------------------------

def test_a_huge_vote_count_is_a_reject_not_three_million_rows(tmp_path):
    from ops.annotations.readers import read_vote_counts

    p = tmp_path / "v.csv"
    p.write_text("face,Happy,Sad\nf1,3000000,1\nf2,2,1\n")
    ann, rej = read_vote_counts(p, ["Happy", "Sad"], "face", max_votes_per_cell=1000)
    assert len(ann) == 3 and set(ann["image_id"]) == {"f2"}
    r = rej.iloc[0]
    assert (r["file"], r["line"], r["field"], r["value"]) == (str(p), 2, "Happy", "3000000")
    assert r["reason"].startswith("too_many_votes")


# ---- item 9: emoforge sql is read-only for everything -------------------------------------------------

@pytest.fixture
def small_warehouse(tmp_path):
    wh = Warehouse(tmp_path / "wh").ensure()
    wh.write_table("downloaded_images", pd.DataFrame({"status": ["ok", "ok", "http_404"], "n": [1, 2, 3]}),
                   partition="q000000-000003")
    wh.write_table("unique_images", pd.DataFrame({"sha256": ["a", "b"]}))
    wh.register_views({"ok_count": "select count(*) as n from downloaded_images where status = 'ok'"})
    return wh


@pytest.mark.parametrize("sql", [
    "copy (select 1 as n) to '{root}/tables/unique_images.parquet'",
    "copy downloaded_images to '{root}/stolen.csv'",
    "attach '{root}/other.duckdb' as other",
    "export database '{root}/exported'",
    "select * from read_csv('/etc/passwd')",
    "select * from read_text('/etc/hostname')",
    "install httpfs",
    "set enable_external_access = true",
    "create table t as select 1",
])
def test_sql_cannot_write_or_read_outside_the_warehouse(small_warehouse, sql, capsys):
    root = small_warehouse.root
    before = {p: p.read_bytes() for p in root.rglob("*.parquet")}
    assert main(["sql", "--data-dir", str(root), sql.format(root=root)]) == 1
    assert capsys.readouterr().err.startswith("emoforge sql:")
    assert {p: p.read_bytes() for p in root.rglob("*.parquet")} == before
    assert not (root / "stolen.csv").exists() and not (root / "other.duckdb").exists() and not (root / "exported").exists()
    assert main(["sql", "--data-dir", str(root), "--format", "json", "select * from ok_count"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 2}]


# ---- item 10: a reader holding the catalog open never blocks a build ----------------------------------

@pytest.mark.slow
def test_a_reader_holding_the_catalog_does_not_block_writes(small_warehouse):
    wh = small_warehouse
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys
            con = duckdb.connect({str(wh.db_path)!r}, read_only=True)
            print("open", flush=True)
            sys.stdin.readline()
            con.close()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        wh.write_table("new_table", pd.DataFrame({"x": [1, 2, 3]}))      # a catalog rebuild
        assert wh.query("select sum(x) as s from new_table")["s"].iat[0] == 6
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=60)


# ---- item 11: paths relative to the data directory -------------------------------------------------------

def test_a_moved_data_directory_reads_its_own_files(small_warehouse, tmp_path, capsys):
    src = small_warehouse.root
    dst = tmp_path / "moved"
    shutil.copytree(src, dst)
    shutil.rmtree(src)
    Warehouse(dst).write_table("downloaded_images", pd.DataFrame({"status": ["ok"], "n": [9]}), partition="q000003-000004")
    assert main(["sql", "--data-dir", str(dst), "--format", "json", "select sum(n) as s from downloaded_images"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"s": 15}]
    con = duckdb.connect(str(dst / "warehouse.duckdb"), read_only=True)    # an outside client, as documented
    con.execute(f"SET file_search_path = '{dst}'")
    assert con.execute("select count(*) from unique_images").fetchone()[0] == 2
    con.close()


# ---- item 12: one build per data directory --------------------------------------------------------------

def test_a_second_build_refuses_at_once_and_sql_still_answers(small_warehouse, clean_env, capsys):
    root = small_warehouse.root
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from warehouse.locks import build_lock
            with build_lock(__import__("pathlib").Path({str(root)!r}), command="emoforge build (the first one)"):
                print("locked", flush=True)
                sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["build", "--data-dir", str(root), "--select", "group:annotations"]) == 2
        err = capsys.readouterr().err
        assert "another emoforge build is running" in err and f"pid {holder.pid}" in err
        assert main(["sql", "--data-dir", str(root), "select count(*) from unique_images"]) == 0
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=60)


# ---- item 13: a foreign server on the demo port is refused ----------------------------------------------

class _Foreign(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.mark.slow
def test_build_refuses_a_foreign_server_on_its_demo_port(clean_env, tmp_path, capsys):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Foreign)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        f = _write(tmp_path / "p.yaml", {"acquisition": {"provider": {"demo": {"port": srv.server_address[1],
                                                                                "world": {"enabled": False}}},
                                                         "max_queries": 1}})
        assert main(["build", "--demo", "--config", str(f), "--data-dir", str(tmp_path / "d"),
                     "--select", "search_results"]) == 1
        assert "not an emoforge demo server" in capsys.readouterr().out
    finally:
        srv.shutdown()
        srv.server_close()


# ---- item 14: runs left STARTED by a killed process are marked failed -----------------------------------

def test_dead_runs_are_marked_failed_live_and_foreign_ones_are_not(tmp_path):
    from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

    from assets.resources import fail_dead_runs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    instance = DagsterInstance.ephemeral()
    d = str(tmp_path)
    runs = {
        "dead": DagsterRun(job_name="j", run_id="a" * 36, status=DagsterRunStatus.STARTED,
                           tags={"emoforge/pid": str(dead.pid), "emoforge/data_dir": d}),
        "alive": DagsterRun(job_name="j", run_id="b" * 36, status=DagsterRunStatus.STARTED,
                            tags={"emoforge/pid": str(os.getpid()), "emoforge/data_dir": d}),
        "other_dir": DagsterRun(job_name="j", run_id="c" * 36, status=DagsterRunStatus.STARTED,
                                tags={"emoforge/pid": str(dead.pid), "emoforge/data_dir": "/elsewhere"}),
    }
    for r in runs.values():
        instance.add_run(r)
    assert fail_dead_runs(instance, tmp_path) == ["a" * 8]
    status = {k: instance.get_run_by_id(r.run_id).status for k, r in runs.items()}
    assert status == {"dead": DagsterRunStatus.FAILURE, "alive": DagsterRunStatus.STARTED,
                      "other_dir": DagsterRunStatus.STARTED}


# ---- item 15: errors at load, not at run -------------------------------------------------------------------

@pytest.mark.parametrize("cfg,where", [
    ({"annotations": {"sources": [{"kind": "long", "path": "a.csv", "taxonomy": "ekman6",
                                   "mapping": {"image_id": "i", "annotator_id": "w"}}]}}, "annotations.sources.0.taxonomy"),
    ({"annotations": {"sources": [{"kind": "long", "path": "a.csv",
                                   "mapping": {"image_id": "i", "annotator_id": "w", "mood": "m"}}]}}, "annotations.sources.0.mapping.mood"),
    ({"annotations": {"sources": [{"kind": "long", "path": "missing.csv",
                                   "mapping": {"image_id": "i", "annotator_id": "w"}}]}}, "annotations.sources.0.path"),
    ({"acquisition": {"provider": {"kind": "url_list", "url_list": {"path": "nope.json"}}}}, "acquisition.provider.url_list.path"),
])
def test_configuration_errors_at_load_name_file_and_key(clean_env, tmp_path, capsys, cfg, where):
    (tmp_path / "a.csv").write_text("i,w\n")
    f = _write(tmp_path / "c.yaml", cfg)
    assert main(["build", "--config", str(f), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and where in err


def test_a_non_utf8_config_is_a_usage_error(clean_env, tmp_path, capsys):
    f = tmp_path / "latin1.yaml"
    f.write_bytes("data_dir: caf\xe9\n".encode("latin-1"))
    assert main(["build", "--config", str(f), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and "line 1" in err and "UTF-8" in err


def test_non_utf8_input_files_name_file_and_line(tmp_path):
    from ops.acquisition.url_lists import UrlListError, UrlListSpec, load_url_list
    from ops.annotations.readers import read_long
    from ops.annotations.schema import AnnotationSourceError

    bad = ("item,worker,label\n" + "".join(f"i{k},w{k},Joy\n" for k in range(3000)) + "caf\xe9,w,Joy\n").encode("latin-1")
    p = tmp_path / "ann.csv"
    p.write_bytes(bad)
    with pytest.raises(AnnotationSourceError, match=r"ann.csv.*line 3002"):
        read_long(p, {"image_id": "item", "annotator_id": "worker", "emotion": "label"})
    u = tmp_path / "urls.csv"
    u.write_bytes("url\nhttp://a/1.jpg\nhttp://a/caf\xe9.jpg\n".encode("latin-1"))
    with pytest.raises(UrlListError, match=r"urls.csv.*line 3"):
        load_url_list(UrlListSpec(path=u))


def test_csv_exports_escape_formula_cells(small_warehouse, capsys):
    from warehouse.exports import frame_to_csv_bytes

    df = pd.DataFrame({"title": ["=HYPERLINK(\"http://x\")", "+1", "@SUM(A1)", "-cmd", "plain"], "valence": [-2, 1, 0, 3, -1]})
    text = frame_to_csv_bytes(df).decode()
    # text cells that start a formula get a leading apostrophe; numbers stay numbers (-2 stays -2)
    assert text.splitlines()[1:] == ['"\'=HYPERLINK(""http://x"")",-2', "'+1,1", "'@SUM(A1),0", "'-cmd,3", "plain,-1"]
    assert main(["sql", "--data-dir", str(small_warehouse.root), "--format", "csv", "select '=1+1' as f, -3 as n"]) == 0
    assert capsys.readouterr().out.splitlines() == ["f,n", "'=1+1,-3"]


# ---- item 16: a batch's cost does not grow with history (correctness of the persistent lookups) --------

def test_seen_urls_and_known_hashes_from_the_persistent_index_match_the_files(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    for b in range(5):
        key = f"q{b:06d}-{b + 1:06d}"
        wh.write_table("candidate_urls", pd.DataFrame({"normalized_url": [f"http://h/{b}.jpg", "http://h/common.jpg"]}),
                       partition=key)
        wh.write_table("image_hashes", pd.DataFrame({"sha256": [f"s{b}", "shared"], "phash": [f"{b:016x}", "f" * 16],
                                                      "hash_error": [None, None], "hash_mode": ["fast", "fast"]}),
                       partition=key)
    assert wh.seen_urls(before="q000003-000004", among=["http://h/1.jpg", "http://h/4.jpg", "http://h/common.jpg"]) \
        == {"http://h/1.jpg", "http://h/common.jpg"}
    assert wh.known_hashes(["s2", "shared", "nope"], "fast", exclude_batch="q000002-000003") == {"shared": ("f" * 16, None)}
    # a rewritten partition is re-read: its old rows are gone from the index
    wh.write_table("candidate_urls", pd.DataFrame({"normalized_url": ["http://h/x.jpg"]}), partition="q000001-000002")
    assert wh.seen_urls(before="q000003-000004", among=["http://h/1.jpg", "http://h/x.jpg"]) == {"http://h/x.jpg"}
    (wh.tables_dir / "candidate_urls" / "q000001-000002.parquet").unlink()
    assert wh.seen_urls(before="q000009", among=["http://h/x.jpg"]) == set()


# ---- item 17: emoforge sql streams ------------------------------------------------------------------------

@pytest.mark.slow
def test_sql_streams_a_large_result_in_every_format(small_warehouse, capsys):
    root = str(small_warehouse.root)
    assert main(["sql", "--data-dir", root, "--format", "csv", "select range as i from range(250000)"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 250001 and lines[-1] == "249999"
    assert main(["sql", "--data-dir", root, "--format", "json", "select range as i from range(25001)"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 25001
    assert main(["sql", "--data-dir", root, "select range as i from range(25001)"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("(25001 rows)")
