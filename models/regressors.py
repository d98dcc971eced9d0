"""Heads trained on cached features (torch only: no Dagster, no file I/O).

Deep Affect §2.3 (Fig. 3): ``DeepAffectRegressor``, a deep feed-forward network (DFFN) on the
concatenated feature groups (object 1000-D + scene 365-D + 5- or 9-FER, §2.2/§2.4: 1370 or 1374
inputs), hidden layers 3000-1000-500 with ReLU and dropout 0.5, predicting valence and arousal:
    "shared": one DFFN with 2 outputs (both dimensions learnt together, Fig. 3A);
    "split":  one single-output DFFN per dimension (trained independently, Fig. 3B).
CAGE §4.1: ``CageHead``, the joint head: expression logits + 2 regression outputs (valence,
arousal) from one output layer, as in L_combined (CAGE Eq. 1).

Reproducibility: pass ``seed=`` to a constructor and the weights are drawn from a private RNG
stream (the global torch RNG is left untouched), so two models built with the same seed are equal.

Choices where the paper is silent or inconsistent (Deep Affect §2.3):
- "The output layer consisted of a single neuron" describes the split architecture; the shared
  architecture predicts both dimensions, so it has 2 output neurons.
- "All layers in the feedforward network use Rectified Linear Units": read literally this includes
  the output neuron. A ReLU output can die (constant 0, no gradient) and cannot be told apart from a
  regression target of 0, so the output is linear by default; ``output_activation="relu"`` gives
  the literal reading (targets rescaled to 1–9 are positive, so it is usable).
- "retained with p = 0.5": keep probability 0.5 = drop probability 0.5 (torch ``Dropout(0.5)``).
- Initialisation is not given (Keras defaults were used); torch's defaults are used here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

DEEP_AFFECT_HIDDEN = (3000, 1000, 500)  # Deep Affect §2.3
DEEP_AFFECT_DROPOUT = 0.5               # Deep Affect §2.3
DEEP_AFFECT_FEATURE_DIMS = {"object": 1000, "scene": 365, "fer5": 5}  # §2.2/§2.4: 1370 inputs (1374 with 9-FER)
VA_TARGETS = ("valence", "arousal")


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run a block on a private CPU RNG stream seeded with ``seed`` (None: the global stream).

    Reproducible initialisation for the baselines (FindingEmo §3 trains 10 models per setting; each
    run records its seed in ``training_runs``).
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def concat_features(groups: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Deep Affect §2.3 / Fig. 3 (blue circles): concatenate the feature groups along the last axis.

    A mapping is concatenated in its insertion order (object, scene, FER in the paper).
    """
    if isinstance(groups, torch.Tensor):
        return groups
    parts = list(groups.values()) if isinstance(groups, Mapping) else list(groups)
    if not parts:
        raise ValueError("no feature groups to concatenate")
    return torch.cat([p.to(torch.float32) for p in parts], dim=-1)


def _in_dim(in_features: int | Sequence[int] | Mapping[str, int]) -> int:
    """Input width of the DFFN: one int, or the sum of the group widths (Deep Affect §2.4: 1370/1374)."""
    if isinstance(in_features, int):
        return in_features
    dims = in_features.values() if isinstance(in_features, Mapping) else in_features
    return int(sum(int(d) for d in dims))


def dffn(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = DEEP_AFFECT_HIDDEN,
    dropout: float = DEEP_AFFECT_DROPOUT,
    output_activation: str | None = None,
) -> nn.Sequential:
    """Deep Affect §2.3: fully connected layers ``hidden`` with ReLU, each followed by dropout."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
        width = int(h)
    layers.append(nn.Linear(width, out_dim))
    if output_activation == "relu":
        layers.append(nn.ReLU())
    elif output_activation is not None:
        raise ValueError(f"output_activation must be None or 'relu', got {output_activation!r}")
    return nn.Sequential(*layers)


class DeepAffectRegressor(nn.Module):
    """Deep Affect §2.3 affect prediction model on cached features; output (B, len(targets)).

    ``in_features``: the input width, or the widths of the feature groups (their sum is used);
    ``architecture``: "shared" (one DFFN, one output per target) or "split" (one single-output DFFN
    per target; their outputs are concatenated in ``targets`` order).

    Training (Deep Affect §2.3): MSE, batch 25, SGD momentum 0.9 from lr 4e-4 with the plateau
    schedule of ``ops.training.schedules.DeepAffectPlateau``. For the split architecture the paper
    trains the two DFFNs independently: use ``members`` to train each one on its own target with its
    own optimiser and schedule (one optimiser on the summed per-target MSE gives the same gradients,
    but one shared plateau schedule and stopping point).
    """

    def __init__(
        self,
        in_features: int | Sequence[int] | Mapping[str, int] = DEEP_AFFECT_FEATURE_DIMS,
        architecture: str = "shared",
        *,
        targets: Sequence[str] = VA_TARGETS,
        hidden: Sequence[int] = DEEP_AFFECT_HIDDEN,
        dropout: float = DEEP_AFFECT_DROPOUT,
        output_activation: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if architecture not in ("shared", "split"):
            raise ValueError(f"architecture must be 'shared' or 'split', got {architecture!r}")
        self.in_dim = _in_dim(in_features)
        self.architecture = architecture
        self.targets = tuple(targets)
        with seeded(seed):
            if architecture == "shared":
                self.net = dffn(self.in_dim, len(self.targets), hidden, dropout, output_activation)
                self.members = nn.ModuleDict()
            else:
                self.net = None
                self.members = nn.ModuleDict(
                    {t: dffn(self.in_dim, 1, hidden, dropout, output_activation) for t in self.targets}
                )

    def forward(self, features) -> torch.Tensor:
        """Deep Affect Fig. 3: concatenated features (B, in_dim) -> (B, n_targets) predictions."""
        x = concat_features(features)
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected {self.in_dim} input features, got {x.shape[-1]}")
        if self.net is not None:
            return self.net(x)
        return torch.cat([self.members[t](x) for t in self.targets], dim=-1)


class CageHead(nn.Module):
    """CAGE §4.1 joint head on cached backbone features: (expression logits (B, C), V/A (B, 2)).

    One linear output layer of C + 2 units (the backbone's classifier replaced, as in CAGE §4.1/5.1),
    optionally after a hidden layer. ``va_activation="tanh"`` bounds V/A to AffectNet's [−1, 1]
    (CAGE §3.1); the paper does not state an output activation, so the default is linear.
    """

    def __init__(
        self,
        in_dim: int,
        n_classes: int = 8,
        *,
        n_regression: int = 2,
        hidden: int | None = None,
        dropout: float = 0.0,
        va_activation: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if va_activation not in (None, "tanh"):
            raise ValueError(f"va_activation must be None or 'tanh', got {va_activation!r}")
        self.n_classes = int(n_classes)
        self.n_regression = int(n_regression)
        self.va_activation = va_activation
        with seeded(seed):
            layers: list[nn.Module] = []
            width = int(in_dim)
            if hidden:
                layers += [nn.Linear(width, int(hidden)), nn.ReLU()]
                width = int(hidden)
            if dropout:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Linear(width, self.n_classes + self.n_regression))
            self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CAGE §4.1: split the output into expression logits and the V/A regression outputs."""
        out = self.net(concat_features(features))
        logits, va = out[:, : self.n_classes], out[:, self.n_classes:]
        if self.va_activation == "tanh":
            va = torch.tanh(va)
        return logits, va


__all__ = [
    "CageHead", "DEEP_AFFECT_DROPOUT", "DEEP_AFFECT_FEATURE_DIMS", "DEEP_AFFECT_HIDDEN", "DeepAffectRegressor",
    "VA_TARGETS", "concat_features", "dffn", "seeded",
]
