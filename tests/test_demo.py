"""The embedded demo: deterministic corpus, and a local server that misbehaves as planned."""

from __future__ import annotations

import collections
import io
import json
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from PIL import Image

from helpers import HANG_TIMEOUT, SMALL_DEMO_N, call_with_hang_guard, wait_event, wait_for
from ops.acquisition import statuses as S
from ops.demo import server as demo_server_module
from ops.demo.config import demo_config
from ops.demo.corpus import (
    BLOCKED_REDIRECT_TARGET, DEMO_KEYWORDS, DEMO_QUERIES, SLOW_MS, STALL_SECONDS, DemoEntry, build_corpus,
    expected_statuses, load_corpus, plan_corpus,
)
from ops.demo.server import DemoServer

# integration tests (trained models, face detectors, demo worlds or exports): `make test`, not `make test-fast`
pytestmark = pytest.mark.slow

N = SMALL_DEMO_N  # small enough to build twice in a few seconds, big enough to hold every fault kind

FAULT_KINDS = {
    "html_as_jpeg": S.NOT_AN_IMAGE, "truncated": S.TRUNCATED, "missing": "http_404",
    "redirect_blocked": S.BLOCKED_ADDRESS, "blacklisted": S.BLACKLISTED, "rate_limited_once": S.OK,
    "too_small_unreported": S.TOO_SMALL, "width_reported_small": S.WIDTH_OUT_OF_RANGE,
    "too_large": S.TOO_LARGE, "redirect_chain": S.OK, "slow": S.OK, "stalled": S.TIMEOUT,
    "width_reported_wide": S.WIDTH_OUT_OF_RANGE, "too_wide_unreported": S.TOO_WIDE,
    "server_error": "http_500", "connection_reset": S.CONNECTION_ERROR,
    "too_large_streamed": S.TOO_LARGE, "redirect_scheme": S.BLOCKED_SCHEME,
    "redirect_loop": S.TOO_MANY_REDIRECTS, "decompression_bomb": S.DECOMPRESSION_BOMB,
    "mislabeled_webp": S.OK, "octet_stream": S.OK, "too_small_misreported": S.TOO_SMALL,
}
DUP_KINDS = {"exact_duplicate", "near_duplicate_reencode", "near_duplicate_resize", "near_duplicate_brightness"}


@pytest.fixture(scope="module")
def corpus(small_demo_corpus) -> tuple[Path, list[DemoEntry]]:
    """The session's 60-image corpus (conftest.small_demo_corpus), seed 7."""
    return small_demo_corpus


@pytest.fixture(scope="module")
def server(corpus):
    d, entries = corpus
    with DemoServer(d, entries) as srv:
        yield srv


def by_kind(entries: list[DemoEntry]) -> dict[str, list[DemoEntry]]:
    out: dict[str, list[DemoEntry]] = collections.defaultdict(list)
    for e in entries:
        out[e.kind].append(e)
    return out


# ---- the corpus -------------------------------------------------------------------------------------

def test_queries_and_keywords():
    assert len(DEMO_QUERIES) == 24 and len(set(DEMO_QUERIES)) == 24
    assert DEMO_QUERIES[0] == "Happy people birthday"
    assert DEMO_QUERIES[-1] == f"{DEMO_KEYWORDS['emotions'][-1]} children protest"


def test_build_is_deterministic_and_idempotent(corpus, tmp_path):
    d, entries = corpus
    again = build_corpus(tmp_path, n_images=N, seed=7)
    assert again == entries
    assert (tmp_path / "manifest.json").read_bytes() == (d / "manifest.json").read_bytes()
    for f in {e.file for e in entries if e.file}:
        assert (tmp_path / f).read_bytes() == (d / f).read_bytes(), f
    # a second build of the same corpus generates nothing (no image is encoded again) and rewrites nothing
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    encoded: list = []
    real_save = Image.Image.save

    def counting_save(self, *a, **kw):
        encoded.append(a[1] if len(a) > 1 else kw.get("format"))
        return real_save(self, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image.Image, "save", counting_save)
        assert build_corpus(tmp_path, n_images=N, seed=7) == entries
    assert encoded == []
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes
    assert load_corpus(tmp_path) == entries
    # the plan alone agrees with the build, and another seed is another corpus
    assert plan_corpus(N, 7) == entries
    assert plan_corpus(N, 8) != entries


def test_every_kind_present_with_its_status(corpus):
    _, entries = corpus
    kinds = by_kind(entries)
    assert len(entries) == N
    for kind, status in FAULT_KINDS.items():
        assert kind in kinds, kind
        assert all(e.expected_status == status for e in kinds[kind]), kind
    for kind in DUP_KINDS:
        assert kinds[kind] and all(e.expected_status == S.OK and e.duplicate_of for e in kinds[kind])
    assert len(kinds["duplicate_url"]) == 1
    assert len(kinds["original"]) > N // 4
    assert all(S.is_known_status(e.expected_status) for e in entries)


def test_plan_for_the_default_corpus():
    entries = plan_corpus(240, 7)
    counts = collections.Counter(e.kind for e in entries)
    assert len(entries) == 240
    assert counts["original"] > 120 and counts["exact_duplicate"] == 8
    assert all(counts[k] == 4 for k in DUP_KINDS - {"exact_duplicate"})
    assert set(FAULT_KINDS) <= set(counts)
    per_query = collections.Counter(e.query for e in entries)
    assert set(per_query) == set(DEMO_QUERIES) and set(per_query.values()) == {10}
    for q in DEMO_QUERIES:  # ranks 1..n within each query
        assert sorted(e.rank for e in entries if e.query == q) == list(range(1, per_query[q] + 1))
    exp = expected_statuses(entries)
    assert len(exp) == 240 and exp[(entries[0].query, entries[0].rank)] == entries[0].expected_status
    # smallest and largest corpora the config allows still plan
    assert len(plan_corpus(20, 1)) == 20
    assert len(plan_corpus(1000, 3)) == 1000
    with pytest.raises(ValueError):
        plan_corpus(10, 7)


def test_duplicates_follow_their_originals(corpus):
    _, entries = corpus
    pos = {e.name: (DEMO_QUERIES.index(e.query), e.rank) for e in entries}
    names = {e.name: e for e in entries}
    for e in entries:
        if e.duplicate_of:
            assert names[e.duplicate_of].kind == "original"
            assert pos[e.duplicate_of] < pos[e.name]
    (du,) = by_kind(entries)["duplicate_url"]
    (first,) = [e for e in entries if e.path == du.path and e is not du]
    assert first.expected_status == S.OK and DEMO_QUERIES.index(first.query) < DEMO_QUERIES.index(du.query)
    assert du.reported_width == first.reported_width and 800 < du.reported_width < 1600


def test_files_look_like_the_plan(corpus):
    d, entries = corpus
    for e in entries:
        if e.kind == "original":
            data = (d / e.file).read_bytes()
            assert 40_000 <= len(data) <= 250_000, (e.file, len(data))
            with Image.open(io.BytesIO(data)) as im:
                assert im.format == "JPEG" and 900 <= im.width <= 1500
                if e.reported_width is not None:
                    assert (im.width, im.height) == (e.reported_width, e.reported_height)
    k = by_kind(entries)
    for kind in ("too_small_unreported", "too_small_misreported"):
        for e in k[kind]:
            with Image.open(d / e.file) as im:
                assert im.width <= 800
    with Image.open(d / k["too_wide_unreported"][0].file) as im:
        assert im.width == 1600
    assert k["width_reported_wide"][0].reported_width == 2400
    assert all(e.reported_width <= 800 for e in k["width_reported_small"])
    assert all(e.reported_width is None for e in k["too_small_unreported"] + k["too_wide_unreported"])
    assert k["too_small_misreported"][0].reported_width > 800
    for kind in ("too_large", "too_large_streamed"):
        e = k[kind][0]
        assert (d / e.file).stat().st_size > 3_000_000
        with Image.open(d / e.file) as im:
            im.load()  # a valid image, just too big
    assert (d / k["html_as_jpeg"][0].file).read_bytes().lstrip().startswith(b"<!DOCTYPE html>")
    with Image.open(d / k["truncated"][0].file) as im:
        assert im.format == "JPEG"
        with pytest.raises(OSError):
            im.load()
    with pytest.raises(Image.DecompressionBombError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Image.open(d / k["decompression_bomb"][0].file)
    assert (d / k["decompression_bomb"][0].file).stat().st_size < 200_000
    with Image.open(d / k["mislabeled_webp"][0].file) as im:
        assert im.format == "WEBP"
    assert k["blacklisted"][0].host_override == "www.shutterstock.com"


def test_duplicates_differ_in_bytes_but_not_in_phash(corpus):
    d, entries = corpus
    names = {e.name: e for e in entries}
    imagehash = pytest.importorskip("imagehash")

    def phash(name):
        with Image.open(d / names[name].file) as im:
            return imagehash.phash(im)

    for e in entries:
        if not e.duplicate_of:
            continue
        mine, orig = (d / e.file).read_bytes(), (d / names[e.duplicate_of].file).read_bytes()
        assert e.file != names[e.duplicate_of].file
        if e.kind == "exact_duplicate":
            assert mine == orig
        else:
            assert mine != orig
            assert phash(e.name) - phash(e.duplicate_of) <= 4, e.kind
        if e.kind == "near_duplicate_resize":
            with Image.open(d / e.file) as a, Image.open(d / names[e.duplicate_of].file) as b:
                assert a.width == round(b.width * 0.8) and a.width > 800
    originals = [e.name for e in entries if e.kind == "original"]
    hashes = [phash(n) for n in originals]
    closest = min(a - b for i, a in enumerate(hashes) for b in hashes[i + 1:])
    assert closest > 8  # distinct pictures are far apart for the dedup stage


# ---- the server -------------------------------------------------------------------------------------

@pytest.fixture
def demo_waits(monkeypatch) -> list[SimpleNamespace]:
    """Every delay a demo handler takes (slow and stalled routes), recorded when it starts:
    ``path``, ``seconds`` planned, a ``returned`` Event, and ``stopped`` once returned (True: cut
    short by stop(), False: the delay ran out).

    Wraps the handler's private ``_wait``: DemoServer has no public way to observe its delays yet."""
    waits: list[SimpleNamespace] = []
    real = demo_server_module._Handler._wait

    def observed_wait(self, seconds):
        rec = SimpleNamespace(path=self.path, seconds=seconds, stopped=None, returned=threading.Event())
        waits.append(rec)  # list.append is atomic
        try:
            rec.stopped = real(self, seconds)
        finally:
            rec.returned.set()
        return rec.stopped

    monkeypatch.setattr(demo_server_module._Handler, "_wait", observed_wait)
    return waits


def get(server: DemoServer, path: str, **kw) -> requests.Response:
    kw.setdefault("timeout", 5)
    kw.setdefault("allow_redirects", False)
    return requests.get(server.base_url + path, **kw)


def test_search_results(server, corpus):
    _, entries = corpus
    q = DEMO_QUERIES[3]
    mine = sorted((e for e in entries if e.query == q), key=lambda e: e.rank)
    r = get(server, "/search", params={"q": q, "max_results": 100})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    results = r.json()
    assert len(results) == len(mine) > 0
    for res, e in zip(results, mine):
        assert set(res) == {"image", "url", "title", "width", "height", "thumbnail", "source"}
        assert res["image"] == (f"http://{e.host_override}{e.path}" if e.host_override else server.base_url + e.path)
        assert res["url"].startswith(server.base_url + "/page/")
        assert (res["width"], res["height"]) == (e.reported_width, e.reported_height)
        assert res["source"] == "demo" and res["title"]
    assert get(server, "/search", params={"q": q, "max_results": 2}).json() == results[:2]
    assert get(server, "/search", params={"q": "  " + q.lower() + " "}).json() == results
    assert get(server, "/search", params={"q": "Happy cats birthday"}).json() == []
    assert get(server, "/search", params={"q": q, "max_results": "x"}).status_code == 400
    page = get(server, results[0]["url"][len(server.base_url):])
    assert page.status_code == 200 and results[0]["image"] in page.text
    # the blacklisted copy points at the stock site, never at this server
    (bl,) = by_kind(entries)["blacklisted"]
    res = get(server, "/search", params={"q": bl.query}).json()[bl.rank - 1]
    assert res["image"] == f"http://www.shutterstock.com{bl.path}"
    assert ("GET", f"/search?q={q.replace(' ', '+')}&max_results=100") in server.request_log


def test_images_and_content_types(server, corpus):
    d, entries = corpus
    k = by_kind(entries)
    e = k["original"][0]
    r = get(server, e.path)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    assert r.content == (d / e.file).read_bytes() and int(r.headers["Content-Length"]) == len(r.content)
    assert get(server, e.path.replace("/img/", "/page/")).status_code == 404
    h = requests.head(server.base_url + e.path, timeout=5)
    assert h.status_code == 200 and int(h.headers["Content-Length"]) == len(r.content) and not h.content
    r = get(server, k["html_as_jpeg"][0].path)  # wrong on purpose
    assert r.headers["Content-Type"] == "image/jpeg" and r.content.startswith(b"<!DOCTYPE html>")
    assert get(server, k["mislabeled_webp"][0].path).headers["Content-Type"] == "image/jpeg"
    assert get(server, k["octet_stream"][0].path).headers["Content-Type"] == "application/octet-stream"
    r = get(server, k["too_large"][0].path, stream=True)
    assert int(r.headers["Content-Length"]) > 3_000_000
    r.close()
    r = get(server, k["too_large_streamed"][0].path, stream=True)
    assert "Content-Length" not in r.headers and r.headers["Transfer-Encoding"] == "chunked"
    assert sum(len(c) for c in r.iter_content(1 << 16)) > 3_000_000
    assert get(server, "/img/../manifest.json").status_code == 404


def test_http_errors_and_reset(server, corpus):
    _, entries = corpus
    k = by_kind(entries)
    assert get(server, k["missing"][0].path).status_code == 404
    assert get(server, k["server_error"][0].path).status_code == 500
    with pytest.raises(requests.ConnectionError):
        get(server, k["connection_reset"][0].path)


def test_rate_limited_once_then_ok(server, corpus):
    d, entries = corpus
    (e,) = by_kind(entries)["rate_limited_once"]
    first = get(server, e.path)
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    second = get(server, e.path)
    assert second.status_code == 200 and second.content == (d / e.file).read_bytes()
    assert get(server, e.path).status_code == 200


def test_redirects(server, corpus):
    d, entries = corpus
    k = by_kind(entries)
    r = get(server, k["redirect_blocked"][0].path)
    assert r.status_code == 302 and r.headers["Location"] == BLOCKED_REDIRECT_TARGET
    r = get(server, k["redirect_scheme"][0].path)
    assert r.status_code == 302 and r.headers["Location"].startswith("ftp://")
    # 302 (absolute Location) -> 301 (relative) -> the image
    e = k["redirect_chain"][0]
    r1 = get(server, e.path)
    assert r1.status_code == 302 and r1.headers["Location"].startswith(server.base_url)
    r2 = requests.get(r1.headers["Location"], allow_redirects=False, timeout=5)
    assert r2.status_code == 301 and r2.headers["Location"] == e.path.replace("/redirect/chain/", "/img/")
    r3 = get(server, r2.headers["Location"])
    assert r3.status_code == 200 and r3.content == (d / e.file).read_bytes()
    path = k["redirect_loop"][0].path
    for _ in range(8):  # never ends
        r = get(server, path)
        assert r.status_code == 302
        path = r.headers["Location"]


def test_slow_route(server, corpus, demo_waits):
    _, entries = corpus
    (e,) = by_kind(entries)["slow"]
    t0 = time.monotonic()
    r = get(server, e.path, timeout=(5, HANG_TIMEOUT))
    assert r.status_code == 200 and len(r.content) > 10_000
    assert time.monotonic() - t0 >= 0.45  # the delay is real (load can only lengthen it)
    # ... and it is the planned one, under the demo read timeout (2 s), and ran to its end
    (w,) = [w for w in demo_waits if w.path == e.path]
    read_timeout = demo_config().acquisition.download.read_timeout
    assert w.seconds == SLOW_MS / 1000 < read_timeout and w.returned.is_set() and w.stopped is False


def test_stalled_request_does_not_block_stop(corpus, demo_waits):
    d, entries = corpus
    (e,) = by_kind(entries)["stalled"]
    outcome: list[object] = []
    srv = DemoServer(d, entries).start()
    base = srv.base_url
    with pytest.raises(requests.ReadTimeout):  # the demo downloader's read timeout runs out
        requests.get(base + e.path, timeout=(2, 0.3))

    def fetch():
        try:
            outcome.append(requests.get(base + e.path, timeout=20).status_code)
        except requests.RequestException as ex:
            outcome.append(ex)

    t = threading.Thread(target=fetch, daemon=True)
    t.start()
    # both requests are stalled in their handlers now (the first one's client gave up, not its handler)
    wait_for(lambda: len([w for w in demo_waits if w.path == e.path]) == 2, message="second stall not reached")
    assert srv.request_log.count(("GET", e.path)) == 2
    stalls = [w for w in demo_waits if w.path == e.path]
    assert all(w.seconds == STALL_SECONDS for w in stalls)
    call_with_hang_guard(srv.stop, what="stop() with stalled requests in flight")
    # stop() returned, and it cut both stalls short: each handler woke up because of stop(),
    # not because its STALL_SECONDS ran out
    for w in stalls:
        wait_event(w.returned, message="a stalled handler was not woken by stop()")
        assert w.stopped is True
    t.join(timeout=HANG_TIMEOUT)
    assert not t.is_alive() and isinstance(outcome[0], requests.ConnectionError)
    with pytest.raises(requests.ConnectionError):
        requests.get(base + "/search?q=x", timeout=2)
    srv.stop()  # twice is fine


def test_request_log_and_context_manager(corpus):
    d, entries = corpus
    with DemoServer(d, entries) as srv:
        get(srv, "/search?q=Happy+people+birthday")
        get(srv, entries[0].path)
        assert srv.request_log == [("GET", "/search?q=Happy+people+birthday"), ("GET", entries[0].path)]
        log = srv.request_log
        log.append(("X", "/"))  # a copy
        assert len(srv.request_log) == 2
        assert json.loads(get(srv, "/search?q=Happy+people+birthday").text)
