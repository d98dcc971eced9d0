"""Image acquisition (FindingEmo §2.3.1): from keyword sets or URL lists to stored images.

    queries.py     every emotion x people x setting query; FindingEmo's recovered keyword sets
    batches.py     scrape-batch keys and the plan of batches a configuration covers
    search.py      search providers (ddgs, an HTTP JSON endpoint) and the per-query search log
    url_lists.py   published URL lists (FindingEmo-Light JSON, CSV, Parquet, JSONL) as hits
    candidates.py  URL normalization, domain blacklist, width filter, de-duplication of URLs
    netguard.py    the address guard (no fetch from loopback or private networks)
    transport.py   HTTP plumbing: deadlines that cut the socket, connections pinned to checked addresses
    images.py      validation of downloaded bytes: header limits, one (DCT-scaled) decode, fast pHash
    journal.py     the append-only resume journal of the downloader
    download.py    the downloader: backups, politeness, retries (also across builds), limits, journal
    statuses.py    the closed vocabulary of per-candidate statuses
"""
