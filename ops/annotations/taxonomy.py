"""Emotion taxonomies as data: Plutchik's wheel (Emo24 -> Emo8) and AffectNet-8.

A taxonomy is declared in ``ops/data/taxonomies.json`` (or any JSON file of the same shape loaded
with :func:`load_taxonomies`), so adding one needs no code change elsewhere. Each declares:

- ``labels``: the emotion labels, in canonical order (for Plutchik: wheel order);
- ``non_emotion_labels``: labels that are valid votes but not emotions (AffectNet's None, Uncertain,
  Non-Face). They count as votes when merging, but an item they win gets no emotion label, and the
  merge records why (ops.labels.merge);
- ``parent_taxonomy`` + ``parent``: for a hierarchical taxonomy, the label one level up
  (Emo24 "Serenity" -> Emo8 leaf "Joy", FindingEmo §2.1, Fig. 3);
- ``aliases``: other spellings (matching is case-insensitive anyway);
- ``ordinals`` or ``intra_leaf`` + ``wheel_size``: positions on Plutchik's wheel (Fig. 13).

Wheel distances (FindingEmo §A.5, Fig. 13). The 8 leaves carry ordinals 0..7 in wheel order
(Joy 0, Trust 1, Fear 2, Surprise 3, Sadness 4, Disgust 5, Anger 6, Anticipation 7), so opposite
leaves are 4 apart and the leaf distance is circular: ``min(|a-b|, 8-|a-b|)``. Within a leaf the
three emotions carry 1/3 (mild, outer ring), 2/3 (basic) and 1 (intense, centre): Fig. 13 gives
"joy" = 0.66 and "boredom" = 5.33. The Emo24 distance is the leaf distance plus the intra-leaf
distance (joy-boredom = 3 + 0.33 = 3.33). Distances are rounded to 2 decimals so that histogram
bins (Fig. 14) are exact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

TAXONOMY_FILE = "taxonomies.json"


def _key(label: str) -> str:
    """Case- and separator-insensitive lookup key: "Non-Face" == "non face" == "NON_FACE"."""
    return re.sub(r"[\s_\-]+", " ", str(label).strip()).casefold()


def slug(label: str) -> str:
    """A column-name-safe form of a label: "Non-Face" -> "non_face", "Young Adults" -> "young_adults"."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", str(label).strip()).strip("_").lower()
    return s or "empty"


@dataclass(frozen=True)
class Taxonomy:
    """One label set (FindingEmo §2.1 Fig. 3 for Plutchik; AffectNet+ Supplement II for AffectNet-8)."""

    name: str
    labels: tuple[str, ...]
    non_emotion_labels: tuple[str, ...] = ()
    parent_taxonomy: str | None = None
    parent: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    ordinals: Mapping[str, float] | None = None  # position on the wheel (leaf + intra-leaf), Fig. 13
    wheel_size: int | None = None                # circular leaf distance modulo this (8 for Plutchik)
    leaf_ordinals: Mapping[str, float] | None = None  # ordinal of each label's leaf (None: the ordinal itself)
    description: str = ""

    def __post_init__(self) -> None:
        """Validate labels/parents/aliases and build the lookup (FindingEmo §2.1: 24 emotions in 8 leaves)."""
        all_labels = list(self.labels) + list(self.non_emotion_labels)
        if len({_key(x) for x in all_labels}) != len(all_labels):
            raise ValueError(f"taxonomy {self.name!r}: labels are not unique (case-insensitively)")
        missing = [x for x in self.labels if self.parent_taxonomy and x not in self.parent]
        if missing:
            raise ValueError(f"taxonomy {self.name!r}: no parent for {missing}")
        lookup = {_key(x): x for x in all_labels}
        for alias, target in self.aliases.items():
            if target not in lookup.values():
                raise ValueError(f"taxonomy {self.name!r}: alias {alias!r} points to unknown {target!r}")
            lookup.setdefault(_key(alias), target)
        object.__setattr__(self, "_lookup", lookup)

    # ---- labels -------------------------------------------------------------------------------
    @property
    def all_labels(self) -> tuple[str, ...]:
        """Emotion labels, then non-emotion labels: every valid vote."""
        return tuple(self.labels) + tuple(self.non_emotion_labels)

    def normalize(self, label: object) -> str | None:
        """The canonical spelling of ``label`` (case-insensitive, aliases), or None if unknown."""
        if label is None:
            return None
        return self._lookup.get(_key(label))  # type: ignore[attr-defined]

    def is_emotion(self, label: str) -> bool:
        """An emotion label (not one of the non-emotion labels of AffectNet+ Supplement II)."""
        return label in self.labels

    def is_non_emotion(self, label: str) -> bool:
        """A vote that is not an emotion (AffectNet+ Supplement II: None, Uncertain, Non-Face)."""
        return label in self.non_emotion_labels

    def to_parent(self, label: str | None) -> str | None:
        """Emo24 -> Emo8 leaf (FindingEmo §2.1); a non-emotion label maps to itself; None stays None."""
        if label is None:
            return None
        if label in self.non_emotion_labels:
            return label
        if not self.parent_taxonomy:
            raise ValueError(f"taxonomy {self.name!r} has no parent taxonomy")
        return self.parent[label]

    def order(self, label: str) -> int:
        """Position of a label in canonical order (emotion labels first, then non-emotion labels)."""
        return self.all_labels.index(label)

    # ---- wheel distances (FindingEmo §A.5, Fig. 13) -------------------------------------------
    @property
    def has_wheel(self) -> bool:
        """Whether wheel distances (FindingEmo Fig. 13) are defined."""
        return self.ordinals is not None and self.wheel_size is not None

    def ordinal(self, label: str) -> float:
        """Fig. 13 ordinal: Emo8 leaf ordinal 0..7; Emo24 leaf ordinal + 1/3, 2/3 or 1."""
        if not self.ordinals:
            raise ValueError(f"taxonomy {self.name!r} has no wheel ordinals")
        return self.ordinals[label]

    def distance(self, a: str, b: str) -> float:
        """Wheel distance (FindingEmo §A.5, Fig. 13): circular leaf distance + intra-leaf distance."""
        if not self.has_wheel:
            raise ValueError(f"taxonomy {self.name!r} has no wheel ordinals")
        oa, ob = self.ordinals[a], self.ordinals[b]  # type: ignore[index]
        leaves = self.leaf_ordinals or self.ordinals
        la, lb = leaves[a], leaves[b]
        d = abs(la - lb) % self.wheel_size  # type: ignore[operator]
        leaf = min(d, self.wheel_size - d)  # type: ignore[operator]
        intra = abs((oa - la) - (ob - lb))
        return round(leaf + intra, 2)


def _taxonomy_from_dict(d: Mapping, known: Mapping[str, Taxonomy]) -> Taxonomy:
    """One entry of taxonomies.json -> Taxonomy; ordinals from intra_leaf per FindingEmo Fig. 13."""
    name = d["name"]
    labels = tuple(d["labels"])
    ordinals = d.get("ordinals")
    wheel_size = d.get("wheel_size")
    parent_tax = d.get("parent_taxonomy")
    leaf_ordinals = None
    if ordinals is None and d.get("intra_leaf") is not None:
        # Fig. 13: ordinal = ordinal of the parent leaf + intra-leaf rank / 3
        if not parent_tax or parent_tax not in known or known[parent_tax].ordinals is None:
            raise ValueError(f"taxonomy {name!r}: intra_leaf needs a parent taxonomy with ordinals")
        pt = known[parent_tax]
        leaf_ordinals = {x: float(pt.ordinals[d["parent"][x]]) for x in labels}  # type: ignore[index]
        ordinals = {x: leaf_ordinals[x] + d["intra_leaf"][x] / 3.0 for x in labels}
        wheel_size = wheel_size or pt.wheel_size
    if ordinals is not None:
        ordinals = {k: float(v) for k, v in ordinals.items()}
        if set(ordinals) != set(labels):
            raise ValueError(f"taxonomy {name!r}: ordinals must cover exactly its labels")
    if parent_tax and parent_tax in known:
        bad = {x: p for x, p in d.get("parent", {}).items() if p not in known[parent_tax].labels}
        if bad:
            raise ValueError(f"taxonomy {name!r}: parents not in {parent_tax!r}: {bad}")
    return Taxonomy(
        name=name,
        labels=labels,
        non_emotion_labels=tuple(d.get("non_emotion_labels", ())),
        parent_taxonomy=parent_tax,
        parent=dict(d.get("parent", {})),
        aliases=dict(d.get("aliases", {})),
        ordinals=ordinals,
        wheel_size=wheel_size,
        leaf_ordinals=leaf_ordinals,
        description=d.get("description", ""),
    )


def load_taxonomies(source: str | Path | Mapping | None = None) -> dict[str, Taxonomy]:
    """Read taxonomies from a JSON file (default: the packaged ``ops/data/taxonomies.json``).

    Parents must come before children in the file (Emo8 before Emo24).
    """
    if source is None:
        data = json.loads(resources.files("ops").joinpath("data", TAXONOMY_FILE).read_text("utf-8"))
    elif isinstance(source, Mapping):
        data = source
    else:
        data = json.loads(Path(source).read_text("utf-8"))
    out: dict[str, Taxonomy] = {}
    for d in data["taxonomies"]:
        out[d["name"]] = _taxonomy_from_dict(d, out)
    return out


_REGISTRY: dict[str, Taxonomy] = load_taxonomies()


def register_taxonomy(tax: Taxonomy | Mapping, *, replace: bool = False) -> Taxonomy:
    """Add a taxonomy (a :class:`Taxonomy` or a dict shaped like one entry of taxonomies.json)."""
    if not isinstance(tax, Taxonomy):
        tax = _taxonomy_from_dict(tax, _REGISTRY)
    if tax.name in _REGISTRY and not replace:
        raise ValueError(f"taxonomy {tax.name!r} is already registered")
    _REGISTRY[tax.name] = tax
    return tax


def get_taxonomy(name: str | Taxonomy) -> Taxonomy:
    """The registered taxonomy ``name`` (a Taxonomy passes through)."""
    if isinstance(name, Taxonomy):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown taxonomy {name!r}; known: {sorted(_REGISTRY)}") from None


def taxonomy_names() -> list[str]:
    """Registered taxonomy names (FindingEmo §2.1 Plutchik, AffectNet+ Supplement II AffectNet-8, user-added)."""
    return sorted(_REGISTRY)


def levels(tax: str | Taxonomy) -> list[Taxonomy]:
    """The taxonomy and its ancestors, finest first: plutchik24 -> [plutchik24, emo8]."""
    t = get_taxonomy(tax)
    out = [t]
    while t.parent_taxonomy:
        t = get_taxonomy(t.parent_taxonomy)
        out.append(t)
    return out


EMO8 = get_taxonomy("emo8")
PLUTCHIK24 = get_taxonomy("plutchik24")
AFFECTNET8 = get_taxonomy("affectnet8")

# Emo24 -> Emo8 leaf (FindingEmo §2.1, Fig. 3)
EMO24_TO_EMO8: dict[str, str] = dict(PLUTCHIK24.parent)


def wheel_distance(a: str, b: str) -> float:
    """Distance on Plutchik's wheel (FindingEmo §A.5, Fig. 13) between two Emo8 leaves or Emo24 emotions.

    Two leaves: circular leaf distance (0..4). An Emo24 emotion with anything: leaf distance plus
    intra-leaf distance (a leaf given alone is taken at its basic emotion, e.g. "Joy").
    """
    ta = EMO8 if (EMO8.normalize(a) and EMO8.normalize(b)) else PLUTCHIK24
    na, nb = ta.normalize(a), ta.normalize(b)
    if na is None or nb is None:
        raise ValueError(f"not a Plutchik emotion: {a if na is None else b!r}")
    return ta.distance(na, nb)


def max_pairwise_distance(tax: Taxonomy, labels: Iterable[str]) -> float | None:
    """Largest wheel distance between any two of ``labels`` (FindingEmo §A.5, Fig. 14); 0 for one label.

    Non-emotion labels are ignored; None when no emotion label is left or the taxonomy has no wheel.
    """
    if not tax.has_wheel:
        return None
    xs = sorted({x for x in labels if tax.is_emotion(x)})
    if not xs:
        return None
    return max((tax.distance(a, b) for i, a in enumerate(xs) for b in xs[i:]), default=0.0)
