"""The Dagster definitions: assets, checks, resources, jobs, the refresh sensor and schedule.

``dagster dev`` (from the repo root, via pyproject ``[tool.dagster]``) and ``emoforge build`` load
the same objects. Runs use the in-process executor: on a 2-core machine each extra process would
re-import torch and pandas for little gain.
"""


from dagster import (
    AssetSelection,
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
    sensor,
)

from assets import acquisition, annotations, checks, dedup
from assets.acquisition import planned_batches, scrape_batches
from assets.resources import DemoWebResource, EmoforgeResource

ASSETS = [
    acquisition.search_queries,
    acquisition.search_results,
    acquisition.candidate_urls,
    acquisition.downloaded_images,
    dedup.image_hashes,
    dedup.duplicate_groups,
    dedup.unique_images,
    annotations.raw_annotations,
    annotations.annotator_scores,
    annotations.merged_annotations,
    annotations.annotation_stats,
    annotations.annotation_queue,
]
CHECKS = [
    checks.candidate_urls_valid,
    checks.downloads_one_status_per_candidate,
    checks.downloaded_images_within_limits,
    checks.image_hashes_unique,
    checks.unique_images_valid,
    checks.annotations_valid,
    checks.merged_annotations_valid,
]

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


def _resources() -> dict:
    emo = EmoforgeResource.from_env()
    return {"emoforge": emo, "demo_web": DemoWebResource(emoforge=emo)}


@sensor(job=scrape_batch_job, minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED,
        description="Registers the scrape batches the configuration covers but the instance does not "
                    "know yet, and requests one run per new batch. Earlier batches are never redone.")
def new_scrape_batches(context: SensorEvaluationContext, emoforge: EmoforgeResource):
    known = set(context.instance.get_dynamic_partitions(scrape_batches.name))
    planned = planned_batches(emoforge.settings, sorted(known))
    new = [k for k in planned if k not in known]
    if not new:
        return SkipReason(f"all {len(planned)} planned scrape batches are registered")
    return SensorResult(
        run_requests=[RunRequest(partition_key=k, run_key=f"scrape-{k}") for k in new],
        dynamic_partitions_requests=[scrape_batches.build_add_request(new)],
    )


refresh_schedule = ScheduleDefinition(
    name="daily_dedup_refresh", job=dedup_job, cron_schedule="0 3 * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Once a day: fold the new batches' hashes into the near-duplicate index.",
)

annotations_job = define_asset_job(
    "annotations_job",
    selection=AssetSelection.groups("annotations"),
    description="Ingest annotation exports, grade annotators, merge labels, statistics, next batch to annotate.",
)

# new annotation exports are picked up by a daily refresh; nothing else is recomputed
annotations_schedule = ScheduleDefinition(
    name="daily_annotations_refresh", job=annotations_job, cron_schedule="30 3 * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Once a day: re-read the annotation exports and refresh merges, statistics and the queue.",
)

defs = Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[scrape_batch_job, dedup_job, annotations_job],
    sensors=[new_scrape_batches],
    schedules=[refresh_schedule, annotations_schedule],
    resources=_resources(),
    executor=in_process_executor,
)
