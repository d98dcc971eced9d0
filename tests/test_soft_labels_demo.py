"""Faces, soft labels, subsets and face metadata on the demo world (issue 9), against its truth.

The demo build finds the faces (the world's face images are crops; its kept scenes are searched
with RetinaFace), caches their features (the small face CNN and MediaPipe's blendshapes), splits the
multi-annotated set, trains the ensemble of binary classifiers and the AU-based classifier, and
writes soft labels with their Easy / Challenging / Difficult subsets. The truth manifest holds each
face's planted emotion mixture, intensity and clarity, which the pipeline never reads. Each model
test states the margin over chance it demands, computed from the truth.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from test_face_pipeline import truth_pose

from ops.labels.soft_labels import EMOTION_COLUMNS
from pipelines.cli import main
from warehouse.store import Warehouse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def joined(demo_build):
    """soft_labels of the world's face images joined with their truth."""
    wh = Warehouse(demo_build.data_dir)
    truth = pd.DataFrame(json.loads((demo_build.world_dir / "truth" / "faces.json").read_text()))
    truth = truth[truth["is_face"]]
    sl = wh.read_table("soft_labels")
    sl = sl[sl["mode"] == "whole_image"].merge(truth, on="sha256", how="inner", suffixes=("", "_truth"))
    assert len(sl) >= 0.8 * len(truth), (len(sl), len(truth))
    return sl


def test_soft_labels_cover_every_face_with_features(demo_build):
    wh = Warehouse(demo_build.data_dir)
    faces = wh.read_table("faces")
    sl = wh.read_table("soft_labels")
    assert sl["face_id"].is_unique and set(sl["face_id"]) <= set(faces["face_id"])
    ex = wh.read_table("face_extractors")
    assert {"face_cnn", "mediapipe_blendshapes"} <= set(ex["id"])
    # a face without a soft label is one whose crop some extractor could not describe (recorded status)
    missing = set(faces["face_id"]) - set(sl["face_id"])
    feats = wh.read_table("face_features")
    crops = faces.set_index("face_id").loc[sorted(missing), "crop_sha256"] if missing else pd.Series(dtype=str)
    for crop in crops:
        st = feats[feats["sha256"] == crop]["status"]
        assert (st != "ok").any(), crop
    values = sl[list(EMOTION_COLUMNS)].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    # Eq. 14 is the mean of the two component scores
    eb = sl[[f"sc_eb_mean_{c}" for c in EMOTION_COLUMNS]].to_numpy()
    au = sl[[f"sc_au_{c}" for c in EMOTION_COLUMNS]].to_numpy()
    np.testing.assert_allclose(values, (eb + au) / 2, atol=1e-9)
    lab = sl[sl["hard_label"].notna()]
    assert set(lab["difficulty"]) <= {"Easy", "Challenging", "Difficult"} and lab["difficulty"].notna().all()
    assert sl.loc[sl["hard_label"].isna(), "difficulty"].isna().all()
    assert sl["ebc_model_version"].notna().all() and sl["au_model_version"].notna().all()


def test_soft_label_top1_is_the_planted_dominant_emotion(joined):
    rate = float((joined["soft_top1"] == joined["dominant_emotion"]).mean())
    chance = float(joined["dominant_emotion"].value_counts(normalize=True).max())   # always guess the commonest
    # measured 0.86 against a chance of 0.13; demanded: 0.5 above chance
    assert rate >= chance + 0.5, (rate, chance)


def test_the_planted_second_emotion_of_compound_faces_ranks_in_the_top3(joined):
    comp = joined[joined["emotion_mixture"].map(len) > 1]
    assert len(comp) >= 50
    hits = []
    for _, r in comp.iterrows():
        second = sorted(r["emotion_mixture"].items(), key=lambda kv: -kv[1])[1][0].lower()
        order = sorted(EMOTION_COLUMNS, key=lambda c: -r[c])
        hits.append(order.index(second) < 3)
    rate = float(np.mean(hits))
    # chance: a label other than the dominant one lands in the top 3 with probability at most 3/8;
    # measured 0.53; demanded: 0.08 above 3/8
    assert rate >= 3 / 8 + 0.08, (rate, len(comp))


def test_subsets_follow_the_planted_clarity(joined):
    lab = joined[joined["hard_label"].notna()]
    easy = lab[lab["difficulty"] == "Easy"]["clarity"]
    rest = lab[lab["difficulty"] != "Easy"]["clarity"]
    assert len(easy) >= 100 and len(rest) >= 10, lab["difficulty"].value_counts().to_dict()
    # Easy faces are the clearest: measured 0.93 vs 0.77 for Challenging and Difficult together
    assert easy.mean() >= rest.mean() + 0.05, (easy.mean(), rest.mean())
    rho, p = spearmanr(lab["hard_label_rank"].astype(float), lab["clarity"])
    assert rho < 0 and p < 0.01, (rho, p)          # the lower the clarity, the lower the hard label ranks
    by = lab.groupby("difficulty")["clarity"].mean()
    if "Difficult" in by and (lab["difficulty"] == "Difficult").sum() >= 10:
        assert by["Difficult"] <= by["Easy"]


def test_test_mas_is_full_agreement_and_families_do_not_straddle(demo_build):
    wh = Warehouse(demo_build.data_dir)
    mas = wh.read_table("mas_split")
    test = mas[mas["split"] == "test"]
    assert len(test) >= 8 and test["all_agree"].all()
    assert test.groupby("hard_label").size().max() <= 25          # the demo's test_mas_per_class
    fam = mas[mas["group_id"].notna() & mas["split"].isin(["train", "test", "excluded"])]
    assert (fam.groupby("group_id")["split"].nunique() <= 1).all()


def test_the_paper_tables_answer_in_sql(demo_build, capsys):
    d = str(demo_build.data_dir)
    assert main(["sql", "--data-dir", d, "--format", "json", "select * from affectnet_table4"]) == 0
    t4 = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert list(t4["classifier"]) == ["EBC", "AU"]
    vals = t4[list(EMOTION_COLUMNS)].to_numpy(dtype=float)
    assert ((vals >= 0) & (vals <= 100)).all()

    assert main(["sql", "--data-dir", d, "--format", "json", "select * from affectnet_table5"]) == 0
    t5 = pd.DataFrame(json.loads(capsys.readouterr().out)).set_index("subset")
    sl = Warehouse(demo_build.data_dir).read_table("soft_labels")
    lab = sl[sl["hard_label"].notna()]
    assert t5.loc["All", "overall"] == len(lab)
    for subset in ("Easy", "Challenging", "Difficult"):
        assert t5.loc[subset, "overall"] == (lab["difficulty"] == subset).sum()
        assert t5.loc[subset, "happy"] == ((lab["difficulty"] == subset) & (lab["hard_label"] == "Happy")).sum()

    assert main(["sql", "--data-dir", d, "--format", "json", "select * from affectnet_table6"]) == 0
    t6 = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert set(t6["model"]) == {"face_cnn", "mediapipe_blendshapes", "ensemble"}
    assert set(t6["metric"]) == {"Acc", "Acc_bar", "CS_printed"}
    assert main(["sql", "--data-dir", d, "--format", "json", "select * from affectnet_table7"]) == 0
    t7 = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert set(t7["model"]) == {"mediapipe_blendshapes"}
    # the AU-based classifier on blendshapes separates the emotions on test-MAS: balanced accuracy
    # (chance 0.5) at least 0.6 on average over the 8 classes
    assert t7.loc[t7["metric"] == "Acc_bar", "mean"].iloc[0] >= 60


def test_face_metadata_pose_against_the_truth(demo_build):
    wh = Warehouse(demo_build.data_dir)
    truth = pd.DataFrame(json.loads((demo_build.world_dir / "truth" / "faces.json").read_text()))
    truth = truth[truth["is_face"]]
    meta = wh.read_table("face_metadata")
    m = meta[meta["mode"] == "whole_image"].merge(truth, on="sha256")
    found = m[m["yaw"].notna()]
    # where MediaPipe did not find the drawn face, the metadata says so
    assert m.loc[m["yaw"].isna(), "pose_reason"].notna().all()
    assert len(found) >= 0.8 * len(m), (len(found), len(m))
    yaw_t = found["pose"].map(lambda p: truth_pose(p)[0])        # the truth in landmarks.py's convention
    err = (found["yaw"] - yaw_t).abs()
    # demanded (as tests/test_face_pipeline.py measures on a small world): yaw error under 12° on
    # average, correlation above 0.9, the sign right on 90 % of the faces turned more than 15°
    assert err.mean() < 12, err.describe()
    assert np.corrcoef(found["yaw"], yaw_t)[0, 1] > 0.9
    big = yaw_t.abs() > 15
    assert big.sum() >= 20 and (np.sign(found.loc[big, "yaw"]) == np.sign(yaw_t[big])).mean() >= 0.9


def test_face_demographics_view_joins_annotator_age_groups(demo_build, capsys):
    d = str(demo_build.data_dir)
    assert main(["sql", "--data-dir", d, "--format", "json",
                 "select mode, count(*) as n, count(annotators_age_adults) as with_ages from face_demographics "
                 "group by mode order by mode"]) == 0
    rows = {r["mode"]: r for r in json.loads(capsys.readouterr().out)}
    # faces found in FindingEmo-annotated scenes carry their annotators' age-group shares; face crops don't
    assert rows["detect"]["with_ages"] > 0
    assert rows["whole_image"]["with_ages"] == 0


def test_the_soft_label_models_store_the_mas_labels_their_budget_compares(demo_build):
    """A refresh keeps the EBC and AU models while few MAS labels moved: each is stored with the hard
    labels it saw and test-MAS as its held-out side (read back against mas_split), and two faces fewer
    is within the budget while every label changed is not."""
    from ops.training.reuse import LabelBudget, keep_within_budget

    wh = Warehouse(demo_build.data_dir)
    split = wh.read_table("mas_split").set_index("face_id")
    for task in ("ebc", "au"):
        v = wh.current_model(task)
        assert v is not None, task
        _, desc = wh.models.get(v)
        lab = wh.models.labels_of(desc)
        assert lab is not None and len(lab) > 0 and "base_key" in desc, task
        assert lab["heldout"].astype(bool).tolist() == (split.loc[lab["sha256"], "split"] == "test").tolist()
        assert lab["label"].tolist() == split.loc[lab["sha256"], "hard_label"].astype(str).tolist()
        fewer = lab.iloc[2:]
        kept = keep_within_budget(wh.models, task, LabelBudget(desc["base_key"], fewer, 0.10))
        assert kept is not None and kept["model_version"] == v
        flipped = lab.assign(label=lab["label"] + "_other")
        assert keep_within_budget(wh.models, task, LabelBudget(desc["base_key"], flipped, 0.10)) is None
