"""Taxonomies as data: Plutchik Emo24 -> Emo8 (FindingEmo §2.1, Fig. 3), wheel distances (Fig. 13),
AffectNet-8 with non-emotion labels (AffectNet+ Supplement II)."""

import json

import pytest

from ops.annotations.taxonomy import (
    AFFECTNET8, EMO8, EMO24_TO_EMO8, PLUTCHIK24, Taxonomy, get_taxonomy, levels, load_taxonomies,
    max_pairwise_distance, register_taxonomy, slug, wheel_distance,
)


def test_plutchik_structure():
    assert len(PLUTCHIK24.labels) == 24
    assert EMO8.labels == ("Joy", "Trust", "Fear", "Surprise", "Sadness", "Disgust", "Anger", "Anticipation")
    # 8 leaves of 3, each leaf's basic emotion carries the leaf's name
    for leaf in EMO8.labels:
        members = [e for e, p in EMO24_TO_EMO8.items() if p == leaf]
        assert len(members) == 3 and leaf in members
    assert EMO24_TO_EMO8["Serenity"] == "Joy"
    assert EMO24_TO_EMO8["Interest"] == "Anticipation"
    assert EMO24_TO_EMO8["Boredom"] == "Disgust"
    assert EMO24_TO_EMO8["Distraction"] == "Surprise"
    assert [t.name for t in levels("plutchik24")] == ["plutchik24", "emo8"]
    assert PLUTCHIK24.non_emotion_labels == ()


def test_fig13_ordinals_and_distances():
    assert PLUTCHIK24.ordinal("Joy") == pytest.approx(0.66, abs=0.01)
    assert PLUTCHIK24.ordinal("Boredom") == pytest.approx(5.33, abs=0.01)
    # the paper's example: joy - boredom = 3 (leaves) + 0.33 (intra-leaf)
    assert wheel_distance("Joy", "Boredom") == 3.33
    # opposite leaves are 4 apart, adjacent 1, the wheel is circular
    for a, b in [("Joy", "Sadness"), ("Trust", "Disgust"), ("Fear", "Anger"), ("Surprise", "Anticipation")]:
        assert wheel_distance(a, b) == 4
    assert wheel_distance("Joy", "Trust") == 1
    assert wheel_distance("Anticipation", "Joy") == 1
    assert wheel_distance("Joy", "Joy") == 0
    # Emo24: intra-leaf distance only within a leaf; symmetric
    assert wheel_distance("Serenity", "Ecstasy") == 0.67
    assert wheel_distance("Ecstasy", "Grief") == wheel_distance("Grief", "Ecstasy") == 4
    assert wheel_distance("Vigilance", "Serenity") == 1.67
    with pytest.raises(ValueError):
        wheel_distance("Joy", "Happy")


def test_max_pairwise_distance():
    assert max_pairwise_distance(EMO8, ["Joy"]) == 0
    assert max_pairwise_distance(EMO8, ["Joy", "Trust", "Sadness"]) == 4
    assert max_pairwise_distance(EMO8, []) is None
    assert max_pairwise_distance(AFFECTNET8, ["Happy", "Sad"]) is None  # no wheel


def test_affectnet_and_normalization():
    assert AFFECTNET8.labels == ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
    assert AFFECTNET8.non_emotion_labels == ("None", "Uncertain", "Non-Face")
    assert AFFECTNET8.normalize("non face") == "Non-Face"
    assert AFFECTNET8.normalize("HAPPINESS") == "Happy"
    assert AFFECTNET8.normalize("Joy") is None
    assert not AFFECTNET8.is_emotion("Uncertain") and AFFECTNET8.is_non_emotion("Uncertain")
    assert PLUTCHIK24.normalize("serenity") == "Serenity"
    assert slug("Non-Face") == "non_face" and slug("Young Adults") == "young_adults"
    with pytest.raises(KeyError):
        get_taxonomy("nope")


def test_taxonomy_is_data(tmp_path):
    spec = {"taxonomies": [
        {"name": "valence3", "labels": ["Negative", "Neutral", "Positive"], "non_emotion_labels": ["Skip"]},
        {"name": "leafy", "labels": ["a1", "a2", "b1"], "parent_taxonomy": "coarse",
         "parent": {"a1": "A", "a2": "A", "b1": "B"}},
    ]}
    p = tmp_path / "tax.json"
    p.write_text(json.dumps({"taxonomies": [{"name": "coarse", "labels": ["A", "B"]}] + spec["taxonomies"]}))
    taxes = load_taxonomies(p)
    assert taxes["leafy"].to_parent("a2") == "A"
    assert taxes["valence3"].non_emotion_labels == ("Skip",)
    t = register_taxonomy(spec["taxonomies"][0], replace=True)
    assert get_taxonomy("valence3") is t and t.is_non_emotion("Skip")
    with pytest.raises(ValueError):
        Taxonomy("bad", ("x", "X"))
    with pytest.raises(ValueError):
        load_taxonomies({"taxonomies": [{"name": "c", "labels": ["A"]},
                                        {"name": "f", "labels": ["x"], "parent_taxonomy": "c", "parent": {"x": "Z"}}]})
