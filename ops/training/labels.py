"""Training labels from merged annotations, for the models of a build, and their snapshots.

Every model is trained on labels of acquired images (rows of ``merged_annotations`` linked to an
image's SHA-256): keep/reject from the keep majority (FindingEmo §2.3.1, §A.5), the Emo8 leaf of
kept images (§2.3.2), the AffectNet-8 expression of faces (AffectNet+). A label snapshot (a hash of
the sorted (image, label) pairs) goes into every model's provenance and training key, so a model is
retrained exactly when its labels change.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from ops.annotations.taxonomy import get_taxonomy

KEEP_CLASSES = ["keep", "reject"]
EMO8_CLASSES = list(get_taxonomy("emo8").labels)
AFFECTNET8_CLASSES = list(get_taxonomy("affectnet8").labels)


def _linked(merged: pd.DataFrame) -> pd.DataFrame:
    if "sha256" not in merged.columns:
        return merged.iloc[:0].assign(sha256=pd.Series(dtype="string"))
    return merged[merged["sha256"].notna()]


def keep_labels(merged: pd.DataFrame) -> pd.DataFrame:
    """(sha256, label) with label keep/reject: images whose annotators' keep majority is decided, by
    annotators who judged it (vote-count sources only imply keep: such images are left out)."""
    m = _linked(merged)
    m = m[m["keep_majority"].isin(KEEP_CLASSES)]
    if "n_synthetic" in m.columns:
        m = m[m["n_synthetic"] < m["n_annotations"]]
    return _one_per_image(m.assign(label=m["keep_majority"]))


def emo8_labels(merged: pd.DataFrame) -> pd.DataFrame:
    """(sha256, label) with the merged Emo8 leaf of images annotated as keep (FindingEmo §2.3.2)."""
    m = _linked(merged)
    if "emotion8" not in m.columns:
        return pd.DataFrame({"sha256": pd.Series(dtype="string"), "label": pd.Series(dtype="string")})
    m = m[(m["keep_majority"] == "keep") & m["emotion8"].notna()]
    return _one_per_image(m.assign(label=m["emotion8"]))


def affectnet8_labels(merged: pd.DataFrame) -> pd.DataFrame:
    """(sha256, label) with the merged AffectNet-8 expression (emotion labels only, not None /
    Uncertain / Non-Face)."""
    m = _linked(merged)
    if "emotion" not in m.columns:
        return pd.DataFrame({"sha256": pd.Series(dtype="string"), "label": pd.Series(dtype="string")})
    m = m[(m["taxonomy"] == "affectnet8") & m["emotion"].isin(AFFECTNET8_CLASSES)]
    return _one_per_image(m.assign(label=m["emotion"]))


def _one_per_image(m: pd.DataFrame) -> pd.DataFrame:
    """One label per image (an image annotated in two sources keeps the label of the first source
    in name order, deterministically)."""
    sort = [c for c in ("sha256", "taxonomy", "image_id") if c in m.columns]
    out = m.sort_values(sort).drop_duplicates("sha256")[["sha256", "label"]]
    return out.astype({"sha256": "string", "label": "string"}).reset_index(drop=True)


def snapshot(labels: pd.DataFrame) -> str:
    """A short hash of the (sha256, label) pairs: the training-label snapshot of a model."""
    pairs = sorted(zip(labels["sha256"].astype(str), labels["label"].astype(str)))
    return hashlib.sha256("\n".join(f"{a}\t{b}" for a, b in pairs).encode()).hexdigest()[:16]


def training_key(*parts: object) -> str:
    """The key a stored model is found again by: any change of a part means training again."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]
