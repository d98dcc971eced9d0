"""The seed papers' baselines as runs on cached features (no Dagster, no files): one function per
run kind, each returning a :class:`RunOutput` (its metrics in long form, its learning curve, the
model's bytes and its test predictions).

    findingemo_run   FindingEmo §3 / §A.7: a new output layer (linear) on a frozen backbone's
                     features for Emo8, Arousal3 or Valence3; CrossEntropy or UnbalancedCrossEntropy
                     (Eq. 1, weights Eq. 3–4); Adam with default parameters from lr_0 with Eq. 2;
                     early stopping on the test set as the paper does ("the epoch with the best loss
                     or the best W.F1 score on the test set lies 6 epochs behind", max 250, the
                     corresponding best model put forward). Metrics: accuracy, F1, W.F1, AP (§3).
    hard_fer_run     AffectNet+ §4.3 Hard-FER: 8-way classifier on face features, trained on the
                     training split with a weighted loss (Eq. 3 class weights: the paper's "weighted
                     loss" against imbalance), scored on the validation split per subset (All, Easy,
                     Challenging, Difficult): accuracy, average accuracy (Eq. 3), per-class
                     precision / recall / F1 (Tables 8–9) and the confusion matrix (Fig. 5).
    soft_fer_run     AffectNet+ §4.3 Soft-FER: regression of the 8-value soft label (sigmoid outputs,
                     MSE), W-MAE (Eq. 15) and W-FR (ε = 0.3) per subset and per emotion (Tables 10–11).
    deep_affect_run  Deep Affect §2.2–2.4: concatenated feature groups into the 3000-1000-500 DFFN
                     (dropout 0.5), MSE, SGD momentum 0.9 from 4e-4 with the plateau schedule, batch
                     25, shared or split architecture; valence / arousal on 1–9 (§2.1); MSE per fold.
    cage_run         CAGE §4.1–4.3: joint expression + valence/arousal head, L = weighted CE + α·MSE
                     (α = 5), or the V/A-only model L = L_CCC + β·MSE (β = 3); precision, recall, F1,
                     MSE, MAE, RMSE, CCC.

AffectNet+, Deep Affect and CAGE do not say on which data they stop training; here the stopping
rule watches a stratified 10 % of the training side (``monitor_fraction``), never the split that is
reported. FindingEmo states that it watches the test set, and ``findingemo_run`` does so by default
(``monitor="test"``; ``monitor="holdout"`` gives the cleaner protocol).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from models.heads import LinearHead
from models.losses import (
    CageCombinedLoss, CageValenceArousalLoss, UnbalancedCrossEntropyLoss, WeightedCrossEntropyLoss,
    class_weights, inverse_frequency_weights, misclassification_weights,
)
from models.regressors import CageHead, DeepAffectRegressor
from ops.training import metrics as M
from ops.training.loop import FindingEmoStop, PlateauStop, fit, standardize, tensor, zscore
from ops.training.schedules import DEEP_AFFECT_BATCH_SIZE, DEEP_AFFECT_LR0, DEEP_AFFECT_MOMENTUM
from ops.training.tasks import ClassificationTask

SUBSETS = ("All", "Easy", "Challenging", "Difficult")   # AffectNet+ §3.5.1 / Tables 8–11
LOSSES = ("ce", "uce")                                  # FindingEmo §3
METRIC_COLUMNS = ["split", "subset", "metric", "class", "value"]


@dataclass
class RunOutput:
    metrics: pd.DataFrame            # METRIC_COLUMNS
    curve: pd.DataFrame              # epoch, lr, train_loss, evaluation metrics
    model_bytes: bytes
    best_epoch: int
    epochs: int
    stop_reason: str
    seconds: float
    n_train: int
    n_eval: int
    details: dict = field(default_factory=dict)


def _metric_frame(rows: Sequence[tuple], subset: str | None = None) -> pd.DataFrame:
    df = M.metrics_table(rows)
    df.insert(1, "subset", subset)
    return df[METRIC_COLUMNS]


def _save(model: nn.Module, **extra) -> bytes:
    buf = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), **extra}, buf)
    return buf.getvalue()


def load(data: bytes) -> dict:
    """The dictionary a run saved (state_dict, config, standardisation, classes…)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def monitor_mask(y: np.ndarray | None, n: int, fraction: float, seed: int) -> np.ndarray:
    """A stratified ``fraction`` of the training side (True) on which stopping rules watch."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=bool)
    if fraction <= 0 or n < 10:
        return out
    strata = np.zeros(n, dtype=np.int64) if y is None else np.asarray(y)
    for c in np.unique(strata):
        idx = np.flatnonzero(strata == c)
        k = int(round(len(idx) * fraction))
        if k and len(idx) > k:
            out[rng.choice(idx, size=k, replace=False)] = True
    return out


def _sides(X: np.ndarray, is_eval: np.ndarray, strata: np.ndarray | None, fraction: float, seed: int):
    """(train rows, watched rows, z-scored features, mean, std): the training side minus a stratified
    ``fraction`` that the stopping rule watches; features standardised on the train rows only."""
    side = np.flatnonzero(~np.asarray(is_eval, bool))
    watch_in = monitor_mask(None if strata is None else strata[side], len(side), fraction, seed)
    tr, watch = side[~watch_in], side[watch_in]
    mu, sd = standardize(X[tr])
    return tr, watch, zscore(X, mu, sd), mu, sd


# ---- FindingEmo §3 ------------------------------------------------------------------------------

def findingemo_run(X: np.ndarray, y: np.ndarray, is_test: np.ndarray, task: ClassificationTask, loss: str,
                   lr: float, seed: int, *, max_epochs: int = 250, patience: int = 6, batch_size: int = 64,
                   monitor: str = "test", monitor_fraction: float = 0.1, penalty: str = "log",
                   device: str = "cpu") -> RunOutput:
    """FindingEmo §3: one run (task, loss, lr_0, seed) of a linear output layer on features ``X``.

    y: class indices of ``task``; is_test: the test side of the 80/20 split. Raises ValueError when a
    class has no training sample (Eq. 3 has no finite weight for it)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")
    is_test = np.asarray(is_test, bool)
    train = ~is_test
    if monitor == "holdout":
        watch = np.zeros(len(y), bool)
        watch[np.flatnonzero(train)[monitor_mask(y[train], int(train.sum()), monitor_fraction, seed)]] = True
        train &= ~watch
    elif monitor == "test":
        watch = is_test
    else:
        raise ValueError(f"monitor must be 'test' or 'holdout', not {monitor!r}")
    counts = task.class_counts(y[train])
    absent = [task.classes[i] for i in np.flatnonzero(counts == 0)]
    if (counts > 0).sum() < 2:
        raise ValueError(f"{task.name}: training samples of fewer than 2 classes (none of {absent})")
    mu, sd = standardize(X[train])
    Z = zscore(X, mu, sd)
    torch.manual_seed(seed)
    head = LinearHead(X.shape[1], task.n_classes).to(device)
    crit = (nn.CrossEntropyLoss() if loss == "ce"
            else UnbalancedCrossEntropyLoss(*uce_weights(counts, task.distances()), penalty=penalty)).to(device)
    Xtr, ytr = tensor(Z[train], device=device), tensor(y[train], torch.long, device)
    Xw, yw = tensor(Z[watch], device=device), tensor(y[watch], torch.long, device)

    def evaluate(m):
        logits = m(Xw)
        pred = logits.argmax(1).cpu().numpy()
        return {"loss": float(crit(logits, yw)), "wf1": M.weighted_f1(y[watch], pred, np.arange(task.n_classes)),
                "accuracy": M.accuracy(y[watch], pred)}

    opt = torch.optim.Adam(head.parameters(), lr=lr)   # FindingEmo §3: Adam, PyTorch defaults
    res = fit(head, (Xtr, ytr), lambda m, b: crit(m(b[0]), b[1]), evaluate,
              FindingEmoStop(lr, patience=patience, max_epochs=max_epochs), optimizer=opt,
              batch_size=batch_size, seed=seed, max_epochs=max_epochs)
    with torch.no_grad():
        scores = F.softmax(res.model(tensor(Z[is_test], device=device)), 1).cpu().numpy()
    pred = scores.argmax(1)
    rows = M.classification_rows("test", y[is_test], pred, scores, n_classes=task.n_classes,
                                 class_names=task.classes)
    data = _save(res.model, config=head.config, mean=mu, std=sd, classes=list(task.classes), task=task.name)
    return RunOutput(_metric_frame(rows), res.curve, data, res.best_epoch, res.epochs, res.stop_reason,
                     res.seconds, int(train.sum()), int(is_test.sum()),
                     {"monitor": monitor, "class_counts": counts.tolist(), "penalty": penalty,
                      "classes_without_training_samples": absent})


def uce_weights(counts: np.ndarray, distances: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """FindingEmo §A.7 Eq. 3–4 weights from training counts. Eq. 3, w_i = N / (N_c · N_i), has no
    value for a class without training samples (N_i = 0; on a small dataset a rare Arousal3 class can
    fall entirely on the test side). Such a class is never a target, so its own weight w_i is never
    used; in Eq. 4's denominator (1 + w_j) we take w_j = 0 for it, so that predicting it wrongly is
    penalised by the full distance d_ij · w_i. N_c is the task's number of classes."""
    n = np.asarray(counts, dtype=np.float64)
    w = np.where(n > 0, n.sum() / (len(n) * np.maximum(n, 1)), 0.0)
    w_t = torch.as_tensor(w, dtype=torch.float32)
    return w_t, misclassification_weights(w_t, distances)


# ---- AffectNet+ §4.3 ----------------------------------------------------------------------------

def _subset_masks(difficulty: np.ndarray) -> dict[str, np.ndarray]:
    d = np.asarray(difficulty, dtype=object)
    return {"All": np.ones(len(d), bool), **{s: d == s for s in SUBSETS[1:]}}


def _adam_run(model, train_tensors, loss_of, evaluate, lr, seed, max_epochs, patience, batch_size, monitors):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return fit(model, train_tensors, loss_of, evaluate, FindingEmoStop(lr, patience, max_epochs, monitors),
               optimizer=opt, batch_size=batch_size, seed=seed, max_epochs=max_epochs)


def hard_fer_run(X: np.ndarray, y: np.ndarray, is_eval: np.ndarray, difficulty: np.ndarray,
                 classes: Sequence[str], lr: float, seed: int, *, max_epochs: int = 250, patience: int = 6,
                 batch_size: int = 64, monitor_fraction: float = 0.1, device: str = "cpu") -> RunOutput:
    """AffectNet+ §4.3 Hard-FER on features: train on ``~is_eval``, report on ``is_eval`` per subset."""
    n_c = len(classes)
    is_eval = np.asarray(is_eval, bool)
    tr, watch, Z, mu, sd = _sides(X, is_eval, y, monitor_fraction, seed)
    counts = np.bincount(y[tr], minlength=n_c)
    if (counts == 0).any():
        raise ValueError(f"hard_fer: no training face of {[classes[i] for i in np.flatnonzero(counts == 0)]}")
    torch.manual_seed(seed)
    head = LinearHead(X.shape[1], n_c).to(device)
    crit = WeightedCrossEntropyLoss(class_weights(counts)).to(device)
    Xw, yw = tensor(Z[watch], device=device), tensor(y[watch], torch.long, device)

    def evaluate(m):
        logits = m(Xw)
        return {"loss": float(crit(logits, yw)),
                "wf1": M.weighted_f1(y[watch], logits.argmax(1).cpu().numpy(), np.arange(n_c))}

    res = _adam_run(head, (tensor(Z[tr], device=device), tensor(y[tr], torch.long, device)),
                    lambda m, b: crit(m(b[0]), b[1]), evaluate, lr, seed, max_epochs, patience, batch_size,
                    {"loss": "min", "wf1": "max"})
    ev = np.flatnonzero(is_eval)
    with torch.no_grad():
        scores = F.softmax(res.model(tensor(Z[ev], device=device)), 1).cpu().numpy()
    pred = scores.argmax(1)
    frames = []
    for name, m in _subset_masks(difficulty[ev]).items():
        if not m.any():
            continue
        rows = M.classification_rows("validation", y[ev][m], pred[m], None, n_classes=n_c, class_names=classes)
        cm = pd.crosstab(pd.Categorical(y[ev][m], range(n_c)), pd.Categorical(pred[m], range(n_c)), dropna=False)
        rows += [("validation", "confusion", f"{classes[i]}|{classes[j]}", float(cm.iloc[i, j]))
                 for i in range(n_c) for j in range(n_c)]
        rows.append(("validation", "n", None, float(m.sum())))
        frames.append(_metric_frame(rows, name))
    data = _save(res.model, config=head.config, mean=mu, std=sd, classes=list(classes), task="hard_fer")
    return RunOutput(pd.concat(frames, ignore_index=True), res.curve, data, res.best_epoch, res.epochs,
                     res.stop_reason, res.seconds, len(tr), len(ev), {"class_counts": counts.tolist()})


def soft_fer_run(X: np.ndarray, soft: np.ndarray, hard: np.ndarray, is_eval: np.ndarray, difficulty: np.ndarray,
                 classes: Sequence[str], lr: float, seed: int, *, max_epochs: int = 250, patience: int = 6,
                 batch_size: int = 64, monitor_fraction: float = 0.1, device: str = "cpu") -> RunOutput:
    """AffectNet+ §4.3 Soft-FER: predict the soft label (sigmoid per emotion, MSE); W-MAE, W-FR per
    subset, overall and per emotion (the face's hard label, as Table 11 groups)."""
    n_c = len(classes)
    is_eval = np.asarray(is_eval, bool)
    tr, watch, Z, mu, sd = _sides(X, is_eval, None, monitor_fraction, seed)
    torch.manual_seed(seed)
    head = LinearHead(X.shape[1], n_c).to(device)
    Xw, Sw = tensor(Z[watch], device=device), tensor(soft[watch], device=device)

    def evaluate(m):
        p = torch.sigmoid(m(Xw))
        return {"loss": float(F.mse_loss(p, Sw)), "w_mae": M.w_mae(soft[watch], p.cpu().numpy())}

    res = _adam_run(head, (tensor(Z[tr], device=device), tensor(soft[tr], device=device)),
                    lambda m, b: F.mse_loss(torch.sigmoid(m(b[0])), b[1]), evaluate, lr, seed, max_epochs,
                    patience, batch_size, {"loss": "min", "w_mae": "min"})
    ev = np.flatnonzero(is_eval)
    with torch.no_grad():
        pred = torch.sigmoid(res.model(tensor(Z[ev], device=device))).cpu().numpy()
    frames = []
    for name, m in _subset_masks(difficulty[ev]).items():
        if not m.any():
            continue
        rows = M.soft_label_rows("validation", soft[ev][m], pred[m], groups=hard[ev][m], group_names=classes)
        rows.append(("validation", "n", None, float(m.sum())))
        frames.append(_metric_frame(rows, name))
    data = _save(res.model, config=head.config, mean=mu, std=sd, classes=list(classes), task="soft_fer")
    return RunOutput(pd.concat(frames, ignore_index=True), res.curve, data, res.best_epoch, res.epochs,
                     res.stop_reason, res.seconds, len(tr), len(ev))


# ---- Deep Affect §2.2–2.4 -----------------------------------------------------------------------

def deep_affect_run(groups: Mapping[str, np.ndarray], va: np.ndarray, is_eval: np.ndarray, seed: int, *,
                    architecture: str = "shared", lr: float = DEEP_AFFECT_LR0, max_epochs: int = 250,
                    batch_size: int = DEEP_AFFECT_BATCH_SIZE, monitor_fraction: float = 0.1,
                    hidden: Sequence[int] = (3000, 1000, 500), dropout: float = 0.5, device: str = "cpu",
                    split_name: str = "test") -> RunOutput:
    """Deep Affect §2.3 on one fold: ``groups`` (feature group name → (N, d_g)) concatenated, targets
    ``va`` (N, 2) valence and arousal on 1–9 (§2.1); MSE on the evaluation side (§3: MSE per fold)."""
    X = np.concatenate([np.asarray(groups[k], np.float32) for k in groups], axis=1)
    is_eval = np.asarray(is_eval, bool)
    tr, watch, Z, mu, sd = _sides(X, is_eval, None, monitor_fraction, seed)
    torch.manual_seed(seed)
    net = DeepAffectRegressor({k: groups[k].shape[1] for k in groups}, architecture, hidden=hidden,
                              dropout=dropout, seed=seed).to(device)
    Xw, Yw = tensor(Z[watch], device=device), tensor(va[watch], device=device)

    def evaluate(m):
        return {"loss": float(F.mse_loss(m(Xw), Yw))}

    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=DEEP_AFFECT_MOMENTUM)   # §2.3
    res = fit(net, (tensor(Z[tr], device=device), tensor(va[tr], device=device)),
              lambda m, b: F.mse_loss(m(b[0]), b[1]), evaluate, PlateauStop(lr, max_epochs), optimizer=opt,
              batch_size=batch_size, seed=seed, max_epochs=max_epochs)
    ev = np.flatnonzero(is_eval)
    with torch.no_grad():
        pred = res.model(tensor(Z[ev], device=device)).cpu().numpy()
    rows = M.regression_rows(split_name, va[ev], pred)
    data = _save(res.model, architecture=architecture, groups={k: int(groups[k].shape[1]) for k in groups},
                 hidden=list(hidden), dropout=dropout, mean=mu, std=sd, task="deep_affect")
    return RunOutput(_metric_frame(rows), res.curve, data, res.best_epoch, res.epochs, res.stop_reason,
                     res.seconds, len(tr), len(ev), {"groups": list(groups), "architecture": architecture})


# ---- CAGE §4.1–4.3 ------------------------------------------------------------------------------

def cage_run(X: np.ndarray, y: np.ndarray | None, va: np.ndarray, is_eval: np.ndarray, classes: Sequence[str],
             kind: str, lr: float, seed: int, *, alpha: float = 5.0, beta: float = 3.0, max_epochs: int = 250,
             patience: int = 6, batch_size: int = 64, monitor_fraction: float = 0.1,
             device: str = "cpu") -> RunOutput:
    """CAGE §4.1: ``kind="joint"`` (expression + V/A, Eq. 1, inverse-frequency CE weights of Table 4)
    or ``kind="va"`` (V/A only, Eq. 2). ``va`` (N, 2) on CAGE's [−1, 1] scale (§3.1)."""
    if kind not in ("joint", "va"):
        raise ValueError(f"kind must be 'joint' or 'va', not {kind!r}")
    n_c = len(classes) if kind == "joint" else 0
    is_eval = np.asarray(is_eval, bool)
    tr, watch, Z, mu, sd = _sides(X, is_eval, y if kind == "joint" else None, monitor_fraction, seed)
    head = CageHead(X.shape[1], n_c, seed=seed).to(device)
    if kind == "joint":
        counts = np.bincount(y[tr], minlength=n_c)
        if (counts == 0).any():
            raise ValueError(f"cage: no training sample of {[classes[i] for i in np.flatnonzero(counts == 0)]}")
        crit = CageCombinedLoss(inverse_frequency_weights(counts), alpha=alpha).to(device)

        def loss_of(m, b):
            logits, v = m(b[0])
            return crit(logits, b[1], v, b[2])
        train = (tensor(Z[tr], device=device), tensor(y[tr], torch.long, device), tensor(va[tr], device=device))
        yw = tensor(y[watch], torch.long, device)
    else:
        crit = CageValenceArousalLoss(beta=beta).to(device)

        def loss_of(m, b):
            return crit(m(b[0])[1], b[1])
        train = (tensor(Z[tr], device=device), tensor(va[tr], device=device))
        yw = None
    Xw, Vw = tensor(Z[watch], device=device), tensor(va[watch], device=device)

    def evaluate(m):
        logits, v = m(Xw)
        return {"loss": float(crit(logits, yw, v, Vw) if kind == "joint" else crit(v, Vw))}

    res = _adam_run(head, train, loss_of, evaluate, lr, seed, max_epochs, patience, batch_size, {"loss": "min"})
    ev = np.flatnonzero(is_eval)
    with torch.no_grad():
        logits, v = res.model(tensor(Z[ev], device=device))
    rows = M.regression_rows("test", va[ev], v.cpu().numpy())
    if kind == "joint":
        scores = F.softmax(logits, 1).cpu().numpy()
        rows += M.classification_rows("test", y[ev], scores.argmax(1), scores, n_classes=n_c, class_names=classes)
    data = _save(res.model, n_classes=n_c, kind=kind, mean=mu, std=sd, classes=list(classes), task=f"cage_{kind}")
    return RunOutput(_metric_frame(rows), res.curve, data, res.best_epoch, res.epochs, res.stop_reason,
                     res.seconds, len(tr), len(ev), {"alpha": alpha, "beta": beta})
