"""FindingEmo §3 classification tasks, their class distances (§A.7), and V/A rescaling (Deep Affect §2.1).

Tasks (FindingEmo §3):
    Emo8      the 8 Plutchik leaves in wheel order: Joy, Trust, Fear, Surprise, Sadness, Disgust,
              Anger, Anticipation (taken from ``ops.annotations.taxonomy``, not retyped);
    Arousal3  arousal 0–6 binned [0, 1] Low, [2, 3, 4] Medium, [5, 6] High;
    Valence3  valence −3..3 binned [−3, −2] Negative, [−1, 0, 1] Neutral, [2, 3] Positive.
(The paper's Valence3 bullet says "the -3-3 range of arousal annotations": a typo for valence.)

Distances (FindingEmo §A.7): Emo8 = shortest number of leaves between two emotions on the wheel
(joy–surprise 3, joy–anger 2; the taxonomy's circular leaf distance); Arousal3/Valence3 = number of
steps between the ordered classes (Low–High 2).

Binning non-integer values: the paper's bins are sets of integers (single annotations). An aggregated
value (a mean over annotators) falls between them; we cut halfway between the bins: arousal < 1.5 Low,
> 4.5 High; valence < −1.5 Negative, > 1.5 Positive; a value exactly on a cut goes to the middle class.
``strict=True`` refuses non-integers instead.

Deep Affect §2.1 normalised every dataset's ratings "to be within the range of 1 to 9". Mapping the
scale's end points (not the data's min/max) affinely: x' = 1 + 8 (x − lo) / (hi − lo). For FindingEmo
valence −3..3: v' = 1 + 4 (v + 3) / 3 = (4v + 15) / 3 (−3 → 1, 0 → 5, 3 → 9); arousal 0..6:
a' = 1 + 4a / 3 (0 → 1, 3 → 5, 6 → 9). One scale step becomes 4/3.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ops.annotations.taxonomy import EMO8, PLUTCHIK24

AROUSAL_RANGE = (0.0, 6.0)    # FindingEmo §2.1
VALENCE_RANGE = (-3.0, 3.0)   # FindingEmo §2.1
DEEP_AFFECT_RANGE = (1.0, 9.0)  # Deep Affect §2.1

AROUSAL3_CLASSES = ("Low", "Medium", "High")            # FindingEmo §3, §A.7 order
VALENCE3_CLASSES = ("Negative", "Neutral", "Positive")  # FindingEmo §3


def _check_value(x: float, lo: float, hi: float, strict: bool, what: str) -> float:
    """Validate a rating against its FindingEmo §2.1 scale (and integrality when ``strict``)."""
    x = float(x)
    if math.isnan(x) or x < lo or x > hi:
        raise ValueError(f"{what} {x} outside its scale [{lo:g}, {hi:g}]")
    if strict and x != round(x):
        raise ValueError(f"{what} {x} is not an integer annotation (strict binning)")
    return x


def arousal3(a: float, strict: bool = False) -> int:
    """FindingEmo §3 Arousal3: [0, 1] → 0 Low, [2, 3, 4] → 1 Medium, [5, 6] → 2 High."""
    a = _check_value(a, *AROUSAL_RANGE, strict, "arousal")
    return 0 if a < 1.5 else (2 if a > 4.5 else 1)


def valence3(v: float, strict: bool = False) -> int:
    """FindingEmo §3 Valence3: [−3, −2] → 0 Negative, [−1, 0, 1] → 1 Neutral, [2, 3] → 2 Positive."""
    v = _check_value(v, *VALENCE_RANGE, strict, "valence")
    return 0 if v < -1.5 else (2 if v > 1.5 else 1)


def emo8_index(label: str) -> int:
    """FindingEmo §3 Emo8: wheel-order index of an Emo8 leaf, or of an Emo24 emotion's leaf (§2.1)."""
    leaf = EMO8.normalize(label)
    if leaf is None:
        e24 = PLUTCHIK24.normalize(label)
        if e24 is None:
            raise ValueError(f"not a Plutchik emotion: {label!r}")
        leaf = PLUTCHIK24.to_parent(e24)
    return EMO8.labels.index(leaf)


def step_distances(n: int) -> np.ndarray:
    """FindingEmo §A.7: distance between ordered classes = number of steps, |i − j|."""
    idx = np.arange(n)
    return np.abs(idx[:, None] - idx[None, :]).astype(float)


def emo8_distances() -> np.ndarray:
    """FindingEmo §A.7: shortest number of leaves between Emo8 emotions on Plutchik's wheel (0..4)."""
    labels = EMO8.labels
    return np.array([[EMO8.distance(a, b) for b in labels] for a in labels], dtype=float)


@dataclass(frozen=True)
class ClassificationTask:
    """One FindingEmo §3 task: class names in order, the §A.7 distances, the column it is built from."""

    name: str
    classes: tuple[str, ...]
    source_column: str
    to_class: Callable[[object], int]
    distance_fn: Callable[[], np.ndarray]

    @property
    def n_classes(self) -> int:
        """Number of target classes (FindingEmo §3: 8, 3, 3)."""
        return len(self.classes)

    def distances(self) -> np.ndarray:
        """The FindingEmo §A.7 distance matrix d_{i,j} (rows true class, columns predicted class)."""
        return self.distance_fn()

    def encode(self, values: Iterable[object]) -> np.ndarray:
        """FindingEmo §3: class indices (int64) for raw values (emotion names or V/A ratings)."""
        return np.array([self.to_class(v) for v in values], dtype=np.int64)

    def class_counts(self, targets: Sequence[int]) -> np.ndarray:
        """Samples per class N_i (FindingEmo §A.7 Eq. 3), zero for absent classes."""
        return np.bincount(np.asarray(targets, dtype=np.int64), minlength=self.n_classes)


EMO8_TASK = ClassificationTask("emo8", tuple(EMO8.labels), "emotion8", emo8_index, emo8_distances)
AROUSAL3_TASK = ClassificationTask("arousal3", AROUSAL3_CLASSES, "arousal", arousal3, lambda: step_distances(3))
VALENCE3_TASK = ClassificationTask("valence3", VALENCE3_CLASSES, "valence", valence3, lambda: step_distances(3))
TASKS = {t.name: t for t in (EMO8_TASK, AROUSAL3_TASK, VALENCE3_TASK)}


def get_task(name: str | ClassificationTask) -> ClassificationTask:
    """A FindingEmo §3 task by name ("emo8", "arousal3", "valence3"; case-insensitive)."""
    if isinstance(name, ClassificationTask):
        return name
    try:
        return TASKS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}") from None


# ---- Deep Affect §2.1: ratings on 1–9 -----------------------------------------------------------

def rescale(x, lo: float, hi: float, new_lo: float = DEEP_AFFECT_RANGE[0], new_hi: float = DEEP_AFFECT_RANGE[1]):
    """Deep Affect §2.1: the affine map of the scale [lo, hi] onto [new_lo, new_hi] (default 1–9)."""
    return new_lo + (np.asarray(x, dtype=float) - lo) * (new_hi - new_lo) / (hi - lo)


def valence_to_1_9(v):
    """Deep Affect §2.1 on FindingEmo valence (−3..3): v' = 1 + 4 (v + 3) / 3."""
    return rescale(v, *VALENCE_RANGE)


def arousal_to_1_9(a):
    """Deep Affect §2.1 on FindingEmo arousal (0..6): a' = 1 + 4 a / 3."""
    return rescale(a, *AROUSAL_RANGE)


def valence_from_1_9(x):
    """Inverse of :func:`valence_to_1_9` (Deep Affect §2.1), back to FindingEmo's −3..3."""
    return rescale(x, *DEEP_AFFECT_RANGE, *VALENCE_RANGE)


def arousal_from_1_9(x):
    """Inverse of :func:`arousal_to_1_9` (Deep Affect §2.1), back to FindingEmo's 0..6."""
    return rescale(x, *DEEP_AFFECT_RANGE, *AROUSAL_RANGE)


__all__ = [
    "AROUSAL3_CLASSES", "AROUSAL3_TASK", "AROUSAL_RANGE", "ClassificationTask", "DEEP_AFFECT_RANGE", "EMO8_TASK",
    "TASKS", "VALENCE3_CLASSES", "VALENCE3_TASK", "VALENCE_RANGE", "arousal3", "arousal_from_1_9",
    "arousal_to_1_9", "emo8_distances", "emo8_index", "get_task", "rescale", "step_distances", "valence3",
    "valence_from_1_9", "valence_to_1_9",
]
