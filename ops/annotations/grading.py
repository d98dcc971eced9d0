"""Annotator grading on fixed overlap ("gold") images (FindingEmo §2.3.3).

Each gold image has a reference annotation: keep/reject, a valence range, an arousal range and an
Emo8 leaf: 4 datapoints per image, 20 over FindingEmo's 5 images. An annotator earns one point per
matching datapoint; ``score`` s = points / (4 x number of gold images). ``score_alt`` (s_alt) ignores
the gold images whose reference is "keep" but that the annotator rejected:
s_alt = points on the other images / (4 x their number). s >= 0.8 was accepted automatically; the
threshold, the score used and what happens to the others (``policy``) are parameters here.

Conventions (where the paper is silent):

- a gold image the annotator did not annotate earns 0 points and stays in both denominators;
- when a reference leaves a dimension undefined (None), the datapoint is matched by any answer for
  a "keep" reference; for a "reject" reference with undefined dimensions (the usual case: a rejected
  image needs no further annotation, §2.3.2) each of those datapoints is matched iff the annotator
  rejected the image, so a correct reject earns 4/4 and a wrong keep 0/4;
- ranges are inclusive; the emotion datapoint compares Emo8 leaves (an Emo24 answer counts by its leaf).

``annotator_scores`` columns::

    annotator_id, n_annotations, n_keep, n_reject, n_images, n_gold_seen,
    keep_points, valence_points, arousal_points, emotion_points, gold_points, gold_points_possible,
    score, n_gold_ignored_alt, score_alt, decision ('accepted' | 'rejected' | 'ungraded'),
    excluded (bool, from the policy), reason (text), duration_seconds (when durations are given)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ops.annotations.taxonomy import EMO8, PLUTCHIK24

ACCEPTED, REJECTED, UNGRADED = "accepted", "rejected", "ungraded"
Policy = Literal["exclude_rejected", "exclude_rejected_and_ungraded", "keep_all"]


@dataclass(frozen=True)
class GoldReference:
    """Reference answer for one fixed overlap image (FindingEmo §2.3.3)."""

    image_id: str
    keep: bool
    valence: tuple[float, float] | None = None   # inclusive range
    arousal: tuple[float, float] | None = None   # inclusive range
    emotion8: str | None = None                  # an Emo8 leaf

    def __post_init__(self) -> None:
        """Normalize the reference: Emo24 answer -> Emo8 leaf, ranges as floats (FindingEmo §2.3.3)."""
        if self.emotion8 is not None:
            leaf = EMO8.normalize(self.emotion8) or (PLUTCHIK24.to_parent(PLUTCHIK24.normalize(self.emotion8))
                                                     if PLUTCHIK24.normalize(self.emotion8) else None)
            if leaf is None:
                raise ValueError(f"gold {self.image_id!r}: {self.emotion8!r} is not a Plutchik emotion")
            object.__setattr__(self, "emotion8", leaf)
        for name in ("valence", "arousal"):
            r = getattr(self, name)
            if r is not None:
                lo, hi = float(r[0]), float(r[1])
                if lo > hi:
                    raise ValueError(f"gold {self.image_id!r}: {name} range {r} is empty")
                object.__setattr__(self, name, (lo, hi))


def gold_from_frame(df: pd.DataFrame) -> list[GoldReference]:
    """Gold references from a table: image_id, keep, valence_min, valence_max, arousal_min,
    arousal_max, emotion8 (missing/NULL range ends or emotion: undefined). Row order = the fixed
    serving order (FindingEmo §2.3.3)."""
    out = []
    for r in df.to_dict("records"):
        def rng(name: str):
            lo, hi = r.get(f"{name}_min"), r.get(f"{name}_max")
            if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
                return None
            return (lo, hi)
        emo = r.get("emotion8")
        out.append(GoldReference(str(r["image_id"]), bool(r["keep"]), rng("valence"), rng("arousal"),
                                 None if emo is None or pd.isna(emo) else str(emo)))
    return out


def _match(ref: GoldReference, ann: Mapping | None) -> dict:
    """Points for one gold image (FindingEmo §2.3.3: keep, valence, arousal, emotion leaf)."""
    if ann is None:
        return {"keep": 0, "valence": 0, "arousal": 0, "emotion": 0, "seen": 0}
    keep = bool(ann["keep"])
    pts = {"keep": int(keep == ref.keep), "seen": 1}

    def in_range(v, rng) -> int:
        if rng is None:
            return int(keep) if ref.keep else int(not keep)
        return int(v is not None and not pd.isna(v) and rng[0] <= float(v) <= rng[1])

    pts["valence"] = in_range(ann.get("valence"), ref.valence)
    pts["arousal"] = in_range(ann.get("arousal"), ref.arousal)
    if ref.emotion8 is None:
        pts["emotion"] = int(keep) if ref.keep else int(not keep)
    else:
        e8 = ann.get("emotion8")
        pts["emotion"] = int(e8 is not None and not pd.isna(e8) and e8 == ref.emotion8)
    return pts


def grade_annotators(
    annotations: pd.DataFrame,
    gold: Sequence[GoldReference] | pd.DataFrame,
    threshold: float = 0.8,
    durations: Mapping[str, float] | pd.Series | None = None,
    *,
    score_for_decision: Literal["score", "score_alt", "either"] = "score",
    policy: Policy = "exclude_rejected",
) -> pd.DataFrame:
    """One row per annotator: overlap scores s and s_alt and the decision (FindingEmo §2.3.3).

    ``threshold``: s >= threshold is accepted (0.8 in the paper). ``score_for_decision``: which
    score decides ("either": accepted if s or s_alt passes). ``policy``: who is ``excluded`` from
    merges: "exclude_rejected" (default), "exclude_rejected_and_ungraded" (annotators who saw no
    gold image too), "keep_all" (grading is informational). ``durations``: annotator_id -> task
    duration in seconds (timedeltas accepted), for :func:`score_duration_correlation`.
    """
    refs = gold_from_frame(gold) if isinstance(gold, pd.DataFrame) else list(gold)
    if len({r.image_id for r in refs}) != len(refs):
        raise ValueError("gold references repeat an image")
    a = annotations.copy()
    a["annotator_id"] = a["annotator_id"].astype(str)
    a["image_id"] = a["image_id"].astype(str)
    g = a.groupby("annotator_id")
    keep = a["keep"].astype(bool)
    base = pd.DataFrame({
        "n_annotations": g.size(),
        "n_keep": keep.groupby(a["annotator_id"]).sum(),
        "n_images": g["image_id"].nunique(),
    })
    base["n_reject"] = base["n_annotations"] - base["n_keep"]
    gold_ids = {r.image_id for r in refs}
    ga = a[a["image_id"].isin(gold_ids)].drop_duplicates(["annotator_id", "image_id"], keep="first")
    by_ann: dict[str, dict[str, Mapping]] = {}
    for rec in ga.to_dict("records"):
        by_ann.setdefault(rec["annotator_id"], {})[rec["image_id"]] = rec
    n_gold = len(refs)
    rows = []
    for ann_id in base.index:
        seen = by_ann.get(ann_id, {})
        tot = {"keep": 0, "valence": 0, "arousal": 0, "emotion": 0, "seen": 0}
        alt_points = alt_n = ignored = 0
        for ref in refs:
            rec = seen.get(ref.image_id)
            pts = _match(ref, rec)
            for k in tot:
                tot[k] += pts[k]
            p = pts["keep"] + pts["valence"] + pts["arousal"] + pts["emotion"]
            if ref.keep and rec is not None and not bool(rec["keep"]):
                ignored += 1  # s_alt ignores keep-references annotated as reject (§2.3.3)
            else:
                alt_points += p
                alt_n += 1
        points = tot["keep"] + tot["valence"] + tot["arousal"] + tot["emotion"]
        possible = 4 * n_gold
        s = points / possible if possible and tot["seen"] else np.nan  # ungraded: no score
        s_alt = alt_points / (4 * alt_n) if alt_n and tot["seen"] else np.nan
        rows.append({
            "annotator_id": ann_id, "n_gold_seen": tot["seen"],
            "keep_points": tot["keep"], "valence_points": tot["valence"], "arousal_points": tot["arousal"],
            "emotion_points": tot["emotion"], "gold_points": points, "gold_points_possible": possible,
            "score": s, "n_gold_ignored_alt": ignored, "score_alt": s_alt,
            "_alt_points": alt_points, "_alt_possible": 4 * alt_n,
        })
    sc = pd.DataFrame(rows).set_index("annotator_id") if rows else pd.DataFrame(
        columns=["n_gold_seen", "keep_points", "valence_points", "arousal_points", "emotion_points", "gold_points",
                 "gold_points_possible", "score", "n_gold_ignored_alt", "score_alt", "_alt_points", "_alt_possible"])
    out = base.join(sc).reset_index().rename(columns={"index": "annotator_id"})
    decisions, reasons, excluded = [], [], []
    for r in out.to_dict("records"):
        s, s_alt = r["score"], r["score_alt"]
        desc = f"s={s:.2f} ({r['gold_points']}/{r['gold_points_possible']})" if not pd.isna(s) else "s=n/a"
        desc += f", s_alt={s_alt:.2f} ({r['_alt_points']}/{r['_alt_possible']})" if not pd.isna(s_alt) else ", s_alt=n/a"
        if n_gold == 0 or r["n_gold_seen"] == 0:
            d, why = UNGRADED, f"annotated none of the {n_gold} gold images"
        else:
            passed = {
                "score": s >= threshold,
                "score_alt": (not pd.isna(s_alt)) and s_alt >= threshold,
                "either": s >= threshold or ((not pd.isna(s_alt)) and s_alt >= threshold),
            }[score_for_decision]
            crit = {"score": "s", "score_alt": "s_alt", "either": "s or s_alt"}[score_for_decision]
            d = ACCEPTED if passed else REJECTED
            why = f"{crit} {'>=' if passed else '<'} {threshold:g}: {desc}"
            if r["n_gold_seen"] < n_gold:
                why += f"; saw {r['n_gold_seen']} of {n_gold} gold images (unseen ones score 0)"
        ex = {"keep_all": False, "exclude_rejected": d == REJECTED,
              "exclude_rejected_and_ungraded": d in (REJECTED, UNGRADED)}[policy]
        decisions.append(d)
        reasons.append(why + (f"; excluded from merges ({policy})" if ex else ""))
        excluded.append(ex)
    out["decision"] = pd.array(decisions, dtype="str")
    out["excluded"] = np.asarray(excluded, dtype=bool)
    out["reason"] = pd.array(reasons, dtype="str")
    out = out.drop(columns=["_alt_points", "_alt_possible"])
    for c in ("n_annotations", "n_keep", "n_reject", "n_images", "n_gold_seen", "keep_points", "valence_points",
              "arousal_points", "emotion_points", "gold_points", "gold_points_possible", "n_gold_ignored_alt"):
        out[c] = out[c].astype("int64")
    for c in ("score", "score_alt"):
        out[c] = out[c].astype("float64")
    if durations is not None:
        d = pd.Series(durations) if not isinstance(durations, pd.Series) else durations
        if pd.api.types.is_timedelta64_dtype(d):
            d = d.dt.total_seconds()
        d.index = d.index.astype(str)
        out["duration_seconds"] = out["annotator_id"].map(d).astype("float64")
    return out


def score_duration_correlation(scores: pd.DataFrame, durations: Mapping[str, float] | pd.Series | None = None) -> pd.DataFrame:
    """Spearman correlation of task completion time and annotator score (FindingEmo §2.3.3:
    rho = -0.122, p = 0.002 for s; -0.086, p = 0.029 for s_alt). One row per score:
    ``score, rho, p_value, n`` over graded annotators with a duration (rho NaN below 3 pairs)."""
    sc = scores.copy()
    if durations is not None:
        d = pd.Series(durations) if not isinstance(durations, pd.Series) else durations.copy()
        if pd.api.types.is_timedelta64_dtype(d):
            d = d.dt.total_seconds()
        d.index = d.index.astype(str)
        sc["duration_seconds"] = sc["annotator_id"].astype(str).map(d)
    if "duration_seconds" not in sc.columns:
        raise ValueError("no durations: pass durations= or grade with durations")
    rows = []
    for col in ("score", "score_alt"):
        m = sc[[col, "duration_seconds"]].dropna()
        if "decision" in sc.columns:
            m = m[sc.loc[m.index, "decision"] != UNGRADED]
        if len(m) >= 3 and m[col].nunique() > 1 and m["duration_seconds"].nunique() > 1:
            res = stats.spearmanr(m["duration_seconds"], m[col])
            rho, p = float(res.statistic), float(res.pvalue)
        else:
            rho, p = np.nan, np.nan
        rows.append({"score": col, "rho": rho, "p_value": p, "n": int(len(m))})
    return pd.DataFrame(rows)


def excluded_annotators(scores: pd.DataFrame) -> list[str]:
    """Annotator ids the grading policy excludes from merges (FindingEmo §2.3.3; input for ops.labels.merge)."""
    return sorted(scores.loc[scores["excluded"].astype(bool), "annotator_id"].astype(str))


def gold_serving_order(gold: Sequence[GoldReference] | pd.DataFrame) -> list[str]:
    """The fixed sequence gold images are served in (FindingEmo §2.3.3), for ops.annotation_queue."""
    refs = gold_from_frame(gold) if isinstance(gold, pd.DataFrame) else list(gold)
    return [r.image_id for r in refs]


def example_gold(image_ids: Iterable[str]) -> list[GoldReference]:
    """A 5-image gold set shaped like FindingEmo §2.3.3's (4 keeps, 1 reject) for demos and tests."""
    ids = list(image_ids)
    if len(ids) != 5:
        raise ValueError("FindingEmo used 5 fixed overlap images")
    return [
        GoldReference(ids[0], True, (2, 3), (3, 5), "Joy"),
        GoldReference(ids[1], True, (-3, -2), (3, 6), "Sadness"),
        GoldReference(ids[2], True, (-3, -1), (4, 6), "Anger"),
        GoldReference(ids[3], True, (0, 2), (1, 3), "Trust"),
        GoldReference(ids[4], False),
    ]


def durations_from_timestamps(annotations: pd.DataFrame) -> pd.Series:
    """Per-annotator task duration in seconds = last - first ``annotated_at`` (NULL-stamped rows
    ignored). A proxy when platform durations (FindingEmo §A.3: Prolific's) are not available."""
    a = annotations.dropna(subset=["annotated_at"])
    g = a.groupby("annotator_id")["annotated_at"]
    return ((g.max() - g.min()).dt.total_seconds()).rename("duration_seconds")
