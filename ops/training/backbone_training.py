"""A small CNN trained from scratch on the build's own labelled images (the demo's backbone).

No pretrained weights can be downloaded here, and a randomly initialized CNN gives features that a
head can barely use. So a build configured with ``weights: train`` first trains the small backbone
(``tiny_cnn``, ~100k parameters) from scratch, multi-task, on every acquired image that has a label:
keep/reject (FindingEmo §2.3.1), the Emo8 leaf (§2.1) and the AffectNet-8 expression (AffectNet+),
each loss counted only where its label exists. Held-out images (:mod:`ops.training.holdout`) are
never trained on. Its trunk's weights then become a weights file like any other, and the heads of
the keep/reject and Emo8 predictors are trained on the cached activations of this trunk
(FindingEmo §3 footnote 4), as they would be on a frozen ImageNet backbone.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from models.preprocess import Preprocess
from models.small_cnn import tiny_cnn


@dataclass(frozen=True)
class BackboneTrainingSpec:
    """``models.backbone_training`` of the configuration."""

    epochs: int = 14
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    seed: int = 0
    augment: bool = True       # random horizontal flip and shifted crops
    threads: int = 2


TASKS = ("keep", "emotion8", "affectnet8")


def _decode(path: Path, pre: Preprocess, pad: int) -> np.ndarray:
    """One image as uint8 (H + 2 pad, W + 2 pad, 3), resized by ``pre``'s geometry (draft JPEG decoding)."""
    with Image.open(path) as img:
        im = pre.resize_image(img)
    a = np.asarray(im, dtype=np.uint8)
    return np.pad(a, ((pad, pad), (pad, pad), (0, 0)), mode="reflect") if pad else a


class _MultiTask(nn.Module):
    def __init__(self, trunk: nn.Module, dim: int, n_out: dict[str, int]):
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleDict({k: nn.Linear(dim, n) for k, n in n_out.items()})

    def forward(self, x):
        f = self.trunk.forward_features(x)
        return {k: h(f) for k, h in self.heads.items()}


def train_small_backbone(paths: Sequence[Path], targets: pd.DataFrame, classes: dict[str, list[str]],
                         holdout: np.ndarray, pre: Preprocess, spec: BackboneTrainingSpec,
                         progress: Callable[[int, float], None] | None = None) -> tuple[bytes, dict, pd.DataFrame]:
    """Train ``tiny_cnn`` on ``paths`` with ``targets`` (columns of :data:`TASKS`, label or None).

    Returns (the trunk's state dict as torch bytes — a weights file for ``create_backbone("tiny_cnn",
    weights=...)`` —, metrics on the held-out images per task, per-epoch curves)."""
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    pad = max(2, pre.size[0] // 16) if spec.augment else 0
    with ThreadPoolExecutor(max(1, spec.threads)) as ex:   # PIL decodes without the GIL
        arrays = list(ex.map(lambda p: _decode(Path(p), pre, pad), paths))
    X = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()          # uint8 (N, 3, H+2p, W+2p)
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    tasks = [t for t in TASKS if t in targets and targets[t].notna().any()]
    ys = {}
    for t in tasks:
        index = {c: i for i, c in enumerate(classes[t])}
        ys[t] = torch.tensor([index.get(v, -100) if isinstance(v, str) else -100 for v in targets[t]], dtype=torch.long)
    trunk = tiny_cnn(num_classes=0)
    model = _MultiTask(trunk, trunk.num_features, {t: len(classes[t]) for t in tasks})
    model = model.to(memory_format=torch.channels_last)
    losses = {}
    for t in tasks:  # balanced CE per task: rare classes count as much as common ones
        y = ys[t][~torch.from_numpy(holdout)]
        counts = torch.bincount(y[y >= 0], minlength=len(classes[t])).float()
        w = torch.where(counts > 0, counts.sum() / (len(classes[t]) * counts.clamp(min=1)), torch.zeros_like(counts))
        losses[t] = nn.CrossEntropyLoss(weight=w, ignore_index=-100)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    train_idx = np.flatnonzero(~holdout)
    steps = max(1, spec.epochs * int(np.ceil(len(train_idx) / spec.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=steps)
    H, W = pre.size

    def batch(idx: np.ndarray, train: bool) -> torch.Tensor:
        if train and pad:
            dy, dx = rng.integers(0, 2 * pad + 1, 2)
        else:
            dy = dx = pad
        xb = X[torch.from_numpy(idx), :, dy:dy + H, dx:dx + W].float().div_(255.0)
        if train and spec.augment and rng.random() < 0.5:
            xb = xb.flip(3)
        return ((xb - mean) / std).contiguous(memory_format=torch.channels_last)

    rows = []
    for epoch in range(spec.epochs):
        model.train()
        perm = rng.permutation(train_idx)
        total, n = 0.0, 0
        for i in range(0, len(perm), spec.batch_size):
            idx = perm[i:i + spec.batch_size]
            out = model(batch(idx, True))
            loss = sum(losses[t](out[t], ys[t][idx]) for t in tasks if (ys[t][idx] >= 0).any())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            n += len(idx)
        rows.append({"epoch": epoch, "train_loss": total / max(1, n)})
        if progress:
            progress(epoch, total / max(1, n))
    model.eval()
    metrics: dict = {"n_images": int(len(paths)), "n_holdout": int(holdout.sum()), "tasks": {}}
    hold = np.flatnonzero(holdout)
    with torch.inference_mode():
        outs = [model(batch(hold[i:i + 256], False)) for i in range(0, len(hold), 256)]
    for t in tasks:
        n_lab = int((ys[t] >= 0).sum())
        m = {"classes": classes[t], "n_labelled": n_lab, "n_train": int((ys[t][train_idx] >= 0).sum())}
        if len(hold):
            logits = torch.cat([o[t] for o in outs]).float()
            y = ys[t][hold]
            ok = y >= 0
            if ok.any():
                pred = logits[ok].argmax(1)
                m["holdout_accuracy"] = float((pred == y[ok]).float().mean())
                m["holdout_n"] = int(ok.sum())
        metrics["tasks"][t] = m
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.trunk.state_dict().items()}, buf)
    return buf.getvalue(), metrics, pd.DataFrame(rows)
