"""The held-out images every model of a build is evaluated on (and never trained on).

A model trained on the build's own labelled images (the small backbone of the demo, the keep/reject
and Emo8 heads) is scored on images it never saw. Which images are held out must not depend on
which model asks, nor change when unrelated images are added: an image is held out when the hash
of its id (with the seed) falls in the lowest ``fraction`` of its label's images, so the split is
stratified per label (FindingEmo §3: "each Emo8 emotion was also split according to this same
rule"), deterministic, and stable as the corpus grows.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import numpy as np


def _rank_key(item_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{item_id}".encode()).digest()[:8], "big")


def holdout_mask(ids: Sequence[str], labels: Sequence | None = None, fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """True for the held-out items: per label, the ``round(fraction * n)`` items with the smallest
    seeded hash of their id (at least one per label with two or more items)."""
    if not 0 <= fraction < 1:
        raise ValueError("fraction must be in [0, 1)")
    ids = [str(i) for i in ids]
    labels = list(labels) if labels is not None else [None] * len(ids)
    if len(labels) != len(ids):
        raise ValueError("ids and labels differ in length")
    out = np.zeros(len(ids), dtype=bool)
    groups: dict[object, list[int]] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab, []).append(i)
    for idx in groups.values():
        n = len(idx)
        k = int(round(fraction * n))
        if fraction > 0 and n >= 2:
            k = max(1, min(k, n - 1))
        ranked = sorted(idx, key=lambda i: _rank_key(ids[i], seed))
        out[ranked[:k]] = True
    return out


def split_counts(mask: np.ndarray, labels: Iterable) -> dict[str, dict[str, int]]:
    """{label: {"train": n, "holdout": n}} for reports."""
    out: dict[str, dict[str, int]] = {}
    for m, lab in zip(mask, labels):
        d = out.setdefault(str(lab), {"train": 0, "holdout": 0})
        d["holdout" if m else "train"] += 1
    return out
