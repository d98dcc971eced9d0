"""Dataset splits (ops.training.splits) against hand-made data and hand-computed expectations.

FindingEmo §3's 80/20 split stratified per Emo8 label, Deep Affect §2.3's k folds, the sources' own
splits, and emoforge's leakage guard: a near-duplicate family (``group_id``) never straddles two
splits of a scheme, a face always takes its image's split, and ``leaks`` reports what breaks this.
Expected values are written out by hand or counted with plain numpy/pandas, never by calling the
function under test a second way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ops.training import splits as S

LABELS = ["Joy", "Trust", "Fear", "Surprise", "Sadness", "Disgust", "Anger", "Anticipation"]
SEEDS = range(20)


def make_items(per_label: int = 50, family: dict[str, str] | None = None) -> pd.DataFrame:
    """``per_label`` items of each of the 8 labels, each item its own near-duplicate group.

    ``family`` (sha256 -> label) adds items that all share the group id "family" (a planted
    near-duplicate family)."""
    sha = [f"img{i:04d}" for i in range(per_label * len(LABELS))]
    items = pd.DataFrame({"sha256": sha, "label": np.repeat(LABELS, per_label), "group_id": sha})
    if family:
        fam = pd.DataFrame({"sha256": list(family), "label": list(family.values()), "group_id": "family"})
        items = pd.concat([items, fam], ignore_index=True)
    return items


FAMILY = {"dupA": "Joy", "dupB": "Joy", "dupC": "Fear", "dupD": "Anger", "dupE": "Joy"}


# ---- random_split (FindingEmo §3) ---------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 7])
def test_random_split_is_80_20_per_label(seed):
    """FindingEmo §3: 80/20 stratified per Emo8 label. With 50 single-item groups per label the
    test side of every label holds 20 % of it (10 of 50); tolerance ± 4 percentage points (± 2
    items), which still fails a split that is only stratified overall."""
    items = make_items()
    out = S.random_split(items, test_fraction=0.2, seed=seed)
    assert len(out) == len(items) and out["item_id"].is_unique
    assert set(out["split"]) == {"train", "test"}
    assert (out["scheme"] == "findingemo_80_20").all() and (out["seed"] == seed).all()
    assert (out["item_kind"] == "image").all()
    for label in LABELS:
        side = out.loc[out["label"] == label, "split"]
        assert len(side) == 50
        share = float((side == "test").mean())
        assert abs(share - 0.20) <= 0.04, f"{label}: test share {share:.2f}"
    assert abs(float((out["split"] == "test").mean()) - 0.20) <= 0.02


def test_random_split_same_seed_same_split_other_seed_other_split():
    """A split is a function of its seed: the same seed gives the same rows, another seed another
    test side."""
    items = make_items()
    a = S.random_split(items, seed=3)
    b = S.random_split(items, seed=3)
    pd.testing.assert_frame_equal(a, b)
    c = S.random_split(items, seed=4)
    test_a = set(a.loc[a["split"] == "test", "item_id"])
    test_c = set(c.loc[c["split"] == "test", "item_id"])
    assert test_a != test_c


def test_random_split_keeps_a_near_duplicate_family_on_one_side():
    """A planted family of 5 near-duplicates (one group_id, mixed labels) lies wholly in train or
    wholly in test, for each of 20 seeds, and the split has no leak."""
    items = make_items(per_label=20, family=FAMILY)
    for seed in SEEDS:
        out = S.random_split(items, seed=seed)
        fam = out.loc[out["item_id"].isin(list(FAMILY)), "split"]
        assert len(fam) == len(FAMILY)
        assert fam.nunique() == 1, f"seed {seed}: family split across {sorted(set(fam))}"
        assert (out.loc[out["item_id"].isin(list(FAMILY)), "group_id"] == "family").all()
        assert S.leaks(out).empty


def test_a_near_duplicate_familys_fold_depends_on_the_seed():
    """Over 20 seeds a randomly placed family would visit several of the 5 folds (all 20 in one
    fold has probability 5 * 0.2**20, about 5e-14, for a uniformly random placement)."""
    items = make_items(per_label=20, family=FAMILY)
    folds = set()
    for seed in SEEDS:
        out = S.kfold_split(items, k=5, seed=seed)
        folds |= set(out.loc[out["item_id"].isin(list(FAMILY)), "split"])
    assert len(folds) > 1, f"family in {sorted(folds)} for every seed"


# ---- kfold_split (Deep Affect §2.3) -------------------------------------------------------------

def test_kfold_folds_are_disjoint_cover_everything_and_are_named():
    """k = 5 folds named fold0..fold4: every item in exactly one fold (disjoint + covering), no
    fold empty, and (stratified) every label spread 10 per fold ± 2 over its 50 items."""
    items = make_items()
    out = S.kfold_split(items, k=5, seed=0)
    assert (out["scheme"] == "kfold5").all()
    assert len(out) == len(items)
    assert out["item_id"].is_unique                             # disjoint: one fold per item
    assert set(out["item_id"]) == set(items["sha256"])          # cover: every item
    assert set(out["split"]) == {f"fold{i}" for i in range(5)}
    counts = out.groupby(["label", "split"]).size().unstack(fill_value=0)
    assert counts.shape == (8, 5)
    assert ((counts >= 8) & (counts <= 12)).all().all(), counts


@pytest.mark.parametrize("k", [2, 3, 5])
def test_kfold_keeps_a_near_duplicate_family_in_one_fold(k):
    """The planted family sits in a single fold for each of 20 seeds (no near-duplicate in the
    training folds of the fold it is evaluated on)."""
    items = make_items(per_label=10, family=FAMILY)
    for seed in SEEDS:
        out = S.kfold_split(items, k=k, seed=seed)
        assert set(out["split"]) == {f"fold{i}" for i in range(k)}
        fam = out.loc[out["item_id"].isin(list(FAMILY)), "split"]
        assert len(fam) == len(FAMILY) and fam.nunique() == 1, f"seed {seed}: {sorted(set(fam))}"


# ---- with_faces ---------------------------------------------------------------------------------

def test_with_faces_puts_every_face_in_its_images_split():
    """Each face row copies its image's split, scheme, group and seed; item_kind is 'face' and
    item_id the face id; a face of an image that is not in the split gets no row."""
    items = make_items(per_label=5, family={"dupA": "Joy", "dupB": "Joy"})
    images = S.random_split(items, seed=0)
    split_of = dict(zip(images["sha256"], images["split"]))
    test_img = next(s for s, v in split_of.items() if v == "test")
    train_img = next(s for s, v in split_of.items() if v == "train")
    faces = pd.DataFrame({"face_id": ["f1", "f2", "f3", "f4", "f5"],
                          "sha256": [test_img, test_img, train_img, "dupB", "not-split"]})
    out = S.with_faces(images, faces)
    assert list(out.columns) == list(images.columns)
    pd.testing.assert_frame_equal(out.iloc[:len(images)].reset_index(drop=True), images)
    f = out[out["item_kind"] == "face"].set_index("item_id")
    assert sorted(f.index) == ["f1", "f2", "f3", "f4"]            # f5's image has no split row
    expected = {"f1": split_of[test_img], "f2": split_of[test_img], "f3": split_of[train_img],
                "f4": split_of["dupB"]}
    assert f["split"].to_dict() == expected
    assert f.loc["f1", "split"] == "test" and f.loc["f3", "split"] == "train"
    assert f.loc["f4", "group_id"] == "family" and f.loc["f1", "group_id"] == test_img
    assert (f["scheme"] == "findingemo_80_20").all() and (f["seed"] == 0).all()
    assert S.leaks(out).empty


def test_with_faces_without_faces_returns_the_image_rows():
    """No faces: the image rows come back unchanged."""
    images = S.random_split(make_items(per_label=5), seed=0)
    out = S.with_faces(images, pd.DataFrame(columns=["face_id", "sha256"]))
    pd.testing.assert_frame_equal(out, images)


# ---- source splits and leakage ------------------------------------------------------------------

def source_items() -> pd.DataFrame:
    """AffectNet-like source rows: family g1 = a, b (train) + c (validation); g2 = d (validation);
    e (train) alone; tie family g3 = f (train) + g (validation)."""
    return pd.DataFrame({"sha256": list("abcdefg"),
                         "group_id": ["g1", "g1", "g1", "g2", "e", "g3", "g3"],
                         "label": ["Happy", "Happy", "Sad", "Fear", "Anger", "Sad", "Sad"],
                         "split": ["train", "train", "validation", "validation", "train", "train", "validation"]})


def test_leaks_reports_a_source_that_splits_a_family():
    """Copied as given, the source's split puts family g1 on both sides: ``leaks`` names scheme
    'source', group g1, the splits it spans and its 3 items (and g3 with its 2)."""
    rows = S.source_split(source_items())
    assert (rows["scheme"] == "source").all() and rows["seed"].isna().all()
    found = S.leaks(rows)
    assert list(found.columns) == ["scheme", "group_id", "splits", "n_items"]
    got = {(r.scheme, r.group_id, r.splits, r.n_items) for r in found.itertuples()}
    assert got == {("source", "g1", "train,validation", 3), ("source", "g3", "train,validation", 2)}


def test_resolve_source_leaks_moves_the_family_to_its_majority_split():
    """g1 (2 train + 1 validation) goes whole to train; c keeps source_split 'validation'; families
    in one split are untouched; the tie g3 (1 train + 1 validation) goes to the first split name in
    order, 'train'. Afterwards ``leaks`` finds nothing."""
    items = source_items()
    out = S.resolve_source_leaks(items)
    by = out.set_index("sha256")
    assert by["split"].to_dict() == {"a": "train", "b": "train", "c": "train", "d": "validation",
                                     "e": "train", "f": "train", "g": "train"}
    assert by["source_split"].to_dict() == dict(zip(items["sha256"], items["split"]))
    assert by.loc["c", "source_split"] == "validation"
    assert items["split"].tolist()[2] == "validation"          # the input frame is not modified
    assert S.leaks(S.source_split(out)).empty


def test_leaks_reports_a_planted_leak_in_a_random_split():
    """A clean random split has no leak; moving one member of the planted family to the other side
    gives exactly one leak row: scheme findingemo_80_20, group 'family', both splits, all 5 items."""
    items = make_items(per_label=10, family=FAMILY)
    out = S.random_split(items, seed=0)
    assert S.leaks(out).empty
    side = out.loc[out["item_id"] == "dupC", "split"].iloc[0]
    other = "train" if side == "test" else "test"
    bad = out.copy()
    bad.loc[bad["item_id"] == "dupC", "split"] = other
    found = S.leaks(bad)
    assert len(found) == 1
    row = found.iloc[0]
    assert (row["scheme"], row["group_id"], row["splits"], row["n_items"]) == (
        "findingemo_80_20", "family", "test,train", 5)


def test_leaks_reports_one_image_in_two_splits():
    """The same image twice in one scheme with different splits (e.g. its face row taken to the
    other side) is reported under 'image:<sha256>' as well as under its group."""
    rows = pd.DataFrame({"scheme": "s", "item_id": ["x", "face-x", "y"], "item_kind": ["image", "face", "image"],
                         "split": ["train", "test", "train"], "sha256": ["x", "x", "y"],
                         "group_id": ["gx", "gx", "gy"]})
    found = S.leaks(rows)
    got = {(r.scheme, r.group_id, r.splits, r.n_items) for r in found.itertuples()}
    assert got == {("s", "gx", "test,train", 2), ("s", "image:x", "test,train", 2)}
    assert S.leaks(rows.iloc[:0]).empty


# ---- build_splits on a hand-made merged_annotations frame ---------------------------------------

def merged_frame(emos: list[str] | None = None) -> pd.DataFrame:
    """A small ``merged_annotations``: 12 kept Plutchik images k00..k11 (Emo8: 6 Joy, 3 Fear, 3
    Anger; V/A), 2 rejected
    images r0, r1, one kept row without sha256, 3 AffectNet rows a0..a2 with a source split (a0, a1
    in one near-duplicate family across train/validation) and one AffectNet row without sha256."""
    rows = []
    emos = emos or ["Joy"] * 6 + ["Fear"] * 3 + ["Anger"] * 3
    for i in range(12):
        rows.append({"sha256": f"k{i:02d}", "taxonomy": "plutchik24", "image_id": f"p{i}", "emotion8": emos[i],
                     "keep_majority": "keep", "valence_mean": float(i % 7 - 3), "arousal_mean": float(i % 7),
                     "emotion": None, "split": None})
    for j, emo in enumerate(["Joy", "Fear"]):
        rows.append({"sha256": f"r{j}", "taxonomy": "plutchik24", "image_id": f"q{j}", "emotion8": emo,
                     "keep_majority": "reject", "valence_mean": 1.0, "arousal_mean": 2.0, "emotion": None,
                     "split": None})
    rows.append({"sha256": None, "taxonomy": "plutchik24", "image_id": "nosha", "emotion8": "Joy",
                 "keep_majority": "keep", "valence_mean": 0.0, "arousal_mean": 3.0, "emotion": None, "split": None})
    for j, (emo, split) in enumerate([("Happy", "train"), ("Sad", "validation"), ("Fear", "train")]):
        rows.append({"sha256": f"a{j}", "taxonomy": "affectnet8", "image_id": f"an{j}", "emotion8": None,
                     "keep_majority": None, "valence_mean": None, "arousal_mean": None, "emotion": emo,
                     "split": split})
    rows.append({"sha256": None, "taxonomy": "affectnet8", "image_id": "an-nosha", "emotion8": None,
                 "keep_majority": None, "valence_mean": None, "arousal_mean": None, "emotion": "Happy",
                 "split": "train"})
    return pd.DataFrame(rows)


KEPT = {f"k{i:02d}" for i in range(12)}


def build():
    groups = pd.Series({"k00": "famK", "k01": "famK", "a0": "famA", "a1": "famA"})
    faces = pd.DataFrame({"face_id": ["face-k00", "face-r0", "face-a1"], "sha256": ["k00", "r0", "a1"]})
    return S.build_splits(merged_frame(), groups, faces, None, test_fraction=0.2, k=5, seed=0)


def test_build_splits_schemes_and_items():
    """findingemo_80_20 and kfold5 hold exactly the 12 kept images (rejected r0, r1 and the row
    without sha256 are out), plus the face of k00; the source scheme holds a0..a2 (not the row
    without sha256) plus the face of a1; the face of the rejected r0 is in no scheme."""
    out = build()
    assert set(out["scheme"]) == {"findingemo_80_20", "kfold5", "source"}
    for scheme in ("findingemo_80_20", "kfold5"):
        sc = out[out["scheme"] == scheme]
        assert set(sc.loc[sc["item_kind"] == "image", "item_id"]) == KEPT
        assert set(sc.loc[sc["item_kind"] == "face", "item_id"]) == {"face-k00"}
    fe = out[out["scheme"] == "findingemo_80_20"]
    assert set(fe["split"]) == {"train", "test"}
    assert fe.set_index("item_id").loc[["k00", "k01"], "split"].nunique() == 1     # family famK together
    assert fe.set_index("item_id").loc["face-k00", "split"] == fe.set_index("item_id").loc["k00", "split"]
    src = out[out["scheme"] == "source"]
    assert set(src["item_id"]) == {"a0", "a1", "a2", "face-a1"}
    assert not out["item_id"].isin(["r0", "r1", "face-r0", "None", "nan", ""]).any()
    assert out["sha256"].notna().all() and not out["sha256"].isin(["None", "nan"]).any()


def test_build_splits_source_scheme_resolves_the_family():
    """a0 (train) and a1 (validation) are one family: both end in the majority/tie split 'train',
    a1 (and its face) keep source_split 'validation'; the whole build has no leak."""
    out = build()
    src = out[out["scheme"] == "source"].set_index("item_id")
    assert src.loc[["a0", "a1", "face-a1"], "split"].tolist() == ["train", "train", "train"]
    assert src.loc[["a0", "a1", "a2", "face-a1"], "source_split"].tolist() == ["train", "validation", "train",
                                                                                "validation"]
    assert src.loc["a1", "label"] == "Sad"
    assert S.leaks(out).empty


def test_build_splits_output_schema_and_uniqueness():
    """Exactly SPLITS_SCHEMA's columns, in its order, and one row per (scheme, item_id)."""
    out = build()
    assert list(out.columns) == S.SPLITS_SCHEMA.names
    assert not out.duplicated(["scheme", "item_id"]).any()
    assert len(out) == 13 + 13 + 4                                      # hand count: 12+1, 12+1, 3+1
    assert out.loc[out["scheme"] != "source", "seed"].eq(0).all()


def test_to_table_empty_has_schema_columns():
    """No rows at all still gives a frame with SPLITS_SCHEMA's columns."""
    out = S.to_table([])
    assert list(out.columns) == S.SPLITS_SCHEMA.names and out.empty


# ---- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_random_split_rejects_test_fraction_outside_0_1(fraction):
    """test_fraction must lie strictly between 0 and 1."""
    with pytest.raises(ValueError, match="test_fraction"):
        S.random_split(make_items(per_label=5), test_fraction=fraction)


@pytest.mark.parametrize("k", [1, 0, -3])
def test_kfold_rejects_k_below_2(k):
    """k-fold needs at least two folds."""
    with pytest.raises(ValueError, match="k must be >= 2"):
        S.kfold_split(make_items(per_label=5), k=k)


def test_fewer_groups_than_folds_is_a_clear_error():
    """Six items in three near-duplicate groups cannot make 5 group-disjoint folds (nor a 1-in-5
    test side): the error says how many folds need how many groups and how many there are."""
    items = pd.DataFrame({"sha256": [f"s{i}" for i in range(6)], "label": ["Joy", "Fear"] * 3,
                          "group_id": ["g0", "g0", "g1", "g1", "g2", "g2"]})
    with pytest.raises(ValueError, match=r"5 folds need at least 5 near-duplicate groups, got 3"):
        S.kfold_split(items, k=5)
    with pytest.raises(ValueError, match=r"at least 5 near-duplicate groups, got 3"):
        S.random_split(items, test_fraction=0.2)


def test_split_when_every_label_has_fewer_members_than_folds():
    """12 single-image groups, 4 per label: enough groups for 5 folds, so a 1-in-5 test side and 5
    folds exist (each item placed once, no fold empty), and build_splits on 12 kept images with 4
    per Emo8 label makes its findingemo_80_20 scheme."""
    items = pd.DataFrame({"sha256": [f"s{i:02d}" for i in range(12)], "label": ["Joy", "Fear", "Anger"] * 4})
    items["group_id"] = items["sha256"]
    folds = S.kfold_split(items, k=5, seed=0)
    assert folds["item_id"].is_unique and set(folds["split"]) == {f"fold{i}" for i in range(5)}
    rnd = S.random_split(items, test_fraction=0.2, seed=0)
    assert set(rnd["split"]) == {"train", "test"}
    out = S.build_splits(merged_frame(["Joy", "Fear", "Anger"] * 4), pd.Series(dtype=object),
                         pd.DataFrame(columns=["face_id", "sha256"]), None)
    assert set(out.loc[out["scheme"] == "findingemo_80_20", "item_id"]) == KEPT


# ---- a refresh keeps the previous build's splits ----------------------------------------------------

def _grown(items: pd.DataFrame, new_per_label: int, relabel_every: int) -> pd.DataFrame:
    """``items`` with every ``relabel_every``-th item given the next label and ``new_per_label`` new
    items of each label (each its own group)."""
    out = items.copy()
    idx = out.index[::relabel_every]
    out.loc[idx, "label"] = [LABELS[(LABELS.index(v) + 1) % len(LABELS)] for v in out.loc[idx, "label"]]
    new = [f"new{i:04d}" for i in range(new_per_label * len(LABELS))]
    return pd.concat([out, pd.DataFrame({"sha256": new, "label": np.repeat(LABELS, new_per_label), "group_id": new})],
                     ignore_index=True)


@pytest.mark.parametrize("seed", [0, 3])
def test_refresh_keeps_every_image_in_its_split_and_places_new_ones_in_proportion(seed):
    items = make_items(50)
    first = S.random_split(items, 0.2, seed)
    grown = _grown(items, new_per_label=25, relabel_every=10)      # 200 new images, 40 relabelled
    again = S.random_split(grown, 0.2, seed, previous=first)
    old = first.set_index("sha256")["split"]
    now = again.set_index("sha256")["split"]
    assert (now[old.index] == old).all()                           # no image changed side
    fresh = S.random_split(grown, 0.2, seed)                       # without the previous table: reshuffled
    assert (fresh.set_index("sha256")["split"][old.index] != old).sum() > 20
    # the new images are split 80/20 per label too: 25 per label -> 5 test each (±2 for the greedy
    # placement around the kept ones); a refresh that sent every new image to train would give 0
    new = again[again["sha256"].str.startswith("new")]
    test_per_label = new[new["split"] == "test"].groupby("label").size().reindex(LABELS, fill_value=0)
    assert ((test_per_label >= 3) & (test_per_label <= 7)).all(), test_per_label.to_dict()


def test_refresh_keeps_kfold_folds_and_a_merged_family_stays_whole():
    items = make_items(20)
    first = S.kfold_split(items, 5, 0)
    grown = _grown(items, new_per_label=5, relabel_every=7)
    # two images that were their own groups are found to be near-duplicates of each other now
    a, b = first[first["split"] == "fold0"]["sha256"].iloc[0], first[first["split"] == "fold3"]["sha256"].iloc[0]
    grown.loc[grown["sha256"].isin([a, b]), "group_id"] = "merged"
    again = S.kfold_split(grown, 5, 0, previous=first)
    old = first.set_index("sha256")["split"].drop([a, b])
    assert (again.set_index("sha256")["split"][old.index] == old).all()
    assert again.loc[again["sha256"].isin([a, b]), "split"].nunique() == 1     # the family in one fold
    assert S.leaks(again).empty
    # a previous table of another seed is not this scheme's history
    other = S.kfold_split(grown, 5, 0, previous=S.kfold_split(items, 5, 1))
    assert other.equals(S.kfold_split(grown, 5, 0))
