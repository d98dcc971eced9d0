"""Figures of trained models: confusion matrices and training curves, as PNG bytes."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def confusion_png(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> bytes:
    """A confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(classes), 0.8 + 0.5 * len(classes)))
    norm = m / np.clip(m.sum(axis=1, keepdims=True), 1, None)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.6 else "black",
                    fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _png(fig)


def curves_png(curves: pd.DataFrame, title: str) -> bytes:
    """Loss (and accuracy, when present) per epoch."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    for col in [c for c in curves.columns if c.endswith("loss")]:
        ax.plot(curves["epoch"], curves[col], label=col)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if "val_accuracy" in curves and curves["val_accuracy"].notna().any():
        ax2 = ax.twinx()
        ax2.plot(curves["epoch"], curves["val_accuracy"], color="#55a868", label="val_accuracy")
        ax2.set_ylabel("validation accuracy")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    return _png(fig)
