"""Blocking asset checks, written as great-expectations 1.x suites (ops.quality).

A failed blocking check stops downstream assets in the same run: unique SHA-256, widths within
the limits, and every candidate with exactly one known status.
"""


from pathlib import Path

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from assets.acquisition import candidate_urls, downloaded_images, scrape_batches, search_results
from assets.annotations import merged_annotations, raw_annotations
from assets.dedup import image_hashes, unique_images
from assets.faces import faces, soft_labels
from assets.models import emo8_predictions, image_features, keep_predictions
from assets.resources import EmoforgeResource
from assets.training import affectnet_baselines, cage_baselines, dataset_splits, deep_affect_baselines, findingemo_baselines
from ops import quality
from ops.acquisition import statuses as S
from ops.acquisition.candidates import PENDING


def _result(outcome: quality.SuiteOutcome) -> AssetCheckResult:
    return AssetCheckResult(
        passed=outcome.success,
        severity=AssetCheckSeverity.ERROR,
        description=outcome.describe(),
        metadata={
            "rows": MetadataValue.int(outcome.n_rows),
            # the same rows were validated by the same suite before: its outcome, not a new run
            "cached": MetadataValue.bool(outcome.cached),
            # a table that grew: the row-wise expectations read only the rows they had not passed before
            **({"new_rows": MetadataValue.int(outcome.new_rows)} if outcome.new_rows is not None else {}),
            "failed_expectations": MetadataValue.json(
                [{"expectation": o.expectation, "column": o.column, "unexpected_count": o.unexpected_count,
                  "examples": [str(x) for x in o.examples[:5]]} for o in outcome.failures()]
            ),
        },
    )


def _validate(emoforge: EmoforgeResource, df, name: str, suite) -> quality.SuiteOutcome:
    """A GX suite on ``df``, answered from the warehouse's earlier outcomes when the rows and the
    suite are the same (a rebuild that rewrote a table unchanged checks nothing again)."""
    return quality.validate(df, name, suite, cache=emoforge.warehouse.check_results())


def _download_statuses(n: int, statuses) -> list[str]:
    known = sorted({*S.FILTER_STATUSES, *S.DOWNLOAD_STATUSES})
    return known + sorted({s for s in statuses if isinstance(s, str) and S.is_known_status(s)} - set(known))


@asset_check(asset=search_results, blocking=True, partitions_def=scrape_batches,
             description="Every query the batch key names was run and logged (a query batch q<start>-<end> "
                         "runs end - start queries of the current plan): a batch that ran fewer fails.")
def search_ran_every_query(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    from ops.acquisition.batches import parse_batch_key

    key = context.partition_key
    kind, start, end = parse_batch_key(key)
    log = emoforge.warehouse.read_table("search_log", partition=key)
    planned = emoforge.settings.acquisition.scrape_plan(emoforge.warehouse.url_list_cache_dir()).size()
    expected = max(0, min(end, planned) - start) if kind == "q" else 1
    ran = len(log)
    passed = ran == expected
    return AssetCheckResult(
        passed=passed, severity=AssetCheckSeverity.ERROR,
        description=(f"{ran} queries run, as the batch key names" if passed else
                     f"batch {key} ran {ran} queries but names {expected} ({end - start} in the key, "
                     f"{planned} planned by the current configuration): rebuild it with --rebuild"),
        metadata={"queries_run": MetadataValue.int(ran), "queries_expected": MetadataValue.int(expected)},
    )


@asset_check(asset=candidate_urls, blocking=True, partitions_def=scrape_batches,
             description="GX: candidate ids unique and not null; every candidate has a known filter status.")
def candidate_urls_valid(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    df = emoforge.warehouse.read_table("candidate_urls", partition=context.partition_key)
    return _result(_validate(emoforge, df, "candidate_urls", quality.candidates_suite([PENDING, *S.FILTER_STATUSES])))


@asset_check(asset=downloaded_images, blocking=True, partitions_def=scrape_batches,
             description="GX: each candidate of the batch appears exactly once, with one known status.")
def downloads_one_status_per_candidate(context: AssetCheckExecutionContext,
                                       emoforge: EmoforgeResource) -> AssetCheckResult:
    wh = emoforge.warehouse
    key = context.partition_key
    n_cand = len(wh.read_table("candidate_urls", partition=key, columns=["candidate_id"]))
    df = wh.read_table("downloaded_images", partition=key)
    allowed = _download_statuses(n_cand, df["status"].unique())
    return _result(_validate(emoforge, df, "downloaded_images", quality.downloads_suite(n_cand, allowed)))


@asset_check(asset=downloaded_images, blocking=True, partitions_def=scrape_batches,
             description="GX: every ok download has a SHA-256 and a decoded width within the limits "
                         "(the same bytes may come from several URLs: uniqueness is checked on image_hashes).")
def downloaded_images_within_limits(context: AssetCheckExecutionContext,
                                    emoforge: EmoforgeResource) -> AssetCheckResult:
    a = emoforge.settings.acquisition
    df = emoforge.warehouse.read_table("downloaded_images", partition=context.partition_key)
    ok = df[df["status"] == S.OK]
    return _result(_validate(emoforge, ok, "downloaded_images_ok",
                                    quality.images_suite(a.min_width, a.max_width, unique=False)))


@asset_check(asset=image_hashes, blocking=True, partitions_def=scrape_batches,
             description="GX: one row per distinct image (unique SHA-256) with a width within the limits.")
def image_hashes_unique(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    a = emoforge.settings.acquisition
    df = emoforge.warehouse.read_table("image_hashes", partition=context.partition_key)
    return _result(_validate(emoforge, df, "image_hashes", quality.images_suite(a.min_width, a.max_width)))


@asset_check(asset=unique_images, blocking=True,
             description="GX: unique SHA-256 per image; widths within the configured limits.")
def unique_images_valid(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    a = emoforge.settings.acquisition
    df = emoforge.warehouse.read_table("unique_images")
    return _result(_validate(emoforge, df, "unique_images", quality.images_suite(a.min_width, a.max_width)))


@asset_check(asset=raw_annotations, blocking=True,
             description="GX: (image, annotator) unique; valence/arousal/ambiguity within each source's scale "
                         "(FindingEmo: −3…3, 0…6, 0…6); Emo24/Emo8 labels from Plutchik's wheel.")
def annotations_valid(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    from ops.annotations.schema import FINDINGEMO_SCALES
    from ops.annotations.taxonomy import EMO8, PLUTCHIK24

    df = emoforge.warehouse.read_table("annotations")
    outcomes = []
    for src in emoforge.settings.annotations.sources:
        name = src.name or (src.kind if src.kind == "findingemo" else Path(src.path).stem)
        if src.kind == "vote_counts":
            continue  # counted votes: no V/A scales, labels of their own taxonomy
        scales = src.scales if src.scales is not None else (FINDINGEMO_SCALES if src.kind == "findingemo" else {})
        part = df[df["source"] == name]
        outcomes.append(_validate(emoforge, part, f"annotations_{name}", quality.annotations_suite(
            {k: tuple(v) for k, v in scales.items()}, list(PLUTCHIK24.labels), list(EMO8.labels))))
    whole = _validate(emoforge, df, "annotations", quality.annotations_suite({}, list(PLUTCHIK24.labels), list(EMO8.labels)))
    outcomes.append(whole)
    failed = [o for o in outcomes if not o.success]
    return _result(failed[0] if failed else whole)


@asset_check(asset=merged_annotations, blocking=True,
             description="GX: one row per (image, taxonomy); vote distributions sum to the number of votes; "
                         "no more votes than annotators.")
def merged_annotations_valid(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    df = emoforge.warehouse.read_table("merged_annotations")
    df["n_annotations_all"] = df["n_annotations"] + df["n_excluded"]
    levels = sorted({c[: -len("_n_votes")] for c in df.columns if c.endswith("_n_votes")})
    for p in levels:
        counts = [c for c in df.columns if c.startswith(f"{p}_n_") and c not in
                  (f"{p}_n_votes", f"{p}_n_distinct")]
        df[f"{p}__vote_sum"] = df[counts].fillna(0).sum(axis=1).astype("int64")
        df[f"{p}_n_votes"] = df[f"{p}_n_votes"].fillna(0).astype("int64")
    return _result(_validate(emoforge, df, "merged_annotations", quality.merged_suite(levels)))


# ---- the model side -------------------------------------------------------------------------------------

@asset_check(asset=image_features, blocking=True,
             description="GX: one feature row per unique image and extractor, a known status, and every ok "
                         "vector finite (read back from the feature store).")
def image_features_valid(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    import numpy as np

    wh = emoforge.warehouse
    df = wh.read_table("image_features")
    n_unique = len(wh.read_table("unique_images", columns=["sha256"]))
    bb = wh.read_table("backbones")
    bb = bb[bb["extractor"].notna()]   # a backbone not trained yet has no features (backbones says why)
    finite = np.ones(len(df), dtype=bool)
    for _, b in bb.iterrows():
        sel = (df["extractor"] == b["extractor"]) & (df["status"] == "ok")
        if sel.any():
            vec, found = wh.feature_store(b["extractor"], int(b["feature_dim"])).read(df.loc[sel, "sha256"].tolist())
            finite[np.flatnonzero(sel.to_numpy())] = found & np.isfinite(vec).all(axis=1)
    df = df.assign(finite=finite)
    return _result(_validate(emoforge, df, "image_features", quality.features_suite(n_unique * len(bb))))


@asset_check(asset=keep_predictions, blocking=True,
             description="GX: one p_keep in [0, 1] per image, all from one keep/reject model version.")
def keep_predictions_valid(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    df = emoforge.warehouse.read_table("keep_predictions")
    return _result(_validate(emoforge, df, "keep_predictions", quality.predictions_suite(["p_keep"])))


@asset_check(asset=emo8_predictions, blocking=True,
             description="GX: one row per kept image, the 8 Emo8 probabilities in [0, 1], one model version.")
def emo8_predictions_valid(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    from assets.models import EMO8_COLUMNS

    df = emoforge.warehouse.read_table("emo8_predictions")
    return _result(_validate(emoforge, df, "emo8_predictions", quality.predictions_suite(EMO8_COLUMNS)))


@asset_check(asset=faces, blocking=True,
             description="GX: unique face_id, a positive box, detector score in [0, 1], a crop per face; and every "
                         "image the build looked at has exactly one face_status row.")
def faces_valid(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    wh = emoforge.warehouse
    df = wh.read_table("faces")
    out = _validate(emoforge, df, "faces", quality.faces_suite())
    status = wh.read_table("face_status", columns=["sha256", "status", "n_faces"])
    per_image = df.groupby("sha256").size()
    bad = status[status["sha256"].duplicated(keep=False)
                 | (status["n_faces"] != status["sha256"].map(per_image).fillna(0).astype("int64"))]
    res = _result(out)
    if len(bad):
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR,
                                description=f"face_status disagrees with faces on {len(bad)} images "
                                            f"(e.g. {bad['sha256'].iloc[0]})", metadata=res.metadata)
    return res


@asset_check(asset=soft_labels, blocking=True,
             description="GX: one row per face, the 8 values of AffectNet+ Eq. 14 in [0, 1], a difficulty subset "
                         "exactly for the faces with a hard label, both model versions.")
def soft_labels_valid(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    from ops.labels.soft_labels import EMOTION_COLUMNS

    df = emoforge.warehouse.read_table("soft_labels")
    df["difficulty_matches"] = df["difficulty"].isna() == df["hard_label"].isna()
    return _result(_validate(emoforge, df, "soft_labels", quality.soft_labels_suite(list(EMOTION_COLUMNS))))


@asset_check(asset=dataset_splits, blocking=True,
             description="GX: one row per (scheme, item) with a split, and no leakage: no near-duplicate family and "
                         "no image (with its faces) in more than one split of a scheme.")
def dataset_splits_no_leakage(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
    from ops.training.splits import leaks

    df = emoforge.warehouse.read_table("dataset_splits")
    bad = leaks(df)
    groups = {(s, g) for s, g in zip(bad["scheme"], bad["group_id"])}
    df["leaks"] = [(s, g) in groups or (s, f"image:{h}") in groups
                   for s, g, h in zip(df["scheme"], df["group_id"], df["sha256"])]
    res = _result(_validate(emoforge, df, "dataset_splits", quality.dataset_splits_suite()))
    if len(bad):
        res.metadata["leaking_groups"] = MetadataValue.json(bad.head(20).astype(str).to_dict("records"))
    return res


def _runs_check(asset_def, family: str):
    @asset_check(asset=asset_def, name=f"{family}_runs_valid", blocking=True,
                 description=f"GX: the {family} partition of training_runs has unique run ids; every run is ok "
                             "(model version, epochs, metrics rows) or failed with a reason.")
    def _check(context: AssetCheckExecutionContext, emoforge: EmoforgeResource) -> AssetCheckResult:
        wh = emoforge.warehouse
        runs = wh.read_table("training_runs", partition=family)
        measured = set(wh.read_table("run_metrics", partition=family, columns=["run_id"])["run_id"])
        ok = runs["status"] == "ok"
        runs["complete"] = ((ok & runs["model_version"].notna() & runs["epochs"].notna() & runs["run_id"].isin(measured))
                            | (~ok & runs["reason"].notna()))
        return _result(_validate(emoforge, runs, f"training_runs_{family}", quality.training_runs_suite()))
    return _check


findingemo_runs_valid = _runs_check(findingemo_baselines, "findingemo")
affectnet_runs_valid = _runs_check(affectnet_baselines, "affectnet_plus")
deep_affect_runs_valid = _runs_check(deep_affect_baselines, "deep_affect")
cage_runs_valid = _runs_check(cage_baselines, "cage")
