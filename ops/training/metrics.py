"""Evaluation metrics of the seed papers (numpy / scikit-learn) and the long-format metrics table.

Classification (FindingEmo §3, §A.8; AffectNet+ §4.3 Tables 8–9): accuracy, F1 (macro), weighted
F1 ("the weighted average of the F1 scores per class, weighted by the number of samples per class"),
precision/recall per class, average precision ("as computed using the scikit-learn package":
one-vs-rest AP per class from scores, macro-averaged like scikit-learn's default), and AffectNet+'s
average accuracy (Eq. 3).

AffectNet+ Eq. 3 prints CS = ½ (TP / (TP + FP) + TN / (TN + FN)), i.e. the mean of precision and
negative predictive value, while the text calls it "the average per-class accuracy" / "the average of
the true positives and true negatives" (which would be balanced accuracy, ½ (TP / (TP + FN) +
TN / (TN + FP))). The formula is the specification: ``definition="printed"`` (default);
``definition="balanced"`` gives the other reading. A multi-class model's figure (Table 8) is the mean
over classes of the one-vs-rest values. An empty denominator counts as ``zero_division`` (0).

Soft labels (AffectNet+ §4.3): W-MAE (Eq. 15, numbered 14 in the text) and W-FR.
    weights  the ground-truth soft label's elements ranked from largest to smallest get 1, 1/2, …,
             1/n (1/8 for the smallest of 8). Ties are not addressed by the paper; by default tied
             elements share the mean of the weights of the ranks they occupy (``ties="average"``:
             independent of the class order, total weight still 1 + 1/2 + … + 1/n); "ordinal"
             (ties broken by class order) and "min" (all tied get the best rank's weight) exist too.
    e_k      = (1/n) Σ_i w_k^i |SL_k^i − ŜL_k^i|, the per-image term of Eq. 15;
    W-MAE    = 100/N Σ_k e_k = 100/(N·n) Σ_k Σ_i w_k^i |SL_k^i − ŜL_k^i|  (the printed sums run from 0
             to N and to n: read as N images and n emotions);
    W-FR     = share of images whose "weighted error" e_k exceeds ε = 0.3, in % like Table 10.
The "weighted error" of W-FR is taken as W-MAE's per-image term (W-FR is "built upon W-MAE").
Caveat: with soft labels that sum to 1, e_k ≤ 2/n (0.25 for n = 8) so nothing can exceed 0.3;
AffectNet+'s soft labels (Eq. 14: means of per-class scores) do not sum to 1.

Regression (CAGE §4.3; Deep Affect §3): MSE, MAE, RMSE, CCC (Lin's, population moments).

The long table (``run_metrics`` in the design): rows (split, metric, class or None, value).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

W_FR_EPSILON = 0.3  # AffectNet+ §4.3
METRIC_COLUMNS = ("split", "metric", "class", "value")


def _labels(y_true, y_pred=None, labels=None, n: int | None = None) -> np.ndarray:
    """Class indices to report on: given, or 0..n−1, or those seen in the data (helper)."""
    if labels is not None:
        return np.asarray(list(labels))
    if n is not None:
        return np.arange(n)
    seen = np.asarray(y_true) if y_pred is None else np.concatenate([np.asarray(y_true), np.asarray(y_pred)])
    return np.unique(seen)


# ---- classification (FindingEmo §3; AffectNet+ §4.3) -------------------------------------------

def accuracy(y_true, y_pred) -> float:
    """Accuracy (FindingEmo Table 6; AffectNet+ Table 8 Acc): share of exact predictions."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def f1(y_true, y_pred, labels=None, average: str | None = "macro"):
    """F1 (FindingEmo Table 6 "F1": macro over classes; AffectNet+ Table 9 per class with average=None)."""
    labs = _labels(y_true, y_pred, labels)
    out = f1_score(y_true, y_pred, labels=labs, average=average, zero_division=0)
    return np.asarray(out, dtype=float) if average is None else float(out)


def weighted_f1(y_true, y_pred, labels=None) -> float:
    """FindingEmo §3 W.F1: per-class F1 averaged with weights = samples per class (scikit-learn)."""
    return f1(y_true, y_pred, labels=labels, average="weighted")


def precision_recall(y_true, y_pred, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision and recall (AffectNet+ §4.3 Table 9)."""
    labs = _labels(y_true, y_pred, labels)
    p = precision_score(y_true, y_pred, labels=labs, average=None, zero_division=0)
    r = recall_score(y_true, y_pred, labels=labs, average=None, zero_division=0)
    return np.asarray(p, dtype=float), np.asarray(r, dtype=float)


def average_precision(y_true, scores, labels=None, average: str | None = "macro"):
    """FindingEmo §3 AP with scikit-learn: one-vs-rest AP of each class from its score column.

    ``scores`` (N, C), column c belonging to ``labels[c]`` (default 0..C−1). ``average``: "macro"
    (scikit-learn's default), "weighted" (by support), "micro", or None (per-class array). A class with
    no positive sample has no AP: NaN per class, left out of the macro/weighted means.
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2:
        raise ValueError("scores must be (n_samples, n_classes)")
    labs = _labels(y, labels=labels, n=s.shape[1])
    onehot = (y[:, None] == labs[None, :]).astype(int)
    if average == "micro":
        return float(average_precision_score(onehot, s, average="micro"))
    per = np.array([average_precision_score(onehot[:, c], s[:, c]) if onehot[:, c].any() else np.nan
                    for c in range(len(labs))], dtype=float)
    if average is None:
        return per
    ok = ~np.isnan(per)
    if not ok.any():
        return float("nan")
    if average == "macro":
        return float(per[ok].mean())
    if average == "weighted":
        sup = onehot.sum(axis=0)[ok]
        return float(np.sum(per[ok] * sup) / sup.sum())
    raise ValueError(f"unknown average {average!r}")


def _confusion_ovr(y_true, y_pred, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-vs-rest TP, FP, TN, FN per class (AffectNet+ Eq. 3 counts)."""
    y, p = np.asarray(y_true)[:, None], np.asarray(y_pred)[:, None]
    pos, hit = y == labels[None, :], p == labels[None, :]
    tp = np.sum(pos & hit, axis=0)
    fp = np.sum(~pos & hit, axis=0)
    tn = np.sum(~pos & ~hit, axis=0)
    fn = np.sum(pos & ~hit, axis=0)
    return tp, fp, tn, fn


def _ratio(a, b, zero_division: float) -> np.ndarray:
    """a / b with ``zero_division`` where b = 0 (helper for AffectNet+ Eq. 3)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.where(b > 0, a / np.where(b > 0, b, 1.0), zero_division)


def average_accuracy(y_true, y_pred, labels=None, per_class: bool = False,
                     definition: str = "printed", zero_division: float = 0.0):
    """AffectNet+ Eq. 3 (reported as Acc-bar, §4): ½ (TP/(TP+FP) + TN/(TN+FN)) one-vs-rest per class.

    The overall value is the mean over classes. ``definition="balanced"``: ½ (TP/(TP+FN) +
    TN/(TN+FP)), the text's "average per-class accuracy" reading (see the module docstring).
    """
    labs = _labels(y_true, y_pred, labels)
    tp, fp, tn, fn = _confusion_ovr(y_true, y_pred, labs)
    if definition == "printed":
        cs = 0.5 * (_ratio(tp, tp + fp, zero_division) + _ratio(tn, tn + fn, zero_division))
    elif definition == "balanced":
        cs = 0.5 * (_ratio(tp, tp + fn, zero_division) + _ratio(tn, tn + fp, zero_division))
    else:
        raise ValueError(f"definition must be 'printed' or 'balanced', got {definition!r}")
    return cs if per_class else float(cs.mean())


# ---- soft labels (AffectNet+ §4.3, Eq. 15) -----------------------------------------------------

def rank_weights(soft_true, ties: str = "average") -> np.ndarray:
    """AffectNet+ §4.3: weight 1/r for the element of rank r (largest = 1) of each ground-truth row."""
    x = np.atleast_2d(np.asarray(soft_true, dtype=float))
    n = x.shape[1]
    if ties == "ordinal":
        order = np.argsort(-x, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, n + 1)[None, :].repeat(len(x), 0), axis=1)
        return 1.0 / ranks
    lo = rankdata(-x, method="min", axis=1).astype(int)
    if ties == "min":
        return 1.0 / lo
    if ties != "average":
        raise ValueError(f"ties must be 'average', 'ordinal' or 'min', got {ties!r}")
    hi = rankdata(-x, method="max", axis=1).astype(int)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])  # H_0..H_n
    return (harmonic[hi] - harmonic[lo - 1]) / (hi - lo + 1)


def weighted_errors(soft_true, soft_pred, ties: str = "average") -> np.ndarray:
    """AffectNet+ Eq. 15 per image: e_k = (1/n) Σ_i w_k^i |SL_k^i − ŜL_k^i| (a fraction, no ×100)."""
    t = np.atleast_2d(np.asarray(soft_true, dtype=float))
    p = np.atleast_2d(np.asarray(soft_pred, dtype=float))
    if t.shape != p.shape:
        raise ValueError(f"soft labels differ in shape: {t.shape} vs {p.shape}")
    return np.mean(rank_weights(t, ties) * np.abs(t - p), axis=1)


def w_mae(soft_true, soft_pred, ties: str = "average", percent: bool = True) -> float:
    """AffectNet+ §4.3 Eq. 15: W-MAE = 100/(N·n) Σ_k Σ_i w_k^i |SL_k^i − ŜL_k^i| (in %)."""
    e = weighted_errors(soft_true, soft_pred, ties)
    return float(e.mean() * (100.0 if percent else 1.0)) if e.size else float("nan")


def w_fr(soft_true, soft_pred, eps: float = W_FR_EPSILON, ties: str = "average", percent: bool = True) -> float:
    """AffectNet+ §4.3 W-FR: share of predictions whose weighted error e_k exceeds ε = 0.3 (in %)."""
    e = weighted_errors(soft_true, soft_pred, ties)
    return float(np.mean(e > eps) * (100.0 if percent else 1.0)) if e.size else float("nan")


# ---- regression (CAGE §4.3; Deep Affect §3) ----------------------------------------------------

def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Float arrays of equal shape (helper)."""
    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if t.shape != p.shape:
        raise ValueError(f"shapes differ: {t.shape} vs {p.shape}")
    return t, p


def mse(y_true, y_pred, axis=None):
    """Mean squared error (Deep Affect §3 tables; CAGE §4.3); ``axis=0`` gives one value per column."""
    t, p = _pair(y_true, y_pred)
    return np.mean((t - p) ** 2, axis=axis)


def mae(y_true, y_pred, axis=None):
    """Mean absolute error (CAGE §4.3)."""
    t, p = _pair(y_true, y_pred)
    return np.mean(np.abs(t - p), axis=axis)


def rmse(y_true, y_pred, axis=None):
    """Root mean squared error (CAGE §4.3, Table 7)."""
    return np.sqrt(mse(y_true, y_pred, axis=axis))


def ccc(y_true, y_pred, axis: int = 0):
    """Lin's concordance correlation coefficient (CAGE §4.1 L_CCC, §4.3): per column for 2-D input.

    CCC = 2 cov / (var_t + var_p + (mean_t − mean_p)²), population moments; NaN when undefined
    (both series the same constant).
    """
    t, p = _pair(y_true, y_pred)
    mt, mp = t.mean(axis=axis), p.mean(axis=axis)
    vt, vp = t.var(axis=axis), p.var(axis=axis)
    cov = np.mean((t - np.expand_dims(mt, axis)) * (p - np.expand_dims(mp, axis)), axis=axis)
    den = vt + vp + (mt - mp) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, 2.0 * cov / np.where(den > 0, den, 1.0), np.nan)
    return float(out) if np.ndim(out) == 0 else out


# ---- long-format metrics table (design: run_metrics) -------------------------------------------

Row = tuple[str, str, "str | None", float]


def _names(labs: np.ndarray, class_names: Sequence[str] | None) -> list[str]:
    """Class names for the table's class column (helper)."""
    if class_names is None:
        return [str(x) for x in labs]
    return [str(class_names[int(x)]) for x in labs]


def classification_rows(split: str, y_true, y_pred, scores=None, n_classes: int | None = None,
                        class_names: Sequence[str] | None = None, per_class: bool = True) -> list[Row]:
    """FindingEmo §3 / §A.8 and AffectNet+ §4.3 classification metrics as long rows.

    Overall: accuracy, f1 (macro), weighted_f1, average_accuracy (AffectNet+ Eq. 3) and, with
    ``scores``, average_precision. Per class: precision, recall, f1, average_accuracy and AP.
    Classes are 0..n−1 (``n_classes`` or the score columns), named by ``class_names``.
    """
    n = n_classes if n_classes is not None else (np.shape(scores)[1] if scores is not None else
                                                 (len(class_names) if class_names is not None else None))
    labs = _labels(y_true, y_pred, n=n)
    rows: list[Row] = [
        (split, "accuracy", None, accuracy(y_true, y_pred)),
        (split, "f1", None, f1(y_true, y_pred, labs)),
        (split, "weighted_f1", None, weighted_f1(y_true, y_pred, labs)),
        (split, "average_accuracy", None, average_accuracy(y_true, y_pred, labs)),
    ]
    if scores is not None:
        rows.append((split, "average_precision", None, average_precision(y_true, scores, labs)))
    if per_class:
        names = _names(labs, class_names)
        prec, rec = precision_recall(y_true, y_pred, labs)
        per = {"precision": prec, "recall": rec, "f1": f1(y_true, y_pred, labs, average=None),
               "average_accuracy": average_accuracy(y_true, y_pred, labs, per_class=True)}
        if scores is not None:
            per["average_precision"] = average_precision(y_true, scores, labs, average=None)
        for metric, values in per.items():
            rows += [(split, metric, name, float(v)) for name, v in zip(names, values)]
    return rows


def regression_rows(split: str, y_true, y_pred, names: Sequence[str] = ("valence", "arousal")) -> list[Row]:
    """CAGE §4.3 / Deep Affect §3 regression metrics: per dimension (class = its name) and overall.

    Overall (class None): MSE/MAE/RMSE over all values, CCC as the mean of the per-dimension CCCs.
    """
    t, p = _pair(y_true, y_pred)
    t2, p2 = t.reshape(len(t), -1), p.reshape(len(p), -1)
    dims = list(names)[: t2.shape[1]] if t2.shape[1] > 1 else [None]
    rows: list[Row] = []
    per = {"mse": mse(t2, p2, axis=0), "mae": mae(t2, p2, axis=0), "rmse": rmse(t2, p2, axis=0),
           "ccc": np.atleast_1d(ccc(t2, p2, axis=0))}
    if t2.shape[1] > 1:
        for metric, values in per.items():
            rows += [(split, metric, d, float(v)) for d, v in zip(dims, values)]
    rows += [(split, "mse", None, float(mse(t2, p2))), (split, "mae", None, float(mae(t2, p2))),
             (split, "rmse", None, float(rmse(t2, p2))), (split, "ccc", None, float(np.nanmean(per["ccc"])))]
    return rows


def soft_label_rows(split: str, soft_true, soft_pred, groups=None, group_names: Sequence[str] | None = None,
                    eps: float = W_FR_EPSILON, ties: str = "average") -> list[Row]:
    """AffectNet+ §4.3 Tables 10–11: W-MAE and W-FR (in %) overall and per group (e.g. hard label)."""
    t = np.atleast_2d(np.asarray(soft_true, dtype=float))
    p = np.atleast_2d(np.asarray(soft_pred, dtype=float))
    rows: list[Row] = [(split, "w_mae", None, w_mae(t, p, ties)), (split, "w_fr", None, w_fr(t, p, eps, ties))]
    if groups is not None:
        g = np.asarray(groups)
        for value in pd.unique(g):
            m = g == value
            name = str(group_names[int(value)]) if group_names is not None else str(value)
            rows += [(split, "w_mae", name, w_mae(t[m], p[m], ties)), (split, "w_fr", name, w_fr(t[m], p[m], eps, ties))]
    return rows


def metrics_table(rows: Iterable[Row]) -> pd.DataFrame:
    """The long metrics table (design: ``run_metrics`` columns split, metric, class, value)."""
    df = pd.DataFrame(list(rows), columns=list(METRIC_COLUMNS))
    df["class"] = df["class"].astype(object).where(df["class"].notna(), None)
    df["value"] = df["value"].astype(float)
    return df


__all__ = [
    "METRIC_COLUMNS", "W_FR_EPSILON", "accuracy", "average_accuracy", "average_precision", "ccc",
    "classification_rows", "f1", "mae", "metrics_table", "mse", "precision_recall", "rank_weights",
    "regression_rows", "rmse", "soft_label_rows", "w_fr", "w_mae", "weighted_errors", "weighted_f1",
]
