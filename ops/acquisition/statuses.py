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
TOO_SMALL = "too_small"                # width <= min_width (from the header, after EXIF orientation)
TOO_WIDE = "too_wide"                  # width >= max_width (from the header, after EXIF orientation)
TOO_TALL = "too_tall"                  # height > max_height (from the header, after EXIF orientation)
TOO_MANY_PIXELS = "too_many_pixels"    # width x height > max_pixels (from the header)
EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"  # long side / short side > max_aspect_ratio (header)
BLOCKED_ADDRESS = "blocked_address"    # host resolves to loopback/private/link-local/... (any hop)
BLOCKED_SCHEME = "blocked_scheme"      # a redirect hop to a scheme other than http/https
TOO_MANY_REDIRECTS = "too_many_redirects"

FILTER_STATUSES = (BLACKLISTED, DUPLICATE_URL, INVALID_URL, WIDTH_OUT_OF_RANGE)
DOWNLOAD_STATUSES = (
    OK, TIMEOUT, CONNECTION_ERROR, TOO_LARGE, NOT_AN_IMAGE, TRUNCATED, DECOMPRESSION_BOMB,
    TOO_SMALL, TOO_WIDE, TOO_TALL, TOO_MANY_PIXELS, EXTREME_ASPECT_RATIO,
    BLOCKED_ADDRESS, BLOCKED_SCHEME, TOO_MANY_REDIRECTS,
)


def is_transient(status: str | None) -> bool:
    """A failure that may go away by itself: timeout, connection_error, http_429 and http_5xx.
    Such candidates are downloaded again by later builds (up to ``download.max_build_attempts``);
    every other failure (http_404, not_an_image, blocked_address, ...) is permanent."""
    if status in (TIMEOUT, CONNECTION_ERROR):
        return True
    if isinstance(status, str) and status.startswith(HTTP_PREFIX) and status[len(HTTP_PREFIX):].isdigit():
        code = int(status[len(HTTP_PREFIX):])
        return code == 429 or 500 <= code <= 599
    return False


def is_known_status(status: str) -> bool:
    if status in FILTER_STATUSES or status in DOWNLOAD_STATUSES:
        return True
    return status.startswith(HTTP_PREFIX) and status[len(HTTP_PREFIX):].isdigit()
