"""Annotation assets (FindingEmo §2.1, §2.3.2, §2.3.3, §A.5; AffectNet+ Supplement II).

raw_annotations → annotator_scores → merged_annotations → annotation_stats, and annotation_queue
(the next images to serve). All offline: the embedded default is FindingEmo-Light's annotations.
"""


from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, MetadataValue, asset

from assets._io import AssetIO, code_version, md_table, png_md
from assets._meta import breakdown
from assets.acquisition import downloaded_images
from assets.dedup import unique_images
from assets.demo import demo_world
from assets.resources import EmoforgeResource
from ops import pictures
from ops.annotations import grading, linking, parsing, plots, queue, readers, schema, sources
from ops.annotations import statistics as stats
from ops.annotations.grading import durations_from_timestamps, grade_annotators, score_duration_correlation
from ops.annotations.linking import link_to_acquired
from ops.annotations.queue import queue_pool, queue_predictions, select_next_batch
from ops.annotations.schema import annotations_to_arrow, reject_summary
from ops.annotations.sources import export_files, exports_fingerprint, read_sources
from ops.config.annotations import aggregator, gold_references, source_spec
from ops.labels import aggregators, merge
from ops.labels.merge import merge_all_taxonomies, merged_to_arrow

GROUP = "annotations"


@asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[downloaded_images, demo_world],
       code_version=code_version(readers, parsing, schema, sources, linking),
       description="Every configured annotation export (FindingEmo .ann, long, vote counts) as one row per "
                   "(image, annotator): the CONTRACT `annotations` table. Bad rows go to "
                   "`annotation_rejects` with file, line, field and reason. Annotations are linked to acquired "
                   "images where they can be (FindingEmo paths are the URL-list items); the others are kept.")
def raw_annotations(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.annotations
    io = AssetIO(context, emoforge, cfg.sources)
    files = export_files([source_spec(s) for s in cfg.sources],
                         cfg.grading.gold_path and Path(cfg.grading.gold_path))
    seen = exports_fingerprint(files)      # before reading: a file changed meanwhile is new data next time
    io.external_inputs = seen
    res = read_sources(source_spec(s) for s in cfg.sources)
    downloads = io.read("downloaded_images", columns=["item_id", "normalized_url", "status", "sha256", "url"]) \
        if io.has("downloaded_images") else None
    ann = link_to_acquired(res.annotations, downloads)
    rej = res.rejects.astype({"line": "Int64"}) if len(res.rejects) else res.rejects
    io.write("annotation_rejects", rej.astype({c: "string" for c in rej.columns if c != "line"}))
    written = io.write("annotations", annotations_to_arrow(ann))
    io.wh.record_annotation_exports(seen)
    summary = reject_summary(res.rejects)
    return io.result(
        written, items_in=len(ann) + len(res.rejects.drop_duplicates(["file", "line"])), items_out=len(ann),
        dropped={r: int(n) for r, n in summary.groupby("reason")["n"].sum().items()},
        rejects=MetadataValue.int(len(res.rejects)),
        rejects_by_reason=md_table(summary, max_rows=20) if len(summary) else "no rejects: every source row was read",
        by_source=MetadataValue.json(breakdown(ann["source"])),
        n_images=MetadataValue.int(int(ann["image_id"].nunique())),
        n_annotators=MetadataValue.int(int(ann["annotator_id"].nunique())),
        linked_to_acquired_images=MetadataValue.int(int(ann["sha256"].notna().sum())),
        examples=md_table(ann[["image_id", "annotator_id", "source", "emotion24", "emotion8", "valence", "arousal"]]),
    )


@asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[raw_annotations], code_version=code_version(grading),
       description="Annotator grading on the fixed overlap images (FindingEmo §2.3.3): s = matching "
                   "datapoints / 20, s_alt, accept at s ≥ threshold, the exclusion policy and its reason; "
                   "Spearman correlation of completion time and score.")
def annotator_scores(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.annotations.grading
    io = AssetIO(context, emoforge, cfg)
    ann = io.read("annotations")
    gold = gold_references(cfg)
    scores = grade_annotators(ann, gold, threshold=cfg.threshold, durations=durations_from_timestamps(ann),
                              score_for_decision=cfg.score_for_decision, policy=cfg.policy)
    corr = score_duration_correlation(scores)
    written = io.write("annotator_scores", scores)
    no_gold = "no gold (fixed overlap) images configured: every annotator is 'ungraded' (set annotations.grading.gold or gold_path)"
    if not gold:
        context.log.warning(no_gold)
    why_corr = no_gold if not gold else "fewer than 3 graded annotators with a duration (no timestamps?)"
    return io.result(
        written, gold_images=MetadataValue.int(len(gold)),
        decisions=MetadataValue.json(breakdown(scores["decision"])),
        excluded=MetadataValue.int(int(scores["excluded"].sum())),
        score_duration_spearman=md_table(corr) if corr["rho"].notna().any() else why_corr,
        examples=md_table(scores[["annotator_id", "n_annotations", "score", "score_alt", "decision", "reason"]]),
    )


@asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[annotator_scores],
       code_version=code_version(merge, aggregators),
       description="One row per image (and taxonomy): annotators, keep/reject majority, Emo24/Emo8 vote "
                   "distributions and the aggregated label under the configured policy (majority, plurality "
                   "with query tie-break, Dawid–Skene...), agreement, V/A/ambiguity spread, age-group shares.")
def merged_annotations(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.annotations.merge
    io = AssetIO(context, emoforge, cfg)
    ann = io.read("annotations")
    scores = io.read("annotator_scores")
    excluded = scores.loc[scores["excluded"].astype(bool), "annotator_id"].tolist()
    merged, estimates = merge_all_taxonomies(ann, aggregator(cfg), excluded, cfg.keyword_labels)
    io.write("annotator_estimates", estimates)
    written = io.write("merged_annotations", merged_to_arrow(merged))
    status = {c: breakdown(merged.loc[merged[c].notna(), c]) for c in ("emotion8_status", "emotion_status") if c in merged}
    return io.result(
        written, policy=cfg.policy, excluded_annotators=MetadataValue.int(len(excluded)),
        by_taxonomy=MetadataValue.json(breakdown(merged["taxonomy"])),
        label_status=MetadataValue.json(status),
        keep_majority=MetadataValue.json(breakdown(merged["keep_majority"])),
        annotator_estimates=MetadataValue.int(len(estimates)) if len(estimates) else
        f"none: the {cfg.policy} policy counts votes, it does not model annotators",
        examples=md_table(merged[[c for c in ("image_id", "taxonomy", "n_annotators", "emotion8", "emotion8_status",
                                              "emotion", "valence_mean", "arousal_mean") if c in merged]]),
    )


@asset(group_name=GROUP, kinds={"duckdb"}, deps=[merged_annotations], code_version=code_version(stats, plots),
       description="Annotation statistics as DuckDB views over `annotations` and `merged_annotations`, adapted "
                   "to the taxonomies present: for Plutchik data emotion8_stats (CONTRACT, also per source), "
                   "emotion24_stats, histograms of distinct labels and wheel distance (Figs. 12, 14), Emo8 pair "
                   "prevalence (Fig. 15); for every taxonomy per-label counts, agreement and vote shares; "
                   "annotations per annotator, V/A co-occurrence (Fig. 5), maximum V/A distance (§A.5).")
def annotation_stats(context: AssetExecutionContext, emoforge: EmoforgeResource):
    io = AssetIO(context, emoforge)
    merged = io.read("merged_annotations", columns=["taxonomy", "n_annotators"])
    taxonomies = sorted(set(merged["taxonomy"].dropna())) or ["plutchik24"]
    views = stats.views_for(taxonomies, "annotator_scores")
    desc = io.wh.register_views(views)
    io.identity["views"] = views
    broken = {n: e for n, e in desc.get("skipped_views", {}).items() if n in views}
    if broken:
        raise RuntimeError(f"statistics views that do not bind: {broken}")
    q = io.wh.query
    md: dict = {"views": MetadataValue.json(list(views)), "taxonomies": MetadataValue.json(taxonomies)}
    multi = int((merged["n_annotators"] >= 2).sum())
    single = "every image has one annotator: agreement and spread need at least 2 annotations per image"
    if "emotion8_stats" in views:
        e8 = q("select * from emotion8_stats")
        md["emotion8_stats"] = md_table(e8, max_rows=8)
        md["emotion8_stats_by_source"] = md_table(q("select * from emotion8_stats_by_source"), max_rows=24)
        png = io.figure(plots.label_distribution_png, e8, "emotion8", "Emo8 distribution (kept annotations)")
        path = io.wh.export_path("emotion8_distribution.png")
        io.wh.write_export(path.name, png)
        md["emotion8_plot"] = png_md(png, "Emo8 distribution", path)
        dist = q("select * from distinct_labels_histogram")
        md["distinct_labels_histogram"] = md_table(dist, max_rows=10) if len(dist) else single
    else:
        md["emotion8_stats"] = f"no Plutchik annotations (taxonomies present: {', '.join(taxonomies)})"
    lc = q("select * from label_counts")
    md["label_counts"] = md_table(lc, max_rows=24)
    agree = q("select * from label_agreement")
    md["label_agreement"] = md_table(agree, max_rows=24) if len(agree) else single
    va = q("select * from va_cooccurrence")
    if len(va):
        png = io.figure(plots.va_bubble_png, va)
        path = io.wh.export_path("va_cooccurrence.png")
        io.wh.write_export(path.name, png)
        md["va_bubble_plot"] = png_md(png, "V/A co-occurrence", path)
    else:
        md["va_bubble_plot"] = "no valence/arousal annotations (vote-count sources carry none)"
    vmax = q("select * from va_max_distance")
    has_vmax = len(vmax) and int(vmax["n_images"].iat[0]) > 0
    md["va_max_distance"] = md_table(vmax) if has_vmax else (single if multi == 0 else
                                                             "no keep-majority image has 2 or more V/A values")
    md["multi_annotated_images"] = MetadataValue.int(multi)
    md["sql"] = MetadataValue.text(f'emoforge sql --data-dir {io.wh.root} "select * from '
                                   f'{"emotion8_stats" if "emotion8_stats" in views else "label_counts"}"')
    return io.result(None, **md)


@asset(group_name=GROUP, kinds={"python", "parquet", "csv", "json"},
       deps=[merged_annotations, unique_images, AssetKey("keep_predictions"), AssetKey("emo8_predictions")],
       code_version=code_version(queue),
       description="The next K images to serve to annotators (FindingEmo §2.3.2, §2.3.3): keep probability "
                   "≥ 0.75 where predictions exist, Emo8 labels drawn with odds inversely proportional to their "
                   "frequency, and with probability p_R an overlap image (gold first, then images with fewer "
                   "than 5 annotations). Exported as CSV and JSON.")
def annotation_queue(context: AssetExecutionContext, emoforge: EmoforgeResource):
    s = emoforge.settings
    cfg = s.annotations.queue
    io = AssetIO(context, emoforge, cfg)
    ann = io.read("annotations", columns=["image_id", "annotator_id"])
    unique = io.read("unique_images", columns=["sha256", "item_id"]) if io.has("unique_images") else None
    if unique is not None:
        pool, pool_source = queue_pool(unique, ann), "unique_images"
    else:
        from ops.acquisition.url_lists import load_url_list

        pool = queue_pool(None, ann, load_url_list(s.acquisition.url_list_spec())["item_id"])
        pool_source = "url_list (no acquired images yet)"
    predictions = queue_predictions(
        unique, io.read("keep_predictions") if io.has("keep_predictions") else None,
        io.read("emo8_predictions") if io.has("emo8_predictions") else None)
    gold = [g.image_id for g in gold_references(s.annotations.grading)]
    batch = select_next_batch(pool, ann, predictions, k=cfg.k, p_r=cfg.p_r, gold_ids=gold, seed=cfg.seed,
                              keep_threshold=cfg.keep_threshold, target_overlap=cfg.target_overlap)
    written = io.write("annotation_queue", batch)
    csv_path = io.wh.write_export("annotation_queue.csv", queue.to_csv_bytes(batch))
    json_path = io.wh.write_export("annotation_queue.json",
                                   batch.to_json(orient="records", indent=1, date_format="iso").encode())
    if predictions is None:
        context.log.warning("no keep/Emo8 predictions yet: the queue falls back to uniform selection")
    return io.result(
        written, pool=MetadataValue.int(len(pool)), pool_source=pool_source,
        predictions_available=predictions is not None,
        selection=MetadataValue.json(breakdown(batch["selection"]) if len(batch) else {}),
        csv=MetadataValue.path(str(csv_path)), json=MetadataValue.path(str(json_path)),
        examples=md_table(batch),
        **io.picture("next_batch", lambda b, t: pictures.queue_sheet(_with_sha(io, batch), b, t),
                     "the next images to annotate"),
    )


def _with_sha(io, batch: pd.DataFrame) -> pd.DataFrame:
    """The queue with the sha256 of each image (new images are keyed by it; overlap images through
    their annotations' link to an acquired image)."""
    link = io.read("merged_annotations", columns=["image_id", "sha256"]).dropna().drop_duplicates("image_id")
    sha = batch["image_id"].map(link.set_index("image_id")["sha256"])
    is_sha = batch["image_id"].astype(str).str.fullmatch(r"[0-9a-f]{64}")
    return batch.assign(sha256=sha.where(sha.notna(), batch["image_id"].where(is_sha)))
