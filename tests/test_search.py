import json

import pandas as pd
import pytest

from ops.acquisition.queries import findingemo_data_dir
from ops.acquisition.search import HttpJsonSearch, run_searches
from ops.acquisition.url_lists import UrlListError, UrlListSpec, load_url_list, url_list_hits


@pytest.mark.slow
def test_findingemo_url_list_groups_backups_in_idx_order():
    path = findingemo_data_dir() / "dataset_urls_exploded.json"
    recs = json.load(open(path))
    items = load_url_list(UrlListSpec(path=path))
    # independent count: distinct rel_paths
    assert len(items) == len({r["rel_path"] for r in recs})
    by_path = {}
    for r in recs:
        by_path.setdefault(r["rel_path"], []).append((int(r["idx_url"]), r["url"]))
    multi = next(p for p, v in by_path.items() if len(v) >= 3)
    row = items.set_index("item_id").loc[multi]
    expected = [u for _, u in sorted(by_path[multi])]
    assert [row["image_url"], *row["backup_urls"]] == expected
    assert row["query"] == multi.split("/")[2]
    hits = url_list_hits(items.head(5))
    assert hits["item_id"].tolist() == items["item_id"].head(5).tolist()


def test_csv_jsonl_parquet_lists(tmp_path):
    df = pd.DataFrame({"img": ["http://a/1.jpg", "http://a/1b.jpg", "http://a/2.jpg"],
                       "id": ["one", "one", "two"], "order": [1, 2, 1], "q": ["Happy people war"] * 3})
    df.to_csv(tmp_path / "l.csv", index=False)
    df.to_parquet(tmp_path / "l.parquet")
    with open(tmp_path / "l.jsonl", "w") as fh:
        for r in df.to_dict("records"):
            fh.write(json.dumps(r) + "\n")
    for name in ("l.csv", "l.parquet", "l.jsonl"):
        items = load_url_list(UrlListSpec(path=tmp_path / name, url_column="img", id_column="id",
                                          order_column="order", query_column="q"))
        assert items["item_id"].tolist() == ["one", "two"], name
        assert items.iloc[0]["backup_urls"] == ["http://a/1b.jpg"], name
    plain = load_url_list(UrlListSpec(path=tmp_path / "l.csv", url_column="img"))
    assert len(plain) == 3 and plain["source_line"].tolist() == [2, 3, 4]


def test_url_list_errors_name_file_column_line(tmp_path):
    (tmp_path / "l.csv").write_text("link\nhttp://a/1.jpg\n")
    with pytest.raises(UrlListError, match=r"l.csv: column 'url' is missing"):
        load_url_list(UrlListSpec(path=tmp_path / "l.csv"))
    (tmp_path / "l.jsonl").write_text('{"url": "http://a"}\n{broken\n')
    with pytest.raises(UrlListError, match="line 2"):
        load_url_list(UrlListSpec(path=tmp_path / "l.jsonl"))
    with pytest.raises(UrlListError, match="does not exist"):
        load_url_list(UrlListSpec(path=tmp_path / "nope.csv"))


def test_http_json_search_and_failed_queries_are_logged(httpserver):
    def handler(request):
        from werkzeug import Response
        q = request.args["q"]
        if q == "broken":
            return Response("oops", status=500)
        n = int(request.args["max_results"])
        res = [{"image": f"http://img/{q}/{i}.jpg", "url": "http://page", "title": "t", "width": "1024",
                "height": 768} for i in range(10)]
        return Response(json.dumps(res[:n]), content_type="application/json")
    httpserver.expect_request("/search").respond_with_handler(handler)
    provider = HttpJsonSearch(httpserver.url_for("/"), name="demo")
    queries = pd.DataFrame({"query_id": ["a", "b", "c"], "query": ["Happy people war", "broken", "empty"]})
    hits, log = run_searches(provider, queries, max_results=3)
    assert log["status"].tolist() == ["ok", "error", "ok"]
    assert "500" in log.loc[1, "error"]
    assert hits.groupby("query").size().to_dict() == {"Happy people war": 3, "empty": 3}
    assert hits["rank"].tolist()[:3] == [1, 2, 3]
    assert hits["reported_width"].iloc[0] == 1024


def test_ddgs_provider_maps_results_and_records_failures(monkeypatch):
    """DdgsSearch calls ddgs.DDGS().images with the configured options (no network: DDGS is replaced)."""
    import ddgs
    from ddgs.exceptions import RatelimitException

    from ops.acquisition.search import DdgsSearch

    calls = []

    class FakeDDGS:
        def __init__(self, timeout=None):
            self.timeout = timeout

        def images(self, query, **kw):
            calls.append((query, kw))
            if query == "rate limited":
                raise RatelimitException("202 Ratelimit")
            return [{"title": "t", "image": f"https://img.example/{i}.jpg", "thumbnail": "x", "url": "https://page",
                     "height": "768", "width": "1024", "source": "Bing"} for i in range(kw["max_results"] + 2)]

    monkeypatch.setattr(ddgs, "DDGS", FakeDDGS)
    p = DdgsSearch(region="uk-en", safesearch="off", backend="duckduckgo")
    queries = pd.DataFrame({"query_id": ["a", "b"], "query": ["Happy people war", "rate limited"]})
    hits, log = run_searches(p, queries, max_results=3)
    assert calls[0] == ("Happy people war", {"region": "uk-en", "safesearch": "off", "max_results": 3,
                                             "backend": "duckduckgo"})
    assert len(hits) == 3 and hits["rank"].tolist() == [1, 2, 3]
    assert hits["reported_width"].tolist() == [1024] * 3 and hits["source_page"].iloc[0] == "https://page"
    assert log.set_index("query")["status"].to_dict() == {"Happy people war": "ok", "rate limited": "error"}
    assert "Ratelimit" in log.set_index("query").loc["rate limited", "error"]
