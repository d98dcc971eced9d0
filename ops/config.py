"""The emoforge configuration file (YAML), validated.

A wrong key or a wrong value is an error that names the key (``acquisition.download.concurrency``)
and the file. Every field has a default, so an empty file (or none) is a valid configuration: the
FindingEmo keyword sets, DuckDuckGo search, FindingEmo's first-phase limits (FindingEmo §2.3.1:
N = 500, 800 px < w < 1600 px).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration file could not be read or did not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Stock-photo providers and image aggregators, blacklisted as FindingEmo did (§2.3.1). Matching is
# on the registered domain and all its subdomains (ops.candidates).
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


class DemoProvider(_Strict):
    n_images: int = Field(240, ge=20, le=5000)
    seed: int = 7
    # a fixed port keeps candidate URLs stable across builds, so a rebuild downloads nothing again
    port: int = Field(18765, ge=0, le=65535)


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


class DedupConfig(_Strict):
    """Near-duplicate removal (StockEmotion §3.1: perceptual-hash de-duplication)."""

    threshold: int = Field(4, ge=0, le=16)   # Hamming distance t for near-duplicates
    mode: Literal["fast", "exact"] = "fast"  # exact: bit-for-bit imagehash.phash
    # multi-index hashing bands; None: threshold + 2, i.e. lookup tables keyed on pairs of bands:
    # real pHashes have biased bits, and at 1M hashes this is 2-9x faster than threshold + 1
    # (bench/results/neardup.md) for about 3x the index size
    bands: int | None = Field(None, ge=2, le=32)
    batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _bands(self) -> "DedupConfig":
        if self.bands is not None and self.bands <= self.threshold:
            raise ValueError(f"bands ({self.bands}) must exceed threshold ({self.threshold}) (pigeonhole)")
        if self.bands is None and self.threshold + 2 > 32:
            raise ValueError("threshold too large for the default bands; set bands explicitly")
        return self

    @property
    def effective_bands(self) -> int:
        return self.bands if self.bands is not None else self.threshold + 2


class AnnotationSource(_Strict):
    """One annotation export. ``findingemo`` with no path: FindingEmo-Light's 25,869 annotations."""

    kind: Literal["findingemo", "long", "vote_counts"] = "findingemo"
    path: str | None = None
    name: str | None = None                          # the ``source`` column; default: kind or file stem
    taxonomy: str | None = None                      # default: plutchik24 (findingemo, long), affectnet8 (vote_counts)
    scales: dict[str, tuple[float, float]] | None = None  # {"valence": [-3, 3], ...}; None: the source's default
    integer_scales: bool = False
    reject_tags: list[str] | None = None             # findingemo: tags that mean "reject" (default: "Reject")
    mapping: dict[str, str] | None = None            # long: annotations field -> source column
    label_map: dict[str, str] | None = None          # long: raw label -> taxonomy label
    item_columns: list[str] | None = None            # long / vote_counts: item-level columns to carry
    label_columns: list[str] | dict[str, str] | None = None  # vote_counts: count columns (or column -> label)
    item_column: str | None = None                   # vote_counts: the item id column
    split_column: str | None = None                  # vote_counts: e.g. "split"
    image_path_column: str | None = None
    query_column: str | None = None

    @model_validator(mode="after")
    def _needs(self) -> "AnnotationSource":
        if self.kind != "findingemo" and not self.path:
            raise ValueError(f"a {self.kind} source needs a path")
        if self.kind == "long" and not self.mapping:
            raise ValueError("a long source needs a mapping (field -> column) with image_id and annotator_id")
        if self.kind == "vote_counts" and (not self.label_columns or not self.item_column):
            raise ValueError("a vote_counts source needs label_columns and item_column")
        return self


class GoldImage(_Strict):
    """A fixed overlap image with its reference answer (FindingEmo §2.3.3)."""

    image_id: str
    keep: bool = True
    valence: tuple[float, float] | None = None
    arousal: tuple[float, float] | None = None
    emotion8: str | None = None


class GradingConfig(_Strict):
    gold: list[GoldImage] = Field(default_factory=list)   # inline references
    gold_path: str | None = None                         # or a CSV/Parquet: image_id, keep, valence_min, ...
    threshold: float = Field(0.8, ge=0, le=1)            # s >= 0.8 accepted (FindingEmo §2.3.3)
    score_for_decision: Literal["score", "score_alt", "either"] = "score"
    policy: Literal["exclude_rejected", "exclude_rejected_and_ungraded", "keep_all"] = "exclude_rejected"


class MergeConfig(_Strict):
    policy: Literal["majority", "plurality", "dawid_skene", "one_coin_dawid_skene", "glad", "majority_vote"] = "majority"
    min_votes_per_label: int = Field(1, ge=1)   # majority: labels with fewer votes are noise
    min_share: float = Field(0.5, ge=0, lt=1)   # majority: the winner needs strictly more than this share
    tie_break: Literal["query", "none"] = "query"  # plurality (AffectNet+ Supplement II)
    keyword_labels: dict[str, str] | None = None   # query emotion word -> taxonomy label, for tie-breaks


class QueueConfig(_Strict):
    k: int = Field(50, ge=0)
    p_r: float = Field(0.1, ge=0, le=1)          # probability of serving an overlap image (§2.3.3)
    seed: int = 0
    keep_threshold: float = Field(0.75, ge=0, le=1)  # FindingEmo §2.3.2
    target_overlap: int = Field(5, ge=1)


class AnnotationsConfig(_Strict):
    sources: list[AnnotationSource] = Field(default_factory=lambda: [AnnotationSource()], min_length=1)
    grading: GradingConfig = GradingConfig()
    merge: MergeConfig = MergeConfig()
    queue: QueueConfig = QueueConfig()


class EmoforgeConfig(_Strict):
    data_dir: str | None = None
    acquisition: AcquisitionConfig = AcquisitionConfig()
    dedup: DedupConfig = DedupConfig()
    annotations: AnnotationsConfig = AnnotationsConfig()

    @field_validator("data_dir")
    @classmethod
    def _nonempty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v


def demo_config() -> EmoforgeConfig:
    """The embedded demo: the generated corpus on a local server, loopback explicitly allowed."""
    from ops.demo import DEMO_KEYWORDS

    return EmoforgeConfig.model_validate(
        {
            "acquisition": {
                "keywords": dict(DEMO_KEYWORDS),
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
    )


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def parse_config(data: dict[str, Any] | None, source: str = "<config>") -> EmoforgeConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {source}: the top level must be a mapping")
    try:
        return EmoforgeConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path | None) -> EmoforgeConfig:
    """Read and validate a YAML config file; ``None`` gives the defaults."""
    if path is None:
        return EmoforgeConfig()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"configuration file {p} is not valid YAML: {e}") from None
    if isinstance(data, dict):
        _resolve_relative_paths(data, p.resolve().parent)
    return parse_config(data, str(p))


def _resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in a config file are relative to the file's folder, not to the working dir."""
    def fix(container: Any, key: str) -> None:
        if isinstance(container, dict) and isinstance(container.get(key), str) and container[key].strip():
            v = Path(container[key]).expanduser()
            container[key] = str(v if v.is_absolute() else base / v)

    fix(data, "data_dir")
    acq = data.get("acquisition")
    if isinstance(acq, dict) and isinstance(acq.get("provider"), dict):
        fix(acq["provider"].get("url_list"), "path")
    ann = data.get("annotations")
    if isinstance(ann, dict):
        for src in ann.get("sources") or []:
            fix(src, "path")
        fix(ann.get("grading"), "gold_path")


def config_to_yaml(cfg: EmoforgeConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
