"""Acquisition assets (FindingEmo §2.3.1): queries → search results → candidates → downloads.

Scrape batches are dynamic partitions; each partitioned asset writes one Parquet partition.
Assets are thin: read inputs from the warehouse, call one op, write one table, return metadata.
"""


from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    DynamicPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets._meta import breakdown, breakdown_md, md_table, stage_metadata
from assets.resources import DemoWebResource, EmoforgeResource
from ops.acquisition import statuses as S
from ops.acquisition.batches import batch_keys, extend_batches, parse_batch_key
from ops.acquisition.candidates import PENDING, filter_candidates
from ops.config import EmoforgeConfig
from ops.acquisition.download import DownloadItem, Downloader
from ops.acquisition.queries import findingemo_data_dir, findingemo_keywords, generate_queries
from ops.acquisition.search import (
    DdgsSearch, HttpJsonSearch, UrlListSpec, load_url_list, run_searches, url_list_hits,
)

scrape_batches = DynamicPartitionsDefinition(name="scrape_batches")

GROUP = "acquisition"


# ---- helpers shared with the CLI and the sensor (plain functions of the config) ------------------

def keyword_sets(cfg: EmoforgeConfig) -> dict[str, list[str]]:
    default = findingemo_keywords()
    kw = cfg.acquisition.keywords
    return {
        "emotions": kw.emotions if kw.emotions is not None else default["emotions"],
        "people": kw.people if kw.people is not None else default["people"],
        "settings": kw.settings if kw.settings is not None else default["settings"],
    }


def planned_queries(cfg: EmoforgeConfig) -> pd.DataFrame:
    k = keyword_sets(cfg)
    q = generate_queries(k["emotions"], k["people"], k["settings"])
    if cfg.acquisition.max_queries is not None:
        q = q.head(cfg.acquisition.max_queries)
    return q


def url_list_spec(cfg: EmoforgeConfig) -> UrlListSpec:
    u = cfg.acquisition.provider.url_list
    path = Path(u.path) if u.path else findingemo_data_dir() / "dataset_urls_exploded.json"
    return UrlListSpec(path=path, format=u.format, url_column=u.url_column, id_column=u.id_column,
                       order_column=u.order_column, query_column=u.query_column)


def planned_batches(cfg: EmoforgeConfig, existing: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The batch keys the current configuration covers, keeping the existing batches as they are
    (a refresh registers only the missing ones, starting where the last batch ended)."""
    p = cfg.acquisition.provider
    if p.kind == "url_list":
        n = len(load_url_list(url_list_spec(cfg), max_items=p.url_list.max_items))
        return extend_batches("u", n, p.url_list.items_per_batch, existing)
    return extend_batches("q", len(planned_queries(cfg)), cfg.acquisition.queries_per_batch, existing)


def _earlier_partitions(wh, table: str, key: str) -> list[str]:
    return [k for k in wh.partitions(table) if k < key]


# ---- assets --------------------------------------------------------------------------------------

@asset(group_name=GROUP, kinds={"python", "parquet"},
       description="Every combination of the three keyword sets (emotion × people × setting), "
                   "FindingEmo §2.3.1, in a deterministic order, with the scrape batch of each query.")
def search_queries(context: AssetExecutionContext, emoforge: EmoforgeResource) -> MaterializeResult:
    cfg = emoforge.settings
    wh = emoforge.warehouse
    if cfg.acquisition.provider.kind == "url_list":
        items = load_url_list(url_list_spec(cfg), max_items=cfg.acquisition.provider.url_list.max_items)
        from ops.acquisition.queries import query_id

        qs = items["query"].dropna().drop_duplicates().tolist()
        q = pd.DataFrame({"query_index": range(len(qs)), "query_id": [query_id(x) for x in qs], "query": qs})
        q["batch"] = None
    else:
        q = planned_queries(cfg)
        per = cfg.acquisition.queries_per_batch
        keys = batch_keys("q", len(q), per)
        q["batch"] = [keys[i // per] for i in q["query_index"]]
    wh.write_table("search_queries", q)
    k = keyword_sets(cfg)
    return MaterializeResult(metadata={
        "dagster/row_count": MetadataValue.int(len(q)),
        "n_emotions": len(k["emotions"]), "n_people": len(k["people"]), "n_settings": len(k["settings"]),
        "provider": cfg.acquisition.provider.kind,
        "examples": md_table(q[["query_index", "query", "batch"]]),
    })


@asset(group_name=GROUP, kinds={"python", "parquet"}, partitions_def=scrape_batches, deps=[search_queries],
       description="The first N image-search results per query of the batch (or the batch's items of "
                   "a URL list), with provenance; failed queries are logged in `search_log`.")
def search_results(context: AssetExecutionContext, emoforge: EmoforgeResource,
                   demo_web: DemoWebResource) -> MaterializeResult:
    cfg = emoforge.settings
    wh = emoforge.warehouse
    key = context.partition_key
    kind, start, end = parse_batch_key(key)
    p = cfg.acquisition.provider
    if kind == "u":
        if p.kind != "url_list":
            raise ValueError(f"batch {key} is a URL-list batch but the provider is {p.kind!r}")
        items = load_url_list(url_list_spec(cfg), max_items=p.url_list.max_items).iloc[start:end]
        hits = url_list_hits(items)
        log = pd.DataFrame({"query_id": [None], "query": [None], "provider": ["url_list"], "status": ["ok"],
                            "n_results": [len(hits)], "error": [None], "elapsed_s": [0.0],
                            "retrieved_at": [pd.Timestamp.now(tz="UTC")]})
    else:
        if p.kind == "url_list":
            raise ValueError(f"batch {key} is a query batch but the provider is 'url_list'")
        queries = wh.read_table("search_queries")
        queries = queries[(queries["query_index"] >= start) & (queries["query_index"] < end)]
        if p.kind == "demo":
            provider = HttpJsonSearch(demo_web.base_url, name="demo")
            pause = 0.0
        else:
            provider = DdgsSearch(region=p.ddgs.region, safesearch=p.ddgs.safesearch, backend=p.ddgs.backend)
            pause = p.ddgs.pause_seconds
        hits, log = run_searches(
            provider, queries, p.results_per_query, pause_seconds=pause,
            progress=lambda d, t, s: context.log.debug(f"query {d}/{t}: {s}"),
        )
    hits["batch"] = key
    log["batch"] = key
    wh.write_table("search_log", log, partition=key)
    wh.write_table("search_results", hits, partition=key)
    failed = log[log["status"] == "error"]
    if len(failed):
        context.log.warning(f"{len(failed)} of {len(log)} queries failed, e.g. {failed['error'].iloc[0]}")
    return MaterializeResult(metadata=stage_metadata(
        len(log), len(hits), {"query_" + k: v for k, v in breakdown(log["status"]).items() if k != "ok"},
        queries=MetadataValue.int(len(log)), query_status=breakdown_md(log["status"]),
        examples=md_table(hits[["query", "rank", "image_url", "reported_width"]]),
    ))


@asset(group_name=GROUP, kinds={"python", "parquet"}, partitions_def=scrape_batches, deps=[search_results],
       description="Search hits filtered before download (FindingEmo §2.3.1): URL normalization and "
                   "de-duplication across batches, domain blacklist, width limits from search metadata. "
                   "Every hit keeps one status: pending or the reason it was dropped.")
def candidate_urls(context: AssetExecutionContext, emoforge: EmoforgeResource) -> MaterializeResult:
    cfg = emoforge.settings
    wh = emoforge.warehouse
    key = context.partition_key
    hits = wh.read_table("search_results", partition=key)
    seen: set[str] = set()
    for k in _earlier_partitions(wh, "candidate_urls", key):
        prev = wh.read_table("candidate_urls", partition=k, columns=["normalized_url", "filter_status"])
        seen.update(prev.loc[prev["normalized_url"].notna(), "normalized_url"])
    a = cfg.acquisition
    cands = filter_candidates(hits, blacklist=a.blacklist_domains, min_width=a.min_width,
                              max_width=a.max_width, seen_urls=seen)
    cands["batch"] = key
    wh.write_table("candidate_urls", cands, partition=key)
    pending = int((cands["filter_status"] == PENDING).sum())
    dropped = {k: v for k, v in breakdown(cands["filter_status"]).items() if k != PENDING}
    return MaterializeResult(metadata=stage_metadata(
        len(hits), pending, dropped, status_breakdown=breakdown_md(cands["filter_status"]),
        examples=md_table(cands.loc[cands["filter_status"] != PENDING, ["url", "filter_status", "filter_reason"]]),
    ))


@asset(group_name=GROUP, kinds={"python", "parquet"}, partitions_def=scrape_batches, deps=[candidate_urls],
       description="Every candidate with exactly one final status: the filter's reason, or the "
                   "downloader's (ok, http_404, timeout, too_large, not_an_image, truncated, too_small, "
                   "blocked_address, ...). ok images are decoded, width-checked and stored by SHA-256.")
def downloaded_images(context: AssetExecutionContext, emoforge: EmoforgeResource,
                      demo_web: DemoWebResource) -> MaterializeResult:
    cfg = emoforge.settings
    wh = emoforge.warehouse
    key = context.partition_key
    cands = wh.read_table("candidate_urls", partition=key)
    pending = cands[cands["filter_status"] == PENDING]
    items = [DownloadItem(candidate_id=c, urls=(u, *tuple(b)))
             for c, u, b in zip(pending["candidate_id"], pending["normalized_url"], pending["backup_urls"])]
    a = cfg.acquisition
    # blobs are written without a per-file fsync; the fsynced journal plus a size check of every
    # journaled blob on the next run (is_stored) keep a crash from leaving a row without its image
    downloader = Downloader(a.download, min_width=a.min_width, max_width=a.max_width,
                            put_blob=lambda data: wh.blobs.put(data, durable=False),
                            is_stored=wh.blobs.has_complete)
    journal = wh.state_path("download_journal", f"{key}.jsonl")
    step = max(1, len(items) // 10)
    res = downloader.run(items, journal, progress=lambda d, t, s: (d % step == 0 or d == t) and
                         context.log.info(f"downloaded {d}/{t} (last: {s})"))
    out = cands[["candidate_id", "query_id", "query", "rank", "provider", "item_id", "url", "normalized_url",
                 "host", "source_page", "title", "batch", "filter_status", "filter_reason"]].merge(
        res, on="candidate_id", how="left", suffixes=("", "_download"))
    is_pending = out["filter_status"] == PENDING
    out["status"] = out["status"].where(is_pending, out["filter_status"])
    out["reason"] = out["error"].where(is_pending, out["filter_reason"])
    out = out.drop(columns=["error"])
    wh.write_table("downloaded_images", out, partition=key)
    ok = out[out["status"] == S.OK]
    dropped = {k: v for k, v in breakdown(out.loc[is_pending, "status"]).items() if k != S.OK}
    return MaterializeResult(metadata=stage_metadata(
        int(is_pending.sum()), len(ok), dropped,
        candidates=MetadataValue.int(len(out)),
        distinct_images=MetadataValue.int(int(ok["sha256"].nunique())),
        megabytes=MetadataValue.float(round(float(ok["bytes"].fillna(0).sum()) / 1e6, 2)),
        status_breakdown=breakdown_md(out["status"]),
        examples=md_table(out[["url", "status", "width", "reason"]]),
    ))
