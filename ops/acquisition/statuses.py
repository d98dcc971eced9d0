"""The closed vocabulary of per-candidate statuses.

Every candidate URL ends in exactly one of these. Filtering statuses are assigned before any
network access (``ops.acquisition.candidates``); download statuses by the downloader (``ops.acquisition.download``).
"""

OK = "ok"

# candidate filtering (no network)
BLACKLISTED = "blacklisted"            # registered domain or a subdomain of it is on the blacklist
DUPLICATE_URL = "duplicate_url"        # same normalized URL already a candidate (earlier rank/batch)
INVALID_URL = "invalid_url"            # unparseable, no host, or a scheme other than http/https
WIDTH_OUT_OF_RANGE = "width_out_of_range"  # search metadata says the width is outside the limits

# download
HTTP_PREFIX = "http_"                  # http_404, http_500, http_429 (after retries) ...
TIMEOUT = "timeout"                    # connect or read timeout after retries
CONNECTION_ERROR = "connection_error"  # refused, reset, DNS failure after retries
TOO_LARGE = "too_large"                # Content-Length or streamed bytes above max_bytes
NOT_AN_IMAGE = "not_an_image"          # bytes do not decode as an image (HTML served as image/jpeg...)
TRUNCATED = "truncated"                # image header is fine but the data stops early
DECOMPRESSION_BOMB = "decompression_bomb"  # PIL's decompression-bomb guard fired
TOO_SMALL = "too_small"                # decoded width <= min_width
TOO_WIDE = "too_wide"                  # decoded width >= max_width
BLOCKED_ADDRESS = "blocked_address"    # host resolves to loopback/private/link-local/... (any hop)
BLOCKED_SCHEME = "blocked_scheme"      # a redirect hop to a scheme other than http/https
TOO_MANY_REDIRECTS = "too_many_redirects"

FILTER_STATUSES = (BLACKLISTED, DUPLICATE_URL, INVALID_URL, WIDTH_OUT_OF_RANGE)
DOWNLOAD_STATUSES = (
    OK, TIMEOUT, CONNECTION_ERROR, TOO_LARGE, NOT_AN_IMAGE, TRUNCATED, DECOMPRESSION_BOMB,
    TOO_SMALL, TOO_WIDE, BLOCKED_ADDRESS, BLOCKED_SCHEME, TOO_MANY_REDIRECTS,
)


def is_known_status(status: str) -> bool:
    if status in FILTER_STATUSES or status in DOWNLOAD_STATUSES:
        return True
    return status.startswith(HTTP_PREFIX) and status[len(HTTP_PREFIX):].isdigit()
