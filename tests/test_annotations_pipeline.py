"""The annotations group end to end through the CLI: real FindingEmo-Light data against an
independent pandas computation, and generated multi-annotator fixtures with known answers."""

import json

import pandas as pd
import pytest
import yaml

from ops.annotations.readers import default_findingemo_path
from pipelines.cli import main

pytestmark = pytest.mark.slow

# Plutchik's wheel, written out here independently of ops.annotations.taxonomy (FindingEmo Fig. 3)
LEAF = {
    "Serenity": "Joy", "Joy": "Joy", "Ecstasy": "Joy",
    "Acceptance": "Trust", "Trust": "Trust", "Admiration": "Trust",
    "Apprehension": "Fear", "Fear": "Fear", "Terror": "Fear",
    "Distraction": "Surprise", "Surprise": "Surprise", "Amazement": "Surprise",
    "Pensiveness": "Sadness", "Sadness": "Sadness", "Grief": "Sadness",
    "Boredom": "Disgust", "Disgust": "Disgust", "Loathing": "Disgust",
    "Annoyance": "Anger", "Anger": "Anger", "Rage": "Anger",
    "Interest": "Anticipation", "Anticipation": "Anticipation", "Vigilance": "Anticipation",
}


@pytest.fixture
def env(monkeypatch, tmp_path):
    for var in ("EMOFORGE_HOME", "EMOFORGE_CONFIG", "EMOFORGE_DEMO"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    return tmp_path


def _sql(data, q, capsys):
    assert main(["sql", "--data-dir", str(data), "--format", "json", q]) == 0
    return json.loads(capsys.readouterr().out)


def test_findingemo_default_emotion8_stats_equal_independent_pandas(env, capsys):
    data = env / "data"
    assert main(["build", "--data-dir", str(data), "--select", "group:annotations"]) == 0
    capsys.readouterr()
    got = pd.DataFrame(_sql(data, "select * from emotion8_stats", capsys)).set_index("emotion8")
    raw = pd.read_csv(default_findingemo_path())
    raw["leaf"] = raw["emotion"].map(LEAF)
    assert raw["leaf"].notna().all()
    exp = raw.groupby("leaf").agg(n=("leaf", "size"), arousal_mean=("arousal", "mean"), arousal_std=("arousal", "std"),
                                  valence_mean=("valence", "mean"), valence_std=("valence", "std"),
                                  ambiguity_mean=("ambiguity", "mean"), ambiguity_std=("ambiguity", "std"))
    assert len(raw) == 25869
    assert sorted(got.index) == sorted(exp.index)
    for leaf, row in exp.iterrows():
        assert got.loc[leaf, "n"] == row["n"]
        for c in exp.columns[1:]:
            assert got.loc[leaf, c] == pytest.approx(row[c], rel=1e-9), (leaf, c)
    n = _sql(data, "select count(*) as n, count(distinct image_id) as i from annotations", capsys)[0]
    assert n == {"n": 25869, "i": raw["image_path"].nunique()}
    m = _sql(data, "select count(*) as n from merged_annotations", capsys)[0]["n"]
    assert m == raw["image_path"].nunique()
    q = _sql(data, "select count(*) as n from annotation_queue", capsys)[0]["n"]
    assert q > 0
    assert (data / "exports" / "annotation_queue.csv").exists()
    assert (data / "exports" / "annotation_queue.json").exists()


def _fixture_files(tmp):
    # long format, 4 annotators on 4 images (answers known by construction)
    long_rows = [
        # img1: Joy x3, Sadness x1 -> majority Joy (3/4 > 0.5)
        ("img1", "a1", "Joy", 2, 3), ("img1", "a2", "Serenity", 1, 2), ("img1", "a3", "Ecstasy", 3, 5),
        ("img1", "a4", "Sadness", -2, 4),
        # img2: tie Joy 2 / Fear 2 -> majority unresolved
        ("img2", "a1", "Joy", 1, 2), ("img2", "a2", "Joy", 1, 2), ("img2", "a3", "Fear", -1, 4),
        ("img2", "a4", "Terror", -2, 6),
        # img3: out-of-range valence for a4 -> reject row; remaining Anger x3 -> Anger
        ("img3", "a1", "Anger", -2, 5), ("img3", "a2", "Rage", -3, 6), ("img3", "a3", "Annoyance", -1, 4),
        ("img3", "a4", "Anger", 9, 4),
        # duplicate (img1, a1) -> reject
        ("img1", "a1", "Joy", 2, 3),
    ]
    long = pd.DataFrame(long_rows, columns=["item", "worker", "label", "v", "a"])
    long.to_csv(tmp / "long.csv", index=False)
    votes = pd.DataFrame({"item": ["x1", "x2", "x3"], "Happy": [5, 1, 2], "Sad": [1, 1, 2], "Uncertain": [0, 4, 0],
                          "split": ["train", "val", "test"]})
    votes.to_csv(tmp / "votes.csv", index=False)
    (tmp / "broken.csv").write_text("item,worker\nimg9,a1\n")


def test_fixture_sources_merge_with_known_answers(env, capsys):
    _fixture_files(env)
    cfg = {"annotations": {"sources": [
        {"kind": "long", "path": "long.csv", "name": "crowd",
         "mapping": {"image_id": "item", "annotator_id": "worker", "emotion": "label", "valence": "v", "arousal": "a"},
         "scales": {"valence": [-3, 3], "arousal": [0, 6]}},
        {"kind": "vote_counts", "path": "votes.csv", "name": "votes", "item_column": "item",
         "label_columns": ["Happy", "Sad", "Uncertain"], "split_column": "split"},
    ], "merge": {"policy": "majority", "min_share": 0.5}}}
    (env / "c.yaml").write_text(yaml.safe_dump(cfg))
    data = env / "data"
    assert main(["build", "--config", str(env / "c.yaml"), "--data-dir", str(data), "--select", "group:annotations"]) == 0
    capsys.readouterr()
    rej = _sql(data, "select file, line, field, reason from annotation_rejects order by line", capsys)
    reasons = {(r["line"], r["field"]): r["reason"] for r in rej}
    assert any(v.startswith("out_of_range") for (line, f), v in reasons.items() if line == 13 and f == "v")  # the source column
    assert any(v.startswith("duplicate_annotation") for (line, f), v in reasons.items() if line == 14)
    assert all(r["file"].endswith("long.csv") for r in rej)
    m = {r["image_id"]: r for r in _sql(data, "select * from merged_annotations", capsys)}
    assert m["img1"]["emotion8"] == "Joy" and m["img1"]["n_annotators"] == 4
    assert m["img2"]["emotion8"] is None and m["img2"]["emotion8_status"] == "unresolved"
    assert m["img3"]["emotion8"] == "Anger" and m["img3"]["n_annotators"] == 3
    assert m["img1"]["emotion8_n_distinct"] == 2 and m["img2"]["emotion8_max_distance"] == 2
    # vote counts: AffectNet labels, non-emotion winner, split kept on the item
    assert m["x1"]["emotion"] == "Happy" and m["x1"]["split"] == "train"
    assert m["x2"]["emotion"] is None and m["x2"]["emotion_status"] == "non_emotion"
    assert m["x3"]["emotion_status"] == "unresolved" and m["x3"]["split"] == "test"


def test_missing_column_fails_the_build_naming_file_and_column(env, capsys):
    _fixture_files(env)
    cfg = {"annotations": {"sources": [{"kind": "long", "path": str(env / "broken.csv"),
                                        "mapping": {"image_id": "item", "annotator_id": "worker", "emotion": "label"}}]}}
    (env / "c.yaml").write_text(yaml.safe_dump(cfg))
    rc = main(["build", "--config", str(env / "c.yaml"), "--data-dir", str(env / "data"), "--select", "raw_annotations"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "broken.csv" in out and "label" in out
    assert not (env / "data" / "tables" / "annotations.parquet").exists()
