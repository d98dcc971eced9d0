"""Training losses of the seed papers (torch only: no Dagster, no file I/O).

FindingEmo §3 Eq. 1 and §A.7 Eqs. 3–4:
    UnbalancedCrossEntropyLoss (UCE), its class weights ``class_weights`` and misclassification
    weights ``misclassification_weights``; a plain (class-)weighted cross-entropy.
CAGE §4.1 Eqs. 1–2:
    ``CageCombinedLoss``  L_combined = L_WeightedCE + α·L_MSE (α = 5, Table 5)
    ``CageValenceArousalLoss``  L_valence-arousal = L_CCC + β·L_MSE (β = 3, Table 5)
    ``inverse_frequency_weights``  the cross-entropy weights of CAGE Table 4.
Concordance correlation: ``ccc`` and ``ConcordanceCorrelationLoss`` (1 − CCC).

Distances between classes (Plutchik's wheel, Arousal3/Valence3 steps) are *inputs* here: they come
from ``ops.training.tasks`` (models/ does not import ops/, the layers point one way).

Reading of FindingEmo Eq. 1 (what the text prints vs. what is implemented):
  printed   l_UCE = w_t log p_t                      (t = h)
            l_UCE = w_t log p_t + w_{t,h} log 1 − p_h (t ≠ h)
  1. The printed expression is a log-likelihood (≤ 0) with no minus sign, yet the text says that
     for t = h it "reverts to regular CrossEntropyLoss" (= −log p_t). We implement the loss to be
     minimised: −w_t log p_t − w_{t,h} log(1 − p_h).
  2. "log 1 − p_h" has no parentheses. We read log(1 − p_h) (a binary-CE-style term pushing the
     wrongly preferred class h down; it diverges as p_h → 1, the symmetric counterpart of
     −log p_t). The literal other reading, (log 1) − p_h = −p_h, i.e. a linear penalty
     +w_{t,h}·p_h, is available as ``penalty="linear"``.
  3. With w_t present, "reverts to regular CrossEntropyLoss" holds per sample for the
     class-weighted CE (torch ``cross_entropy(weight=w, reduction="none")``); pass
     ``use_class_weights=False`` to drop w_t (then t = h gives the unweighted CE exactly).
  4. The batch reduction is not stated: ``reduction="mean"`` (default) averages the per-sample
     losses; ``"weighted_mean"`` divides by Σ w_t like torch's weighted CrossEntropyLoss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Array = torch.Tensor | Sequence[float] | Sequence[Sequence[float]]


def _t(x: Array, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Tensor view of a sequence (helper; no paper reference)."""
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=dtype)


# ---- FindingEmo §A.7: class and misclassification weights ---------------------------------------

def class_weights(counts: Array) -> torch.Tensor:
    """FindingEmo §A.7 Eq. 3: w_i = N / (N_c · N_i) (N samples, N_c classes, N_i samples of class i).

    A class with no sample has no finite weight: that is an error (drop the class from the task or
    supply the weights yourself).
    """
    n = _t(counts, torch.float64)
    if n.ndim != 1 or n.numel() < 2:
        raise ValueError("counts must be a 1-D sequence over at least 2 classes")
    if bool((n <= 0).any()):
        raise ValueError(f"every class needs at least one sample for Eq. 3, got counts {n.tolist()}")
    return (n.sum() / (n.numel() * n)).to(torch.float32)


def misclassification_weights(weights: Array, distances: Array) -> torch.Tensor:
    """FindingEmo §A.7 Eq. 4: w_{i,j} = d_{i,j} / (1 + w_j) · w_i.

    The equation typesets the fraction d_{i,j} / (1 + w_j), multiplied by w_i (not
    d / ((1 + w_j) · w_i)). Row i = true class, column j = predicted class; the diagonal is 0
    because d_{i,i} = 0, which is why Eq. 1 reverts to CE when t = h.
    """
    w = _t(weights, torch.float64)
    d = _t(distances, torch.float64)
    if d.shape != (w.numel(), w.numel()):
        raise ValueError(f"distances must be {w.numel()}x{w.numel()}, got {tuple(d.shape)}")
    return (d / (1.0 + w[None, :]) * w[:, None]).to(torch.float32)


def inverse_frequency_weights(counts: Array, normalize: bool = True) -> torch.Tensor:
    """CAGE §4.1, Table 4: cross-entropy weights ∝ 1 / N_i, normalised to sum to 1.

    The text says the weights "were set to the frequencies of expressions", but Table 4 gives the
    rarest classes (Contempt, Disgust) the largest weights and the column sums to 1: the table is
    inverse frequencies, normalised. We follow the table (the text's literal reading would
    up-weight the majority class, the opposite of the stated purpose).
    """
    n = _t(counts, torch.float64)
    if bool((n <= 0).any()):
        raise ValueError(f"every class needs at least one sample, got counts {n.tolist()}")
    w = 1.0 / n
    return (w / w.sum() if normalize else w).to(torch.float32)


# ---- FindingEmo §3 Eq. 1: UnbalancedCrossEntropyLoss --------------------------------------------

def _log_one_minus_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log(1 − p_h) computed stably as logsumexp over the other classes − logsumexp over all (Eq. 1)."""
    mask = F.one_hot(index, logits.shape[1]).bool()
    others = logits.masked_fill(mask, float("-inf"))
    return torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1)


def _reduce(per_sample: torch.Tensor, reduction: str, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Batch reduction shared by the losses (see the module docstring, point 4)."""
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "weighted_mean":
        if weights is None:
            return per_sample.mean()
        return per_sample.sum() / weights.sum()
    raise ValueError(f"unknown reduction {reduction!r}")


class UnbalancedCrossEntropyLoss(nn.Module):
    """FindingEmo §3 Eq. 1 with the weights of §A.7 (Eqs. 3–4); see the module docstring.

    Per sample (t target, h = argmax of the predicted probabilities, p = softmax(logits)):
        t = h:  −w_t log p_t
        t ≠ h:  −w_t log p_t − w_{t,h} log(1 − p_h)        (penalty="log", default)
                −w_t log p_t + w_{t,h} p_h                 (penalty="linear", the other reading)

    ``weights`` are the class weights w (Eq. 3), ``mis_weights`` the matrix w_{i,j} (Eq. 4). The
    argmax h carries no gradient (it is a selection); p_h does.
    """

    def __init__(
        self,
        weights: Array,
        mis_weights: Array,
        *,
        penalty: str = "log",
        use_class_weights: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        w = _t(weights)
        m = _t(mis_weights)
        if m.shape != (w.numel(), w.numel()):
            raise ValueError(f"mis_weights must be {w.numel()}x{w.numel()}, got {tuple(m.shape)}")
        if penalty not in ("log", "linear"):
            raise ValueError(f"penalty must be 'log' or 'linear', got {penalty!r}")
        self.register_buffer("weights", w)
        self.register_buffer("mis_weights", m)
        self.penalty = penalty
        self.use_class_weights = use_class_weights
        self.reduction = reduction

    @classmethod
    def from_counts(cls, counts: Array, distances: Array, **kwargs) -> "UnbalancedCrossEntropyLoss":
        """FindingEmo §A.7: class weights from training counts (Eq. 3), w_{i,j} from distances (Eq. 4)."""
        w = class_weights(counts)
        return cls(w, misclassification_weights(w, distances), **kwargs)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """FindingEmo §3 Eq. 1 on a batch: logits (B, C), target (B,) class indices."""
        target = target.long()
        logp = F.log_softmax(logits, dim=1)
        h = logits.detach().argmax(dim=1)
        w_t = self.weights[target] if self.use_class_weights else torch.ones_like(logp[:, 0])
        loss = -w_t * logp.gather(1, target[:, None]).squeeze(1)
        w_th = self.mis_weights[target, h] * (target != h).to(logp.dtype)  # t = h: plain CE term only
        if self.penalty == "log":
            loss = loss - w_th * _log_one_minus_softmax(logits, h)
        else:
            loss = loss + w_th * logp.gather(1, h[:, None]).squeeze(1).exp()
        return _reduce(loss, self.reduction, w_t)


class WeightedCrossEntropyLoss(nn.Module):
    """Class-weighted cross-entropy (FindingEmo §3 "CrossEntropyLoss"; CAGE §4.1 L_WeightedCE).

    −w_t log p_t per sample; ``reduction="weighted_mean"`` (default) divides by Σ w_t exactly as
    torch's ``nn.CrossEntropyLoss(weight=w)``; ``weights=None`` is the plain CE.
    """

    def __init__(self, weights: Array | None = None, reduction: str = "weighted_mean") -> None:
        super().__init__()
        self.register_buffer("weights", None if weights is None else _t(weights))
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """CAGE §4.1 L_WeightedCE / FindingEmo §3 CE on logits (B, C), target (B,)."""
        target = target.long()
        per = F.cross_entropy(logits, target, weight=self.weights, reduction="none")
        w = self.weights[target] if self.weights is not None else None
        return _reduce(per, self.reduction, w)


# ---- concordance correlation (CAGE §4.1, §4.3) -------------------------------------------------

def ccc(pred: torch.Tensor, target: torch.Tensor, dim: int = 0, eps: float = 0.0) -> torch.Tensor:
    """Lin's concordance correlation coefficient (CAGE §4.1 L_CCC, §4.3 / Table 7 CCC).

    CCC = 2·cov(x, y) / (var(x) + var(y) + (mean(x) − mean(y))²), population (1/N) moments, along
    ``dim`` (one value per remaining column, e.g. valence and arousal). ``eps`` guards the
    denominator (0/0 when both series are the same constant).
    """
    x, y = pred.to(torch.float32), target.to(torch.float32)
    mx, my = x.mean(dim=dim, keepdim=True), y.mean(dim=dim, keepdim=True)
    vx = ((x - mx) ** 2).mean(dim=dim)
    vy = ((y - my) ** 2).mean(dim=dim)
    cov = ((x - mx) * (y - my)).mean(dim=dim)
    diff = (mx - my).squeeze(dim) ** 2
    return 2.0 * cov / (vx + vy + diff + eps)


class ConcordanceCorrelationLoss(nn.Module):
    """CAGE §4.1 L_CCC = 1 − CCC, per output column, then averaged (``reduction="mean"``) or summed.

    The paper does not say how valence and arousal are combined; the mean keeps L_CCC in [0, 2].
    """

    def __init__(self, reduction: str = "mean", eps: float = 1e-8) -> None:
        super().__init__()
        self.reduction = reduction
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """CAGE §4.1: 1 − CCC over the batch dimension, per column."""
        per = 1.0 - ccc(pred, target, dim=0, eps=self.eps)
        return _reduce(per.reshape(-1), self.reduction)


# ---- CAGE §4.1 Eqs. 1–2 ------------------------------------------------------------------------

CAGE_ALPHA = 5.0  # CAGE Table 5, L_combined factor
CAGE_BETA = 3.0   # CAGE Table 5, L_valence-arousal factor


class CageCombinedLoss(nn.Module):
    """CAGE §4.1 Eq. 1: L_combined = L_WeightedCE(expression) + α · L_MSE(valence, arousal), α = 5.

    L_WeightedCE is torch's weighted CE (weighted mean over the batch); L_MSE is the mean squared
    error over the batch and both V/A columns.
    """

    def __init__(self, class_weights: Array | None = None, alpha: float = CAGE_ALPHA) -> None:
        super().__init__()
        self.ce = WeightedCrossEntropyLoss(class_weights)
        self.alpha = float(alpha)

    def parts(self, logits, target, va_pred, va_true) -> dict[str, torch.Tensor]:
        """CAGE §4.1 Eq. 1, its two terms and the total."""
        ce = self.ce(logits, target)
        mse = F.mse_loss(va_pred.to(torch.float32), va_true.to(torch.float32))
        return {"ce": ce, "mse": mse, "total": ce + self.alpha * mse}

    def forward(self, logits, target, va_pred, va_true) -> torch.Tensor:
        """CAGE §4.1 Eq. 1 on logits (B, C), target (B,), V/A predictions and targets (B, 2)."""
        return self.parts(logits, target, va_pred, va_true)["total"]


class CageValenceArousalLoss(nn.Module):
    """CAGE §4.1 Eq. 2: L_valence-arousal = L_CCC + β · L_MSE, β = 3 (Table 5), V/A only."""

    def __init__(self, beta: float = CAGE_BETA, eps: float = 1e-8) -> None:
        super().__init__()
        self.ccc_loss = ConcordanceCorrelationLoss(eps=eps)
        self.beta = float(beta)

    def parts(self, va_pred, va_true) -> dict[str, torch.Tensor]:
        """CAGE §4.1 Eq. 2, its two terms and the total."""
        lc = self.ccc_loss(va_pred, va_true)
        mse = F.mse_loss(va_pred.to(torch.float32), va_true.to(torch.float32))
        return {"ccc": lc, "mse": mse, "total": lc + self.beta * mse}

    def forward(self, va_pred, va_true) -> torch.Tensor:
        """CAGE §4.1 Eq. 2 on V/A predictions and targets (B, 2)."""
        return self.parts(va_pred, va_true)["total"]


__all__ = [
    "CAGE_ALPHA", "CAGE_BETA", "CageCombinedLoss", "CageValenceArousalLoss", "ConcordanceCorrelationLoss",
    "UnbalancedCrossEntropyLoss", "WeightedCrossEntropyLoss", "ccc", "class_weights",
    "inverse_frequency_weights", "misclassification_weights",
]
