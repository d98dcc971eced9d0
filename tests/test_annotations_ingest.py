"""Annotation ingest: FindingEmo .ann (real FindingEmo-Light data and fixtures), long format,
vote counts; validation into rejects; errors naming file and column."""

from functools import lru_cache

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ops.annotations.grading import durations_from_timestamps
from ops.annotations.parsing import normalize_image_path, query_emotion_word, query_of_path
from ops.annotations.readers import read_findingemo_ann, read_long, read_vote_counts
from ops.annotations.schema import (
    FINDINGEMO_COLUMNS, FINDINGEMO_REJECT_TAGS, AnnotationSourceError, annotations_to_arrow, concat_sources,
    default_findingemo_path, reject_summary,
)

HEADER = ",".join(FINDINGEMO_COLUMNS)


@lru_cache(maxsize=1)
def real():
    return read_findingemo_ann()


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


# ---- the real FindingEmo-Light export -----------------------------------------------------------

@pytest.mark.slow
def test_real_findingemo_light_conventions():
    ann, rej = real()
    raw = pd.read_csv(default_findingemo_path(), dtype=str, keep_default_na=False)
    assert len(ann) == len(raw) == 25869 and rej.empty
    assert ann["annotator_id"].nunique() == 665
    assert ann["image_id"].is_unique  # FindingEmo-Light: one annotation per image
    # image_id is the relative path (= rel_path of dataset_urls_exploded.json)
    assert (ann["image_id"] == raw["image_path"]).all()
    assert ann["keep"].all()  # the released file holds the dataset's kept annotations
    assert set(ann["emotion24"]) == set(raw["emotion"])
    first = ann.iloc[0]
    assert first["query"] == "Loving toddlers sports" and first["query_emotion"] == "Loving"
    assert first["age_groups"] == ["Children"]
    assert first["deciding_factors"] == ["BodyLanguage", "FacialExpression"]
    assert first["tags"] == [] and first["source_line"] == 2
    # "Undefined" lists are empty lists; reject-reason tags are kept as tags
    assert ann["tags"].map(len).gt(0).sum() == (raw["tags"] != "Undefined").sum()
    # the fill-in timestamp 2023-09-01 00:00:00.000000 is NULL
    assert ann["annotated_at"].isna().sum() == (raw["datetime"] == "2023-09-01 00:00:00.000000").sum() == 1948
    assert ann[["valence", "arousal", "ambiguity"]].notna().all().all()
    assert ann["valence"].between(-3, 3).all() and ann["arousal"].between(0, 6).all()


def test_query_words():
    assert query_of_path("/Run_2/Loving toddlers sports/x.jpg") == "Loving toddlers sports"
    assert query_of_path("/Run_2/x.jpg") is None
    assert query_emotion_word("Fed up youth war", ["Fed", "Fed up", "Happy"]) == "Fed up"
    assert query_emotion_word("Happy people party", []) == "Happy"
    assert query_emotion_word(None) is None
    assert normalize_image_path("Run_1\\A b c\\x.jpg") == "/Run_1/A b c/x.jpg"


# ---- FindingEmo fixtures: validation --------------------------------------------------------------

BAD_ANN = HEADER + """
0,u1,/Run_1/Happy kids party/a.jpg,Undefined,Children,2,3,Joy,FacialExpression,1,2023-07-04 12:00:00.000000
1,u1,/Run_1/Happy kids party/b.jpg,Undefined,Adults,4,3,Joy,FacialExpression,1,2023-07-04 12:01:00.000000
2,u2,/Run_1/Happy kids party/a.jpg,Undefined,Adults,1,3,Happiness,FacialExpression,1,2023-07-04 12:02:00.000000
3,,/Run_1/Happy kids party/c.jpg,Undefined,Adults,1,3,Joy,FacialExpression,1,2023-07-04 12:03:00.000000
4,u1,/Run_1/Happy kids party/a.jpg,Undefined,Adults,1,3,Joy,FacialExpression,1,2023-07-04 12:04:00.000000
5,u3,/Run_1/Happy kids party/a.jpg,Undefined,Toddlers,1,2.5,Joy,FacialExpression,7,yesterday
6,u3,/Run_1/Sad kids party/d.jpg,"Reject,Watermark",Undefined,Undefined,Undefined,Undefined,Undefined,Undefined,2023-07-04 12:06:00.000000
7,u4,/Run_1/Sad kids party/d.jpg,NoInteraction,Adults,-1,2,Grief,"Staging,Context",0,2023-07-04 12:07:00.000000
"""


@pytest.mark.slow
def test_findingemo_rejects_are_counted_with_file_line_field(tmp_path):
    p = write(tmp_path, "bad.ann", BAD_ANN.lstrip("\n"))
    ann, rej = read_findingemo_ann(p)
    assert sorted(ann["source_line"]) == [2, 8, 9]
    by_line = {line: set(zip(g["field"], g["reason"])) for line, g in rej.groupby("line")}
    assert by_line[3] == {("valence", "out_of_range")}
    assert by_line[4] == {("emotion", "unknown_label")}
    assert by_line[5] == {("user", "empty_annotator_id")}
    assert ("annotator_id", "duplicate_annotation (first at line 2)") in by_line[6]
    assert by_line[7] == {("age", "unknown_value"), ("arousal", "not_an_integer"),
                          ("ambiguity", "out_of_range"), ("datetime", "bad_datetime")}
    assert (rej["file"] == str(p)).all()
    assert len(ann) + rej["line"].nunique() == 8  # nothing dropped silently
    summary = reject_summary(rej)
    assert summary["n"].sum() == len(rej)
    # explicit "Reject" tag: keep False, no emotion; other reject-reason tags do not reject by default
    d = ann.set_index("annotator_id")
    assert not d.loc["u3", "keep"] and pd.isna(d.loc["u3", "emotion24"]) and pd.isna(d.loc["u3", "valence"])
    assert d.loc["u3", "tags"] == ["Reject", "Watermark"]
    assert d.loc["u4", "keep"] and d.loc["u4", "emotion8"] == "Sadness"
    assert d.loc["u4", "deciding_factors"] == ["Staging", "Context"]
    ann2, _ = read_findingemo_ann(p, reject_tags=FINDINGEMO_REJECT_TAGS + ("Reject",))
    assert not ann2.set_index("annotator_id").loc["u4", "keep"]


def test_findingemo_keep_column(tmp_path):
    text = HEADER + ",keep\n0,u1,/R/Q a b/x.jpg,Undefined,Adults,1,2,Joy,Context,0,2023-07-04 12:00:00,reject\n"
    ann, rej = read_findingemo_ann(write(tmp_path, "k.ann", text))
    assert rej.empty and not ann["keep"].iat[0]


def test_missing_column_and_unreadable_file(tmp_path):
    p = write(tmp_path, "nocol.ann", HEADER.replace(",arousal", "") + "\n")
    with pytest.raises(AnnotationSourceError) as e:
        read_findingemo_ann(p)
    assert "nocol.ann" in str(e.value) and "'arousal'" in str(e.value) and e.value.column == "arousal"
    with pytest.raises(AnnotationSourceError, match="missing.ann"):
        read_findingemo_ann(tmp_path / "missing.ann")
    b = tmp_path / "binary.ann"
    b.write_bytes(b"\xff\xfe\x00garbage\xff" * 10)
    with pytest.raises(AnnotationSourceError, match="binary.ann"):
        read_findingemo_ann(b)
    with pytest.raises(AnnotationSourceError, match="empty.ann"):
        read_findingemo_ann(write(tmp_path, "empty.ann", ""))
    bp = tmp_path / "broken.parquet"
    bp.write_bytes(b"PAR1 not really")
    with pytest.raises(AnnotationSourceError, match="broken.parquet"):
        read_long(bp, {"image_id": "i", "annotator_id": "a"})


# ---- long format --------------------------------------------------------------------------------

LONG = """item,worker,label,v,a,split,when
img1,w1,joy,2,4,train,2024-01-01T10:00:00
img1,w2,Serenity,1,3,train,2024-01-01T10:01:00
img2,w1,Anger,-2,5,test,
img2,w1,Fear,-2,5,test,
img3,w3,Happy,0,1,test,
img3,w4,,0,9,test,
"""


def test_read_long_csv_and_parquet(tmp_path):
    mapping = {"image_id": "item", "annotator_id": "worker", "emotion": "label", "valence": "v",
               "arousal": "a", "annotated_at": "when"}
    p = write(tmp_path, "long.csv", LONG)
    ann, rej = read_long(p, mapping, scales={"valence": (-3, 3), "arousal": (0, 6)}, item_columns=["split"])
    assert list(ann["image_id"]) == ["img1", "img1", "img2"]
    assert list(ann["emotion24"]) == ["Joy", "Serenity", "Anger"] and list(ann["emotion8"]) == ["Joy", "Joy", "Anger"]
    assert list(ann["split"]) == ["train", "train", "test"]
    assert ann["source"].unique().tolist() == ["long"] and ann["keep"].all()
    assert set(zip(rej["line"], rej["reason"])) == {
        (5, "duplicate_annotation (first at line 4)"), (6, "unknown_label"), (7, "out_of_range")}
    assert rej.loc[rej["line"] == 6, "field"].item() == "label"
    # same table as Parquet: line = row number
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    pp = tmp_path / "long.parquet"
    df.to_parquet(pp)
    ann2, rej2 = read_long(pp, mapping, scales={"valence": (-3, 3), "arousal": (0, 6)}, item_columns=["split"])
    assert ann2["emotion24"].tolist() == ann["emotion24"].tolist()
    assert sorted(rej2["line"]) == [4, 5, 6]
    with pytest.raises(AnnotationSourceError) as e:
        read_long(p, {**mapping, "ambiguity": "amb"})
    assert "long.csv" in str(e.value) and "'amb'" in str(e.value)
    with pytest.raises(ValueError):
        read_long(p, {"image_id": "item"})


def test_long_affectnet_non_emotion_labels(tmp_path):
    p = write(tmp_path, "an.csv", "item,worker,label\nf1,a,Happy\nf1,b,Uncertain\nf1,c,non-face\nf2,a,Joy\n")
    ann, rej = read_long(p, {"image_id": "item", "annotator_id": "worker", "emotion": "label"}, taxonomy="affectnet8")
    assert ann["emotion"].tolist() == ["Happy", "Uncertain", "Non-Face"]
    assert ann["emotion24"].isna().all() and ann["emotion8"].isna().all()
    assert rej["reason"].tolist() == ["unknown_label"]


# ---- vote counts --------------------------------------------------------------------------------

VOTES = """face,Happy,Sad,Surprise,Uncertain,split,source_keyword
f1,2,0,1,0,train,happy
f2,0,1,1,,val,sad
f3,0,0,0,0,train,x
f4,1,-1,0,0,train,x
f2,1,0,0,0,val,sad
f5,0,0,0,3,test,surprise
"""


def test_read_vote_counts(tmp_path):
    p = write(tmp_path, "votes.csv", VOTES)
    ann, rej = read_vote_counts(p, ["Happy", "Sad", "Surprise", "Uncertain"], "face", split_column="split",
                                query_column="source_keyword")
    counts = ann.groupby(["image_id", "emotion"]).size().to_dict()
    assert counts == {("f1", "Happy"): 2, ("f1", "Surprise"): 1, ("f2", "Sad"): 1, ("f2", "Surprise"): 1,
                      ("f5", "Uncertain"): 3}
    assert ann["synthetic_annotator"].all() and ann["annotator_id"].is_unique
    assert ann.groupby("image_id")["split"].first().to_dict() == {"f1": "train", "f2": "val", "f5": "test"}
    assert ann.groupby("image_id")["query_emotion"].first()["f1"] == "happy"
    assert set(zip(rej["line"], rej["reason"])) == {
        (4, "no_votes"), (5, "negative_count"), (6, "duplicate_item (first at line 3)")}
    with pytest.raises(AnnotationSourceError) as e:
        read_vote_counts(p, ["Happy", "Joyful"], "face")
    assert "'Joyful'" in str(e.value) and "votes.csv" in str(e.value)
    with pytest.raises(AnnotationSourceError, match="'image'"):
        read_vote_counts(p, ["Happy"], "image")


def test_arrow_parquet_duckdb_roundtrip_and_concat(tmp_path):
    p = write(tmp_path, "votes.csv", VOTES)
    va = read_vote_counts(p, ["Happy", "Sad", "Surprise", "Uncertain"], "face")
    lp = write(tmp_path, "long.csv", LONG)
    la = read_long(lp, {"image_id": "item", "annotator_id": "worker", "emotion": "label"})
    both = concat_sources([la, la, va])
    assert len(both.annotations) == len(la.annotations) + len(va.annotations)
    assert (both.rejects["reason"] == "duplicate_annotation (in an earlier source)").sum() == len(la.annotations)
    t = annotations_to_arrow(both.annotations)
    pq.write_table(t, tmp_path / "a.parquet")
    got = duckdb.sql(f"SELECT count(*), count(valence), count(age_groups), sum(len(tags)) "
                     f"FROM '{tmp_path / 'a.parquet'}'").fetchall()[0]
    # neither source records age groups: NULL (unknown), not an empty list (none ticked)
    assert got == (len(both.annotations), 0, 0, 0)


def test_durations_from_timestamps():
    ann = pd.DataFrame({"annotator_id": ["u1", "u1", "u1", "u2"],
                        "annotated_at": pd.to_datetime(["2023-07-04 12:00", "2023-07-04 12:30", None, "2023-07-04 13:00"])})
    d = durations_from_timestamps(ann)
    assert d["u1"] == 1800.0 and d["u2"] == 0.0
