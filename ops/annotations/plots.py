"""Figures of the annotation statistics (FindingEmo Table 2 as a bar chart, Fig. 5 as a bubble chart),
as PNG bytes: the assets show them in the UI and write them under exports/."""

from __future__ import annotations

import io

import pandas as pd


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_distribution_png(stats: pd.DataFrame, label_col: str, title: str, ylabel: str = "kept annotations") -> bytes:
    """Bar chart of ``n`` per label (FindingEmo §2.4 Table 2 / Fig. 4 style)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(stats[label_col].astype(str), stats["n"], color="#4c72b0")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def va_bubble_png(va: pd.DataFrame, title: str = "(valence, arousal) co-occurrence") -> bytes:
    """Bubble chart of (valence, arousal) pair counts (FindingEmo §2.4 Fig. 5)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    n = va["n"] if "n" in va else va.iloc[:, -1]
    ax.scatter(va["valence"], va["arousal"], s=n / max(1, n.max()) * 900, alpha=0.6, color="#dd8452")
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    ax.set_title(title)
    return _png(fig)
