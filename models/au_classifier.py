"""AffectNet+ §3.3 AU-based classifier: two heads on backbone features and the loss of Eq. 7.

One model per emotion emo_i (one-vs-rest). Heads (Fig. 3, "two fully connected layers, each head
responsible for a specific task"):
  * binary head, 2 logits -> softmax = BPV, ordered [positive = emo_i, negative = the rest]
    (``POSITIVE = 0``), the order of BSV/APV in Eq. 10-12 so that Eq. 12 adds them elementwise;
  * AU head, 21 logits -> sigmoid = ÂU, the generated AU-based representation vector (Eq. 6 order).
Training target of the AU head for sample k is AU_k, the Eq. 6 vector of the sample's own emotion
(``ops.labels.affectnet_plus.au_matrix()[label]``); the binary target is label == emo_i.

Losses work on logits (log σ(x) = -softplus(-x)), so they stay finite for any logit. No file I/O.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

N_AUS = 21
POSITIVE, NEGATIVE = 0, 1
Reduction = Literal["sum", "mean", "none"]


class AUClassifierOutput(NamedTuple):
    """Raw outputs of the two heads (§3.3): bpv_logits (N, 2), au_logits (N, 21)."""

    bpv_logits: torch.Tensor
    au_logits: torch.Tensor

    @property
    def bpv(self) -> torch.Tensor:
        """BPV (§3.3): softmax of the binary head, [P(emo_i), P(rest)]."""
        return torch.softmax(self.bpv_logits, dim=-1)

    @property
    def au_hat(self) -> torch.Tensor:
        """ÂU (§3.3, Eq. 7/9): sigmoid of the AU head."""
        return torch.sigmoid(self.au_logits)


class AUClassifierHead(nn.Module):
    """§3.3 / Fig. 3: a binary head (2-way softmax, BPV) and an AU head (21-way sigmoid) on pooled
    backbone features (N, in_features). ``hidden`` > 0 adds a shared FC+ReLU layer before the heads
    (not in the paper; 0 = the two FC heads directly on the features)."""

    def __init__(self, in_features: int, n_aus: int = N_AUS, hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        trunk: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        if hidden > 0:
            trunk += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
            in_features = hidden
        self.trunk = nn.Sequential(*trunk)
        self.binary = nn.Linear(in_features, 2)
        self.au = nn.Linear(in_features, n_aus)

    def forward(self, features: torch.Tensor) -> AUClassifierOutput:
        """Logits of both heads (§3.3)."""
        h = self.trunk(features.flatten(1))
        return AUClassifierOutput(self.binary(h), self.au(h))


class AUBasedClassifier(nn.Module):
    """§3.3 / Fig. 3: a backbone (any module mapping images to (N, feature_dim), e.g. a ResNet-50
    with its fc replaced by Identity) followed by :class:`AUClassifierHead`."""

    def __init__(self, backbone: nn.Module, feature_dim: int, n_aus: int = N_AUS, hidden: int = 0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = AUClassifierHead(feature_dim, n_aus=n_aus, hidden=hidden, dropout=dropout)

    def forward(self, images: torch.Tensor) -> AUClassifierOutput:
        """Backbone features, then the two heads (§3.3)."""
        return self.head(self.backbone(images))


def _reduce(per_sample: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """Sum over samples (Eq. 7 as printed), mean over samples, or per-sample values."""
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'sum', 'mean' or 'none', not {reduction!r}")


def au_multilabel_ce(au_logits: torch.Tensor, au_target: torch.Tensor, w_pos: torch.Tensor | None = None,
                     w_neg: torch.Tensor | None = None, reduction: Reduction = "sum") -> torch.Tensor:
    """Eq. 7, the positive/negative weighted multi-label CE of the AU head:

        L_k^Pos = -Σ_i ω_pk^i AU_k^i log(ÂU_k^i),   L_k^Neg = -Σ_i ω_nk^i (1 - AU_k^i) log(1 - ÂU_k^i),
        Loss = Σ_{k=1}^{N} L_k^Pos + L_k^Neg.

    ``au_logits`` (N, n) are pre-sigmoid, ÂU = σ(logits); ``au_target`` AU_k (N, n) in [0, 1].
    ω_pos, ω_neg default to the paper's one-hot maps of active / inactive AUs, 1[AU_k > 0] and
    1[AU_k < 1] (for binary targets the loss is then BCE summed over AUs); pass tensors broadcastable
    to (N, n), e.g. per-AU weights, to weight them. Eq. 7 sums over all N training samples
    (``reduction="sum"``, the default, per batch here); "mean" divides by the number of samples."""
    x, y = au_logits, au_target.to(au_logits.dtype)
    if x.shape != y.shape:
        raise ValueError(f"au_logits {tuple(x.shape)} and au_target {tuple(y.shape)} differ in shape")
    wp = (y > 0).to(x.dtype) if w_pos is None else w_pos.to(x.dtype)
    wn = (y < 1).to(x.dtype) if w_neg is None else w_neg.to(x.dtype)
    l_pos = -(wp * y * F.logsigmoid(x)).sum(dim=-1)          # log σ(x)
    l_neg = -(wn * (1 - y) * F.logsigmoid(-x)).sum(dim=-1)   # log(1 - σ(x)) = log σ(-x)
    return _reduce(l_pos + l_neg, reduction)


def bpv_cross_entropy(bpv_logits: torch.Tensor, is_positive: torch.Tensor, reduction: Reduction = "sum") -> torch.Tensor:
    """§3.3: the binary CE of the BPV head (softmax over 2 logits); ``is_positive`` (N,) bool, True
    when the sample's label is the model's emotion (class index ``POSITIVE``)."""
    target = torch.where(is_positive.bool(), POSITIVE, NEGATIVE).to(torch.long)
    return _reduce(F.cross_entropy(bpv_logits, target, reduction="none"), reduction)


class AUClassifierLoss(nn.Module):
    """§3.3 training loss: ``au_weight`` · Eq. 7 + ``bpv_weight`` · binary CE. The paper trains both
    heads simultaneously but does not say how the two losses are combined; the default is their
    plain sum. ``reduction`` applies to both (Eq. 7 as printed sums over samples)."""

    class Parts(NamedTuple):
        """The total and its two terms."""

        total: torch.Tensor
        au: torch.Tensor
        bpv: torch.Tensor

    def __init__(self, au_weight: float = 1.0, bpv_weight: float = 1.0, reduction: Reduction = "sum") -> None:
        super().__init__()
        if reduction == "none":
            raise ValueError("AUClassifierLoss needs a scalar reduction ('sum' or 'mean')")
        self.au_weight, self.bpv_weight, self.reduction = au_weight, bpv_weight, reduction

    def forward(self, output: AUClassifierOutput, au_target: torch.Tensor, is_positive: torch.Tensor,
                w_pos: torch.Tensor | None = None, w_neg: torch.Tensor | None = None) -> AUClassifierLoss.Parts:
        """Eq. 7 on the AU head plus the binary CE on the BPV head."""
        au = au_multilabel_ce(output.au_logits, au_target, w_pos, w_neg, self.reduction)
        bpv = bpv_cross_entropy(output.bpv_logits, is_positive, self.reduction)
        return self.Parts(self.au_weight * au + self.bpv_weight * bpv, au, bpv)
