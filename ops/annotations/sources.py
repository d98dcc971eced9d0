"""Several annotation sources into one ``annotations`` table, and the gold references.

The configuration (``annotations.sources`` / ``annotations.grading``) is turned into the plain
:class:`SourceSpec` and :class:`~ops.annotations.grading.GoldReference` values by ``ops.config``;
this module reads them with the readers of :mod:`ops.annotations.readers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from ops.annotations.grading import GoldReference, gold_from_frame
from ops.annotations.readers import DEFAULT_MAX_VOTES_PER_CELL, read_findingemo_ann, read_long, read_vote_counts
from ops.annotations.schema import FINDINGEMO_REJECT_TAGS, IngestResult, concat_sources


@dataclass(frozen=True)
class SourceSpec:
    """One annotation export to read. ``findingemo`` without a path: FindingEmo-Light's annotations."""

    kind: str = "findingemo"                     # findingemo | long | vote_counts
    path: Path | None = None                     # resolved (absolute, or relative to the working dir)
    name: str | None = None                      # the ``source`` column (default: kind or file stem)
    taxonomy: str | None = None
    scales: Mapping[str, tuple[float, float]] | None = None
    integer_scales: bool = False
    reject_tags: Sequence[str] | None = None
    mapping: Mapping[str, str] | None = None
    label_map: Mapping[str, str] | None = None
    item_columns: Sequence[str] | None = None
    label_columns: Sequence[str] | Mapping[str, str] | None = None
    item_column: str | None = None
    split_column: str | None = None
    image_path_column: str | None = None
    query_column: str | None = None
    max_votes_per_cell: int = DEFAULT_MAX_VOTES_PER_CELL

    @property
    def source_name(self) -> str:
        """The value of the ``source`` column for this export."""
        if self.name:
            return self.name
        return "findingemo" if self.kind == "findingemo" else Path(self.path).stem


def read_source(src: SourceSpec) -> IngestResult:
    """Read one source (FindingEmo .ann, long or vote-count table)."""
    name = src.source_name
    if src.kind == "findingemo":
        reject_tags = list(src.reject_tags) if src.reject_tags is not None else ["Reject"]
        if reject_tags == ["findingemo"]:  # shorthand: every reject-reason tag of FindingEmo (§2.3.2)
            reject_tags = list(FINDINGEMO_REJECT_TAGS)
        return read_findingemo_ann(src.path, source=name, scales=src.scales, reject_tags=reject_tags)
    if src.kind == "long":
        return read_long(src.path, src.mapping or {}, source=name, taxonomy=src.taxonomy or "plutchik24",
                         scales=src.scales, integer_scales=src.integer_scales,
                         item_columns=src.item_columns or (), label_map=src.label_map)
    if src.kind == "vote_counts":
        return read_vote_counts(src.path, src.label_columns, src.item_column, source=name,
                                taxonomy=src.taxonomy or "affectnet8", split_column=src.split_column,
                                item_columns=src.item_columns, image_path_column=src.image_path_column,
                                query_column=src.query_column, max_votes_per_cell=src.max_votes_per_cell)
    raise ValueError(f"unknown annotation source kind {src.kind!r} (findingemo, long, vote_counts)")


def read_sources(sources: Iterable[SourceSpec]) -> IngestResult:
    """All sources into one ``annotations`` table plus one ``rejects`` table."""
    return concat_sources(read_source(s) for s in sources)


def gold_references(inline: Sequence[GoldReference] = (), gold_path: Path | None = None) -> list[GoldReference]:
    """The fixed overlap images (FindingEmo §2.3.3): inline references, then those of ``gold_path``
    (CSV or Parquet: image_id, keep, valence_min, valence_max, arousal_min, arousal_max, emotion8)."""
    refs = list(inline)
    if gold_path is not None:
        path = Path(gold_path)
        if not path.exists():
            raise FileNotFoundError(f"gold reference file {path} does not exist")
        df = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
        refs += gold_from_frame(df)
    return refs


def export_files(specs: Iterable[SourceSpec], gold_path: Path | None = None) -> list[Path]:
    """The files a build's annotations are read from (the FindingEmo-Light default resolved)."""
    from ops.annotations.schema import default_findingemo_path

    files = [Path(s.path) if s.path else default_findingemo_path() for s in specs]
    if gold_path:
        files.append(Path(gold_path))
    return files


def exports_fingerprint(files: Iterable[Path]) -> dict[str, str]:
    """{file: sha256 of its bytes, or "missing"}: what the annotation exports are now. A refresh
    compares it with the fingerprint recorded by the last ingest (content, not mtime: a copied or
    touched file that did not change is not new data)."""
    from ops.hashing import sha256_file

    out = {}
    for f in files:
        try:
            out[str(f)] = sha256_file(f)
        except FileNotFoundError:
            out[str(f)] = "missing"
    return out
