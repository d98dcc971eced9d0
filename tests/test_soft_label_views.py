"""The SQL views of AffectNet+ Tables 4–7 and face_demographics (ops.labels.tables) on small tables
whose expected values are counted by hand here."""

import duckdb
import pandas as pd
import pytest

from ops.labels import tables
from ops.labels.affectnet_plus import EMOTIONS


def _classifiers() -> pd.DataFrame:
    # EBC: backbones "rn" and "xn" plus the ensemble; AU: one backbone. CS of emotion i: rn 0.60 + i/100,
    # xn 0.80 + i/100 (Table 4's EBC row is their mean: 70 + i percent); the ensemble's CS (0.99) must not count.
    rows = []
    for clf, model, cs0 in (("ebc", "rn", 0.60), ("ebc", "xn", 0.80), ("ebc", "ensemble", 0.99), ("au", "rn", 0.50)):
        for i, e in enumerate(EMOTIONS):
            for metric, v in (("acc", 0.90 - i / 100), ("cs_balanced_accuracy", 0.70 + (i % 2) / 10),
                              ("cs_printed", 0.55), ("cs", cs0 + i / 100)):
                rows.append({"classifier": clf, "model": model, "emotion": e, "metric": metric, "value": v,
                             "model_version": f"{clf}-v1"})
    return pd.DataFrame(rows)


def _soft_labels() -> pd.DataFrame:
    hard = ["Happy"] * 5 + ["Sad"] * 4 + ["Contempt"] + [None] * 2
    diff = ["Easy", "Easy", "Easy", "Challenging", "Difficult", "Easy", "Challenging", "Challenging", "Difficult",
            "Difficult", None, None]
    return pd.DataFrame({"face_id": [f"f{i}" for i in range(12)], "hard_label": hard, "difficulty": diff,
                         "split": ["train"] * 8 + ["test"] * 4})


@pytest.fixture()
def con():
    c = duckdb.connect()
    c.register("soft_label_classifiers", _classifiers())
    c.register("soft_labels", _soft_labels())
    for name, sql in tables.soft_label_views().items():
        c.execute(f"CREATE VIEW {name} AS {sql}")
    yield c
    c.close()


def test_table4_ebc_row_is_the_mean_over_backbones_in_percent(con):
    t = con.execute("SELECT * FROM affectnet_table4").df().set_index("classifier")
    assert list(t.index) == ["EBC", "AU"]
    for i, e in enumerate(EMOTIONS):
        assert t.loc["EBC", e.lower()] == pytest.approx(70 + i)     # mean of 60 + i and 80 + i
        assert t.loc["AU", e.lower()] == pytest.approx(50 + i)


def test_table5_counts_and_percentages(con):
    t = con.execute("SELECT * FROM affectnet_table5").df().set_index("subset")
    assert list(t.index) == ["All", "Easy", "Challenging", "Difficult"]
    assert (t.loc["All", "happy"], t.loc["All", "sad"], t.loc["All", "contempt"], t.loc["All", "overall"]) == (5, 4, 1, 10)
    assert (t.loc["Easy", "happy"], t.loc["Challenging", "happy"], t.loc["Difficult", "happy"]) == (3, 1, 1)
    assert t.loc["Easy", "happy_percent"] == pytest.approx(60.0)
    assert t.loc["Challenging", "sad_percent"] == pytest.approx(50.0)
    assert t.loc["Difficult", "contempt_percent"] == pytest.approx(100.0)
    assert t.loc["Easy", "overall"] == 4 and t.loc["Easy", "overall_percent"] == pytest.approx(40.0)
    assert t.loc["Easy", "neutral"] == 0 and pd.isna(t.loc["Easy", "neutral_percent"])  # no Neutral face: no share
    # faces without a hard label are in no row
    long = con.execute("SELECT sum(n) FROM affectnet_table5_long WHERE subset <> 'All' AND emotion = 'Overall'").fetchone()
    assert long[0] == 10


def test_table5_by_split(con):
    t = con.execute("SELECT * FROM affectnet_table5_by_split").df()
    test_sad = t[(t["split"] == "test") & (t["emotion"] == "Sad")].set_index("subset")
    assert test_sad["n"].to_dict() == {"Difficult": 1}     # f8 only (f6, f7 are train)
    train_sad = t[(t["split"] == "train") & (t["emotion"] == "Sad")].set_index("subset")
    assert train_sad["n"].to_dict() == {"Challenging": 2, "Easy": 1}
    assert train_sad.loc["Challenging", "percent"] == pytest.approx(200 / 3, abs=0.01)


def test_tables6_and_7_rows_per_model_with_mean_and_std(con):
    t6 = con.execute("SELECT * FROM affectnet_table6").df()
    assert list(t6["model"].unique()) == ["rn", "xn", "ensemble"]
    acc = t6[(t6["model"] == "xn") & (t6["metric"] == "Acc")].iloc[0]
    assert [acc[e.lower()] for e in EMOTIONS] == pytest.approx([90 - i for i in range(8)])
    assert acc["mean"] == pytest.approx(86.5)
    assert acc["std"] == pytest.approx(pd.Series(range(8)).std(), abs=0.01)   # sample std of 90..83
    bar = t6[(t6["model"] == "ensemble") & (t6["metric"] == "Acc_bar")].iloc[0]
    assert bar["neutral"] == pytest.approx(70) and bar["happy"] == pytest.approx(80) and bar["mean"] == pytest.approx(75)
    t7 = con.execute("SELECT * FROM affectnet_table7").df()
    assert set(t7["model"]) == {"rn"} and list(t7["metric"]) == ["Acc", "Acc_bar", "CS_printed"]
    assert t7.loc[t7["metric"] == "CS_printed", "contempt"].iloc[0] == pytest.approx(55)


def test_views_bind_on_empty_tables():
    c = duckdb.connect()
    c.register("soft_label_classifiers", tables.SOFT_LABEL_CLASSIFIERS_SCHEMA.empty_table())
    c.register("soft_labels", tables.SOFT_LABELS_SCHEMA.empty_table())
    for name, sql in tables.soft_label_views().items():
        c.execute(f"CREATE VIEW {name} AS {sql}")
    assert c.execute("SELECT count(*) FROM affectnet_table4").fetchone()[0] == 0
    t5 = c.execute("SELECT subset, overall FROM affectnet_table5").df()
    assert list(t5["subset"]) == ["All", "Easy", "Challenging", "Difficult"] and (t5["overall"] == 0).all()


def test_face_demographics_joins_annotator_age_groups():
    c = duckdb.connect()
    c.register("faces", pd.DataFrame({"face_id": ["a_0", "a_1", "b_0"], "sha256": ["a", "a", "b"],
                                      "mode": ["detect"] * 3, "score": [0.99, 0.95, 0.97]}))
    meta = pd.DataFrame({"face_id": ["a_0", "a_1", "b_0"], "sha256": ["a", "a", "b"], "yaw": [10.0, None, -5.0]})
    for col in ("pitch", "roll", "age", "gender_probability"):
        meta[col] = 0.0
    for col in ("pose_model", "pose_reason", "age_model", "age_reason", "gender", "gender_model", "gender_reason",
                "ethnicity", "ethnicity_model", "ethnicity_reason"):
        meta[col] = None
    meta.loc[1, "pose_reason"] = "no_face_found"
    c.register("face_metadata", meta)
    # image a has two merged rows (two sources): the shares are averaged; image b has none
    c.register("merged_annotations", pd.DataFrame({"sha256": ["a", "a", None], "age_children": [0.5, 0.0, 1.0],
                                                   "age_adults": [0.5, 1.0, 0.0]}))
    views = tables.metadata_views(["sha256", "age_children", "age_adults", "emotion"])
    c.execute(f"CREATE VIEW face_demographics AS {views['face_demographics']}")
    d = c.execute("SELECT * FROM face_demographics").df().set_index("face_id")
    assert list(d.index) == ["a_0", "a_1", "b_0"]
    assert d.loc["a_0", "annotators_age_children"] == pytest.approx(0.25)
    assert d.loc["a_1", "annotators_age_adults"] == pytest.approx(0.75)
    assert pd.isna(d.loc["b_0", "annotators_age_children"])
    assert pd.isna(d.loc["a_1", "yaw"]) and d.loc["a_1", "pose_reason"] == "no_face_found"
    assert "annotators_age_seniors" not in d.columns           # only the groups merged_annotations has
