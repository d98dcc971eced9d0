"""Acquisition assets (FindingEmo §2.3.1): queries → search results → candidates → downloads.

Scrape batches are dynamic partitions; each partitioned asset writes one Parquet partition. A batch
takes its queries (or URL-list items) from the current configuration's plan, whichever way it was
launched (CLI, sensor, UI).
"""


from dagster import AssetExecutionContext, DynamicPartitionsDefinition, MetadataValue, asset

from assets._io import AssetIO, code_version
from assets._meta import breakdown, breakdown_md, md_table
from assets.demo import demo_world
from assets.resources import DemoWebResource, EmoforgeResource
from ops.acquisition import batches, candidates, download, images, schemas, search, transport, url_lists
from ops.acquisition import statuses as S
from ops.acquisition.candidates import PENDING, filter_candidates, normalize_url
from ops.acquisition.download import DownloadItem, Downloader
from ops.acquisition.search import DdgsSearch, HttpJsonSearch, run_searches
from ops.acquisition.url_lists import url_list_hits, url_list_log
from ops.dedup import phash

scrape_batches = DynamicPartitionsDefinition(name="scrape_batches")

GROUP = "acquisition"


@asset(group_name=GROUP, kinds={"python", "parquet"}, code_version=code_version(batches),
       description="Every combination of the three keyword sets (emotion × people × setting), "
                   "FindingEmo §2.3.1, in a deterministic order, with the scrape batch of each query.")
def search_queries(context: AssetExecutionContext, emoforge: EmoforgeResource):
    io = AssetIO(context, emoforge, emoforge.settings.acquisition.keywords)
    a = emoforge.settings.acquisition
    q = a.scrape_plan(io.wh.url_list_cache_dir()).queries()
    written = io.write("search_queries", q, schema=schemas.SEARCH_QUERIES)
    k = a.keyword_sets()
    return io.result(written, n_emotions=len(k["emotions"]), n_people=len(k["people"]), n_settings=len(k["settings"]),
                     provider=a.provider.kind, examples=md_table(q[["query_index", "query", "batch"]]))


@asset(group_name=GROUP, kinds={"python", "parquet"}, partitions_def=scrape_batches, deps=[search_queries, demo_world],
       code_version=code_version(batches, search, url_lists),
       description="The first N image-search results per query of the batch (or the batch's items of "
                   "a URL list), with provenance; every query run is logged in `search_log`.")
def search_results(context: AssetExecutionContext, emoforge: EmoforgeResource, demo_web: DemoWebResource):
    a = emoforge.settings.acquisition
    io = AssetIO(context, emoforge, a.provider)
    key = context.partition_key
    plan = a.scrape_plan(io.wh.url_list_cache_dir())
    p = a.provider
    if plan.kind != batches.parse_batch_key(key)[0]:
        raise ValueError(f"batch {key} is a {'URL-list' if key.startswith('u') else 'query'} batch but the "
                         f"provider is {p.kind!r}")
    if plan.kind == "u":
        hits = url_list_hits(plan.batch_items(key))
        log = url_list_log(len(hits))
    else:
        queries = plan.batch_queries(key)
        if p.kind == "demo":
            provider, pause = HttpJsonSearch(demo_web.base_url, name="demo"), 0.0
        else:
            provider = DdgsSearch(region=p.ddgs.region, safesearch=p.ddgs.safesearch, backend=p.ddgs.backend)
            pause = p.ddgs.pause_seconds
        hits, log = run_searches(provider, queries, p.results_per_query, pause_seconds=pause,
                                 progress=lambda d, t, s: context.log.debug(f"query {d}/{t}: {s}"))
    hits["batch"] = key
    log["batch"] = key
    io.write("search_log", log, partition=key, schema=schemas.SEARCH_LOG)
    written = io.write("search_results", hits, partition=key, schema=schemas.SEARCH_RESULTS)
    failed = log[log["status"] == "error"]
    if len(failed):
        context.log.warning(f"{len(failed)} of {len(log)} queries failed, e.g. {failed['error'].iloc[0]}")
    return io.result(
        written, items_in=len(log), items_out=len(hits),
        dropped={"query_" + k: v for k, v in breakdown(log["status"]).items() if k != "ok"},
        queries=MetadataValue.int(len(log)), query_status=breakdown_md(log["status"]),
        examples=md_table(hits[["query", "rank", "image_url", "reported_width"]]),
    )


@asset(group_name=GROUP, kinds={"python", "parquet"}, partitions_def=scrape_batches, deps=[search_results],
       code_version=code_version(candidates),
       description="Search hits filtered before download (FindingEmo §2.3.1): URL normalization and "
                   "de-duplication across batches, domain blacklist, width limits from search metadata. "
                   "Every hit keeps one status: pending or the reason it was dropped.")
def candidate_urls(context: AssetExecutionContext, emoforge: EmoforgeResource):
    a = emoforge.settings.acquisition
    io = AssetIO(context, emoforge, {"blacklist": a.blacklist_domains, "widths": [a.min_width, a.max_width]})
    key = context.partition_key
    hits = io.read("search_results", partition=key)
    seen = io.wh.seen_urls(before=key, among=[normalize_url(u) for u in hits["image_url"]])
    cands = filter_candidates(hits, blacklist=a.blacklist_domains, min_width=a.min_width,
                              max_width=a.max_width, seen_urls=seen)
    cands["batch"] = key
    written = io.write("candidate_urls", cands, partition=key, schema=schemas.CANDIDATE_URLS)
    pending = int((cands["filter_status"] == PENDING).sum())
    return io.result(
        written, items_in=len(hits), items_out=pending,
        dropped={k: v for k, v in breakdown(cands["filter_status"]).items() if k != PENDING},
        status_breakdown=breakdown_md(cands["filter_status"]),
        examples=md_table(cands.loc[cands["filter_status"] != PENDING, ["url", "filter_status", "filter_reason"]]),
    )


@asset(group_name=GROUP, kinds={"python", "parquet"}, partitions_def=scrape_batches, deps=[candidate_urls],
       code_version=code_version(download, images, transport, phash),
       description="Every candidate with exactly one final status: the filter's reason, or the "
                   "downloader's (ok, http_404, timeout, too_large, not_an_image, truncated, too_small, "
                   "too_tall, too_many_pixels, extreme_aspect_ratio, blocked_address, ...). Dimensions are "
                   "checked from the header before decoding; ok images are validated by one decode (JPEG: "
                   "DCT-scaled), stored by SHA-256 and carry their fast pHash from that decode. Transient "
                   "failures are tried again by later builds, up to download.max_build_attempts.")
def downloaded_images(context: AssetExecutionContext, emoforge: EmoforgeResource, demo_web: DemoWebResource):
    a = emoforge.settings.acquisition
    io = AssetIO(context, emoforge, a.download)
    wh = io.wh
    key = context.partition_key
    cands = io.read("candidate_urls", partition=key)
    pending = cands[cands["filter_status"] == PENDING]
    items = [DownloadItem(candidate_id=c, urls=(u, *tuple(b)))
             for c, u, b in zip(pending["candidate_id"], pending["normalized_url"], pending["backup_urls"])]
    # blobs are written without a per-file fsync; the fsynced journal plus a size check of every
    # journaled blob on the next run (is_stored) keep a crash from leaving a row without its image
    downloader = Downloader(a.download_settings(), min_width=a.min_width, max_width=a.max_width,
                            put_blob=lambda data: wh.blobs.put(data, durable=False),
                            is_stored=wh.blobs.has_complete)
    step = max(1, len(items) // 10)
    res = downloader.run(items, wh.download_journal(key),
                         progress=lambda d, t, s: (d % step == 0 or d == t) and
                         context.log.info(f"downloaded {d}/{t} (last: {s})"))
    out = download.final_statuses(cands, res)
    written = io.write("downloaded_images", out, partition=key, schema=schemas.DOWNLOADED_IMAGES)
    ok = out[out["status"] == S.OK]
    is_pending = out["filter_status"] == PENDING
    return io.result(
        written, items_in=int(is_pending.sum()), items_out=len(ok),
        dropped={k: v for k, v in breakdown(out.loc[is_pending, "status"]).items() if k != S.OK},
        candidates=MetadataValue.int(len(out)),
        retried_transient_failures=MetadataValue.int(downloader.retried),
        retries_due_next_build=MetadataValue.int(download.retries_due(res, a.download.max_build_attempts)),
        distinct_images=MetadataValue.int(int(ok["sha256"].nunique())),
        megabytes=MetadataValue.float(round(float(ok["bytes"].fillna(0).sum()) / 1e6, 2)),
        status_breakdown=breakdown_md(out["status"]),
        examples=md_table(out[["url", "status", "width", "reason"]]),
    )
