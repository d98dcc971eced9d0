"""The fixed Arrow schemas of the acquisition tables.

Every batch of a partitioned table is written with its table's schema, empty or not: a batch whose
queries all returned nothing, or whose ``item_id`` is NULL in every row, has the same column types as
every other batch (pandas would otherwise infer ``null`` or ``double`` for an all-NULL column, and
one such file made every later read of the table fail). Columns a writer adds beyond these keep their
inferred types after the schema's columns.
"""

from __future__ import annotations

import pyarrow as pa

S, I64, F64 = pa.string(), pa.int64(), pa.float64()
TS = pa.timestamp("us", tz="UTC")
STRINGS = pa.list_(pa.string())


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(n, t) for n, t in fields])


SEARCH_LOG = _schema(
    ("query_id", S), ("query", S), ("provider", S), ("status", S), ("n_results", I64), ("error", S),
    ("elapsed_s", F64), ("retrieved_at", TS), ("batch", S),
)

SEARCH_RESULTS = _schema(
    ("query_id", S), ("query", S), ("rank", I64), ("provider", S), ("image_url", S), ("backup_urls", STRINGS),
    ("source_page", S), ("title", S), ("reported_width", I64), ("reported_height", I64), ("item_id", S),
    ("retrieved_at", TS), ("batch", S),
)

CANDIDATE_URLS = _schema(
    ("candidate_id", S), ("query_id", S), ("query", S), ("rank", I64), ("provider", S), ("item_id", S), ("url", S),
    ("normalized_url", S), ("backup_urls", STRINGS), ("host", S), ("source_page", S), ("title", S),
    ("reported_width", I64), ("reported_height", I64), ("filter_status", S), ("filter_reason", S), ("batch", S),
)

DOWNLOADED_IMAGES = _schema(
    ("candidate_id", S), ("query_id", S), ("query", S), ("rank", I64), ("provider", S), ("item_id", S), ("url", S),
    ("normalized_url", S), ("host", S), ("source_page", S), ("title", S), ("batch", S), ("filter_status", S),
    ("filter_reason", S), ("status", S), ("url_download", S), ("final_url", S), ("url_index", I64), ("attempts", I64),
    ("http_status", I64), ("sha256", S), ("bytes", I64), ("width", I64), ("height", I64), ("image_format", S),
    ("content_type", S), ("elapsed_s", F64), ("downloaded_at", TS), ("build_attempts", I64),
    ("transient", pa.bool_()), ("phash", S), ("phash_mode", S), ("reason", S),
)

IMAGE_HASHES = _schema(
    ("sha256", S), ("width", I64), ("height", I64), ("image_format", S), ("first_seen", TS), ("n_candidates", I64),
    ("phash", S), ("hash_error", S), ("hash_mode", S), ("batch", S),
)

SEARCH_QUERIES = _schema(
    ("query_index", I64), ("query_id", S), ("query", S), ("emotion_word", S), ("people_word", S),
    ("setting_word", S), ("batch", S),
)
