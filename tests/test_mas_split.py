"""The multi-annotated set of faces (AffectNet+ §3.1, Supplement II) from merged annotations
(ops.labels.mas): hard labels, test-MAS only from full-agreement faces, families kept together."""

import pandas as pd

from ops.labels.mas import mas_split


def _merged(rows):
    return pd.DataFrame(rows, columns=["image_id", "sha256", "taxonomy", "emotion", "emotion_all_agree", "emotion_n_votes"])


def test_hard_labels_and_test_mas_from_full_agreement_only():
    rows = [(f"i{k}", f"s{k}", "affectnet8", "Happy", k < 4, 3) for k in range(8)]          # 4 agreeing Happy
    rows += [(f"j{k}", f"t{k}", "affectnet8", "Sad", True, 2) for k in range(3)]             # 3 agreeing Sad
    rows += [("x", "u", "affectnet8", "Sad", True, 1)]                                        # one vote: no MAS candidate
    rows += [("y", "v", "affectnet8", None, False, 2)]                                        # no winner (tie)
    rows += [("z", "w", "plutchik24", "Joy", True, 3)]                                        # another taxonomy
    faces = pd.DataFrame({"face_id": ["s0_0", "s1_0", "s5_0", "t0_0", "t1_0", "t2_0", "u_0", "v_0", "w_0", "w_1"],
                          "sha256": ["s0", "s1", "s5", "t0", "t1", "t2", "u", "v", "w", "w"]})
    out = mas_split(faces, _merged(rows), per_class=2, seed=0).set_index("face_id")
    assert out.loc["s5_0", "hard_label"] == "Happy" and out.loc["s5_0", "split"] == "train"   # not all agree
    assert out.loc["u_0", "split"] == "train" and not out.loc["u_0", "test_candidate"]
    assert out.loc["v_0", "hard_label"] is None and out.loc["v_0", "split"] is None
    assert out.loc["w_0", "hard_label"] is None                                             # no affectnet8 label
    # at most 2 per emotion in test, only candidates; among the 3 Sad candidates with faces, exactly 2 test
    sad = out.loc[["t0_0", "t1_0", "t2_0"]]
    assert (sad["split"] == "test").sum() == 2 and sad["test_candidate"].all()
    assert (out["split"] == "test").sum() <= 4


def test_deterministic_and_families_do_not_straddle():
    rows = [(f"i{k}", f"s{k}", "affectnet8", "Anger", True, 3) for k in range(10)]
    faces = pd.DataFrame({"face_id": [f"s{k}_0" for k in range(10)], "sha256": [f"s{k}" for k in range(10)]})
    groups = pd.DataFrame({"sha256": ["s0", "s1", "s2"], "group_id": ["g", "g", "g"]})   # one near-duplicate family
    a = mas_split(faces, _merged(rows), groups, per_class=5, seed=3)
    b = mas_split(faces, _merged(rows), groups, per_class=5, seed=3)
    pd.testing.assert_frame_equal(a, b)
    fam = a[a["sha256"].isin(["s0", "s1", "s2"])]
    assert fam["split"].nunique() == 1
    assert (a["split"] == "test").sum() <= 5
