"""pHash of the distinct images of one scrape batch (StockEmotion §3.1), reusing known hashes.

The same bytes (same SHA-256) are hashed once: hashes already known (computed by the downloader
from the decode that validated the image, or by an earlier batch) are reused, the others are computed from
the stored blobs in the configured mode (``fast``: JPEG draft decoding and a batched DCT; ``exact``:
bit for bit ``imagehash.phash``). A decoding failure is recorded per image, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from ops.dedup.phash import hamming, hashes_to_hex, phash_exact, phash_fast_many

HashResult = tuple[str | None, str | None]   # (16 hex digits or None, error or None)

IMAGE_HASH_COLUMNS = ["sha256", "width", "height", "image_format", "first_seen", "n_candidates",
                      "phash", "hash_error", "hash_mode"]


@dataclass
class BatchHashes:
    """The result of :func:`hash_batch`: one row per distinct image, and what it cost."""

    table: pd.DataFrame
    computed: int = 0
    reused: int = 0                                  # hashes not computed here (downloads + known)
    from_downloads: int = 0                          # of which computed by the downloader (same decode)
    agreement: dict = field(default_factory=dict)   # fast vs exact on a sample (fast mode only)


def distinct_images(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per SHA-256 of the ok downloads of a batch: size, format, first seen, how many
    candidates gave these bytes."""
    ok = ok.sort_values(["downloaded_at", "candidate_id"])
    imgs = ok.groupby("sha256", sort=False).agg(
        width=("width", "first"), height=("height", "first"), image_format=("image_format", "first"),
        first_seen=("downloaded_at", "min"), n_candidates=("candidate_id", "size"),
    ).reset_index()
    imgs = imgs.astype({"sha256": "string", "width": "Int64", "height": "Int64", "image_format": "string",
                        "n_candidates": "Int64"})
    imgs["first_seen"] = pd.to_datetime(imgs["first_seen"], utc=True)
    return imgs


def compute_hashes(paths: list[Path], mode: str, batch_size: int = 64) -> list[HashResult]:
    """pHash of each file (StockEmotion §3.1 dedup hash), in order; errors recorded per file."""
    out: list[HashResult] = []
    for i in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[i:i + batch_size]]
        if mode == "fast":
            arr, errors = phash_fast_many(chunk)
            hexes = hashes_to_hex(arr)
            out.extend((None if e else h, e) for h, e in zip(hexes, errors))
        elif mode == "exact":
            for p in chunk:
                try:
                    out.append((hashes_to_hex([phash_exact(p)])[0], None))
                except Exception as e:  # noqa: BLE001 - recorded per image, never dropped
                    out.append((None, f"{type(e).__name__}: {e}"))
        else:
            raise ValueError(f"unknown pHash mode {mode!r} (fast | exact)")
    return out


def fast_vs_exact(hashes: Mapping[str, str], path_of: Callable[[str], Path], n: int = 16) -> dict:
    """How often the fast mode differs from exact ``imagehash.phash`` on a sample of images."""
    sample = [s for s, h in hashes.items() if h is not None][:n]
    if not sample:
        return {}
    diffs = [hamming(int(hashes[s], 16), phash_exact(str(path_of(s)))) for s in sample]
    return {"n": len(diffs), "identical": sum(d == 0 for d in diffs),
            "mean_bits": round(sum(diffs) / len(diffs), 3), "max_bits": max(diffs)}


def hashes_from_downloads(ok: pd.DataFrame, mode: str) -> dict[str, HashResult]:
    """The pHashes the downloader computed in ``mode`` while validating the images (the
    ``phash``/``phash_mode`` columns of ``downloaded_images``; absent in rows from before them)."""
    if "phash" not in ok.columns or "phash_mode" not in ok.columns:
        return {}
    got = ok[(ok["phash_mode"] == mode) & ok["phash"].notna() & ok["sha256"].notna()]
    return {str(s): (str(h), None) for s, h in zip(got["sha256"], got["phash"])}


def hash_batch(ok: pd.DataFrame, path_of: Callable[[str], Path], *, mode: str,
               known: Callable[[list[str]], Mapping[str, HashResult]] | Mapping[str, HashResult] = {},
               batch_size: int = 64, agreement_sample: int = 16) -> BatchHashes:
    """The ``image_hashes`` rows of one batch: distinct images of the ok downloads ``ok``, with their
    pHash in ``mode``. The hashes the downloader computed from its validating decode (columns
    ``phash``/``phash_mode`` of ``ok``, see :func:`hashes_from_downloads`) are taken first, so in fast
    mode an image is decoded once in all; ``known``: hashes computed before for these bytes in the same
    mode (a mapping, or a function asked with the remaining SHA-256s), reused too. The rest is
    computed from the blobs (exact mode always is: the downloader computes only fast hashes)."""
    imgs = distinct_images(ok)
    shas = imgs["sha256"].astype(str).tolist()
    downloaded = hashes_from_downloads(ok, mode)
    prior = {s: downloaded[s] for s in shas if s in downloaded}
    rest = [s for s in shas if s not in prior]
    if rest:
        prior.update(known(rest) if callable(known) else {s: known[s] for s in rest if s in known})
    todo = [s for s in shas if s not in prior]
    computed = dict(zip(todo, compute_hashes([path_of(s) for s in todo], mode, batch_size)))
    fresh = {**{s: h for s, (h, _) in computed.items()},
             **{s: prior[s][0] for s in shas if s in downloaded}}  # hashed for this batch, either way
    agreement = fast_vs_exact(fresh, path_of, agreement_sample) if mode == "fast" and agreement_sample else {}
    allh = {**prior, **computed}
    imgs["phash"] = pd.Series([allh[s][0] for s in shas], index=imgs.index, dtype="string")
    imgs["hash_error"] = pd.Series([allh[s][1] for s in shas], index=imgs.index, dtype="string")
    imgs["hash_mode"] = pd.Series(mode, index=imgs.index, dtype="string")
    return BatchHashes(imgs[IMAGE_HASH_COLUMNS], computed=len(todo), reused=len(shas) - len(todo),
                       from_downloads=sum(s in downloaded for s in shas), agreement=agreement)
