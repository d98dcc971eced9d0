"""The seed papers' baselines on small synthetic features (ops.training.baselines) and the
experiment runner around them (ops.training.experiments).

FindingEmo §3 (linear head, CE / UCE, Eq. 2 lr, early stopping on loss or W.F1 with patience 6),
AffectNet+ §4.3 Hard-FER (per-subset confusion) and Soft-FER (W-MAE, Eq. 15), Deep Affect §2.3
(3000-1000-500 DFFN, shared / split), CAGE §4.1 (joint / V/A-only), and ``execute``: train once,
find again in the model store, record a failed run as a row. Expected values are computed here with
plain numpy from the saved models and the data, never by calling the metric code under test.
Every run is small (a few hundred samples, 12 features, tens of epochs) so the file stays fast.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import torch

from models.heads import make_head
from models.regressors import DeepAffectRegressor
from ops.training import baselines as B
from ops.training import experiments as E
from ops.training.tasks import get_task
from warehouse.models import ModelStore

EMO8 = get_task("emo8")
AFFECTNET8 = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
SUBSETS = ["All", "Easy", "Challenging", "Difficult"]
N, D = 320, 12


def separable(seed: int, n: int = N, p: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Linearly separable 8-class features: dims 0..7 are 5·one-hot(y) + U(−1, 1) (so x_y ≥ 4 > 1 ≥
    every other of those coordinates: the linear rule argmax(x[:8]) is exact), dims 8..11 noise."""
    rng = np.random.default_rng(seed)
    y = rng.choice(8, size=n, p=p)
    y[:16] = np.repeat(np.arange(8), 2)                     # every class at least twice
    X = np.zeros((n, D), np.float32)
    X[:, :8] = 5.0 * np.eye(8)[y] + rng.uniform(-1, 1, (n, 8))
    X[:, 8:] = rng.normal(0, 1, (n, D - 8))
    return X, y.astype(np.int64)


def stratified_mask(y: np.ndarray, seed: int, fraction: float = 0.2) -> np.ndarray:
    """A per-class 20 % test side (at least one test and one training sample per class)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        out[rng.choice(idx, size=max(1, round(len(idx) * fraction)), replace=False)] = True
    return out


@pytest.fixture(scope="module")
def emo8_data():
    """320 imbalanced samples (class 0 about 30 %), separable, with a stratified 20 % test side."""
    p = np.array([0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    X, y = separable(0, p=p)
    return X, y, stratified_mask(y, 0)


@pytest.fixture(scope="module")
def findingemo_out(emo8_data):
    """One FindingEmo §3 run (CE, lr 0.01, seed 0, patience 4) reused by several tests."""
    X, y, is_test = emo8_data
    return B.findingemo_run(X, y, is_test, EMO8, "ce", 0.01, 0, max_epochs=100, patience=4)


def overall(metrics: pd.DataFrame, metric: str, subset=None) -> float:
    m = metrics[(metrics["metric"] == metric) & metrics["class"].isna()]
    m = m[m["subset"].isna()] if subset is None else m[m["subset"] == subset]
    assert len(m) == 1, m
    return float(m["value"].iloc[0])


# ---- FindingEmo §3 ------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["ce", "uce"])
def test_findingemo_beats_the_majority_class(emo8_data, loss):
    """On separable 8-class features both losses (CE and UCE, Eq. 1) beat always predicting the
    test side's most frequent class by at least 40 points of accuracy (the majority rate here is
    about 0.3, a working linear probe reaches about 1.0; 0.4 leaves room for a slower run)."""
    X, y, is_test = emo8_data
    out = B.findingemo_run(X, y, is_test, EMO8, loss, 0.01, 0, max_epochs=60, patience=4)
    y_test = y[is_test]
    majority = np.bincount(y_test).max() / len(y_test)       # by hand
    acc = overall(out.metrics, "accuracy")
    assert acc >= majority + 0.40, (acc, majority)
    assert out.n_train == int((~is_test).sum()) and out.n_eval == int(is_test.sum())
    assert set(out.metrics.columns) == {"split", "subset", "metric", "class", "value"}
    assert {"accuracy", "f1", "weighted_f1", "average_precision"} <= set(out.metrics["metric"])
    per_class = out.metrics[(out.metrics["metric"] == "f1") & out.metrics["class"].notna()]
    assert sorted(per_class["class"]) == sorted(EMO8.classes)


def test_findingemo_same_seed_same_run(emo8_data, findingemo_out):
    """Reproducible: the same (data, task, loss, lr, seed) gives identical metrics, curve, best
    epoch, stop reason and weights."""
    X, y, is_test = emo8_data
    again = B.findingemo_run(X, y, is_test, EMO8, "ce", 0.01, 0, max_epochs=100, patience=4)
    pd.testing.assert_frame_equal(again.metrics, findingemo_out.metrics)
    pd.testing.assert_frame_equal(again.curve, findingemo_out.curve)
    assert (again.best_epoch, again.epochs, again.stop_reason) == (
        findingemo_out.best_epoch, findingemo_out.epochs, findingemo_out.stop_reason)
    a, b = B.load(again.model_bytes)["state_dict"], B.load(findingemo_out.model_bytes)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_findingemo_curve_shows_the_stopping_rule(findingemo_out):
    """One curve row per epoch (epochs 0..E−1) with the Eq. 2 lr lr_0 / sqrt(e // 3 + 1); the run
    stopped by patience, and the curve shows why (FindingEmo §3): the best epoch of the named
    metric (first minimum of loss / first maximum of W.F1, recomputed from the curve) lies exactly
    ``patience`` = 4 epochs behind the last epoch, and it is the epoch put forward."""
    out = findingemo_out
    curve = out.curve
    assert len(curve) == out.epochs
    assert curve["epoch"].tolist() == list(range(out.epochs))
    assert {"epoch", "lr", "train_loss", "loss", "wf1", "accuracy"} <= set(curve.columns)
    expected_lr = [0.01 / np.sqrt(e // 3 + 1) for e in range(out.epochs)]
    assert curve["lr"].to_numpy() == pytest.approx(expected_lr, rel=1e-9)
    assert out.stop_reason.startswith("patience:"), out.stop_reason
    metric = out.stop_reason.split(":", 1)[1]
    values = curve[metric].to_numpy()
    best = int(np.argmin(values)) if metric == "loss" else int(np.argmax(values))   # first optimum
    assert out.epochs - 1 - best == 4
    assert out.best_epoch == best
    # and no earlier epoch met the rule: replaying it over the curve stops at the last row
    loss, wf1 = curve["loss"].to_numpy(), curve["wf1"].to_numpy()
    first_stop = next(e for e in range(out.epochs)
                      if e - int(np.argmin(loss[:e + 1])) >= 4 or e - int(np.argmax(wf1[:e + 1])) >= 4)
    assert first_stop == out.epochs - 1


def test_findingemo_max_epochs_stop(emo8_data):
    """With max_epochs 3 and patience 6 nothing can run out of patience: 3 curve rows, all at lr_0
    (Eq. 2 decays only from epoch 3), stop reason 'max_epochs'."""
    X, y, is_test = emo8_data
    out = B.findingemo_run(X, y, is_test, EMO8, "uce", 0.05, 1, max_epochs=3, patience=6)
    assert out.stop_reason == "max_epochs" and out.epochs == 3 and len(out.curve) == 3
    assert out.curve["lr"].tolist() == pytest.approx([0.05, 0.05, 0.05])


def test_findingemo_class_without_training_sample_is_named(emo8_data):
    """Every 'Anticipation' sample (class 7) on the test side: the run still trains (the class is
    never a target; its Eq. 3 weight is taken as 0, see baselines.uce_weights) and names the class
    in its details; a training side with a single class is refused naming what is missing."""
    X, y, _ = emo8_data
    is_test = stratified_mask(y, 1) | (y == 7)
    out = B.findingemo_run(X, y, is_test, EMO8, "uce", 0.01, 0, max_epochs=5)
    assert out.details["classes_without_training_samples"] == ["Anticipation"]
    w, m = B.uce_weights(np.bincount(y[~is_test], minlength=8), EMO8.distances())
    n = np.bincount(y[~is_test], minlength=8)
    assert w[7] == 0 and float(w[0]) == pytest.approx(n.sum() / (8 * n[0]))
    # Eq. 4 with w_7 = 0: the penalty for predicting Anticipation is d · w_t
    assert float(m[0, 7]) == pytest.approx(EMO8.distances()[0, 7] * float(w[0]))
    with pytest.raises(ValueError, match="fewer than 2 classes"):
        B.findingemo_run(X, y, y != 0, EMO8, "uce", 0.01, 0, max_epochs=5)
    with pytest.raises(ValueError, match="loss must be one of"):
        B.findingemo_run(X, y, stratified_mask(y, 1), EMO8, "mse", 0.01, 0, max_epochs=5)


# ---- AffectNet+ §4.3 Hard-FER -------------------------------------------------------------------

@pytest.fixture(scope="module")
def fer_data():
    """400 faces: separable features, 100 on the evaluation side, a random difficulty each."""
    X, y = separable(1, n=400)
    rng = np.random.default_rng(1)
    is_eval = np.zeros(len(y), bool)
    is_eval[rng.permutation(len(y))[:100]] = True
    difficulty = rng.choice(["Easy", "Challenging", "Difficult"], size=len(y)).astype(object)
    return X, y, is_eval, difficulty


def test_hard_fer_confusion_matches_n_and_accuracy(fer_data):
    """Per subset (All, Easy, Challenging, Difficult): the 64 confusion cells sum to the subset's
    'n' row, which is the hand count of evaluation faces of that difficulty; each true-class row of
    the matrix ('true|predicted') sums to that class's count in the subset; and the All accuracy
    equals trace / total of the All matrix."""
    X, y, is_eval, difficulty = fer_data
    out = B.hard_fer_run(X, y, is_eval, difficulty, AFFECTNET8, 0.01, 0, max_epochs=30, patience=4)
    m = out.metrics
    assert sorted(set(m["subset"])) == sorted(SUBSETS)
    ev_diff, ev_y = difficulty[is_eval], y[is_eval]
    for subset in SUBSETS:
        sel = np.ones(len(ev_y), bool) if subset == "All" else ev_diff == subset
        conf = m[(m["subset"] == subset) & (m["metric"] == "confusion")]
        assert len(conf) == 64
        n = overall(m, "n", subset)
        assert n == sel.sum()
        assert conf["value"].sum() == n
        true_of = conf["class"].str.split("|").str[0]
        for c, name in enumerate(AFFECTNET8):
            assert conf.loc[true_of == name, "value"].sum() == np.sum(ev_y[sel] == c), (subset, name)
    conf = m[(m["subset"] == "All") & (m["metric"] == "confusion")]
    parts = conf["class"].str.split("|")
    trace = conf.loc[parts.str[0] == parts.str[1], "value"].sum()
    assert overall(m, "accuracy", "All") == pytest.approx(trace / conf["value"].sum())
    assert out.n_eval == 100


# ---- AffectNet+ §4.3 Soft-FER -------------------------------------------------------------------

def test_soft_fer_w_mae_recomputed_from_the_saved_model(fer_data):
    """Reload the saved head (state_dict, config, mean, std), predict sigmoid((X − mean) / std) on
    the evaluation faces, and recompute Eq. 15 by hand: weights 1, 1/2, …, 1/8 by descending rank of
    the ground-truth soft label (no ties in it), e = mean over the 8 emotions of w·|t − p|,
    W-MAE = 100·mean(e); also W-FR = 100·share(e > 0.3). Both match subset All, class None."""
    X, _, is_eval, difficulty = fer_data
    rng = np.random.default_rng(2)
    soft = (1.0 / (1.0 + np.exp(-(X @ rng.normal(0, 0.4, (D, 8)))))).astype(np.float32)
    assert all(len(np.unique(row)) == 8 for row in soft)             # no ties: ranks are unambiguous
    hard = soft.argmax(1)
    out = B.soft_fer_run(X, soft, hard, is_eval, difficulty, AFFECTNET8, 0.01, 0, max_epochs=25, patience=4)

    saved = B.load(out.model_bytes)
    assert {"state_dict", "config", "mean", "std"} <= set(saved)
    head = make_head(**saved["config"])
    head.load_state_dict(saved["state_dict"])
    head.eval()
    Z = (X[is_eval] - saved["mean"]) / saved["std"]
    with torch.no_grad():
        p = torch.sigmoid(head(torch.as_tensor(Z, dtype=torch.float32))).numpy().astype(np.float64)
    t = soft[is_eval].astype(np.float64)
    w = np.zeros_like(t)
    for i, row in enumerate(t):
        for rank, j in enumerate(np.argsort(-row)):                # rank 0 = largest
            w[i, j] = 1.0 / (rank + 1)
    assert np.allclose(np.sort(w, 1)[:, ::-1], 1.0 / np.arange(1, 9))
    e = (w * np.abs(t - p)).mean(axis=1)
    w_mae = 100.0 * e.mean()
    assert overall(out.metrics, "w_mae", "All") == pytest.approx(w_mae, rel=1e-5, abs=1e-5)
    assert overall(out.metrics, "w_fr", "All") == pytest.approx(100.0 * np.mean(e > 0.3))
    assert overall(out.metrics, "n", "All") == is_eval.sum()


# ---- Deep Affect §2.3 ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def va_data():
    """300 images, two feature groups (8 + 4 dims), valence / arousal on 1–9 linear in the features."""
    rng = np.random.default_rng(3)
    X = rng.normal(0, 1, (300, D)).astype(np.float32)
    va = np.c_[5 + 1.5 * X[:, 0] - 0.5 * X[:, 9], 5 + 1.0 * X[:, 1] + 0.5 * X[:, 10]].clip(1, 9).astype(np.float32)
    is_eval = np.zeros(300, bool)
    is_eval[rng.permutation(300)[:60]] = True
    return {"object": X[:, :8], "scene": X[:, 8:]}, va, is_eval


def linear_shapes(state_dict) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state_dict.items() if k.endswith(".weight")}


def test_deep_affect_default_widths_3000_1000_500(va_data):
    """Deep Affect §2.3: left at the default, the hidden layers are 3000 → 1000 → 500 (then 2
    outputs for the shared architecture), in the built network and in the saved state dict of a
    (1-epoch) run."""
    groups, va, is_eval = va_data
    assert inspect.signature(B.deep_affect_run).parameters["hidden"].default == (3000, 1000, 500)
    built = DeepAffectRegressor({"object": 8, "scene": 4})
    expected = {"net.0.weight": (3000, 12), "net.3.weight": (1000, 3000), "net.6.weight": (500, 1000),
                "net.9.weight": (2, 500)}
    assert linear_shapes(built.state_dict()) == expected
    out = B.deep_affect_run(groups, va, is_eval, 0, max_epochs=1)
    saved = B.load(out.model_bytes)
    assert linear_shapes(saved["state_dict"]) == expected
    assert saved["hidden"] == [3000, 1000, 500] and saved["architecture"] == "shared"


def test_deep_affect_split_has_one_member_per_target(va_data):
    """Architecture 'split' (Fig. 3B): one single-output DFFN per target, valence and arousal, each
    64 → 32 → 16 → 1 here; no shared network."""
    groups, va, is_eval = va_data
    out = B.deep_affect_run(groups, va, is_eval, 0, architecture="split", hidden=(64, 32, 16), max_epochs=5)
    shapes = linear_shapes(B.load(out.model_bytes)["state_dict"])
    members = {k.split(".")[1] for k in shapes}
    assert members == {"valence", "arousal"} and all(k.startswith("members.") for k in shapes)
    for t in ("valence", "arousal"):
        assert [shapes[f"members.{t}.{i}.weight"] for i in (0, 3, 6, 9)] == [(64, 12), (32, 64), (16, 32), (1, 16)]
    assert out.details["architecture"] == "split"


def test_deep_affect_regression_rows_recomputed(va_data):
    """Shared architecture, hidden (64, 32, 16): the metric rows are mse, mae, rmse, ccc for
    valence, arousal and overall (class None), one each; mse and mae agree with the hand computation
    from the reloaded network, rmse = sqrt(mse), overall mse = mean of the two."""
    groups, va, is_eval = va_data
    out = B.deep_affect_run(groups, va, is_eval, 0, hidden=(64, 32, 16), max_epochs=20, split_name="fold3")
    m = out.metrics
    assert set(m["split"]) == {"fold3"}
    for metric in ("mse", "mae", "rmse", "ccc"):
        for cls in ("valence", "arousal", None):
            rows = m[(m["metric"] == metric) & ((m["class"] == cls) if cls else m["class"].isna())]
            assert len(rows) == 1, (metric, cls)
    assert len(m) == 12
    saved = B.load(out.model_bytes)
    net = DeepAffectRegressor(saved["groups"], saved["architecture"], hidden=saved["hidden"], dropout=saved["dropout"])
    net.load_state_dict(saved["state_dict"])
    net.eval()
    X = np.concatenate([groups["object"], groups["scene"]], axis=1)
    with torch.no_grad():
        pred = net(torch.as_tensor((X[is_eval] - saved["mean"]) / saved["std"])).numpy().astype(np.float64)
    err = pred - va[is_eval]
    value = m.set_index(["metric", m["class"].fillna("all")])["value"]
    assert value[("mse", "valence")] == pytest.approx(np.mean(err[:, 0] ** 2), rel=1e-4)
    assert value[("mse", "arousal")] == pytest.approx(np.mean(err[:, 1] ** 2), rel=1e-4)
    assert value[("mae", "all")] == pytest.approx(np.mean(np.abs(err)), rel=1e-4)
    assert value[("mse", "all")] == pytest.approx(np.mean(err ** 2), rel=1e-4)
    assert value[("rmse", "valence")] == pytest.approx(np.sqrt(np.mean(err[:, 0] ** 2)), rel=1e-4)


# ---- CAGE §4.1 ----------------------------------------------------------------------------------

REGRESSION = {"mse", "mae", "rmse", "ccc"}


def test_cage_joint_and_va_rows(fer_data):
    """kind 'joint' reports expression metrics (accuracy, F1, per-class precision…) and V/A
    regression metrics; kind 'va' (with no expression labels at all) only the regression ones."""
    X, y, is_eval, _ = fer_data
    va = np.c_[np.tanh(X[:, 8]), np.tanh(X[:, 9])].astype(np.float32)
    joint = B.cage_run(X, y, va, is_eval, AFFECTNET8, "joint", 0.01, 0, max_epochs=15, patience=4)
    metrics = set(joint.metrics["metric"])
    assert REGRESSION <= metrics
    assert {"accuracy", "f1", "weighted_f1", "precision", "recall"} <= metrics
    assert set(joint.metrics.loc[joint.metrics["metric"] == "precision", "class"]) == set(AFFECTNET8)
    only_va = B.cage_run(X, None, va, is_eval, AFFECTNET8, "va", 0.01, 0, max_epochs=15, patience=4)
    assert set(only_va.metrics["metric"]) == REGRESSION
    assert set(only_va.metrics["class"].dropna()) == {"valence", "arousal"}
    assert B.load(only_va.model_bytes)["kind"] == "va"


def test_cage_rejects_an_unknown_kind(fer_data):
    """Only 'joint' and 'va' exist."""
    X, y, is_eval, _ = fer_data
    va = np.zeros((len(y), 2), np.float32)
    with pytest.raises(ValueError, match="kind"):
        B.cage_run(X, y, va, is_eval, AFFECTNET8, "expression", 0.01, 0, max_epochs=2)


def test_monitor_mask_by_hand():
    """A stratified 10 %: 50 of class 0 → 5, 30 of class 1 → 3 watched; nothing under 10 samples or
    at fraction 0; the same seed gives the same mask."""
    y = np.array([0] * 50 + [1] * 30)
    m = B.monitor_mask(y, len(y), 0.1, 0)
    assert m[:50].sum() == 5 and m[50:].sum() == 3
    assert np.array_equal(m, B.monitor_mask(y, len(y), 0.1, 0))
    assert not B.monitor_mask(y[:9], 9, 0.1, 0).any()
    assert not B.monitor_mask(y, len(y), 0.0, 0).any()


# ---- experiments.execute ------------------------------------------------------------------------

def spec(seed: int, extractor: str = "tiny") -> E.RunSpec:
    return E.RunSpec("findingemo", "emo8", "linear", extractor, "ce", 0.01, seed, "findingemo_80_20", "test")


def counted_plan(emo8_data, calls: dict, seeds=(0, 1)) -> list[E.Planned]:
    """FindingEmo runs whose train closures count how often they are called."""
    X, y, is_test = emo8_data

    def train(seed):
        def run():
            calls[seed] = calls.get(seed, 0) + 1
            return B.findingemo_run(X, y, is_test, EMO8, "ce", 0.01, seed, max_epochs=12, patience=3)
        return run
    return [E.Planned(spec(s), "tiny-key", "snap-1", {"max_epochs": 12, "patience": 3}, train(s)) for s in seeds]


def test_execute_trains_once_and_finds_runs_again(emo8_data, tmp_path):
    """A plan of two runs trains both; executing the same plan against the same store trains
    nothing and returns the same training_runs (but trained_now), run_metrics and learning_curves."""
    store = ModelStore(tmp_path / "models")
    calls: dict = {}
    runs1, metrics1, curves1 = E.execute(counted_plan(emo8_data, calls), store)
    assert calls == {0: 1, 1: 1}
    assert runs1["status"].tolist() == ["ok", "ok"] and runs1["trained_now"].tolist() == [True, True]
    assert list(runs1.columns) == E.RUNS_SCHEMA.names
    assert set(metrics1["run_id"]) == set(runs1["run_id"]) == {spec(0).run_id, spec(1).run_id}
    assert len(store.all()) == 2
    for r in runs1.itertuples():                           # 3 evaluation metrics per epoch
        c = curves1[curves1["run_id"] == r.run_id]
        assert len(c) == 3 * r.epochs and set(c["metric"]) == {"loss", "wf1", "accuracy"}

    runs2, metrics2, curves2 = E.execute(counted_plan(emo8_data, calls), store)
    assert calls == {0: 1, 1: 1}                          # nothing trained again
    assert runs2["trained_now"].tolist() == [False, False]
    pd.testing.assert_frame_equal(runs1.drop(columns="trained_now"), runs2.drop(columns="trained_now"))
    pd.testing.assert_frame_equal(metrics1, metrics2)
    pd.testing.assert_frame_equal(curves1, curves2)
    assert len(store.all()) == 2


def test_execute_records_a_failed_run(emo8_data, tmp_path):
    """A run whose closure raises ValueError (here: training samples of one class only) gets a row
    with status 'failed' and the reason, and no metrics or curve rows; the other run is unaffected."""
    X, y, _ = emo8_data
    is_test = y != 0
    calls: dict = {}
    ok = counted_plan(emo8_data, calls, seeds=(0,))[0]
    bad = E.Planned(spec(5), "tiny-key", "snap-1", {}, lambda: B.findingemo_run(X, y, is_test, EMO8, "ce", 0.01, 5))
    runs, metrics, curves = E.execute([ok, bad], ModelStore(tmp_path / "models"))
    by = runs.set_index("run_id")
    assert by.loc[spec(0).run_id, "status"] == "ok"
    failed = by.loc[spec(5).run_id]
    assert failed["status"] == "failed"
    assert failed["reason"].startswith("ValueError:") and "fewer than 2 classes" in failed["reason"]
    assert failed["model_version"] is None and pd.isna(failed["epochs"])
    assert set(metrics["run_id"]) == {spec(0).run_id} and set(curves["run_id"]) == {spec(0).run_id}


def test_prediction_rows_from_a_stored_run(emo8_data, tmp_path):
    """``prediction_rows`` on the stored envelope of a FindingEmo run: probabilities sum to 1 per
    image, 'predicted' is the class name of the largest one and 'probability' its value; the
    probabilities equal a numpy softmax of the saved linear layer on the standardised features."""
    X, _, _ = emo8_data
    store = ModelStore(tmp_path / "models")
    runs, _, _ = E.execute(counted_plan(emo8_data, {}, seeds=(0,)), store)
    version = runs["model_version"].iloc[0]
    data = store.get(version)[0]
    shas = [f"img{i}" for i in range(25)]
    rows = E.prediction_rows(data, shas, X[:25], version, "emo8")
    assert rows["sha256"].tolist() == shas and (rows["model_version"] == version).all()
    P = np.array(rows["probabilities"].tolist())
    assert P.shape == (25, 8)
    assert np.allclose(P.sum(axis=1), 1.0, atol=1e-6)
    names = list(EMO8.classes)
    assert all(cls == names for cls in rows["classes"])
    assert rows["predicted"].tolist() == [names[i] for i in P.argmax(axis=1)]
    assert np.allclose(rows["probability"], P.max(axis=1))
    saved = B.load(E.open_envelope(data)["model"])
    W, b = saved["state_dict"]["fc.weight"].numpy(), saved["state_dict"]["fc.bias"].numpy()
    z = ((X[:25] - saved["mean"]) / saved["std"]).astype(np.float64) @ W.T.astype(np.float64) + b
    soft = np.exp(z - z.max(axis=1, keepdims=True))
    assert np.allclose(P, soft / soft.sum(axis=1, keepdims=True), atol=1e-5)


def test_a_stored_run_keeps_the_model_bytes_as_bytes():
    """The envelope pickles the model's bytes natively (protocol 4: one BINBYTES record), not through
    protocol 2's latin-1 round trip (``_codecs.encode``), and reads back unchanged."""
    import io
    import pickletools
    import zipfile

    model = bytes(range(256)) * 4000
    out = B.RunOutput(metrics=pd.DataFrame({"split": ["test"], "subset": [None], "metric": ["acc"], "class": [None],
                                            "value": [0.5]}),
                      curve=pd.DataFrame({"epoch": [1], "lr": [0.1], "train_loss": [1.0]}), model_bytes=model,
                      best_epoch=1, epochs=1, stop_reason="max_epochs", seconds=0.1, n_train=3, n_eval=2)
    data = E._envelope(out)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(pkl)]
    assert ("BINBYTES", model) in ops
    assert not any(name in ("GLOBAL", "STACK_GLOBAL") and "_codecs" in str(arg) for name, arg in ops)
    env = E.open_envelope(data)
    assert env["model"] == model and env["run"]["n_train"] == 3 and env["metrics"]["value"].tolist() == [0.5]


def test_face_means_by_hand():
    """img1 has two faces with features (1, 2) and (3, 6) and a third without features: mean
    (2, 4), flag 1; img2 has none: (0, 0), flag 0; img3 one face (5, 5); a face of an unknown image
    is ignored. Every image is usable."""
    F = np.array([[1, 2], [3, 6], [5, 5], [100, 100], [7, 7]], np.float32)
    face_sha = np.array(["img1", "img1", "img3", "img1", "other"])
    found = np.array([True, True, True, False, True])
    out, usable = E.face_means(["img1", "img2", "img3"], face_sha, F, found)
    assert out.tolist() == [[2.0, 4.0, 1.0], [0.0, 0.0, 0.0], [5.0, 5.0, 1.0]]
    assert usable.tolist() == [True, True, True]
