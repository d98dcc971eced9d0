"""AffectNet+ item sets: negative sampling for the one-vs-rest classifiers (§3.2), the test-MAS /
train-MAS split (§3.1, Supplement II) and the Easy / Challenging / Difficult subsets (§3.5.1).

Plain numpy/pandas; everything is deterministic (ties broken by Eq. 1's emotion order, item ids
sorted before any random draw, a seeded ``numpy.random.Generator``). Re-exported by
:mod:`ops.labels.affectnet_plus`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ops.labels.affectnet_plus import EMOTIONS, _shared, emotion_index

DIFFICULTY_LEVELS = ("Easy", "Challenging", "Difficult")


# ---- §3.2: negative sampling by AU overlap ---------------------------------------------------------

def _available(available_counts: Any, others: list[int]) -> np.ndarray:
    """Available items per other emotion (inf when not limited); mapping by name/index or (8,) array."""
    if available_counts is None:
        return np.full(len(others), np.inf)
    if isinstance(available_counts, (Mapping, pd.Series)):
        by_idx = {emotion_index(k): float(v) for k, v in dict(available_counts).items()}
        a = np.array([by_idx.get(j, 0.0) for j in others])
    else:
        full = np.asarray(available_counts, dtype=float)
        if full.shape != (len(EMOTIONS),):
            raise ValueError(f"available_counts must have {len(EMOTIONS)} entries, got {full.shape}")
        a = full[others]
    if (a < 0).any() or np.any(np.isfinite(a) & (a != np.floor(a))):
        raise ValueError("available counts must be non-negative integers")
    return a


def negative_allocation(target: int | str, n_negatives: int, available_counts: Any = None,
                        random_share: float = 0.2, shared: Any = "derived") -> pd.Series:
    """§3.2: how many negatives the one-vs-rest classifier of ``target`` draws from each other emotion.

    Quota of other emotion j (real-valued), with s_j = AUs shared with the target (Table 3; "derived"
    from Table 2 by default, "printed", or an 8x8 matrix) and S = Σ_j s_j over the 7 others::

        q_j = n · random_share / 7  +  n · (1 - random_share) · s_j / S

    i.e. 20 % spread uniformly over all other emotions (equal counts, "to ensure a uniform
    distribution from all the other emotions"), the rest proportional to shared AUs. An emotion
    sharing no AU (Neutral always) gets only its uniform share. If S = 0 (target Neutral, which has
    no AUs) everything is uniform. Quotas above ``available_counts`` are capped and the shortfall is
    redistributed over the uncapped emotions in proportion to their quotas, repeatedly (if only
    zero-quota emotions remain, evenly over them). Integers by largest remainder (ties: Eq. 1 order),
    never above what is available; the counts sum exactly to ``n_negatives``. Raises ValueError if
    fewer than ``n_negatives`` items are available in total.

    Returns an int Series indexed by the 7 other emotions in Eq. 1 order."""
    t = emotion_index(target)
    if int(n_negatives) != n_negatives or n_negatives < 0:
        raise ValueError(f"n_negatives must be a non-negative integer, got {n_negatives!r}")
    if not 0.0 <= random_share <= 1.0:
        raise ValueError(f"random_share must be in [0, 1], got {random_share}")
    n = int(n_negatives)
    others = [j for j in range(len(EMOTIONS)) if j != t]
    s = np.clip(_shared(shared)[t, others], 0.0, None)
    uniform = np.full(len(others), 1.0 / len(others))
    w = uniform if s.sum() == 0 else random_share * uniform + (1.0 - random_share) * s / s.sum()
    avail = _available(available_counts, others)
    if avail.sum() < n:
        raise ValueError(f"only {avail.sum():.0f} negatives available for {EMOTIONS[t]}, {n} requested")

    alloc = np.zeros(len(others))
    free = np.ones(len(others), dtype=bool)
    remaining = float(n)
    while True:  # water-filling: each pass caps at least one emotion or ends
        wf = w * free
        wf = wf / wf.sum() if wf.sum() > 0 else free / free.sum()
        q = remaining * wf
        over = free & (q > avail + 1e-9)
        if not over.any() or (over == free).all():  # all free over: float noise only (avail.sum() >= n)
            alloc[free] = np.minimum(q[free], avail[free])
            break
        alloc[over] = avail[over]
        remaining -= avail[over].sum()
        free &= ~over

    base = np.floor(alloc + 1e-9)
    left = round(n - base.sum())
    frac = alloc - base
    order = sorted((j for j in range(len(others)) if base[j] + 1 <= avail[j]), key=lambda j: (-frac[j], j))
    for j in order[:left]:
        base[j] += 1
    out = pd.Series(base.astype(int), index=[EMOTIONS[j] for j in others], name="n_negatives")
    assert out.sum() == n, (out, n)
    return out


def sample_negatives(target: int | str, n_negatives: int, labels: pd.Series | Mapping,
                     seed: int | np.random.Generator = 0, random_share: float = 0.2,
                     shared: Any = "derived") -> pd.DataFrame:
    """§3.2: draw the negatives of :func:`negative_allocation` (available counts taken from
    ``labels``: item id -> emotion name or index; other labels such as None or "Uncertain" are
    ignored). Within each emotion, ``k`` ids are drawn without replacement from its ids sorted, so
    the result depends only on (labels as a set, seed). Returns columns item_id, emotion (Eq. 1
    order, draw order within an emotion)."""
    lab = pd.Series(labels) if not isinstance(labels, pd.Series) else labels
    if lab.index.has_duplicates:
        raise ValueError("labels has duplicate item ids")
    idx = pd.Series([_maybe_index(v) for v in lab.to_numpy(dtype=object)], index=lab.index)
    t = emotion_index(target)
    counts = np.bincount(idx.dropna().astype(int).to_numpy(), minlength=len(EMOTIONS))
    alloc = negative_allocation(t, n_negatives, counts, random_share=random_share, shared=shared)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    parts = []
    for emo, k in alloc.items():
        pool = np.sort(idx.index[(idx == emotion_index(emo)).to_numpy()].to_numpy())
        chosen = rng.choice(pool, size=int(k), replace=False) if k else pool[:0]
        parts.append(pd.DataFrame({"item_id": chosen, "emotion": emo}))
    return pd.concat(parts, ignore_index=True)


def _maybe_index(v: Any) -> float:
    """Emotion index of a label (name or index, 2.0 from a float column too), NaN for missing or
    non-emotion labels."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and np.isnan(v)):
        return np.nan
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    try:
        return float(emotion_index(v))
    except (ValueError, TypeError):
        return np.nan


# ---- §3.5.1: Easy / Challenging / Difficult --------------------------------------------------------

def hard_label_rank(soft_labels: Any, hard_label: Any, atol: float = 0.0) -> np.ndarray:
    """§3.5.1: rank (1 = highest) of the hard label's probability in each soft label; NaN without a
    hard label (None/NaN/negative) or with a NaN soft label row.

    Ties: competition ("min") ranking, rank = 1 + number of emotions with a strictly higher value
    (beyond ``atol``). A hard label tied with others gets the best rank among them: the soft label
    gives no reason to prefer the tied rival over the human label, and the rule does not depend on
    the column order (breaking ties by index would systematically favour Neutral over Contempt).
    A DataFrame of soft labels is read by column name (e.g. ``neutral`` ... ``contempt``)."""
    if isinstance(soft_labels, pd.DataFrame):  # columns by name (any case, e.g. the soft_labels table)
        soft_labels = soft_labels[sorted(soft_labels.columns, key=lambda c: emotion_index(str(c)))]
    s = np.atleast_2d(np.asarray(soft_labels, dtype=float))
    h = np.atleast_1d(np.asarray([_maybe_index(v) if not _is_negative(v) else np.nan
                                  for v in np.atleast_1d(np.asarray(hard_label, dtype=object))], dtype=float))
    if s.shape[-1] != len(EMOTIONS) or len(h) != s.shape[0]:
        raise ValueError(f"soft labels {s.shape} and hard labels {h.shape} do not match (N, {len(EMOTIONS)})")
    ok = ~np.isnan(h) & ~np.isnan(s).any(axis=1)
    rank = np.full(len(h), np.nan)
    rows = np.flatnonzero(ok)
    own = s[rows, h[rows].astype(int)]
    rank[rows] = 1 + (s[rows] > own[:, None] + atol).sum(axis=1)
    return rank


def _is_negative(v: Any) -> bool:
    """A negative integer code means "no hard label"."""
    return isinstance(v, (int, np.integer, float, np.floating)) and not isinstance(v, bool) and v < 0


def difficulty(soft_labels: Any, hard_label: Any, atol: float = 0.0) -> np.ndarray | str | None:
    """§3.5.1 subsets: "Easy" if the hard label is the soft label's top-1, "Challenging" at rank 2 or
    3, "Difficult" otherwise, None without a hard label (ranks and ties: :func:`hard_label_rank`).
    soft_labels (N, 8) and hard labels (N,) (index or name) -> object array; (8,) and one -> str/None."""
    scalar = np.ndim(soft_labels) == 1
    r = hard_label_rank(soft_labels, [hard_label] if scalar else hard_label, atol=atol)
    out = np.array([None if np.isnan(x) else "Easy" if x == 1 else "Challenging" if x <= 3 else "Difficult"
                    for x in r], dtype=object)
    return out[0] if scalar else out


# ---- §3.1 / Supplement II: test-MAS and train-MAS --------------------------------------------------

def split_mas(merged: pd.DataFrame, per_class: int = 100, seed: int = 0, *, id_col: str = "image_id",
              label_col: str = "emotion", agree_col: str = "emotion_all_agree",
              votes_col: str | None = "emotion_n_votes", min_votes: int = 2,
              groups: str | None = None) -> pd.DataFrame:
    """§3.1 / Supplement II: test-MAS = per emotion up to ``per_class`` items, drawn at random among
    those on which all annotators agree; everything else (including unresolved and non-emotion
    items) is train-MAS. Defaults read ``merged_annotations`` (ops.labels.merge) at the AffectNet-8
    level; a candidate needs ``agree_col`` true and at least ``min_votes`` votes (the MAS has two or
    more annotators; set ``votes_col=None`` to skip the check).

    Deterministic: rows are ordered by id, then for each emotion in Eq. 1 order one permutation of
    its candidates is drawn from ``numpy.random.default_rng(seed)``, and candidates are taken in that
    order until the emotion has ``per_class``.

    ``groups``: optional column naming a near-duplicate family (NaN: the item is its own family).
    A family never straddles the split: when a candidate is chosen, all its family goes to test
    (``pulled_by_group`` marks the members that went along, not drawn themselves). Members that
    are candidates count toward their own emotion's quota; a candidate whose family would push any
    emotion past ``per_class`` is skipped, so no emotion exceeds ``per_class``. Members that are not
    candidates are in test only to keep them out of train and must not be scored as test-MAS:
    evaluate on ``split == "test" & test_candidate``.

    Returns a frame in input order: id, label (canonical name or None), [group], split
    ("test" | "train"), test_candidate, pulled_by_group."""
    if per_class < 0:
        raise ValueError("per_class must be >= 0")
    cols = [id_col, label_col, agree_col] + ([votes_col] if votes_col else []) + ([groups] if groups else [])
    missing = [c for c in cols if c not in merged.columns]
    if missing:
        raise KeyError(f"columns not in merged annotations: {missing}")
    if merged[id_col].duplicated().any():
        raise ValueError(f"{id_col} is not unique")
    ids = merged[id_col].to_numpy(dtype=object)
    lab = np.array([_maybe_index(v) for v in merged[label_col].to_numpy(dtype=object)], dtype=float)
    agree = merged[agree_col].fillna(False).astype(bool).to_numpy()
    cand = ~np.isnan(lab) & agree
    if votes_col:
        cand &= pd.to_numeric(merged[votes_col], errors="coerce").fillna(0).to_numpy() >= min_votes

    n = len(merged)
    if groups:
        g = merged[groups].to_numpy(dtype=object)
        fam: dict[Any, list[int]] = {}
        for i, key in enumerate(g):
            k = ("__own__", i) if key is None or (isinstance(key, float) and np.isnan(key)) else ("g", key)
            fam.setdefault(k, []).append(i)
        members = {i: m for m in fam.values() for i in m}
    else:
        members = {i: [i] for i in range(n)}

    order = sorted(range(n), key=lambda i: (str(ids[i]), i))
    rng = np.random.default_rng(seed)
    test = np.zeros(n, dtype=bool)
    chosen = np.zeros(n, dtype=bool)
    counts = np.zeros(len(EMOTIONS), dtype=int)
    for e in range(len(EMOTIONS)):
        pool = np.array([i for i in order if cand[i] and lab[i] == e], dtype=int)
        for i in pool[rng.permutation(len(pool))]:
            if counts[e] >= per_class:
                break
            if test[i]:
                continue
            fam_i = members[i]
            add = np.bincount(lab[[j for j in fam_i if cand[j]]].astype(int), minlength=len(EMOTIONS))
            if (counts + add > per_class).any():
                continue
            test[fam_i] = True
            chosen[i] = True
            counts += add

    out = pd.DataFrame({id_col: merged[id_col].to_numpy(),
                        label_col: [None if np.isnan(x) else EMOTIONS[int(x)] for x in lab]}, index=merged.index)
    if groups:
        out[groups] = merged[groups].to_numpy()
    out["split"] = np.where(test, "test", "train")
    out["test_candidate"] = cand
    out["pulled_by_group"] = test & ~chosen
    return out

