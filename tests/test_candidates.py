import pandas as pd
import pytest

from ops.acquisition import statuses as S
from ops.acquisition.candidates import PENDING, blacklist_match, filter_candidates, normalize_url, registered_domain


def test_normalize_url():
    assert normalize_url("HTTP://Example.COM:80/a%20b/%7Efoo?x=1#frag") == "http://example.com/a%20b/~foo?x=1"
    assert normalize_url("https://example.com:443") == "https://example.com/"
    assert normalize_url("https://example.com:8443/p") == "https://example.com:8443/p"
    assert normalize_url("ftp://example.com/x.jpg") is None
    assert normalize_url("/relative.jpg") is None
    assert normalize_url("http://") is None
    assert normalize_url("http://bad:port/") is None


@pytest.mark.slow
def test_blacklist_matches_registered_domain_and_subdomains():
    bl = ["shutterstock.com", "stock.adobe.com"]
    assert blacklist_match("shutterstock.com", bl) == "shutterstock.com"
    assert blacklist_match("image.shutterstock.com", bl) == "shutterstock.com"
    assert blacklist_match("a.b.stock.adobe.com", bl) == "stock.adobe.com"
    assert blacklist_match("adobe.com", bl) is None
    assert blacklist_match("notshutterstock.com", bl) is None
    assert registered_domain("a.b.example.co.uk") == "example.co.uk"


def _hits(rows):
    base = dict(query_id="q1", query="Happy people birthday", provider="demo", backup_urls=[],
                source_page=None, title=None, reported_height=None, item_id=None)
    df = pd.DataFrame([{**base, **r} for r in rows])
    df["reported_width"] = df["reported_width"].astype("Int64")
    return df


def test_filter_candidates_assigns_one_status_each():
    hits = _hits([
        dict(rank=1, image_url="http://example.org/a.jpg", reported_width=1000),
        dict(rank=2, image_url="http://EXAMPLE.org:80/a.jpg#x", reported_width=1000),   # same URL
        dict(rank=3, image_url="https://www.shutterstock.com/x.jpg", reported_width=1000),
        dict(rank=4, image_url="http://example.org/small.jpg", reported_width=800),     # 800 is not > 800
        dict(rank=5, image_url="http://example.org/wide.jpg", reported_width=1600),     # 1600 is not < 1600
        dict(rank=6, image_url="http://example.org/unknown.jpg", reported_width=None),
        dict(rank=7, image_url="javascript:alert(1)", reported_width=None),
        dict(rank=8, image_url="http://example.org/seen-before.jpg", reported_width=None),
    ])
    c = filter_candidates(hits, blacklist=["shutterstock.com"], min_width=800, max_width=1600,
                          seen_urls={"http://example.org/seen-before.jpg"})
    assert c["filter_status"].tolist() == [PENDING, S.DUPLICATE_URL, S.BLACKLISTED, S.WIDTH_OUT_OF_RANGE,
                                           S.WIDTH_OUT_OF_RANGE, PENDING, S.INVALID_URL, S.DUPLICATE_URL]
    assert c["candidate_id"].is_unique
    assert len(c) == len(hits)
    assert c.loc[2, "filter_reason"].startswith("host www.shutterstock.com")
    # stable ids
    c2 = filter_candidates(hits, blacklist=["shutterstock.com"], min_width=800, max_width=1600)
    assert c2["candidate_id"].tolist() == c["candidate_id"].tolist()
