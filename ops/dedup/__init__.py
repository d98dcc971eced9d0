"""De-duplication (StockEmotion §3.1): perceptual hashes and near-duplicate groups.

    phash.py       pHash exactly as imagehash, and a fast mode (JPEG draft decode, batched DCT)
    hashing.py     hashing the images of one scrape batch, reusing hashes computed before
    hash_index.py  the persistent, incremental multi-index-hashing near-duplicate index
    grouping.py    connected components of the near-duplicate graph, representatives
"""
