"""The model stages of a build as plain functions: backbones resolved (or the small one trained),
features read for labelled images, predictors trained once per (labels, config, code) and reused,
predictions for every image (FindingEmo §2.3.1 keep/reject CNN, §2.3.2 Emo8 predictor, §3 heads on
buffered activations).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from models.backbones import Backbone, create_backbone
from models.preprocess import Preprocess
from ops.training.classifier import HeadSpec, TrainedHead, train_classifier
from ops.training.holdout import holdout_mask
from ops.training.labels import training_key
from ops.training.reuse import LabelBudget, fit_or_reuse  # noqa: F401  (fit_or_reuse re-exported for the assets)

CODE_VERSION = "predictors-1"   # bump when training code changes results: trained models are retrained


@dataclass(frozen=True)
class BackboneChoice:
    """One configured backbone in plain values (``models.backbones[i]`` of the configuration)."""

    name: str
    weights: str
    input_size: int | None = None
    resize: str | None = None
    findingemo_letterbox: bool = False
    batch_size: int = 32
    device: str | None = None
    compile: bool = False


def preprocess_for(choice: BackboneChoice, default: Preprocess) -> Preprocess:
    """The backbone's own recipe, changed where the configuration says (size, resize policy,
    FindingEmo §3's 800 x 600 letterbox)."""
    if choice.findingemo_letterbox:
        return Preprocess.findingemo(mean=default.mean, std=default.std)
    pp = default
    if choice.resize == "letterbox" or (choice.resize is None and choice.input_size and default.resize == "letterbox"):
        size = choice.input_size or pp.size[0]
        pp = pp.replace(size=(size, size), resize="letterbox", resize_size=None)
    elif choice.input_size or choice.resize:
        size = choice.input_size or pp.size[0]
        resize = choice.resize or pp.resize
        pp = pp.replace(size=(size, size), resize=resize,
                        resize_size=None if resize == "stretch" else max(size, round(size * 8 / 7)))
    return pp


def load_backbone(choice: BackboneChoice, weights: str | Path) -> Backbone:
    """A configured backbone with its weights (a missing file raises the loader's precise error)."""
    probe = create_backbone(choice.name, weights="none", device="cpu")
    pp = preprocess_for(choice, probe.preprocess)
    dev = None if choice.device in (None, "auto") else choice.device
    bb = create_backbone(choice.name, weights=str(weights), preprocess=pp, device=dev)
    return bb.compile(choice.batch_size) if choice.compile else bb


def stratify_key(labels: pd.DataFrame, columns: list[str]) -> list[str]:
    """One stratum per image: the first label it has among ``columns``."""
    out = []
    for row in labels[columns].itertuples(index=False):
        out.append(next((f"{c}:{v}" for c, v in zip(columns, row) if isinstance(v, str)), "none"))
    return out


def train_head_task(task: str, labels: pd.DataFrame, classes: list[str], features: Callable[[list[str]], tuple[np.ndarray, np.ndarray]],
                    spec: HeadSpec, holdout_fraction: float, holdout_seed: int, extractor: str, backbone: str,
                    label_snapshot: str, config_fingerprint: str,
                    backbone_heldout: Mapping[str, bool] | None = None) -> tuple[bytes, dict, TrainedHead]:
    """Train a predictor head for ``task`` on the features of the labelled images (images without
    features are left out and counted).

    ``backbone_heldout``: when the features come from a backbone trained on this build's labels, the
    images it saw (sha256 -> held out by the backbone?, the labels stored beside it). The head still
    trains on its own stratified cut (:func:`ops.training.holdout.holdout_mask`, so the model and its
    predictions do not depend on this), but its metrics leave out the held-out images the backbone
    trained on: the backbone stratifies by affectnet8, emotion8, keep and the head by its own label,
    so the two hash cuts disagree on some images, and features fitted to an image's label would score
    it too well. ``holdout.sha256`` lists the images scored."""
    X, found = features(labels["sha256"].astype(str).tolist())
    lab = labels[found].reset_index(drop=True)
    X = X[found]
    if len(lab) < 4 or lab["label"].nunique() < 2:
        raise ValueError(f"{task}: {len(lab)} labelled images with features and {lab['label'].nunique()} classes; "
                         f"training needs at least 4 images of 2 classes")
    hold = holdout_mask(lab["sha256"].astype(str), lab["label"].astype(str), holdout_fraction, holdout_seed)
    scored = hold
    if backbone_heldout:
        seen_in_training = np.array([x in backbone_heldout and not backbone_heldout[x] for x in lab["sha256"].astype(str)])
        scored = hold & ~seen_in_training
    head = train_classifier(X, lab["label"].astype(str).tolist(), lab["sha256"].astype(str).tolist(), classes, spec, hold, scored)
    meta = {"backbone": backbone, "extractor": extractor, "label_snapshot": label_snapshot,
            "n_training_labels": int(len(lab)), "labels_without_features": int((~found).sum()),
            "config_fingerprint": config_fingerprint, "metrics": head.metrics, "classes": classes,
            "holdout": {"fraction": holdout_fraction, "seed": holdout_seed, "n": int(hold.sum()),
                        "not_scored_backbone_trained_on": int((hold & ~scored).sum()),
                        "sha256": lab.loc[scored, "sha256"].astype(str).tolist()},
            "curves": head.curves.to_dict("list")}
    return head.to_bytes(), meta, head


def predict_task(head: TrainedHead, shas: list[str], features: Callable[[list[str]], tuple[np.ndarray, np.ndarray]],
                 model_version: str, columns: list[str]) -> pd.DataFrame:
    """Class probabilities for every image with features: one row per image, one column per class
    (``columns`` names them), the argmax, and the model version."""
    X, found = features(shas)
    proba = head.predict_proba(X[found]) if found.any() else np.zeros((0, len(head.classes)))
    out = pd.DataFrame({"sha256": pd.array(np.asarray(shas, dtype=object)[found], dtype="string")})
    for j, c in enumerate(columns):
        out[c] = proba[:, j]
    out["predicted"] = pd.array([head.classes[i] for i in proba.argmax(axis=1)] if len(proba) else [], dtype="string")
    out["model_version"] = pd.array([model_version] * len(out), dtype="string")
    return out


def metrics_json(meta: dict[str, Any]) -> str:
    return json.dumps(meta.get("metrics", {}), sort_keys=True, default=str)


def head_label_budget(task: str, extractor: str, config_fingerprint: str, labels: pd.DataFrame,
                      holdout_fraction: float, holdout_seed: int, max_change: float) -> LabelBudget:
    """The label budget of a predictor head (ops/training/reuse.py): a stored head of the same task,
    extractor (backbone weights), configuration and code is kept while at most ``max_change`` of its
    training labels moved. ``labels`` (sha256, label) are the labelled images with features, the rows
    :func:`train_head_task` trains on; their held-out side is the same stratified cut it uses.

    Retraining a head from scratch for a handful of new labels moves many borderline decisions (which
    images are kept, the predicted Emo8 leaf) and with them every face, soft label and baseline
    downstream, so a refresh with 1 % new labels would cost most of a build. A kept head's metrics
    are the ones stored with it, over the held-out side of the labels stored beside it, so a hash
    cut that moved an image it trained on into today's holdout does not force training
    (``scored_on_current_holdout=False``)."""
    shas = labels["sha256"].astype(str).to_numpy()
    lab = labels["label"].astype(str).to_numpy()
    hold = holdout_mask(shas, lab, holdout_fraction, holdout_seed)
    return LabelBudget(training_key("head", task, extractor, config_fingerprint, CODE_VERSION),
                       pd.DataFrame({"sha256": shas, "label": lab, "heldout": hold}), max_change,
                       scored_on_current_holdout=False)


def predictor_key(task: str, extractor: str, label_snapshot: str, config_fingerprint: str) -> str:
    return training_key(task, extractor, label_snapshot, config_fingerprint, CODE_VERSION)
