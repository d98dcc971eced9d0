"""The Dagster definitions: assets, checks, resources, jobs, the refresh sensor and schedules.

``dagster dev`` (from the repo root, via pyproject ``[tool.dagster]``) and ``emoforge build`` load
the same objects: assets and checks are collected from the asset modules (no hand-kept list), and
every run, from the CLI or the UI, is one of the named jobs below. Runs use the in-process
executor: on a 2-core machine each extra process would re-import torch and pandas for little gain.
On a cluster (README "Running on a cluster", deploy/cluster/) ``EMOFORGE_EXECUTOR=celery`` hands
every step to Celery workers instead (dagster-celery), with the broker and result backend from
``EMOFORGE_CELERY_BROKER`` / ``EMOFORGE_CELERY_BACKEND``.
"""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    AssetsDefinition,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    in_process_executor,
    load_asset_checks_from_modules,
    load_assets_from_modules,
    map_asset_specs,
    sensor,
)

from assets import acquisition, annotations, checks, dedup, demo, faces, models, release, training
from assets.acquisition import scrape_batches
from assets.resources import DemoWebResource, EmoforgeResource

ASSET_MODULES = [demo, acquisition, dedup, annotations, models, faces, training, release]
# Declarative automation (the `refresh_on_new_data` sensor, stopped by default): the stages after
# deduplication and annotation merging are `eager`: when an upstream table is updated (new batches
# folded into unique_images, new labels merged), the assets downstream of it are requested, once
# all their own upstreams are settled; assets whose inputs did not change are not. Each of them
# reuses what it computed before (cached features, known faces, unchanged labels), so a refresh
# costs the new data. Scraping, dedup and annotation ingest keep their sensors and schedules, and a
# release stays a deliberate act.
AUTOMATED_GROUPS = ("models", "features", "faces", "labels", "training")


def _automated(spec):
    if spec.group_name in AUTOMATED_GROUPS and spec.automation_condition is None:
        return spec.replace_attributes(automation_condition=AutomationCondition.eager())
    return spec


ASSETS = [map_asset_specs(_automated, [a])[0] if isinstance(a, AssetsDefinition) else a
          for a in load_assets_from_modules(ASSET_MODULES)]
CHECKS = load_asset_checks_from_modules([checks, *ASSET_MODULES])

# one scrape batch end to end: search, filter, download, hash
scrape_batch_job = define_asset_job(
    "scrape_batch_job",
    selection=AssetSelection.assets(
        acquisition.search_results, acquisition.candidate_urls, acquisition.downloaded_images,
        dedup.image_hashes,
    ),
    description="Search, filter, download and hash one scrape batch (a dynamic partition).",
)

# the global, incremental stages: the near-duplicate index compares new hashes with all before
dedup_job = define_asset_job(
    "dedup_job",
    selection=AssetSelection.assets(acquisition.search_queries, dedup.duplicate_groups, dedup.unique_images),
    description="Refresh the query list, near-duplicate groups and unique images over all batches.",
)

annotations_job = define_asset_job(
    "annotations_job",
    selection=AssetSelection.groups("annotations"),
    description="Ingest annotation exports, grade annotators, merge labels, statistics, next batch to annotate.",
)

demo_job = define_asset_job(
    "demo_job",
    selection=AssetSelection.groups("demo"),
    description="Generate the embedded demo's corpus and world (nothing outside demo builds).",
)

models_job = define_asset_job(
    "models_job",
    selection=AssetSelection.groups("models", "features"),
    description="Backbones, cached features, the keep/reject and Emo8 predictors and their predictions.",
)

faces_job = define_asset_job(
    "faces_job",
    selection=AssetSelection.groups("faces", "labels"),
    description="Faces and their metadata and features; the multi-annotated set, the ensemble of binary "
                "classifiers and the AU-based classifier, soft labels and the Easy/Challenging/Difficult subsets.",
)

training_job = define_asset_job(
    "training_job",
    selection=AssetSelection.groups("training"),
    description="Leak-free dataset splits and the seed papers' baselines (FindingEmo, AffectNet+ Hard/Soft-FER, "
                "Deep Affect, CAGE) on cached features, their metrics and curves, and predictions of a registered model.",
)

release_job = define_asset_job(
    "release_job",
    selection=AssetSelection.groups("release"),
    description="Freeze the built dataset into an immutable, versioned release with a manifest and a datasheet.",
)

JOBS = [demo_job, scrape_batch_job, dedup_job, annotations_job, models_job, faces_job, training_job, release_job]
JOB_ORDER = [j.name for j in JOBS]   # the CLI runs the global stages job by job, in this order when free


def job_of(asset_key, graph) -> str:
    """The named job an asset runs in (CLI builds run every asset in its job)."""
    node = graph.get(asset_key)
    if node.partitions_def is not None:
        return "scrape_batch_job"
    if node.group_name == "annotations":
        return "annotations_job"
    if node.group_name == "demo":
        return "demo_job"
    if node.group_name in ("models", "features"):
        return "models_job"
    if node.group_name in ("faces", "labels"):
        return "faces_job"
    if node.group_name == "training":
        return "training_job"
    if node.group_name == "release":
        return "release_job"
    return "dedup_job"


def resources_from_env() -> dict:
    emo = EmoforgeResource.from_env()
    return {"emoforge": emo, "demo_web": DemoWebResource(emoforge=emo)}


@sensor(job=scrape_batch_job, minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED,
        description="Registers the scrape batches the configuration covers but the instance does not "
                    "know yet, and requests one run per new batch. Earlier batches are never redone; "
                    "each run takes its batch's queries from the current configuration.")
def new_scrape_batches(context: SensorEvaluationContext, emoforge: EmoforgeResource):
    known = set(context.instance.get_dynamic_partitions(scrape_batches.name))
    planned = emoforge.settings.acquisition.scrape_plan(emoforge.warehouse.url_list_cache_dir()).batches(sorted(known))
    new = [k for k in planned if k not in known]
    if not new:
        return SkipReason(f"all {len(planned)} planned scrape batches are registered")
    return SensorResult(
        run_requests=[RunRequest(partition_key=k, run_key=f"scrape-{k}") for k in new],
        dynamic_partitions_requests=[scrape_batches.build_add_request(new)],
    )


@sensor(job=annotations_job, minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED,
        description="Watches the configured annotation exports (and the gold file): when their content differs "
                    "from what the last ingest read, requests one annotations_job run (the downstream models, "
                    "soft labels and splits reuse everything whose labels did not change).")
def annotation_exports_changed(context: SensorEvaluationContext, emoforge: EmoforgeResource):
    from ops.annotations.sources import export_files, exports_fingerprint
    from ops.config.annotations import source_spec

    cfg = emoforge.settings.annotations
    files = export_files([source_spec(s) for s in cfg.sources], cfg.grading.gold_path)
    now = exports_fingerprint(files)
    before = emoforge.warehouse.recorded_annotation_exports()
    if before == now:
        return SkipReason(f"the {len(files)} annotation exports are unchanged since the last ingest")
    changed = sorted(f for f in now if (before or {}).get(f) != now[f])
    key = "annotations-" + "-".join(now[f][:8] for f in sorted(now))
    context.log.info(f"annotation exports changed: {changed}")
    return RunRequest(run_key=key, tags={"emoforge/changed_exports": ", ".join(changed)[:1000]})


refresh_on_new_data = AutomationConditionSensorDefinition(
    "refresh_on_new_data", target=AssetSelection.groups(*AUTOMATED_GROUPS),
    default_status=DefaultSensorStatus.STOPPED, minimum_interval_seconds=60,
    description="Declarative automation: requests the feature, model, face, soft-label and training assets "
                "whose upstream tables were updated since they last ran (AutomationCondition.eager).",
)

refresh_schedule = ScheduleDefinition(
    name="daily_dedup_refresh", job=dedup_job, cron_schedule="0 3 * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Once a day: fold the new batches' hashes into the near-duplicate index.",
)

# new annotation exports are picked up by a daily refresh; nothing else is recomputed
annotations_schedule = ScheduleDefinition(
    name="daily_annotations_refresh", job=annotations_job, cron_schedule="30 3 * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Once a day: re-read the annotation exports and refresh merges, statistics and the queue.",
)


def executor_from_env():
    """The executor runs use: in-process (default), or Celery workers when ``EMOFORGE_EXECUTOR=celery``."""
    kind = os.environ.get("EMOFORGE_EXECUTOR", "in_process").strip().lower()
    if kind in ("", "in_process", "in-process"):
        return in_process_executor
    if kind != "celery":
        raise ValueError(f"EMOFORGE_EXECUTOR={kind!r}: use 'in_process' or 'celery'")
    from dagster_celery import celery_executor   # the optional [cluster] dependencies

    from pipelines.celery_app import celery_args

    cfg = celery_args()
    return celery_executor.configured(cfg, name="celery")


def build_definitions(resources: dict | None = None, executor=None) -> Definitions:
    """The definitions with the given resources (the CLI's), or the environment's (``dagster dev``),
    and the given executor, or the environment's (:func:`executor_from_env`)."""
    return Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        jobs=JOBS,
        sensors=[new_scrape_batches, annotation_exports_changed, refresh_on_new_data],
        schedules=[refresh_schedule, annotations_schedule],
        resources=resources if resources is not None else resources_from_env(),
        executor=executor if executor is not None else executor_from_env(),
    )


defs = build_definitions()
