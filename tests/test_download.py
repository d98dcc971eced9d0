"""The downloader (ops.acquisition.download) and its address guard (ops.acquisition.netguard), against a real local server.

Every server here listens on 127.0.0.1 only. An autouse fixture wraps ``socket.socket.connect``
and fails the test on any connection to an address that is not loopback, so a guard that let a
blocked address through would be caught before a packet left the machine.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pandas as pd
import pytest
from PIL import Image

from helpers import (
    HANG_TIMEOUT, LocalServer, call_with_hang_guard, make_image, redirect, refused_port, send, send_chunked,
    serve, threads_started_during, wait_event, wait_for,
)
from ops.acquisition import download as download_module
from ops.acquisition import statuses as st
from ops.config import DownloadConfig
from ops.acquisition.download import COLUMNS, DownloadItem, Downloader, inspect_image, parse_retry_after
from ops.acquisition.netguard import AllowList, BlockedAddressError, address_block_reason, check_address, guard_host


# ---------------------------------------------------------------------------------------------
# safety net: loopback only
# ---------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    bad: list = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            ip = ipaddress.ip_address(str(address[0]).split("%")[0])
            if not ip.is_loopback:
                bad.append(address)
                raise AssertionError(f"test tried to connect to non-loopback {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield bad
    assert not bad, f"connections attempted to {bad}"


@pytest.fixture
def server(local_server):
    """The scriptable server of helpers.LocalServer on 127.0.0.1 (bound to port 0)."""
    return local_server


def png_bomb(w=20000, h=20000):
    """A real decompression bomb: a 1-bit 20000x20000 PNG (400 Mpixel) of a few tens of KB."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    row = b"\x00" * (1 + (w + 7) // 8)
    co = zlib.compressobj(9)
    idat = b"".join(co.compress(row * 1000) for _ in range(h // 1000)) + co.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def cfg(**kw):
    base = dict(concurrency=4, per_host=4, connect_timeout=0.5, read_timeout=0.3, retries=2,
                backoff_base=0.01, backoff_max=0.05, max_retry_after=2.0, max_redirects=3,
                max_bytes=200_000, allow_hosts=["127.0.0.1"])
    base.update(kw)
    return DownloadConfig(**base)


class Blobs(dict):
    def put(self, data: bytes) -> str:
        import hashlib
        sha = hashlib.sha256(data).hexdigest()
        self[sha] = data
        return sha


def downloader(c=None, min_width=100, max_width=300, blobs=None):
    blobs = blobs if blobs is not None else Blobs()
    return Downloader(c or cfg(), min_width=min_width, max_width=max_width, put_blob=blobs.put), blobs


def by_id(df):
    return {r["candidate_id"]: r for r in df.to_dict("records")}


# ---------------------------------------------------------------------------------------------
# netguard: literal IPs, no DNS
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ip", [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1",
    "169.254.169.254", "224.0.0.1", "239.255.255.250", "0.0.0.0", "100.64.0.1", "240.0.0.1",
    "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "2002:7f00:1::1",  # 6to4 around 127.0.0.1
])
def test_netguard_blocks_non_global(ip):
    assert address_block_reason(ip) is not None
    with pytest.raises(BlockedAddressError):
        check_address(ip, AllowList.parse([]))
    with pytest.raises(BlockedAddressError):
        guard_host(ip, 80, AllowList.parse([]))  # getaddrinfo on a literal: no DNS, no connect


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_netguard_allows_public(ip):
    # only classified, never connected to
    assert address_block_reason(ip) is None
    check_address(ip, AllowList.parse([]))


def test_netguard_allowlist_cidr_ip_and_name():
    allow = AllowList.parse(["127.0.0.0/8", "10.1.2.3", "LocalHost.", "fd00::/8"])
    check_address("127.0.0.1", allow)
    check_address("127.200.0.9", allow)
    check_address("::ffff:127.0.0.1", allow)  # IPv4-mapped form of an allowed address
    check_address("10.1.2.3", allow)
    check_address("fd12::1", allow)
    for ip in ("10.1.2.4", "192.168.0.1", "::1", "169.254.169.254"):
        with pytest.raises(BlockedAddressError):
            check_address(ip, allow)
    assert allow.allows_name("localhost") and not allow.allows_name("example.com")
    assert [str(a) for a in guard_host("127.0.0.1", 80, allow)] == ["127.0.0.1"]


def test_parse_retry_after():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 0 ") == 0.0
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_inspect_image_width_limits_are_exclusive():
    # FindingEmo §2.3.1: ok only if min_width < w < max_width
    assert inspect_image(make_image(101, 10), 100, 300).status == st.OK
    assert inspect_image(make_image(100, 10), 100, 300).status == st.TOO_SMALL
    assert inspect_image(make_image(299, 10), 100, 300).status == st.OK
    assert inspect_image(make_image(300, 10), 100, 300).status == st.TOO_WIDE


# ---------------------------------------------------------------------------------------------
# the downloader against the local server
# ---------------------------------------------------------------------------------------------
def test_ok_jpeg_and_png(server, tmp_path):
    jpg, png = make_image(120, 80), make_image(150, 60, "PNG")
    server.routes["/a.jpg"] = serve(jpg)
    server.routes["/b.png"] = serve(png, "application/octet-stream")  # Content-Type is not trusted
    d, blobs = downloader()
    df = d.run([DownloadItem("a", (server.url("/a.jpg"),)), DownloadItem("b", [server.url("/b.png")])],
               tmp_path / "j.jsonl")
    assert list(df.columns) == COLUMNS
    assert list(df["candidate_id"]) == ["a", "b"]
    a, b = by_id(df)["a"], by_id(df)["b"]
    assert (a["status"], a["width"], a["height"], a["image_format"]) == (st.OK, 120, 80, "JPEG")
    assert (b["status"], b["width"], b["height"], b["image_format"]) == (st.OK, 150, 60, "PNG")
    assert blobs[a["sha256"]] == jpg and blobs[b["sha256"]] == png
    assert a["bytes"] == len(jpg) and a["http_status"] == 200 and a["attempts"] == 1
    assert a["url_index"] == 0 and a["final_url"] == a["url"] == server.url("/a.jpg")
    assert str(df["downloaded_at"].dtype).startswith("datetime64") and df["downloaded_at"].dt.tz is not None


def test_exif_orientation_measured_after_transpose(server, tmp_path):
    server.routes["/rot.jpg"] = serve(make_image(700, 900, exif_orientation=6))
    server.routes["/plain.jpg"] = serve(make_image(700, 900))
    d, _ = downloader(min_width=800, max_width=1600)
    rows = by_id(d.run([DownloadItem("rot", (server.url("/rot.jpg"),)),
                        DownloadItem("plain", (server.url("/plain.jpg"),))], tmp_path / "j.jsonl"))
    assert (rows["rot"]["status"], rows["rot"]["width"], rows["rot"]["height"]) == (st.OK, 900, 700)
    assert (rows["plain"]["status"], rows["plain"]["width"]) == (st.TOO_SMALL, 700)


@pytest.mark.slow
def test_every_failure_status(server, tmp_path):
    good = make_image(120, 80)
    trunc = make_image(200, 150, noise=True)
    big = make_image(250, 250, "BMP")  # 187 KB: above max_bytes 100_000 below
    server.routes.update({
        "/missing": lambda h, n: send(h, 404, b"nope", "text/html"),
        "/err500": lambda h, n: send(h, 500, b"boom", "text/plain"),
        "/html": serve(b"<html><body>not an image</body></html>", "image/jpeg"),
        "/trunc.jpg": serve(trunc[: len(trunc) * 6 // 10]),
        "/small.jpg": serve(make_image(100, 50)),
        "/wide.jpg": serve(make_image(300, 50)),
        "/large-cl": serve(big, "image/bmp"),
        "/large-chunked": lambda h, n: send_chunked(h, big, "image/bmp", 8192),
        "/bomb.png": serve(png_bomb(), "image/png"),
        "/r1": redirect("/r2", 301),
        "/r2": redirect(server.url("/r3"), 307),
        "/r3": serve(good),
        "/to-private": redirect("http://10.0.0.1/x"),
        "/to-ftp": redirect("ftp://example.com/x.jpg"),
        "/loop-a": redirect("/loop-b"),
        "/loop-b": redirect("/loop-a"),
        "/good.jpg": serve(good),
        "/sleepy": lambda h, n: (time.sleep(1.0), send(h, 200, good)),
    })
    items = {
        "missing": "/missing", "err500": "/err500", "html": "/html", "trunc": "/trunc.jpg",
        "small": "/small.jpg", "wide": "/wide.jpg", "large-cl": "/large-cl",
        "large-chunked": "/large-chunked", "bomb": "/bomb.png", "redirects": "/r1",
        "to-private": "/to-private", "to-ftp": "/to-ftp", "loop": "/loop-a", "sleepy": "/sleepy",
    }
    dl = [DownloadItem(k, (server.url(p),)) for k, p in items.items()]
    dl.append(DownloadItem("backup", (server.url("/missing"), server.url("/good.jpg"))))
    d, blobs = downloader(cfg(concurrency=8, per_host=8, max_bytes=100_000))
    df = d.run(dl, tmp_path / "j.jsonl")
    assert list(df["candidate_id"]) == [it.candidate_id for it in dl]
    rows = by_id(df)
    status = {k: r["status"] for k, r in rows.items()}
    assert status == {
        "missing": "http_404", "err500": "http_500", "html": st.NOT_AN_IMAGE, "trunc": st.TRUNCATED,
        "small": st.TOO_SMALL, "wide": st.TOO_WIDE, "large-cl": st.TOO_LARGE,
        "large-chunked": st.TOO_LARGE, "bomb": st.DECOMPRESSION_BOMB, "redirects": st.OK,
        "to-private": st.BLOCKED_ADDRESS, "to-ftp": st.BLOCKED_SCHEME, "loop": st.TOO_MANY_REDIRECTS,
        "sleepy": st.TIMEOUT, "backup": st.OK,
    }
    assert all(st.is_known_status(s) for s in status.values())
    # 4xx is final, 5xx retried (retries=2: three attempts), timeouts retried too
    assert rows["missing"]["attempts"] == 1 and server.counts["/missing"] >= 1
    assert rows["err500"]["attempts"] == 3 and server.counts["/err500"] == 3
    assert rows["sleepy"]["attempts"] == 3 and pd.isna(rows["sleepy"]["http_status"])
    # sizes: refused early on Content-Length, counted on a chunked body
    assert pd.isna(rows["large-cl"]["bytes"]) and "Content-Length" in rows["large-cl"]["error"]
    assert rows["large-chunked"]["bytes"] > 100_000
    # redirects: final_url after the chain, each hop one attempt
    r = rows["redirects"]
    assert r["final_url"] == server.url("/r3") and r["attempts"] == 3 and r["url"] == server.url("/r1")
    assert rows["to-private"]["final_url"] == "http://10.0.0.1/x"
    assert rows["loop"]["attempts"] == 4  # max_redirects=3: the 4th redirect is refused
    # backups: the first URL's 404 is kept in error, the second URL is recorded
    b = rows["backup"]
    assert b["url_index"] == 1 and b["url"] == server.url("/good.jpg") and "http_404" in b["error"]
    assert b["attempts"] == 2
    # only ok images are stored; non-ok rows have no sha256
    ok_shas = {rows[k]["sha256"] for k in ("redirects", "backup")}
    assert set(blobs) == ok_shas
    assert all(pd.isna(r["sha256"]) for k, r in rows.items() if r["status"] != st.OK)
    assert rows["wide"]["width"] == 300 and rows["small"]["width"] == 100


def test_all_urls_fail_records_last_and_lists_all(server, tmp_path):
    server.routes["/gone"] = lambda h, n: send(h, 410, b"", "text/plain")
    d, _ = downloader()
    row = d.run([DownloadItem("x", (server.url("/nope"), server.url("/gone")))], tmp_path / "j").iloc[0]
    assert row["status"] == "http_410" and row["url_index"] == 1 and row["url"] == server.url("/gone")
    assert "[0]" in row["error"] and "http_404" in row["error"] and "[1]" in row["error"]


def test_pil_warning_level_bomb_is_refused(server, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 120x100 = 12,000: PIL only warns
    server.routes["/a.jpg"] = serve(make_image(120, 100))
    d, blobs = downloader()
    with pytest.warns(Image.DecompressionBombWarning):
        row = d.run([DownloadItem("a", (server.url("/a.jpg"),))], tmp_path / "j").iloc[0]
    assert row["status"] == st.DECOMPRESSION_BOMB and not blobs


@pytest.mark.slow
def test_429_retry_after_then_ok(server, tmp_path):
    good = make_image(120, 80)
    server.routes["/busy"] = lambda h, n: (send(h, 429, b"", "text/plain", {"Retry-After": "1"}) if n == 0
                                           else send(h, 200, good))
    d, _ = downloader()
    t0 = time.monotonic()
    row = d.run([DownloadItem("a", (server.url("/busy"),))], tmp_path / "j").iloc[0]
    waited = time.monotonic() - t0
    assert row["status"] == st.OK and row["attempts"] == 2
    assert waited >= 0.95
    times = [t for t, p in server.log if p == "/busy"]
    assert times[1] - times[0] >= 0.95


def test_retry_after_beyond_cap_gives_up(server, tmp_path):
    server.routes["/busy"] = lambda h, n: send(h, 429, b"", "text/plain", {"Retry-After": "120"})
    server.routes["/down"] = lambda h, n: send(h, 503, b"", "text/plain", {"Retry-After": "3600"})
    # The cap (60 s, the default) and both Retry-After values exceed the hang guard (30 s): a
    # downloader that honoured either header, or slept up to the cap before giving up, would not
    # return before the guard; one that gives up at once returns (an Event, not a stopwatch).
    assert 120 > 60 > HANG_TIMEOUT
    d, _ = downloader(cfg(max_retry_after=60.0))
    rows = by_id(call_with_hang_guard(
        lambda: d.run([DownloadItem("a", (server.url("/busy"),)), DownloadItem("b", (server.url("/down"),))],
                      tmp_path / "j"),
        what="a run whose only answers ask to retry after 120 s and 3600 s"))
    assert server.counts["/busy"] == 1 and server.counts["/down"] == 1
    assert rows["a"]["status"] == "http_429" and rows["a"]["attempts"] == 1
    assert rows["b"]["status"] == "http_503" and "max_retry_after" in rows["b"]["error"]


@pytest.mark.slow
def test_429_pauses_the_whole_host(server, tmp_path, monkeypatch):
    good = make_image(120, 80)
    # Observe the host pause as it is set (the downloader has no public hook for it yet: this wraps
    # its private per-host gate). The /slow worker's slot is freed only once the other worker's 429
    # has paused the host; without a host-wide pause its next request (/later) would follow at once.
    paused = threading.Event()
    real_pause_until = download_module._HostGate.pause_until

    def observed_pause_until(self, t):
        real_pause_until(self, t)
        paused.set()

    monkeypatch.setattr(download_module._HostGate, "pause_until", observed_pause_until)

    def busy(h, n):
        if n == 0:
            send(h, 429, b"", "text/plain", {"Retry-After": "1"})
        else:
            send(h, 200, good)

    def slow(h, n):
        wait_event(paused, message="the 429 did not pause the host")
        send(h, 200, good)

    server.routes["/busy"] = busy
    server.routes["/slow"] = slow
    server.routes["/later"] = serve(good)
    d, _ = downloader(cfg(concurrency=2, per_host=2, read_timeout=5.0))  # /slow is slow, not stalled
    items = [DownloadItem("busy", (server.url("/busy"),)), DownloadItem("slow", (server.url("/slow"),)),
             DownloadItem("later", (server.url("/later"),))]
    df = d.run(items, tmp_path / "j")
    assert set(df["status"]) == {st.OK}
    t429 = next(t for t, p in server.log if p == "/busy")
    tlater = next(t for t, p in server.log if p == "/later")
    assert tlater - t429 >= 0.9  # the other worker waited for the host's Retry-After too


def test_loopback_blocked_unless_allowed(server, tmp_path):
    server.routes["/a.jpg"] = serve(make_image(120, 80))
    d, _ = downloader(cfg(allow_hosts=[]))
    rows = by_id(d.run([DownloadItem("ip", (server.url("/a.jpg"),)),
                        DownloadItem("name", (f"http://localhost:{server.port}/a.jpg",))], tmp_path / "j"))
    assert rows["ip"]["status"] == st.BLOCKED_ADDRESS and rows["name"]["status"] == st.BLOCKED_ADDRESS
    assert rows["ip"]["attempts"] == 0
    assert server.log == []  # refused before any connection
    # the CIDR form allows it
    d2, _ = downloader(cfg(allow_hosts=["127.0.0.0/8"]))
    assert d2.run([DownloadItem("ip", (server.url("/a.jpg"),))], tmp_path / "j2").iloc[0]["status"] == st.OK


def test_connection_refused_is_connection_error(tmp_path):
    s, port = refused_port()  # bound, not listening: refused, and no one else can take the port
    d, _ = downloader(cfg(retries=1))
    try:
        row = d.run([DownloadItem("a", (f"http://127.0.0.1:{port}/x.jpg",))], tmp_path / "j").iloc[0]
    finally:
        s.close()
    assert row["status"] == st.CONNECTION_ERROR and row["attempts"] == 2


@pytest.mark.slow
def test_trickling_server_hits_the_total_deadline(server, tmp_path):
    # Each handler trickles one byte every 0.05 s (each read well within read_timeout 0.3 s) for up
    # to 20 s and records how many bytes it got out before the client hung up. Pacing makes the
    # count a clock that load can only slow down: 60 bytes take at least 3 s, against a total
    # deadline of 0.2 + 3 x 0.3 = 1.1 s. A client without the deadline would take all 400.
    n_bytes, bound = 400, 60
    sent: dict[str, int] = {}
    hung_up = {"/body": threading.Event(), "/headers": threading.Event()}

    def trickle(h, path, first: bytes, byte: bytes):
        h.close_connection = True
        sent[path] = 0
        try:
            h.wfile.write(first)
            h.wfile.flush()
            for _ in range(n_bytes):
                h.wfile.write(byte)
                h.wfile.flush()
                sent[path] += 1
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            hung_up[path].set()

    server.routes["/body"] = lambda h, n: trickle(
        h, "/body", b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"x")
    server.routes["/headers"] = lambda h, n: trickle(h, "/headers", b"HTTP/1.1 200 OK\r\n", b"X")
    d, _ = downloader(cfg(retries=0, connect_timeout=0.2, read_timeout=0.3))  # deadline 0.2 + 0.9 s
    rows = by_id(d.run([DownloadItem("body", (server.url("/body"),)),
                        DownloadItem("headers", (server.url("/headers"),))], tmp_path / "j"))
    assert rows["body"]["status"] == st.TIMEOUT and rows["headers"]["status"] == st.TIMEOUT
    assert "deadline" in rows["body"]["error"]
    for path, ev in hung_up.items():  # the client hung up before 60 paced bytes (>= 3 s) were out
        wait_event(ev, message=f"{path}: the client never hung up")
        assert sent[path] < bound, (path, sent[path])


@pytest.mark.slow
def test_per_host_limit(server, tmp_path):
    good = make_image(120, 80)

    # counted here, not by the server's own counter: that one drops a request only after its
    # response is written, by which time the client may already have sent the next one; this one
    # drops it before the response leaves, so an overlap it sees is a real third connection
    busy = {"now": 0, "max": 0}
    cond = threading.Condition()

    def slow_host(h, n):
        with cond:
            busy["now"] += 1
            busy["max"] = max(busy["max"], busy["now"])
            cond.notify_all()
            # the first request is held until a second one is in flight (the limit is reached for
            # sure), then every request takes 0.15 s: a third one at once would show in busy["max"]
            cond.wait_for(lambda: busy["max"] >= 2, timeout=30)
        time.sleep(0.15)
        with cond:
            busy["now"] -= 1
        send(h, 200, good)

    for i in range(8):
        server.routes[f"/{i}.jpg"] = slow_host
    d, _ = downloader(cfg(concurrency=8, per_host=2))
    df = d.run([DownloadItem(str(i), (server.url(f"/{i}.jpg"),)) for i in range(8)], tmp_path / "j")
    assert set(df["status"]) == {st.OK}
    assert busy["max"] == 2


def _journal_ids(path):
    return [json.loads(line)["candidate_id"] for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_resume_after_interrupt(server, tmp_path):
    n = 16
    imgs = [make_image(110 + i, 60) for i in range(n)]
    release = threading.Event()  # items from 8 on are held until run 1 has been interrupted

    def route(i):
        def handler(h, k):
            if i >= 8:
                wait_event(release)
            time.sleep(0.03)
            send(h, 200, imgs[i])
        return handler

    for i in range(n):
        server.routes[f"/{i}.jpg"] = route(i)
    items = [DownloadItem(f"c{i}", (server.url(f"/{i}.jpg"),)) for i in range(n)]
    journal = tmp_path / "state" / "download.jsonl"
    seen = []

    def stop_after_5(done, total, status):
        seen.append((done, total, status))
        if done == 5:
            raise KeyboardInterrupt

    d, blobs = downloader(cfg(concurrency=2, per_host=2))
    threads_before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        d.run(items, journal, progress=stop_after_5)
    first = _journal_ids(journal)
    assert 5 <= len(first) < n and len(set(first)) == len(first)
    assert seen[-1][:2] == (5, n)
    # let run 1's in-flight requests end (their results are dropped): its threads have all exited
    run1_threads = threads_started_during(threads_before)
    release.set()
    wait_for(lambda: not any(t.is_alive() for t in run1_threads), message="run 1's threads did not exit")
    server.wait_until(lambda s: s.inflight == 0)
    before = Counter(server.counts)

    calls = []
    df = d.run(items, journal, progress=lambda done, total, s: calls.append(done))
    assert list(df["candidate_id"]) == [it.candidate_id for it in items]
    assert df["candidate_id"].is_unique and len(df) == n and set(df["status"]) == {st.OK}
    for cid in first:  # journaled in run 1: not fetched again
        i = int(cid[1:])
        assert server.counts[f"/{i}.jpg"] == before[f"/{i}.jpg"] == 1
    assert calls[0] == len(first) + 1 and calls[-1] == n
    assert sorted(_journal_ids(journal)) == sorted(it.candidate_id for it in items)
    # a third run downloads nothing
    total_before = sum(server.counts.values())
    df3 = d.run(items, journal)
    assert sum(server.counts.values()) == total_before
    assert df3.drop(columns=["downloaded_at"]).equals(df.drop(columns=["downloaded_at"]))


_CHILD = """
import json, sys
from pathlib import Path
from ops.config import DownloadConfig
from ops.acquisition.download import DownloadItem, Downloader
urls, journal = json.loads(sys.argv[1]), Path(sys.argv[2])
cfg = DownloadConfig(concurrency=2, per_host=2, allow_hosts=["127.0.0.1"], retries=0)
d = Downloader(cfg, min_width=100, max_width=300, put_blob=lambda b: "x")
d.run([DownloadItem(f"c{i}", (u,)) for i, u in enumerate(urls)], journal)
"""


@pytest.mark.slow
def test_resume_after_kill(server, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    n = 30
    good = make_image(120, 80)
    release = threading.Event()  # items from 8 on are held until the child has been killed

    def route(i):
        def handler(h, k):
            if i >= 8:
                wait_event(release)
            time.sleep(0.05)
            send(h, 200, good)
        return handler

    for i in range(n):
        server.routes[f"/{i}.jpg"] = route(i)
    urls = [server.url(f"/{i}.jpg") for i in range(n)]
    journal = tmp_path / "j.jsonl"
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(urls), str(journal)], cwd=root,
                             env=dict(os.environ, PYTHONPATH=str(root)))
    try:
        wait_for(lambda: child.poll() is not None
                 or (journal.exists() and journal.read_text().count("\n") >= 6),
                 message="the child journaled fewer than 6 items")
        assert child.poll() is None, "the child finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=HANG_TIMEOUT)
        release.set()
    first = _journal_ids(journal)
    assert 6 <= len(first) < n
    server.wait_until(lambda s: s.inflight == 0)  # the killed child's last requests have ended
    d, _ = downloader()
    df = d.run([DownloadItem(f"c{i}", (u,)) for i, u in enumerate(urls)], journal)
    assert df["candidate_id"].is_unique and len(df) == n and set(df["status"]) == {st.OK}
    for cid in first:
        assert server.counts[f"/{cid[1:]}.jpg"] == 1
    lost = sum(server.counts[f"/{i}.jpg"] - 1 for i in range(n))
    assert lost <= 4  # only in-flight items (2 workers, plus rows not yet journaled) were fetched twice


def test_half_written_journal_line_is_ignored(server, tmp_path):
    good = make_image(120, 80)
    for p in ("/a.jpg", "/b.jpg", "/c.jpg"):
        server.routes[p] = serve(good)
    items = [DownloadItem(x, (server.url(f"/{x}.jpg"),)) for x in "abc"]
    journal = tmp_path / "j.jsonl"
    d, _ = downloader()
    d.run(items[:2], journal)
    full = journal.read_bytes()
    # simulate a crash mid-write of a third line
    journal.write_bytes(full + b'{"candidate_id": "c", "status": "o')
    df = d.run(items, journal)
    assert list(df["candidate_id"]) == ["a", "b", "c"] and set(df["status"]) == {st.OK}
    assert server.counts["/a.jpg"] == 1 and server.counts["/b.jpg"] == 1 and server.counts["/c.jpg"] == 1
    lines = journal.read_text().splitlines()
    ids = [json.loads(x)["candidate_id"] for x in lines]  # every line parses: the torn tail was cut
    assert sorted(ids[:2]) == ["a", "b"] and ids[2] == "c"


def test_duplicate_candidate_ids_are_refused(tmp_path):
    d, _ = downloader()
    with pytest.raises(ValueError, match="duplicate"):
        d.run([DownloadItem("a", ("http://127.0.0.1:9/x",)), DownloadItem("a", ("http://127.0.0.1:9/y",))],
              tmp_path / "j")
    with pytest.raises(ValueError):
        DownloadItem("a", ())


# ---------------------------------------------------------------------------------------------
# DNS rebinding: the connection goes to the address that was checked
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def rebinding_dns(monkeypatch):
    """A fake resolver: 'pinned.test' is 127.0.0.1 the first time, 10.0.0.1 afterwards.

    IP literals go to the real getaddrinfo (no DNS); any other name fails without a query.
    """
    real = socket.getaddrinfo
    calls: list = []

    def fake(host, port, *a, **kw):
        try:
            ipaddress.ip_address(str(host))
            return real(host, port, *a, **kw)
        except ValueError:
            pass
        calls.append(host)
        if host in ("pinned.test", "xn--bcher-kva.test"):
            ip = "127.0.0.1" if calls.count(host) == 1 else "10.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        raise socket.gaierror(socket.EAI_NONAME, "fake resolver: unknown name")

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return calls


def test_connection_is_pinned_to_the_checked_address(server, tmp_path, rebinding_dns):
    server.routes["/a.jpg"] = serve(make_image(120, 80))
    d, _ = downloader()
    row = d.run([DownloadItem("a", (f"http://pinned.test:{server.port}/a.jpg",))], tmp_path / "j").iloc[0]
    assert row["status"] == st.OK
    assert rebinding_dns == ["pinned.test"]  # resolved once, by the guard; urllib3 never re-resolved
    assert server.hosts == [f"pinned.test:{server.port}"]
    # the second resolution (the "rebound" answer) is refused by the guard
    row = d.run([DownloadItem("b", (f"http://pinned.test:{server.port}/a.jpg",))], tmp_path / "j").iloc[0]
    assert row["status"] == st.BLOCKED_ADDRESS and "10.0.0.1" in row["error"]


def test_idna_host_is_pinned(server, tmp_path, rebinding_dns):
    server.routes["/a.jpg"] = serve(make_image(120, 80))
    d, _ = downloader()
    row = d.run([DownloadItem("a", (f"http://bücher.test:{server.port}/a.jpg",))], tmp_path / "j").iloc[0]
    assert row["status"] == st.OK, row["error"]
    assert rebinding_dns == ["xn--bcher-kva.test"] and server.hosts == [f"xn--bcher-kva.test:{server.port}"]


def test_ipv6_loopback(tmp_path):
    try:
        s = LocalServer("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        s.routes["/a.jpg"] = serve(make_image(120, 80))
        url = f"http://[::1]:{s.port}/a.jpg"
        d, _ = downloader(cfg(allow_hosts=["::1"]))
        assert d.run([DownloadItem("a", (url,))], tmp_path / "j").iloc[0]["status"] == st.OK
        d2, _ = downloader(cfg(allow_hosts=["127.0.0.1"]))
        assert d2.run([DownloadItem("a", (url,))], tmp_path / "j2").iloc[0]["status"] == st.BLOCKED_ADDRESS
        assert s.hosts == [f"[::1]:{s.port}"]
    finally:
        s.close()


def test_https_is_pinned_with_sni_and_certificate_check(server, tmp_path, rebinding_dns):
    crypto = pytest.importorskip("cryptography")  # noqa: F841
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pinned.test")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("pinned.test")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    server.wrap_tls(str(certfile), str(keyfile))
    server.routes["/a.jpg"] = serve(make_image(120, 80))

    import requests

    def session_factory():
        s = requests.Session()
        s.verify = str(certfile)  # trust only the test certificate
        return s

    d = Downloader(cfg(retries=0), min_width=100, max_width=300, put_blob=Blobs().put,
                   session_factory=session_factory)
    row = d.run([DownloadItem("a", (f"https://pinned.test:{server.port}/a.jpg",))], tmp_path / "j").iloc[0]
    assert row["status"] == st.OK, row["error"]
    assert rebinding_dns == ["pinned.test"] and server.hosts == [f"pinned.test:{server.port}"]


def test_rerun_downloads_again_only_blobs_lost_after_the_journal(server, tmp_path):
    """With a blob store that does not fsync each file, a power cut can lose blobs the journal
    already calls ok; a rerun checks each journaled blob's size and fetches just those again."""
    from warehouse.store import BlobStore

    imgs = [make_image(120 + i, 60) for i in range(4)]
    for i in range(4):
        server.routes[f"/lost{i}.jpg"] = (lambda b: lambda h, k: send(h, 200, b))(imgs[i])
    store = BlobStore(tmp_path / "blobs")
    d = Downloader(cfg(), min_width=100, max_width=300, put_blob=lambda b: store.put(b, durable=False),
                   is_stored=store.has_complete)
    items = [DownloadItem(f"l{i}", (server.url(f"/lost{i}.jpg"),)) for i in range(4)]
    journal = tmp_path / "j.jsonl"
    first = d.run(items, journal)
    assert set(first["status"]) == {st.OK}
    gone = first.loc[first["candidate_id"] == "l1", "sha256"].iloc[0]
    cut = first.loc[first["candidate_id"] == "l2", "sha256"].iloc[0]
    store.path(gone).unlink()
    store.path(cut).write_bytes(b"")  # a zero-length file, as a power cut can leave
    before = Counter(server.counts)
    again = d.run(items, journal)
    fetched = {p: server.counts[p] - before[p] for p in (f"/lost{i}.jpg" for i in range(4))}
    assert fetched == {"/lost0.jpg": 0, "/lost1.jpg": 1, "/lost2.jpg": 1, "/lost3.jpg": 0}
    assert set(again["status"]) == {st.OK} and len(again) == 4 and again["candidate_id"].is_unique
    assert store.has_complete(gone, len(imgs[1])) and store.has_complete(cut, len(imgs[2]))
