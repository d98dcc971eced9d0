"""Annotator grading on fixed overlap images (FindingEmo §2.3.3): s, s_alt, decisions, policy, Spearman."""

import numpy as np
import pandas as pd
import pytest

from ops.annotations.grading import (
    GoldReference, example_gold, excluded_annotators, gold_from_frame, gold_serving_order,
    grade_annotators, score_duration_correlation,
)
from ops.labels.merge import merge_annotations
from ops.annotations.taxonomy import EMO24_TO_EMO8

GOLD = example_gold(["g1", "g2", "g3", "g4", "g5"])
# g1 keep V[2,3] A[3,5] Joy; g2 keep V[-3,-2] A[3,6] Sadness; g3 keep V[-3,-1] A[4,6] Anger;
# g4 keep V[0,2] A[1,3] Trust; g5 reject


def row(ann, img, keep=True, v=None, a=None, e24=None):
    return {"annotator_id": ann, "image_id": img, "keep": keep, "valence": v, "arousal": a,
            "emotion24": e24, "emotion8": EMO24_TO_EMO8.get(e24)}


def correct(ann, skip=()):
    out = [row(ann, "g1", True, 2, 4, "Serenity"), row(ann, "g2", True, -3, 5, "Sadness"),
           row(ann, "g3", True, -2, 5, "Rage"), row(ann, "g4", True, 1, 2, "Trust"), row(ann, "g5", False)]
    return [r if r["image_id"] not in skip else row(ann, r["image_id"], False) for r in out]


def fixture() -> pd.DataFrame:
    rows = []
    rows += correct("perfect") + [row("perfect", "x1", True, 1, 1, "Joy")]
    rows += correct("skipper", skip={"g4"})                 # rejects one keep image
    rows += correct("strict", skip={"g1", "g4"})            # rejects two keep images
    rows += [row("sloppy", "g1", True, 0, 1, "Sadness"), row("sloppy", "g2", True, -3, 5, "Joy"),
             row("sloppy", "g3", True, 2, 2, "Joy"), row("sloppy", "g4", True, 1, 2, "Trust"),
             row("sloppy", "g5", True, 0, 0, "Joy"), row("sloppy", "x1", True, 3, 6, "Fear")]
    rows += correct("partial")[:2]
    rows += [row("newbie", "x1", True, 2, 3, "Joy"), row("newbie", "x2", False)]
    return pd.DataFrame(rows)


def test_scores_and_alt_scores():
    sc = grade_annotators(fixture(), GOLD).set_index("annotator_id")
    assert sc.loc["perfect", ["gold_points", "gold_points_possible"]].tolist() == [20, 20]
    expected = {  # (s, s_alt, n ignored for s_alt, decision)
        "perfect": (1.0, 1.0, 0, "accepted"),
        "skipper": (0.8, 1.0, 1, "accepted"),    # s >= 0.8 is accepted
        "strict": (0.6, 1.0, 2, "rejected"),
        "sloppy": (9 / 20, 9 / 20, 0, "rejected"),
        "partial": (8 / 20, 8 / 20, 0, "rejected"),  # unseen gold images score 0
    }
    for ann, (s, s_alt, ign, dec) in expected.items():
        assert sc.loc[ann, "score"] == pytest.approx(s), ann
        assert sc.loc[ann, "score_alt"] == pytest.approx(s_alt), ann
        assert sc.loc[ann, "n_gold_ignored_alt"] == ign
        assert sc.loc[ann, "decision"] == dec, ann
    assert sc.loc["newbie", "decision"] == "ungraded" and np.isnan(sc.loc["newbie", "score"])
    assert sc.loc["sloppy", ["keep_points", "valence_points", "arousal_points", "emotion_points"]].tolist() == [4, 2, 2, 1]
    assert sc.loc["perfect", ["n_annotations", "n_keep", "n_reject", "n_gold_seen"]].tolist() == [6, 5, 1, 5]
    assert sc.loc["newbie", ["n_annotations", "n_keep", "n_reject", "n_gold_seen"]].tolist() == [2, 1, 1, 0]
    assert "s=0.60 (12/20)" in sc.loc["strict", "reason"] and "< 0.8" in sc.loc["strict", "reason"]
    assert "saw 2 of 5" in sc.loc["partial", "reason"]
    assert "none of the 5 gold" in sc.loc["newbie", "reason"]


def test_policy_threshold_and_decision_score():
    a = fixture()
    sc = grade_annotators(a, GOLD)
    assert excluded_annotators(sc) == ["partial", "sloppy", "strict"]
    sc2 = grade_annotators(a, GOLD, policy="exclude_rejected_and_ungraded")
    assert excluded_annotators(sc2) == ["newbie", "partial", "sloppy", "strict"]
    assert excluded_annotators(grade_annotators(a, GOLD, policy="keep_all")) == []
    sc3 = grade_annotators(a, GOLD, score_for_decision="score_alt").set_index("annotator_id")
    assert sc3.loc["strict", "decision"] == "accepted"
    sc4 = grade_annotators(a, GOLD, threshold=0.9).set_index("annotator_id")
    assert sc4.loc["skipper", "decision"] == "rejected"
    # the exclusion reaches the merge: x1 keeps only perfect's and newbie's votes
    m = merge_annotations(a, excluded_annotators=sc).set_index("image_id")
    assert m.loc["x1", "n_excluded"] == 1 and m.loc["x1", "emotion8_n_votes"] == 2


def test_gold_from_frame_and_order():
    df = pd.DataFrame({"image_id": ["b", "a"], "keep": [True, False], "valence_min": [1, None],
                       "valence_max": [3, None], "arousal_min": [0, None], "arousal_max": [2, None],
                       "emotion8": ["serenity", None]})
    g = gold_from_frame(df)
    assert g[0] == GoldReference("b", True, (1.0, 3.0), (0.0, 2.0), "Joy")  # Emo24 -> leaf
    assert gold_serving_order(df) == ["b", "a"]
    with pytest.raises(ValueError):
        GoldReference("z", True, (3, 1))
    with pytest.raises(ValueError):
        GoldReference("z", True, emotion8="Happy")


def test_spearman_completion_time():
    a = fixture()
    durations = {"perfect": 600, "skipper": 1200, "strict": 1800, "sloppy": 2400, "partial": 3000, "newbie": 10}
    sc = grade_annotators(a, GOLD, durations=durations)
    assert sc.set_index("annotator_id").loc["sloppy", "duration_seconds"] == 2400
    r = score_duration_correlation(sc).set_index("score")
    assert r.loc["score", "rho"] == pytest.approx(-1.0) and r.loc["score", "n"] == 5  # ungraded left out
    assert r.loc["score_alt", "rho"] < 0
    td = pd.Series(pd.to_timedelta(list(durations.values()), unit="s"), index=list(durations))
    r2 = score_duration_correlation(grade_annotators(a, GOLD), td).set_index("score")
    assert r2.loc["score", "rho"] == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        score_duration_correlation(grade_annotators(a, GOLD))
