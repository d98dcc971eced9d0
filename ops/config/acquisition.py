"""Configuration of image acquisition (FindingEmo §2.3.1): keyword sets, providers, filters, download."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ops.config.base import _Strict


DEFAULT_BLACKLIST = (
    "shutterstock.com", "gettyimages.com", "istockphoto.com", "alamy.com", "dreamstime.com",
    "123rf.com", "depositphotos.com", "stock.adobe.com", "adobestock.com", "fotolia.com",
    "bigstockphoto.com", "canstockphoto.com", "agefotostock.com", "stocksy.com",
    "pond5.com", "vectorstock.com", "freepik.com", "pixtastock.com", "photodune.net",
    "colourbox.com", "superstock.com", "masterfile.com", "eyeem.com", "featurepics.com",
    "pinterest.com", "pinimg.com", "gograph.com", "crushpixel.com", "stockfresh.com",
    "mostphotos.com", "photocase.com", "westend61.de", "imago-images.com", "picfair.com",
)


class KeywordSets(_Strict):
    """The three keyword sets of FindingEmo §2.3.1. ``None`` means: the sets FindingEmo used."""

    emotions: list[str] | None = None
    people: list[str] | None = None
    settings: list[str] | None = None


class DdgsProvider(_Strict):
    region: str = "us-en"
    safesearch: Literal["on", "moderate", "off"] = "moderate"
    backend: str = "auto"
    pause_seconds: float = Field(2.0, ge=0)  # politeness between queries


class UrlListProvider(_Strict):
    path: str | None = None  # None: FindingEmo-Light's dataset_urls_exploded.json
    format: Literal["auto", "findingemo_json", "csv", "parquet", "jsonl"] = "auto"
    url_column: str = "url"
    id_column: str | None = None      # groups backup URLs of one image (FindingEmo: rel_path)
    order_column: str | None = None   # backup order within an image (FindingEmo: idx_url)
    query_column: str | None = None   # a column holding the query/keywords, if the list has one
    items_per_batch: int = Field(5000, ge=1)  # a scrape batch (partition) covers this many items
    max_items: int | None = Field(None, ge=1)  # use only the first N items of the list


class DemoWorld(_Strict):
    """The demo world (ops.demo.world): face crops and scenes with known emotional content."""

    enabled: bool = True
    seed: int = 11
    n_faces: int = Field(800, ge=0, le=20000)
    n_scenes: int = Field(400, ge=6, le=20000)
    face_size: int = Field(832, ge=64, le=4096)          # served size: passes the 800 < w < 1600 filter
    render_size: int | None = Field(160, ge=64, le=4096)  # drawn at this size, scaled up to face_size
    face_fraction: float = Field(0.85, gt=0.2, le=1.0)   # of the crop the face spans (AffectNet-like)
    overlap_fraction: float = Field(0.6, ge=0, le=1)     # scenes annotated by 2-5 annotators (others by one)
    workers: int = Field(2, ge=1, le=64)                  # processes rendering (same bytes for any number)


class DemoProvider(_Strict):
    n_images: int = Field(240, ge=20, le=5000)
    seed: int = 7
    # a fixed port keeps candidate URLs stable across builds, so a rebuild downloads nothing again
    port: int = Field(18765, ge=0, le=65535)
    world: DemoWorld = DemoWorld()


class ProviderConfig(_Strict):
    kind: Literal["ddgs", "url_list", "demo"] = "ddgs"
    results_per_query: int = Field(500, ge=1, le=10000)
    ddgs: DdgsProvider = DdgsProvider()
    url_list: UrlListProvider = UrlListProvider()
    demo: DemoProvider = DemoProvider()


class DownloadConfig(_Strict):
    concurrency: int = Field(8, ge=1, le=256)
    per_host: int = Field(2, ge=1, le=64)
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(20.0, gt=0)
    max_bytes: int = Field(20_000_000, ge=1024)
    retries: int = Field(3, ge=0, le=20)
    backoff_base: float = Field(0.5, ge=0)
    backoff_max: float = Field(30.0, ge=0)
    max_retry_after: float = Field(60.0, ge=0)  # longer Retry-After: give up with http_429/503
    max_redirects: int = Field(5, ge=0, le=30)
    user_agent: str = "emoforge/0.1 (+research dataset builder)"
    allow_hosts: list[str] = Field(default_factory=list)  # hosts/IPs/CIDRs exempt from the address guard
    # overall deadline per URL: every request, redirect hop, retry, backoff and Retry-After pause of
    # one URL, from its first request on (each request also has connect_timeout + 3 x read_timeout)
    url_deadline: float = Field(120.0, gt=0)
    # builds that may try a candidate whose download failed transiently (timeout, connection_error,
    # http_429, http_5xx); 1 = never retried by a later build. Permanent failures are never retried.
    max_build_attempts: int = Field(3, ge=1, le=100)
    # limits checked from the image header, before decoding, after EXIF orientation (the width
    # limits are acquisition.min_width/max_width, FindingEmo §2.3.1); null = no limit
    max_height: int | None = Field(10_000, ge=1)               # refused: too_tall
    max_pixels: int | None = Field(40_000_000, ge=1)           # refused: too_many_pixels
    max_aspect_ratio: float | None = Field(5.0, ge=1.0)        # long / short side; extreme_aspect_ratio
    # a Redis URL (redis://host:port/db) through which every process of a cluster shares the
    # per_host slots and 429/503 pauses; null = per process (default: $EMOFORGE_HOST_LIMITER)
    shared_limiter: str | None = Field(None, pattern=r"^rediss?://")


class AcquisitionConfig(_Strict):
    keywords: KeywordSets = KeywordSets()
    max_queries: int | None = Field(None, ge=1)  # use only the first N generated queries
    queries_per_batch: int = Field(50, ge=1)     # a scrape batch (partition) covers this many queries
    provider: ProviderConfig = ProviderConfig()
    blacklist_domains: list[str] = Field(default_factory=lambda: list(DEFAULT_BLACKLIST))
    min_width: int = Field(800, ge=0)    # exclusive: FindingEmo keeps 800 < w
    max_width: int = Field(1600, ge=1)   # exclusive: w < 1600 (later runs: 3200)
    download: DownloadConfig = DownloadConfig()

    @model_validator(mode="after")
    def _widths(self) -> "AcquisitionConfig":
        if self.min_width >= self.max_width:
            raise ValueError(f"min_width ({self.min_width}) must be below max_width ({self.max_width})")
        return self

    # ---- plain parameters for ops.acquisition -----------------------------------------------------
    def keyword_sets(self) -> dict[str, list[str]]:
        """The three keyword sets, FindingEmo's own (recovered, ops/data) for the sets not given."""
        from ops.acquisition.queries import findingemo_keywords

        default = findingemo_keywords()
        kw = self.keywords
        return {name: list(getattr(kw, name)) if getattr(kw, name) is not None else list(default[name])
                for name in ("emotions", "people", "settings")}

    def url_list_spec(self):
        """The URL list to read (``ops.acquisition.url_lists.UrlListSpec``); default FindingEmo-Light's."""
        from pathlib import Path

        from ops.acquisition.queries import findingemo_data_dir
        from ops.acquisition.url_lists import UrlListSpec

        u = self.provider.url_list
        path = Path(u.path) if u.path else findingemo_data_dir() / "dataset_urls_exploded.json"
        return UrlListSpec(path=path, format=u.format, url_column=u.url_column, id_column=u.id_column,
                           order_column=u.order_column, query_column=u.query_column)

    def scrape_plan(self, cache_dir=None):
        """What to scrape, as ``ops.acquisition.batches.ScrapePlan`` (``cache_dir``: where a parsed
        URL list is kept between processes)."""
        from ops.acquisition.batches import ScrapePlan

        p = self.provider
        if p.kind == "url_list":
            return ScrapePlan(provider="url_list", url_list=self.url_list_spec(), max_items=p.url_list.max_items,
                              items_per_batch=p.url_list.items_per_batch, cache_dir=cache_dir)
        return ScrapePlan(provider=p.kind, keywords=self.keyword_sets(), max_queries=self.max_queries,
                          queries_per_batch=self.queries_per_batch)

    def download_settings(self):
        """The downloader's parameters (``ops.acquisition.download.DownloadSettings``)."""
        from ops.acquisition.download import DownloadSettings

        return DownloadSettings(**self.download.model_dump())
