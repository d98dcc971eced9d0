"""The GX suites behind the blocking checks fail on the violations they exist for."""

import pandas as pd
import pytest

from ops import quality


@pytest.mark.slow
def test_images_suite_catches_duplicates_and_widths():
    good = pd.DataFrame({"sha256": ["a" * 64, "b" * 64], "width": [801, 1599]})
    assert quality.validate(good, "images", quality.images_suite(800, 1600)).success
    dup = pd.DataFrame({"sha256": ["a" * 64, "a" * 64], "width": [900, 900]})
    out = quality.validate(dup, "images", quality.images_suite(800, 1600))
    assert not out.success and [o.expectation for o in out.failures()] == ["expect_column_values_to_be_unique"]
    assert quality.validate(dup, "images", quality.images_suite(800, 1600, unique=False)).success
    edge = pd.DataFrame({"sha256": ["a" * 64, "b" * 64], "width": [800, 1600]})  # limits are exclusive
    out = quality.validate(edge, "images", quality.images_suite(800, 1600))
    assert not out.success and out.failures()[0].unexpected_count == 2


@pytest.mark.slow
def test_downloads_suite_needs_one_known_status_per_candidate():
    df = pd.DataFrame({"candidate_id": ["c1", "c2", "c2"], "status": ["ok", "http_404", "weird"]})
    out = quality.validate(df, "dl", quality.downloads_suite(2, ["ok", "http_404"]))
    failed = {o.expectation for o in out.failures()}
    assert failed == {"expect_table_row_count_to_equal", "expect_column_values_to_be_unique",
                      "expect_column_values_to_be_in_set"}
    assert "dl:" in out.describe()


def test_merged_suite_checks_vote_sums():
    df = pd.DataFrame({"image_id": ["i1", "i2"], "taxonomy": ["t", "t"], "n_annotators": [3, 2],
                       "n_annotations_all": [3, 2],
                       "emotion8_n_votes": [3, 3], "emotion8__vote_sum": [3, 2]})
    out = quality.validate(df, "m", quality.merged_suite(["emotion8"]))
    assert {o.expectation for o in out.failures()} == {"expect_column_pair_values_to_be_equal",
                                                        "expect_column_pair_values_a_to_be_greater_than_b"}


def test_merged_suite_needs_an_annotation_per_image_even_when_its_annotators_were_excluded():
    df = pd.DataFrame({"image_id": ["i1", "i2"], "taxonomy": ["t", "t"], "n_annotators": [0, 1],
                       "n_annotations_all": [2, 0], "emotion8_n_votes": [0, 0], "emotion8__vote_sum": [0, 0]})
    out = quality.validate(df, "m", quality.merged_suite(["emotion8"]))
    # i1: both annotators excluded by grading (n_annotators 0) is fine; i2: no annotation at all is not
    assert [(o.expectation, o.unexpected_count) for o in out.failures()] == [("expect_column_values_to_be_between", 1)]


def test_an_unchanged_table_is_answered_from_the_cache_without_running_gx(tmp_path, monkeypatch):
    from warehouse.store import ResultCache

    cache = ResultCache(tmp_path / "check_results")
    dup = pd.DataFrame({"sha256": ["a" * 64, "a" * 64, "c" * 64], "width": [900, 900, 700]})
    first = quality.validate(dup, "images", quality.images_suite(800, 1600), cache=cache)
    assert not first.cached and not first.success

    def no_gx(*a, **k):
        raise AssertionError("GX ran for rows it had already validated")
    monkeypatch.setattr(quality, "_validate", no_gx)
    again = quality.validate(dup.copy(), "images", quality.images_suite(800, 1600), cache=cache)
    assert again.cached and again.success is False and again.n_rows == 3
    assert [(o.expectation, o.unexpected_count) for o in again.failures()] == \
        [(o.expectation, o.unexpected_count) for o in first.failures()]
    assert isinstance(again.failures()[0].unexpected_count, int) and again.describe() == first.describe()
    monkeypatch.undo()
    # other rows, or another suite on the same rows: validated again
    other = quality.validate(dup.iloc[:2], "images", quality.images_suite(800, 1600), cache=cache)
    assert not other.cached
    wider = quality.validate(dup, "images", quality.images_suite(600, 1600), cache=cache)
    assert not wider.cached and [o.unexpected_count for o in wider.failures()] == [2]
