"""One training loop for every baseline on cached features (torch; no Dagster, no files).

The seed papers differ in optimiser, schedule and stopping rule, not in the loop: mini-batches over
the training tensors in a seeded order, one evaluation per epoch, a stopping rule that names the
epoch whose model is put forward. The rules are adapters over ``ops.training.schedules``:

    FindingEmoStop   FindingEmo §3: Adam, Eq. 2 lr decay per epoch, stop when the best loss or the
                     best W.F1 lies 6 epochs behind (or 250 epochs), the corresponding model kept.
    PlateauStop      Deep Affect §2.3: lr × 0.1 after 4 flat epochs (floor 6e-6), stop after 6,
                     keep the lowest-loss model.

Only the states of epochs that may still be put forward are kept in memory (the current best per
monitored metric), so a 3000-wide network over 250 epochs costs a few copies, not 250.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ops.training.schedules import DeepAffectPlateau, EarlyStopping, findingemo_lr_factor


class FindingEmoStop:
    """FindingEmo §3 stopping (EarlyStopping) with the Eq. 2 learning-rate rule applied per epoch."""

    def __init__(self, lr0: float, patience: int = 6, max_epochs: int = 250,
                 monitors: dict[str, str] | None = None):
        self.lr0 = float(lr0)
        self.es = EarlyStopping(patience=patience, max_epochs=max_epochs,
                                monitors=monitors or {"loss": "min", "wf1": "max"})

    def lr(self, epoch: int) -> float:
        """FindingEmo §3 Eq. 2: lr_e = lr_0 / sqrt(e // 3 + 1)."""
        return self.lr0 * findingemo_lr_factor(epoch)

    def update(self, epoch: int, metrics: dict) -> bool:
        return self.es.update(epoch, **{k: metrics.get(k) for k in self.es.monitors})

    def candidates(self) -> set[int]:
        return set(self.es.best_epochs.values())

    @property
    def best_epoch(self) -> int | None:
        return self.es.best_epoch

    @property
    def stop_reason(self) -> str | None:
        return self.es.stop_reason


class PlateauStop:
    """Deep Affect §2.3: the plateau schedule on the monitored loss; the lowest-loss model is kept."""

    def __init__(self, lr0: float, max_epochs: int = 250, monitor: str = "loss"):
        self.plateau = DeepAffectPlateau(lr0=lr0)
        self.max_epochs, self.monitor = int(max_epochs), monitor
        self._reason: str | None = None

    def lr(self, epoch: int) -> float:
        return self.plateau.lr

    def update(self, epoch: int, metrics: dict) -> bool:
        if self.plateau.step(float(metrics[self.monitor])):
            self._reason = "plateau"
            return True
        if epoch + 1 >= self.max_epochs:
            self._reason = "max_epochs"
            return True
        return False

    def candidates(self) -> set[int]:
        return {self.plateau.best_epoch} if self.plateau.best_epoch is not None else set()

    @property
    def best_epoch(self) -> int | None:
        return self.plateau.best_epoch

    @property
    def stop_reason(self) -> str | None:
        return self._reason


@dataclass
class FitResult:
    model: nn.Module                 # with the state of ``best_epoch`` loaded
    curve: pd.DataFrame              # epoch, lr, train_loss and every evaluation metric per epoch
    best_epoch: int
    stop_reason: str
    epochs: int
    seconds: float
    extra: dict = field(default_factory=dict)


def fit(model: nn.Module, train: Sequence[torch.Tensor], loss_of: Callable[[nn.Module, tuple], torch.Tensor],
        evaluate: Callable[[nn.Module], dict], stop, *, optimizer: torch.optim.Optimizer, batch_size: int,
        seed: int, max_epochs: int = 250) -> FitResult:
    """Train ``model`` on the tensors ``train`` (same first dimension) with ``loss_of(model, batch)``.

    Each epoch: set the lr from ``stop.lr(epoch)``, one pass of seeded mini-batches, then
    ``evaluate(model)`` (in eval mode, no grad) gives the epoch's metrics and ``stop.update`` says
    whether to stop. The model returned carries the state of ``stop.best_epoch``."""
    n = int(train[0].shape[0])
    if n == 0:
        raise ValueError("no training samples")
    gen = torch.Generator().manual_seed(int(seed))
    states: dict[int, dict] = {}
    rows = []
    t0 = time.perf_counter()
    epoch = -1
    for epoch in range(max_epochs):
        lr = stop.lr(epoch)
        for g in optimizer.param_groups:
            g["lr"] = lr
        model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            batch = tuple(t[idx] for t in train)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch} (lr {lr:g})")
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in evaluate(model).items()}
        rows.append({"epoch": epoch, "lr": lr, "train_loss": total / n, **metrics})
        done = stop.update(epoch, metrics)
        keep = stop.candidates()
        if epoch in keep:
            states[epoch] = copy.deepcopy(model.state_dict())
        for e in list(states):
            if e not in keep:
                del states[e]
        if done:
            break
    best = stop.best_epoch if stop.best_epoch is not None else epoch
    if best in states:
        model.load_state_dict(states[best])
    else:  # the rule named no kept epoch (a metric was never finite): the last one is put forward
        best = epoch
    model.eval()
    return FitResult(model, pd.DataFrame(rows), int(best), stop.stop_reason or "max_epochs", epoch + 1,
                     time.perf_counter() - t0)


CLIP_Z = 5.0   # z-scores are clipped at ± this many training standard deviations (see zscore)


def standardize(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the training features (std 1 where constant): every head sees z-scores."""
    mu = X_train.mean(axis=0)
    sd = X_train.std(axis=0)
    return mu.astype(np.float32), np.where(sd > 1e-8, sd, 1.0).astype(np.float32)


def zscore(X: np.ndarray, mu: np.ndarray, sd: np.ndarray, clip: float | None = CLIP_Z) -> np.ndarray:
    """(X − mean) / std of the training side, clipped at ± ``clip``. None of the papers standardise
    (their heads sit on raw activations); on small data a feature that is nearly constant on the
    training side (a blendshape almost never active) otherwise turns one test image into a z-score of
    90 and a 3000-wide network extrapolates wildly (Deep Affect on the demo: a fold MSE of 13 against
    3 for the others)."""
    Z = (np.asarray(X, np.float32) - mu) / sd
    return np.clip(Z, -clip, clip) if clip else Z


def tensor(x, dtype=torch.float32, device: str | torch.device = "cpu") -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)
