"""Small heads trained on cached backbone features (torch only, no Dagster, no file I/O).

FindingEmo §3 trains "only this last layer" on frozen ImageNet/Places365 backbones, from buffered
activations (footnote 4): that is `LinearHead`. `MLPHead` adds hidden layers for when a linear probe
is too weak (e.g. the keep/reject filter of FindingEmo §2.3.1 on tiny_cnn features).
Task-specific heads live beside this file: `regressors.py` (Deep Affect, CAGE) and
`au_classifier.py` (AffectNet+ §3.3).

`make_head(kind, in_dim, n_out, **options)` builds either; `head.config` is the JSON-able dict that
rebuilds it (`make_head(**head.config)`), so a model store can save config + state dict.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
_NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


class LinearHead(nn.Module):
    """Features (B, in_dim) → logits or values (B, n_out); optional dropout on the features.

    FindingEmo §3: "replace the last layer with a new output layer … Only this last layer is
    trained." With dropout=0 this is exactly that layer, trained on cached activations."""

    def __init__(self, in_dim: int, n_out: int, dropout: float = 0.0):
        super().__init__()
        if in_dim < 1 or n_out < 1:
            raise ValueError(f"in_dim and n_out must be positive, got {in_dim}, {n_out}")
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_dim, n_out)
        self.config = {"kind": "linear", "in_dim": in_dim, "n_out": n_out, "dropout": dropout}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x))


class MLPHead(nn.Module):
    """Features → [Linear → norm? → activation → dropout] × len(hidden) → Linear(n_out).

    hidden: widths of the hidden layers (empty = a linear head with input dropout).
    dropout: applied after every hidden activation (and on the input when input_dropout > 0).
    norm: None, "batch" (BatchNorm1d) or "layer" (LayerNorm) after each hidden Linear."""

    def __init__(
        self,
        in_dim: int,
        n_out: int,
        hidden: Sequence[int] = (256,),
        dropout: float = 0.5,
        activation: str = "relu",
        norm: str | None = None,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        if in_dim < 1 or n_out < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"sizes must be positive: in_dim={in_dim}, hidden={hidden}, n_out={n_out}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}")
        if norm is not None and norm not in _NORMS:
            raise ValueError(f"norm must be None or one of {sorted(_NORMS)}")
        layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout > 0 else []
        d = in_dim
        for h in hidden:
            layers.append(nn.Linear(d, h))
            if norm is not None:
                layers.append(_NORMS[norm](h))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = h
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(d, n_out)
        self.config = {
            "kind": "mlp",
            "in_dim": in_dim,
            "n_out": n_out,
            "hidden": [int(h) for h in hidden],
            "dropout": dropout,
            "activation": activation,
            "norm": norm,
            "input_dropout": input_dropout,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


HEADS = {"linear": LinearHead, "mlp": MLPHead}


def make_head(kind: str, in_dim: int, n_out: int, *, seed: int | None = None, **options) -> nn.Module:
    """Build a head by name ("linear" or "mlp"). With `seed`, the initial weights come from that
    seed without touching the global torch RNG (two heads built with one seed are equal)."""
    if kind not in HEADS:
        raise ValueError(f"unknown head kind {kind!r}; known: {sorted(HEADS)}")
    if seed is None:
        return HEADS[kind](in_dim, n_out, **options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HEADS[kind](in_dim, n_out, **options)
