"""Cached backbone activations (FindingEmo §3, footnote 4: "we buffered model activations whenever
possible"): every image is passed through a frozen backbone once per extractor, and every later
model (keep/reject, Emo8, the AffectNet+ heads) trains on the stored vectors.

    extract.py  ``extract_features(items, backbone, store)``: only the images the store lacks,
                batched inference, resumable shard by shard, an ``ExtractionReport``;
                ``feature_key`` / ``extractor_meta`` name and describe the extractor
    decode.py   decoding for inference: DCT-scaled JPEG decoding (PIL draft) to the target size in
                worker threads (or processes), failures returned as outcomes, batch normalization

The store itself (``.npy`` shards memory-mapped, a Parquet index, the ``image_features`` rows) is
``warehouse.features.FeatureStore``.
"""
