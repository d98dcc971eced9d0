"""A FindingEmo-style URL list through the whole graph against a local server: backup URLs are
tried in idx_url order, batches cut the list, and annotations of the downloaded images are linked
to them by path (the others are kept unlinked)."""

import json

import pytest
import yaml

from helpers import noisy_jpeg as _jpeg
from pipelines.cli import main

pytestmark = pytest.mark.slow


def test_url_list_backups_batches_and_annotation_links(clean_env, httpserver, tmp_path, capsys):
    httpserver.expect_request("/gone.jpg").respond_with_data("nope", status=404)
    httpserver.expect_request("/gone2.jpg").respond_with_data("nope", status=404)
    for i in range(3):
        httpserver.expect_request(f"/img{i}.jpg").respond_with_data(_jpeg(i), content_type="image/jpeg")
    u = httpserver.url_for
    paths = ["/Run_1/Happy people war/a.jpg", "/Run_1/Happy people war/b.jpg", "/Run_2/Sad adults home/c.jpg",
             "/Run_2/Sad adults home/d.jpg"]
    records = [
        {"rel_path": paths[0], "idx_url": 2, "url": u("/img0.jpg")},   # backup, listed first on purpose
        {"rel_path": paths[0], "idx_url": 1, "url": u("/gone.jpg")},   # primary: 404
        {"rel_path": paths[1], "idx_url": 1, "url": u("/img1.jpg")},
        {"rel_path": paths[2], "idx_url": 1, "url": u("/img2.jpg")},
        {"rel_path": paths[3], "idx_url": 1, "url": u("/gone2.jpg")},  # no backup: stays http_404
    ]
    (tmp_path / "urls.json").write_text(json.dumps(records))
    header = "index,user,image_path,tags,age,valence,arousal,emotion,dec_factors,ambiguity,datetime\n"
    rows = [f'{i},user{i % 2},{p},Undefined,Adults,1,3,Joy,FacialExpression,1,2023-10-0{i + 1} 10:00:00.000000\n'
            for i, p in enumerate(paths + ["/Run_2/Sad adults home/never-listed.jpg"])]
    (tmp_path / "ann.ann").write_text(header + "".join(rows))
    # a long-format export that names images by URL (linked through the normalized URL)
    (tmp_path / "by_url.csv").write_text(f"image,worker,label\n{u('/img1.jpg').replace('http://', 'HTTP://')}#frag"
                                         f",w9,Joy\n{u('/elsewhere.jpg')},w9,Joy\n")
    cfg = {
        "acquisition": {"provider": {"kind": "url_list", "url_list": {"path": "urls.json", "items_per_batch": 3}},
                        "download": {"allow_hosts": ["127.0.0.1"], "retries": 0, "per_host": 4}},
        "annotations": {"sources": [{"kind": "findingemo", "path": "ann.ann"},
                                    {"kind": "long", "path": "by_url.csv", "mapping": {
                                        "image_id": "image", "annotator_id": "worker", "emotion": "label"}}]},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    data = tmp_path / "data"
    assert main(["build", "--config", str(tmp_path / "c.yaml"), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "2 scrape batches planned" in out and "u0000000-0000003" in out

    def sql(q):
        assert main(["sql", "--data-dir", str(data), "--format", "json", q]) == 0
        return json.loads(capsys.readouterr().out)

    dl = {r["item_id"]: r for r in sql("select item_id, status, url_index, url_download, sha256 from downloaded_images")}
    assert dl[paths[0]]["status"] == "ok" and dl[paths[0]]["url_index"] == 1
    assert dl[paths[0]]["url_download"].endswith("/img0.jpg")
    assert dl[paths[3]]["status"] == "http_404"
    assert {dl[p]["status"] for p in paths[1:3]} == {"ok"}
    ann = {r["image_id"]: r["sha256"] for r in sql("select image_id, sha256 from annotations where source = 'findingemo'")}
    assert len(ann) == 5
    by_url = [r["sha256"] for r in sql("select sha256 from annotations where source = 'by_url' order by source_line")]
    assert by_url == [dl[paths[1]]["sha256"], None]
    assert ann[paths[0]] == dl[paths[0]]["sha256"] and ann[paths[2]] == dl[paths[2]]["sha256"]
    assert ann[paths[3]] is None and ann["/Run_2/Sad adults home/never-listed.jpg"] is None
    assert sql("select count(*) as n from unique_images")[0]["n"] == 3


def test_a_build_where_every_item_is_dropped_still_succeeds(clean_env, tmp_path, capsys):
    """No image survives the filter and no annotation survives validation: every table is written,
    empty but with its schema, and the statistics views answer with zero counts."""
    (tmp_path / "list.csv").write_text("url\nhttp://www.shutterstock.com/a.jpg\nnot a url\n")
    (tmp_path / "bad.ann").write_text("index,user,image_path,tags,age,valence,arousal,emotion,dec_factors,ambiguity,"
                                      "datetime\n1,u,/a/b/c.jpg,Undefined,Adults,9,3,Joy,Undefined,1,2023-01-01 00:00:00\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "acquisition": {"provider": {"kind": "url_list", "url_list": {"path": "list.csv"}}},
        "annotations": {"sources": [{"kind": "findingemo", "path": "bad.ann"}]}}))
    data = tmp_path / "data"
    assert main(["build", "--config", str(tmp_path / "c.yaml"), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert main(["sql", "--data-dir", str(data), "--format", "json",
                 "select (select count(*) from unique_images) as u, (select count(*) from annotations) as a, "
                 "(select sum(n) from emotion8_stats) as n, (select count(*) from annotation_rejects) as r, "
                 "(select count(*) from downloaded_images) as d"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"u": 0, "a": 0, "n": 0, "r": 1, "d": 2}]
