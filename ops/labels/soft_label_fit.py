"""Training pieces of AffectNet+ soft labels on cached features (§3.2, §3.3, §4.1, §4.2): the
specification, the per-classifier training sample (positives + §3.2 negatives), the Adam loop, and
the test-MAS evaluation of one binary classifier (Eq. 3). Used by :mod:`ops.labels.soft_labels`.

Choices where the paper is silent or ambiguous (all are :class:`SoftLabelSpec` fields):

* Number of negatives. §3.2: choosing "all the images labeled as desired facial expressions as
  positive and the rest as negative samples [results] in an imbalanced training set, and
  accordingly a biased classifier. Thus, we proposed a novel positive-negative selection strategy";
  the negatives' *composition* is given (20 % random, the rest by shared AUs), their *number* is
  not. Default: as many negatives as positives (``negatives_per_positive = 1.0``, a balanced
  training set, the imbalance §3.2 wants to avoid), capped at the train-MAS faces of the other
  emotions. The draw is made once per classifier (seeded), not per epoch.
* ``decay`` (§4.1: 1e-5, §4.2: 1e-6) is read as Keras' optimizer argument of the time (the paper
  used TensorFlow): a learning-rate decay lr_t = lr / (1 + decay · t) per update t, not a weight
  decay (``weight_decay`` exists separately, default 0).
* Epochs and lr on features. The paper fine-tunes CNNs on images (EBC: 25 epochs, lr 1e-3; AU: 40
  epochs, lr 1e-4; batch 50). Those stay the defaults (:data:`PAPER_EBC_TRAINING`,
  :data:`PAPER_AU_TRAINING`). A head on cached, standardized features of a few hundred train-MAS
  faces gets only ~3 updates per epoch, and at these rates it barely leaves its initialization:
  on the synthetic world of tests/test_soft_labels.py (60 train faces per emotion, seed 0) the AU
  models at lr 1e-4 reach a test-MAS balanced accuracy of 0.55 (top-1 of SC_AU alone 0.19, chance
  0.125), at 1e-2 0.92 (top-1 0.83); the EBC heads 0.74 at lr 1e-3 vs 0.89 at 1e-2; the soft
  label's top-1 0.37 with the paper's rates vs 0.875. :data:`FEATURE_SPEC` (both at lr 1e-2, the
  paper's epochs, batch and decay) is what the tests and the demo need. With more faces there are
  more updates per epoch and the paper's rates come closer: at 625 train faces per emotion the
  soft label's top-1 is 0.88 with the paper's rates vs 0.93 with FEATURE_SPEC, but the AU models
  still lag (balanced accuracy 0.81 vs 0.97).
* Features are standardized with the mean and standard deviation of the backbone's train-MAS faces
  (as ops.training.classifier does); the 8 heads of a backbone share them.
* No early stopping by default (the paper trains a fixed number of epochs); ``val_fraction > 0``
  holds out a stratified part of each classifier's training sample and keeps the best epoch.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from ops.labels.affectnet_plus import EMOTIONS, confidence_score, emotion_index
from ops.labels.affectnet_plus_sets import _maybe_index, sample_negatives
from ops.training.holdout import holdout_mask


@dataclass(frozen=True)
class TrainSpec:
    """How one family of heads is trained (§4.1 for the EBC, §4.2 for the AU models): Adam with
    β = (0.9, 0.999), Keras-style lr decay per update, mini-batches, a fixed number of epochs."""

    epochs: int = 25
    lr: float = 1e-3
    lr_decay: float = 1e-5          # §4.1 "decay = 1e-5": lr / (1 + decay · iteration)
    batch_size: int = 50
    weight_decay: float = 0.0       # not in the paper
    head: Literal["linear", "mlp"] = "linear"  # EBC head on the features (AU models: hidden below)
    hidden: tuple[int, ...] = ()    # mlp widths (EBC); AU models: at most one shared layer
    dropout: float = 0.0
    val_fraction: float = 0.0       # > 0: early stopping on a stratified part of the training sample
    patience: int = 10


PAPER_EBC_TRAINING = TrainSpec()                                                  # §4.1
PAPER_AU_TRAINING = TrainSpec(epochs=40, lr=1e-4, lr_decay=1e-6)                  # §4.2
FEATURE_EBC_TRAINING = TrainSpec(epochs=25, lr=1e-2, lr_decay=1e-5)               # heads on features
FEATURE_AU_TRAINING = TrainSpec(epochs=40, lr=1e-2, lr_decay=1e-6)                # heads on features


@dataclass(frozen=True)
class SoftLabelSpec:
    """Everything that shapes the soft labels (§3.2-3.4), JSON-able via :meth:`to_dict`."""

    ebc: TrainSpec = field(default_factory=lambda: PAPER_EBC_TRAINING)
    au: TrainSpec = field(default_factory=lambda: PAPER_AU_TRAINING)
    negatives_per_positive: float = 1.0   # §3.2 number of negatives (see the module docstring)
    random_share: float = 0.2             # §3.2: "we always chose 20% of the negative samples randomly"
    shared: Literal["derived", "printed"] = "derived"   # Table 3 (derived from Table 2 by default)
    aus: Literal["derived", "printed"] = "derived"      # Eq. 8 AU scores
    sim_neutral: float = 0.25             # Eq. 9 hyper-parameter
    au_weight: float = 1.0                # §3.3 loss = au_weight · Eq. 7 + bpv_weight · binary CE
    bpv_weight: float = 1.0
    cs_variant: Literal["printed", "balanced_accuracy"] = "printed"  # Eq. 3 (see affectnet_plus)
    cs_fallback: float | None = None      # CS of a classifier without test positives or negatives
    threshold: float = 0.5                # P(emo_i) >= threshold is a positive prediction (Eq. 3 counts)
    seed: int = 0
    torch_threads: int | None = 1         # intra-op threads while training (None: leave torch's setting)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON) of the spec."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SoftLabelSpec:
        """Inverse of :meth:`to_dict`; nested training specs as dicts, unknown keys rejected."""
        d = dict(d)
        for k in ("ebc", "au"):
            if isinstance(d.get(k), dict):
                t = dict(d[k])
                t["hidden"] = tuple(t.get("hidden", ()))
                d[k] = TrainSpec(**t)
        return cls(**d)

    def with_(self, **changes: Any) -> SoftLabelSpec:
        """A copy with some fields changed (``spec.with_(au=FEATURE_AU_TRAINING)``)."""
        return replace(self, **changes)


FEATURE_SPEC = SoftLabelSpec(ebc=FEATURE_EBC_TRAINING, au=FEATURE_AU_TRAINING)  # §4.1/§4.2 rates for heads on features


@contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` torch intra-op threads, restored afterwards (§4.1/§4.2 training of small
    heads: a batch of 50 × d features is too small to split; on this 2-core machine, shared, an
    Adam step of a 32-d linear head, batch 50, took 2.7 ms with 2 threads vs 0.35 ms with 1)."""
    old = torch.get_num_threads()
    if n is not None and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def sub_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed for one classifier (§3.2/§3.3 sampling and init), from the spec's seed and names,
    so that a classifier's randomness does not depend on the order in which classifiers are trained."""
    h = hashlib.sha256("\x1f".join(str(p) for p in (seed, *parts)).encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


# ---- §3.1 inputs: labels and the train-MAS / test-MAS split ----------------------------------------

@dataclass(frozen=True)
class MASData:
    """Labels (Eq. 1 index, -1 without one), split masks and ids of the N faces (§3.1)."""

    label: np.ndarray     # (N,) int, -1: no hard label / not an AffectNet-8 emotion
    train: np.ndarray     # (N,) bool: train-MAS with a label
    test: np.ndarray      # (N,) bool: test-MAS with a label
    ids: np.ndarray       # (N,) str, orders every random draw
    rank: np.ndarray      # (N,) int, position of each face in id order

    @classmethod
    def build(cls, hard_labels: Any, split: Any, ids: Any = None) -> MASData:
        """§3.1: ``split`` "train" = train-MAS, "test" = test-MAS, anything else (None, "excluded",
        e.g. split_mas's pulled_by_group non-candidates) is used by neither; faces without an
        AffectNet-8 hard label are used by neither."""
        lab_raw = np.asarray(hard_labels, dtype=object)
        sp = np.asarray(split, dtype=object)
        if lab_raw.ndim != 1 or sp.shape != lab_raw.shape:
            raise ValueError(f"hard_labels {lab_raw.shape} and split {sp.shape} must be two (N,) arrays")
        lab = np.array([-1 if np.isnan(x := _maybe_index(v)) else int(x) for v in lab_raw], dtype=int)
        ids_ = np.arange(len(lab)).astype(str) if ids is None else np.asarray(ids).astype(str)
        if ids_.shape != lab.shape or len(set(ids_.tolist())) != len(ids_):
            raise ValueError("ids must be N unique values")
        has = lab >= 0
        order = np.argsort(ids_, kind="stable")
        rank = np.empty(len(lab), dtype=int)
        rank[order] = np.arange(len(lab))
        return cls(lab, has & (sp == "train"), has & (sp == "test"), ids_, rank)


def training_sample(mas: MASData, target: int, spec: SoftLabelSpec, seed: int) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """§3.2 (and §3.3, "We followed the approach described in Sec. 3.2"): the rows one one-vs-rest
    classifier trains on: every train-MAS face of ``target`` (positives) and
    round(negatives_per_positive · positives) negatives (capped at what exists) drawn by
    :func:`sample_negatives` (20 % uniform over the other emotions, the rest by shared AUs,
    Table 3). Returns (rows in id order, is_positive per row, negatives per other emotion)."""
    t = emotion_index(target)
    tr = np.flatnonzero(mas.train)
    pos = tr[mas.label[tr] == t]
    if len(pos) == 0:
        raise ValueError(f"no train-MAS face labelled {EMOTIONS[t]}: its one-vs-rest classifier cannot be trained")
    others = tr[mas.label[tr] != t]
    n_neg = min(round(spec.negatives_per_positive * len(pos)), len(others))
    labels = pd.Series([EMOTIONS[i] for i in mas.label[others]], index=mas.ids[others])
    drawn = sample_negatives(t, n_neg, labels, seed=seed, random_share=spec.random_share, shared=spec.shared)
    where = dict(zip(mas.ids[others], others))
    neg = np.array([where[i] for i in drawn["item_id"]], dtype=int)
    rows = np.concatenate([pos, neg])
    rows = rows[np.argsort(mas.rank[rows], kind="stable")]
    counts = drawn.groupby("emotion", sort=False).size().reindex([e for e in EMOTIONS if e != EMOTIONS[t]], fill_value=0)
    return rows, mas.label[rows] == t, counts


# ---- §4.1 / §4.2: the training loop -----------------------------------------------------------------

def fit_head(model: nn.Module, n_rows: int, batch_loss: Callable[[nn.Module, torch.Tensor], torch.Tensor],
             ts: TrainSpec, seed: int, strata: np.ndarray | None = None, ids: np.ndarray | None = None) -> pd.DataFrame:
    """§4.1/§4.2 training of one head on ``n_rows`` samples: Adam (β 0.9/0.999, ``ts.lr``), lr decay
    lr/(1 + decay·t) per update, mini-batches of ``ts.batch_size`` shuffled by a seeded generator,
    ``ts.epochs`` epochs. ``batch_loss(model, local_indices)`` returns the loss of those samples.
    With ``ts.val_fraction > 0`` a stratified (``strata``) part of the samples is held out and the best
    epoch by validation loss is kept. The global torch RNG is untouched (dropout is seeded).
    Returns the learning curve (epoch, train_loss, val_loss)."""
    val_mask = np.zeros(n_rows, dtype=bool)
    if ts.val_fraction > 0 and n_rows >= 4:
        val_mask = holdout_mask(list(ids if ids is not None else np.arange(n_rows).astype(str)),
                                None if strata is None else list(strata), ts.val_fraction, seed=seed)
    fit_idx = torch.from_numpy(np.flatnonzero(~val_mask))
    val_idx = torch.from_numpy(np.flatnonzero(val_mask))
    rows, best = [], (np.inf, None, -1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=ts.lr, betas=(0.9, 0.999), weight_decay=ts.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1.0 + ts.lr_decay * t))
        for epoch in range(ts.epochs):
            model.train()
            perm = fit_idx[torch.randperm(len(fit_idx), generator=g)]
            total = 0.0
            for i in range(0, len(perm), ts.batch_size):
                b = perm[i:i + ts.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = batch_loss(model, b)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
            vloss = float("nan")
            if len(val_idx):
                model.eval()
                with torch.inference_mode():
                    vloss = float(batch_loss(model, val_idx)) / len(val_idx)
                if vloss < best[0] - 1e-9:
                    best = (vloss, {k: v.clone() for k, v in model.state_dict().items()}, epoch)
            rows.append({"epoch": epoch, "train_loss": total / max(1, len(fit_idx)), "val_loss": vloss})
            if len(val_idx) and epoch - best[2] >= ts.patience:
                break
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    return pd.DataFrame(rows, columns=["epoch", "train_loss", "val_loss"])


# ---- §3.2 Eq. 3 on test-MAS -------------------------------------------------------------------------

BINARY_METRICS = ("n_test_positive", "n_test_negative", "tp", "fp", "tn", "fn", "acc",
                  "cs_printed", "cs_balanced_accuracy", "cs_defined")


def binary_evaluation(p_pos: np.ndarray, is_pos: np.ndarray, threshold: float) -> dict[str, float]:
    """§3.2 / §4.1 Test: one one-vs-rest classifier on test-MAS (positives: its emotion's test faces,
    negatives: all other test faces). A face is predicted positive when P(emo_i) >= threshold (for a
    2-element [own, rest] vector at 0.5 this is argmax with ties to "own"). Returns the counts, Acc
    (Tables 6-7), Eq. 3 as printed and as balanced accuracy (what Tables 4, 6, 7 report), and
    cs_defined = 0 when test-MAS has no positive or no negative for this emotion (Eq. 3 undefined)."""
    pred = np.asarray(p_pos, dtype=float) >= threshold
    t = np.asarray(is_pos, dtype=bool)
    tp, fp, tn, fn = (int(x) for x in ((t & pred).sum(), (~t & pred).sum(), (~t & ~pred).sum(), (t & ~pred).sum()))
    n = tp + fp + tn + fn
    return {"n_test_positive": tp + fn, "n_test_negative": tn + fp, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "acc": (tp + tn) / n if n else float("nan"),
            "cs_printed": float(confidence_score(tp, fp, tn, fn, "printed")),
            "cs_balanced_accuracy": float(confidence_score(tp, fp, tn, fn, "balanced_accuracy")),
            "cs_defined": float(tp + fn > 0 and tn + fp > 0)}


def confidence_scores(evals: list[dict[str, float]], spec: SoftLabelSpec) -> np.ndarray:
    """Eq. 3 CS of the 8 classifiers of one model (Eq. 1 order), as used in Eq. 4/5/13: the spec's
    variant where defined; where test-MAS lacks the emotion's positives (or has no negatives), CS is
    undefined and becomes ``spec.cs_fallback``, or by default the mean CS of the same model's defined
    classifiers (1.0 when none is defined, e.g. no test-MAS at all: then CS scales nothing)."""
    cs = np.array([e[f"cs_{spec.cs_variant}"] for e in evals], dtype=float)
    ok = np.array([e["cs_defined"] > 0 for e in evals])
    fb = spec.cs_fallback if spec.cs_fallback is not None else (float(cs[ok].mean()) if ok.any() else 1.0)
    return np.where(ok, cs, fb)


def evaluation_rows(classifier: str, model: str, evals: list[dict[str, float]], cs: np.ndarray,
                    train_counts: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Long rows (classifier, model, emotion, metric, value) of Tables 4, 6, 7 for one model's 8
    classifiers: training sample sizes, test-MAS counts, Acc, both Eq. 3 readings, and ``cs`` (the
    value Eq. 4/13 use, fallback applied)."""
    out = []
    for i, emo in enumerate(EMOTIONS):
        vals = {**({"n_train_positive": train_counts[i][0], "n_train_negative": train_counts[i][1]} if train_counts else {}),
                **evals[i], "cs": float(cs[i])}
        out += [{"classifier": classifier, "model": model, "emotion": emo, "metric": k, "value": float(v)}
                for k, v in vals.items()]
    return out


DESCRIBE_COLUMNS = ("classifier", "model", "emotion", "metric", "value")


# ---- shared by the EBC and AU models (ops.labels.soft_labels) ---------------------------------------

def standardizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """§4.1 on features: mean and std (+1e-6) of the train-MAS faces, float32 (ops.training.classifier)."""
    X = np.asarray(X)
    mean = X.mean(axis=0, dtype=np.float64)
    std = X.std(axis=0, dtype=np.float64) + 1e-6
    return mean.astype(np.float32), std.astype(np.float32)


def standardized_rows(X: np.ndarray, rows: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """Standardized float32 tensor of some rows (§4.1 training inputs)."""
    return torch.from_numpy(((np.asarray(X[rows], dtype=np.float32) - mean) / std).astype(np.float32))


def check_features(X: Any, dim: int, name: str) -> np.ndarray:
    """A (N, dim) feature matrix (no copy)."""
    X = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if X.ndim != 2 or X.shape[1] != dim:
        raise ValueError(f"features of {name!r} must be (N, {dim}), got {X.shape}")
    return X


def stacked_linear(layers: Sequence[nn.Linear], std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inference fast path (§3.2/§3.3 heads are linear by default): the layers' weights stacked and
    divided by the feature std, so that out = (x - mean) @ W + b in one matmul per chunk."""
    w = torch.cat([l.weight.detach() for l in layers]).numpy().astype(np.float32)
    b = torch.cat([l.bias.detach() for l in layers]).numpy().astype(np.float32)
    return np.ascontiguousarray((w / std[None, :]).T), b


def row_chunks(n: int, size: int):
    """Row ranges of the inference chunks (Eq. 5-14 are row-wise: chunks bound memory, not results)."""
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def save_payload(payload: dict[str, Any]) -> bytes:
    """torch.save of tensors and a JSON meta string: loadable with weights_only=True, same model -> same bytes."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def load_payload(data: bytes, fmt: str) -> dict[str, Any]:
    """Inverse of :func:`save_payload`, checking the format tag."""
    d = torch.load(io.BytesIO(data), weights_only=True)
    if d.get("format") != fmt:
        raise ValueError(f"not a {fmt} payload (format {d.get('format')!r})")
    return d


def frame(records: list[dict], columns: Sequence[str]) -> pd.DataFrame:
    """A long table (Tables 4, 6, 7 rows, §3.2 negatives, §4.1/§4.2 curves) with fixed columns, even when empty."""
    return pd.DataFrame(records, columns=list(columns))


CURVE_COLUMNS = ("classifier", "model", "emotion", "epoch", "train_loss", "val_loss")
NEGATIVE_COLUMNS = ("emotion", "negative_emotion", "n_negatives")
