"""Annotation assets (FindingEmo §2.1, §2.3.2, §2.3.3, §A.5; AffectNet+ Supplement II).

raw_annotations → annotator_scores → merged_annotations → annotation_stats, and annotation_queue
(the next images to serve). All offline: the embedded default is FindingEmo-Light's annotations.
"""

import base64
import io
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets._meta import breakdown, md_table
from assets.acquisition import downloaded_images
from assets.dedup import unique_images
from assets.resources import EmoforgeResource
from ops.annotations import statistics as stats
from ops.annotations.queue import select_next_batch
from ops.annotations.sources import gold_references, merge_all_taxonomies, read_sources
from ops.annotations.readers import annotations_to_arrow, durations_from_timestamps, reject_summary
from ops.annotations.grading import grade_annotators, score_duration_correlation
from ops.labels.merge import merged_to_arrow

GROUP = "annotations"


def _base_dir(emo: EmoforgeResource) -> Path | None:
    return Path(emo.config_path).resolve().parent if emo.config_path else None


def _png_md(fig, title: str, path: Path) -> MetadataValue:
    """The figure inline in the UI (markdown with a data: URI) and as a PNG file under exports/."""
    from warehouse.store import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return MetadataValue.md(f"**{title}** (`{path}`)\n\n"
                            f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")


def _link_to_acquired(wh, ann: pd.DataFrame) -> pd.DataFrame:
    """Link annotations to acquired images: FindingEmo paths are the URL-list provider's item ids, and
    an image id or path that is a URL matches the candidate with the same normalized URL."""
    from ops.acquisition.candidates import normalize_url

    ann = ann.copy()
    ann["sha256"] = pd.Series(pd.NA, index=ann.index, dtype="string")
    ann["url"] = pd.Series(pd.NA, index=ann.index, dtype="string")
    if not wh.has_table("downloaded_images") or ann.empty:
        return ann
    dl = wh.read_table("downloaded_images", columns=["item_id", "normalized_url", "status", "sha256", "url"])
    ok = dl[dl["status"] == "ok"]
    by_item = ok[ok["item_id"].notna()].drop_duplicates("item_id").set_index("item_id")
    by_url = ok[ok["normalized_url"].notna()].drop_duplicates("normalized_url").set_index("normalized_url")
    any_item = dl[dl["item_id"].notna()].drop_duplicates("item_id").set_index("item_id")
    sha = ann["image_id"].map(by_item["sha256"])
    url = ann["image_id"].map(any_item["url"])
    for col in ("image_id", "image_path"):
        if col in ann:
            norm = ann[col].map(lambda v: normalize_url(v) if isinstance(v, str) and "://" in v else None)
            sha = sha.fillna(norm.map(by_url["sha256"]))
            url = url.fillna(norm.map(by_url["url"]))
    ann["sha256"] = sha.astype("string")
    ann["url"] = url.astype("string")
    return ann


@asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[downloaded_images],
       description="Every configured annotation export (FindingEmo .ann, long, vote counts) as one row per "
                   "(image, annotator): the CONTRACT `annotations` table. Bad rows go to "
                   "`annotation_rejects` with file, line, field and reason. Annotations are linked to acquired "
                   "images where they can be (FindingEmo paths are the URL-list items); the others are kept.")
def raw_annotations(context: AssetExecutionContext, emoforge: EmoforgeResource) -> MaterializeResult:
    cfg = emoforge.settings.annotations
    wh = emoforge.warehouse
    res = read_sources(cfg.sources, _base_dir(emoforge))
    ann = _link_to_acquired(wh, res.annotations)
    rej = res.rejects.astype({"line": "Int64"}) if len(res.rejects) else res.rejects
    wh.write_table("annotation_rejects", rej.astype({c: "string" for c in rej.columns if c != "line"}))
    wh.write_table("annotations", annotations_to_arrow(ann))
    summary = reject_summary(res.rejects)
    return MaterializeResult(metadata={
        "dagster/row_count": MetadataValue.int(len(ann)),
        "items_in": MetadataValue.int(len(ann) + len(res.rejects.drop_duplicates(["file", "line"]))),
        "items_out": MetadataValue.int(len(ann)),
        "dropped": MetadataValue.json({r: int(n) for r, n in summary.groupby("reason")["n"].sum().items()}),
        "rejects": MetadataValue.int(len(res.rejects)),
        "rejects_by_reason": md_table(summary, max_rows=20),
        "by_source": MetadataValue.json(breakdown(ann["source"])),
        "n_images": MetadataValue.int(int(ann["image_id"].nunique())),
        "n_annotators": MetadataValue.int(int(ann["annotator_id"].nunique())),
        "linked_to_acquired_images": MetadataValue.int(int(ann["sha256"].notna().sum())),
        "examples": md_table(ann[["image_id", "annotator_id", "emotion24", "emotion8", "valence", "arousal"]]),
    })


@asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[raw_annotations],
       description="Annotator grading on the fixed overlap images (FindingEmo §2.3.3): s = matching "
                   "datapoints / 20, s_alt, accept at s ≥ threshold, the exclusion policy and its reason; "
                   "Spearman correlation of completion time and score.")
def annotator_scores(context: AssetExecutionContext, emoforge: EmoforgeResource) -> MaterializeResult:
    cfg = emoforge.settings.annotations.grading
    wh = emoforge.warehouse
    ann = wh.read_table("annotations")
    gold = gold_references(cfg, _base_dir(emoforge))
    durations = durations_from_timestamps(ann)
    scores = grade_annotators(ann, gold, threshold=cfg.threshold, durations=durations,
                              score_for_decision=cfg.score_for_decision, policy=cfg.policy)
    corr = score_duration_correlation(scores)
    wh.write_table("annotator_scores", scores)
    if not gold:
        context.log.warning("no gold (fixed overlap) images configured: every annotator is 'ungraded' "
                            "(set annotations.grading.gold or gold_path)")
    return MaterializeResult(metadata={
        "dagster/row_count": MetadataValue.int(len(scores)),
        "gold_images": MetadataValue.int(len(gold)),
        "decisions": MetadataValue.json(breakdown(scores["decision"])),
        "excluded": MetadataValue.int(int(scores["excluded"].sum())),
        "score_duration_spearman": md_table(corr),
        "examples": md_table(scores[["annotator_id", "n_annotations", "score", "score_alt", "decision", "reason"]]),
    })


@asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[annotator_scores],
       description="One row per image (and taxonomy): annotators, keep/reject majority, Emo24/Emo8 vote "
                   "distributions and the aggregated label under the configured policy (majority, plurality "
                   "with query tie-break, Dawid–Skene...), agreement, V/A/ambiguity spread, age-group shares.")
def merged_annotations(context: AssetExecutionContext, emoforge: EmoforgeResource) -> MaterializeResult:
    cfg = emoforge.settings.annotations.merge
    wh = emoforge.warehouse
    ann = wh.read_table("annotations")
    scores = wh.read_table("annotator_scores")
    excluded = scores.loc[scores["excluded"].astype(bool), "annotator_id"].tolist()
    merged, estimates = merge_all_taxonomies(ann, cfg, excluded)
    wh.write_table("annotator_estimates", estimates)
    wh.write_table("merged_annotations", merged_to_arrow(merged))
    status_col = next((c for c in ("emotion8_status", "emotion_status") if c in merged), None)
    return MaterializeResult(metadata={
        "dagster/row_count": MetadataValue.int(len(merged)),
        "policy": cfg.policy,
        "excluded_annotators": MetadataValue.int(len(excluded)),
        "label_status": MetadataValue.json(breakdown(merged[status_col]) if status_col else {}),
        "keep_majority": MetadataValue.json(breakdown(merged["keep_majority"])),
        "examples": md_table(merged[[c for c in ("image_id", "n_annotators", "emotion8", "emotion8_status",
                                                  "valence_mean", "arousal_mean") if c in merged]]),
    })


@asset(group_name=GROUP, kinds={"duckdb"}, deps=[merged_annotations],
       description="Annotation statistics as DuckDB views over `annotations` and `merged_annotations`: "
                   "emotion8_stats (CONTRACT), emotion24_stats, annotations per annotator, histograms of "
                   "distinct labels and wheel distance (Figs. 12, 14), Emo8 pair prevalence (Fig. 15), "
                   "V/A co-occurrence (Fig. 5), maximum V/A distance (§A.5).")
def annotation_stats(context: AssetExecutionContext, emoforge: EmoforgeResource) -> MaterializeResult:
    wh = emoforge.warehouse
    ddl = [stats.view_ddl(name, "annotator_scores") for name in stats.VIEWS]
    wh.refresh_catalog(extra_sql=ddl)
    con = wh.connect()
    try:
        e8 = con.execute("select * from emotion8_stats").df()
        va = con.execute("select * from va_cooccurrence").df()
        dist = con.execute("select * from distinct_labels_histogram").df()
        vmax = con.execute("select * from va_max_distance").df()
    finally:
        con.close()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(e8["emotion8"], e8["n"], color="#4c72b0")
    ax.set_ylabel("kept annotations")
    ax.set_title("Emo8 distribution")
    ax.tick_params(axis="x", rotation=45)
    emo_plot = _png_md(fig, "Emo8 distribution", wh.export_path("emotion8_distribution.png"))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    vcol, acol, ncol = va.columns[0], va.columns[1], va.columns[-1]
    ax.scatter(va[vcol], va[acol], s=va[ncol] / max(1, va[ncol].max()) * 900, alpha=0.6, color="#dd8452")
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    ax.set_title("(valence, arousal) co-occurrence")
    va_plot = _png_md(fig, "V/A co-occurrence", wh.export_path("va_cooccurrence.png"))
    return MaterializeResult(metadata={
        "views": MetadataValue.json(list(stats.VIEWS)),
        "emotion8_stats": md_table(e8, max_rows=8),
        "distinct_labels_histogram": md_table(dist, max_rows=10),
        "va_max_distance": md_table(vmax),
        "emotion8_plot": emo_plot,
        "va_bubble_plot": va_plot,
        "query": "emoforge sql \"select * from emotion8_stats\"",
    })


@asset(group_name=GROUP, kinds={"python", "parquet", "csv", "json"}, deps=[merged_annotations, unique_images],
       description="The next K images to serve to annotators (FindingEmo §2.3.2, §2.3.3): keep probability "
                   "≥ 0.75 where predictions exist, Emo8 labels drawn with odds inversely proportional to their "
                   "frequency, and with probability p_R an overlap image (gold first, then images with fewer "
                   "than 5 annotations). Exported as CSV and JSON.")
def annotation_queue(context: AssetExecutionContext, emoforge: EmoforgeResource) -> MaterializeResult:
    s = emoforge.settings
    cfg = s.annotations.queue
    wh = emoforge.warehouse
    ann = wh.read_table("annotations", columns=["image_id", "annotator_id"])
    if wh.has_table("unique_images"):
        u = wh.read_table("unique_images", columns=["sha256", "item_id"])
        # an acquired image is known by its URL-list item id when it has one (FindingEmo paths)
        pool = [i if isinstance(i, str) and i else s for i, s in zip(u["item_id"], u["sha256"])]
        pool_source = "unique_images"
    else:
        from assets.acquisition import url_list_spec
        from ops.acquisition.search import load_url_list

        pool = load_url_list(url_list_spec(s)).get("item_id").tolist()
        pool_source = "url_list (no acquired images yet)"
    pool = sorted(set(pool) | set(ann["image_id"]))
    predictions = wh.read_table("image_predictions") if wh.has_table("image_predictions") else None
    gold = [g.image_id for g in gold_references(s.annotations.grading, _base_dir(emoforge))]
    batch = select_next_batch(pool, ann, predictions, k=cfg.k, p_r=cfg.p_r, gold_ids=gold, seed=cfg.seed,
                              keep_threshold=cfg.keep_threshold, target_overlap=cfg.target_overlap)
    wh.write_table("annotation_queue", batch)
    csv_path = wh.export_path("annotation_queue.csv")
    json_path = wh.export_path("annotation_queue.json")
    from warehouse.store import atomic_write_bytes

    atomic_write_bytes(csv_path, batch.to_csv(index=False).encode())
    atomic_write_bytes(json_path, batch.to_json(orient="records", indent=1, date_format="iso").encode())
    if predictions is None:
        context.log.warning("no keep/Emo8 predictions yet: the queue falls back to uniform selection")
    return MaterializeResult(metadata={
        "dagster/row_count": MetadataValue.int(len(batch)),
        "pool": MetadataValue.int(len(pool)), "pool_source": pool_source,
        "predictions_available": predictions is not None,
        "selection": MetadataValue.json(breakdown(batch["selection"])) if len(batch) else MetadataValue.json({}),
        "csv": MetadataValue.path(str(csv_path)), "json": MetadataValue.path(str(json_path)),
        "examples": md_table(batch),
    })
