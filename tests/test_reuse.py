"""A stored model is kept while its training labels moved within the budget (ops.training.reuse)."""

import pandas as pd
import pytest

from ops.training.reuse import LabelBudget, fit_or_reuse, label_change
from warehouse.models import ModelStore


def _labels(n: int, heldout_every: int = 5, relabel: int = 0, drop: int = 0, add: int = 0) -> pd.DataFrame:
    rows = [{"sha256": f"{i:064x}", "label": f"c{i % 3}" if i >= relabel else "other", "heldout": i % heldout_every == 0}
            for i in range(drop, n + add)]
    return pd.DataFrame(rows)


class Counter:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return f"model bytes {self.n}".encode(), {"label_snapshot": f"s{self.n}"}


def test_label_change_counts():
    old = _labels(100)
    new = _labels(100, relabel=4, drop=2, add=3)   # rows 2..102; rows 2,3 relabelled; 0,1 removed; 100..102 added
    ch = label_change(old, new)
    assert (ch.n_trained_on, ch.added, ch.removed, ch.relabelled) == (100, 3, 2, 2)
    assert ch.fraction == pytest.approx(7 / 100)
    assert ch.trained_on_now_heldout == 0


def test_a_model_is_kept_within_the_budget_and_retrained_beyond_it(tmp_path):
    store, fit = ModelStore(tmp_path), Counter()
    first, new = fit_or_reuse(store, "backbone", "k1", fit, LabelBudget("base", _labels(100), 0.10))
    assert new and fit.n == 1
    assert store.labels_of(first)["sha256"].tolist() == _labels(100)["sha256"].tolist()

    # 3 added + 2 relabelled of 100 = 5 % <= 10 %: the stored model is kept, with the figures
    kept, new = fit_or_reuse(store, "backbone", "k2", fit, LabelBudget("base", _labels(100, relabel=2, add=3), 0.10))
    assert not new and fit.n == 1 and kept["model_version"] == first["model_version"]
    assert kept["label_budget"]["fraction"] == pytest.approx(0.05)

    # 12 relabelled of 100 = 12 % > 10 %: trained again
    again, new = fit_or_reuse(store, "backbone", "k3", fit, LabelBudget("base", _labels(100, relabel=12), 0.10))
    assert new and fit.n == 2 and again["model_version"] != first["model_version"]
    # the budget is measured from the newest model's labels: the same 12 relabels are now no change
    kept, new = fit_or_reuse(store, "backbone", "k4", fit, LabelBudget("base", _labels(100, relabel=12, add=1), 0.10))
    assert not new and kept["model_version"] == again["model_version"]


def test_budget_zero_other_base_key_and_exact_key(tmp_path):
    store, fit = ModelStore(tmp_path), Counter()
    fit_or_reuse(store, "backbone", "k1", fit, LabelBudget("base", _labels(100), 0.10))
    fit_or_reuse(store, "backbone", "k2", fit, LabelBudget("base", _labels(100, add=1), 0.0))
    assert fit.n == 2                                      # 0 = any change retrains
    fit_or_reuse(store, "backbone", "k3", fit, LabelBudget("other config", _labels(100, add=1), 0.5))
    assert fit.n == 3                                      # another configuration never shares a model
    found, new = fit_or_reuse(store, "backbone", "k1", fit)
    assert not new and fit.n == 3 and "label_budget" not in found


def test_an_image_it_trained_on_that_is_now_held_out_forces_training(tmp_path):
    store, fit = ModelStore(tmp_path), Counter()
    fit_or_reuse(store, "backbone", "k1", fit, LabelBudget("base", _labels(100), 0.5))
    moved = _labels(100)
    moved.loc[moved["sha256"] == f"{1:064x}", "heldout"] = True     # row 1 was trained on
    _, new = fit_or_reuse(store, "backbone", "k2", fit, LabelBudget("base", moved, 0.5))
    assert new and fit.n == 2
    # the other way round (a held-out image now trained on) is no leak: kept
    back = _labels(100)
    back.loc[back["sha256"] == f"{5:064x}", "heldout"] = False
    back.loc[back["sha256"] == f"{1:064x}", "heldout"] = True
    _, new = fit_or_reuse(store, "backbone", "k3", fit, LabelBudget("base", back, 0.5))
    assert not new and fit.n == 2


def test_a_backbone_is_kept_when_the_hash_cut_moves_an_image_it_trained_on_into_the_holdout(tmp_path):
    """The from-scratch backbone's consumers read its own stored labels (scored_on_current_holdout=False):
    an image it trained on that today's cut holds out is no reason to train again; the change still counts."""
    store, fit = ModelStore(tmp_path), Counter()
    first, _ = fit_or_reuse(store, "backbone", "k1", fit, LabelBudget("base", _labels(100), 0.10, False))
    moved = _labels(100, add=3)
    moved.loc[moved["sha256"] == f"{1:064x}", "heldout"] = True     # row 1 was trained on
    kept, new = fit_or_reuse(store, "backbone", "k2", fit, LabelBudget("base", moved, 0.10, False))
    assert not new and fit.n == 1 and kept["model_version"] == first["model_version"]
    assert kept["label_budget"]["trained_on_now_heldout"] == 1 and kept["label_budget"]["added"] == 3
    # its stored labels still say what it trained on: row 1 on the training side
    lab = store.labels_of(kept)
    assert not lab.loc[lab["sha256"] == f"{1:064x}", "heldout"].item()
    # beyond the budget it is trained again all the same
    _, new = fit_or_reuse(store, "backbone", "k3", fit, LabelBudget("base", _labels(100, relabel=12), 0.10, False))
    assert new and fit.n == 2


def test_a_model_without_its_labels_is_not_kept(tmp_path):
    store, fit = ModelStore(tmp_path), Counter()
    first, _ = fit_or_reuse(store, "backbone", "k1", fit, LabelBudget("base", _labels(100), 0.10))
    (tmp_path / f"{first['sha256']}.labels.parquet").unlink()
    _, new = fit_or_reuse(store, "backbone", "k2", fit, LabelBudget("base", _labels(100, add=1), 0.10))
    assert new and fit.n == 2
