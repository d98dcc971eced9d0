"""Annotation statistics as DuckDB views (SQL over ``annotations`` / ``merged_annotations``) and
the same computations in pandas (for asset metadata and tests).

Views (:data:`VIEWS`, :func:`view_ddl`; each names the paper section/figure it reproduces):

    emotion8_stats            FindingEmo §2.4 Table 2: per Plutchik leaf over KEPT annotations:
                              emotion8, n, arousal_mean, arousal_std, valence_mean, valence_std,
                              ambiguity_mean, ambiguity_std (sample std); all 8 leaves, wheel order
    emotion24_stats           §A.6 Table A.6: the same per Emo24 emotion (+ its emotion8 leaf)
    annotations_per_annotator annotator_id, n_annotations, n_keep, n_reject, n_images, first_at, last_at
    annotators_per_image      §A.5 Table 3: n_annotators, n_images
    keep_majority_counts      §A.5: keep_majority, n_images (1294 keep / 137 reject / 94 undecided)
    distinct_labels_histogram §A.5 Fig. 12: level, n_distinct, n_images (keep-majority images with >= 2 votes)
    max_distance_histogram    §A.5 Fig. 14: level, max_distance, n_images (images with > 1 distinct label)
    emotion8_pair_prevalence  §A.5 Fig. 15: label_a, label_b (wheel order), wheel_distance, n_images
                              (keep-majority images with exactly 2 distinct Emo8 labels)
    va_cooccurrence           §2.4 Fig. 5: valence, arousal, n (kept annotations)
    va_max_distance           §A.5: n_images, arousal_mean/std and valence_mean/std of the per-image
                              maximum distance (max - min) over keep-majority images with >= 2 values
    va_max_distance_by_n      §A.5 Fig. 16: the same per number of annotations (n_values)
"""

from __future__ import annotations

from typing import Iterable

import duckdb
import pandas as pd

from ops.annotations.taxonomy import EMO8, PLUTCHIK24

STAT_DIMS = ("arousal", "valence", "ambiguity")


def _values(tax, col: str) -> str:
    """A VALUES table of labels in wheel order (FindingEmo Fig. 3 / Table 2 order)."""
    rows = ", ".join(f"('{x}', {i})" for i, x in enumerate(tax.labels))
    return f"(VALUES {rows}) AS o({col}, ord)"


def _emo8_ordinals(alias: str) -> str:
    """A VALUES table of Emo8 leaf ordinals (FindingEmo Fig. 13)."""
    rows = ", ".join(f"('{x}', {int(EMO8.ordinal(x))})" for x in EMO8.labels)
    return f"(VALUES {rows}) AS {alias}(label, ordinal)"


def _exclusion(excluded_table: str | None) -> str:
    """SQL filter leaving out annotators excluded by grading (FindingEmo §2.3.3)."""
    if not excluded_table:
        return ""
    return f" AND a.annotator_id NOT IN (SELECT annotator_id FROM {excluded_table} WHERE excluded)"


def emotion_stats_sql(level: str = "emotion8", excluded_table: str | None = None) -> str:
    """FindingEmo §2.4 Table 2 (level emotion8) / §A.6 (emotion24): n and mean/sample std of
    arousal, valence, ambiguity per label over kept annotations. ``excluded_table``: e.g.
    "annotator_scores" to leave out annotators the grading excluded."""
    tax = EMO8 if level == "emotion8" else PLUTCHIK24
    aggs = ",\n       ".join(
        f"avg(a.{d}) AS {d}_mean, stddev_samp(a.{d}) AS {d}_std" for d in STAT_DIMS
    )
    extra = "" if level == "emotion8" else ", o2.emotion8"
    join2 = "" if level == "emotion8" else (
        " JOIN (VALUES " + ", ".join(f"('{k}', '{v}')" for k, v in PLUTCHIK24.parent.items()) + ") AS o2(emotion24, emotion8) USING (emotion24)"
    )
    return (
        f"SELECT o.{level}{extra}, count(a.{level}) AS n,\n       {aggs}\n"
        f"FROM {_values(tax, level)}{join2}\n"
        f"LEFT JOIN annotations a ON a.{level} = o.{level} AND a.keep{_exclusion(excluded_table)}\n"
        f"GROUP BY ALL ORDER BY min(o.ord)"
    )


ANNOTATIONS_PER_ANNOTATOR_SQL = """
SELECT annotator_id, count(*) AS n_annotations,
       count(*) FILTER (WHERE keep) AS n_keep, count(*) FILTER (WHERE NOT keep) AS n_reject,
       count(DISTINCT image_id) AS n_images, min(annotated_at) AS first_at, max(annotated_at) AS last_at
FROM annotations GROUP BY annotator_id ORDER BY n_annotations DESC, annotator_id
""".strip()

ANNOTATORS_PER_IMAGE_SQL = """
SELECT n_annotators, count(*) AS n_images FROM merged_annotations GROUP BY n_annotators ORDER BY n_annotators
""".strip()

KEEP_MAJORITY_SQL = """
SELECT keep_majority, count(*) AS n_images FROM merged_annotations
WHERE n_annotations > 0 GROUP BY keep_majority ORDER BY keep_majority
""".strip()

DISTINCT_LABELS_SQL = """
SELECT 'emotion8' AS level, emotion8_n_distinct AS n_distinct, count(*) AS n_images
FROM merged_annotations WHERE keep_majority = 'keep' AND emotion8_n_votes >= 2 GROUP BY ALL
UNION ALL
SELECT 'emotion24', emotion24_n_distinct, count(*)
FROM merged_annotations WHERE keep_majority = 'keep' AND emotion24_n_votes >= 2 GROUP BY ALL
ORDER BY level, n_distinct
""".strip()

MAX_DISTANCE_SQL = """
SELECT 'emotion8' AS level, emotion8_max_distance AS max_distance, count(*) AS n_images
FROM merged_annotations WHERE keep_majority = 'keep' AND emotion8_n_distinct > 1 GROUP BY ALL
UNION ALL
SELECT 'emotion24', emotion24_max_distance, count(*)
FROM merged_annotations WHERE keep_majority = 'keep' AND emotion24_n_distinct > 1 GROUP BY ALL
ORDER BY level, max_distance
""".strip()

PAIR_PREVALENCE_SQL = f"""
SELECT p.label_a, p.label_b,
       least(abs(oa.ordinal - ob.ordinal), 8 - abs(oa.ordinal - ob.ordinal)) AS wheel_distance,
       count(*) AS n_images
FROM (SELECT emotion8_votes[1].label AS label_a, emotion8_votes[2].label AS label_b
      FROM merged_annotations WHERE keep_majority = 'keep' AND emotion8_n_distinct = 2) p
JOIN {_emo8_ordinals('oa')} ON oa.label = p.label_a
JOIN {_emo8_ordinals('ob')} ON ob.label = p.label_b
GROUP BY ALL ORDER BY n_images DESC, label_a, label_b
""".strip()

VA_COOCCURRENCE_SQL = """
SELECT valence, arousal, count(*) AS n FROM annotations
WHERE keep AND valence IS NOT NULL AND arousal IS NOT NULL GROUP BY ALL ORDER BY valence, arousal
""".strip()

VA_MAX_DISTANCE_SQL = """
SELECT count(*) AS n_images,
       avg(arousal_range) AS arousal_mean, stddev_samp(arousal_range) AS arousal_std,
       avg(valence_range) AS valence_mean, stddev_samp(valence_range) AS valence_std
FROM merged_annotations WHERE keep_majority = 'keep' AND valence_n >= 2 AND arousal_n >= 2
""".strip()

VA_MAX_DISTANCE_BY_N_SQL = """
SELECT valence_n AS n_values, count(*) AS n_images,
       avg(arousal_range) AS arousal_mean, stddev_samp(arousal_range) AS arousal_std,
       avg(valence_range) AS valence_mean, stddev_samp(valence_range) AS valence_std
FROM merged_annotations WHERE keep_majority = 'keep' AND valence_n >= 2 AND arousal_n >= 2
GROUP BY valence_n ORDER BY valence_n
""".strip()


def views(excluded_table: str | None = None) -> dict[str, str]:
    """View name -> SELECT statement (over tables/views ``annotations`` and ``merged_annotations``)."""
    return {
        "emotion8_stats": emotion_stats_sql("emotion8", excluded_table),
        "emotion24_stats": emotion_stats_sql("emotion24", excluded_table),
        "annotations_per_annotator": ANNOTATIONS_PER_ANNOTATOR_SQL,
        "annotators_per_image": ANNOTATORS_PER_IMAGE_SQL,
        "keep_majority_counts": KEEP_MAJORITY_SQL,
        "distinct_labels_histogram": DISTINCT_LABELS_SQL,
        "max_distance_histogram": MAX_DISTANCE_SQL,
        "emotion8_pair_prevalence": PAIR_PREVALENCE_SQL,
        "va_cooccurrence": VA_COOCCURRENCE_SQL,
        "va_max_distance": VA_MAX_DISTANCE_SQL,
        "va_max_distance_by_n": VA_MAX_DISTANCE_BY_N_SQL,
    }


VIEWS = views()


# ---- views adapted to the taxonomies present ----------------------------------------------------------

PLUTCHIK_VIEWS = ("emotion8_stats", "emotion24_stats", "distinct_labels_histogram", "max_distance_histogram",
                  "emotion8_pair_prevalence")
GENERIC_VIEWS = ("annotations_per_annotator", "annotators_per_image", "keep_majority_counts", "va_cooccurrence",
                 "va_max_distance", "va_max_distance_by_n")


def label_levels(taxonomies: Iterable[str]) -> list[tuple[str, str]]:
    """(taxonomy, merged column prefix) of every label level of the taxonomies present: Plutchik gives
    emotion24 and emotion8, a flat taxonomy such as affectnet8 gives ``emotion``."""
    from ops.annotations.taxonomy import get_taxonomy, levels
    from ops.labels.merge import level_column

    out = []
    for name in sorted(set(taxonomies)):
        lvls = levels(get_taxonomy(name))
        out.extend((name, level_column(lt, len(lvls))) for lt in lvls)
    return out


def _per_level(template: str, lvls: list[tuple[str, str]]) -> str:
    return "\nUNION ALL\n".join(template.format(tax=t, p=p) for t, p in lvls)


def label_counts_sql(lvls: list[tuple[str, str]]) -> str:
    """Per taxonomy level and label: votes cast (kept annotations), images it won, share of votes."""
    votes = _per_level(
        "SELECT '{tax}' AS taxonomy, '{p}' AS level, v.label, sum(v.votes)::BIGINT AS n_votes, "
        "count(*) FILTER (WHERE m.{p}_winner = v.label) AS n_images_won "
        "FROM merged_annotations m, unnest(m.{p}_votes) AS u(v) WHERE m.taxonomy = '{tax}' GROUP BY ALL", lvls)
    return (f"SELECT *, n_votes / sum(n_votes) OVER (PARTITION BY taxonomy, level) AS vote_share FROM (\n{votes}\n) "
            f"ORDER BY taxonomy, level, n_votes DESC, label")


def agreement_sql(lvls: list[tuple[str, str]]) -> str:
    """Per taxonomy level: images by number of distinct labels voted (FindingEmo Fig. 12 for any
    taxonomy), over images with at least 2 votes, with the share of unanimous images."""
    body = _per_level(
        "SELECT '{tax}' AS taxonomy, '{p}' AS level, {p}_n_distinct AS n_distinct, count(*) AS n_images "
        "FROM merged_annotations WHERE taxonomy = '{tax}' AND {p}_n_votes >= 2 GROUP BY ALL", lvls)
    return (f"SELECT *, n_images / sum(n_images) OVER (PARTITION BY taxonomy, level) AS share FROM (\n{body}\n) "
            f"ORDER BY taxonomy, level, n_distinct")


def vote_share_sql(lvls: list[tuple[str, str]]) -> str:
    """Per taxonomy level: images by the winning label's vote share (tenths), over images with at
    least 2 votes: how clear-cut the multi-annotated labels are (AffectNet+ Supplement II)."""
    body = _per_level(
        "SELECT '{tax}' AS taxonomy, '{p}' AS level, floor(list_max(list_transform({p}_votes, lambda x: x.share)) * 10) / 10 "
        "AS top_share, count(*) AS n_images FROM merged_annotations "
        "WHERE taxonomy = '{tax}' AND {p}_n_votes >= 2 GROUP BY ALL", lvls)
    return f"SELECT * FROM (\n{body}\n) ORDER BY taxonomy, level, top_share"


EMOTION8_BY_SOURCE_SQL = """
SELECT s.source, o.emotion8, count(a.emotion8) AS n,
       avg(a.arousal) AS arousal_mean, stddev_samp(a.arousal) AS arousal_std,
       avg(a.valence) AS valence_mean, stddev_samp(a.valence) AS valence_std,
       avg(a.ambiguity) AS ambiguity_mean, stddev_samp(a.ambiguity) AS ambiguity_std
FROM (SELECT DISTINCT source FROM annotations WHERE emotion8 IS NOT NULL) s
CROSS JOIN {values}
LEFT JOIN annotations a ON a.source = s.source AND a.emotion8 = o.emotion8 AND a.keep{excl}
GROUP BY ALL ORDER BY s.source, min(o.ord)
""".strip()


def views_for(taxonomies: Iterable[str], excluded_table: str | None = None) -> dict[str, str]:
    """The statistics views that apply to the taxonomies present in ``merged_annotations``:
    FindingEmo's Plutchik views when Plutchik data exists (FindingEmo §2.4, §A.5), per-label counts,
    agreement and vote-share views for every taxonomy, and the taxonomy-free ones."""
    taxonomies = sorted(set(taxonomies))
    lvls = label_levels(taxonomies)
    allv = views(excluded_table)
    out = {n: allv[n] for n in GENERIC_VIEWS}
    if any(p in ("emotion8", "emotion24") for _, p in lvls):
        out.update({n: allv[n] for n in PLUTCHIK_VIEWS})
        excl = _exclusion(excluded_table).replace(" AND a.annotator_id", " AND a.annotator_id")
        out["emotion8_stats_by_source"] = EMOTION8_BY_SOURCE_SQL.format(values=_values(EMO8, "emotion8"), excl=excl)
    if lvls:
        out["label_counts"] = label_counts_sql(lvls)
        out["label_agreement"] = agreement_sql(lvls)
        out["vote_share_histogram"] = vote_share_sql(lvls)
    return out
ANNOTATION_VIEWS = ("emotion8_stats", "emotion24_stats", "annotations_per_annotator", "va_cooccurrence")
MERGED_VIEWS = tuple(v for v in VIEWS if v not in ANNOTATION_VIEWS)


def view_ddl(name: str, excluded_table: str | None = None) -> str:
    """``CREATE OR REPLACE VIEW name AS ...`` for one statistic."""
    return f"CREATE OR REPLACE VIEW {name} AS\n{views(excluded_table)[name]}"


def sql_stats(annotations: pd.DataFrame, merged: pd.DataFrame | None = None,
              names: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """Run the views on in-memory DataFrames (an in-memory DuckDB; nothing is written)."""
    con = duckdb.connect()
    try:
        con.register("annotations", annotations)
        if merged is not None:
            con.register("merged_annotations", merged)
        wanted = list(names) if names is not None else [n for n in VIEWS if merged is not None or n in ANNOTATION_VIEWS]
        return {n: con.execute(VIEWS[n]).df() for n in wanted}
    finally:
        con.close()


# ---- pandas equivalents --------------------------------------------------------------------------

def _kept(annotations: pd.DataFrame, excluded_annotators: Iterable[str] | None) -> pd.DataFrame:
    """Kept annotations (FindingEmo §2.3.2 keep/reject), minus excluded annotators (§2.3.3)."""
    a = annotations[annotations["keep"].astype(bool)]
    if excluded_annotators:
        a = a[~a["annotator_id"].astype(str).isin({str(x) for x in excluded_annotators})]
    return a


def emotion_stats(annotations: pd.DataFrame, level: str = "emotion8",
                  excluded_annotators: Iterable[str] | None = None) -> pd.DataFrame:
    """FindingEmo §2.4 Table 2 / §A.6: per label n, mean and sample std of arousal, valence,
    ambiguity over kept annotations; every label of the level, in wheel order."""
    tax = EMO8 if level == "emotion8" else PLUTCHIK24
    a = _kept(annotations, excluded_annotators)
    a = a[a[level].notna()]
    g = a.groupby(a[level].astype(str))
    out = pd.DataFrame(index=pd.Index(tax.labels, name=level))
    if level == "emotion24":
        out["emotion8"] = [PLUTCHIK24.parent[x] for x in tax.labels]
    out["n"] = g.size().reindex(out.index, fill_value=0).astype("int64")
    for d in STAT_DIMS:
        x = pd.to_numeric(a[d], errors="coerce").astype("float64").groupby(a[level].astype(str))
        out[f"{d}_mean"] = x.mean().reindex(out.index)
        out[f"{d}_std"] = x.std(ddof=1).reindex(out.index)
    return out.reset_index()


def emotion8_stats(annotations: pd.DataFrame, excluded_annotators: Iterable[str] | None = None) -> pd.DataFrame:
    """CONTRACT ``emotion8_stats`` (FindingEmo §2.4, Table 2)."""
    return emotion_stats(annotations, "emotion8", excluded_annotators)


def emotion24_stats(annotations: pd.DataFrame, excluded_annotators: Iterable[str] | None = None) -> pd.DataFrame:
    """FindingEmo §A.6 (Table A.6): statistics per Emo24 emotion."""
    return emotion_stats(annotations, "emotion24", excluded_annotators)


def annotations_per_annotator(annotations: pd.DataFrame) -> pd.DataFrame:
    """Annotations, keeps and rejects per annotator (FindingEmo §2.3.2, §A.4)."""
    a = annotations
    g = a.groupby(a["annotator_id"].astype(str))
    keep = a["keep"].astype(bool)
    out = pd.DataFrame({
        "n_annotations": g.size(),
        "n_keep": keep.groupby(a["annotator_id"].astype(str)).sum(),
        "n_images": g["image_id"].nunique(),
        "first_at": g["annotated_at"].min(),
        "last_at": g["annotated_at"].max(),
    })
    out["n_reject"] = out["n_annotations"] - out["n_keep"]
    out = out.rename_axis("annotator_id").reset_index()
    out = out[["annotator_id", "n_annotations", "n_keep", "n_reject", "n_images", "first_at", "last_at"]]
    return out.sort_values(["n_annotations", "annotator_id"], ascending=[False, True], ignore_index=True)


def annotators_per_image(merged: pd.DataFrame) -> pd.DataFrame:
    """FindingEmo §A.5 Table 3: number of images per number of annotators."""
    return (merged.groupby("n_annotators").size().rename("n_images").reset_index()
            .sort_values("n_annotators", ignore_index=True))


def keep_majority_counts(merged: pd.DataFrame) -> pd.DataFrame:
    """FindingEmo §A.5: images with a keep majority, a reject majority, undecided."""
    m = merged[merged["n_annotations"] > 0]
    return m.groupby("keep_majority").size().rename("n_images").reset_index().sort_values("keep_majority", ignore_index=True)


def distinct_labels_histogram(merged: pd.DataFrame) -> pd.DataFrame:
    """FindingEmo §A.5 Fig. 12: images per number of distinct Emo8 / Emo24 labels (keep-majority
    images with at least 2 votes)."""
    parts = []
    for lvl in ("emotion8", "emotion24"):
        m = merged[(merged["keep_majority"] == "keep") & (merged[f"{lvl}_n_votes"] >= 2)]
        h = m.groupby(f"{lvl}_n_distinct").size().rename("n_images").rename_axis("n_distinct").reset_index()
        h.insert(0, "level", lvl)
        parts.append(h)
    return pd.concat(parts, ignore_index=True).sort_values(["level", "n_distinct"], ignore_index=True)


def max_distance_histogram(merged: pd.DataFrame) -> pd.DataFrame:
    """FindingEmo §A.5 Fig. 14: images per maximum wheel distance (Fig. 13) between their labels,
    for keep-majority images with more than one distinct label."""
    parts = []
    for lvl in ("emotion8", "emotion24"):
        m = merged[(merged["keep_majority"] == "keep") & (merged[f"{lvl}_n_distinct"] > 1)]
        h = m.groupby(f"{lvl}_max_distance").size().rename("n_images").rename_axis("max_distance").reset_index()
        h.insert(0, "level", lvl)
        parts.append(h)
    return pd.concat(parts, ignore_index=True).sort_values(["level", "max_distance"], ignore_index=True)


def emotion8_pair_prevalence(merged: pd.DataFrame) -> pd.DataFrame:
    """FindingEmo §A.5 Fig. 15: how often each Emo8 pair occurs among keep-majority images with
    exactly 2 distinct Emo8 labels (pair in wheel order, with its wheel distance)."""
    m = merged[(merged["keep_majority"] == "keep") & (merged["emotion8_n_distinct"] == 2)]
    pairs = [tuple(v["label"] for v in votes[:2]) for votes in m["emotion8_votes"]]
    df = pd.DataFrame(pairs, columns=["label_a", "label_b"])
    if df.empty:
        return pd.DataFrame(columns=["label_a", "label_b", "wheel_distance", "n_images"])
    out = df.groupby(["label_a", "label_b"]).size().rename("n_images").reset_index()
    out.insert(2, "wheel_distance", [int(EMO8.distance(a, b)) for a, b in zip(out["label_a"], out["label_b"])])
    return out.sort_values(["n_images", "label_a", "label_b"], ascending=[False, True, True], ignore_index=True)


def va_cooccurrence(annotations: pd.DataFrame) -> pd.DataFrame:
    """FindingEmo §2.4 Fig. 5: counts of (valence, arousal) pairs over kept annotations."""
    a = annotations[annotations["keep"].astype(bool)].dropna(subset=["valence", "arousal"])
    return a.groupby(["valence", "arousal"]).size().rename("n").reset_index().sort_values(["valence", "arousal"], ignore_index=True)


def va_max_distance(merged: pd.DataFrame, by_n: bool = False) -> pd.DataFrame:
    """FindingEmo §A.5 (and Fig. 16 with ``by_n``): mean and std of the maximum distance between
    annotated arousal / valence values over keep-majority images with at least 2 values
    (paper: arousal 2.7 +- 1.4, valence 1.8 +- 1.2)."""
    m = merged[(merged["keep_majority"] == "keep") & (merged["valence_n"] >= 2) & (merged["arousal_n"] >= 2)]

    def agg(x: pd.DataFrame) -> pd.Series:
        return pd.Series({
            "n_images": len(x),
            "arousal_mean": x["arousal_range"].mean(), "arousal_std": x["arousal_range"].std(ddof=1),
            "valence_mean": x["valence_range"].mean(), "valence_std": x["valence_range"].std(ddof=1),
        })

    if not by_n:
        return agg(m).to_frame().T.astype({"n_images": "int64"})
    rows = [{"n_values": n, **agg(g).to_dict()} for n, g in m.groupby("valence_n")]
    out = pd.DataFrame(rows, columns=["n_values", "n_images", "arousal_mean", "arousal_std", "valence_mean", "valence_std"])
    return out.astype({"n_values": "int64", "n_images": "int64"})


def compute_stats(annotations: pd.DataFrame, merged: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """All statistics in pandas, keyed like :data:`VIEWS`."""
    out = {
        "emotion8_stats": emotion8_stats(annotations),
        "emotion24_stats": emotion24_stats(annotations),
        "annotations_per_annotator": annotations_per_annotator(annotations),
        "va_cooccurrence": va_cooccurrence(annotations),
    }
    if merged is not None:
        out.update({
            "annotators_per_image": annotators_per_image(merged),
            "keep_majority_counts": keep_majority_counts(merged),
            "distinct_labels_histogram": distinct_labels_histogram(merged),
            "max_distance_histogram": max_distance_histogram(merged),
            "emotion8_pair_prevalence": emotion8_pair_prevalence(merged),
            "va_max_distance": va_max_distance(merged),
            "va_max_distance_by_n": va_max_distance(merged, by_n=True),
        })
    return out


def stats_metadata(annotations: pd.DataFrame, merged: pd.DataFrame | None = None) -> dict[str, object]:
    """Small JSON-able summary for asset metadata (counts; FindingEmo §2.4 / §A.5 headline numbers)."""
    e8 = emotion8_stats(annotations)
    md: dict[str, object] = {
        "n_annotations": int(len(annotations)),
        "n_kept": int(annotations["keep"].astype(bool).sum()),
        "n_annotators": int(annotations["annotator_id"].nunique()),
        "n_images": int(annotations["image_id"].nunique()),
        "emotion8_counts": {r["emotion8"]: int(r["n"]) for r in e8.to_dict("records")},
    }
    if merged is not None:
        vm = va_max_distance(merged)
        md["keep_majority"] = {r["keep_majority"]: int(r["n_images"]) for r in keep_majority_counts(merged).to_dict("records")}
        md["n_multi_annotated"] = int((merged["n_annotators"] >= 2).sum())
        if len(vm) and vm["n_images"].iat[0] > 0:
            md["va_max_distance"] = {k: (None if pd.isna(v) else float(v)) for k, v in vm.iloc[0].to_dict().items()}
    return md
