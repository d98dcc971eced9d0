"""Hard limits of the downloader (issue 7): the deadline on every response shape and per URL
(item 6), dimension limits from the header before any decoding (item 7), transient failures
retried across builds (item 4), and one decode per image with the fast pHash from it (item 18).

Every server here listens on 127.0.0.1 only (the loopback guard below fails a test that connects
anywhere else). Waits are on events set by the servers, with a hang guard that only turns a hang
into a failure; no assertion is a wall-clock upper bound.
"""

from __future__ import annotations

import io
import ipaddress
import json
import random
import socket
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from helpers import make_image, noisy_jpeg, send, serve, wait_event
from ops.acquisition import statuses as st
from ops.acquisition.download import (
    COLUMNS, DownloadItem, DownloadSettings, Downloader, retries_due, retry_due,
)
from ops.acquisition.images import ImageLimits, inspect_image
from ops.config import DownloadConfig
from ops.dedup.hashing import hash_batch
from ops.dedup.phash import hashes_to_hex, phash_fast

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# fixtures and builders
# ---------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    bad: list = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and \
                not ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback:
            bad.append(address)
            raise AssertionError(f"test tried to connect to non-loopback {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield
    assert not bad, f"connections attempted to {bad}"


@pytest.fixture
def server(local_server):
    return local_server


def cfg(**kw) -> DownloadConfig:
    base = dict(concurrency=4, per_host=4, connect_timeout=0.5, read_timeout=0.3, retries=0,
                backoff_base=0.01, backoff_max=0.05, max_retry_after=5.0, max_redirects=3,
                max_bytes=2_000_000, allow_hosts=["127.0.0.1"])
    base.update(kw)
    return DownloadConfig(**base)


class Blobs(dict):
    def put(self, data: bytes) -> str:
        import hashlib
        sha = hashlib.sha256(data).hexdigest()
        self[sha] = data
        return sha


def downloader(c=None, min_width=50, max_width=2000):
    blobs = Blobs()
    return Downloader(c or cfg(), min_width=min_width, max_width=max_width, put_blob=blobs.put), blobs


def by_id(df):
    return {r["candidate_id"]: r for r in df.to_dict("records")}


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_declaring(w: int, h: int, rows: int | None = None) -> bytes:
    """A valid 1-bit PNG of w x h zeros (rows=None), or only its first ``rows`` rows of image data
    (then a decode stops short: truncated). Cheap to build at any size: the zeros compress ~1000:1."""
    row = b"\x00" * (1 + (w + 7) // 8)
    n = h if rows is None else rows
    co = zlib.compressobj(9)
    block = row * 512
    idat = b"".join(co.compress(block) for _ in range(n // 512)) + co.compress(row * (n % 512))
    # a short image's zlib stream stops mid-way (PIL would accept a finished stream short of rows)
    idat += co.flush() if rows is None else co.flush(zlib.Z_SYNC_FLUSH)
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_declaring(w: int, h: int, exif_orientation: int | None = None) -> bytes:
    """A small real JPEG whose frame header (SOF0) is patched to declare w x h: the header says one
    thing, the entropy-coded data holds a 64x48 image (a decode would fail as truncated)."""
    data = bytearray(make_image(64, 48, exif_orientation=exif_orientation))
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


@pytest.fixture
def loads(monkeypatch):
    """Every PIL decode (``ImageFile.load``, which PNG, JPEG and GIF files use) is recorded, with
    the DCT scale the decoder was configured with (JPEG draft mode) and the mode decoded to."""
    calls: list[dict] = []
    real = ImageFile.ImageFile.load

    def load(self):
        if self.tile:  # a decode to do (afterwards PIL empties tile: later calls are no-ops)
            calls.append({"format": self.format, "scale": (self.decoderconfig or (1,))[0], "mode": self.mode,
                          "size": self.size})
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


# ---------------------------------------------------------------------------------------------
# item 6: the deadline holds on every response shape, and over the whole URL
# ---------------------------------------------------------------------------------------------
class TrickleServer:
    """A raw socket server on 127.0.0.1 (port 0): each connection gets ``head`` then one byte (or
    one byte inside a chunk) every ``pace`` seconds, ``n`` in all. ``hung_up`` is set when the
    client closes before the end, ``finished`` when everything was sent; ``ended`` either way."""

    def __init__(self, head: bytes, n: int = 400, pace: float = 0.05):
        self.head, self.n, self.pace = head, n, pace
        self.hung_up, self.finished, self.ended = threading.Event(), threading.Event(), threading.Event()
        self.requests = 0
        self.sent = 0
        self._stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/x.jpg") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.requests += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                got = conn.recv(4096)
                if not got:
                    return
                buf += got
            conn.sendall(self.head)
            for _ in range(self.n):
                if self._stop.wait(self.pace):
                    return
                conn.sendall(b"x")
                self.sent += 1
            self.finished.set()
        except OSError:  # EPIPE / ECONNRESET: the client hung up
            self.hung_up.set()
        finally:
            self.ended.set()
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


SHAPES = {
    # chunked, one big chunk trickled byte by byte (the connection would stay open)
    "chunked": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n",
    # chunked and Connection: close (http.client hands the socket to the response)
    "chunked_close": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n186a0\r\n",
    # no Content-Length, Connection: close: the body ends when the connection closes
    "no_length_close": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n\r\n",
    # no Content-Length and no Connection header: read until close as well
    "no_length": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n",
    # a Content-Length, sent slowly
    "content_length": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_trickling_body_is_cut_at_the_deadline_on_every_response_shape(shape, tmp_path):
    # One byte every 0.05 s (each read well within read_timeout 0.3 s), 400 bytes (20 s) in all,
    # against a request deadline of 0.2 + 3 x 0.3 = 1.1 s. Before the fix the read-until-close
    # shapes (no_length*, chunked_close) were read to the end: the watchdog looked for conn.sock,
    # which http.client had set to None when it handed the socket to the response.
    srv = TrickleServer(SHAPES[shape])
    try:
        d, _ = downloader(cfg(retries=0, connect_timeout=0.2, read_timeout=0.3))
        row = d.run([DownloadItem("a", (srv.url(),))], tmp_path / "j.jsonl").iloc[0]
        wait_event(srv.ended, message=f"{shape}: the server never stopped sending")
        assert srv.hung_up.is_set() and not srv.finished.is_set(), \
            f"{shape}: the client read all {srv.sent} bytes instead of hanging up at its deadline"
        assert row["status"] == st.TIMEOUT, row["error"]
        assert "deadline" in row["error"] and "exceeded" in row["error"], row["error"]
        assert row["attempts"] == 1
    finally:
        srv.close()


@pytest.mark.slow
def test_url_deadline_bounds_retries_of_a_trickling_url(tmp_path):
    # retries=5 would make 6 requests of 1.1 s each; url_deadline 1.5 s leaves room for the first
    # one and a shortened second one: the URL ends there, saying which deadline ended it
    srv = TrickleServer(SHAPES["no_length_close"])
    try:
        d, _ = downloader(cfg(retries=5, connect_timeout=0.2, read_timeout=0.3, url_deadline=1.5))
        row = d.run([DownloadItem("a", (srv.url(),))], tmp_path / "j.jsonl").iloc[0]
        assert row["status"] == st.TIMEOUT
        assert 1 <= srv.requests <= 2 and row["attempts"] == srv.requests, (srv.requests, row["error"])
        assert "url_deadline 1.5s" in row["error"], row["error"]
    finally:
        srv.close()


def test_url_deadline_refuses_a_pause_that_would_pass_it(server, tmp_path):
    # Retry-After 1 s is within max_retry_after (5 s), but past the URL's overall deadline (0.5 s):
    # no pause, no second request (before the fix: a 1 s pause, then two more requests)
    server.routes["/busy"] = lambda h, n: send(h, 503, b"", "text/plain", {"Retry-After": "1"})
    d, _ = downloader(cfg(retries=2, url_deadline=0.5))
    row = d.run([DownloadItem("a", (server.url("/busy"),))], tmp_path / "j").iloc[0]
    assert row["status"] == "http_503" and server.counts["/busy"] == 1
    assert "url_deadline 0.5s" in row["error"], row["error"]
    assert bool(row["transient"]) is True


def test_url_deadline_is_a_setting_in_both_places():
    import dataclasses
    assert {f.name for f in dataclasses.fields(DownloadSettings)} == set(DownloadConfig.model_fields)
    assert DownloadConfig().url_deadline == DownloadSettings().url_deadline > 0
    from pydantic import ValidationError
    with pytest.raises(ValidationError):
        DownloadConfig(url_deadline=0)


# ---------------------------------------------------------------------------------------------
# item 7: dimension limits from the header, before any decode
# ---------------------------------------------------------------------------------------------
def test_the_load_spy_sees_decodes(loads):
    # the control for the tests below: a decodable image IS seen being loaded
    assert inspect_image(make_image(120, 80, "PNG"), 100, 300).status == st.OK
    assert inspect_image(make_image(120, 80), 100, 300).status == st.OK
    assert [c["format"] for c in loads] == ["PNG", "JPEG"]


def test_png_declaring_9400_square_is_refused_from_its_header(loads):
    data = png_declaring(9400, 9400)  # a real 88 Mpx bitmap (a decode: ~88 MB and most of a second)
    assert len(data) < 300_000
    # FindingEmo's width filter (§2.3.1) already refuses it, before decoding
    c = inspect_image(data, 800, 1600, ImageLimits(max_pixels=40_000_000))
    assert (c.status, c.width, c.height) == (st.TOO_WIDE, 9400, 9400)
    # with the width filter opened up, the pixel limit does
    c = inspect_image(data, 0, 100_000, ImageLimits(max_height=None, max_pixels=40_000_000))
    assert c.status == st.TOO_MANY_PIXELS and "max_pixels 40000000" in c.error
    assert loads == [], "the image was decoded"


def test_tall_strip_png_is_refused_and_each_limit_has_its_status(loads):
    # the 1200 x 74000 PNG the issue found accepted; only 1,000 rows of data: a decode would stop short
    data = png_declaring(1200, 74_000, rows=1000)
    d = DownloadSettings()
    defaults = ImageLimits(max_height=d.max_height, max_pixels=d.max_pixels, max_aspect_ratio=d.max_aspect_ratio)
    assert inspect_image(data, 800, 1600, defaults).status == st.TOO_TALL
    assert inspect_image(data, 800, 1600, ImageLimits(max_pixels=40_000_000)).status == st.TOO_MANY_PIXELS
    c = inspect_image(data, 800, 1600, ImageLimits(max_aspect_ratio=5.0))
    assert c.status == st.EXTREME_ASPECT_RATIO and "61.67" in c.error
    assert loads == []
    # without any of these limits it gets decoded, and the short data shows
    assert inspect_image(data, 800, 1600, ImageLimits()).status == st.TRUNCATED
    assert len(loads) == 1


def test_jpeg_header_limits_use_exif_orientation_without_decoding(loads):
    big = jpeg_declaring(9400, 9400)
    assert inspect_image(big, 800, 1600).status == st.TOO_WIDE
    assert inspect_image(big, 0, 100_000, ImageLimits(max_pixels=40_000_000)).status == st.TOO_MANY_PIXELS
    # 7000 x 1000 stored, Orientation 6 (90 degrees): 1000 wide and 7000 tall once upright
    turned = jpeg_declaring(7000, 1000, exif_orientation=6)
    c = inspect_image(turned, 800, 1600, ImageLimits(max_height=5000))
    assert (c.status, c.width, c.height) == (st.TOO_TALL, 1000, 7000)
    assert loads == []


def test_new_statuses_are_known_and_documented():
    readme = (ROOT / "README.md").read_text()
    para = readme[readme.index("Statuses:"):]
    para = para[:para.index("\n\n")]
    for s in (st.TOO_TALL, st.TOO_MANY_PIXELS, st.EXTREME_ASPECT_RATIO):
        assert s in st.DOWNLOAD_STATUSES and st.is_known_status(s)
    for s in st.DOWNLOAD_STATUSES:
        assert f"`{s}`" in para, f"{s} missing from README's Statuses paragraph"


@pytest.mark.slow
@pytest.mark.parametrize("n_images", [240, 5000])
def test_default_limits_keep_every_ok_image_of_the_demo_corpus(n_images):
    from ops.demo.config import demo_config
    from ops.demo.corpus import _plan

    a = demo_config().acquisition
    d = a.download
    limits = ImageLimits(a.min_width, a.max_width, d.max_height, d.max_pixels, d.max_aspect_ratio)
    oks = [s for s in _plan(n_images, 7) if s.status == st.OK]
    assert oks
    assert [(s.width, s.height) for s in oks if limits.violation(s.width, s.height)] == []


def test_downloader_applies_the_header_limits(server, tmp_path, loads):
    server.routes["/tall.png"] = serve(png_declaring(1200, 74_000, rows=1000), "image/png")
    server.routes["/ok.jpg"] = serve(make_image(1000, 700))
    d, blobs = downloader(cfg(), min_width=800, max_width=1600)
    rows = by_id(d.run([DownloadItem("tall", (server.url("/tall.png"),)),
                        DownloadItem("ok", (server.url("/ok.jpg"),))], tmp_path / "j"))
    assert rows["tall"]["status"] == st.TOO_TALL and pd.isna(rows["tall"]["sha256"])
    assert rows["ok"]["status"] == st.OK and len(blobs) == 1
    assert [c["format"] for c in loads] == ["JPEG"]  # the tall PNG was never decoded


# ---------------------------------------------------------------------------------------------
# item 4: transient failures are retried by later runs, up to max_build_attempts
# ---------------------------------------------------------------------------------------------
def test_transient_failures_are_retried_across_runs_up_to_the_cap(server, tmp_path):
    good = make_image(120, 80)
    server.routes.update({
        "/down": lambda h, n: send(h, 500, b"boom", "text/plain"),                # always 5xx
        "/busy": lambda h, n: send(h, 429, b"", "text/plain"),                    # always 429
        "/flaky": lambda h, n: send(h, 503, b"", "text/plain") if n == 0 else send(h, 200, good),
        "/missing": lambda h, n: send(h, 404, b"", "text/plain"),                 # permanent
        "/html": serve(b"<html>hotlink</html>"),                                   # permanent
        "/ok.jpg": serve(good),
    })
    items = [DownloadItem(k, (server.url(f"/{k}" if k != "ok" else "/ok.jpg"),))
             for k in ("down", "busy", "flaky", "missing", "html", "ok")]
    # the primary is refused (connection_error), the backup answers 404: still transient, the
    # primary may come back
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    items.append(DownloadItem("mixed", (f"http://127.0.0.1:{dead.getsockname()[1]}/x.jpg", server.url("/missing"))))
    journal = tmp_path / "j.jsonl"

    def run():
        d, _ = downloader(cfg(max_build_attempts=3))
        before = dict(server.counts)
        df = d.run(items, journal)
        got = {p: server.counts[p] - before.get(p, 0) for p in server.counts}
        return by_id(df), {p: n for p, n in got.items() if n}, d

    try:
        r1, _, d1 = run()
        assert {k: r["status"] for k, r in r1.items()} == {
            "down": "http_500", "busy": "http_429", "flaky": "http_503", "missing": "http_404",
            "html": st.NOT_AN_IMAGE, "ok": st.OK, "mixed": "http_404"}
        assert {k: r["build_attempts"] for k, r in r1.items()} == dict.fromkeys(r1, 1)
        assert {k for k, r in r1.items() if r["transient"]} == {"down", "busy", "flaky", "mixed"}
        assert retries_due(pd.DataFrame(list(r1.values())), 3) == 4 and d1.retried == 0

        r2, got2, d2 = run()  # the next build: only the transient ones are fetched again
        assert got2 == {"/down": 1, "/busy": 1, "/flaky": 1, "/missing": 1}  # /missing: mixed's backup
        assert d2.retried == 4
        assert (r2["flaky"]["status"], r2["flaky"]["build_attempts"], bool(r2["flaky"]["transient"])) == (st.OK, 2, False)
        assert {k: r["build_attempts"] for k, r in r2.items()} == {
            "down": 2, "busy": 2, "flaky": 2, "missing": 1, "html": 1, "ok": 1, "mixed": 2}

        r3, got3, _ = run()
        assert got3 == {"/down": 1, "/busy": 1, "/missing": 1}
        assert (r3["down"]["build_attempts"], r3["mixed"]["build_attempts"]) == (3, 3)

        r4, got4, d4 = run()  # the cap (3 builds) holds
        assert got4 == {} and d4.retried == 0
        assert {k: r["build_attempts"] for k, r in r4.items()} == {
            "down": 3, "busy": 3, "flaky": 2, "missing": 1, "html": 1, "ok": 1, "mixed": 3}
        assert retries_due(pd.DataFrame(list(r4.values())), 3) == 0
    finally:
        dead.close()


def test_max_build_attempts_1_never_retries_and_old_journal_rows_count_as_one(server, tmp_path):
    server.routes["/down"] = lambda h, n: send(h, 500, b"", "text/plain")
    journal = tmp_path / "j.jsonl"
    item = DownloadItem("a", (server.url("/down"),))
    d, _ = downloader(cfg(max_build_attempts=1))
    assert d.run([item], journal).iloc[0]["build_attempts"] == 1
    assert d.run([item], journal).iloc[0]["build_attempts"] == 1 and server.counts["/down"] == 1
    # a row journaled before build_attempts/transient existed: a timeout tried once
    old = {"candidate_id": "b", "status": "timeout", "url": server.url("/down"), "attempts": 3}
    with open(journal, "a") as fh:
        fh.write(json.dumps(old) + "\n")
    assert retry_due(old, 3) and not retry_due(old, 1)
    row = downloader(cfg(max_build_attempts=3))[0].run([DownloadItem("b", (server.url("/down"),))], journal).iloc[0]
    assert (row["status"], row["build_attempts"]) == ("http_500", 2)


def test_cli_reruns_a_batch_from_downloaded_images_on_while_retries_are_due(tmp_path):
    # the CLI's decision, on a real warehouse partition (the Dagster runs themselves are not started)
    from dagster import AssetKey

    from ops.config import EmoforgeConfig
    from pipelines.cli import _download_retries
    from warehouse.store import Warehouse

    wh = Warehouse(tmp_path / "data")
    settings = EmoforgeConfig()
    part = [AssetKey(n) for n in ("search_results", "candidate_urls", "downloaded_images", "image_hashes")]
    base = {"candidate_id": "c", "status": st.OK, "transient": False, "build_attempts": 1}
    rows = [dict(base, candidate_id="a"), dict(base, candidate_id="b", status="timeout", transient=True)]
    wh.write_table("downloaded_images", pd.DataFrame(rows), partition="q000000-000004", refresh=False)
    assert [k.to_user_string() for k in _download_retries(wh, settings, part, "q000000-000004")] == \
        ["downloaded_images", "image_hashes"]
    rows[1]["build_attempts"] = 3  # the cap reached: the batch is built
    wh.write_table("downloaded_images", pd.DataFrame(rows), partition="q000000-000004", refresh=False)
    assert _download_retries(wh, settings, part, "q000000-000004") == []
    # a partition written before the columns existed: judged by status
    wh.write_table("downloaded_images", pd.DataFrame([{"candidate_id": "x", "status": "http_503"}]),
                   partition="q000004-000008", refresh=False)
    assert len(_download_retries(wh, settings, part, "q000004-000008")) == 2
    assert _download_retries(wh, settings, part[:2], "q000004-000008") == []  # downloads not selected


# ---------------------------------------------------------------------------------------------
# item 18: one decode (DCT-scaled for JPEG) that validates, and the fast pHash from it
# ---------------------------------------------------------------------------------------------
def _full_decode_status(data: bytes) -> str:
    """What the downloader answered before decode-once: a full decode (open + load)."""
    try:
        img = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001
        return st.NOT_AN_IMAGE
    try:
        img.load()
        return st.OK
    except OSError as e:
        return st.TRUNCATED if ("truncated" in str(e) or "broken data stream" in str(e)) else st.NOT_AN_IMAGE
    except Exception:  # noqa: BLE001
        return st.NOT_AN_IMAGE


def _damaged_variants(data: bytes, seed: int) -> dict[str, bytes]:
    sos = data.find(b"\xff\xda")
    assert sos > 0
    out = {f"cut at {f:.0%}": data[:int(len(data) * f)] for f in (0.1, 0.5, 0.9, 0.99)}
    out["no EOI"] = data[:-2]
    out["last 100 bytes missing"] = data[:-100]
    rnd = random.Random(seed)
    for k in range(8):
        b = bytearray(data)
        for _ in range(20):
            b[rnd.randrange(sos + 20, len(data) - 2)] = rnd.randrange(256)
        out[f"20 random bytes #{k}"] = bytes(b)
    out["3 KB of 0xFF in the scan"] = data[:sos + 2000] + b"\xff" * 3000 + data[sos + 5000:]
    out["3 KB of zeros in the scan"] = data[:sos + 2000] + bytes(3000) + data[sos + 5000:]
    out["stray marker in the scan"] = data[:sos + 2000] + b"\xff\xc5\x00\x04\x00\x00" + data[sos + 2000:]
    out["bad Huffman table ids"] = data[:sos + 6] + bytes([data[sos + 6] | 0x33]) + data[sos + 7:]
    return out


@pytest.mark.parametrize("progressive", [False, True])
def test_draft_decode_catches_truncation_and_corruption_like_a_full_decode(progressive, loads):
    img = Image.open(io.BytesIO(noisy_jpeg(11, 1024, 768)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88, progressive=progressive)
    data = buf.getvalue()
    outcomes = {}
    for name, v in _damaged_variants(data, seed=5 if progressive else 3).items():
        loads.clear()
        got = inspect_image(v, 0, 100_000).status
        # the validating decode was DCT-scaled luma (1/4: the short side 768 / 4 >= 128), not a full decode
        assert [(c["scale"], c["mode"]) for c in loads] == [(4, "L")], (name, loads)
        outcomes[name] = (got, _full_decode_status(v))
    assert {n: o for n, o in outcomes.items() if o[0] != o[1]} == {}, "draft and full decode disagree"
    for name, (got, _) in outcomes.items():
        if name.startswith(("cut at", "no EOI", "last 100")):
            assert got == st.TRUNCATED, (name, got)
    caught = [n for n, (got, _) in outcomes.items() if not n.startswith(("cut", "no EOI", "last")) and got != st.OK]
    assert len(caught) >= 3, outcomes  # corruptions libjpeg treats as errors are caught (others it repairs)
    assert inspect_image(data, 0, 100_000).status == st.OK


def _samples() -> dict[str, bytes]:
    def enc(img, fmt, **kw):
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        return b.getvalue()

    photo = Image.open(io.BytesIO(noisy_jpeg(4, 1200, 800))).convert("RGB")
    small = photo.resize((300, 200))
    return {
        "jpeg": noisy_jpeg(1, 1000, 700),
        "jpeg progressive": enc(photo, "JPEG", quality=80, progressive=True),
        "jpeg grayscale": enc(photo.convert("L"), "JPEG", quality=85),
        "jpeg cmyk": enc(small.convert("CMYK"), "JPEG", quality=90),
        "jpeg 4:4:4": enc(photo, "JPEG", quality=90, subsampling=0),
        "jpeg exif-rotated": make_image(700, 900, exif_orientation=6),
        "jpeg small (no scaling)": enc(photo.resize((120, 90)), "JPEG"),
        "png rgba": enc(small.convert("RGBA"), "PNG"),
        "png palette": enc(small.convert("P"), "PNG"),
        "gif": enc(small.convert("P"), "GIF"),
        "webp": enc(small, "WEBP", quality=80),
        "bmp": enc(small, "BMP"),
        "tiff": enc(small, "TIFF"),
    }


def test_download_phash_equals_phash_fast_on_the_same_bytes():
    for name, data in _samples().items():
        c = inspect_image(data, 0, 100_000)
        assert c.status == st.OK, (name, c)
        assert (c.phash, c.phash_mode) == (hashes_to_hex([phash_fast(data)])[0], "fast"), name


@pytest.mark.slow
def test_one_decode_per_image_and_image_hashes_reuses_the_downloaders_phash(server, tmp_path, loads):
    samples = _samples()
    loads.clear()  # (building the samples decoded some)
    for i, data in enumerate(samples.values()):
        server.routes[f"/{i}"] = serve(data, "application/octet-stream")
    items = [DownloadItem(name, (server.url(f"/{i}"),)) for i, name in enumerate(samples)]
    d, blobs = downloader(cfg(max_bytes=5_000_000), min_width=0, max_width=100_000)
    df = d.run(items, tmp_path / "j.jsonl")
    assert list(df.columns) == COLUMNS
    assert set(df["status"]) == {st.OK} and set(df["phash_mode"]) == {"fast"}
    assert len(loads) == len(samples)  # one decode per image
    jpeg_loads = [c for c in loads if c["format"] == "JPEG"]
    # luma only (a CMYK JPEG stays CMYK), DCT-scaled where the short side allows (>= 2 x 128 px):
    # the five 700-1200 px JPEGs at 1/4, the 300x200 CMYK and the 120x90 ones at full scale
    assert sorted(c["mode"] for c in jpeg_loads) == ["CMYK"] + ["L"] * 6
    assert sorted(c["scale"] for c in jpeg_loads) == [1, 1, 4, 4, 4, 4, 4]

    # image_hashes in fast mode: nothing decoded, nothing read from the blob store
    paths = {}
    for sha, data in blobs.items():
        p = tmp_path / "blobs" / sha
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        paths[sha] = p

    def path_of(sha):
        raise AssertionError("a blob was read in fast mode")

    loads.clear()
    res = hash_batch(df, path_of, mode="fast", agreement_sample=0)
    assert (res.computed, res.from_downloads, res.reused) == (0, len(samples), len(samples)) and loads == []
    got = dict(zip(res.table["sha256"], res.table["phash"]))
    assert got == {sha: hashes_to_hex([phash_fast(data)])[0] for sha, data in blobs.items()}
    # exact mode is still computed from the blobs
    ex = hash_batch(df, paths.__getitem__, mode="exact", agreement_sample=0)
    assert ex.computed == len(samples) and ex.from_downloads == 0
    # rows from before the columns existed: computed from the blobs as before
    old = df.drop(columns=["phash", "phash_mode"])
    assert hash_batch(old, paths.__getitem__, mode="fast", agreement_sample=0).computed == len(samples)
    assert np.all(res.table["hash_error"].isna())
