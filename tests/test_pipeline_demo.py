"""Integration: materialize the acquisition and dedup assets with dagster.materialize against the
demo corpus served on 127.0.0.1, and check every URL's final status and the dedup outcome against
the corpus manifest (the expectations are written by the corpus generator, not by the pipeline)."""

from collections import Counter

import pytest
import yaml
from dagster import DagsterInstance, materialize

from assets.acquisition import scrape_batches
from assets.resources import DemoWebResource, EmoforgeResource
from helpers import demo_server_port, reserve_port, seed_demo_corpus
from ops.demo.config import demo_config
from ops.demo.corpus import load_corpus
from ops.demo.server import DemoServer
from pipelines.definitions import ASSETS, CHECKS

# the tests on the demo build are slow (one build, twice, for the module); the sensor test is not


@pytest.fixture(scope="module")
def built(tmp_path_factory, demo_corpus):
    """One demo build (module scope: it takes about a minute), run twice. The build starts its own
    demo server, once per run, on a port the test holds for it (helpers.reserve_port: no free-port
    race); the test records every server started, so their request logs show every fetch."""
    root = tmp_path_factory.mktemp("demo")
    data = root / "data"
    corpus_dir = seed_demo_corpus(demo_corpus[0], data)  # the session's copy: nothing to generate
    holder, port = reserve_port()
    servers: list[DemoServer] = []
    ports: set[int] = set()
    real_start = DemoServer.start

    def recording_start(self):
        started = real_start(self)
        if self not in servers:
            servers.append(self)
            ports.add(demo_server_port(self))
        return started

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(DemoServer, "start", recording_start)
            cfg = demo_config().model_dump(mode="json")
            cfg["acquisition"]["provider"]["demo"]["port"] = port
            cfg["acquisition"]["provider"]["demo"]["world"]["enabled"] = False   # the fault corpus only
            cfg["acquisition"]["download"]["max_build_attempts"] = 1  # no retries of transient failures across builds
            cfg["data_dir"] = str(data)
            cfg_path = root / "emoforge.yaml"
            cfg_path.write_text(yaml.safe_dump(cfg))
            emo = EmoforgeResource(config_path=str(cfg_path))
            assert emo.warehouse.state_path("demo_corpus", "MANIFEST").parent == corpus_dir
            keys, keys2, first_log, second_log = _build_twice(emo, lambda: _request_log(servers))
    finally:
        for srv in servers:
            srv.stop()
        holder.close()
    assert servers and ports == {port}  # every run served on the configured (held) port
    # the expectations: the corpus manifest the build served, written by the corpus generator
    yield {"emo": emo, "entries": load_corpus(corpus_dir), "keys": keys, "keys2": keys2,
           "first_log": first_log, "second_log": second_log}


def _request_log(servers) -> list[tuple[str, str]]:
    return [r for srv in list(servers) for r in srv.request_log]


def _build_twice(emo, request_log):
    """The acquisition and dedup graph, batch by batch as the CLI runs it, then once more."""
    instance = DagsterInstance.ephemeral()
    resources = {"emoforge": emo, "demo_web": DemoWebResource(emoforge=emo)}
    everything = [*ASSETS, *CHECKS]

    def build():
        r = materialize(everything, instance=instance, resources=resources, selection=["search_queries"])
        assert r.success
        keys = emo.settings.acquisition.scrape_plan().batches()  # what the configuration covers
        instance.add_dynamic_partitions(scrape_batches.name, keys)
        for k in keys:
            r = materialize(everything, instance=instance, resources=resources, partition_key=k,
                            selection=["search_results", "candidate_urls", "downloaded_images", "image_hashes"])
            assert r.success, k
            checks = [e for e in r.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
            assert checks and all(e.event_specific_data.passed for e in checks)
        r = materialize(everything, instance=instance, resources=resources,
                        selection=["duplicate_groups", "unique_images"])
        assert r.success
        return keys

    keys = build()
    first_log = request_log()
    keys2 = build()  # a rerun: everything is journaled or stored
    second_log = request_log()[len(first_log):]
    return keys, keys2, first_log, second_log


@pytest.mark.slow
def test_every_url_has_its_expected_status(built):
    wh = built["emo"].warehouse
    dl = wh.read_table("downloaded_images")
    expected = {(e.query, e.rank): e.expected_status for e in built["entries"]}
    got = {(q, int(r)): s for q, r, s in zip(dl["query"], dl["rank"], dl["status"])}
    assert len(dl) == len(expected) == dl["candidate_id"].nunique()
    mismatches = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    assert not mismatches
    kinds = Counter(e.expected_status for e in built["entries"])
    for status in ("blacklisted", "http_404", "timeout", "too_large", "not_an_image", "truncated",
                   "too_small", "blocked_address", "duplicate_url", "width_out_of_range"):
        assert kinds[status] >= 1, status


@pytest.mark.slow
def test_dedup_keeps_one_image_per_duplicate_family(built):
    wh = built["emo"].warehouse
    entries = built["entries"]
    ok = [e for e in entries if e.expected_status == "ok"]
    by_name = {e.name: e for e in entries}

    def family(e):
        while e.duplicate_of:
            e = by_name[e.duplicate_of]
        return e.name

    families = {family(e) for e in ok}
    unique = wh.read_table("unique_images")
    assert len(unique) == len(families)
    assert unique["sha256"].is_unique
    groups = wh.read_table("duplicate_groups")
    # each near-duplicate copy is grouped with its original; resized copies lose to the original
    dl = wh.read_table("downloaded_images")
    sha_of = {(q, int(r)): s for q, r, s in zip(dl["query"], dl["rank"], dl["sha256"])}
    gid = dict(zip(groups["sha256"], groups["group_id"]))
    rep = dict(zip(groups["sha256"], groups["is_representative"]))
    for e in ok:
        if e.kind.startswith("near_duplicate"):
            orig = by_name[e.duplicate_of]
            a, b = sha_of[(e.query, e.rank)], sha_of[(orig.query, orig.rank)]
            assert gid[a] == gid[b], e.kind
            if e.kind == "near_duplicate_resize":
                assert rep[b] and not rep[a]
        if e.kind == "exact_duplicate":
            orig = by_name[e.duplicate_of]
            assert sha_of[(e.query, e.rank)] == sha_of[(orig.query, orig.rank)]


@pytest.mark.slow
def test_sql_views_over_the_warehouse(built):
    wh = built["emo"].warehouse
    con = wh.connect()
    n = con.execute("select count(*) from downloaded_images where status = 'ok'").fetchone()[0]
    assert n == sum(e.expected_status == "ok" for e in built["entries"])
    assert con.execute("select count(*) from unique_images").fetchone()[0] > 0
    con.close()


def _image_fetches(log):
    """Requests other than searches and the demo server's own endpoints (the identity probe a
    build makes before it reuses a running server)."""
    return [p for m, p in log if not p.startswith(("/search", "/__emoforge/"))]


@pytest.mark.slow
def test_rerun_downloads_nothing_again(built):
    assert built["keys2"] == built["keys"]
    images_first = _image_fetches(built["first_log"])
    images_second = _image_fetches(built["second_log"])
    assert images_first, "the first build fetched images"
    assert images_second == []


def test_refresh_sensor_adds_only_new_batches(tmp_path):
    from dagster import SensorResult, SkipReason, build_sensor_context

    from pipelines.definitions import new_scrape_batches

    def evaluate(instance, emo):
        # EmoforgeResource is a context-managed resource: the sensor context must be opened
        with build_sensor_context(instance=instance, resources={"emoforge": emo}) as ctx:
            return new_scrape_batches(ctx)

    cfg = demo_config().model_dump(mode="json")
    cfg["acquisition"]["max_queries"] = 10
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    emo = EmoforgeResource(config_path=str(p), data_dir=str(tmp_path / "d"))
    instance = DagsterInstance.ephemeral()
    res = evaluate(instance, emo)
    assert isinstance(res, SensorResult)
    assert [r.partition_key for r in res.run_requests] == ["q000000-000004", "q000004-000008", "q000008-000010"]
    instance.add_dynamic_partitions(scrape_batches.name, ["q000000-000004", "q000004-000008", "q000008-000010"])
    assert isinstance(evaluate(instance, emo), SkipReason)
    # the configuration grows: only the new batches are requested
    cfg["acquisition"]["max_queries"] = 14
    p.write_text(yaml.safe_dump(cfg))
    emo2 = EmoforgeResource(config_path=str(p), data_dir=str(tmp_path / "d"))
    res = evaluate(instance, emo2)
    assert [r.partition_key for r in res.run_requests] == ["q000010-000014"]
