"""Annotation ingest: FindingEmo exports, long-format tables and vote-count tables -> ``annotations``.

Every reader returns ``(annotations, rejects)`` (an :class:`IngestResult`, a named tuple):

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

import csv
import gc
import io
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ops.annotations.taxonomy import Taxonomy, get_taxonomy

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

LONG_FIELDS = (
    "image_id", "annotator_id", "keep", "valence", "arousal", "ambiguity", "emotion",
    "age_groups", "deciding_factors", "tags", "annotated_at", "image_path", "query",
    "query_emotion",
)

KEEP_TRUE = {"1", "true", "t", "yes", "y", "keep", "kept"}
KEEP_FALSE = {"0", "false", "f", "no", "n", "reject", "rejected"}


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


# ---- helpers -------------------------------------------------------------------------------------

def default_findingemo_path() -> Path:
    """FindingEmo-Light's 25,869 real annotations (the embedded default source)."""
    try:
        import findingemo_light
    except ImportError as e:  # pragma: no cover - declared dependency
        raise AnnotationSourceError("findingemo_light", "the findingemo-light package is not installed") from e
    return Path(findingemo_light.__file__).parent / "data" / "annotations_single.ann"


def normalize_image_path(path: str) -> str:
    """FindingEmo image id: forward slashes, one leading "/", no surrounding space.

    "Run_2\\\\Loving toddlers sports\\\\x.jpg" and "/Run_2/Loving toddlers sports/x.jpg" give the
    same id, equal to ``rel_path`` in FindingEmo-Light's URL list.
    """
    p = str(path).strip().replace("\\", "/")
    p = re.sub(r"/+", "/", p)
    return "/" + p.lstrip("/") if p else ""


def query_of_path(path: str) -> str | None:
    """The search query of a FindingEmo image = its folder (FindingEmo §2.3.1): "/Run_2/Loving toddlers sports/x.jpg" -> "Loving toddlers sports"."""
    parts = [p for p in str(path).replace("\\", "/").split("/") if p]
    return parts[-2] if len(parts) >= 2 and not re.fullmatch(r"Run_\d+", parts[-2]) else None


_EMOTION_WORDS: list[str] | None = None


def _default_emotion_words() -> list[str]:
    """FindingEmo's emotion keywords when ops/data/findingemo_keywords.json is present (ops.acquisition.queries)."""
    global _EMOTION_WORDS
    if _EMOTION_WORDS is None:
        try:
            data = json.loads(resources.files("ops").joinpath("data", "findingemo_keywords.json").read_text("utf-8"))
            _EMOTION_WORDS = list(data.get("emotions", []))
        except (FileNotFoundError, OSError, ValueError):
            _EMOTION_WORDS = []
    return _EMOTION_WORDS


def query_emotion_word(query: str | None, emotion_words: Iterable[str] | None = None) -> str | None:
    """The emotion keyword a query starts with (FindingEmo §2.3.1: "<emotion> <people> <setting>").

    With a list of known emotion words, the longest one the query starts with ("Fed up youth war" ->
    "Fed up"); otherwise (or when none matches) the first word. Used by the plurality tie-break
    (AffectNet+ Supplement II).
    """
    if not query or not str(query).strip():
        return None
    words = _word_set(tuple(emotion_words) if emotion_words is not None else tuple(_default_emotion_words()))
    tokens = str(query).split()
    for n in range(len(tokens), 0, -1):  # longest prefix first
        cand = " ".join(tokens[:n])
        if cand.casefold() in words:
            return cand
    return tokens[0]


_WORD_SETS: dict[tuple, frozenset] = {}


def _word_set(words: tuple) -> frozenset:
    """Cached casefolded emotion keywords (FindingEmo §2.3.1 keyword sets)."""
    ws = _WORD_SETS.get(words)
    if ws is None:
        ws = _WORD_SETS[words] = frozenset(" ".join(str(w).split()).casefold() for w in words)
    return ws


def _is_undefined(v: Any) -> bool:
    """FindingEmo export convention (§2.1): "Undefined"/empty means not given."""
    if v is None:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    return str(v).strip().casefold() in UNDEFINED


class _Collector:
    """Collects good rows and reject rows of one file."""

    def __init__(self, file: str):
        self.file = file
        self.rows: list[dict] = []
        self.rejects: list[dict] = []

    def reject(self, line: int, field: str, value: Any, reason: str, image_id: Any = None, annotator_id: Any = None) -> None:
        self.rejects.append({
            "file": self.file, "line": int(line), "field": field,
            "value": None if value is None else str(value), "reason": reason,
            "image_id": None if image_id is None else str(image_id),
            "annotator_id": None if annotator_id is None else str(annotator_id),
        })


def _parse_number(v: Any, field: str, scale: tuple[float, float] | None, integer: bool, problems: list) -> float | None:
    """Valence/arousal/ambiguity on their scales (FindingEmo §2.1: -3..3, 0..6, 0..6); problems recorded."""
    if _is_undefined(v):
        return None
    try:
        x = float(str(v).strip()) if not isinstance(v, (int, float, np.number)) else float(v)
    except ValueError:
        problems.append((field, v, R_NOT_A_NUMBER))
        return None
    if not np.isfinite(x):
        problems.append((field, v, R_NOT_A_NUMBER))
        return None
    if integer and x != int(x):
        problems.append((field, v, R_NOT_AN_INTEGER))
        return None
    if scale is not None and not (scale[0] <= x <= scale[1]):
        problems.append((field, v, R_OUT_OF_RANGE))
        return None
    return x


def _parse_list(v: Any, field: str, vocab: Sequence[str] | None, sep: str, problems: list) -> list[str]:
    """Multi-valued fields: age groups, deciding factors (FindingEmo §2.1), reject tags (§2.3.2)."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    if isinstance(v, (list, tuple, np.ndarray)):
        items = [str(x).strip() for x in v]
    else:
        items = [x.strip() for x in str(v).split(sep)]
    items = [x for x in items if x and x.casefold() != "undefined"]
    out: list[str] = []
    lookup = _vocab_lookup(tuple(vocab)) if vocab is not None else None
    for x in items:
        if lookup is not None:
            canon = lookup.get(x.casefold())
            if canon is None:
                problems.append((field, x, R_UNKNOWN_VALUE))
                continue
            x = canon
        if x not in out:
            out.append(x)
    return out


_VOCABS: dict[tuple, dict] = {}


def _vocab_lookup(vocab: tuple) -> dict:
    """Cached case-insensitive vocabulary of a list field (FindingEmo §2.1 / §2.3.2 vocabularies)."""
    d = _VOCABS.get(vocab)
    if d is None:
        d = _VOCABS[vocab] = {x.casefold(): x for x in vocab}
    return d


def _parse_keep(v: Any, field: str, problems: list, invert: bool = False) -> bool | None:
    """The keep/reject decision (FindingEmo §2.3.2) from a keep or reject column."""
    if isinstance(v, (bool, np.bool_)):
        b = bool(v)
    else:
        s = "" if v is None else str(v).strip().casefold()
        if s in KEEP_TRUE:
            b = True
        elif s in KEEP_FALSE:
            b = False
        else:
            problems.append((field, v, R_BAD_KEEP))
            return None
    return (not b) if invert else b


def _parse_datetime(v: Any, field: str, fillers: Sequence[str], problems: list) -> pd.Timestamp | None:
    """Annotation timestamp (FindingEmo export ``datetime``); fill-in stamps -> NULL."""
    if _is_undefined(v):
        return None
    if isinstance(v, (pd.Timestamp, datetime)):
        return pd.Timestamp(v)
    s = str(v).strip()
    if s in fillers:
        return None
    try:
        return pd.Timestamp(datetime.fromisoformat(s))
    except ValueError:
        try:
            return pd.Timestamp(s)
        except (ValueError, TypeError):
            problems.append((field, v, R_BAD_DATETIME))
            return None


def _labels(tax: Taxonomy, raw: Any, field: str, problems: list, label_map: Mapping[str, str] | None = None) -> dict:
    """emotion / emotion24 / emotion8 of one vote (FindingEmo §2.1: Emo24 -> Emo8 leaf)."""
    out = {"emotion": None, "emotion24": None, "emotion8": None}
    if raw is None or (isinstance(raw, float) and np.isnan(raw)):
        return out
    s = str(raw).strip()
    if label_map and s in label_map:
        s = label_map[s]
    label = tax.normalize(s)  # before the "not given" words: AffectNet has a label "None"
    if label is None and _is_undefined(s):
        return out
    if label is None:
        problems.append((field, raw, R_UNKNOWN_LABEL))
        return out
    out["emotion"] = label
    if tax.is_emotion(label):
        if tax.name == "plutchik24":
            out["emotion24"], out["emotion8"] = label, tax.to_parent(label)
        elif tax.name == "emo8":
            out["emotion8"] = label
        elif tax.parent_taxonomy == "emo8":  # another Plutchik-shaped taxonomy
            out["emotion8"] = tax.to_parent(label)
    return out


def _labels_tuple(raw: Any, tax: Taxonomy, field: str, problems: list, label_map: Mapping[str, str] | None = None) -> tuple:
    """:func:`_labels` as (emotion, emotion24, emotion8)."""
    d = _labels(tax, raw, field, problems, label_map)
    return d["emotion"], d["emotion24"], d["emotion8"]


def _finish(coll: _Collector, item_columns: Sequence[str] = ()) -> IngestResult:
    """Rows and rejects of one file -> IngestResult in the CONTRACT ``annotations`` schema (DESIGN.md)."""
    rows = coll.rows
    df = pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS) + [c for c in item_columns if c not in ANNOTATION_COLUMNS])
    df = _coerce(df)
    rej = pd.DataFrame(coll.rejects, columns=list(REJECT_COLUMNS))
    rej["line"] = rej["line"].astype("int64")
    return IngestResult(df, rej)


def _coerce(df: pd.DataFrame) -> pd.DataFrame:
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
    for c in ("age_groups", "deciding_factors", "tags"):
        df[c] = [list(x) if isinstance(x, (list, tuple)) else [] for x in df[c]]
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


# ---- file access ---------------------------------------------------------------------------------

def _csv_records(path: Path, delimiter: str | None = None) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Header and (start line, fields) records of a CSV file; raises AnnotationSourceError."""
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise AnnotationSourceError(path, f"cannot open: {e.strerror or e}") from e
    try:
        sample = fh.read(65536)
        fh.seek(0)
    except UnicodeDecodeError as e:
        fh.close()
        raise AnnotationSourceError(path, f"not UTF-8 text: {e}") from e
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") or ("\t" in sample.split("\n", 1)[0] and "," not in sample.split("\n", 1)[0]) else ","
    reader = csv.reader(fh, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        fh.close()
        raise AnnotationSourceError(path, "empty file (no header line)") from None
    except (csv.Error, UnicodeDecodeError) as e:
        fh.close()
        raise AnnotationSourceError(path, f"unreadable: {e}") from e
    header = [h.strip() for h in header]

    def gen() -> Iterator[tuple[int, list[str]]]:
        prev = reader.line_num
        try:
            for rec in reader:
                start = prev + 1
                prev = reader.line_num
                if not rec or (not rec[0].strip() and all(not x.strip() for x in rec)):
                    continue  # blank line (first field tested alone: the common case, cheaply)
                yield start, rec
        except (csv.Error, UnicodeDecodeError) as e:
            raise AnnotationSourceError(path, f"unreadable near line {prev + 1}: {e}") from e
        finally:
            fh.close()

    return header, gen()


def _table_source(path: Path, delimiter: str | None = None) -> tuple[list[str], Iterator[tuple[int, Any]], bool]:
    """(columns, iterator of (line, record), is_csv): CSV/TSV records are raw field lists, Parquet
    records row dicts; raises AnnotationSourceError."""
    path = Path(path)
    if not path.exists():
        raise AnnotationSourceError(path, "file not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for broken files
            raise AnnotationSourceError(path, f"unreadable Parquet: {e}") from e
        cols = [str(c) for c in df.columns]
        recs = df.to_dict("records")
        return cols, ((i + 1, r) for i, r in enumerate(recs)), False
    header, recs = _csv_records(path, delimiter)
    return header, recs, True


def _table_records(path: Path, delimiter: str | None = None) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """(columns, iterator of (line, row dict)) for CSV/TSV or Parquet files."""
    header, recs, is_csv = _table_source(path, delimiter)
    if not is_csv:
        return header, recs

    def gen() -> Iterator[tuple[int, dict]]:
        for line, rec in recs:
            if len(rec) != len(header):
                yield line, {"__bad__": len(rec)}
                continue
            yield line, dict(zip(header, rec))

    return header, gen()


def _require(path: Path, columns: Sequence[str], needed: Iterable[str]) -> None:
    """A missing column is an error naming file and column (issue: validation)."""
    have = set(columns)
    for c in needed:
        if c not in have:
            raise AnnotationSourceError(path, f"missing column (the file has: {', '.join(columns)})", column=c)


# ---- column-wise parsing (the readers' engine) -----------------------------------------------------
#
# The readers parse column by column rather than row by row: each distinct raw value of a field is
# parsed once (exports repeat few distinct labels, numbers and age-group lists), its value and
# problems are then mapped onto the rows. Row and reject order, values and problems are those of a
# row-by-row reading: per row, problems in field order; rejects in line order.


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Cyclic GC off while a reader creates millions of small, acyclic objects (it cost ~30 % of
    ingest time at 1M rows); restored afterwards (left off if it was off)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _collect_columns(header: Sequence[str], recs: Iterator[tuple[int, Any]], is_csv: bool,
                     needed: Iterable[str]) -> tuple[list[int], dict[str, Sequence], list[tuple[int, int]]]:
    """Records of :func:`_table_source` -> (lines, {column: raw values}, [(line, number of fields)]
    of rows with the wrong number of fields). A repeated CSV header name reads its last column."""
    lines: list[int] = []
    bad: list[tuple[int, int]] = []
    needed = list(dict.fromkeys(needed))
    if is_csv:
        n = len(header)
        good: list[list[str]] = []
        add_line, add_rec = lines.append, good.append
        for line, rec in recs:
            if len(rec) == n:
                add_line(line)
                add_rec(rec)
            else:
                bad.append((line, len(rec)))
        pos = {h: i for i, h in enumerate(header)}
        if not good:
            return lines, {c: [] for c in needed}, bad
        transposed = list(zip(*good))
        del good
        return lines, {c: transposed[pos[c]] for c in needed}, bad
    rows: list[dict] = []
    for line, rec in recs:
        if "__bad__" in rec:
            bad.append((line, rec["__bad__"]))
            continue
        lines.append(line)
        rows.append(rec)
    return lines, {c: [r[c] for r in rows] for c in needed}, bad


def _parser(fn, *args, **kwargs):
    """``fn(raw, *args, problems, **kwargs)`` as ``raw -> (value, tuple of problems)``."""
    def one(raw: Any) -> tuple[Any, tuple]:
        local: list = []
        value = fn(raw, *args, local, **kwargs)
        return value, tuple(local)
    return one


def _map_column(values: Sequence, one, all_str: bool = False, fast=None) -> tuple[list, list[tuple[int, tuple]]]:
    """``one(raw) -> (value, problems)`` over a column, once per distinct string (other raw values,
    e.g. Parquet numbers or lists, parsed each time): (values, [(row, problems)]). ``fast``:
    optional ``distinct strings -> {string: value}`` for the strings it reads without problems
    exactly as ``one`` would (the others go through ``one``)."""
    if all_str or all(type(v) is str for v in values):
        distinct = dict.fromkeys(values)
        known = fast(distinct) if fast is not None else {}
        parsed = {u: one(u) for u in distinct if u not in known} if known else {u: one(u) for u in distinct}
        known.update({u: r[0] for u, r in parsed.items()})
        out = list(map(known.__getitem__, values))
        bad = {u: r[1] for u, r in parsed.items() if r[1]}
        if not bad:
            return out, []
        return out, [(i, bad[v]) for i, v in enumerate(values) if v in bad]
    cache: dict[str, tuple] = {}
    out, probs = [], []
    for i, v in enumerate(values):
        if type(v) is str:
            r = cache.get(v)
            if r is None:
                r = cache[v] = one(v)
        else:
            r = one(v)
        out.append(r[0])
        if r[1]:
            probs.append((i, r[1]))
    return out, probs


def _iso_datetimes(fillers: Sequence[str]):
    """``fast`` reader of :func:`_map_column` for :func:`_parse_datetime`: a naive ISO string with
    nothing to strip, not a fill-in stamp, read as the ``datetime`` itself rather than a
    ``pd.Timestamp`` of it (the same ``annotated_at`` once the column is typed, without the
    Timestamp's cost: timestamps are mostly distinct values). "Not given" words are no ISO dates."""
    def fast(distinct: Iterable[str]) -> dict:
        fromiso = datetime.fromisoformat
        out = {}
        for u in distinct:
            try:
                d = fromiso(u)
            except Exception:  # left to _parse_datetime, which reads it (or raises) as before
                continue
            if d.tzinfo is None and u not in fillers:
                out[u] = d
        return out
    return fast


class _Problems:
    """Per-row problems (field, raw value, reason), added field by field in the row-wise order."""

    def __init__(self) -> None:
        self.rows: dict[int, list] = {}

    def add(self, probs: list[tuple[int, tuple]]) -> None:
        rows = self.rows
        for i, p in probs:
            rows.setdefault(i, []).extend(p)


def _finish_columns(file: str, lines: list[int], bad: list[tuple[int, int]], problems: _Problems,
                    columns: dict[str, Any], item_columns: Sequence[str] = ()) -> IngestResult:
    """Column-wise :func:`_emit` + :func:`_finish`: a row with problems gives its reject rows, a
    repeated (image_id, annotator_id) among the remaining rows is a duplicate reject (the first
    wins), the other rows are the annotations. ``columns``: output column -> per-row list, or a
    constant (:class:`_Const`)."""
    n = len(lines)
    coll = _Collector(file)
    for line, nfields in bad:
        coll.reject(line, "*", nfields, R_SHORT_ROW)
    imgs = _column_values(columns.get("image_id", _Const(None)), n)
    anns = _column_values(columns.get("annotator_id", _Const(None)), n)
    probs = problems.rows
    for i, ps in probs.items():
        for field, value, reason in ps:
            coll.reject(lines[i], field, value, reason, imgs[i], anns[i])
    good: Sequence[int] = [i for i in range(n) if i not in probs] if probs else range(n)
    keys = list(zip(imgs, anns)) if not probs else [(imgs[i], anns[i]) for i in good]
    first = dict(zip(reversed(keys), reversed(good)))  # key -> its first row
    if len(first) < len(keys):
        kept = []
        for k, i in zip(keys, good):
            f = first[k]
            if f != i:
                coll.reject(lines[i], "annotator_id", anns[i], R_DUPLICATE + f" (first at line {lines[f]})", imgs[i], anns[i])
            else:
                kept.append(i)
        good = kept
    coll.rejects.sort(key=lambda r: r["line"])  # stable: a row's rejects stay in field order
    names = list(ANNOTATION_COLUMNS) + [c for c in item_columns if c not in ANNOTATION_COLUMNS]
    m = len(good)
    if m == 0:
        df = pd.DataFrame([], columns=names)
    else:
        subset = m < n
        data = {}
        for c in names:
            v = columns.get(c, _Const(None))
            if isinstance(v, _Const):
                data[c] = [v.value] * m
            elif subset:
                data[c] = list(map(v.__getitem__, good))
            else:
                data[c] = v if isinstance(v, list) else list(v)
        df = pd.DataFrame(data, columns=names)
    df = _coerce(df)
    rej = pd.DataFrame(coll.rejects, columns=list(REJECT_COLUMNS))
    rej["line"] = rej["line"].astype("int64")
    return IngestResult(df, rej)


class _Const:
    """The same value on every row (an output column of :func:`_finish_columns`)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _column_values(v: Any, n: int) -> Sequence:
    """A per-row list, or a :class:`_Const` repeated n times."""
    return [v.value] * n if isinstance(v, _Const) else v


# ---- FindingEmo .ann (FindingEmo §2.1, §2.3.2) ---------------------------------------------------

def read_findingemo_ann(
    path: str | Path | None = None,
    *,
    source: str = "findingemo",
    scales: Mapping[str, tuple[float, float]] | None = None,
    reject_tags: Iterable[str] = ("Reject",),
    strict_vocab: bool = True,
    filler_datetimes: Sequence[str] = FINDINGEMO_FILLER_DATETIMES,
    emotion_words: Iterable[str] | None = None,
) -> IngestResult:
    """Read a FindingEmo annotation export (.ann, CSV); ``None``: FindingEmo-Light's real annotations.

    Dimensions and scales of FindingEmo §2.1 (valence -3..3, arousal 0..6, ambiguity 0..6, Emo24 ->
    Emo8, age groups, deciding factors), keep/reject and reject tags of §2.3.2. An optional ``keep``
    (or ``reject``) column in the export overrides the reading of ``keep`` from ``reject_tags``.
    ``strict_vocab``: unknown age groups, deciding factors or tags are rejects.
    """
    path = Path(path) if path is not None else default_findingemo_path()
    scales = dict(FINDINGEMO_SCALES if scales is None else scales)
    tax = get_taxonomy("plutchik24")
    reject_set = {t.casefold() for t in reject_tags}
    words = list(emotion_words) if emotion_words is not None else _default_emotion_words()
    header, recs, is_csv = _table_source(path)
    _require(path, header, FINDINGEMO_COLUMNS)
    keep_col = "keep" if "keep" in header else ("reject" if "reject" in header else None)
    with _gc_paused():
        lines, raw, bad = _collect_columns(header, recs, is_csv, list(FINDINGEMO_COLUMNS) + ([keep_col] if keep_col else []))
        problems = _Problems()

        def col(name: str, one, fast=None) -> list:
            values, probs = _map_column(raw[name], one, is_csv, fast)
            problems.add(probs)
            return values

        def user(v: Any) -> tuple[str, tuple]:
            ann = (v or "").strip()
            return ann, (() if ann else (("user", v, R_EMPTY_ANNOTATOR),))

        def image(v: Any) -> tuple[tuple[str, str, str | None], tuple]:
            raw_path = (v or "").strip()
            img = normalize_image_path(raw_path)
            return (img, raw_path, query_of_path(raw_path)), (() if img else (("image_path", v, R_EMPTY_IMAGE),))

        def tags_keep(v: Any, problems: list) -> tuple[list[str], bool]:
            tags = _parse_list(v, "tags", FINDINGEMO_TAGS if strict_vocab else None, ",", problems)
            return tags, not any(t.casefold() in reject_set for t in tags)

        anns = col("user", user)
        images = col("image_path", image)
        tags_k = col("tags", _parser(tags_keep))
        if keep_col:
            keep = col(keep_col, _parser(_parse_keep, keep_col, invert=(keep_col == "reject")))
        else:
            keep = [k for _, k in tags_k]
        columns: dict[str, Any] = {
            "image_id": [x[0] for x in images], "annotator_id": anns, "source": _Const(source), "keep": keep,
            "valence": col("valence", _parser(_parse_number, "valence", scales.get("valence"), True)),
            "arousal": col("arousal", _parser(_parse_number, "arousal", scales.get("arousal"), True)),
            "ambiguity": col("ambiguity", _parser(_parse_number, "ambiguity", scales.get("ambiguity"), True)),
            "age_groups": col("age", _parser(_parse_list, "age", FINDINGEMO_AGE_GROUPS if strict_vocab else None, ",")),
            "deciding_factors": col("dec_factors", _parser(_parse_list, "dec_factors", FINDINGEMO_DECIDING_FACTORS if strict_vocab else None, ",")),
            "tags": [t for t, _ in tags_k],
            "annotated_at": col("datetime", _parser(_parse_datetime, "datetime", filler_datetimes), _iso_datetimes(filler_datetimes)),
            "taxonomy": _Const(tax.name), "image_path": [x[1] for x in images],
            "source_file": _Const(str(path)), "source_line": lines,
            "source_index": _map_column(raw["index"], lambda v: ((v or "").strip() or None, ()), is_csv)[0],
            "synthetic_annotator": _Const(False),
        }
        labels = col("emotion", _parser(_labels_tuple, tax, "emotion"))
        for j, c in enumerate(("emotion", "emotion24", "emotion8")):
            columns[c] = [x[j] for x in labels]
        queries = [x[2] for x in images]
        qe = {q: query_emotion_word(q, words) for q in dict.fromkeys(queries)}
        columns["query"], columns["query_emotion"] = queries, list(map(qe.__getitem__, queries))
        raw.clear()  # the raw strings: parsed values share one object per distinct value
        return _finish_columns(str(path), lines, bad, problems, columns)


# ---- long format: one row per item x annotator ---------------------------------------------------

def read_long(
    path: str | Path,
    mapping: Mapping[str, str],
    *,
    source: str | None = None,
    taxonomy: str | Taxonomy = "plutchik24",
    scales: Mapping[str, tuple[float, float]] | None = None,
    integer_scales: bool = False,
    list_sep: str = ",",
    vocab: Mapping[str, Sequence[str]] | None = None,
    item_columns: Sequence[str] | Mapping[str, str] = (),
    label_map: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    default_keep: bool = True,
    emotion_words: Iterable[str] | None = None,
) -> IngestResult:
    """Read a long-format table (CSV/TSV/Parquet, one row per item x annotator).

    ``mapping``: annotations field -> source column, e.g. ``{"image_id": "item", "annotator_id":
    "worker", "emotion": "label", "valence": "v"}``. ``image_id`` and ``annotator_id`` are required;
    the other fields (``LONG_FIELDS``) are optional (``keep`` defaults to ``default_keep``).
    ``emotion`` is read in ``taxonomy`` (unknown labels are rejects; ``label_map`` renames raw values
    first). ``scales``: {"valence": (lo, hi), ...} range checks (FindingEmo §2.1 for FindingEmo
    sources: ``FINDINGEMO_SCALES``); ``integer_scales``: values must be integers. ``vocab``: allowed
    values of the list fields (``{"age_groups": FINDINGEMO_AGE_GROUPS}``). ``item_columns``: source
    columns carried onto every row as item-level columns (a list, or {output name: source column}).
    """
    path = Path(path)
    tax = get_taxonomy(taxonomy)
    unknown = set(mapping) - set(LONG_FIELDS)
    if unknown:
        raise ValueError(f"unknown annotation fields in mapping: {sorted(unknown)} (known: {LONG_FIELDS})")
    for f in ("image_id", "annotator_id"):
        if f not in mapping:
            raise ValueError(f"mapping must name the source column of {f!r}")
    items = dict(item_columns) if isinstance(item_columns, Mapping) else {c: c for c in item_columns}
    scales = dict(scales or {})
    vocab = dict(vocab or {})
    source = source or path.stem
    words = list(emotion_words) if emotion_words is not None else _default_emotion_words()
    header, recs, is_csv = _table_source(path, delimiter)
    _require(path, header, list(mapping.values()) + list(items.values()))
    m = mapping
    with _gc_paused():
        lines, raw, bad = _collect_columns(header, recs, is_csv, list(m.values()) + list(items.values()))
        n = len(lines)
        problems = _Problems()

        def col(f: str, one, default: Any = None, fast=None) -> Any:
            """Field f parsed per row (problems recorded), or ``default`` on every row if not mapped."""
            if f not in m:
                return _Const(default)
            values, probs = _map_column(raw[m[f]], one, is_csv, fast)
            problems.add(probs)
            return values

        def ident(f: str, reason: str):
            field = m[f]

            def one(v: Any) -> tuple[str, tuple]:
                s = "" if _is_undefined(v) else str(v).strip()
                return s, (() if s else ((field, v, reason),))
            return one

        def txt(v: Any) -> tuple[str | None, tuple]:
            return (None if _is_undefined(v) else str(v).strip()), ()

        def num(f: str):
            return col(f, _parser(_parse_number, m.get(f), scales.get(f), integer_scales))

        def lst(f: str):
            return col(f, _parser(_parse_list, m.get(f), vocab.get(f), list_sep), ())

        columns: dict[str, Any] = {
            "image_id": col("image_id", ident("image_id", R_EMPTY_IMAGE)),
            "annotator_id": col("annotator_id", ident("annotator_id", R_EMPTY_ANNOTATOR)),
            "source": _Const(source),
            "keep": col("keep", _parser(_parse_keep, m.get("keep")), default_keep),
        }
        columns.update({
            "valence": num("valence"), "arousal": num("arousal"), "ambiguity": num("ambiguity"),
            "age_groups": lst("age_groups"), "deciding_factors": lst("deciding_factors"), "tags": lst("tags"),
            "annotated_at": col("annotated_at", _parser(_parse_datetime, m.get("annotated_at"), ()), fast=_iso_datetimes(())),
            "taxonomy": _Const(tax.name), "source_file": _Const(str(path)), "source_line": lines,
            "source_index": _Const(None), "synthetic_annotator": _Const(False),
        })
        image_path = col("image_path", txt)
        query = col("query", txt)
        if not isinstance(image_path, _Const) or not isinstance(query, _Const):
            image_path_l, query_l = _column_values(image_path, n), _column_values(query, n)
            qop = {p: query_of_path(p) for p in dict.fromkeys(image_path_l) if p}
            query = [q or (qop[p] if p else None) for q, p in zip(query_l, image_path_l)]
        if isinstance(query, _Const):  # None on every row
            qe = _Const(query_emotion_word(None, words))
        else:
            qew = {q: query_emotion_word(q, words) for q in dict.fromkeys(query)}
            qe = list(map(qew.__getitem__, query))
        query_emotion = col("query_emotion", txt)
        if not isinstance(query_emotion, _Const):
            qe = [a or b for a, b in zip(query_emotion, _column_values(qe, n))]
        columns.update({"image_path": image_path, "query": query, "query_emotion": qe})
        labels = col("emotion", _parser(_labels_tuple, tax, m.get("emotion"), label_map=label_map))
        if isinstance(labels, _Const):
            columns.update({"emotion": _Const(None), "emotion24": _Const(None), "emotion8": _Const(None)})
        else:
            for j, c in enumerate(("emotion", "emotion24", "emotion8")):
                columns[c] = [x[j] for x in labels]
        for out, c in items.items():
            columns[out] = _map_column(raw[c], lambda v: ((None if _is_undefined(v) else v), ()), is_csv)[0]
        raw.clear()  # the raw strings: parsed values share one object per distinct value
        return _finish_columns(str(path), lines, bad, problems, columns, list(items))


# ---- vote-count format: one row per item, one count column per label -----------------------------

@_gc_paused()
def read_vote_counts(
    path: str | Path,
    label_columns: Sequence[str] | Mapping[str, str],
    item_column: str,
    *,
    source: str | None = None,
    taxonomy: str | Taxonomy = "affectnet8",
    split_column: str | None = None,
    item_columns: Sequence[str] | None = None,
    image_path_column: str | None = None,
    query_column: str | None = None,
    delimiter: str | None = None,
    emotion_words: Iterable[str] | None = None,
) -> IngestResult:
    """Read a vote-count table (AffectNet+ Supplement II's multi-annotated set shape).

    One row per item, one column per label holding how many annotators chose it. Each vote becomes
    one synthetic annotation row (``annotator_id`` = "<item>#<n>", ``synthetic_annotator`` True,
    ``keep`` True), so vote distributions come out exactly as counted; per-annotator statistics and
    annotator models (grading, Dawid-Skene) are meaningless on such rows. ``label_columns``: the
    count columns (their names must be labels of ``taxonomy``, or give {column: label}). Item-level
    columns (``split_column`` and ``item_columns``; default: every other column) are kept on each row
    and carried to merged_annotations. Empty count cells read as 0; a non-integer or negative count
    is a reject; an item with no vote at all is recorded in rejects (``no_votes``).
    """
    path = Path(path)
    tax = get_taxonomy(taxonomy)
    labels = dict(label_columns) if isinstance(label_columns, Mapping) else {c: c for c in label_columns}
    header, recs = _table_records(path, delimiter)
    _require(path, header, [item_column] + list(labels))
    canon: dict[str, str] = {}
    for col, lab in labels.items():
        c = tax.normalize(lab)
        if c is None:
            raise AnnotationSourceError(path, f"count column is not a label of taxonomy {tax.name!r} (labels: {', '.join(tax.all_labels)})", column=col)
        canon[col] = c
    special = {c for c in (image_path_column, query_column) if c}
    if item_columns is None:
        item_columns = [c for c in header if c != item_column and c not in labels and c not in special]
    item_columns = list(item_columns)
    if split_column and split_column not in item_columns:
        item_columns.append(split_column)
    _require(path, header, item_columns + sorted(special))
    source = source or path.stem
    words = list(emotion_words) if emotion_words is not None else _default_emotion_words()
    coll = _Collector(str(path))
    seen_items: dict[str, int] = {}
    label_cols = {lab: _labels(tax, lab, "label", []) for lab in tax.all_labels}  # the same for every vote
    for line, rec in recs:
        if "__bad__" in rec:
            coll.reject(line, "*", rec["__bad__"], R_SHORT_ROW)
            continue
        problems: list = []
        img = "" if _is_undefined(rec[item_column]) else str(rec[item_column]).strip()
        if not img:
            problems.append((item_column, rec[item_column], R_EMPTY_IMAGE))
        counts: dict[str, int] = {}
        for col, lab in canon.items():
            v = rec[col]
            if _is_undefined(v):
                n = 0
            else:
                x = _parse_number(v, col, None, True, problems)
                if x is None:
                    continue
                if x < 0:
                    problems.append((col, v, R_NEGATIVE))
                    continue
                n = int(x)
            counts[lab] = counts.get(lab, 0) + n
        if problems:
            for f, v, r in problems:
                coll.reject(line, f, v, r, img or None)
            continue
        if img in seen_items:
            coll.reject(line, item_column, img, R_DUPLICATE_ITEM + f" (first at line {seen_items[img]})", img)
            continue
        seen_items[img] = line
        total = sum(counts.values())
        if total == 0:
            coll.reject(line, "*", 0, R_NO_VOTES, img)
            continue
        image_path = None if not image_path_column or _is_undefined(rec[image_path_column]) else str(rec[image_path_column]).strip()
        query = None if not query_column or _is_undefined(rec[query_column]) else str(rec[query_column]).strip()
        if query is None and image_path:
            query = query_of_path(image_path)
        qe = query_emotion_word(query, words)
        extra = {c: (None if _is_undefined(rec[c]) else rec[c]) for c in item_columns}
        j = 0
        for lab in tax.all_labels:
            for _ in range(counts.get(lab, 0)):
                j += 1
                row = {
                    "image_id": img, "annotator_id": f"{img}#{j}", "source": source, "keep": True,
                    "valence": None, "arousal": None, "ambiguity": None,
                    "age_groups": [], "deciding_factors": [], "tags": [], "annotated_at": None,
                    "taxonomy": tax.name, "image_path": image_path, "query": query, "query_emotion": qe,
                    "source_file": str(path), "source_line": line, "source_index": None,
                    "synthetic_annotator": True,
                }
                row.update(label_cols[lab])
                row.update(extra)
                coll.rows.append(row)
    return _finish(coll, item_columns)


def concat_sources(results: Iterable[IngestResult]) -> IngestResult:
    """Several sources into one ``annotations`` table; (image, annotator) pairs repeated across
    sources are rejects (the first source wins), like duplicates within a file."""
    results = list(results)
    anns = [r.annotations for r in results if len(r.annotations)]
    rejs = [r.rejects for r in results if len(r.rejects)]
    if not anns:
        ann = _finish(_Collector("")).annotations
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


def durations_from_timestamps(annotations: pd.DataFrame) -> pd.Series:
    """Per-annotator task duration in seconds = last - first ``annotated_at`` (NULL-stamped rows
    ignored). A proxy when platform durations (FindingEmo §A.3: Prolific's) are not available."""
    a = annotations.dropna(subset=["annotated_at"])
    g = a.groupby("annotator_id")["annotated_at"]
    return ((g.max() - g.min()).dt.total_seconds()).rename("duration_seconds")
