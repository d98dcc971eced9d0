"""The GX suites behind the blocking checks fail on the violations they exist for."""

from pathlib import Path

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


def _images(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"sha256": [f"{i:064x}" for i in range(start, start + n)],
                         "width": [801 + (i * 7) % 700 for i in range(start, start + n)],
                         "source": ["web"] * n})


def _counts(out: quality.SuiteOutcome) -> list[tuple]:
    return [(o.expectation, o.column, o.success, o.unexpected_count) for o in out.outcomes]


def test_a_grown_table_is_validated_on_its_new_rows_with_the_outcome_of_a_whole_validation(tmp_path, monkeypatch):
    from warehouse.store import ResultCache

    cache = ResultCache(tmp_path / "check_results")
    old = _images(300)
    first = quality.validate(old, "images", quality.images_suite(800, 1600), cache=cache)
    assert first.success and first.new_rows is None   # nothing stored yet: the whole table

    seen_rows = []
    real = quality._validate

    def spy(df, name, exps):
        seen_rows.append((len(df), sorted(df.columns)))
        return real(df, name, exps)
    monkeypatch.setattr(quality, "_validate", spy)

    # 12 new rows: 2 widths outside (800, 1600) and one SHA-256 that an old row already has
    new = _images(12, start=1000)
    new.loc[3, "width"] = 800
    new.loc[7, "width"] = 1700
    new.loc[9, "sha256"] = old.loc[5, "sha256"]
    grown = pd.concat([old, new], ignore_index=True)
    inc = quality.validate(grown, "images", quality.images_suite(800, 1600), cache=cache)
    whole = real(grown, "images", quality.images_suite(800, 1600))   # GX over every row, no cache
    assert _counts(inc) == _counts(whole)
    assert not inc.success and inc.new_rows == 12 and inc.n_rows == 312
    assert [(o.expectation, o.unexpected_count) for o in inc.failures()] == [
        ("expect_column_values_to_be_unique", 2), ("expect_column_values_to_be_between", 2)]
    # the row-wise expectations read the 12 new rows; uniqueness read the whole sha256 column only
    assert seen_rows == [(12, ["sha256", "width"]), (312, ["sha256"])]

    # the failing rows were not remembered: fixed, they are read again; the next growth reads only its rows
    grown.loc[[303, 307], "width"] = 900
    grown.loc[309, "sha256"] = "f" * 64
    seen_rows.clear()
    fixed = quality.validate(grown, "images", quality.images_suite(800, 1600), cache=cache)
    assert fixed.success and fixed.new_rows == 12 and seen_rows[0][0] == 12
    seen_rows.clear()
    more = pd.concat([grown, _images(5, start=2000)], ignore_index=True)
    assert quality.validate(more, "images", quality.images_suite(800, 1600), cache=cache).new_rows == 5
    assert seen_rows[0][0] == 5


def test_incremental_validation_agrees_with_a_whole_validation_on_pairs_sets_and_nulls(tmp_path):
    from warehouse.store import ResultCache

    cache = ResultCache(tmp_path / "check_results")
    n = 200
    df = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "taxonomy": ["plutchik"] * n,
                       "n_annotations_all": [1 + i % 3 for i in range(n)],
                       "n_annotators": [3] * n, "emotion8_n_votes": [i % 4 for i in range(n)]})
    df["emotion8__vote_sum"] = df["emotion8_n_votes"]
    suite = quality.merged_suite(["emotion8"])
    assert quality.validate(df, "m", suite, cache=cache).success
    grown = pd.concat([df, df.iloc[:6].assign(image_id=[f"n{i}" for i in range(6)])], ignore_index=True)
    grown.loc[n + 1, "emotion8__vote_sum"] = 9          # pair not equal
    grown.loc[n + 2, "n_annotators"] = 0                 # fewer annotators than votes
    grown.loc[n + 3, "n_annotations_all"] = 0            # below 1
    grown.loc[n + 4, "image_id"] = "i0"                  # (image, taxonomy) twice
    inc = quality.validate(grown, "m", suite, cache=cache)
    # rows are told apart by the columns the row-wise expectations read: the copies whose counts are
    # unchanged (rows n, n + 4, n + 5: only image_id differs) have been validated
    assert inc.new_rows == 3
    assert _counts(inc) == _counts(quality.validate(grown, "m", suite))
    assert sorted(o.expectation for o in inc.failures()) == [
        "expect_column_pair_values_a_to_be_greater_than_b", "expect_column_pair_values_to_be_equal",
        "expect_column_values_to_be_between", "expect_compound_columns_to_be_unique"]


def test_rows_of_another_type_or_suite_are_validated_whole(tmp_path):
    from warehouse.store import ResultCache

    cache = ResultCache(tmp_path / "check_results")
    old = _images(100)
    quality.validate(old, "images", quality.images_suite(800, 1600), cache=cache)
    grown = pd.concat([old, _images(3, start=500)], ignore_index=True)
    # the same values as floats: another column type, so nothing validated before counts
    as_float = grown.assign(width=grown["width"].astype("float64"))
    assert quality.validate(as_float, "images", quality.images_suite(800, 1600), cache=cache).new_rows is None
    # a narrower range is another suite: the old rows are read again (and 3 now fail)
    narrow = quality.validate(grown, "images", quality.images_suite(1400, 1600), cache=cache)
    assert narrow.new_rows is None and narrow.failures()[0].unexpected_count == \
        int(((grown["width"] <= 1400) | (grown["width"] >= 1600)).sum())
    assert quality.validate(grown, "images", quality.images_suite(800, 1600), cache=cache).new_rows == 3


def test_a_stored_outcome_ignores_unnamed_columns_and_is_read_without_importing_gx(tmp_path):
    """The outcome depends on the columns the suite names and the row count: a download retry that
    rewrote only attempt counts is answered from the store, by a process that never imports GX."""
    import subprocess
    import sys
    import textwrap

    from warehouse.store import ResultCache

    cache = ResultCache(tmp_path / "check_results")
    df = _images(50).assign(attempts=1)
    assert not quality.validate(df, "dl_ok", quality.images_suite(800, 1600, unique=False), cache=cache).cached
    again = quality.validate(df.assign(attempts=2), "dl_ok", quality.images_suite(800, 1600, unique=False), cache=cache)
    assert again.cached and again.success
    # one row fewer is other data, although the named columns' remaining values are the same
    assert not quality.validate(df.iloc[:49], "dl_ok", quality.images_suite(800, 1600, unique=False), cache=cache).cached

    df.assign(attempts=3).to_parquet(tmp_path / "rows.parquet")
    code = textwrap.dedent(f"""
        import sys
        import pandas as pd
        from ops import quality
        from warehouse.store import ResultCache
        out = quality.validate(pd.read_parquet({str(tmp_path / 'rows.parquet')!r}), "dl_ok",
                               quality.images_suite(800, 1600, unique=False),
                               cache=ResultCache({str(tmp_path / 'check_results')!r}))
        print(out.cached, out.success, "great_expectations" in sys.modules)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["True", "True", "False"]


def test_every_suite_names_real_gx_expectations():
    suites = [quality.candidates_suite(["ok"]), quality.downloads_suite(3, ["ok"]), quality.images_suite(1, 2),
              quality.annotations_suite({"valence": (-3, 3)}, ["joy"], ["joy"]), quality.merged_suite(["emotion8"]),
              quality.features_suite(4), quality.predictions_suite(["p_keep"]), quality.faces_suite(),
              quality.soft_labels_suite(["anger"]), quality.dataset_splits_suite(), quality.training_runs_suite()]
    for suite in suites:
        for e in suite:
            g = e.to_gx()
            assert g.expectation_type == e.type and {k: g.configuration.kwargs[k] for k in e.kwargs} == e.kwargs
