"""Candidate filtering before any download (FindingEmo §2.3.1).

Search hits become candidates; a candidate is dropped here, with its reason, when its URL is not a
valid http(s) URL, when its host is on the domain blacklist (stock-photo providers, matched on the
registered domain and all its subdomains), when the search metadata already says its width is
outside the limits (800 < w < 1600 in FindingEmo's first phase), or when its normalized URL was
already a candidate (earlier rank, query or batch). The others are ``pending`` for the downloader.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pandas as pd

from ops.acquisition import statuses as S

PENDING = "pending"
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = "/?%:@!$&'()*+,;=-._~"


@lru_cache(maxsize=1)
def _extractor():
    import tldextract

    # offline: use the public-suffix snapshot bundled with tldextract, never fetch the list
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def registered_domain(host: str) -> str:
    """``a.b.example.co.uk`` -> ``example.co.uk`` (public-suffix aware); IPs are returned as is."""
    ext = _extractor()(host)
    rd = ext.top_domain_under_public_suffix if hasattr(ext, "top_domain_under_public_suffix") else ext.registered_domain
    return rd or host


def normalize_url(url: str) -> str | None:
    """Canonical form for de-duplication, or None if not an absolute http(s) URL with a host.

    Lower-cases scheme and host, drops default ports, the fragment and user info, normalizes
    percent-encoding of the path and query (decoding unreserved characters), keeps query order.
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    path = quote(unquote(parts.path or "/"), safe=_SAFE_PATH)
    query = quote(unquote(parts.query), safe=_SAFE_QUERY) if parts.query else ""
    return urlunsplit((scheme, host, path, query, ""))


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().rstrip(".")


def blacklist_match(host: str, blacklist: Iterable[str]) -> str | None:
    """The blacklist entry that ``host`` falls under (entry itself or any subdomain), else None."""
    host = host.lower().rstrip(".")
    rd = registered_domain(host)
    for entry in blacklist:
        e = entry.lower().strip().lstrip(".")
        if not e:
            continue
        if host == e or host.endswith("." + e) or rd == e:
            return entry
    return None


def candidate_id(provider: str, key: str) -> str:
    """Stable id of a candidate: provider plus (query id and rank) or the URL-list item id."""
    return hashlib.sha1(f"{provider}\x1f{key}".encode()).hexdigest()[:20]


def filter_candidates(hits: pd.DataFrame, *, blacklist: list[str], min_width: int, max_width: int,
                      seen_urls: set[str] | None = None) -> pd.DataFrame:
    """Assign every hit exactly one status: pending, or the reason it was dropped.

    ``seen_urls`` are normalized URLs that earlier batches already made candidates; a hit repeating
    one (or an earlier hit of this batch) is ``duplicate_url``. Width limits are exclusive, as in
    FindingEmo §2.3.1 (min_width < w < max_width), and apply here only when the provider reported
    a width; the downloader applies them again to the decoded image.
    """
    seen = set(seen_urls or ())
    rows = []
    for h in hits.itertuples(index=False):
        key = h.item_id if isinstance(h.item_id, str) and h.item_id else f"{h.query_id}#{h.rank}"
        cid = candidate_id(h.provider, key)
        norm = normalize_url(h.image_url)
        backups = [b for b in (normalize_url(u) for u in (h.backup_urls if h.backup_urls is not None else [])) if b]
        status, reason = PENDING, None
        if norm is None:
            status, reason = S.INVALID_URL, f"not an absolute http(s) URL: {h.image_url!r}"
        else:
            hit = blacklist_match(_host(norm), blacklist)
            if hit:
                status, reason = S.BLACKLISTED, f"host {_host(norm)} is under blacklisted domain {hit}"
            elif pd.notna(h.reported_width) and not (min_width < int(h.reported_width) < max_width):
                status = S.WIDTH_OUT_OF_RANGE
                reason = f"reported width {int(h.reported_width)} not in ({min_width}, {max_width})"
            elif norm in seen:
                status, reason = S.DUPLICATE_URL, "URL already a candidate (earlier hit or batch)"
        if norm is not None and status != S.INVALID_URL:
            seen.add(norm)
        # backups on a blacklisted domain are never tried either
        backups = [b for b in backups if not blacklist_match(_host(b), blacklist)]
        rows.append({
            "candidate_id": cid, "query_id": h.query_id, "query": h.query, "rank": h.rank,
            "provider": h.provider, "item_id": h.item_id, "url": h.image_url, "normalized_url": norm,
            "backup_urls": backups, "host": _host(norm) if norm else None,
            "source_page": h.source_page, "title": h.title,
            "reported_width": h.reported_width, "reported_height": h.reported_height,
            "filter_status": status, "filter_reason": reason,
        })
    df = pd.DataFrame(rows, columns=[
        "candidate_id", "query_id", "query", "rank", "provider", "item_id", "url", "normalized_url",
        "backup_urls", "host", "source_page", "title", "reported_width", "reported_height",
        "filter_status", "filter_reason",
    ])
    dup = df["candidate_id"].duplicated(keep="first")
    if dup.any():  # the same (query, rank) twice in one batch: keep one row, the rest are duplicates
        df.loc[dup, "candidate_id"] = [f"{c}-{i}" for i, c in zip(df.index[dup], df.loc[dup, "candidate_id"])]
    for c in ("rank", "reported_width", "reported_height"):
        df[c] = df[c].astype("Int64")
    return df
