"""Training and evaluation pieces against hand-computed values: FindingEmo's UCE (Eq. 1) and its
weights (§A.7 Eqs. 3–4), the lr rule (Eq. 2) and early stopping (§3); AffectNet+'s W-MAE (Eq. 15),
W-FR and average accuracy (Eq. 3); CCC; CAGE's losses (§4.1); Deep Affect's network (§2.3) and
plateau schedule; FindingEmo's tasks and the 1–9 rescaling."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.losses import (
    CageCombinedLoss, CageValenceArousalLoss, ConcordanceCorrelationLoss, UnbalancedCrossEntropyLoss,
    WeightedCrossEntropyLoss, ccc as torch_ccc, class_weights, inverse_frequency_weights, misclassification_weights,
)
from models.regressors import CageHead, DeepAffectRegressor
from ops.training import metrics as M
from ops.training.schedules import (
    DeepAffectPlateau, EarlyStopping, deep_affect_optimizer, findingemo_lr, findingemo_scheduler,
)
from ops.training.tasks import (
    AROUSAL3_TASK, EMO8_TASK, VALENCE3_TASK, arousal3, arousal_from_1_9, arousal_to_1_9, valence3,
    valence_from_1_9, valence_to_1_9,
)

approx = pytest.approx


def logits_of(*rows):
    """Logits whose softmax is exactly the given probability rows."""
    return torch.log(torch.tensor(rows, dtype=torch.float64)).float()


# ---- FindingEmo §A.7: weights -------------------------------------------------------------------

def test_class_and_misclassification_weights_by_hand():
    # arousal annotations -> Arousal3 classes: 6 Low, 3 Medium, 1 High (N = 10, N_c = 3)
    targets = AROUSAL3_TASK.encode([0, 1, 0, 1, 0, 1, 2, 3, 4, 6])
    counts = AROUSAL3_TASK.class_counts(targets)
    assert counts.tolist() == [6, 3, 1]
    w = class_weights(counts)
    assert w.tolist() == approx([10 / 18, 10 / 9, 10 / 3])      # Eq. 3: N / (N_c N_i)
    W = misclassification_weights(w, AROUSAL3_TASK.distances())  # Eq. 4: d_ij / (1 + w_j) * w_i
    expected = [[0, 5 / 19, 10 / 39],
                [5 / 7, 0, 10 / 39],
                [30 / 7, 30 / 19, 0]]
    assert W.numpy() == approx(np.array(expected), rel=1e-6)
    with pytest.raises(ValueError):
        class_weights([3, 0, 2])


def test_task_distances_and_bins():
    d = EMO8_TASK.distances()
    names = list(EMO8_TASK.classes)
    assert names == ["Joy", "Trust", "Fear", "Surprise", "Sadness", "Disgust", "Anger", "Anticipation"]
    assert d[names.index("Joy"), names.index("Surprise")] == 3   # FindingEmo §A.7 examples
    assert d[names.index("Joy"), names.index("Anger")] == 2
    assert d[names.index("Joy"), names.index("Sadness")] == 4
    assert (d == d.T).all() and (np.diag(d) == 0).all() and d.max() == 4
    assert AROUSAL3_TASK.distances()[0, 2] == 2 and VALENCE3_TASK.distances()[0, 1] == 1
    assert [arousal3(a) for a in range(7)] == [0, 0, 1, 1, 1, 2, 2]
    assert [valence3(v) for v in range(-3, 4)] == [0, 0, 1, 1, 1, 2, 2]
    assert arousal3(1.4) == 0 and arousal3(1.5) == 1 and arousal3(4.6) == 2 and valence3(-1.5) == 1
    with pytest.raises(ValueError):
        arousal3(1.5, strict=True)
    with pytest.raises(ValueError):
        valence3(4)
    assert EMO8_TASK.encode(["joy", "Serenity", "Vigilance"]).tolist() == [0, 0, 7]


def test_rescale_to_1_9():
    assert valence_to_1_9([-3, 0, 3]).tolist() == approx([1, 5, 9])
    assert valence_to_1_9(1) == approx((4 * 1 + 15) / 3)
    assert arousal_to_1_9([0, 3, 6]).tolist() == approx([1, 5, 9])
    assert arousal_to_1_9(1) == approx(1 + 4 / 3)
    assert valence_from_1_9(valence_to_1_9(-2)) == approx(-2)
    assert arousal_from_1_9(arousal_to_1_9(5)) == approx(5)


# ---- FindingEmo §3 Eq. 1: UCE -------------------------------------------------------------------

W3 = [10 / 18, 10 / 9, 10 / 3]
D3 = [[0, 1, 2], [1, 0, 1], [2, 1, 0]]


def test_uce_reduces_to_ce_when_target_is_argmax():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    target = torch.tensor([0, 1])  # t = h for both
    lp0 = 2.0 - math.log(math.exp(2) + math.exp(1) + 1)
    lp1 = 3.0 - math.log(1 + math.exp(3) + math.exp(1))
    uce = UnbalancedCrossEntropyLoss.from_counts([6, 3, 1], D3)
    assert uce(logits, target).item() == approx((-(10 / 18) * lp0 - (10 / 9) * lp1) / 2, rel=1e-6)
    plain = UnbalancedCrossEntropyLoss.from_counts([6, 3, 1], D3, use_class_weights=False)
    assert plain(logits, target).item() == approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    assert plain(logits, target).item() == approx((-lp0 - lp1) / 2, rel=1e-6)
    # the weighted mean matches torch's weighted CrossEntropyLoss exactly
    wm = UnbalancedCrossEntropyLoss.from_counts([6, 3, 1], D3, reduction="weighted_mean")
    ref = F.cross_entropy(logits, target, weight=torch.tensor(W3))
    assert wm(logits, target).item() == approx(ref.item(), rel=1e-6)


def test_uce_misclassification_penalty_by_hand():
    logits = logits_of([0.2, 0.3, 0.5], [0.5, 0.3, 0.2])
    target = torch.tensor([0, 2])  # Low predicted High, High predicted Low: t != h
    uce = UnbalancedCrossEntropyLoss.from_counts([6, 3, 1], D3, reduction="none")
    got = uce(logits, target)
    l0 = -(10 / 18) * math.log(0.2) - (10 / 39) * math.log(1 - 0.5)   # w_0, w_{0,2}
    l1 = -(10 / 3) * math.log(0.2) - (30 / 7) * math.log(1 - 0.5)     # w_2, w_{2,0}
    assert got.tolist() == approx([l0, l1], rel=1e-5)
    # the weights matter: the rare class's error costs far more than the frequent class's
    assert l1 > 5 * l0
    assert UnbalancedCrossEntropyLoss.from_counts([6, 3, 1], D3)(logits, target).item() == approx((l0 + l1) / 2, rel=1e-5)
    # the other reading of "log 1 − p_h": a linear penalty +w_{t,h} p_h
    lin = UnbalancedCrossEntropyLoss.from_counts([6, 3, 1], D3, penalty="linear", reduction="none")
    assert lin(logits, target).tolist() == approx(
        [-(10 / 18) * math.log(0.2) + (10 / 39) * 0.5, -(10 / 3) * math.log(0.2) + (30 / 7) * 0.5], rel=1e-5)
    # a neighbour mistake (distance 1) is cheaper than a two-step one
    near = uce(logits_of([0.2, 0.5, 0.3]), torch.tensor([0])).item()
    assert near == approx(-(10 / 18) * math.log(0.2) - (5 / 19) * math.log(0.5), rel=1e-5)
    # gradients flow through p_t and p_h
    x = logits.clone().requires_grad_(True)
    UnbalancedCrossEntropyLoss.from_counts([6, 3, 1], D3)(x, target).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_uce_is_stable_for_confident_wrong_predictions():
    logits = torch.tensor([[0.0, 0.0, 60.0]])
    loss = UnbalancedCrossEntropyLoss.from_counts([6, 3, 1], D3)(logits, torch.tensor([0]))
    assert loss.item() == approx((10 / 18) * 60 + (10 / 39) * (60 - math.log(2)), rel=1e-4)


def test_weighted_ce_and_inverse_frequency_weights():
    logits = logits_of([0.5, 0.25, 0.25], [0.2, 0.2, 0.6])
    target = torch.tensor([0, 2])
    w = [0.2, 0.3, 0.5]
    got = WeightedCrossEntropyLoss(w)(logits, target).item()
    assert got == approx((-0.2 * math.log(0.5) - 0.5 * math.log(0.6)) / 0.7, rel=1e-5)
    assert WeightedCrossEntropyLoss()(logits, target).item() == approx(-(math.log(0.5) + math.log(0.6)) / 2, rel=1e-5)
    assert inverse_frequency_weights([1, 3]).tolist() == approx([0.75, 0.25])


# ---- CCC and CAGE §4.1 --------------------------------------------------------------------------

def test_ccc_known_cases():
    x = np.array([1.0, 2.0, 3.0])
    assert M.ccc(x, x) == approx(1.0)
    assert M.ccc(x, x + 1) == approx(4 / 7)       # 2(2/3) / (2/3 + 2/3 + 1)
    assert M.ccc(x, 2 * x) == approx(4 / 11)      # 2(4/3) / (2/3 + 8/3 + 4)
    assert M.ccc(x, -x) == approx(-1 / 13)        # 2(-2/3) / (2/3 + 2/3 + 16)
    assert M.ccc(x - 2, 2 - x) == approx(-1.0)
    two = M.ccc(np.c_[x, x], np.c_[x, x + 1])
    assert two.tolist() == approx([1.0, 4 / 7])
    assert math.isnan(M.ccc([1.0, 1.0], [1.0, 1.0]))
    t = torch.tensor(x)
    assert torch_ccc(t, t).item() == approx(1.0)
    assert torch_ccc(t, t + 1).item() == approx(4 / 7, rel=1e-6)
    assert torch_ccc(t, 2 * t).item() == approx(4 / 11, rel=1e-6)
    assert ConcordanceCorrelationLoss()(t[:, None], (2 * t)[:, None]).item() == approx(7 / 11, rel=1e-6)


def test_cage_losses_by_hand():
    logits = logits_of([0.5, 0.25, 0.25], [0.2, 0.2, 0.6])
    target = torch.tensor([0, 2])
    va_pred = torch.tensor([[0.1, 0.2], [-0.3, 0.4]])
    va_true = torch.tensor([[0.0, 0.0], [0.0, 0.5]])
    wce = (-0.2 * math.log(0.5) - 0.5 * math.log(0.6)) / 0.7
    mse = (0.01 + 0.04 + 0.09 + 0.01) / 4
    combined = CageCombinedLoss([0.2, 0.3, 0.5])            # α = 5 (CAGE Table 5)
    assert combined(logits, target, va_pred, va_true).item() == approx(wce + 5 * mse, rel=1e-5)
    # valence: true constant -> CCC 0; arousal: CCC = 2(0.025) / (0.01 + 0.0625 + 0.0025) = 2/3
    va = CageValenceArousalLoss()                            # β = 3 (CAGE Table 5)
    parts = va.parts(va_pred, va_true)
    assert parts["ccc"].item() == approx(((1 - 0) + (1 - 2 / 3)) / 2, rel=1e-5)
    assert parts["total"].item() == approx(2 / 3 + 3 * mse, rel=1e-5)


# ---- FindingEmo §3 Eq. 2 and early stopping -----------------------------------------------------

def test_findingemo_lr_rule():
    got = [findingemo_lr(e, 0.1) for e in range(10)]
    s2, s3 = 0.1 / math.sqrt(2), 0.1 / math.sqrt(3)
    assert got == approx([0.1, 0.1, 0.1, s2, s2, s2, s3, s3, s3, 0.05])
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = findingemo_scheduler(opt)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == approx([findingemo_lr(e, 0.01) for e in range(10)])


def test_early_stopping_on_best_loss():
    losses = [1.0, 0.9, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.90, 0.91]
    wf1s = [0.1, 0.2, 0.3, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 0.37]
    es = EarlyStopping()
    stops = [es.update(e, l, f) for e, (l, f) in enumerate(zip(losses, wf1s))]
    assert stops.index(True) == 8            # best loss at epoch 2 lies 6 epochs behind epoch 8
    assert es.stop_reason == "patience:loss" and es.stop_epoch == 8 and es.best_epoch == 2
    assert es.best_epochs == {"loss": 2, "wf1": 8}


def test_early_stopping_on_best_wf1_ties_and_max_epochs():
    es = EarlyStopping()
    wf1s = [0.2, 0.5, 0.5, 0.4, 0.5, 0.3, 0.45, 0.5]  # best 0.5 first reached at epoch 1; ties don't count
    stop_at = next(e for e, f in enumerate(wf1s) if es.update(e, loss=1.0 - 0.01 * e, wf1=f))
    assert stop_at == 7 and es.stop_reason == "patience:wf1" and es.best_epoch == 1
    es = EarlyStopping(max_epochs=5)
    flags = [es.update(e, loss=1.0 / (e + 1), wf1=0.1 * e) for e in range(5)]
    assert flags == [False] * 4 + [True] and es.stop_reason == "max_epochs" and es.best_epoch == 4
    es = EarlyStopping(patience=2, monitors={"mse": "min"})
    flags = [es.update(e, mse=m) for e, m in enumerate([3.0, 2.0, 2.5, 2.4])]
    assert flags == [False, False, False, True] and es.stop_reason == "patience:mse"


# ---- Deep Affect §2.3 ---------------------------------------------------------------------------

def test_deep_affect_plateau_schedule():
    p = DeepAffectPlateau()
    assert p.lr == 4e-4
    flags = [p.step(x) for x in [1.0, 0.9, 0.9, 0.95, 0.91, 0.92, 0.93, 0.94]]
    assert flags == [False] * 7 + [True] and p.best_epoch == 1
    assert [lr for _, _, lr in p.history] == approx([4e-4] * 6 + [4e-5] * 2)
    p = DeepAffectPlateau()
    seq = [1.0, 1, 1, 1, 1, 0.5, 1, 1, 1, 1, 0.4, 1, 1, 1, 1, 1, 1]
    flags = [p.step(x) for x in seq]
    lrs = [lr for _, _, lr in p.history]
    assert lrs[5] == approx(4e-5) and lrs[10] == approx(6e-6)   # 4e-6 clamped to the 6e-6 floor
    assert lrs[-1] == approx(6e-6) and flags.index(True) == 16 and p.best_epoch == 10
    net = torch.nn.Linear(2, 1)
    opt = deep_affect_optimizer(net.parameters())
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["lr"] == 4e-4
    p.apply(opt)
    assert opt.param_groups[0]["lr"] == approx(6e-6)


def test_deep_affect_network_shapes():
    x = [torch.randn(4, 1000), torch.randn(4, 365), torch.randn(4, 5)]   # object, scene, 5-FER
    shared = DeepAffectRegressor(architecture="shared", seed=0).eval()
    assert shared.in_dim == 1370 and shared(x).shape == (4, 2)
    sizes = [(m.in_features, m.out_features) for m in shared.modules() if isinstance(m, torch.nn.Linear)]
    assert sizes == [(1370, 3000), (3000, 1000), (1000, 500), (500, 2)]
    drops = [m.p for m in shared.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.5, 0.5, 0.5]
    split = DeepAffectRegressor({"object": 1000, "scene": 365, "fer9": 9}, "split", hidden=(30, 20, 10), seed=0)
    assert split.in_dim == 1374 and set(split.members) == {"valence", "arousal"}
    assert split.eval()(torch.randn(3, 1374)).shape == (3, 2)
    assert [m.out_features for m in split.members["arousal"] if isinstance(m, torch.nn.Linear)] == [30, 20, 10, 1]
    with pytest.raises(ValueError):
        shared(torch.randn(2, 10))


def test_seeded_inits_are_reproducible():
    state = torch.get_rng_state()
    a = DeepAffectRegressor(50, "split", hidden=(16, 8, 4), seed=7).state_dict()
    b = DeepAffectRegressor(50, "split", hidden=(16, 8, 4), seed=7).state_dict()
    c = DeepAffectRegressor(50, "split", hidden=(16, 8, 4), seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    h1, h2 = CageHead(32, 8, hidden=16, seed=3), CageHead(32, 8, hidden=16, seed=3)
    assert all(torch.equal(v, h2.state_dict()[k]) for k, v in h1.state_dict().items())
    assert torch.equal(state, torch.get_rng_state())   # the global RNG is left alone


def test_cage_head_with_combined_loss():
    head = CageHead(32, 8, seed=0)
    logits, va = head(torch.randn(5, 32))
    assert logits.shape == (5, 8) and va.shape == (5, 2)
    loss = CageCombinedLoss(inverse_frequency_weights([5, 9, 2, 1, 1, 1, 3, 1]))(
        logits, torch.tensor([0, 1, 2, 3, 7]), va, torch.zeros(5, 2))
    loss.backward()
    assert all(p.grad is not None for p in head.parameters())
    _, bounded = CageHead(4, 3, va_activation="tanh", seed=0)(100 * torch.randn(6, 4))
    assert bounded.abs().max() <= 1


# ---- AffectNet+ §4.3: W-MAE, W-FR; classification metrics ---------------------------------------

def test_w_mae_and_w_fr_by_hand():
    truth = [[0.1, 0.6, 0.3, 0.0], [0.9, 0.05, 0.03, 0.02], [0.9, 0.8, 0.1, 0.0]]
    pred = [[0.2, 0.4, 0.3, 0.1], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.9, 0.9]]
    # weights by rank 1, 1/2, 1/3, 1/4; e_k = (1/n) sum_i w_i |diff_i|
    e0 = (0.1 / 3 + 1 * 0.2 + 0.5 * 0.0 + 0.25 * 0.1) / 4
    e1 = (1 * 0.9 + 0.5 * 0.05 + 0.03 / 3 + 0.25 * 0.98) / 4       # 0.295: just below ε
    e2 = (1 * 0.9 + 0.5 * 0.8 + 0.8 / 3 + 0.25 * 0.9) / 4          # 0.448: a failure
    assert M.weighted_errors(truth, pred).tolist() == approx([e0, e1, e2])
    assert M.w_mae(truth, pred) == approx(100 * (e0 + e1 + e2) / 3)
    assert M.w_fr(truth, pred) == approx(100 / 3)
    assert M.w_fr(truth, pred, eps=0.29) == approx(200 / 3)
    assert M.w_fr(truth, pred, percent=False) == approx(1 / 3)


def test_rank_weights_and_ties():
    assert M.rank_weights([[0.1, 0.6, 0.3, 0.0]]).tolist() == [approx([1 / 3, 1, 1 / 2, 1 / 4])]
    tied = [[0.5, 0.5, 0.0, 0.0]]
    assert M.rank_weights(tied).tolist() == [approx([0.75, 0.75, 7 / 24, 7 / 24])]
    assert M.rank_weights(tied, ties="ordinal").tolist() == [approx([1, 1 / 2, 1 / 3, 1 / 4])]
    assert M.rank_weights(tied, ties="min").tolist() == [approx([1, 1, 1 / 3, 1 / 3])]
    assert M.rank_weights(np.random.rand(5, 8)).sum(axis=1) == approx([sum(1 / r for r in range(1, 9))] * 5)


def test_classification_metrics_by_hand():
    y, p = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    assert M.accuracy(y, p) == approx(3 / 5)
    assert M.f1(y, p, average=None).tolist() == approx([0.5, 0.8, 0.0])
    assert M.f1(y, p) == approx(1.3 / 3)
    assert M.weighted_f1(y, p) == approx((2 * 0.5 + 2 * 0.8 + 0) / 5)
    # AffectNet+ Eq. 3 per class: 1/2 (TP/(TP+FP) + TN/(TN+FN)); class 2 never predicted -> 0 + 4/5
    per = M.average_accuracy(y, p, labels=[0, 1, 2], per_class=True)
    assert per.tolist() == approx([0.5 * (1 / 2 + 2 / 3), 0.5 * (2 / 3 + 2 / 2), 0.5 * (0 + 4 / 5)])
    assert M.average_accuracy(y, p) == approx(per.mean())
    bal = M.average_accuracy(y, p, labels=[0, 1, 2], per_class=True, definition="balanced")
    assert bal[2] == approx(0.5 * (0 / 1 + 4 / 4))
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    # class 1 positives at rows 2, 3 (ranked first): AP 1; class 0 positives rows 0, 1: AP 1
    assert M.average_precision([0, 0, 1, 1], scores) == approx(1.0)
    s = np.array([0.9, 0.8, 0.3, 0.1])
    ap = M.average_precision([1, 0, 0, 1], np.c_[s, 1 - s], average=None)
    assert ap.tolist() == approx([(1 / 2 + 2 / 3) / 2, (1 + 2 / 4) / 2])
    three = M.average_precision([0, 1, 0, 1], np.c_[s, 1 - s, np.zeros(4)], average=None)
    assert math.isnan(three[2])


def test_metrics_table_long_format():
    rows = M.classification_rows("test", [0, 0, 1, 1, 2], [0, 1, 1, 1, 0], n_classes=3,
                                 class_names=["Low", "Medium", "High"])
    rows += M.regression_rows("test", np.c_[[1.0, 2, 3], [1.0, 2, 3]], np.c_[[1.0, 2, 3], [2.0, 3, 4]])
    rows += M.soft_label_rows("test", [[0.6, 0.4], [0.1, 0.9]], [[0.5, 0.5], [0.1, 0.9]], groups=[0, 1],
                              group_names=["a", "b"])
    df = M.metrics_table(rows)
    assert list(df.columns) == ["split", "metric", "class", "value"]
    overall = df[df["class"].isna()].set_index("metric")["value"]
    assert overall["weighted_f1"] == approx(0.52) and overall["accuracy"] == approx(0.6)
    assert df[(df.metric == "f1") & (df["class"] == "Medium")]["value"].item() == approx(0.8)
    assert df[(df.metric == "ccc") & (df["class"] == "arousal")]["value"].item() == approx(4 / 7)
    assert overall["ccc"] == approx((1 + 4 / 7) / 2) and overall["mse"] == approx(0.5)
    assert df[(df.metric == "w_mae") & (df["class"] == "b")]["value"].item() == approx(0.0)
    assert df["class"].isna().sum() == 10 and (df.split == "test").all()


# ---- held-out images: a head never scored on an image its backbone trained on ----------------------
def test_head_metrics_leave_out_held_out_images_its_backbone_trained_on():
    import pandas as pd

    from ops.training.classifier import HeadSpec
    from ops.training.predictors import train_head_task

    rng = np.random.default_rng(5)
    n = 120
    shas = [f"{i:064x}" for i in range(n)]
    y = np.array(["a", "b"] * (n // 2))
    X = rng.normal(size=(n, 4)).astype("float32") + (y == "a")[:, None] * 2.0
    pos = {s: i for i, s in enumerate(shas)}

    def feats(ids):
        return X[[pos[i] for i in ids]], np.ones(len(ids), bool)

    lab = pd.DataFrame({"sha256": shas, "label": y})
    # the backbone saw the first 90 images and held out every 3rd of them; the last 30 are new to it
    bb = {s: (i % 3 == 0) for i, s in enumerate(shas[:90])}
    trained_on_by_backbone = {s for s, h in bb.items() if not h}
    spec = HeadSpec(epochs=5, patience=5)
    _, plain, head0 = train_head_task("t", lab, ["a", "b"], feats, spec, 0.2, 0, "ext", "bb", "snap", "fp")
    _, meta, head = train_head_task("t", lab, ["a", "b"], feats, spec, 0.2, 0, "ext", "bb", "snap", "fp",
                                    backbone_heldout=bb)
    own_cut = set(plain["holdout"]["sha256"])
    assert own_cut & trained_on_by_backbone          # the head's own cut alone would score such images
    scored = set(meta["holdout"]["sha256"])
    assert scored == own_cut - trained_on_by_backbone
    assert meta["holdout"]["not_scored_backbone_trained_on"] == len(own_cut & trained_on_by_backbone)
    assert meta["metrics"]["n_scored"] == len(scored) and meta["metrics"]["n_holdout"] == len(own_cut)
    # the same training images, so the same model: only the metrics change
    assert meta["metrics"]["n_train"] == plain["metrics"]["n_train"]
    np.testing.assert_array_equal(head.predict_proba(X), head0.predict_proba(X))


# ---- a head is kept while its labels moved within the budget ------------------------------------------
def test_a_head_is_kept_within_the_label_budget_and_trained_again_beyond_it(tmp_path):
    """A predictor head (the keep/reject and Emo8 heads) found again when a few labels arrive, with the
    metrics and held-out images it was trained with; trained again past models.retrain_label_change,
    or on other features."""
    import pandas as pd

    from ops.training.classifier import HeadSpec
    from ops.training.predictors import fit_or_reuse, head_label_budget, train_head_task
    from warehouse.models import ModelStore

    rng = np.random.default_rng(11)
    n = 130
    shas = [f"{i:064x}" for i in range(n)]
    y = np.array(["a", "b"] * (n // 2))
    X = rng.normal(size=(n, 4)).astype("float32") + (y == "a")[:, None] * 2.0
    pos = {s: i for i, s in enumerate(shas)}

    def feats(ids):
        return X[[pos[i] for i in ids]], np.ones(len(ids), bool)

    store, spec, fits = ModelStore(tmp_path), HeadSpec(epochs=3, patience=3), []

    def attempt(lab: pd.DataFrame, extractor: str = "ext"):
        def fit():
            data, meta, _ = train_head_task("keep_reject", lab, ["a", "b"], feats, spec, 0.2, 0, extractor, "bb",
                                            f"snap{len(fits)}", "fp")
            fits.append(meta)
            return data, meta
        budget = head_label_budget("keep_reject", extractor, "fp", lab, 0.2, 0, 0.10)
        return fit_or_reuse(store, "keep_reject", f"key-{extractor}-{len(lab)}-{lab['label'].tolist()}", fit, budget)

    first = pd.DataFrame({"sha256": shas[:120], "label": y[:120]})
    d1, trained = attempt(first)
    assert trained and len(fits) == 1
    stored = store.labels_of(d1)                      # the cut stored beside it is the one it was scored on
    assert set(stored.loc[stored["heldout"], "sha256"]) == set(fits[0]["holdout"]["sha256"])

    # 6 new images and 2 relabelled of 120 trained on: 6.7 % <= 10 %: kept, with its own metrics
    grown = pd.DataFrame({"sha256": shas[:126], "label": y[:126]})
    grown.loc[[0, 1], "label"] = grown.loc[[0, 1], "label"].map({"a": "b", "b": "a"})
    d2, trained = attempt(grown)
    assert not trained and len(fits) == 1 and d2["model_version"] == d1["model_version"]
    assert (d2["label_budget"]["added"], d2["label_budget"]["relabelled"]) == (6, 2)
    assert d2["metrics"] == d1["metrics"]

    # 14 relabelled of 120: 11.7 % > 10 %: trained again
    moved = first.copy()
    moved.loc[range(14), "label"] = moved.loc[range(14), "label"].map({"a": "b", "b": "a"})
    d3, trained = attempt(moved)
    assert trained and len(fits) == 2 and d3["model_version"] != d1["model_version"]
    # other features (new backbone weights) never share a head
    _, trained = attempt(first, extractor="other-ext")
    assert trained and len(fits) == 3
