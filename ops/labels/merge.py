"""Merge multi-annotator labels: ``annotations`` -> ``merged_annotations`` (one row per image).

Implements FindingEmo §A.5 (keep/reject majority; distinct labels, wheel distances and V/A spread
per image), AffectNet+ Supplement II (majority vote, ties broken by the search keyword) and
annotator-model estimators from crowd-kit (Dawid-Skene and others).

Output columns of :func:`merge_annotations` (CONTRACT ``merged_annotations``)::

    image_id, n_annotators (annotators left after exclusion), n_annotations, n_excluded
      (annotations dropped because their annotator is excluded), n_synthetic (annotations expanded
      from vote counts: their keep is implied, not judged), n_keep, n_reject,
    keep_majority      'keep' | 'reject' | 'undecided' (ties and images without annotations)
    keep_share         n_keep / (n_keep + n_reject)
    for each label level P ('emotion24' and 'emotion8' for Plutchik; 'emotion' for a flat taxonomy
    such as AffectNet-8), votes from KEPT annotations only:
      P                aggregated emotion label, NULL unless P_status = 'resolved'
      P_winner         the winning vote even when it is a non-emotion label (NULL if unresolved)
      P_status         'resolved' | 'unresolved' | 'non_emotion' | 'not_kept' | 'no_votes'
      P_reason         why (text), for every status
      P_confidence     winner's share of the counted votes (majority/plurality) or posterior (crowd-kit)
      P_n_votes        number of votes
      P_votes          the vote distribution = the human soft label: list of structs
                       {label: str, votes: int64, share: double}, labels with >= 1 vote, in taxonomy
                       order (DuckDB: ``unnest(P_votes)``, ``P_votes[1].label``)
      P_n_<label>      one count column per label (``emotion8_n_joy``, ``emotion_n_non_face``)
      P_n_distinct     number of distinct labels voted (FindingEmo Fig. 12)
      P_max_distance   largest wheel distance between voted emotion labels (Fig. 13/14; NULL if the
                       taxonomy has no wheel or there is no emotion vote; 0 for a single label)
      P_all_agree      all votes for one label
    valence_/arousal_/ambiguity_ mean, median, std (sample), range (max - min), n  (kept annotations)
    age_<group>        share of kept annotations ticking the age group (among those that record age
                       groups; NULL when none does); age_groups_majority: the
                       groups ticked by more than half of them
    merge_policy       the policy and its parameters
    + image_path, query, query_emotion and item-level columns (e.g. split) carried from annotations

Second output of :func:`merge_annotations_with_estimates` (crowd-kit policies; empty otherwise)::

    method, level, annotator_id, kind ('confusion' | 'skill' | 'prior'), true_label, observed_label, value
    (confusion: P(observed_label | true_label) for that annotator, Dawid-Skene's error matrix)
"""

from __future__ import annotations

from dataclasses import is_dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ops.annotations.taxonomy import Taxonomy, get_taxonomy, levels, slug
from ops.labels.aggregators import (  # noqa: F401  (re-exported: the policies)
    NO_VOTES, RESOLVED, UNRESOLVED, Aggregator, CrowdKit, DawidSkene, Majority, Plurality, _count_matrix,
    empty_estimates, make_aggregator,
)

# ---- policies: the aggregators of ops.labels.aggregators -----------------------------------------

Policy = Aggregator


def parse_policy(spec: "str | Mapping[str, Any] | Aggregator") -> Aggregator:
    """"majority" | "plurality" | "dawid_skene" | "glad" | ... or {"kind": "majority", "min_share": 0.6}."""
    return make_aggregator(spec)


def policy_label(policy: Aggregator) -> str:
    """Text form of a merge policy and its parameters, stored per merged row (provenance)."""
    return policy.describe()


# ---- helpers -------------------------------------------------------------------------------------

NON_EMOTION, NOT_KEPT = "non_emotion", "not_kept"   # (RESOLVED, UNRESOLVED, NO_VOTES: aggregators)
PER_ANNOTATION_COLUMNS = {
    "annotator_id", "source", "keep", "valence", "arousal", "ambiguity", "emotion24", "emotion8",
    "age_groups", "deciding_factors", "tags", "annotated_at", "emotion", "taxonomy", "source_file",
    "source_line", "source_index", "synthetic_annotator",
}
CARRIED_COLUMNS = ("image_path", "query", "query_emotion")


def level_column(tax: Taxonomy, n_levels: int) -> str:
    """Column of the annotations table holding votes at this level, also the merged column prefix."""
    return {"plutchik24": "emotion24", "emo8": "emotion8"}.get(tax.name, "emotion" if n_levels == 1 else tax.name)


def _excluded_ids(excluded: Iterable[str] | pd.DataFrame | None) -> set[str]:
    """Annotators excluded by grading (FindingEmo §2.3.3) or given as ids."""
    if excluded is None:
        return set()
    if isinstance(excluded, pd.DataFrame):  # annotator_scores (ops.annotations.grading)
        return set(excluded.loc[excluded["excluded"].astype(bool), "annotator_id"].astype(str))
    return {str(x) for x in excluded}


def _project(word: str | None, lvls: list[Taxonomy], i: int, keyword_labels: Mapping[str, str] | None) -> str | None:
    """A query emotion word as a label of level ``i`` (a finer label is projected to its parent)."""
    if word is None or (isinstance(word, float) and np.isnan(word)):
        return None
    w = keyword_labels.get(word, keyword_labels.get(str(word).casefold(), word)) if keyword_labels else word
    for j in range(i + 1):
        lab = lvls[j].normalize(w)
        if lab is None:
            continue
        for k in range(j, i):
            lab = lvls[k].to_parent(lab)
        return lab
    return None


def _fmt_share(x: float) -> str:
    """Percent text for reasons."""
    return f"{100 * x:.0f}%"


# ---- the merge -----------------------------------------------------------------------------------

def merge_annotations(
    annotations: pd.DataFrame,
    policy: str | Mapping[str, Any] | Policy = "majority",
    *,
    taxonomy: str | Taxonomy = "plutchik24",
    query_emotion: Mapping[str, str] | pd.Series | None = None,
    keyword_labels: Mapping[str, str] | None = None,
    excluded_annotators: Iterable[str] | pd.DataFrame | None = None,
    item_columns: Sequence[str] | None = None,
    require_keep_majority: bool = True,
) -> pd.DataFrame:
    """One row per image: keep majority, aggregated labels, vote distributions, agreement, V/A.

    FindingEmo §A.5 (keep majority, distinct labels, wheel distance, V/A spread), AffectNet+
    Supplement II (majority, tie by query keyword). See the module docstring for the columns and
    :func:`merge_annotations_with_estimates` for the crowd-kit annotator estimates.
    """
    return merge_annotations_with_estimates(
        annotations, policy, taxonomy=taxonomy, query_emotion=query_emotion, keyword_labels=keyword_labels,
        excluded_annotators=excluded_annotators, item_columns=item_columns,
        require_keep_majority=require_keep_majority,
    )[0]


def merge_annotations_with_estimates(
    annotations: pd.DataFrame,
    policy: str | Mapping[str, Any] | Policy = "majority",
    *,
    taxonomy: str | Taxonomy = "plutchik24",
    query_emotion: Mapping[str, str] | pd.Series | None = None,
    keyword_labels: Mapping[str, str] | None = None,
    excluded_annotators: Iterable[str] | pd.DataFrame | None = None,
    item_columns: Sequence[str] | None = None,
    require_keep_majority: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`merge_annotations` plus the annotator estimates of crowd-kit policies (FindingEmo §A.5,
    AffectNet+ Supplement II). ``query_emotion``: image_id -> query emotion word or label (default:
    the annotations' ``query_emotion`` column); ``keyword_labels``: word -> label for words that are
    not labels themselves. ``excluded_annotators``: ids, or an ``annotator_scores`` frame (its
    ``excluded`` column, ops.annotations.grading). ``item_columns``: columns carried per image (default: every
    non-annotation column that is constant within each image)."""
    pol = parse_policy(policy)
    tax = get_taxonomy(taxonomy)
    lvls = levels(tax)
    excluded = _excluded_ids(excluded_annotators)
    a = annotations
    all_images = pd.Index(pd.unique(a["image_id"].astype(str)), name="image_id")
    is_excl = a["annotator_id"].astype(str).isin(excluded) if excluded else pd.Series(False, index=a.index)
    n_excl = is_excl.groupby(a["image_id"].astype(str)).sum().reindex(all_images, fill_value=0)
    a = a[~is_excl.to_numpy()]
    img = a["image_id"].astype(str)

    out = pd.DataFrame(index=all_images)
    out["n_annotators"] = a.groupby(img)["annotator_id"].nunique().reindex(all_images, fill_value=0).astype("int64")
    out["n_annotations"] = img.value_counts().reindex(all_images, fill_value=0).astype("int64")
    out["n_excluded"] = n_excl.astype("int64")
    # annotations expanded from vote counts: their keep is implied (True), not judged
    syn = a["synthetic_annotator"].fillna(False).astype(bool) if "synthetic_annotator" in a.columns \
        else pd.Series(False, index=a.index)
    out["n_synthetic"] = syn.groupby(img).sum().reindex(all_images, fill_value=0).astype("int64")
    keep = a["keep"].astype(bool)
    out["n_keep"] = keep.groupby(img).sum().reindex(all_images, fill_value=0).astype("int64")
    out["n_reject"] = (out["n_annotations"] - out["n_keep"]).astype("int64")
    # FindingEmo §A.5: "majority of Keep annotations", "mainly Reject", "undecided"
    out["keep_majority"] = np.where(out["n_keep"] > out["n_reject"], "keep",
                                    np.where(out["n_keep"] < out["n_reject"], "reject", "undecided"))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["keep_share"] = out["n_keep"] / out["n_annotations"].where(out["n_annotations"] > 0)

    kept = a[keep.to_numpy()]
    kimg = kept["image_id"].astype(str)

    # query emotion per image (AffectNet+ Supplement II tie-break)
    if query_emotion is None:
        if "query_emotion" in a.columns:
            qe = annotations.assign(_i=annotations["image_id"].astype(str)).dropna(subset=["query_emotion"]).groupby("_i")["query_emotion"].first()
        else:
            qe = pd.Series(dtype=object)
    else:
        qe = pd.Series(query_emotion) if not isinstance(query_emotion, pd.Series) else query_emotion.copy()
        qe.index = qe.index.astype(str)
    qe = qe.reindex(all_images)

    estimates: list[pd.DataFrame] = []
    for i, lt in enumerate(lvls):
        prefix = level_column(lt, len(lvls))
        votes = _level_votes(kept, tax, lt, prefix)
        universe = list(lt.all_labels) + [x for x in tax.non_emotion_labels if x not in lt.all_labels]
        mask = votes.notna().to_numpy()
        counts = pd.DataFrame(_count_matrix(kimg[mask], votes[mask], all_images, universe), index=all_images, columns=universe)
        qcache: dict = {}
        query_labels = [qcache[w] if w in qcache else qcache.setdefault(w, _project(w, lvls, i, keyword_labels))
                        for w in qe.to_numpy(dtype=object)]
        res, est = _aggregate_level(pol, lt, universe, counts, query_labels, kept.assign(_vote=votes)[mask], prefix)
        estimates.append(est)
        # non-emotion winners and keep majority
        status, reason, label = res["status"], res["reason"], res["winner"].copy()
        km = out["keep_majority"].to_numpy()
        for r in range(len(all_images)):
            if status[r] == RESOLVED and label[r] is not None and not lt.is_emotion(label[r]):
                status[r] = NON_EMOTION
                reason[r] = f"non-emotion label {label[r]!r} won: " + reason[r]
            if require_keep_majority and status[r] in (RESOLVED, NON_EMOTION) and km[r] != "keep":
                status[r] = NOT_KEPT
                reason[r] = f"keep/reject majority is {km[r]!r}; votes: " + reason[r]
        out[prefix] = pd.array([label[r] if status[r] == RESOLVED else None for r in range(len(label))], dtype="str")
        out[f"{prefix}_winner"] = pd.array(res["winner"], dtype="str")
        out[f"{prefix}_status"] = pd.array(status, dtype="str")
        out[f"{prefix}_reason"] = pd.array(reason, dtype="str")
        out[f"{prefix}_confidence"] = np.asarray(res["confidence"], dtype="float64")
        C = counts.to_numpy()
        tot = C.sum(axis=1)
        out[f"{prefix}_n_votes"] = tot.astype("int64")
        out[f"{prefix}_votes"] = _vote_lists(C, universe)
        for j, lab in enumerate(universe):
            out[f"{prefix}_n_{slug(lab)}"] = C[:, j]
        out[f"{prefix}_n_distinct"] = (C > 0).sum(axis=1).astype("int64")
        out[f"{prefix}_max_distance"] = _max_distance(lt, universe, C)
        out[f"{prefix}_all_agree"] = (out[f"{prefix}_n_distinct"] == 1).to_numpy()

    # valence, arousal, ambiguity over kept annotations (FindingEmo §A.5: maximum distance)
    for dim in ("valence", "arousal", "ambiguity"):
        if dim not in kept.columns:
            continue
        g = pd.to_numeric(kept[dim], errors="coerce").astype("float64").groupby(kimg)
        stats = g.agg(["mean", "median", "std", "max", "min", "count"]).reindex(all_images)
        out[f"{dim}_mean"] = stats["mean"]
        out[f"{dim}_median"] = stats["median"]
        out[f"{dim}_std"] = stats["std"]
        out[f"{dim}_range"] = stats["max"] - stats["min"]
        out[f"{dim}_n"] = stats["count"].fillna(0).astype("int64")

    _age_shares(out, kept, kimg, all_images)
    out["merge_policy"] = policy_label(pol)
    _carry_item_columns(out, annotations, all_images, item_columns)
    merged = out.reset_index()
    est = pd.concat([e for e in estimates if len(e)], ignore_index=True) if any(len(e) for e in estimates) else empty_estimates()
    return merged, est


def _level_votes(kept: pd.DataFrame, tax: Taxonomy, lt: Taxonomy, prefix: str) -> pd.Series:
    """The vote of each kept annotation at this level; non-emotion labels vote as themselves."""
    if prefix in kept.columns:
        v = kept[prefix].astype(object).where(kept[prefix].notna(), None)
    else:
        v = pd.Series([None] * len(kept), index=kept.index, dtype=object)
    if "emotion" in kept.columns and tax.non_emotion_labels:
        ne = kept["emotion"].isin(list(tax.non_emotion_labels))
        if "taxonomy" in kept.columns:
            ne &= kept["taxonomy"] == tax.name
        v = v.where(~ne, kept["emotion"])
    if prefix == "emotion" and "taxonomy" in kept.columns:
        v = v.where(kept["taxonomy"] == lt.name, None)  # a flat level counts only its own taxonomy
    valid = set(lt.all_labels) | set(tax.non_emotion_labels)
    return v.where(v.isin(list(valid)), None)


def _vote_lists(C: np.ndarray, universe: list[str]) -> list[list[dict]]:
    """Per-image vote distribution = the human soft label (FindingEmo §A.5, AffectNet+ Supplement II)."""
    tot = C.sum(axis=1)
    out = []
    for r in range(C.shape[0]):
        nz = np.flatnonzero(C[r])
        out.append([{"label": universe[j], "votes": int(C[r, j]), "share": float(C[r, j] / tot[r])} for j in nz])
    return out


def _max_distance(lt: Taxonomy, universe: list[str], C: np.ndarray) -> np.ndarray:
    """FindingEmo §A.5, Fig. 14: the largest wheel distance (Fig. 13) between labels voted for an image."""
    res = np.full(C.shape[0], np.nan)
    if not lt.has_wheel:
        return res
    emo = [j for j, x in enumerate(universe) if lt.is_emotion(x)]
    present = C[:, emo] > 0
    any_emo = present.any(axis=1)
    res[any_emo] = 0.0
    for ii in range(len(emo)):
        for jj in range(ii + 1, len(emo)):
            d = lt.distance(universe[emo[ii]], universe[emo[jj]])
            both = present[:, ii] & present[:, jj]
            if both.any():
                res[both] = np.maximum(res[both], d)
    return res


def _aggregate_level(pol: Aggregator, lt: Taxonomy, universe: list[str], counts: pd.DataFrame,
                     query_labels: list[str | None], kept_votes: pd.DataFrame, prefix: str) -> tuple[dict, pd.DataFrame]:
    """One level's aggregation by the policy (majority with noise removal, plurality with the
    AffectNet+ Supplement II tie-break, or a crowd-kit model), fitted on the level's votes."""
    votes = pd.DataFrame({"task": kept_votes["image_id"].astype(str).to_numpy(),
                          "worker": kept_votes["annotator_id"].astype(str).to_numpy(),
                          "label": kept_votes["_vote"].astype(str).to_numpy()})
    ties = dict(zip(counts.index, query_labels))
    agg = replace(pol) if is_dataclass(pol) else pol
    agg.fit(votes, tasks=counts.index, labels=universe, tie_labels=ties, level=prefix)
    res = {"winner": agg.labels_.tolist(), "status": agg.status_.tolist(), "reason": agg.reasons_.tolist(),
           "confidence": agg.confidence_.to_numpy()}
    return res, agg.estimates_


def _age_shares(out: pd.DataFrame, kept: pd.DataFrame, kimg: pd.Series, all_images: pd.Index) -> None:
    """Age groups (multi-label, FindingEmo §2.1) per image: share of kept annotations ticking each."""
    from ops.annotations.schema import FINDINGEMO_AGE_GROUPS

    if "age_groups" not in kept.columns:
        return
    has = kept["age_groups"].map(lambda x: isinstance(x, (list, tuple, np.ndarray))).to_numpy(dtype=bool)
    ex = pd.DataFrame({"image_id": kimg.to_numpy()[has], "g": kept["age_groups"].to_numpy()[has]}).explode("g").dropna(subset=["g"])
    groups = list(FINDINGEMO_AGE_GROUPS) + sorted(set(ex["g"]) - set(FINDINGEMO_AGE_GROUPS))
    # the share among kept annotations that record age groups: NULL for an image none of whose
    # annotations has the field (a vote-count source), 0 when they all leave the group unticked
    n = kimg[has].value_counts().reindex(all_images, fill_value=0)
    ticks = pd.DataFrame(_count_matrix(ex["image_id"], ex["g"], all_images, groups), index=all_images, columns=groups)
    denom = n.where(n > 0)
    maj = [[] for _ in range(len(all_images))]
    for gname in groups:
        share = (ticks[gname] / denom).to_numpy(dtype="float64")
        out[f"age_{slug(gname)}"] = share
        for r in np.flatnonzero(share > 0.5):
            maj[r].append(gname)
    out["age_groups_majority"] = maj


def _carry_item_columns(out: pd.DataFrame, annotations: pd.DataFrame, all_images: pd.Index, item_columns: Sequence[str] | None) -> None:
    """Image-level columns (image_path, query, split, ...) carried onto the merged row."""
    a = annotations.assign(_i=annotations["image_id"].astype(str))
    if item_columns is None:
        cand = [c for c in a.columns if c not in PER_ANNOTATION_COLUMNS and c not in ("image_id", "_i")]
        cols = []
        for c in cand:
            if c in CARRIED_COLUMNS:
                cols.append(c)
                continue
            try:
                if a.groupby("_i")[c].nunique(dropna=True).max() <= 1:
                    cols.append(c)
            except TypeError:  # unhashable values (lists): not an item-level scalar column
                continue
    else:
        missing = [c for c in item_columns if c not in a.columns]
        if missing:
            raise KeyError(f"item columns not in annotations: {missing}")
        cols = list(item_columns)
    if not cols:
        return
    first = a.groupby("_i")[cols].first().reindex(all_images)
    for c in cols:
        if c in out.columns:
            continue
        out[c] = first[c]


def merged_to_arrow(merged: pd.DataFrame):
    """``merged_annotations`` as an Arrow table with stable types for the nested columns (vote lists
    as list<struct<label string, votes int64, share double>>, age_groups_majority as list<string>),
    also when every list is empty."""
    import pyarrow as pa

    vote_type = pa.list_(pa.struct([("label", pa.string()), ("votes", pa.int64()), ("share", pa.float64())]))
    base = pa.Table.from_pandas(merged, preserve_index=False)
    fields = []
    for f in base.schema:
        if f.name.endswith("_votes") and f.name[: -len("_votes")] + "_n_votes" in merged.columns:
            fields.append(pa.field(f.name, vote_type))
        elif f.name == "age_groups_majority":
            fields.append(pa.field(f.name, pa.list_(pa.string())))
        elif pa.types.is_null(f.type):
            fields.append(pa.field(f.name, pa.string()))
        else:
            fields.append(f)
    schema = pa.schema(fields)
    if merged.empty:  # an empty frame's pandas dtypes (float64 for list columns) would not convert
        return schema.empty_table()
    return pa.Table.from_pandas(merged, schema=schema, preserve_index=False)


def merge_all_taxonomies(annotations: pd.DataFrame, policy: "str | Mapping[str, Any] | Aggregator" = "majority",
                         excluded: Iterable[str] = (), keyword_labels: Mapping[str, str] | None = None,
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge per taxonomy (a FindingEmo source and an AffectNet vote-count source can coexist):
    one row per (image, taxonomy), columns of each taxonomy's levels side by side, plus the annotator
    estimates of crowd-kit policies with their taxonomy."""
    pol = make_aggregator(policy)
    merged, estimates = [], []
    excluded = list(excluded)
    groups = list(annotations.groupby("taxonomy", sort=True))
    if not groups:  # no annotation at all: still the full (empty) schema, Plutchik's levels
        groups = [("plutchik24", annotations)]
    for tax, part in groups:
        m, e = merge_annotations_with_estimates(part, pol, taxonomy=str(tax), excluded_annotators=excluded,
                                                keyword_labels=keyword_labels)
        m.insert(1, "taxonomy", tax)
        merged.append(m)
        if e is not None and len(e):
            e = e.copy()
            e.insert(0, "taxonomy", tax)
            estimates.append(e)
    m = pd.concat(merged, ignore_index=True)
    e = pd.concat(estimates, ignore_index=True) if estimates else pd.DataFrame(
        columns=["taxonomy", "method", "level", "annotator_id", "kind", "true_label", "observed_label", "value"])
    return m, e
