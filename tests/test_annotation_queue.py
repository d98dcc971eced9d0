"""Next batch to annotate (FindingEmo §2.3.2: keep threshold 0.75, Emo8 odds inversely proportional
to predicted-label frequency; §2.3.3: overlap images with probability p_R, gold first)."""

import numpy as np
import pandas as pd
import pytest

from ops.annotations.queue import select_next_batch

IMGS = [f"i{j:03d}" for j in range(300)]


def predictions(seed=0):
    rng = np.random.default_rng(seed)
    # Joy predicted 6x as often as Sadness and Fear
    return pd.DataFrame({"image_id": IMGS, "keep_prob": rng.random(len(IMGS)),
                         "emotion8": rng.choice(["Joy"] * 6 + ["Sadness", "Fear"], len(IMGS))})


def annotations():
    rows = [("i000", "a"), ("i000", "b"), ("i001", "a"), ("i002", "a"), ("i002", "b"), ("i002", "c"),
            ("i003", "a"), ("i003", "b"), ("i003", "c"), ("i003", "d"), ("i003", "e"), ("g2", "a")]
    return pd.DataFrame(rows, columns=["image_id", "annotator_id"])


def test_deterministic_for_a_seed():
    p = predictions()
    b1 = select_next_batch(IMGS, annotations(), p, k=30, p_r=0.2, gold_ids=["g1", "g2"], seed=5)
    b2 = select_next_batch(pd.DataFrame({"image_id": IMGS[::-1]}), annotations(), p.sample(frac=1, random_state=1),
                           k=30, p_r=0.2, gold_ids=["g1", "g2"], seed=5)
    pd.testing.assert_frame_equal(b1, b2)
    b3 = select_next_batch(IMGS, annotations(), p, k=30, p_r=0.2, gold_ids=["g1", "g2"], seed=6)
    assert b1["image_id"].tolist() != b3["image_id"].tolist()


def test_new_images_keep_threshold_and_inverse_odds():
    p = predictions()
    b = select_next_batch(IMGS, annotations(), p, k=60, p_r=0.0, seed=1)
    assert (b["kind"] == "new").all() and (b["selection"] == "balanced").all() and b["predictions_available"].all()
    assert b["image_id"].is_unique and not set(b["image_id"]) & set(annotations()["image_id"])
    assert (b["keep_prob"] >= 0.75).all()
    assert (b["predicted_label"] == b["drawn_label"]).all()
    kept = p[p["keep_prob"] >= 0.75]
    counts = kept["emotion8"].value_counts()
    inv = 1 / counts
    first = b.iloc[0]
    assert first["label_probability"] == pytest.approx(inv[first["drawn_label"]] / inv.sum())
    # rare labels are drawn far more often than their share of the pool
    share = b["drawn_label"].value_counts(normalize=True)
    assert share.get("Joy", 0) < counts["Joy"] / counts.sum()
    assert "keep probability >= 0.75" in first["reason"]


def test_overlap_gold_first_then_most_annotated_below_target():
    p = predictions()
    b = select_next_batch(IMGS, annotations(), p, k=6, p_r=1.0, gold_ids=["g1", "g2", "g3"], seed=0)
    assert b["image_id"].tolist()[:3] == ["g1", "g2", "g3"] and (b["kind"][:3] == "gold").all()
    # then overlap images, most annotated first, never those with >= 5 annotations (i003)
    assert b["image_id"].tolist()[3:] == ["i002", "i000", "i001"]
    assert b["n_annotations"].tolist()[3:] == [3, 2, 1] and (b["kind"][3:] == "overlap").all()
    # serving one annotator: skip the gold and overlap images they already annotated
    b2 = select_next_batch(IMGS, annotations(), p, k=4, p_r=1.0, gold_ids=["g1", "g2", "g3"], seed=0, annotator_id="a")
    assert b2["image_id"].tolist()[:2] == ["g1", "g3"]
    assert b2["kind"].tolist()[2:] == ["new", "new"]  # a annotated every overlap image: new ones instead
    assert "no overlap image left" in b2["reason"].iat[2]
    # gold not in the pool is still served, and reported
    assert b.attrs["gold_not_in_pool"] == ["g1", "g2", "g3"]


def test_no_predictions_falls_back_to_uniform_and_says_so():
    b = select_next_batch(IMGS, annotations(), None, k=10, p_r=0.0, seed=2)
    assert (b["selection"] == "uniform").all() and not b["predictions_available"].any()
    assert b["reason"].str.contains("no predictions").all()
    assert b["drawn_label"].isna().all() and b["keep_prob"].isna().all()
    only_keep = predictions()[["image_id", "keep_prob"]]
    b2 = select_next_batch(IMGS, annotations(), only_keep, k=10, p_r=0.0, seed=2)
    assert (b2["keep_prob"] >= 0.75).all() and b2["reason"].str.contains("no Emo8 label predictions").all()


def test_pool_runs_dry_and_bad_input():
    imgs = ["x1", "x2", "x3"]
    b = select_next_batch(imgs, None, None, k=10, p_r=0.0, seed=0)
    assert sorted(b["image_id"]) == imgs and len(b) == 3
    pred = pd.DataFrame({"image_id": imgs, "keep_prob": [0.9, 0.9, 0.1], "emotion8": ["Joy", "Joy", "Fear"]})
    b2 = select_next_batch(imgs, None, pred, k=10, p_r=0.0, seed=0)
    assert sorted(b2["image_id"]) == ["x1", "x2"]  # x3 is below the keep threshold
    with pytest.raises(ValueError):
        select_next_batch(imgs, None, pred.assign(emotion8="Happy"), k=1)
    with pytest.raises(ValueError):
        select_next_batch(imgs, None, None, k=1, p_r=1.5)
