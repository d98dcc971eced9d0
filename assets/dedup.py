"""Dedup assets (StockEmotion §3.1: perceptual-hash de-duplication).

image_hashes (per batch) → duplicate_groups (global, incremental index) → unique_images.
"""


import shutil

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets._meta import md_table, stage_metadata
from assets.acquisition import downloaded_images, scrape_batches
from assets.resources import EmoforgeResource
from ops.acquisition import statuses as S
from ops.dedup.hash_index import HashIndex, IndexParameterMismatch, choose_representatives, connected_components
from ops.dedup.phash import hamming, hashes_to_hex, phash_exact, phash_fast_many

GROUP = "dedup"


@asset(group_name=GROUP, kinds={"python", "parquet"}, partitions_def=scrape_batches, deps=[downloaded_images],
       description="pHash (imagehash's algorithm: grayscale 32×32, 2-D DCT, 8×8 low frequencies, median) "
                   "of every distinct image of the batch; fast mode (JPEG draft decoding, batched DCT) or "
                   "exact mode (bit for bit imagehash.phash), chosen by dedup.mode.")
def image_hashes(context: AssetExecutionContext, emoforge: EmoforgeResource) -> MaterializeResult:
    cfg = emoforge.settings
    wh = emoforge.warehouse
    key = context.partition_key
    dl = wh.read_table("downloaded_images", partition=key)
    ok = dl[dl["status"] == S.OK].sort_values(["downloaded_at", "candidate_id"])
    imgs = ok.groupby("sha256", sort=False).agg(
        width=("width", "first"), height=("height", "first"), image_format=("image_format", "first"),
        first_seen=("downloaded_at", "min"), n_candidates=("candidate_id", "size"),
    ).reset_index()
    # reuse hashes computed in earlier batches for the same bytes (same mode)
    known: dict[str, tuple[str, str | None]] = {}
    for k in wh.partitions("image_hashes"):
        if k == key:
            continue
        prev = wh.read_table("image_hashes", partition=k, columns=["sha256", "phash", "hash_mode", "hash_error"])
        prev = prev[prev["hash_mode"] == cfg.dedup.mode]
        known.update(zip(prev["sha256"], zip(prev["phash"], prev["hash_error"])))
    todo = [s for s in imgs["sha256"] if s not in known]
    computed: dict[str, tuple[str | None, str | None]] = {}
    bs = cfg.dedup.batch_size
    for i in range(0, len(todo), bs):
        chunk = todo[i:i + bs]
        paths = [str(wh.blobs.path(s)) for s in chunk]
        if cfg.dedup.mode == "fast":
            arr, errors = phash_fast_many(paths)
            hexes = hashes_to_hex(arr)
        else:
            hexes, errors = [], []
            for p in paths:
                try:
                    hexes.append(hashes_to_hex([phash_exact(p)])[0])
                    errors.append(None)
                except Exception as e:  # recorded per image, never dropped
                    hexes.append(None)
                    errors.append(f"{type(e).__name__}: {e}")
        for s, h, e in zip(chunk, hexes, errors):
            computed[s] = (None if e else h, e)
    # how often the fast mode differs from exact imagehash.phash, on a sample of this batch's images
    agreement = {}
    sample = [s for s in todo if computed[s][0] is not None][:16] if cfg.dedup.mode == "fast" else []
    if sample:
        diffs = [hamming(int(computed[s][0], 16), phash_exact(str(wh.blobs.path(s)))) for s in sample]
        agreement = {"n": len(diffs), "identical": sum(d == 0 for d in diffs),
                     "mean_bits": round(sum(diffs) / len(diffs), 3), "max_bits": max(diffs)}
    allh = {**known, **computed}
    # explicit dtypes: a batch without any ok image must still write the same schema
    imgs = imgs.astype({"sha256": "string", "width": "Int64", "height": "Int64", "image_format": "string",
                        "n_candidates": "Int64"})
    imgs["first_seen"] = pd.to_datetime(imgs["first_seen"], utc=True)
    imgs["phash"] = pd.Series([allh[s][0] for s in imgs["sha256"]], index=imgs.index, dtype="string")
    imgs["hash_error"] = pd.Series([allh[s][1] for s in imgs["sha256"]], index=imgs.index, dtype="string")
    imgs["hash_mode"] = pd.Series(cfg.dedup.mode, index=imgs.index, dtype="string")
    imgs["batch"] = pd.Series(key, index=imgs.index, dtype="string")
    wh.write_table("image_hashes", imgs, partition=key)
    n_err = int(imgs["hash_error"].notna().sum())
    return MaterializeResult(metadata=stage_metadata(
        len(ok), len(imgs) - n_err,
        {"exact_duplicate_bytes": len(ok) - len(imgs), **({"hash_error": n_err} if n_err else {})},
        computed=MetadataValue.int(len(todo)), reused=MetadataValue.int(len(imgs) - len(todo)),
        mode=cfg.dedup.mode, fast_vs_exact_sample=MetadataValue.json(agreement), examples=md_table(imgs[["sha256", "phash", "width", "height"]]),
    ))


@asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[image_hashes],
       description="Near-duplicate groups: pairs within Hamming distance t found with a persistent "
                   "multi-index-hashing index (a new batch is compared against everything seen before), "
                   "connected components, one representative per group (largest resolution, then earliest).")
def duplicate_groups(context: AssetExecutionContext, emoforge: EmoforgeResource) -> MaterializeResult:
    cfg = emoforge.settings
    wh = emoforge.warehouse
    hashes = wh.read_table("image_hashes")
    hashes = hashes[hashes["phash"].notna() & (hashes["hash_mode"] == cfg.dedup.mode)]
    hashes = hashes.sort_values(["first_seen", "sha256"]).drop_duplicates("sha256", keep="first")
    index_dir = wh.state_path(f"phash_index_{cfg.dedup.mode}", "x").parent
    try:
        index = HashIndex(index_dir, cfg.dedup.threshold, cfg.dedup.effective_bands)
    except IndexParameterMismatch as e:
        context.log.warning(f"{e}; rebuilding the index with the configured parameters")
        shutil.rmtree(index_dir)
        index = HashIndex(index_dir, cfg.dedup.threshold, cfg.dedup.effective_bands)
    n_before = len(index)
    new_pairs = index.add(hashes["sha256"].tolist(),
                          np.array([int(h, 16) for h in hashes["phash"]], dtype=np.uint64))
    pairs = index.pairs()
    pairs = pairs[pairs["key_a"].isin(hashes["sha256"]) & pairs["key_b"].isin(hashes["sha256"])]
    keys = hashes["sha256"].astype(str).tolist()
    labels = connected_components(keys, pairs) if keys else np.zeros(0, dtype=np.int64)
    df = pd.DataFrame({"key": keys, "width": hashes["width"].to_numpy(), "height": hashes["height"].to_numpy(),
                       "first_seen": hashes["first_seen"].to_numpy(), "group": labels})
    groups = choose_representatives(df).rename(columns={"key": "sha256"})
    groups["sha256"] = groups["sha256"].astype("string")
    info = hashes[["sha256", "phash", "width", "height", "first_seen", "batch"]].astype({"sha256": "string"})
    groups = groups.drop(columns=[c for c in ("width", "height", "first_seen") if c in groups]).merge(
        info, on="sha256", how="left")
    wh.write_table("near_duplicate_pairs", pairs.rename(columns={"key_a": "sha256_a", "key_b": "sha256_b"}))
    wh.write_table("duplicate_groups", groups)
    n_groups = int(groups["group_id"].nunique())
    multi = groups[groups["group_size"] > 1]
    return MaterializeResult(metadata=stage_metadata(
        len(groups), n_groups, {"near_duplicate": len(groups) - n_groups},
        threshold=cfg.dedup.threshold, pairs=MetadataValue.int(len(pairs)),
        new_pairs=MetadataValue.int(len(new_pairs)), indexed_before=MetadataValue.int(n_before),
        groups_with_duplicates=MetadataValue.int(int(multi["group_id"].nunique())),
        examples=md_table(multi.sort_values("group_id")[["group_id", "sha256", "is_representative", "width"]]),
    ))


@asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[duplicate_groups],
       description="One row per distinct image after exact (SHA-256) and near-duplicate (pHash) "
                   "de-duplication, with its provenance: first query, URL, batch, and how many "
                   "candidates and duplicates it stands for.")
def unique_images(context: AssetExecutionContext, emoforge: EmoforgeResource) -> MaterializeResult:
    wh = emoforge.warehouse
    groups = wh.read_table("duplicate_groups")
    dl = wh.read_table("downloaded_images")
    ok = dl[dl["status"] == S.OK].sort_values(["downloaded_at", "candidate_id"])
    first = ok.drop_duplicates("sha256", keep="first").set_index("sha256")
    n_cand = ok.groupby("sha256").size()
    reps = groups[groups["is_representative"]].copy()
    reps["n_candidates"] = reps["sha256"].map(n_cand).fillna(0).astype(int)
    for col in ("url", "final_url", "query", "query_id", "rank", "provider", "item_id", "candidate_id", "image_format", "bytes"):
        reps[col] = reps["sha256"].map(first[col]) if col in first else None
    reps["first_batch"] = reps["sha256"].map(first["batch"])
    reps = reps.rename(columns={"group_size": "n_near_duplicates"})
    reps["n_near_duplicates"] = reps["n_near_duplicates"] - 1
    cols = ["sha256", "width", "height", "phash", "group_id", "n_near_duplicates", "n_candidates", "url",
            "final_url", "query", "query_id", "rank", "provider", "item_id", "candidate_id", "image_format",
            "bytes", "first_batch", "first_seen"]
    reps = reps[cols].sort_values(["first_seen", "sha256"]).reset_index(drop=True)
    wh.write_table("unique_images", reps)
    return MaterializeResult(metadata=stage_metadata(
        len(ok), len(reps),
        {"exact_duplicate": len(ok) - ok["sha256"].nunique(),
         "hash_error": ok["sha256"].nunique() - len(groups), "near_duplicate": len(groups) - len(reps)},
        blob_dir=MetadataValue.path(str(wh.blobs.root)),
        examples=md_table(reps[["sha256", "width", "height", "query", "url"]]),
    ))
