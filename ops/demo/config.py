"""The demo configuration: the generated corpus on a local server, loopback explicitly allowed.

The corpus (:mod:`ops.demo.corpus`) and its expected statuses assume these limits: 800 < w < 1600,
``download.max_bytes`` 3,000,000, read timeout 2 s with 2 retries, at most 5 redirects.
"""

from __future__ import annotations

from typing import Any

from ops.config import EmoforgeConfig, parse_config
from ops.demo.corpus import DEMO_KEYWORDS


def demo_settings() -> dict[str, Any]:
    """The demo configuration as a plain mapping (a config file can be layered over it)."""
    return {
        "acquisition": {
            "keywords": {k: list(v) for k, v in DEMO_KEYWORDS.items()},
            "provider": {"kind": "demo", "results_per_query": 40},
            "queries_per_batch": 4,
            "download": {
                "concurrency": 8, "per_host": 8, "connect_timeout": 2.0, "read_timeout": 2.0,
                "retries": 2, "backoff_base": 0.05, "backoff_max": 0.5, "max_retry_after": 5.0,
                "max_bytes": 3_000_000, "allow_hosts": ["127.0.0.1"],
            },
        },
        "dedup": {"threshold": 4},
    }


def demo_config() -> EmoforgeConfig:
    """The embedded demo configuration."""
    return parse_config(demo_settings(), "<demo>")
