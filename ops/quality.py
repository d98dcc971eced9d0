"""Data-quality suites run with great-expectations 1.x in an ephemeral context.

Each suite is a list of :class:`Expect` (a GX expectation's type and arguments, described without
importing GX: a check answered from its stored outcome never pays the import); :func:`validate`
runs them on a DataFrame as ``gx.expectations`` objects and returns a plain summary (success, and
per expectation: how many rows fail and a few examples) that the Dagster asset checks turn into
check results. No Dagster here (``dagster-ge`` pins
great-expectations < 1, so the bridge is this small function).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@dataclass(frozen=True)
class Expect:
    """One GX expectation: its type (``expect_column_values_to_be_unique``) and its arguments."""

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"type": self.type, "kwargs": self.kwargs}

    def to_gx(self) -> Any:
        """The ``gx.expectations`` object (``ExpectColumnValuesToBeUnique(column=...)``)."""
        import great_expectations as gx

        return getattr(gx.expectations, "".join(w.capitalize() for w in self.type.split("_")))(**self.kwargs)


def _e(gx_class: str, **kwargs: Any) -> Expect:
    """``Expect`` from GX's class name: ``_e("ExpectColumnValuesToBeUnique", column="x")``."""
    return Expect(re.sub(r"(?<!^)([A-Z])", r"_\1", gx_class).lower(), kwargs)


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None
    examples: list[Any] = field(default_factory=list)
    observed: Any = None


@dataclass
class SuiteOutcome:
    suite: str
    success: bool
    n_rows: int
    outcomes: list[ExpectationOutcome]
    cached: bool = False      # the outcome of an earlier validation of the same rows by the same suite
    new_rows: int | None = None   # validated incrementally: the rows the row-wise expectations read

    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def describe(self) -> str:
        if self.success:
            return f"{self.suite}: all {len(self.outcomes)} expectations hold on {self.n_rows} rows"
        parts = []
        for o in self.failures():
            where = f"[{o.column}]" if o.column else ""
            parts.append(f"{o.expectation}{where}: {o.unexpected_count} rows fail, e.g. {o.examples[:5]}"
                         if o.unexpected_count is not None else f"{o.expectation}{where}: observed {o.observed}")
        return f"{self.suite}: " + "; ".join(parts)


_CTX = None


def _context():
    global _CTX
    if _CTX is None:
        import great_expectations as gx

        _CTX = gx.get_context(mode="ephemeral")
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            _CTX.variables.progress_bars = ProgressBarsConfig(globally=False)
        except Exception:  # older/newer layout: progress bars are cosmetic only
            pass
    return _CTX


def _arrow(df: pd.DataFrame):
    """The rows as an Arrow table (one type per column), or None when they cannot be converted."""
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError):
        return None


def _gx_version() -> str:
    from importlib import metadata

    return metadata.version("great_expectations")


def _suite_hash(suite_name: str, expectations: list[Any]) -> Any:
    h = hashlib.sha256(f"{_gx_version()}\x1f{suite_name}".encode())
    for e in expectations:
        h.update(json.dumps(e.to_json(), sort_keys=True, default=str).encode())
    return h


def _named(df: pd.DataFrame, expectations: list[Expect]) -> pd.DataFrame:
    """The columns of ``df`` that the expectations name (all of them when none is named): the only
    data a suite's outcome depends on, besides the number of rows."""
    cols = [c for c in dict.fromkeys(c for e in expectations for c in _columns(e)) if c in df.columns]
    return df[cols] if cols else df


def result_key(df: pd.DataFrame, suite_name: str, expectations: list[Any], table=None) -> str | None:
    """What a suite's outcome depends on: the number of rows and the columns it names (their Arrow
    serialization; a bookkeeping column such as a download's attempt count does not count), the suite
    (each expectation's type and arguments) and the GX version; None when the rows cannot be serialized."""
    import pyarrow as pa

    table = _arrow(_named(df, expectations)) if table is None else table
    if table is None:
        return None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    h = _suite_hash(suite_name, expectations)
    h.update(f"\x1frows={len(df)}".encode())
    h.update(hashlib.sha256(sink.getvalue()).digest())
    return h.hexdigest()[:32]


# GX map expectations whose verdict on a row depends on that row's values alone (without ``mostly``,
# which makes the verdict a share of the whole column). A row that passed them once passes them again,
# so a table that grew is validated on its new rows only; every other expectation (uniqueness, row
# counts, distinct-value counts) reads the whole column again.
ROW_WISE = frozenset({
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_between", "expect_column_value_lengths_to_equal",
    "expect_column_pair_values_to_be_equal", "expect_column_pair_values_a_to_be_greater_than_b",
})


def _type(e: Expect) -> str:
    return e.type


def _columns(e: Expect) -> list[str]:
    kw = e.kwargs
    cols = [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *(kw.get("column_list") or [])]
    return [c for c in cols if c]


def _row_wise(e: Any) -> bool:
    mostly = e.kwargs.get("mostly")
    return _type(e) in ROW_WISE and (mostly is None or float(mostly) >= 1.0)


def _row_hashes(table) -> Any:
    """One 64-bit hash per row of an Arrow table (DuckDB's ``hash`` over every column; the column types
    are part of the key the hashes are stored under). A new row whose hash equals a validated row's
    is taken as validated: with n stored rows the chance of that for a given new row is n / 2^64."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("t", table)
        cols = ", ".join('"' + c.replace('"', '""') + '"' for c in table.column_names)
        return con.execute(f"SELECT hash({cols}) AS h FROM t").fetchnumpy()["h"]
    finally:
        con.close()


def validate(df: pd.DataFrame, suite_name: str, expectations: list[Any], cache=None) -> SuiteOutcome:
    """Run the suite ``expectations`` (:class:`Expect`) on ``df``. ``cache`` (get/put of JSON by key,
    and get_rows/put_rows of row hashes, e.g. the warehouse's ``check_results``):

    - a suite already run on the same rows answers from it (``cached``), so a rebuild that rewrote a
      table with the same rows checks nothing again;
    - a table that changed is validated incrementally (``new_rows``): the row-wise expectations on the
      rows they have not passed before, the others on the whole table (only the columns they name).
      The outcome is the one a validation of the whole table gives (tests/test_quality.py compares)."""
    df = _named(df, expectations)
    table = _arrow(df) if cache is not None else None
    key = result_key(df, suite_name, expectations, table=table) if table is not None else None
    if key is not None:
        hit = cache.get(key)
        if hit is not None:
            return SuiteOutcome(suite=hit["suite"], success=bool(hit["success"]), n_rows=int(hit["n_rows"]),
                                outcomes=[ExpectationOutcome(**o) for o in hit["outcomes"]], cached=True)
    out = _validate_incrementally(df, table, suite_name, expectations, cache) if table is not None else None
    if out is None:
        out = _validate(df, suite_name, expectations)
        _remember_rows(df, table, suite_name, expectations, out, cache)
    if key is not None:
        cache.put(key, {"suite": out.suite, "success": out.success, "n_rows": out.n_rows, "new_rows": out.new_rows,
                        "outcomes": [{**asdict(o), "unexpected_count": None if o.unexpected_count is None
                                      else int(o.unexpected_count)} for o in out.outcomes]})
    return out


def _rows_key(suite_name: str, row_exps: list[Any], table) -> str:
    h = _suite_hash(suite_name, row_exps)
    h.update(str(table.schema).encode())
    return "rows-" + h.hexdigest()[:32]


def _row_part(df: pd.DataFrame, table, expectations: list[Any]):
    """(row-wise expectations, their columns as an Arrow table) or None when they name a column the
    rows do not have (GX reports that, so the whole table is validated)."""
    row_exps = [e for e in expectations if _row_wise(e)]
    cols = sorted({c for e in row_exps for c in _columns(e)})
    if not row_exps or not cols or not set(cols) <= set(df.columns) or not set(cols) <= set(table.column_names):
        return None
    return row_exps, table.select(cols)


def _remember_rows(df, table, suite_name, expectations, out: SuiteOutcome, cache) -> None:
    """After a whole-table validation whose row-wise expectations all held: store the rows' hashes."""
    if table is None or cache is None or not hasattr(cache, "put_rows"):
        return
    part = _row_part(df, table, expectations)
    if part is None:
        return
    row_exps, sub = part
    ok = all(o.success for e, o in zip(expectations, out.outcomes) if _row_wise(e))
    if ok and len(out.outcomes) == len(expectations):
        cache.put_rows(_rows_key(suite_name, row_exps, sub), _row_hashes(sub))


def _validate_incrementally(df, table, suite_name, expectations, cache) -> SuiteOutcome | None:
    import numpy as np

    if cache is None or not hasattr(cache, "get_rows"):
        return None
    part = _row_part(df, table, expectations)
    if part is None:
        return None
    row_exps, sub = part
    rkey = _rows_key(suite_name, row_exps, sub)
    seen = cache.get_rows(rkey)
    if seen is None or len(df) == 0:
        return None
    hashes = _row_hashes(sub)
    new = ~np.isin(hashes, seen)
    if new.mean() > 0.5:   # mostly new rows: one pass over the whole table costs less than two
        return None
    row_out = (_validate(df.loc[new, list(sub.column_names)].reset_index(drop=True), suite_name, row_exps).outcomes
               if new.any() else [ExpectationOutcome(expectation=_type(e), column=_column_label(e), success=True,
                                                     unexpected_count=0) for e in row_exps])
    other = [e for e in expectations if not _row_wise(e)]
    other_cols = sorted({c for e in other for c in _columns(e)} & set(df.columns))
    if other and not other_cols:   # table-level expectations without a column (row counts)
        other_cols = list(sub.column_names)[:1]
    other_out = _validate(df[other_cols], suite_name, other).outcomes if other else []
    if len(row_out) != len(row_exps) or len(other_out) != len(other):
        return None
    rows_iter, other_iter = iter(row_out), iter(other_out)
    outcomes = [next(rows_iter) if _row_wise(e) else next(other_iter) for e in expectations]
    if all(o.success for o in row_out):
        cache.put_rows(rkey, hashes)
    return SuiteOutcome(suite=suite_name, success=all(o.success for o in outcomes), n_rows=len(df),
                        outcomes=outcomes, new_rows=int(new.sum()))


def _column_label(e: Expect) -> str | None:
    kw = e.kwargs
    return kw.get("column") or (",".join(kw.get("column_list", [])) or None)


def _validate(df: pd.DataFrame, suite_name: str, expectations: list[Any]) -> SuiteOutcome:
    import great_expectations as gx

    ctx = _context()
    ds_name = f"emoforge_{suite_name}"
    try:
        ds = ctx.data_sources.get(ds_name)
    except (KeyError, ValueError, Exception):
        ds = ctx.data_sources.add_pandas(ds_name)
    try:
        asset = ds.get_asset("frame")
    except (LookupError, Exception):
        asset = ds.add_dataframe_asset("frame")
    try:
        bd = asset.get_batch_definition("whole")
    except (KeyError, Exception):
        bd = asset.add_batch_definition_whole_dataframe("whole")
    batch = bd.get_batch(batch_parameters={"dataframe": df})
    suite = gx.ExpectationSuite(name=f"{suite_name}")
    for e in expectations:
        suite.add_expectation(e.to_gx())
    result = batch.validate(suite, result_format="SUMMARY")
    outcomes = []
    for r in _in_suite_order(result.results, expectations):
        cfg = r.expectation_config
        res = r.result or {}
        outcomes.append(ExpectationOutcome(
            expectation=cfg.type, column=cfg.kwargs.get("column") or (",".join(cfg.kwargs.get("column_list", [])) or None),
            success=bool(r.success), unexpected_count=res.get("unexpected_count"),
            examples=list(res.get("partial_unexpected_list") or [])[:10], observed=res.get("observed_value"),
        ))
    return SuiteOutcome(suite=suite_name, success=bool(result.success), n_rows=len(df), outcomes=outcomes)


def _in_suite_order(results: list, expectations: list[Any]) -> list:
    """GX reports a suite's results grouped its own way: put them in the order of ``expectations``
    (a result belongs to the expectation of its type whose arguments it repeats); results that match
    none keep their place at the end."""
    left = list(results)
    ordered = []
    for e in expectations:
        want = e.kwargs
        for i, r in enumerate(left):
            cfg = r.expectation_config
            if cfg.type == _type(e) and all(cfg.kwargs.get(k) == v for k, v in want.items()):
                ordered.append(left.pop(i))
                break
    return ordered + left


# ---- the suites -------------------------------------------------------------------------------

def candidates_suite(allowed_statuses: list[str]) -> list[Any]:
    return [
        _e("ExpectColumnValuesToNotBeNull", column="candidate_id"),
        _e("ExpectColumnValuesToBeUnique", column="candidate_id"),
        _e("ExpectColumnValuesToNotBeNull", column="filter_status"),
        _e("ExpectColumnValuesToBeInSet", column="filter_status", value_set=allowed_statuses),
    ]


def downloads_suite(n_candidates: int, allowed_statuses: list[str]) -> list[Any]:
    """Each candidate ends in exactly one known status."""
    return [
        _e("ExpectTableRowCountToEqual", value=n_candidates),
        _e("ExpectColumnValuesToNotBeNull", column="candidate_id"),
        _e("ExpectColumnValuesToBeUnique", column="candidate_id"),
        _e("ExpectColumnValuesToNotBeNull", column="status"),
        _e("ExpectColumnValuesToBeInSet", column="status", value_set=allowed_statuses),
    ]


def images_suite(min_width: int, max_width: int, unique: bool = True) -> list[Any]:
    """Stored images: a SHA-256 each (unique in image-level tables), width within FindingEmo's
    exclusive limits (§2.3.1)."""
    out = [
        _e("ExpectColumnValuesToNotBeNull", column="sha256"),
        _e("ExpectColumnValueLengthsToEqual", column="sha256", value=64),
        _e("ExpectColumnValuesToNotBeNull", column="width"),
        _e("ExpectColumnValuesToBeBetween", column="width", min_value=min_width, max_value=max_width,
                                        strict_min=True, strict_max=True),
    ]
    if unique:
        out.insert(1, _e("ExpectColumnValuesToBeUnique", column="sha256"))
    return out


def annotations_suite(scales: dict[str, tuple[float, float]], emotion24: list[str], emotion8: list[str]) -> list[Any]:
    """``annotations``: (image, annotator) unique, values within the source's scales (FindingEmo §2.1),
    labels from the Plutchik taxonomy, keep decided."""
    out = [
        _e("ExpectCompoundColumnsToBeUnique", column_list=["image_id", "annotator_id"]),
        _e("ExpectColumnValuesToNotBeNull", column="image_id"),
        _e("ExpectColumnValuesToNotBeNull", column="annotator_id"),
        _e("ExpectColumnValuesToNotBeNull", column="keep"),
        _e("ExpectColumnValuesToBeInSet", column="emotion24", value_set=emotion24),
        _e("ExpectColumnValuesToBeInSet", column="emotion8", value_set=emotion8),
    ]
    for col, (lo, hi) in scales.items():
        out.append(_e("ExpectColumnValuesToBeBetween", column=col, min_value=lo, max_value=hi))
    return out


def merged_suite(levels: list[str]) -> list[Any]:
    """``merged_annotations``: one row per (image, taxonomy); per label level the vote distribution sums
    to the number of votes, and there are never more votes than annotators."""
    # every merged image had at least one annotation (its annotators may all have been excluded by
    # grading: then n_annotators is 0 and n_excluded says why)
    out = [_e("ExpectCompoundColumnsToBeUnique", column_list=["image_id", "taxonomy"]),
           _e("ExpectColumnValuesToBeBetween", column="n_annotations_all", min_value=1)]
    for p in levels:
        out.append(_e("ExpectColumnPairValuesToBeEqual", column_A=f"{p}_n_votes", column_B=f"{p}__vote_sum"))
        out.append(_e("ExpectColumnPairValuesAToBeGreaterThanB", column_A="n_annotators", column_B=f"{p}_n_votes",
                                                             or_equal=True))
    return out


def features_suite(n_expected: int) -> list[Any]:
    """``image_features``: one row per (image, extractor), exactly as many as unique images x
    extractors; a known status; ok vectors finite (column ``finite`` computed from the vectors)."""
    return [
        _e("ExpectTableRowCountToEqual", value=n_expected),
        _e("ExpectCompoundColumnsToBeUnique", column_list=["sha256", "extractor"]),
        _e("ExpectColumnValuesToBeInSet", column="status", value_set=["ok", "decode_error", "nonfinite"]),
        _e("ExpectColumnValuesToBeInSet", column="finite", value_set=[True]),
    ]


def predictions_suite(prob_columns: list[str]) -> list[Any]:
    """A predictions table: one row per image, one model version for the whole table (no image
    predicted by two versions of the task), probabilities in [0, 1]."""
    out = [
        _e("ExpectColumnValuesToBeUnique", column="sha256"),
        _e("ExpectColumnValuesToNotBeNull", column="model_version"),
        _e("ExpectColumnUniqueValueCountToBeBetween", column="model_version", min_value=0, max_value=1),
    ]
    for c in prob_columns:
        out.append(_e("ExpectColumnValuesToNotBeNull", column=c))
        out.append(_e("ExpectColumnValuesToBeBetween", column=c, min_value=0.0, max_value=1.0))
    return out


def faces_suite() -> list[Any]:
    """``faces`` (CONTRACT): a unique face_id, a box inside positive extents, a score in [0, 1] (NULL
    for whole-image faces, whose box is the image), a crop blob per face."""
    return [
        _e("ExpectColumnValuesToBeUnique", column="face_id"),
        _e("ExpectColumnValuesToNotBeNull", column="sha256"),
        _e("ExpectColumnValuesToNotBeNull", column="crop_sha256"),
        _e("ExpectColumnValuesToBeBetween", column="w", min_value=0, strict_min=True),
        _e("ExpectColumnValuesToBeBetween", column="h", min_value=0, strict_min=True),
        _e("ExpectColumnValuesToBeBetween", column="score", min_value=0.0, max_value=1.0),
        _e("ExpectColumnValuesToBeInSet", column="mode", value_set=["whole_image", "detect"]),
    ]


def soft_labels_suite(emotion_columns: list[str]) -> list[Any]:
    """``soft_labels`` (CONTRACT): one row per face; the 8 values of Eq. 14 in [0, 1]; difficulty
    one of the three subsets (NULL exactly without a hard label: checked by the caller's column
    ``difficulty_matches``); both model versions present."""
    out = [
        _e("ExpectColumnValuesToBeUnique", column="face_id"),
        _e("ExpectColumnValuesToBeInSet", column="difficulty", value_set=["Easy", "Challenging", "Difficult"]),
        _e("ExpectColumnValuesToBeInSet", column="difficulty_matches", value_set=[True]),
        _e("ExpectColumnValuesToNotBeNull", column="ebc_model_version"),
        _e("ExpectColumnValuesToNotBeNull", column="au_model_version"),
    ]
    for c in emotion_columns:
        out.append(_e("ExpectColumnValuesToNotBeNull", column=c))
        out.append(_e("ExpectColumnValuesToBeBetween", column=c, min_value=0.0, max_value=1.0))
    return out


def dataset_splits_suite() -> list[Any]:
    """``dataset_splits`` (CONTRACT): one row per (scheme, item), a split name, and no leakage: the
    caller's column ``leaks`` is True where an item's near-duplicate family (or image) spans splits."""
    return [
        _e("ExpectCompoundColumnsToBeUnique", column_list=["scheme", "item_id"]),
        _e("ExpectColumnValuesToNotBeNull", column="split"),
        _e("ExpectColumnValuesToNotBeNull", column="group_id"),
        _e("ExpectColumnValuesToBeInSet", column="item_kind", value_set=["image", "face"]),
        _e("ExpectColumnValuesToBeInSet", column="leaks", value_set=[False]),
    ]


def training_runs_suite() -> list[Any]:
    """``training_runs`` (CONTRACT): unique run ids; a run is ok (with a model version and epochs)
    or failed (with a reason): the caller's column ``complete`` says so per row."""
    return [
        _e("ExpectColumnValuesToBeUnique", column="run_id"),
        _e("ExpectColumnValuesToBeInSet", column="status", value_set=["ok", "failed"]),
        _e("ExpectColumnValuesToBeInSet", column="complete", value_set=[True]),
    ]
