"""Dedup assets (StockEmotion §3.1: perceptual-hash de-duplication).

image_hashes (per batch) → duplicate_groups (global, incremental index) → unique_images.
"""


from dagster import AssetExecutionContext, MetadataValue, asset

from assets._io import AssetIO, code_version, md_table
from assets.acquisition import downloaded_images, scrape_batches
from assets.resources import EmoforgeResource
from ops import pictures
from ops.acquisition import schemas
from ops.acquisition import statuses as S
from ops.dedup import grouping, hash_index, hashing, phash
from ops.dedup.grouping import near_duplicate_groups, unique_image_rows

GROUP = "dedup"


@asset(group_name=GROUP, kinds={"python", "parquet"}, partitions_def=scrape_batches, deps=[downloaded_images],
       code_version=code_version(hashing, phash),
       description="pHash (imagehash's algorithm: grayscale 32×32, 2-D DCT, 8×8 low frequencies, median) "
                   "of every distinct image of the batch; fast mode (JPEG draft decoding, batched DCT) or "
                   "exact mode (bit for bit imagehash.phash), chosen by dedup.mode.")
def image_hashes(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.dedup
    io = AssetIO(context, emoforge, cfg)
    key = context.partition_key
    dl = io.read("downloaded_images", partition=key)
    ok = dl[dl["status"] == S.OK]
    res = hashing.hash_batch(ok, io.wh.blobs.path, mode=cfg.mode, batch_size=cfg.batch_size,
                             known=lambda shas: io.wh.known_hashes(shas, cfg.mode, exclude_batch=key))
    imgs = res.table
    imgs["batch"] = imgs["sha256"].map(lambda _: key).astype("string")
    written = io.write("image_hashes", imgs, partition=key, schema=schemas.IMAGE_HASHES)
    n_err = int(imgs["hash_error"].notna().sum())
    return io.result(
        written, items_in=len(ok), items_out=len(imgs) - n_err,
        dropped={"exact_duplicate_bytes": len(ok) - len(imgs), **({"hash_error": n_err} if n_err else {})},
        computed=MetadataValue.int(res.computed), reused=MetadataValue.int(res.reused),
        from_downloads=MetadataValue.int(res.from_downloads), mode=cfg.mode,
        fast_vs_exact_sample=MetadataValue.json(res.agreement or {"note": "no image hashed in fast mode in this batch"}),
        examples=md_table(imgs[["sha256", "phash", "width", "height"]]),
    )


@asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[image_hashes],
       code_version=code_version(hash_index, grouping),
       description="Near-duplicate groups: pairs within Hamming distance t found with a persistent "
                   "multi-index-hashing index (a new batch is compared against everything seen before), "
                   "connected components, one representative per group (largest resolution, then earliest).")
def duplicate_groups(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.dedup
    io = AssetIO(context, emoforge, cfg)
    hashes = io.read("image_hashes")
    res = near_duplicate_groups(hashes, io.wh.phash_index_dir(cfg.mode), mode=cfg.mode,
                                threshold=cfg.threshold, bands=cfg.effective_bands,
                                on_rebuild=lambda e: context.log.warning(f"{e}; rebuilding the index with the configured parameters"))
    io.write("near_duplicate_pairs", res.pairs)
    written = io.write("duplicate_groups", res.groups)
    groups = res.groups
    n_groups = int(groups["group_id"].nunique())
    multi = groups[groups["group_size"] > 1]
    return io.result(
        written, items_in=len(groups), items_out=n_groups, dropped={"near_duplicate": len(groups) - n_groups},
        threshold=cfg.threshold, pairs=MetadataValue.int(len(res.pairs)),
        new_pairs=MetadataValue.int(res.new_pairs), indexed_before=MetadataValue.int(res.indexed_before),
        groups_with_duplicates=MetadataValue.int(int(multi["group_id"].nunique())),
        examples=md_table(multi.sort_values("group_id")[["group_id", "sha256", "is_representative", "width"]]),
        **io.picture("contact_sheet", lambda b, t: pictures.near_duplicate_sheet(groups, b, t),
                     "near-duplicate groups (framed: the representative kept)"),
    )


@asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[duplicate_groups],
       code_version=code_version(grouping),
       description="One row per distinct image after exact (SHA-256) and near-duplicate (pHash) "
                   "de-duplication, with its provenance: first query, URL, batch, and how many "
                   "candidates and duplicates it stands for.")
def unique_images(context: AssetExecutionContext, emoforge: EmoforgeResource):
    io = AssetIO(context, emoforge)
    groups = io.read("duplicate_groups")
    dl = io.read("downloaded_images")
    ok = dl[dl["status"] == S.OK]
    reps = unique_image_rows(groups, ok)
    written = io.write("unique_images", reps)
    return io.result(
        written, items_in=len(ok), items_out=len(reps),
        dropped={"exact_duplicate": len(ok) - ok["sha256"].nunique(),
                 "hash_error": ok["sha256"].nunique() - len(groups), "near_duplicate": len(groups) - len(reps)},
        blob_dir=MetadataValue.path(str(io.wh.blobs.root)),
        examples=md_table(reps[["sha256", "width", "height", "query", "url"]]),
    )
