"""When a trained model is kept although its training labels changed a little.

Every model of a build is found again by its training key (task, extractor, label snapshot,
configuration, code version), so any changed label means training again. On a refresh that adds 1 %
of images and annotations, that retrains the scene backbone, changes every feature extractor's key
and retrains every baseline that reads those features: most of a full build for 1 % of the data.

A label budget relaxes only the label part of the key. A stored model with the same base key
(everything but the snapshot) is kept when

- the share of its training labels that changed is at most ``max_change``: images added, removed
  or relabelled (a changed split counts as relabelled), over the number it was trained on; and
- no image it trained on is held out now (``heldout`` = the image is in the split the model is
  evaluated on): a kept model is never scored on an image it saw. This holds for models scored on
  today's held-out images (the baselines: their evaluation split). A model whose consumers read
  which images it trained on from the labels stored beside it (the from-scratch backbones: the
  heads leave those images out of their metrics) sets ``scored_on_current_holdout=False``: the
  stratified hash cut moves an image into the holdout when its label's group grows
  (:func:`ops.training.holdout.holdout_mask` holds out the lowest ``round(fraction * n)``), and
  for such a model that alone is no reason to train again.

``max_change = 0`` keeps the strict behaviour (any change retrains). The decision and its figures
travel in the returned description (``label_budget``), so tables and the UI can say that a model is
older than the labels and by how much. The changes are measured against the labels the kept model
was trained on, so small changes add up across refreshes until the budget is spent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import pandas as pd


@dataclass(frozen=True)
class LabelBudget:
    """How far the labels may move before a model of this base key is trained again."""
    base_key: str
    labels: pd.DataFrame          # sha256, label, heldout: the labels a model would be trained on now
    max_change: float
    scored_on_current_holdout: bool = True   # False: a trained-on image now held out does not force training


@dataclass(frozen=True)
class LabelChange:
    n_trained_on: int
    added: int
    removed: int
    relabelled: int
    trained_on_now_heldout: int

    @property
    def fraction(self) -> float:
        return (self.added + self.removed + self.relabelled) / max(1, self.n_trained_on)

    def as_dict(self) -> dict:
        return {**asdict(self), "fraction": round(self.fraction, 6)}


def label_change(old: pd.DataFrame, new: pd.DataFrame) -> LabelChange:
    """Compare the labels a model was trained on (``old``) with today's (``new``); both have
    sha256, label, heldout with one row per sha256."""
    o = old.drop_duplicates("sha256").set_index("sha256")
    n = new.drop_duplicates("sha256").set_index("sha256")
    common = o.index.intersection(n.index)
    relabelled = int((o.loc[common, "label"].astype(str) != n.loc[common, "label"].astype(str)).sum())
    trained_on = o.index[~o["heldout"].astype(bool)]
    now_heldout = n.index[n["heldout"].astype(bool)]
    return LabelChange(n_trained_on=int(len(o)), added=int(len(n.index.difference(o.index))),
                       removed=int(len(o.index.difference(n.index))), relabelled=relabelled,
                       trained_on_now_heldout=int(len(trained_on.intersection(now_heldout))))


def keep_within_budget(store, task: str, budget: LabelBudget) -> dict | None:
    """The stored model to keep for ``task`` under ``budget``, with the decision in
    ``label_budget``; None when there is none or it must be trained again."""
    if budget.max_change <= 0:
        return None
    prev = store.find_base(task, budget.base_key)
    if prev is None:
        return None
    old = store.labels_of(prev)
    if old is None:
        return None
    ch = label_change(old, budget.labels)
    if ch.fraction > budget.max_change or (budget.scored_on_current_holdout and ch.trained_on_now_heldout > 0):
        return None
    return {**prev, "label_budget": {**ch.as_dict(), "max_change": budget.max_change}}


def fit_or_reuse(store, task: str, key: str, fit: Callable[[], tuple[bytes, dict]],
                 budget: LabelBudget | None = None) -> tuple[dict, bool]:
    """The stored model of ``task`` with this training key; else, under ``budget``, a stored model
    whose labels changed within it; else a newly trained one (``fit`` returns (bytes, meta)).
    Returns (its description, whether it was trained now)."""
    found = store.find(task, key)
    if found is not None:
        return found, False
    if budget is not None:
        kept = keep_within_budget(store, task, budget)
        if kept is not None:
            return kept, False
    data, meta = fit()
    extra = {"task": task, "training_key": key}
    if budget is not None:
        extra["base_key"] = budget.base_key
    return store.put(data, {**meta, **extra}, labels=budget.labels if budget is not None else None), True
