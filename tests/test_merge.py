"""merge_annotations on fixtures with known answers: majority with noise removal and min_share, ties,
plurality with the query-keyword tie-break (AffectNet+ Supplement II), non-emotion winners,
keep majority (FindingEmo §A.5), exclusions, crowd-kit Dawid-Skene, vote-count sources."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from helpers import annotation_row as A
from helpers import vote_rows as votes
from ops.annotations.readers import read_vote_counts
from ops.labels.merge import (
    CrowdKit, Majority, Plurality, merge_annotations, merge_annotations_with_estimates, merged_to_arrow, parse_policy,
)
from ops.annotations.taxonomy import register_taxonomy


def frame(rows):
    return pd.DataFrame(rows)


def vote_table(cell) -> dict:
    """A ``*_votes`` cell as {label: (votes, share)} (independent of the listing order)."""
    return {v["label"]: (v["votes"], v["share"]) for v in cell}


def test_majority_noise_share_and_ties():
    rows = (votes("clear", ["Joy", "Serenity", "Ecstasy", "Fear"])        # Emo8: Joy 3 / Fear 1
            + votes("noise", ["Joy", "Joy", "Fear", "Anger"])              # Emo8 Joy 2 of 4 = 50%
            + votes("tie", ["Joy", "Joy", "Sadness", "Grief"])             # 2 vs 2
            + votes("single", ["Trust"]))
    m = merge_annotations(frame(rows)).set_index("image_id")
    assert m.loc["clear", "emotion8"] == "Joy" and m.loc["clear", "emotion8_confidence"] == 0.75
    assert m.loc["noise", "emotion8_status"] == "unresolved" and pd.isna(m.loc["noise", "emotion8"])
    assert "not more than min_share=0.5" in m.loc["noise", "emotion8_reason"]
    assert m.loc["tie", "emotion8_status"] == "unresolved" and "tie between Joy, Sadness" in m.loc["tie", "emotion8_reason"]
    assert m.loc["single", "emotion8"] == "Trust"
    # Emo24 is aggregated on its own: "clear" has Joy, Serenity, Ecstasy, Fear once each -> unresolved
    assert m.loc["clear", "emotion24_status"] == "unresolved"
    assert "tie between" in m.loc["clear", "emotion24_reason"] and pd.isna(m.loc["clear", "emotion24"])
    # "tie" is a 2-2 tie in Emo8 (Sadness and Grief are both the Sadness leaf) but not in Emo24:
    # Joy 2, Sadness 1, Grief 1 of 4. Joy leads with 2/4 = 50%, not more than min_share 0.5 -> no label
    assert vote_table(m.loc["tie", "emotion24_votes"]) == {"Joy": (2, 0.5), "Sadness": (1, 0.25), "Grief": (1, 0.25)}
    assert m.loc["tie", "emotion24_status"] == "unresolved" and pd.isna(m.loc["tie", "emotion24"])
    assert "top label Joy has 2/4 votes (50%), not more than min_share=0.5" in m.loc["tie", "emotion24_reason"]
    # single votes removed as noise first: noise -> Joy 2/2
    m2 = merge_annotations(frame(rows), Majority(min_votes_per_label=2)).set_index("image_id")
    assert m2.loc["noise", "emotion8"] == "Joy" and m2.loc["noise", "emotion8_confidence"] == 1.0
    assert "2 vote(s) below min_votes_per_label=2 removed as noise" in m2.loc["noise", "emotion8_reason"]
    assert m2.loc["single", "emotion8_status"] == "unresolved"
    assert "all 1 vote(s) below" in m2.loc["single", "emotion8_reason"]
    m3 = merge_annotations(frame(rows), {"kind": "majority", "min_share": 0.8}).set_index("image_id")
    assert m3.loc["clear", "emotion8_status"] == "unresolved"
    assert m3.loc["clear", "merge_policy"] == "majority(min_votes_per_label=1, min_share=0.8)"


def test_plurality_tie_broken_by_query_emotion():
    rows = (votes("t1", ["Joy", "Sadness"], q="Joy")          # query word is a label among the tied
            + votes("t2", ["Joy", "Sadness"], q="Serenity")   # Emo24 word -> its leaf for Emo8
            + votes("t3", ["Joy", "Sadness"], q="Anger")      # not among the tied
            + votes("t4", ["Joy", "Sadness"])                 # no query
            + votes("t5", ["Joy", "Joy", "Sadness"], q="Sadness"))
    m = merge_annotations(frame(rows), "plurality").set_index("image_id")
    assert m.loc["t1", "emotion8"] == "Joy" and "broken by the query emotion Joy" in m.loc["t1", "emotion8_reason"]
    assert m.loc["t2", "emotion8"] == "Joy"
    assert m.loc["t2", "emotion24_status"] == "unresolved"  # Serenity is not among Emo24 Joy/Sadness
    assert m.loc["t3", "emotion8_status"] == "unresolved" and "query emotion Anger is not among them" in m.loc["t3", "emotion8_reason"]
    assert "no query emotion" in m.loc["t4", "emotion8_reason"]
    assert m.loc["t5", "emotion8"] == "Joy"  # no tie: the query does not matter
    m2 = merge_annotations(frame(rows), Plurality(), query_emotion={"t3": "Sadness"},
                           keyword_labels={"Sad": "Sadness"}).set_index("image_id")
    assert m2.loc["t3", "emotion8"] == "Sadness" and m2.loc["t1", "emotion8_status"] == "unresolved"
    m3 = merge_annotations(frame(rows), Plurality(), query_emotion={"t1": "Sad"}, keyword_labels={"Sad": "Sadness"})
    assert m3.set_index("image_id").loc["t1", "emotion8"] == "Sadness"


def test_non_emotion_winner_affectnet(tmp_path):
    p = tmp_path / "v.csv"
    p.write_text("face,Happy,Sad,Uncertain,None,split,kw\n"
                 "f1,1,0,3,0,train,happy\nf2,2,2,0,0,val,sad\nf3,3,1,0,0,test,x\nf4,0,0,1,1,test,x\n")
    ann, rej = read_vote_counts(p, ["Happy", "Sad", "Uncertain", "None"], "face", query_column="kw")
    assert rej.empty
    m = merge_annotations(ann, "plurality", taxonomy="affectnet8").set_index("image_id")
    assert m.loc["f1", "emotion_status"] == "non_emotion" and pd.isna(m.loc["f1", "emotion"])
    assert m.loc["f1", "emotion_winner"] == "Uncertain" and "non-emotion label 'Uncertain' won" in m.loc["f1", "emotion_reason"]
    assert m.loc["f2", "emotion"] == "Sad"      # tie Happy/Sad broken by the keyword "sad"
    assert m.loc["f3", "emotion"] == "Happy"
    assert m.loc["f4", "emotion_status"] == "unresolved"
    # item-level columns and the vote distribution come through
    assert m["split"].to_dict() == {"f1": "train", "f2": "val", "f3": "test", "f4": "test"}
    assert m.loc["f1", "emotion_votes"] == [{"label": "Happy", "votes": 1, "share": 0.25},
                                            {"label": "Uncertain", "votes": 3, "share": 0.75}]
    assert m.loc["f1", ["emotion_n_happy", "emotion_n_uncertain", "emotion_n_non_face"]].tolist() == [1, 3, 0]
    assert m.loc["f2", "emotion_n_distinct"] == 2 and np.isnan(m.loc["f2", "emotion_max_distance"])
    # majority: non-emotion counts as votes too: f3 Happy 3/4 resolved
    mm = merge_annotations(ann, "majority", taxonomy="affectnet8").set_index("image_id")
    assert mm.loc["f3", "emotion"] == "Happy" and mm.loc["f1", "emotion_status"] == "non_emotion"


def test_keep_majority_va_agreement_and_age():
    rows = [A("k", "a", "Joy", v=2, a=3, amb=1, age=("Adults",)), A("k", "b", "Sadness", v=-1, a=6, amb=0, age=("Adults", "Children")),
            A("k", "c", "Boredom", v=3, a=2, amb=4, age=("Adults",)), A("k", "d", keep=False),
            A("r", "a", keep=False), A("r", "b", keep=False), A("r", "c", "Joy", v=1, a=1, amb=1),
            A("u", "a", "Trust", v=1, a=1, amb=1), A("u", "b", keep=False)]
    m = merge_annotations(frame(rows), "plurality").set_index("image_id")
    assert m["keep_majority"].to_dict() == {"k": "keep", "r": "reject", "u": "undecided"}
    assert m.loc["k", ["n_annotators", "n_keep", "n_reject"]].tolist() == [4, 3, 1]
    assert m.loc["r", "emotion8_status"] == "not_kept" and pd.isna(m.loc["r", "emotion8"])
    assert m.loc["r", "emotion8_winner"] == "Joy"
    assert m.loc["u", "emotion8_status"] == "not_kept" and "'undecided'" in m.loc["u", "emotion8_reason"]
    assert merge_annotations(frame(rows), "plurality", require_keep_majority=False).set_index("image_id").loc["u", "emotion8"] == "Trust"
    # agreement (FindingEmo §A.5, Fig. 13): Joy, Sadness, Disgust -> 3 labels, max distance 4 (Joy-Sadness)
    assert m.loc["k", "emotion8_n_distinct"] == 3 and m.loc["k", "emotion8_max_distance"] == 4
    assert m.loc["k", "emotion24_max_distance"] == 4  # Joy-Sadness = 4 + 0; Joy-Boredom = 3.33
    assert not m.loc["k", "emotion8_all_agree"] and m.loc["r", "emotion8_all_agree"]
    assert m.loc["k", "emotion8_votes"][0] == {"label": "Joy", "votes": 1, "share": pytest.approx(1 / 3)}
    # V/A over kept annotations
    assert m.loc["k", "valence_mean"] == pytest.approx(4 / 3) and m.loc["k", "valence_median"] == 2
    assert m.loc["k", "valence_std"] == pytest.approx(np.std([2, -1, 3], ddof=1))
    assert m.loc["k", "valence_range"] == 4 and m.loc["k", "arousal_range"] == 4 and m.loc["k", "valence_n"] == 3
    assert np.isnan(m.loc["r", "valence_std"]) and m.loc["r", "valence_range"] == 0
    # age groups: share of kept annotations ticking each
    assert m.loc["k", "age_adults"] == 1 and m.loc["k", "age_children"] == pytest.approx(1 / 3)
    assert m.loc["k", "age_groups_majority"] == ["Adults"]


def test_excluded_annotators_and_images_without_annotations():
    rows = votes("x", ["Joy", "Fear", "Fear"]) + votes("y", ["Anger"], start=1)
    m = merge_annotations(frame(rows), excluded_annotators=["u1", "u2"]).set_index("image_id")
    assert m.loc["x", "emotion8"] == "Joy" and m.loc["x", "n_excluded"] == 2
    assert m.loc["y", "n_annotations"] == 0 and m.loc["y", "emotion8_status"] == "no_votes"
    assert m.loc["y", "keep_majority"] == "undecided"


def dawid_skene_fixture():
    rng = np.random.default_rng(3)
    truth = rng.choice(["Joy", "Sadness", "Fear"], 40)
    rows = []
    for t, lab in enumerate(truth):
        for w in ("good1", "good2", "good3"):
            rows.append(A(f"i{t}", w, lab if rng.random() < 0.9 else "Anger"))
        rows.append(A(f"i{t}", "spammer", "Joy"))
        rows.append(A(f"i{t}", "spammer2", "Joy"))
    return frame(rows), truth


@pytest.mark.slow
def test_dawid_skene_with_confusions():
    df, truth = dawid_skene_fixture()
    m, est = merge_annotations_with_estimates(df, "dawid_skene")
    m = m.set_index("image_id")
    acc = np.mean([m.loc[f"i{t}", "emotion8"] == lab for t, lab in enumerate(truth)])
    assert acc >= 0.95
    assert (m["emotion8_status"] == "resolved").all() and m["emotion8_confidence"].between(0, 1).all()
    assert m["merge_policy"].iat[0].startswith("DawidSkene(")
    conf = est[(est["kind"] == "confusion") & (est["level"] == "emotion8")]
    assert set(conf.columns) == {"method", "level", "annotator_id", "kind", "true_label", "observed_label", "value"}
    # each annotator's confusion column sums to 1 over observed labels
    sums = conf.groupby(["annotator_id", "true_label"])["value"].sum()
    assert np.allclose(sums, 1.0, atol=1e-6)
    spam = conf[(conf["annotator_id"] == "spammer") & (conf["true_label"] == "Sadness")].set_index("observed_label")["value"]
    assert spam["Joy"] > 0.9
    assert (est["kind"] == "prior").any()
    # other crowd-kit estimators through the same policy type (GLAD works too but is slow to test)
    for method in ("MajorityVote", "OneCoinDawidSkene"):
        mm, ee = merge_annotations_with_estimates(df, CrowdKit(method, n_iter=20))
        assert (mm["emotion8_status"] == "resolved").all()
        assert (ee["kind"] == "skill").any()
    assert parse_policy("glad") == CrowdKit("GLAD")
    with pytest.raises(ValueError):
        parse_policy("borda")


def test_new_taxonomy_without_code_changes_and_duckdb_queryable():
    register_taxonomy({"name": "valence3_test", "labels": ["Negative", "Neutral", "Positive"],
                       "non_emotion_labels": ["Skip"]}, replace=True)
    rows = [{"image_id": "a", "annotator_id": f"w{i}", "keep": True, "emotion": lab, "taxonomy": "valence3_test"}
            for i, lab in enumerate(["Positive", "Positive", "Skip"])]
    m = merge_annotations(pd.DataFrame(rows), taxonomy="valence3_test")
    assert m["emotion"].tolist() == ["Positive"] and m["emotion_n_skip"].tolist() == [1]
    df = merge_annotations(frame(votes("x", ["Joy", "Trust", "Trust"])))
    got = duckdb.sql("SELECT v.label, v.votes FROM (SELECT unnest(emotion8_votes) AS v FROM df) ORDER BY v.votes").fetchall()
    assert got == [("Joy", 1), ("Trust", 2)]


def test_merged_to_arrow_types_with_empty_lists():
    m = merge_annotations(frame([A("r", "a", keep=False)]))
    t = merged_to_arrow(m)
    assert str(t.schema.field("emotion8_votes").type) == "list<item: struct<label: string, votes: int64, share: double>>"
    assert str(t.schema.field("age_groups_majority").type) == "list<item: string>"
    assert duckdb.sql("SELECT len(emotion8_votes), emotion8_status FROM t").fetchall() == [(0, "no_votes")]
