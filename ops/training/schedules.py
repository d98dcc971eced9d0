"""Learning-rate rules and stopping criteria of the seed papers (plain Python; torch only in adapters).

FindingEmo §3 Eq. 2 (Adam with PyTorch defaults otherwise):

    lr_e = lr_0 / sqrt(e // 3 + 1)

The extracted text prints "(e/3)", but the sentence after the equation says "By virtue of the floor
division (//), this means we update the learning rate once every 3 epochs": the printed operator is
``//`` (epochs 0-based: epochs 0–2 run at lr_0, 3–5 at lr_0/√2, 6–8 at lr_0/√3, …).

FindingEmo §3 early stopping: "Training stopped when either the epoch with the best loss or the best
W.F1 score on the test set lies 6 epochs behind the current epoch, or 250 epochs were reached, with the
corresponding best model put forward" — ``EarlyStopping``.

Deep Affect §2.3: SGD (momentum 0.9) from lr 4e-4; "until the MSE no longer diminished over four
epochs at which point the learning rate was reduced by a factor of 0.1 to a minimum learning rate of
0.000006. If the error did not decrease over six consecutive epochs, training was terminated, and the
model with the lowest total loss function was accepted" — ``DeepAffectPlateau``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

# ---- FindingEmo §3 Eq. 2 ------------------------------------------------------------------------

FINDINGEMO_LR0 = (0.1, 0.01, 0.001, 0.0001)  # FindingEmo §3: starting learning rates tried
FINDINGEMO_MAX_EPOCHS = 250                   # FindingEmo §3
FINDINGEMO_PATIENCE = 6                       # FindingEmo §3


def findingemo_lr_factor(epoch: int) -> float:
    """FindingEmo §3 Eq. 2 as a multiplier of lr_0: 1 / sqrt(epoch // 3 + 1) (epoch 0-based)."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return 1.0 / math.sqrt(epoch // 3 + 1)


def findingemo_lr(epoch: int, lr0: float) -> float:
    """FindingEmo §3 Eq. 2: lr_e = lr_0 / sqrt(e // 3 + 1)."""
    return lr0 * findingemo_lr_factor(epoch)


def findingemo_scheduler(optimizer):
    """FindingEmo §3 Eq. 2 as a torch scheduler: ``LambdaLR`` with the Eq. 2 factor.

    The optimiser's initial lr is lr_0; call ``scheduler.step()`` once at the end of every epoch, so
    that epoch e trains at lr_e.
    """
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lr_lambda=findingemo_lr_factor)


# ---- FindingEmo §3 early stopping ---------------------------------------------------------------

@dataclass
class EarlyStopping:
    """FindingEmo §3: stop when the best epoch of any monitored metric lies ``patience`` epochs behind.

    ``monitors`` maps a metric name to "min" or "max" (default: loss ↓ and wf1 ↑). ``update`` is
    called once per epoch (0-based) and returns True when training must stop; then ``stop_reason``
    is "patience:<metric>" or "max_epochs", and ``best_epoch`` the epoch of the model to put forward:
    the best epoch of the metric that triggered the stop ("the corresponding best model"). When
    ``max_epochs`` is reached the paper does not say which best model is meant; ``select_on_max``
    names the metric used then (default wf1, the reported score).

    "lies 6 epochs behind": current epoch − best epoch ≥ patience (best at 3 → stop at 9). A value
    must beat the best by more than ``min_delta`` to count as better (a tie is no improvement). A
    metric given as None (or NaN) for an epoch is skipped for that epoch.
    """

    patience: int = FINDINGEMO_PATIENCE
    max_epochs: int = FINDINGEMO_MAX_EPOCHS
    monitors: Mapping[str, str] = field(default_factory=lambda: {"loss": "min", "wf1": "max"})
    min_delta: float = 0.0
    select_on_max: str | None = "wf1"
    best: dict = field(default_factory=dict, init=False)
    best_epochs: dict = field(default_factory=dict, init=False)
    stopped: bool = field(default=False, init=False)
    stop_reason: str | None = field(default=None, init=False)
    stop_epoch: int | None = field(default=None, init=False)
    best_epoch: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        """Validate the monitors (FindingEmo §3: loss minimised, weighted F1 maximised)."""
        bad = {k: v for k, v in self.monitors.items() if v not in ("min", "max")}
        if bad or not self.monitors:
            raise ValueError(f"monitors must map names to 'min' or 'max', got {dict(self.monitors)}")
        if self.select_on_max is not None and self.select_on_max not in self.monitors:
            self.select_on_max = next(iter(self.monitors))

    def _better(self, name: str, value: float) -> bool:
        """Strict improvement by more than ``min_delta`` in the monitor's direction (FindingEmo §3)."""
        if name not in self.best:
            return True
        if self.monitors[name] == "min":
            return value < self.best[name] - self.min_delta
        return value > self.best[name] + self.min_delta

    def update(self, epoch: int, loss: float | None = None, wf1: float | None = None, **metrics) -> bool:
        """FindingEmo §3: record epoch ``epoch``'s metrics; True when training must stop."""
        if self.stopped:
            return True
        values = {"loss": loss, "wf1": wf1, **metrics}
        for name in self.monitors:
            v = values.get(name)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            if self._better(name, float(v)):
                self.best[name], self.best_epochs[name] = float(v), epoch
        for name in self.monitors:
            if name in self.best_epochs and epoch - self.best_epochs[name] >= self.patience:
                return self._stop(epoch, f"patience:{name}", self.best_epochs[name])
        if epoch + 1 >= self.max_epochs:
            sel = self.best_epochs.get(self.select_on_max) if self.select_on_max else None
            return self._stop(epoch, "max_epochs", sel)
        return False

    def _stop(self, epoch: int, reason: str, best_epoch: int | None) -> bool:
        """Record why and where training stopped (FindingEmo §3)."""
        self.stopped, self.stop_reason, self.stop_epoch, self.best_epoch = True, reason, epoch, best_epoch
        return True


# ---- Deep Affect §2.3 plateau schedule ---------------------------------------------------------

DEEP_AFFECT_LR0 = 4e-4        # Deep Affect §2.3
DEEP_AFFECT_MOMENTUM = 0.9    # Deep Affect §2.3
DEEP_AFFECT_BATCH_SIZE = 25   # Deep Affect §2.3
DEEP_AFFECT_MIN_LR = 6e-6     # Deep Affect §2.3


@dataclass
class DeepAffectPlateau:
    """Deep Affect §2.3: lr × ``factor`` after ``patience`` epochs without a lower loss, floor ``min_lr``;
    stop after ``stop_patience`` epochs without a lower loss; keep the lowest-loss model.

    Reading (the paper used Keras): the two counters are independent, as with Keras's
    ReduceLROnPlateau(patience=4) and EarlyStopping(patience=6) side by side. Both count epochs since
    the last improvement; the lr counter restarts after each reduction, the stop counter does not.
    So after a reduction at the 4th flat epoch, the model has 2 epochs to improve before stopping.
    The loss monitored is the one passed in (the paper says "the MSE"; which split is unstated).
    With lr0 = 4e-4 the sequence is 4e-4, 4e-5, then 6e-6 (4e-6 clamped to the floor).
    """

    lr0: float = DEEP_AFFECT_LR0
    factor: float = 0.1
    patience: int = 4
    min_lr: float = DEEP_AFFECT_MIN_LR
    stop_patience: int = 6
    min_delta: float = 0.0
    lr: float = field(default=0.0, init=False)
    best: float = field(default=math.inf, init=False)
    best_epoch: int | None = field(default=None, init=False)
    epoch: int = field(default=-1, init=False)
    wait_lr: int = field(default=0, init=False)
    wait_stop: int = field(default=0, init=False)
    stopped: bool = field(default=False, init=False)
    stop_reason: str | None = field(default=None, init=False)
    history: list = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        """Start at lr0 (Deep Affect §2.3: 0.0004)."""
        self.lr = float(self.lr0)

    def step(self, loss: float) -> bool:
        """Deep Affect §2.3: record one epoch's loss, update the lr; True when training must stop."""
        self.epoch += 1
        self.history.append((self.epoch, float(loss), self.lr))
        if self.stopped:
            return True
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch = float(loss), self.epoch
            self.wait_lr = self.wait_stop = 0
            return False
        self.wait_lr += 1
        self.wait_stop += 1
        if self.wait_stop >= self.stop_patience:
            self.stopped, self.stop_reason = True, f"no lower loss for {self.stop_patience} epochs"
            return True
        if self.wait_lr >= self.patience and self.lr > self.min_lr:
            self.lr = max(self.lr * self.factor, self.min_lr)
            self.wait_lr = 0
        return False

    def apply(self, optimizer) -> None:
        """Write the current lr into a torch optimiser's parameter groups (Deep Affect §2.3)."""
        for group in optimizer.param_groups:
            group["lr"] = self.lr


def deep_affect_optimizer(params, lr: float = DEEP_AFFECT_LR0, momentum: float = DEEP_AFFECT_MOMENTUM):
    """Deep Affect §2.3: SGD with momentum 0.9 from lr 0.0004."""
    import torch

    return torch.optim.SGD(params, lr=lr, momentum=momentum)


__all__ = [
    "DEEP_AFFECT_BATCH_SIZE", "DEEP_AFFECT_LR0", "DEEP_AFFECT_MIN_LR", "DEEP_AFFECT_MOMENTUM", "DeepAffectPlateau",
    "EarlyStopping", "FINDINGEMO_LR0", "FINDINGEMO_MAX_EPOCHS", "FINDINGEMO_PATIENCE", "deep_affect_optimizer",
    "findingemo_lr", "findingemo_lr_factor", "findingemo_scheduler",
]
