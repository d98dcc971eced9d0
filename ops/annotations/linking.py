"""Annotations linked to the images the pipeline acquired.

FindingEmo paths (``/Run_2/Loving toddlers sports/x.jpg``) are the item ids of FindingEmo-Light's URL
list, so an annotation's ``image_id`` names the URL-list item it belongs to; an image id or path that
is itself a URL matches the candidate with the same normalized URL (``ops.acquisition.candidates``).
An image id whose file name is the SHA-256 of an acquired image's bytes (``/Run_1/x/<sha256>.jpg``, or
the bare hash, as exports keyed by content hash name them) links to that image. Annotations that
match nothing keep NULL ``sha256``/``url``: they are kept, never dropped.
"""

from __future__ import annotations

import pandas as pd

from ops.acquisition.candidates import normalize_url


def link_to_acquired(ann: pd.DataFrame, downloads: pd.DataFrame | None) -> pd.DataFrame:
    """``ann`` with ``sha256`` and ``url`` of the acquired image each annotation is about.

    ``downloads``: rows of ``downloaded_images`` (item_id, normalized_url, status, sha256, url), or
    None when nothing was acquired yet."""
    ann = ann.copy()
    sha = pd.Series(pd.NA, index=ann.index, dtype="string")
    url = pd.Series(pd.NA, index=ann.index, dtype="string")
    if downloads is not None and len(downloads) and len(ann):
        dl = downloads
        ok = dl[dl["status"] == "ok"]
        by_item = ok[ok["item_id"].notna()].drop_duplicates("item_id").set_index("item_id")
        by_url = ok[ok["normalized_url"].notna()].drop_duplicates("normalized_url").set_index("normalized_url")
        any_item = dl[dl["item_id"].notna()].drop_duplicates("item_id").set_index("item_id")
        sha = ann["image_id"].map(by_item["sha256"]).astype("string")
        url = ann["image_id"].map(any_item["url"]).astype("string")
        for col in ("image_id", "image_path"):
            if col in ann:
                norm = ann[col].map(lambda v: normalize_url(v) if isinstance(v, str) and "://" in v else None)
                sha = sha.fillna(norm.map(by_url["sha256"]).astype("string"))
                url = url.fillna(norm.map(by_url["url"]).astype("string"))
        by_sha = ok[ok["sha256"].notna()].drop_duplicates("sha256").set_index("sha256")
        for col in ("image_id", "image_path"):
            if col in ann:
                stem = ann[col].map(_hash_stem)
                hit = stem.where(stem.isin(by_sha.index))
                sha = sha.fillna(hit.astype("string"))
                url = url.fillna(hit.map(by_sha["url"]).astype("string"))
    ann["sha256"] = sha.astype("string")
    ann["url"] = url.astype("string")
    return ann


_HEX = set("0123456789abcdef")


def _hash_stem(v) -> str | None:
    """The SHA-256 a file name or id spells (``.../<64 hex>.jpg`` or the bare hash), else None."""
    if not isinstance(v, str):
        return None
    stem = v.rsplit("/", 1)[-1].split(".", 1)[0].lower()
    return stem if len(stem) == 64 and set(stem) <= _HEX else None
