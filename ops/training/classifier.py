"""Classification heads trained on cached features (FindingEmo §3, footnote 4: buffered activations of
frozen backbones), evaluated on held-out images.

The keep/reject CNN of FindingEmo §2.3.1 and the Emo8 predictor of §2.3.2 are such heads here: a
linear (or small MLP) output layer on the backbone's cached activations, trained with Adam and
early stopping on a validation part of the training images, scored on the build's held-out images
(:mod:`ops.training.holdout`) with accuracy, balanced accuracy, ROC-AUC and the confusion matrix.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from models.heads import make_head
from ops.training.holdout import holdout_mask


@dataclass(frozen=True)
class HeadSpec:
    """How a head is trained (``models.keep_reject`` / ``models.emo8`` of the configuration)."""

    kind: str = "linear"                 # linear | mlp
    hidden: tuple[int, ...] = (128,)     # mlp only
    dropout: float = 0.0
    epochs: int = 300
    lr: float = 1e-2
    weight_decay: float = 1e-4
    batch_size: int = 64
    patience: int = 30                   # epochs without a better validation loss before stopping
    val_fraction: float = 0.15           # of the training images, for early stopping
    class_weight: str | None = "balanced"  # balanced: CE weighted by inverse class frequency
    seed: int = 0


@dataclass
class TrainedHead:
    """A trained head and what it takes to use it: classes, feature standardization, its spec."""

    model: nn.Module
    classes: list[str]
    mean: np.ndarray
    std: np.ndarray
    spec: HeadSpec
    metrics: dict[str, Any] = field(default_factory=dict)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (N, n_classes), float64."""
        Z = torch.from_numpy(((np.asarray(X, np.float32) - self.mean) / self.std).astype(np.float32))
        self.model.eval()
        with torch.inference_mode():
            out = []
            for i in range(0, len(Z), 4096):
                out.append(torch.softmax(self.model(Z[i:i + 4096]).float(), dim=1).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(self.classes)))

    def to_bytes(self) -> bytes:
        """The head, its classes and standardization, as one torch file (for the model store)."""
        buf = io.BytesIO()
        torch.save({"state_dict": self.model.state_dict(), "classes": self.classes, "mean": self.mean,
                    "std": self.std, "spec": asdict(self.spec), "in_dim": int(self.mean.shape[0])}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "TrainedHead":
        d = torch.load(io.BytesIO(data), weights_only=False)
        spec = HeadSpec(**{**d["spec"], "hidden": tuple(d["spec"]["hidden"])})
        model = _make(spec, d["in_dim"], len(d["classes"]))
        model.load_state_dict(d["state_dict"])
        return cls(model, list(d["classes"]), np.asarray(d["mean"]), np.asarray(d["std"]), spec)


def _make(spec: HeadSpec, in_dim: int, n_out: int) -> nn.Module:
    if spec.kind == "mlp":
        return make_head("mlp", in_dim, n_out, hidden=list(spec.hidden), dropout=spec.dropout, seed=spec.seed)
    return make_head("linear", in_dim, n_out, dropout=spec.dropout, seed=spec.seed)


def evaluate(y_true: Sequence[int], proba: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, ROC-AUC (binary; macro one-vs-rest for several classes, over the
    classes present), per-class recall and the confusion matrix (rows true, columns predicted)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, roc_auc_score

    y = np.asarray(y_true, dtype=int)
    out: dict[str, Any] = {"n": int(len(y))}
    if len(y) == 0:
        return {**out, "note": "no held-out images with a label"}
    pred = proba.argmax(axis=1)
    out["accuracy"] = float(accuracy_score(y, pred))
    out["balanced_accuracy"] = float(balanced_accuracy_score(y, pred))
    k = len(classes)
    present = sorted(set(y.tolist()))
    try:
        if k == 2:
            out["roc_auc"] = float(roc_auc_score(y, proba[:, 1])) if len(present) == 2 else None
        elif len(present) >= 2:
            cols = proba[:, present] / np.clip(proba[:, present].sum(axis=1, keepdims=True), 1e-12, None)
            out["roc_auc"] = float(roc_auc_score(y, cols, multi_class="ovr", average="macro", labels=present)) \
                if len(present) > 2 else float(roc_auc_score((y == present[1]).astype(int), cols[:, 1]))
    except ValueError:
        out["roc_auc"] = None
    cm = confusion_matrix(y, pred, labels=list(range(k)))
    out["confusion_matrix"] = {"classes": list(classes), "matrix": cm.tolist()}
    out["recall"] = {c: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, c in enumerate(classes)}
    out["chance_balanced_accuracy"] = 1.0 / max(1, len(present))
    return out


def train_classifier(X: np.ndarray, labels: Sequence[str], ids: Sequence[str], classes: Sequence[str], spec: HeadSpec,
                     holdout: np.ndarray | None = None, scored: np.ndarray | None = None) -> TrainedHead:
    """Train a head on features ``X`` (N, d) for ``labels`` (one of ``classes`` each). ``holdout``:
    a mask of images kept out of training and used for the metrics; ``scored`` (a part of the
    holdout) narrows the metrics to those images. Early stopping on a stratified validation part of
    the training images (its best epoch's weights are kept)."""
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[lab] for lab in labels], dtype=np.int64)
    X = np.asarray(X, dtype=np.float32)
    hold = np.zeros(len(y), bool) if holdout is None else np.asarray(holdout, bool)
    tr = np.flatnonzero(~hold)
    if len(tr) == 0:
        raise ValueError("no training images (every labelled image is held out)")
    val_local = holdout_mask([ids[i] for i in tr], y[tr].tolist(), spec.val_fraction, seed=spec.seed + 1)
    fit, val = tr[~val_local], tr[val_local]
    if len(fit) == 0:
        fit, val = tr, tr[:0]
    mean = X[fit].mean(axis=0)
    std = X[fit].std(axis=0) + 1e-6
    Z = torch.from_numpy(((X - mean) / std).astype(np.float32))
    Y = torch.from_numpy(y)
    g = torch.Generator().manual_seed(spec.seed)
    model = _make(spec, X.shape[1], len(classes))
    counts = np.bincount(y[fit], minlength=len(classes)).astype(np.float64)
    w = None
    if spec.class_weight == "balanced":
        w = torch.tensor(np.where(counts > 0, counts.sum() / (len(classes) * np.maximum(counts, 1)), 0.0), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=w)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    best = (np.inf, None, -1)
    rows = []
    fit_t = torch.from_numpy(fit)
    for epoch in range(spec.epochs):
        model.train()
        perm = fit_t[torch.randperm(len(fit_t), generator=g)]
        total = 0.0
        for i in range(0, len(perm), spec.batch_size):
            b = perm[i:i + spec.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(Z[b]), Y[b])
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        model.eval()
        with torch.inference_mode():
            vloss = float(loss_fn(model(Z[val]), Y[val])) if len(val) else total / len(fit)
            vacc = float((model(Z[val]).argmax(1) == Y[val]).float().mean()) if len(val) else float("nan")
        rows.append({"epoch": epoch, "train_loss": total / len(fit), "val_loss": vloss, "val_accuracy": vacc})
        if vloss < best[0] - 1e-6:
            best = (vloss, {k: v.clone() for k, v in model.state_dict().items()}, epoch)
        elif epoch - best[2] >= spec.patience:
            break
    if best[1] is not None:
        model.load_state_dict(best[1])
    head = TrainedHead(model, classes, mean, std, spec, curves=pd.DataFrame(rows))
    score = hold if scored is None else (np.asarray(scored, bool) & hold)
    metrics: dict[str, Any] = {"n_train": int(len(fit)), "n_validation": int(len(val)), "n_holdout": int(hold.sum()),
                               "n_scored": int(score.sum()), "best_epoch": int(best[2]), "epochs_run": len(rows),
                               "train_counts": {c: int(counts[i]) for i, c in enumerate(classes)}}
    if score.any():
        metrics["holdout"] = evaluate(y[score], head.predict_proba(X[score]), classes)
    head.metrics = metrics
    return head
