"""From the ``annotations`` section of the config to readers, gold references and merges.

Glue between :mod:`ops.config` and the annotation ops (:mod:`ops.annotations.readers`,
:mod:`ops.annotations.grading`, :mod:`ops.labels.merge`); plain Python, no Dagster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from ops.annotations.readers import (
    FINDINGEMO_REJECT_TAGS, IngestResult, concat_sources, read_findingemo_ann, read_long, read_vote_counts,
)
from ops.config import AnnotationSource, GradingConfig, MergeConfig
from ops.annotations.grading import GoldReference, gold_from_frame
from ops.labels.merge import CrowdKit, Majority, Plurality, merge_annotations_with_estimates


def _resolve(path: str | None, base_dir: Path | None) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() or base_dir is None else (base_dir / p)


def read_source(src: AnnotationSource, base_dir: Path | None = None) -> IngestResult:
    """Read one configured source (FindingEmo .ann, long or vote-count table)."""
    path = _resolve(src.path, base_dir)
    if src.kind == "findingemo":
        name = src.name or "findingemo"
        reject_tags = src.reject_tags if src.reject_tags is not None else ("Reject",)
        if reject_tags == ["findingemo"]:  # shorthand: every reject-reason tag of FindingEmo
            reject_tags = FINDINGEMO_REJECT_TAGS
        return read_findingemo_ann(path, source=name, scales=src.scales, reject_tags=reject_tags)
    name = src.name or Path(src.path).stem
    if src.kind == "long":
        return read_long(path, src.mapping or {}, source=name, taxonomy=src.taxonomy or "plutchik24",
                         scales=src.scales, integer_scales=src.integer_scales,
                         item_columns=src.item_columns or (), label_map=src.label_map)
    return read_vote_counts(path, src.label_columns, src.item_column, source=name,
                            taxonomy=src.taxonomy or "affectnet8", split_column=src.split_column,
                            item_columns=src.item_columns, image_path_column=src.image_path_column,
                            query_column=src.query_column)


def read_sources(sources: Iterable[AnnotationSource], base_dir: Path | None = None) -> IngestResult:
    """All configured sources into one ``annotations`` table plus one ``rejects`` table."""
    return concat_sources(read_source(s, base_dir) for s in sources)


def gold_references(cfg: GradingConfig, base_dir: Path | None = None) -> list[GoldReference]:
    """The fixed overlap images (FindingEmo §2.3.3): inline references, then those of gold_path."""
    refs = [GoldReference(image_id=g.image_id, keep=g.keep, valence=g.valence, arousal=g.arousal,
                          emotion8=g.emotion8) for g in cfg.gold]
    path = _resolve(cfg.gold_path, base_dir)
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"gold reference file {path} does not exist")
        df = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
        refs += gold_from_frame(df)
    return refs


def merge_policy(cfg: MergeConfig):
    """The configured aggregation policy (FindingEmo §A.5; AffectNet+ Supplement II; crowd-kit)."""
    if cfg.policy == "majority":
        return Majority(min_votes_per_label=cfg.min_votes_per_label, min_share=cfg.min_share)
    if cfg.policy == "plurality":
        return Plurality(tie_break=cfg.tie_break)
    method = {"dawid_skene": "DawidSkene", "one_coin_dawid_skene": "OneCoinDawidSkene", "glad": "GLAD",
              "majority_vote": "MajorityVote"}[cfg.policy]
    return CrowdKit(method)


def merge_all_taxonomies(annotations: pd.DataFrame, cfg: MergeConfig,
                         excluded: Iterable[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge per taxonomy (a FindingEmo source and an AffectNet vote-count source can coexist):
    one row per (image, taxonomy), columns of each taxonomy's levels side by side."""
    policy = merge_policy(cfg)
    merged, estimates = [], []
    excluded = list(excluded)
    groups = list(annotations.groupby("taxonomy", sort=True))
    if not groups:  # no annotation at all: still the full (empty) schema, Plutchik's levels
        groups = [("plutchik24", annotations)]
    for tax, part in groups:
        m, e = merge_annotations_with_estimates(part, policy, taxonomy=str(tax), excluded_annotators=excluded,
                                                keyword_labels=cfg.keyword_labels)
        m.insert(1, "taxonomy", tax)
        merged.append(m)
        if e is not None and len(e):
            e = e.copy()
            e.insert(0, "taxonomy", tax)
            estimates.append(e)
    m = pd.concat(merged, ignore_index=True)
    e = pd.concat(estimates, ignore_index=True) if estimates else pd.DataFrame(
        columns=["taxonomy", "method", "level", "annotator_id", "kind", "true_label", "observed_label", "value"])
    return m, e
