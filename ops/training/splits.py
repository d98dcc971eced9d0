"""Dataset splits a downstream user can trust (issue "Training and evaluation"; FindingEmo §3,
Deep Affect §2.3, AffectNet / FER+ source splits), and the leakage test they must pass.

Schemes (one row per item and scheme; items are image sha256s, plus the faces of those images):

    findingemo_80_20   FindingEmo §3: "a random 80/20 train/test split, stratified per Emo8 label";
                       over annotated, kept images with an Emo8 label.
    kfold<k>           Deep Affect §2.3: k-fold cross-validation (k = 5), folds ``fold0`` … stratified
                       by Emo8 where the label exists.
    source             the annotation source's own split column (AffectNet train/validation, FER+
                       Training/PublicTest/PrivateTest), copied as given.
    affectnet_mas      AffectNet+ §3.1 train-MAS / test-MAS (``mas_split``), for faces.

Determinism: a scheme is a function of the items, the seed and, on a refresh, the previous build's
assignment, which is kept (``training.splits.keep_previous``): images keep their split, only new
images are placed (see ``_folds`` for why the placement is ours rather than scikit-learn's
StratifiedGroupKFold). Without it a refresh reshuffled 216 of 263 images, so test images of one
build were training images of the next.

Leakage: none of the seed papers guard against it, emoforge does. Every near-duplicate family (the
``group_id`` of ``duplicate_groups``) lies in one split of a scheme: the random schemes split whole
groups (a greedy stratified group assignment, ``_folds``), and a face
always takes its image's split. A source split that puts one family on both sides is corrected
(``resolve_source_leaks``: the family joins the side holding most of it; ``source_split`` keeps the
source's word). ``leaks`` lists anything that still breaks the rule (the blocking check uses it).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pyarrow as pa

S = pa.string()
SPLITS_SCHEMA = pa.schema([("scheme", S), ("item_id", S), ("item_kind", S), ("split", S), ("sha256", S),
                           ("group_id", S), ("label", S), ("seed", pa.int64()), ("source_split", S)])
FINDINGEMO_SCHEME = "findingemo_80_20"


def _folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int,
           pinned: np.ndarray | None = None) -> np.ndarray:
    """Fold index per item: k group-disjoint folds, stratified by label (None = its own stratum).

    Greedy stratified group assignment: groups are taken largest first, groups of one size in a
    seeded random order, and each goes to the fold where it brings the per-label counts closest to
    an even k-way share (squared deviation; ties broken at random by the seed, then by the smaller
    fold). scikit-learn's StratifiedGroupKFold does the same kind of greedy placement but orders the
    groups by the spread of their label counts and only shuffles exact ties, so a near-duplicate
    family with a label mix of its own landed in the same fold for every seed; here the seed
    decides, and it also copes with labels rarer than k.

    ``pinned`` (fold per item, -1 = none): the fold an item had in the previous build's split of the
    same scheme. A group with pinned members keeps the fold most of them had (ties: the lower
    fold), whatever its labels are now; only the other groups are placed, against the counts the
    pinned ones already give each fold. So a refresh never moves a test image into training
    because new images arrived or a label changed."""
    y = np.array(["\x00none" if lab is None or (isinstance(lab, float) and np.isnan(lab)) else str(lab)
                  for lab in labels], dtype=object)
    gids, g = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    if len(gids) < k:
        raise ValueError(f"{k} folds need at least {k} near-duplicate groups, got {len(gids)}")
    _, yi = np.unique(y.astype(str), return_inverse=True)
    counts = np.zeros((len(gids), int(yi.max()) + 1 if len(yi) else 1))
    np.add.at(counts, (g, yi), 1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(gids))
    order = order[np.argsort(-counts.sum(1)[order], kind="stable")]   # largest first, random within a size
    target = counts.sum(0) / k
    fold_counts = np.zeros((k, counts.shape[1]))
    assign = np.full(len(gids), -1, dtype=np.int64)
    if pinned is not None:
        pin = np.asarray(pinned, dtype=np.int64)
        ok = (pin >= 0) & (pin < k)
        votes = np.zeros((len(gids), k), dtype=np.int64)
        np.add.at(votes, (g[ok], pin[ok]), 1)
        held = votes.sum(1) > 0
        assign[held] = votes[held].argmax(1)          # argmax: the lower fold on ties
        for gi in np.flatnonzero(held):
            fold_counts[assign[gi]] += counts[gi]
        order = order[~held[order]]
    for gi in order:
        # how much farther from an even share each fold would get with this group
        cost = ((fold_counts + counts[gi] - target) ** 2 - (fold_counts - target) ** 2).sum(1)
        best = np.flatnonzero(np.isclose(cost, cost.min()))
        if len(best) > 1:
            sizes = fold_counts[best].sum(1)
            best = best[sizes == sizes.min()]
        f = int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])
        assign[gi] = f
        fold_counts[f] += counts[gi]
    return assign[g]


def _group_of(shas: pd.Series, groups: pd.Series) -> np.ndarray:
    """The near-duplicate family of each image (its own sha256 when it has none)."""
    mapped = shas.astype(str).map(groups.astype(object) if len(groups) else {})
    return np.array([g if isinstance(g, str) else s for g, s in zip(mapped, shas.astype(str))], dtype=object)


def random_split(items: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0,
                 scheme: str = FINDINGEMO_SCHEME, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """FindingEmo §3: train / test, stratified per label, whole near-duplicate groups per side.

    ``items``: sha256, group_id, label. The test side is one of round(1 / test_fraction) stratified
    group folds (so 0.2 → 5 folds, one is test: about 20 % of the items of every label)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    k = max(2, int(round(1 / test_fraction)))
    # a previous test image stays in the test fold (0); a previous training image goes to one of the
    # training folds 1..k-1 by a hash of its id (any would do, they are merged; spreading them keeps
    # the folds even, so new images still go to test in proportion)
    pin = _pins(items, previous, scheme, seed,
                lambda split, sha: 0 if split == "test" else 1 + zlib.crc32(sha.encode()) % (k - 1) if split == "train" else -1)
    fold = _folds(items["label"].to_numpy(dtype=object), items["group_id"].astype(str).to_numpy(), k, seed, pin)
    return _rows(items, np.where(fold == 0, "test", "train"), scheme, seed)


def kfold_split(items: pd.DataFrame, k: int = 5, seed: int = 0, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Deep Affect §2.3: k-fold cross-validation folds ``fold0`` … ``fold<k-1>`` (group-disjoint,
    stratified by label where there is one)."""
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    folds = {f"fold{f}": f for f in range(k)}
    pin = _pins(items, previous, f"kfold{k}", seed, lambda split, sha: folds.get(split, -1))
    fold = _folds(items["label"].to_numpy(dtype=object), items["group_id"].astype(str).to_numpy(), k, seed, pin)
    return _rows(items, np.array([f"fold{f}" for f in fold], dtype=object), f"kfold{k}", seed)


def _pins(items: pd.DataFrame, previous: pd.DataFrame | None, scheme: str, seed: int,
          fold_of) -> np.ndarray | None:
    """The fold each item had in ``previous`` (a dataset_splits table) under the same scheme and
    seed, -1 where it had none; None without a previous table."""
    if previous is None or previous.empty:
        return None
    prev = previous[(previous["scheme"] == scheme) & (previous["item_kind"] == "image")
                    & (pd.to_numeric(previous["seed"], errors="coerce") == seed)]
    if prev.empty:
        return None
    prev = prev.drop_duplicates("sha256")
    split_of = pd.Series(prev["split"].astype(str).to_numpy(), index=prev["sha256"].astype(str).to_numpy())
    shas = items["sha256"].astype(str)
    return np.array([fold_of(split_of[h], h) if h in split_of.index else -1 for h in shas], dtype=np.int64)


def source_split(items: pd.DataFrame, scheme: str = "source") -> pd.DataFrame:
    """The source's own split column (``items.split``), as given; items without one are left out."""
    has = items["split"].notna()
    return _rows(items[has], items.loc[has, "split"].astype(str).to_numpy(), scheme, None)


def _rows(items: pd.DataFrame, split: np.ndarray, scheme: str, seed: int | None) -> pd.DataFrame:
    out = pd.DataFrame({"scheme": scheme, "item_id": items["sha256"].astype(str).to_numpy(), "item_kind": "image",
                        "split": split, "sha256": items["sha256"].astype(str).to_numpy(),
                        "group_id": items["group_id"].astype(str).to_numpy(),
                        "label": [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                                  for v in items.get("label", pd.Series([None] * len(items))).tolist()],
                        "seed": seed})
    return out


def with_faces(image_rows: pd.DataFrame, faces: pd.DataFrame) -> pd.DataFrame:
    """Add one row per face of every split image, in its image's split (faces: face_id, sha256)."""
    if image_rows.empty or faces.empty:
        return image_rows
    f = faces[["face_id", "sha256"]].astype(str).merge(image_rows, on="sha256", how="inner")
    f = f.assign(item_id=f["face_id"], item_kind="face").drop(columns=["face_id"])
    return pd.concat([image_rows, f[image_rows.columns]], ignore_index=True)


def face_rows(faces_split: pd.DataFrame, groups: pd.Series, scheme: str) -> pd.DataFrame:
    """Rows of a face-level scheme (faces_split: face_id, sha256, split, label); group of the image."""
    g = _group_of(faces_split["sha256"].astype(str), groups)
    return pd.DataFrame({"scheme": scheme, "item_id": faces_split["face_id"].astype(str).to_numpy(), "item_kind": "face",
                         "split": faces_split["split"].astype(str).to_numpy(),
                         "sha256": faces_split["sha256"].astype(str).to_numpy(), "group_id": g,
                         "label": faces_split["label"].astype(object).where(faces_split["label"].notna(), None).to_numpy(),
                         "seed": None})


def kept_from_previous(table: pd.DataFrame, previous: pd.DataFrame | None) -> dict:
    """Per random scheme: images also in the previous table, how many kept their split, how many
    are new (for the asset's report)."""
    if previous is None or previous.empty:
        return {"note": "no previous dataset_splits (first build, or training.splits.keep_previous is false)"}
    out = {}
    for scheme, cur in table[table["item_kind"] == "image"].groupby("scheme"):
        prev = previous[(previous["scheme"] == scheme) & (previous["item_kind"] == "image")]
        both = cur.merge(prev[["sha256", "split"]].drop_duplicates("sha256"), on="sha256", how="left", suffixes=("", "_prev"))
        had = both["split_prev"].notna()
        out[scheme] = {"images": int(len(both)), "in_previous": int(had.sum()),
                       "same_split": int((both.loc[had, "split"] == both.loc[had, "split_prev"]).sum()),
                       "new": int((~had).sum())}
    return out


def leaks(splits: pd.DataFrame) -> pd.DataFrame:
    """Near-duplicate families or images found in more than one split of a scheme: one row per
    (scheme, group_id) with the splits it spans and how many items (empty = no leakage)."""
    cols = ["scheme", "group_id", "splits", "n_items"]
    if splits.empty:
        return pd.DataFrame(columns=cols)
    by_group = splits.groupby(["scheme", "group_id"])["split"].agg(lambda s: sorted(set(s)))
    by_image = splits.groupby(["scheme", "sha256"])["split"].agg(lambda s: sorted(set(s)))
    bad = [(sc, g, ",".join(v), int(((splits["scheme"] == sc) & (splits["group_id"] == g)).sum()))
           for (sc, g), v in by_group.items() if len(v) > 1]
    bad += [(sc, f"image:{sh}", ",".join(v), int(((splits["scheme"] == sc) & (splits["sha256"] == sh)).sum()))
            for (sc, sh), v in by_image.items() if len(v) > 1]
    return pd.DataFrame(bad, columns=cols)


def to_table(rows: list[pd.DataFrame]) -> pd.DataFrame:
    """All schemes in one frame with SPLITS_SCHEMA's columns (sorted: deterministic files)."""
    frames = [r for r in rows if len(r)]
    if not frames:
        return pd.DataFrame({f.name: pd.Series(dtype=object) for f in SPLITS_SCHEMA})
    out = pd.concat(frames, ignore_index=True)
    for c in SPLITS_SCHEMA.names:
        if c not in out.columns:
            out[c] = None
    out = out[SPLITS_SCHEMA.names]
    out["seed"] = out["seed"].astype("Int64")
    return out.sort_values(["scheme", "item_kind", "item_id"], kind="stable").reset_index(drop=True)


# ---- all schemes of a build ----------------------------------------------------------------------

def annotated_images(merged: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """One row per acquired image annotated in a Plutchik taxonomy and kept by its annotators'
    majority (FindingEmo trains on kept images): sha256, group_id, emotion8 (NULL when the merge
    decided none), valence, arousal (merged means)."""
    cols = ["sha256", "group_id", "emotion8", "valence", "arousal"]
    need = {"sha256", "emotion8", "keep_majority"}
    if not need <= set(merged.columns):
        return pd.DataFrame(columns=cols)
    m = merged[merged["sha256"].notna() & (merged["keep_majority"] == "keep")]
    m = m[m["emotion8"].notna() | m.get("valence_mean", pd.Series(index=m.index, dtype=float)).notna()]
    m = m.sort_values([c for c in ("sha256", "taxonomy", "image_id") if c in m.columns]).drop_duplicates("sha256")
    out = pd.DataFrame({"sha256": m["sha256"].astype(str).to_numpy(),
                        "emotion8": m["emotion8"].astype(object).where(m["emotion8"].notna(), None).to_numpy(),
                        "valence": pd.to_numeric(m.get("valence_mean"), errors="coerce").to_numpy(float)
                        if "valence_mean" in m else np.nan,
                        "arousal": pd.to_numeric(m.get("arousal_mean"), errors="coerce").to_numpy(float)
                        if "arousal_mean" in m else np.nan})
    out["group_id"] = _group_of(out["sha256"], groups)
    return out[cols].reset_index(drop=True)


def _source_items(merged: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    if "split" not in merged.columns or "sha256" not in merged.columns:
        return pd.DataFrame(columns=["sha256", "group_id", "label", "split"])
    m = merged[merged["sha256"].notna() & merged["split"].notna()]
    m = m.sort_values([c for c in ("sha256", "taxonomy", "image_id") if c in m.columns]).drop_duplicates("sha256")
    label = m["emotion"] if "emotion" in m.columns else pd.Series(None, index=m.index)
    if "emotion8" in m.columns:
        label = label.where(label.notna(), m["emotion8"])
    out = pd.DataFrame({"sha256": m["sha256"].astype(str).to_numpy(), "label": label.to_numpy(dtype=object),
                        "split": m["split"].astype(str).to_numpy()})
    out["group_id"] = _group_of(out["sha256"], groups)
    return out


def resolve_source_leaks(items: pd.DataFrame) -> pd.DataFrame:
    """A near-duplicate family the source put in several splits goes whole to the split holding most
    of its members (ties: the first split name in order); ``source_split`` keeps what the source
    said. The seed datasets do not do this; without it a validation face can have its twin in train."""
    items = items.assign(source_split=items["split"])
    spans = items.groupby("group_id")["split"].nunique()
    for g in spans[spans > 1].index:
        m = items["group_id"] == g
        counts = items.loc[m, "split"].value_counts()
        best = sorted(counts[counts == counts.max()].index)[0]
        items.loc[m, "split"] = best
    return items


def build_splits(merged: pd.DataFrame, groups: pd.Series, faces: pd.DataFrame, mas: pd.DataFrame | None, *,
                 test_fraction: float = 0.2, k: int = 5, seed: int = 0,
                 previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every scheme of a build (module docstring): ``groups`` maps sha256 → near-duplicate group id;
    ``faces`` (face_id, sha256); ``mas`` (face_id, sha256, split, hard_label) or None;
    ``previous``: the last build's dataset_splits, whose random-scheme assignments are kept
    (``_folds``' ``pinned``)."""
    parts = []
    images = annotated_images(merged, groups)
    fe = images[images["emotion8"].notna()].rename(columns={"emotion8": "label"})
    if fe["group_id"].nunique() >= max(2, int(round(1 / test_fraction))):
        parts.append(with_faces(random_split(fe, test_fraction, seed, previous=previous), faces))
    va = images[images["valence"].notna() & images["arousal"].notna()].rename(columns={"emotion8": "label"})
    if va["group_id"].nunique() >= k:
        parts.append(with_faces(kfold_split(va, k, seed, previous=previous), faces))
    src = _source_items(merged, groups)
    if len(src):
        src = resolve_source_leaks(src)
        rows = source_split(src)
        rows["source_split"] = src["source_split"].to_numpy()
        parts.append(with_faces(rows, faces))
    if mas is not None and len(mas):   # faces outside train-/test-MAS are in neither split of the scheme
        mas = mas[mas["split"].notna()]
        parts.append(face_rows(mas.rename(columns={"hard_label": "label"}), groups, "affectnet_mas"))
    return to_table(parts)
