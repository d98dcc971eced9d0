"""Annotation statistics: on the real FindingEmo-Light data against an independent computation
(FindingEmo §2.4 Table 2, §A.6), on a multi-annotated fixture with known histograms (§A.5
Figs. 12, 14, 15, V/A maximum distance), and the SQL views equal the pandas functions."""

from functools import lru_cache

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ops.annotations.statistics import (
    VIEWS, compute_stats, emotion8_stats, emotion24_stats, sql_stats, stats_metadata, view_ddl,
)
from ops.annotations.readers import annotations_to_arrow, default_findingemo_path, read_findingemo_ann
from ops.labels.merge import merge_annotations, merged_to_arrow

# the test's own Plutchik mapping (FindingEmo §2.1, Fig. 3), written independently of ops.annotations.taxonomy
MY_LEAVES = {
    "Joy": ["Serenity", "Joy", "Ecstasy"], "Trust": ["Acceptance", "Trust", "Admiration"],
    "Fear": ["Apprehension", "Fear", "Terror"], "Surprise": ["Distraction", "Surprise", "Amazement"],
    "Sadness": ["Pensiveness", "Sadness", "Grief"], "Disgust": ["Boredom", "Disgust", "Loathing"],
    "Anger": ["Annoyance", "Anger", "Rage"], "Anticipation": ["Interest", "Anticipation", "Vigilance"],
}
MY_MAP = {e: leaf for leaf, es in MY_LEAVES.items() for e in es}


@lru_cache(maxsize=1)
def real():
    ann = read_findingemo_ann().annotations
    return ann, merge_annotations(ann)


def independent_leaf_stats() -> pd.DataFrame:
    raw = pd.read_csv(default_findingemo_path())
    raw["leaf"] = raw["emotion"].map(MY_MAP)
    assert raw["leaf"].notna().all()
    g = raw.groupby("leaf")
    out = pd.DataFrame({"n": g.size()})
    for d in ("arousal", "valence", "ambiguity"):
        out[f"{d}_mean"] = g[d].mean()
        out[f"{d}_std"] = g[d].std()
    return out


@pytest.mark.slow
def test_real_emotion8_stats_equal_independent_computation():
    ann, merged = real()
    want = independent_leaf_stats()
    got_pd = emotion8_stats(ann).set_index("emotion8")
    got_sql = sql_stats(ann, merged, names=["emotion8_stats"])["emotion8_stats"].set_index("emotion8")
    for got in (got_pd, got_sql):
        assert list(got.index) == list(MY_LEAVES)  # all 8 leaves, wheel order
        assert got["n"].astype(int).to_dict() == want["n"].to_dict()
        for c in want.columns[1:]:
            np.testing.assert_allclose(got[c].loc[want.index].astype(float), want[c], rtol=1e-12, err_msg=c)
    # and they are FindingEmo's Table 2 (counts, means to 2 decimals)
    t2 = {"Joy": (7026, 2.96, 1.90, 1.58), "Trust": (3549, 2.57, 1.41, 1.88), "Fear": (2401, 3.24, -1.34, 2.09),
          "Surprise": (888, 2.57, 0.48, 2.39), "Sadness": (2665, 3.42, -1.57, 1.84), "Disgust": (1000, 2.44, -0.88, 2.22),
          "Anger": (2439, 3.59, -1.58, 1.99), "Anticipation": (5901, 2.46, 0.56, 2.15)}
    for leaf, (n, ar, va, am) in t2.items():
        r = got_pd.loc[leaf]
        assert r["n"] == n
        assert r[["arousal_mean", "valence_mean", "ambiguity_mean"]].astype(float).round(2).tolist() == pytest.approx([ar, va, am], abs=0.0051)


@pytest.mark.slow
def test_real_emotion24_and_cooccurrence():
    ann, merged = real()
    raw = pd.read_csv(default_findingemo_path())
    want = raw.groupby("emotion")["arousal"].agg(["size", "mean", "std"])
    s = sql_stats(ann, merged, names=["emotion24_stats", "va_cooccurrence", "annotators_per_image",
                                      "annotations_per_annotator"])
    e24 = s["emotion24_stats"].set_index("emotion24")
    assert len(e24) == 24 and e24.loc["Serenity", "emotion8"] == "Joy"
    assert e24["n"].astype(int).to_dict() == want["size"].to_dict()
    np.testing.assert_allclose(e24.loc[want.index, "arousal_mean"], want["mean"], rtol=1e-12)
    np.testing.assert_allclose(e24.loc[want.index, "arousal_std"], want["std"], rtol=1e-12)
    assert emotion24_stats(ann)["n"].sum() == 25869
    co = s["va_cooccurrence"].set_index(["valence", "arousal"])["n"]
    want_co = {(float(v), float(a)): n for (v, a), n in raw.groupby(["valence", "arousal"]).size().items()}
    assert {(float(v), float(a)): int(n) for (v, a), n in co.items()} == want_co  # FindingEmo Fig. 5
    assert co.sum() == len(raw) and len(co) == raw.groupby(["valence", "arousal"]).ngroups
    assert s["annotators_per_image"].to_dict("records") == [{"n_annotators": 1, "n_images": 25869}]
    per = s["annotations_per_annotator"]
    assert len(per) == 665 and per["n_annotations"].sum() == 25869
    assert per["n_annotations"].iat[0] == raw.groupby("user").size().max()


def A(image, ann, e24, leaf, keep=True, v=0, a=0):
    return {"image_id": image, "annotator_id": ann, "source": "t", "keep": keep, "valence": v, "arousal": a,
            "ambiguity": 1, "emotion24": e24, "emotion8": leaf, "emotion": e24, "taxonomy": "plutchik24",
            "age_groups": [], "deciding_factors": [], "tags": [], "annotated_at": pd.NaT}


def multi_fixture() -> pd.DataFrame:
    rows = [
        A("A", "u1", "Joy", "Joy", v=2, a=3), A("A", "u2", "Serenity", "Joy", v=3, a=1), A("A", "u3", "Joy", "Joy", v=2, a=2),
        A("B", "u1", "Joy", "Joy", v=1, a=1), A("B", "u2", "Trust", "Trust", v=1, a=4),
        A("C", "u1", "Joy", "Joy", v=2, a=2), A("C", "u2", "Sadness", "Sadness", v=-2, a=5), A("C", "u3", "Joy", "Joy", v=1, a=2),
        A("D", "u1", "Anticipation", "Anticipation", v=0, a=3), A("D", "u2", "Joy", "Joy", v=1, a=3),
        A("E", "u1", "Fear", "Fear", v=-2, a=5), A("E", "u2", "Anger", "Anger", v=-3, a=6), A("E", "u3", "Surprise", "Surprise", v=0, a=4),
        A("F", "u4", "Joy", "Joy", v=3, a=3),
        A("G", "u1", None, None, keep=False), A("G", "u2", None, None, keep=False), A("G", "u3", "Grief", "Sadness", v=-3, a=6),
    ]
    return pd.DataFrame(rows)


def test_fixture_histograms_known_answers():
    ann = multi_fixture()
    merged = merge_annotations(ann)
    st = compute_stats(ann, merged)
    h12 = st["distinct_labels_histogram"]
    assert h12[h12["level"] == "emotion8"][["n_distinct", "n_images"]].values.tolist() == [[1, 1], [2, 3], [3, 1]]
    assert h12[h12["level"] == "emotion24"][["n_distinct", "n_images"]].values.tolist() == [[2, 4], [3, 1]]
    h14 = st["max_distance_histogram"]
    assert h14[h14["level"] == "emotion8"][["max_distance", "n_images"]].values.tolist() == [[1, 2], [4, 2]]
    assert h14[h14["level"] == "emotion24"]["max_distance"].tolist() == [0.33, 1.0, 4.0]
    pairs = st["emotion8_pair_prevalence"]
    assert set(map(tuple, pairs[["label_a", "label_b", "wheel_distance", "n_images"]].values.tolist())) == {
        ("Joy", "Trust", 1, 1), ("Joy", "Sadness", 4, 1), ("Joy", "Anticipation", 1, 1)}
    assert st["keep_majority_counts"].values.tolist() == [["keep", 6], ["reject", 1]]
    assert st["annotators_per_image"].values.tolist() == [[1, 1], [2, 2], [3, 4]]
    # §A.5 maximum V/A distance over keep-majority images with >= 2 values: A..E
    ar = [2, 3, 3, 0, 2]
    va = [1, 0, 4, 1, 3]
    vm = st["va_max_distance"].iloc[0]
    assert vm["n_images"] == 5
    assert vm["arousal_mean"] == pytest.approx(np.mean(ar)) and vm["arousal_std"] == pytest.approx(np.std(ar, ddof=1))
    assert vm["valence_mean"] == pytest.approx(np.mean(va)) and vm["valence_std"] == pytest.approx(np.std(va, ddof=1))
    byn = st["va_max_distance_by_n"]
    assert byn[["n_values", "n_images"]].values.tolist() == [[2, 2], [3, 3]]
    e8 = st["emotion8_stats"].set_index("emotion8")
    assert e8.loc["Joy", "n"] == 8 and e8.loc["Disgust", "n"] == 0 and np.isnan(e8.loc["Disgust", "valence_mean"])
    assert e8.loc["Sadness", "n"] == 2  # G's kept Grief counts: statistics are over kept annotations
    md = stats_metadata(ann, merged)
    assert md["keep_majority"] == {"keep": 6, "reject": 1} and md["emotion8_counts"]["Joy"] == 8


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a.reset_index(drop=True)
    b = b.reset_index(drop=True)[list(a.columns)]
    assert a.shape == b.shape
    for c in a.columns:
        x, y = a[c], b[c]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            np.testing.assert_allclose(x.astype(float), y.astype(float), rtol=1e-9, equal_nan=True, err_msg=c)
        else:
            assert x.astype(object).where(x.notna(), None).tolist() == y.astype(object).where(y.notna(), None).tolist(), c


@pytest.mark.slow
def test_sql_views_equal_pandas_and_work_over_parquet(tmp_path):
    ann = multi_fixture()
    merged = merge_annotations(ann)
    pd_stats = compute_stats(ann, merged)
    sq = sql_stats(ann, merged)
    assert set(sq) == set(VIEWS) == set(pd_stats)
    for name in VIEWS:
        _same(pd_stats[name], sq[name])
    # as DuckDB views over Parquet files, the way the warehouse catalog holds them
    pq.write_table(annotations_to_arrow(ann), tmp_path / "annotations.parquet")
    pq.write_table(merged_to_arrow(merged), tmp_path / "merged.parquet")
    pq.write_table(pa.Table.from_pandas(pd.DataFrame({"annotator_id": ["u3"], "excluded": [True]})), tmp_path / "sc.parquet")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute(f"CREATE VIEW annotations AS SELECT * FROM read_parquet('{tmp_path / 'annotations.parquet'}')")
    con.execute(f"CREATE VIEW merged_annotations AS SELECT * FROM read_parquet('{tmp_path / 'merged.parquet'}')")
    con.execute(f"CREATE VIEW annotator_scores AS SELECT * FROM read_parquet('{tmp_path / 'sc.parquet'}')")
    for name in VIEWS:
        con.execute(view_ddl(name))
        _same(pd_stats[name], con.execute(f"SELECT * FROM {name}").df())
    con.execute(view_ddl("emotion8_stats", excluded_table="annotator_scores"))
    got = con.execute("SELECT n FROM emotion8_stats WHERE emotion8 = 'Joy'").fetchall()
    assert got == [(6,)]  # u3's two Joy annotations left out
    assert emotion8_stats(ann, excluded_annotators=["u3"]).set_index("emotion8").loc["Joy", "n"] == 6
    con.close()
