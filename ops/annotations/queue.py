"""The next batch of images to annotate (FindingEmo §2.3.2 third iteration, §2.3.3 overlap).

Serving is simulated request by request, as FindingEmo's server did:

- with probability ``p_r`` a request gets an overlap image (§2.3.3): first the fixed overlap ("gold")
  images in their fixed order (skipping those ``annotator_id`` already annotated), then already
  annotated images with fewer than ``target_overlap`` (5) annotations, the most annotated first so
  that overlap images reach 5 annotations instead of many stopping at 2 (ties drawn at random);
- otherwise a new image (§2.3.2): only images with keep probability >= ``keep_threshold`` (0.75)
  when keep predictions exist; an Emo8 label is drawn with odds inversely proportional to the number
  of (kept) images the model tagged with it, then an unannotated image with that predicted label is
  drawn uniformly. Without label predictions, or when the drawn labels are used up, the image is
  drawn uniformly from the eligible ones, and the ``reason`` column says so.

Deterministic for a seed: candidates are sorted by image id before any draw.

Output (one row per served request, at most ``k``; fewer when the pool runs dry)::

    position, image_id, kind ('gold' | 'overlap' | 'new'),
    selection ('gold' | 'overlap' | 'balanced' | 'uniform'), drawn_label, label_probability,
    predicted_label, keep_prob, n_annotations (before this batch), predictions_available,
    reason, seed
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ops.annotations.taxonomy import EMO8


class _Bag:
    """A set with O(1) uniform random draw and O(1) removal; deterministic for a given rng."""

    def __init__(self, items: Iterable[str] = ()):
        """Candidate pool for the draws of FindingEmo §2.3.2 / §2.3.3."""
        self.items: list[str] = []
        self.pos: dict[str, int] = {}
        for x in items:
            self.add(x)

    def __len__(self) -> int:
        """Number of candidates left."""
        return len(self.items)

    def add(self, item: str) -> None:
        """Add a candidate."""
        if item not in self.pos:
            self.pos[item] = len(self.items)
            self.items.append(item)

    def discard(self, item: str) -> None:
        """Remove a served candidate (each image is served once per batch)."""
        i = self.pos.pop(item, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last] = i

    def take(self, rng: np.random.Generator) -> str:
        """Uniform draw of one candidate (FindingEmo §2.3.2: "one that had not previously been annotated")."""
        item = self.items[int(rng.integers(len(self.items)))]
        self.discard(item)
        return item


def select_next_batch(
    images: pd.DataFrame | Iterable[str],
    annotations: pd.DataFrame | None,
    predictions: pd.DataFrame | None = None,
    *,
    k: int = 50,
    p_r: float = 0.1,
    gold_ids: Sequence[str] = (),
    seed: int = 0,
    keep_threshold: float = 0.75,
    target_overlap: int = 5,
    annotator_id: str | None = None,
    keep_column: str = "keep_prob",
    label_column: str = "emotion8",
) -> pd.DataFrame:
    """Select the next ``k`` images to annotate (FindingEmo §2.3.2, §2.3.3); see the module docstring.

    ``images``: the candidate pool (a frame with ``image_id`` or ids). ``annotations``: existing
    annotations (image_id, annotator_id), may be None. ``predictions``: image_id plus optionally
    ``keep_column`` (keep probability of the keep/reject CNN) and ``label_column`` (predicted Emo8
    leaf). ``annotator_id``: serve for this annotator (skips images they already annotated).
    """
    if not 0 <= p_r <= 1:
        raise ValueError("p_r must be in [0, 1]")
    if k < 0:
        raise ValueError("k must be >= 0")
    rng = np.random.default_rng(seed)
    ids = images["image_id"] if isinstance(images, pd.DataFrame) else pd.Series(list(images))
    pool = sorted(set(ids.astype(str).tolist()))
    gold = [str(g) for g in gold_ids]
    gold_set = set(gold)

    if annotations is not None and len(annotations):
        ann = annotations[["image_id", "annotator_id"]].astype(str)
        n_ann = ann.groupby("image_id")["annotator_id"].nunique()
        mine = set(ann.loc[ann["annotator_id"] == str(annotator_id), "image_id"]) if annotator_id is not None else set()
    else:
        n_ann = pd.Series(dtype="int64")
        mine = set()
    n_ann_d = {str(i): int(n) for i, n in n_ann.items()}
    annotated = set(n_ann_d)

    keep_prob: dict[str, float] = {}
    pred_label: dict[str, str] = {}
    has_keep = has_label = False
    if predictions is not None and len(predictions):
        p = predictions.assign(image_id=predictions["image_id"].astype(str)).drop_duplicates("image_id", keep="last")
        if keep_column in p.columns and p[keep_column].notna().any():
            has_keep = True
            kp = p[p[keep_column].notna()]
            keep_prob = dict(zip(kp["image_id"].tolist(), kp[keep_column].astype("float64").tolist()))
        if label_column in p.columns and p[label_column].notna().any():
            has_label = True
            lp = p[p[label_column].notna()]
            canon = {}
            for v in pd.unique(lp[label_column]):
                canon[v] = EMO8.normalize(v)
                if canon[v] is None:
                    raise ValueError(f"predicted label {v!r} is not an Emo8 leaf")
            pred_label = dict(zip(lp["image_id"].tolist(), lp[label_column].map(canon).tolist()))
    pool_set = set(pool)

    def kept(i: str) -> bool:
        """FindingEmo §2.3.2: only images with keep probability >= 0.75 when keep predictions exist."""
        return (not has_keep) or keep_prob.get(i, -1.0) >= keep_threshold

    # §2.3.2: odds inversely proportional to the number of (kept) images tagged with each label
    label_counts: dict[str, int] = {}
    for i in pool:
        if i in pred_label and kept(i):
            label_counts[pred_label[i]] = label_counts.get(pred_label[i], 0) + 1
    new_ids = [i for i in pool if i not in annotated and i not in gold_set and kept(i)]
    by_label = {lab: _Bag() for lab in EMO8.labels}
    for i in new_ids:
        lab = pred_label.get(i)
        if lab is not None:
            by_label[lab].add(i)
    uniform_bag = _Bag(new_ids)
    gold_queue = [g for g in gold if g not in mine]
    overlap_ids = [i for i in pool if i in annotated and i not in gold_set and i not in mine
                   and n_ann_d[i] < target_overlap]
    overlap_by_n: dict[int, _Bag] = {}
    for i in overlap_ids:
        overlap_by_n.setdefault(n_ann_d[i], _Bag()).add(i)

    no_pred_reason = ("no predictions: keep filter not applied, uniform selection" if predictions is None or not (has_keep or has_label)
                      else "no Emo8 label predictions: uniform selection" if not has_label else None)
    rows = []
    chosen: set[str] = set()

    for pos in range(k):
        kind = selection = drawn = None
        prob = np.nan
        reason = ""
        image = None
        if rng.random() < p_r:
            while gold_queue and image is None:
                g = gold_queue.pop(0)
                if g in chosen:
                    continue
                image, kind, selection = g, "gold", "gold"
                reason = f"overlap request (p_R={p_r:g}): fixed overlap image {gold.index(g) + 1} of {len(gold)}"
            if image is None:
                ns = sorted((n for n, b in overlap_by_n.items() if len(b)), reverse=True)
                if ns:
                    image = overlap_by_n[ns[0]].take(rng)
                    kind, selection = "overlap", "overlap"
                    reason = (f"overlap request (p_R={p_r:g}): already annotated {ns[0]}x, fewest-missing first "
                              f"towards {target_overlap} annotations")
                else:
                    reason = "overlap request but no overlap image left; "
        if image is None:
            avail = [lab for lab in EMO8.labels if label_counts.get(lab) and len(by_label[lab])]
            if has_label and avail:
                w = np.array([1.0 / label_counts[lab] for lab in avail])
                w = w / w.sum()
                j = int(rng.choice(len(avail), p=w))
                drawn, prob = avail[j], float(w[j])
                image = by_label[drawn].take(rng)
                kind, selection = "new", "balanced"
                reason += (f"Emo8 label {drawn} drawn with probability {prob:.3f} (odds 1/{label_counts[drawn]} "
                           f"predicted images)" + (f"; keep probability >= {keep_threshold:g}" if has_keep else ""))
            elif len(uniform_bag):
                image = uniform_bag.take(rng)
                kind, selection = "new", "uniform"
                reason += no_pred_reason or "no unannotated image left with a predicted label: uniform selection"
                if has_keep:
                    reason += f" among images with keep probability >= {keep_threshold:g}"
            else:
                break  # nothing left to serve
        chosen.add(image)
        uniform_bag.discard(image)
        for bag in by_label.values():
            bag.discard(image)
        for bag in overlap_by_n.values():
            bag.discard(image)
        rows.append({
            "position": pos, "image_id": image, "kind": kind, "selection": selection,
            "drawn_label": drawn, "label_probability": prob, "predicted_label": pred_label.get(image),
            "keep_prob": keep_prob.get(image, np.nan), "n_annotations": n_ann_d.get(image, 0),
            "predictions_available": bool(has_label), "reason": reason, "seed": seed,
        })
    cols = ["position", "image_id", "kind", "selection", "drawn_label", "label_probability", "predicted_label",
            "keep_prob", "n_annotations", "predictions_available", "reason", "seed"]
    out = pd.DataFrame(rows, columns=cols)
    out = out.astype({"position": "int64", "n_annotations": "int64", "seed": "int64",
                      "label_probability": "float64", "keep_prob": "float64", "predictions_available": bool})
    missing_gold = [g for g in gold if g not in pool_set]
    out.attrs["gold_not_in_pool"] = missing_gold
    return out


def queue_pool(unique: pd.DataFrame | None, annotations: pd.DataFrame,
               url_list_items: Iterable[str] | None = None) -> list[str]:
    """The images that can be served: acquired images (known by their URL-list item id when they
    have one, as FindingEmo paths; else by SHA-256), or the URL list's items before anything was
    acquired, plus every annotated image; sorted (draws are deterministic per seed)."""
    if unique is not None:
        pool = [i if isinstance(i, str) and i else s for i, s in zip(unique["item_id"], unique["sha256"])]
    else:
        pool = list(url_list_items) if url_list_items is not None else []
    return sorted(set(pool) | set(annotations["image_id"].astype(str)))


def queue_predictions(unique: pd.DataFrame | None, keep: pd.DataFrame | None,
                      emo8: pd.DataFrame | None) -> pd.DataFrame | None:
    """Keep probabilities (``keep_predictions``: sha256, p_keep) and predicted Emo8 leaves
    (``emo8_predictions``: sha256, emotion8) keyed by the queue's image ids; None when neither
    model has predicted yet (the queue then serves uniformly and says so)."""
    keep = None if keep is None or keep.empty else keep
    emo8 = None if emo8 is None or emo8.empty else emo8
    if keep is None and emo8 is None:
        return None
    by_sha = pd.DataFrame({"sha256": pd.Series(dtype="string")})
    if keep is not None:
        by_sha = by_sha.merge(keep[["sha256", "p_keep"]].rename(columns={"p_keep": "keep_prob"}), on="sha256", how="outer")
    if emo8 is not None:
        by_sha = by_sha.merge(emo8[["sha256", "emotion8"]], on="sha256", how="outer")
    ids = {}
    if unique is not None:
        ids = {s: (i if isinstance(i, str) and i else s) for i, s in zip(unique["item_id"], unique["sha256"])}
    by_sha["image_id"] = by_sha["sha256"].map(lambda s: ids.get(s, s))
    return by_sha.drop(columns=["sha256"])


def to_csv_bytes(batch: pd.DataFrame) -> bytes:
    """The queue as CSV for annotation tools, text escaped against formula injection."""
    from warehouse.exports import frame_to_csv_bytes

    return frame_to_csv_bytes(batch)
