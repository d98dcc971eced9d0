"""Configuration of annotation sources, grading, merging and the queue (FindingEmo §2.3.2–2.3.3, §A.5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ops.config.base import _Strict
from ops.labels.aggregators import aggregator_names

PolicyName = Literal[aggregator_names()]  # every registered aggregator (ops.labels.aggregators)


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
    max_votes_per_cell: int = Field(1000, ge=1)     # vote_counts: a larger cell is a reject (file, line, column)
    generated_by: str | None = None                  # an asset of the build writes this file (not checked at load)

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
    gold_generated_by: str | None = None                 # an asset of the build writes gold_path
    threshold: float = Field(0.8, ge=0, le=1)            # s >= 0.8 accepted (FindingEmo §2.3.3)
    score_for_decision: Literal["score", "score_alt", "either"] = "score"
    policy: Literal["exclude_rejected", "exclude_rejected_and_ungraded", "keep_all"] = "exclude_rejected"


class MergeConfig(_Strict):
    policy: PolicyName = "majority"
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


# ---- plain parameters for ops.annotations / ops.labels ----------------------------------------------

def source_spec(src: AnnotationSource):
    """``ops.annotations.sources.SourceSpec`` of a configured source (paths already resolved by the loader)."""
    from pathlib import Path

    from ops.annotations.sources import SourceSpec

    return SourceSpec(
        kind=src.kind, path=Path(src.path) if src.path else None, name=src.name, taxonomy=src.taxonomy,
        scales=src.scales, integer_scales=src.integer_scales, reject_tags=src.reject_tags, mapping=src.mapping,
        label_map=src.label_map, item_columns=src.item_columns, label_columns=src.label_columns,
        item_column=src.item_column, split_column=src.split_column, image_path_column=src.image_path_column,
        query_column=src.query_column, max_votes_per_cell=src.max_votes_per_cell)


def gold_references(cfg: GradingConfig) -> list:
    """The fixed overlap images of the grading section (inline, then ``gold_path``)."""
    from pathlib import Path

    from ops.annotations.grading import GoldReference
    from ops.annotations.sources import gold_references as read_gold

    inline = [GoldReference(image_id=g.image_id, keep=g.keep, valence=g.valence, arousal=g.arousal,
                            emotion8=g.emotion8) for g in cfg.gold]
    return read_gold(inline, Path(cfg.gold_path) if cfg.gold_path else None)


def aggregator(cfg: MergeConfig):
    """The configured aggregation policy (FindingEmo §A.5; AffectNet+ Supplement II; crowd-kit)."""
    from ops.labels.aggregators import make_aggregator

    params = {"majority": {"min_votes_per_label": cfg.min_votes_per_label, "min_share": cfg.min_share},
              "plurality": {"tie_break": cfg.tie_break}}.get(cfg.policy, {})
    return make_aggregator({"kind": cfg.policy, **params})
