"""The ``annotations`` table: its CONTRACT columns, the source vocabularies, reject reasons, Arrow schema.

The readers (:mod:`ops.annotations.readers`) return ``(annotations, rejects)`` (an :class:`IngestResult`, a named tuple):

``annotations`` (CONTRACT table, one row per (image, annotator))::

    image_id           str       FindingEmo: the image's relative path as in the export
                                 ("/Run_2/Loving toddlers sports/haiti-kids.jpg"), normalized to
                                 forward slashes and one leading "/". It equals ``rel_path`` of
                                 FindingEmo-Light's dataset_urls_exploded.json, so annotations join
                                 the URL list. Long / vote-count sources: the item id as given.
    annotator_id       str
    source             str       the source name ("findingemo" by default for .ann files)
    keep               bool      the keep/reject decision (FindingEmo §2.3.2)
    valence, arousal, ambiguity  float (NULL when not annotated)
    emotion24          str       Plutchik emotion (FindingEmo §2.1), NULL if none / not Plutchik
    emotion8           str       its Plutchik leaf, NULL if none / not Plutchik
    age_groups         list[str] ticked age groups ("Children", "Youth", "Young Adults", "Adults", "Seniors")
    deciding_factors   list[str] ticked deciding factors ("BodyLanguage", "FacialExpression", ...)
    tags               list[str] reject-reason tags ("BadQualityPhoto", "Copyright", ..., "NA")
    annotated_at       timestamp (NULL when unknown)
    -- more columns --
    emotion            str       the label as voted, canonical spelling in ``taxonomy`` (may be a
                                 non-emotion label such as AffectNet's "Uncertain")
    taxonomy           str       the taxonomy of ``emotion`` (ops.annotations.taxonomy)
    image_path         str       the path as in the source (FindingEmo) or a mapped column
    query              str       the image's search query (FindingEmo: its folder name)
    query_emotion      str       the emotion keyword of that query ("Loving", "Fed up")
    source_file        str       the file the row came from
    source_line        int       its line in that file (CSV: physical line, header = 1; Parquet: row number, first row = 1)
    source_index       str       FindingEmo's own ``index`` column (NULL elsewhere)
    synthetic_annotator bool     True for rows expanded from vote counts (annotator ids are made up)
    + item-level columns carried from the source (e.g. ``split``), constant per item

``rejects``: one row per problem: ``file, line, field, value, reason, image_id, annotator_id``.
A row with any problem is left out of ``annotations`` (and may give several reject rows); nothing
is dropped silently. A missing column or an unreadable file raises :class:`AnnotationSourceError`
naming the file (and the column).

Conventions of FindingEmo's .ann export (checked on FindingEmo-Light's 25,869 annotations):

- header ``index,user,image_path,tags,age,valence,arousal,emotion,dec_factors,ambiguity,datetime``;
  multi-valued fields are comma-separated inside one quoted field ("BodyLanguage,FacialExpression");
  "Undefined" means nothing ticked / not given (tags, age, dec_factors; emotion likewise);
- emotions are spelt as Plutchik's names, capitalized ("Serenity", "Interest", "Trust", ...);
- the released file holds only the dataset's (kept) annotations: it has no keep/reject column, and
  the statistics of FindingEmo Table 2 / Table A.6 are reproduced over all 25,869 rows, including
  the 1,799 rows that carry reject-reason tags ("NoInteraction", "BadQualityPhoto", ..., "NA" =
  "Not applicable"). Hence ``keep`` is True unless the export has a ``keep`` or ``reject`` column,
  or a row's tags contain one of ``reject_tags`` (default: an explicit "Reject" tag only; pass
  ``reject_tags=FINDINGEMO_REJECT_TAGS`` to read any reject-reason tag as a reject);
- 1,948 rows (all annotations of 63 early annotators) are stamped "2023-09-01 00:00:00.000000", an
  evident fill-in (midnight to the microsecond, no other annotation on that day): read as NULL;
- values: valence -3..3, arousal 0..6, ambiguity 0..6, integers (FindingEmo §2.1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, NamedTuple

import pandas as pd
import pyarrow as pa

# ---- vocabularies (FindingEmo §2.1, §2.3.2) ----------------------------------------------------

FINDINGEMO_COLUMNS = (
    "index", "user", "image_path", "tags", "age", "valence", "arousal", "emotion",
    "dec_factors", "ambiguity", "datetime",
)
FINDINGEMO_AGE_GROUPS = ("Children", "Youth", "Young Adults", "Adults", "Seniors")
# §2.1 lists "Neutral", "Body language", "Conflict context vs. person", "Facial expression",
# "Staging"; the export spells them as below and also has "Context".
FINDINGEMO_DECIDING_FACTORS = (
    "Neutral", "BodyLanguage", "ConflictCtxtPerson", "Context", "FacialExpression", "Staging",
)
# §2.3.2 reject reasons: "Bad quality photo", "Copyright", "Watermark", "No interaction",
# "No people", "Text", "Not applicable" (exported as "NA").
FINDINGEMO_REJECT_TAGS = (
    "BadQualityPhoto", "Copyright", "Watermark", "NoInteraction", "NoPeople", "Text", "NA",
)
FINDINGEMO_TAGS = FINDINGEMO_REJECT_TAGS + ("Reject",)
FINDINGEMO_SCALES: dict[str, tuple[float, float]] = {
    "valence": (-3, 3), "arousal": (0, 6), "ambiguity": (0, 6),
}
FINDINGEMO_FILLER_DATETIMES = ("2023-09-01 00:00:00.000000",)
UNDEFINED = {"", "undefined", "none", "null", "nan", "n/a"}  # "not given" (emotion, V/A, lists)

ANNOTATION_COLUMNS = (
    "image_id", "annotator_id", "source", "keep", "valence", "arousal", "ambiguity",
    "emotion24", "emotion8", "age_groups", "deciding_factors", "tags", "annotated_at",
    "emotion", "taxonomy", "image_path", "query", "query_emotion",
    "source_file", "source_line", "source_index", "synthetic_annotator",
)
REJECT_COLUMNS = ("file", "line", "field", "value", "reason", "image_id", "annotator_id")

# reject reasons (closed vocabulary)
R_MISSING = "missing_value"
R_EMPTY_ANNOTATOR = "empty_annotator_id"
R_EMPTY_IMAGE = "empty_image_id"
R_NOT_A_NUMBER = "not_a_number"
R_NOT_AN_INTEGER = "not_an_integer"
R_OUT_OF_RANGE = "out_of_range"
R_UNKNOWN_LABEL = "unknown_label"
R_UNKNOWN_VALUE = "unknown_value"
R_BAD_KEEP = "bad_keep_value"
R_BAD_DATETIME = "bad_datetime"
R_DUPLICATE = "duplicate_annotation"
R_DUPLICATE_ITEM = "duplicate_item"
R_NEGATIVE = "negative_count"
R_NO_VOTES = "no_votes"
R_SHORT_ROW = "wrong_number_of_fields"
R_TOO_MANY_VOTES = "too_many_votes"      # a vote-count cell above the configured maximum

LONG_FIELDS = (
    "image_id", "annotator_id", "keep", "valence", "arousal", "ambiguity", "emotion",
    "age_groups", "deciding_factors", "tags", "annotated_at", "image_path", "query",
    "query_emotion",
)

KEEP_TRUE = {"1", "true", "t", "yes", "y", "keep", "kept"}
KEEP_FALSE = {"0", "false", "f", "no", "n", "reject", "rejected"}


def default_findingemo_path() -> Path:
    """FindingEmo-Light's 25,869 real annotations (the embedded default source)."""
    try:
        import findingemo_light
    except ImportError as e:  # pragma: no cover - declared dependency
        raise AnnotationSourceError("findingemo_light", "the findingemo-light package is not installed") from e
    return Path(findingemo_light.__file__).parent / "data" / "annotations_single.ann"


class AnnotationSourceError(ValueError):
    """An annotation source cannot be read: unreadable file, or a missing column (both named)."""

    def __init__(self, file: str | Path, message: str, column: str | None = None):
        self.file = str(file)
        self.column = column
        where = f"{self.file}" + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {message}")


class IngestResult(NamedTuple):
    annotations: pd.DataFrame
    rejects: pd.DataFrame


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Contract dtypes: floats with NaN for NULL (written as Parquet NULL), bool keep, timestamps."""
    for c in ("valence", "arousal", "ambiguity"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["keep"] = df["keep"].astype(bool)
    df["synthetic_annotator"] = df["synthetic_annotator"].fillna(False).astype(bool)
    df["source_line"] = df["source_line"].astype("int64")
    df["annotated_at"] = pd.to_datetime(df["annotated_at"]).astype("datetime64[us]")
    for c in ("image_id", "annotator_id", "source", "emotion24", "emotion8", "emotion", "taxonomy",
              "image_path", "query", "query_emotion", "source_file", "source_index"):
        df[c] = df[c].astype("str") if df[c].notna().all() else df[c].astype("object").where(df[c].notna(), None).astype("str")
    for c in ("deciding_factors", "tags"):
        df[c] = [list(x) if isinstance(x, (list, tuple)) else [] for x in df[c]]
    # age groups: NULL when the source records none (vote counts, a long file without the field)
    df["age_groups"] = pd.Series([list(x) if isinstance(x, (list, tuple)) else None for x in df["age_groups"]],
                                 index=df.index, dtype=object)
    return df


def annotations_schema(df: pd.DataFrame | None = None) -> pa.Schema:
    """Arrow schema of the ``annotations`` table (contract columns typed; extra columns inferred)."""
    lst = pa.list_(pa.string())
    fields = [
        ("image_id", pa.string()), ("annotator_id", pa.string()), ("source", pa.string()),
        ("keep", pa.bool_()), ("valence", pa.float64()), ("arousal", pa.float64()),
        ("ambiguity", pa.float64()), ("emotion24", pa.string()), ("emotion8", pa.string()),
        ("age_groups", lst), ("deciding_factors", lst), ("tags", lst),
        ("annotated_at", pa.timestamp("us")), ("emotion", pa.string()), ("taxonomy", pa.string()),
        ("image_path", pa.string()), ("query", pa.string()), ("query_emotion", pa.string()),
        ("source_file", pa.string()), ("source_line", pa.int64()), ("source_index", pa.string()),
        ("synthetic_annotator", pa.bool_()),
    ]
    schema = pa.schema(fields)
    if df is not None:
        extra = [c for c in df.columns if c not in schema.names]
        if extra:
            inferred = pa.Table.from_pandas(df[extra], preserve_index=False).schema
            for f in inferred:
                schema = schema.append(f)
    return schema


def annotations_to_arrow(df: pd.DataFrame) -> pa.Table:
    """The annotations DataFrame as an Arrow table with the contract types (empty lists stay list<string>)."""
    schema = annotations_schema(df)
    if df.empty:  # no rows: pandas' dtypes of an empty frame say nothing; the schema does
        return schema.empty_table()
    missing = [n for n in schema.names if n not in df.columns]  # optional columns absent: NULL
    if missing:
        df = df.assign(**{n: [None] * len(df) for n in missing})
    return pa.Table.from_pandas(df[list(schema.names)], schema=schema, preserve_index=False)



def empty_result(item_columns: Iterable[str] = ()) -> "IngestResult":
    """No annotations and no rejects, with the full schema."""
    names = list(ANNOTATION_COLUMNS) + [c for c in item_columns if c not in ANNOTATION_COLUMNS]
    rej = pd.DataFrame(columns=list(REJECT_COLUMNS)).astype({"line": "int64"})
    return IngestResult(coerce(pd.DataFrame([], columns=names)), rej)


def concat_sources(results: Iterable[IngestResult]) -> IngestResult:
    """Several sources into one ``annotations`` table; (image, annotator) pairs repeated across
    sources are rejects (the first source wins), like duplicates within a file."""
    results = list(results)
    anns = [r.annotations for r in results if len(r.annotations)]
    rejs = [r.rejects for r in results if len(r.rejects)]
    if not anns:
        ann = empty_result().annotations
    else:
        ann = pd.concat(anns, ignore_index=True)
    dup = ann.duplicated(["image_id", "annotator_id"], keep="first")
    if dup.any():
        d = ann[dup]
        rejs.append(pd.DataFrame({
            "file": d["source_file"], "line": d["source_line"], "field": "annotator_id",
            "value": d["annotator_id"], "reason": R_DUPLICATE + " (in an earlier source)",
            "image_id": d["image_id"], "annotator_id": d["annotator_id"],
        }))
        ann = ann[~dup].reset_index(drop=True)
    rej = pd.concat(rejs, ignore_index=True) if rejs else pd.DataFrame(columns=list(REJECT_COLUMNS))
    return IngestResult(ann, rej)


def reject_summary(rejects: pd.DataFrame) -> pd.DataFrame:
    """Counts of rejects per file, field and reason (for asset metadata)."""
    if rejects.empty:
        return pd.DataFrame(columns=["file", "field", "reason", "n"])
    reason = rejects["reason"].str.replace(r" \(.*\)$", "", regex=True)
    return (rejects.assign(reason=reason).groupby(["file", "field", "reason"], as_index=False)
            .size().rename(columns={"size": "n"}))


