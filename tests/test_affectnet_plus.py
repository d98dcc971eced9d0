"""AffectNet+ label mathematics (§3.1-3.5, Supplement II) against hand-computed cases.

The expected values are worked out by hand in the comments / literals, independently of the code.
Emotion order (Eq. 1): Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from models.au_classifier import (
    AUBasedClassifier,
    AUClassifierHead,
    AUClassifierLoss,
    au_multilabel_ce,
    bpv_cross_entropy,
)
from ops.labels import affectnet_plus as ap

AU = [1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 20, 22, 23, 24, 25, 26, 27]  # Eq. 6, typed by hand


def vec(**aus: float) -> np.ndarray:
    """A 21-AU vector from AU numbers: vec(AU6=0.5)."""
    v = np.zeros(21)
    for k, x in aus.items():
        v[AU.index(int(k[2:]))] = x
    return v


# ---- Table 2 / Eq. 6 -------------------------------------------------------------------------------

def test_au_vectors_follow_table2():
    assert ap.ACTION_UNITS == tuple(AU)
    assert ap.EMOTIONS == ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
    np.testing.assert_array_equal(ap.au_vector("Happy"), vec(AU6=1, AU12=1, AU25=1))
    np.testing.assert_array_equal(ap.au_vector("contempt"), vec(AU12=1, AU14=1))
    np.testing.assert_array_equal(ap.au_vector("Neutral"), np.zeros(21))
    m = ap.au_matrix()
    assert m.shape == (8, 21)
    # |Table 2 sets|: Neutral 0, Happy 3, Sad 6, Surprise 5, Fear 8, Disgust 6, Anger 10, Contempt 2
    np.testing.assert_array_equal(m.sum(axis=1), [0, 3, 6, 5, 8, 6, 10, 2])
    np.testing.assert_array_equal(m[ap.emotion_index("Angry")], ap.au_vector("Anger"))  # alias


# ---- Eq. 8 -----------------------------------------------------------------------------------------

def test_au_scores_derived_from_table2_by_hand():
    s = dict(zip(AU, ap.au_scores()))
    assert s[14] == 1.0                       # Contempt only
    assert s[25] == pytest.approx(1 / 4)      # Happy, Fear, Disgust, Anger
    assert s[1] == pytest.approx(1 / 3)       # Sad, Surprise, Fear
    assert s[2] == pytest.approx(1 / 2)       # Surprise, Fear
    assert s[12] == pytest.approx(1 / 2)      # Happy, Contempt
    assert s[17] == pytest.approx(1 / 3)      # Sad, Disgust, Anger
    assert s[7] == 1.0 and s[20] == 1.0       # Anger only; Fear only
    assert s[26] == pytest.approx(1 / 3)      # Surprise, Fear, Anger   (printed 0.25)
    assert s[27] == pytest.approx(1 / 3)      # Surprise, Fear, Disgust (printed 0.5)


def test_eq8_printed_and_its_differences():
    printed = ap.au_scores("printed")
    assert list(printed) == [0.33, 0.5, 0.33, 0.33, 0.5, 1.0, 1.0, 0.5, 1.0, 0.5, 1.0,
                             1.0, 1.0, 0.33, 1.0, 1.0, 1.0, 1.0, 0.25, 0.25, 0.5]
    d = ap.au_score_differences()
    assert list(d["au"]) == [26, 27]
    assert list(d["printed"]) == [0.25, 0.5]
    assert list(d["emotions"]) == ["Surprise, Fear, Anger", "Surprise, Fear, Disgust"]
    assert d["derived"].tolist() == pytest.approx([1 / 3, 1 / 3])


# ---- Table 3 ---------------------------------------------------------------------------------------

def test_table3_derived_and_the_two_printed_cells_that_differ():
    t = ap.shared_au_matrix()
    assert t.loc["Disgust", "Anger"] == 3      # {9,10,16,17,25,27} & {4,5,7,10,17,22,23,24,25,26} = {10,17,25}
    assert t.loc["Fear", "Anger"] == 4         # {4,5,25,26}
    assert t.loc["Surprise", "Fear"] == 5      # {1,2,5,26,27}
    assert t.loc["Happy", "Contempt"] == 1     # {12}
    assert (t.loc["Neutral"] == 0).all()
    assert ap.printed_table3().loc["Disgust", "Anger"] == 4
    d = ap.table3_differences()
    assert sorted(zip(d["row"], d["column"])) == [("Anger", "Disgust"), ("Disgust", "Anger")]
    assert set(d["printed"]) == {4} and set(d["derived"]) == {3}
    assert set(d["shared_aus"]) == {"AU10, AU17, AU25"}


# ---- Eq. 3 -----------------------------------------------------------------------------------------

def test_confidence_score_from_confusion_both_variants():
    # ResNet-50 Neutral on test-MAS (100 positives, 700 negatives), recovered from Table 6:
    # TP = 77, FN = 23, TN = 574, FP = 126; layout [[TN, FP], [FN, TP]]
    cm = [[574, 126], [23, 77]]
    printed = 0.5 * (77 / (77 + 126) + 574 / (574 + 23))   # precision 0.37931 + NPV 0.96147
    balanced = 0.5 * (77 / 100 + 574 / 700)                 # 0.5 * (0.77 + 0.82) = 0.795
    assert ap.confidence_score_from_confusion(cm) == pytest.approx(printed)
    assert round(100 * printed, 1) == 67.0                  # = Table VIII "Prec"
    assert ap.confidence_score_from_confusion(cm, "balanced_accuracy") == pytest.approx(0.795)  # Table X 79.50
    y_true = np.r_[np.ones(100), np.zeros(700)].astype(bool)
    y_pred = np.r_[np.ones(77), np.zeros(23), np.ones(126), np.zeros(574)].astype(bool)
    assert ap.confidence_score_from_predictions(y_true, y_pred) == pytest.approx(printed)
    assert ap.confidence_score_from_predictions(y_true, y_pred, "balanced_accuracy") == pytest.approx(balanced)
    assert ap.confidence_score(77, 126, 574, 23) == pytest.approx(printed)


def test_confidence_score_vectorized_and_zero_denominators():
    # tp, fp, tn, fn per classifier
    cs = ap.confidence_score([8, 0], [2, 0], [6, 5], [4, 5])
    # 1st: ½(8/10 + 6/10) = 0.7; 2nd: never predicts positive -> TP/(TP+FP) = 0/0 -> 0, TN/(TN+FN) = 5/10
    np.testing.assert_allclose(cs, [0.7, 0.25])
    assert np.isnan(ap.confidence_score(0, 0, 5, 5, zero_division=np.nan))
    # balanced: no positives at all -> TPR term 0, TNR = 5/5
    assert ap.confidence_score(0, 0, 5, 0, "balanced_accuracy") == pytest.approx(0.5)
    with pytest.raises(ValueError):
        ap.confidence_score(1, 1, 1, 1, variant="f1")


# ---- Eq. 4, 5, 13, 14 ------------------------------------------------------------------------------

def test_semantic_scores_eq4_eq5_for_three_models():
    cs = {"RN": np.full(8, 0.9), "EN": np.full(8, 0.6), "XN": np.full(8, 0.3)}
    p = {"RN": np.full((2, 8), 0.5), "EN": np.full((2, 8), 0.5), "XN": np.full((2, 8), 1.0)}
    p["RN"][1, 1] = 0.0
    out = ap.sc_eb_mean(cs, p)
    # row 0: (0.9*0.5 + 0.6*0.5 + 0.3*1.0) / 3 = (0.45 + 0.30 + 0.30) / 3 = 0.35
    # row 1, Happy: (0.9*0.0 + 0.30 + 0.30) / 3 = 0.2
    assert out.shape == (2, 8)
    assert out[0, 0] == pytest.approx(0.35) and out[1, 1] == pytest.approx(0.2)
    names = ["RN", "EN", "XN"]
    arr = ap.sc_eb_mean(np.stack([cs[k] for k in names]), np.stack([p[k] for k in names]))
    np.testing.assert_allclose(arr, out)
    # Eq. 4 alone: 0.9 * 0.5
    assert ap.semantic_score(cs["RN"], p["RN"])[0, 3] == pytest.approx(0.45)
    # M = 2: (0.9*0.5 + 0.6*0.5) / 2 = 0.375
    assert ap.sc_eb_mean(np.stack([cs["RN"], cs["EN"]]), np.stack([p["RN"], p["EN"]]))[0, 0] == pytest.approx(0.375)


def test_eq13_eq14():
    cs_au = np.array([0.8871, 0.875, 0.8464, 0.9071, 0.89, 0.8628, 0.8478, 0.7778])  # Table 4, AU row
    p = np.array([[0.5, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 1.0]])
    sc = ap.sc_au(cs_au, p)
    assert sc[0, 0] == pytest.approx(0.44355) and sc[0, 7] == pytest.approx(0.7778) and sc[0, 1] == pytest.approx(0.175)
    sl = ap.soft_label(np.array([[0.3, 0.1, 0, 0, 0, 0, 0, 0.2]]), sc)
    assert sl[0, 0] == pytest.approx((0.3 + 0.44355) / 2) and sl[0, 7] == pytest.approx((0.2 + 0.7778) / 2)


# ---- Eq. 9-12 --------------------------------------------------------------------------------------

AU_HAT = vec(AU6=0.5, AU12=0.8, AU14=0.4, AU25=1.0)
# derived AUS: AU6 1/2, AU12 1/2, AU14 1, AU25 1/4
# Neutral 0.25 (hyper-parameter); Happy {6,12,25}: .5*.5 + .5*.8 + .25*1 = 0.9; Sad {6}: .25
# Surprise: 0; Fear/Disgust/Anger {25}: .25; Contempt {12,14}: .5*.8 + 1*.4 = 0.8
SV = [0.25, 0.9, 0.25, 0.0, 0.25, 0.25, 0.25, 0.8]          # sum 2.95


def test_similarity_vector_eq9():
    np.testing.assert_allclose(ap.similarity_vector(AU_HAT), SV)
    np.testing.assert_allclose(ap.similarity_vector(np.stack([AU_HAT, np.zeros(21)])), [SV, [0.25] + [0] * 7])
    assert ap.similarity_vector(AU_HAT, sim_neutral=0.1)[0] == 0.1
    # AU26 alone at 0.6: Surprise/Fear/Anger get 1/3*0.6 = 0.2 (derived) vs 0.25*0.6 = 0.15 (printed Eq. 8)
    x = vec(AU26=0.6)
    assert ap.similarity_vector(x)[3] == pytest.approx(0.2)
    assert ap.similarity_vector(x, aus=ap.au_scores("printed"))[3] == pytest.approx(0.15)


def test_bsv_apv_p_eq10_to_12():
    bsv = ap.binary_similarity_vector(SV, "Happy")
    np.testing.assert_allclose(bsv, [0.9, 2.05 / 7])              # (2.95 - 0.9) / 7
    apv = ap.au_probability_vector(bsv)
    a0 = math.exp(0.9) / (math.exp(0.9) + math.exp(2.05 / 7))
    np.testing.assert_allclose(apv, [a0, 1 - a0])
    p = ap.combined_probability([0.7, 0.3], apv)
    np.testing.assert_allclose(p, [(0.7 + a0) / 2, (0.3 + 1 - a0) / 2])
    # per-row gt, N = 2
    bsv2 = ap.binary_similarity_vector(np.array([SV, SV]), [7, 0])
    np.testing.assert_allclose(bsv2, [[0.8, 2.15 / 7], [0.25, 2.7 / 7]])
    # the whole chain for the Happy model
    np.testing.assert_allclose(ap.au_model_probability(AU_HAT[None], np.array([[0.7, 0.3]]), "Happy"),
                               [[(0.7 + a0) / 2, (0.3 + 1 - a0) / 2]])


def test_au_positive_probabilities_uses_each_models_own_emotion():
    au_hat = np.stack([np.stack([AU_HAT, np.zeros(21)])] * 8)          # (8 models, N=2, 21)
    bpv = np.tile(np.array([0.6, 0.4]), (8, 2, 1))                      # (8, 2, 2)
    p = ap.au_positive_probabilities(au_hat, bpv)
    assert p.shape == (2, 8)
    sig = lambda z: 1 / (1 + math.exp(-z))                              # softmax of 2 = sigmoid of difference
    assert p[0, 1] == pytest.approx((0.6 + sig(0.9 - 2.05 / 7)) / 2)    # Happy model
    assert p[0, 7] == pytest.approx((0.6 + sig(0.8 - 2.15 / 7)) / 2)    # Contempt model
    assert p[0, 3] == pytest.approx((0.6 + sig(0.0 - 2.95 / 7)) / 2)    # Surprise model
    # zero ÂU: SV = [.25, 0...]; Neutral model sig(.25 - 0), others sig(0 - .25/7)
    assert p[1, 0] == pytest.approx((0.6 + sig(0.25)) / 2)
    assert p[1, 4] == pytest.approx((0.6 + sig(-0.25 / 7)) / 2)
    by_name = ap.au_positive_probabilities(dict(zip(ap.EMOTIONS[::-1], au_hat[::-1])), dict(zip(ap.EMOTIONS, bpv)))
    np.testing.assert_allclose(by_name, p)


# ---- §3.5.1 subsets --------------------------------------------------------------------------------

def test_difficulty_ranks_and_ties():
    s = [0.1, 0.5, 0.2, 0.2, 0.05, 0.05, 0.3, 0.0]
    # hard Happy 0.5 -> rank 1; Anger 0.3 -> 2; Sad 0.2 (tied with Surprise, above it 0.5, 0.3) -> 3 (both);
    # Neutral 0.1 (above: .5 .3 .2 .2) -> 5; Contempt 0.0 -> 8
    soft = np.array([s] * 7)
    hard = [1, 6, 2, 3, 0, 7, None]
    np.testing.assert_array_equal(ap.hard_label_rank(soft, hard), [1, 2, 3, 3, 5, 8, np.nan])
    assert list(ap.difficulty(soft, hard)) == ["Easy", "Challenging", "Challenging", "Challenging",
                                               "Difficult", "Difficult", None]
    # a tie at the top: both tied labels are top-1 -> Easy; negative code / NaN -> None; names accepted
    top = [0.4, 0.4, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0]
    assert ap.difficulty(top, 0) == "Easy" and ap.difficulty(top, "Happy") == "Easy"
    assert ap.difficulty(top, -1) is None and ap.difficulty(top, float("nan")) is None
    # ties straddling rank 3/4: Fear and Disgust at 0.1 below 0.4, 0.3 -> rank 3 for both -> Challenging
    edge = [0.0, 0.4, 0.3, 0.0, 0.1, 0.1, 0.0, 0.0]
    assert ap.difficulty(edge, "Fear") == ap.difficulty(edge, "Disgust") == "Challenging"
    # hard labels from a nullable float column; soft labels as a frame with lower-case columns, any order
    frame = pd.DataFrame(soft, columns=[e.lower() for e in ap.EMOTIONS])[["contempt", *[e.lower() for e in ap.EMOTIONS[:-1]]]]
    assert list(ap.difficulty(frame, pd.Series([1.0, 6.0, np.nan, 3.0, 0.0, 7.0, 4.0]))) == \
        ["Easy", "Challenging", None, "Challenging", "Difficult", "Difficult", "Difficult"]
    # atol: 0.30000001 counts as a tie with 0.3
    assert ap.difficulty([0.0, 0.30000001, 0.3, 0, 0, 0, 0, 0], 2, atol=1e-6) == "Easy"


# ---- §3.2 negative allocation and sampling ---------------------------------------------------------

def test_negative_allocation_hand_worked():
    # Disgust, n = 70, derived shares: Neutral 0, Happy 1, Sad 1, Surprise 1, Fear 2, Anger 3, Contempt 0 (S = 8)
    # uniform 20 %: 14 / 7 = 2 each; the rest 56 / 8 = 7 per shared AU
    a = ap.negative_allocation("Disgust", 70)
    assert a.to_dict() == {"Neutral": 2, "Happy": 9, "Sad": 9, "Surprise": 9, "Fear": 16, "Anger": 23, "Contempt": 2}
    # printed Table 3 (Anger 4, S = 9): 56/9 = 6.222 per AU -> Happy/Sad/Surprise 8.222, Fear 14.444,
    # Anger 26.889; floors 2+8+8+8+14+26+2 = 68, the 2 left go to the largest remainders .889 (Anger), .444 (Fear)
    b = ap.negative_allocation("Disgust", 70, shared="printed")
    assert b.to_dict() == {"Neutral": 2, "Happy": 8, "Sad": 8, "Surprise": 8, "Fear": 15, "Anger": 27, "Contempt": 2}
    # Fear, n = 100 (S = 14): 20/7 = 2.857 each + 80/14 = 5.714 per AU ->
    # Neutral 2.857, Happy 8.571, Sad 14.286, Surprise 31.429, Disgust 14.286, Anger 25.714, Contempt 2.857
    # floors sum 96; the 4 left: Neutral .857, Contempt .857, Anger .714, Happy .571
    c = ap.negative_allocation("Fear", 100)
    assert c.to_dict() == {"Neutral": 3, "Happy": 9, "Sad": 14, "Surprise": 31, "Disgust": 14, "Anger": 26, "Contempt": 3}
    # Neutral has no AUs: everything uniform, 70 / 7 = 10
    assert set(ap.negative_allocation("Neutral", 70)) == {10}


def test_negative_allocation_caps_and_redistributes():
    # Disgust, n = 70, only 13 Anger available (quota 23): Anger = 13, the other quotas (2, 9, 9, 9, 16, 2;
    # sum 47) scale by 57/47: Neutral 2.426, Happy/Sad/Surprise 10.915, Fear 19.404, Contempt 2.426;
    # floors 2+10+10+10+19+2 = 53 (+13 = 66); 4 left: .915 x3 (Happy, Sad, Surprise), then the tie
    # .426 Neutral = Contempt goes to Neutral (Eq. 1 order)
    avail = {"Neutral": 50, "Happy": 50, "Sad": 50, "Surprise": 50, "Fear": 50, "Anger": 13, "Contempt": 50}
    a = ap.negative_allocation("Disgust", 70, avail)
    assert a.to_dict() == {"Neutral": 3, "Happy": 11, "Sad": 11, "Surprise": 11, "Fear": 19, "Anger": 13, "Contempt": 2}
    with pytest.raises(ValueError):
        ap.negative_allocation("Disgust", 70, {"Happy": 30, "Sad": 30})


def test_negative_allocation_invariants():
    rng = np.random.default_rng(1)
    for _ in range(200):
        t = int(rng.integers(8))
        n = int(rng.integers(0, 500))
        avail = rng.integers(0, 120, size=8)
        avail[t] = 0
        if avail.sum() < n:
            continue
        a = ap.negative_allocation(t, n, avail, random_share=float(rng.uniform(0, 1)))
        assert a.sum() == n and (a.to_numpy() >= 0).all()
        assert (a.to_numpy() <= np.delete(avail, t)).all()
    # no random share, tight availability (sum == n), and a target whose sharing emotions run out
    a = ap.negative_allocation("Happy", 30, [0, 0, 5, 5, 5, 5, 5, 5], random_share=0.0)
    assert a.sum() == 30 and a.to_dict() == {"Neutral": 0, "Sad": 5, "Surprise": 5, "Fear": 5, "Disgust": 5,
                                              "Anger": 5, "Contempt": 5}
    # Happy shares AUs with Sad/Fear/Disgust/Anger/Contempt (1 each), none with Neutral/Surprise: with
    # random_share 0 and only 2 items each in the sharing ones, the 10 left go evenly to Neutral/Surprise
    b = ap.negative_allocation("Happy", 20, [50, 0, 2, 50, 2, 2, 2, 2], random_share=0.0)
    assert b.to_dict() == {"Neutral": 5, "Sad": 2, "Surprise": 5, "Fear": 2, "Disgust": 2, "Anger": 2, "Contempt": 2}
    # proportions without caps: large n follows the quotas within rounding
    big = ap.negative_allocation("Anger", 120_000)
    s = ap.shared_au_matrix().loc["Anger"].drop("Anger").to_numpy(float)   # 0,1,2,2,4,3,0 (S = 12)
    expect = 120_000 * (0.2 / 7 + 0.8 * s / 12)
    assert np.abs(big.to_numpy() - expect).max() < 1


def test_sample_negatives_deterministic():
    emos = list(ap.EMOTIONS) + ["Uncertain", None]
    labels = pd.Series([emos[i % 10] for i in range(400)], index=[f"img{i:04d}" for i in range(400)])
    a = ap.sample_negatives("Happy", 60, labels, seed=7)
    b = ap.sample_negatives("Happy", 60, labels.sample(frac=1.0, random_state=3), seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 60 and a["item_id"].is_unique
    assert (labels[a["item_id"]].to_numpy() == a["emotion"].to_numpy()).all()
    assert "Happy" not in set(a["emotion"])
    assert a.groupby("emotion").size().reindex(ap.negative_allocation("Happy", 60).index).tolist() == \
        ap.negative_allocation("Happy", 60, [40] * 8).tolist()
    assert not a.equals(ap.sample_negatives("Happy", 60, labels, seed=8))


# ---- §3.1 test-MAS ---------------------------------------------------------------------------------

def _merged(n_per_emotion: int = 6) -> pd.DataFrame:
    rows = []
    for e in ap.EMOTIONS:
        for j in range(n_per_emotion):
            rows.append({"image_id": f"{e[:3]}{j}", "emotion": e, "emotion_all_agree": j % 3 != 2,
                         "emotion_n_votes": 2 if j != 1 else 1})
    rows += [{"image_id": "unres", "emotion": None, "emotion_all_agree": False, "emotion_n_votes": 2}]
    return pd.DataFrame(rows)


def test_split_mas_candidates_and_determinism():
    m = _merged()   # per emotion: j = 0, 3, 4 are candidates (j = 1 one vote, j = 2 and 5 disagree)
    out = ap.split_mas(m, per_class=2, seed=5)
    test = out[out["split"] == "test"]
    assert test.groupby("emotion").size().to_dict() == {e: 2 for e in ap.EMOTIONS}
    assert test["test_candidate"].all() and not test["pulled_by_group"].any()
    assert out.loc[out["image_id"] == "unres", "split"].item() == "train"
    shuffled = ap.split_mas(m.sample(frac=1.0, random_state=0), per_class=2, seed=5)
    assert set(shuffled.loc[shuffled["split"] == "test", "image_id"]) == set(test["image_id"])
    # more than available: all 3 candidates per emotion
    assert (ap.split_mas(m, per_class=100)["split"] == "test").sum() == 24


def test_split_mas_group_integrity():
    m = _merged(9)
    # families of 3 consecutive ids across emotions: members of mixed emotions, candidates or not
    m["family"] = [f"f{i // 3}" for i in range(len(m))]
    m.loc[m["image_id"] == "unres", "family"] = None
    for seed in range(5):
        out = ap.split_mas(m, per_class=3, seed=seed, groups="family")
        per_family = out.dropna(subset=["family"]).groupby("family")["split"].nunique()
        assert (per_family == 1).all()
        counted = out[(out["split"] == "test") & out["test_candidate"]].groupby("emotion").size()
        assert (counted <= 3).all()
        assert out.loc[out["pulled_by_group"], "split"].eq("test").all()
    a = ap.split_mas(m, per_class=3, seed=2, groups="family")
    pd.testing.assert_frame_equal(a, ap.split_mas(m, per_class=3, seed=2, groups="family"))


# ---- Eq. 7 and the AU-based classifier -------------------------------------------------------------

def _sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_eq7_loss_two_samples_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.0], [0.5, 1.5, -0.5]], dtype=torch.float64)
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    l1 = -(math.log(_sig(2.0)) + math.log(1 - _sig(-1.0)) + math.log(_sig(0.0)))
    l2 = -(math.log(1 - _sig(0.5)) + math.log(1 - _sig(1.5)) + math.log(_sig(-0.5)))
    assert au_multilabel_ce(logits, target).item() == pytest.approx(l1 + l2)
    assert au_multilabel_ce(logits, target, reduction="mean").item() == pytest.approx((l1 + l2) / 2)
    # weights: ω_pos = [2, 1, 1] on active AUs, ω_neg = [1, 3, 1] on inactive AUs
    wp, wn = torch.tensor([2.0, 1.0, 1.0]), torch.tensor([1.0, 3.0, 1.0])
    w1 = -(2 * math.log(_sig(2.0)) + 3 * math.log(1 - _sig(-1.0)) + math.log(_sig(0.0)))
    w2 = -(1 * math.log(1 - _sig(0.5)) + 3 * math.log(1 - _sig(1.5)) + math.log(_sig(-0.5)))
    assert au_multilabel_ce(logits, target, wp * target, wn * (1 - target)).item() == pytest.approx(w1 + w2)
    # 21 AUs, default maps = BCE summed
    x, y = torch.randn(4, 21), (torch.rand(4, 21) > 0.5).float()
    assert au_multilabel_ce(x, y).item() == pytest.approx(F.binary_cross_entropy_with_logits(x, y, reduction="sum").item(), rel=1e-5)
    # numerically stable at extreme logits
    assert torch.isfinite(au_multilabel_ce(torch.tensor([[1e4, -1e4]]), torch.tensor([[0.0, 1.0]])))


def test_bpv_ce_and_heads():
    logits = torch.tensor([[2.0, 0.0], [0.5, 1.0]], dtype=torch.float64)
    expect = -math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(math.exp(1) / (math.exp(0.5) + math.exp(1)))
    assert bpv_cross_entropy(logits, torch.tensor([True, False])).item() == pytest.approx(expect)
    torch.manual_seed(0)
    model = AUBasedClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8)), 8)
    out = model(torch.randn(5, 3, 2, 2))
    assert out.bpv_logits.shape == (5, 2) and out.au_logits.shape == (5, 21)
    assert torch.allclose(out.bpv.sum(-1), torch.ones(5)) and ((out.au_hat > 0) & (out.au_hat < 1)).all()
    target = torch.tensor(np.stack([ap.au_vector(i) for i in [1, 1, 0, 7, 4]]), dtype=torch.float32)
    parts = AUClassifierLoss()(out, target, torch.tensor([True, True, False, False, False]))
    assert parts.total.item() == pytest.approx(parts.au.item() + parts.bpv.item())
    parts.total.backward()
    assert model.head.au.weight.grad is not None
    assert AUClassifierHead(8, hidden=4)(torch.randn(3, 8)).au_logits.shape == (3, 21)


def test_sets_module_imports_first():
    code = ("import ops.labels.affectnet_plus_sets as s; "
            "from ops.labels.affectnet_plus import difficulty; assert difficulty is s.difficulty")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
