"""Reading annotation exports: file access, field parsers, and the column-wise parsing engine.

Every reader (:mod:`ops.annotations.readers`) reads its file with :func:`table_source` (CSV/TSV with
line numbers, or Parquet), collects the needed columns with :func:`collect_columns`, parses each
field column by column with :func:`map_column` (each distinct raw value parsed once: exports repeat
few distinct labels, numbers and lists), and assembles the result with :func:`finish_columns`, which
turns every problem into a reject row naming file, line, field and value.
"""

from __future__ import annotations

import csv
import gc
import json
import re
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from ops.annotations.schema import (
    ANNOTATION_COLUMNS, KEEP_FALSE, KEEP_TRUE, R_BAD_DATETIME, R_BAD_KEEP, R_DUPLICATE, R_NOT_A_NUMBER,
    R_NOT_AN_INTEGER, R_OUT_OF_RANGE, R_SHORT_ROW, R_UNKNOWN_LABEL, R_UNKNOWN_VALUE, REJECT_COLUMNS,
    UNDEFINED, AnnotationSourceError, IngestResult, coerce,
)
from ops.annotations.taxonomy import Taxonomy
from ops.inputs import describe_non_utf8

# ---- helpers -------------------------------------------------------------------------------------

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


def default_emotion_words() -> list[str]:
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
    words = _word_set(tuple(emotion_words) if emotion_words is not None else tuple(default_emotion_words()))
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


def is_undefined(v: Any) -> bool:
    """FindingEmo export convention (§2.1): "Undefined"/empty means not given."""
    if v is None:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    return str(v).strip().casefold() in UNDEFINED


class RejectCollector:
    """Collects the reject rows of one file (file, line, field, value, reason, image, annotator)."""

    def __init__(self, file: str):
        self.file = file
        self.rejects: list[dict] = []

    def reject(self, line: int, field: str, value: Any, reason: str, image_id: Any = None, annotator_id: Any = None) -> None:
        self.rejects.append({
            "file": self.file, "line": int(line), "field": field,
            "value": None if value is None else str(value), "reason": reason,
            "image_id": None if image_id is None else str(image_id),
            "annotator_id": None if annotator_id is None else str(annotator_id),
        })


def parse_number(v: Any, field: str, scale: tuple[float, float] | None, integer: bool, problems: list) -> float | None:
    """Valence/arousal/ambiguity on their scales (FindingEmo §2.1: -3..3, 0..6, 0..6); problems recorded."""
    if is_undefined(v):
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


def parse_list(v: Any, field: str, vocab: Sequence[str] | None, sep: str, problems: list) -> list[str]:
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


def parse_keep(v: Any, field: str, problems: list, invert: bool = False) -> bool | None:
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


def parse_datetime(v: Any, field: str, fillers: Sequence[str], problems: list) -> pd.Timestamp | None:
    """Annotation timestamp (FindingEmo export ``datetime``); fill-in stamps -> NULL."""
    if is_undefined(v):
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


def labels_of(tax: Taxonomy, raw: Any, field: str, problems: list, label_map: Mapping[str, str] | None = None) -> dict:
    """emotion / emotion24 / emotion8 of one vote (FindingEmo §2.1: Emo24 -> Emo8 leaf)."""
    out = {"emotion": None, "emotion24": None, "emotion8": None}
    if raw is None or (isinstance(raw, float) and np.isnan(raw)):
        return out
    s = str(raw).strip()
    if label_map and s in label_map:
        s = label_map[s]
    label = tax.normalize(s)  # before the "not given" words: AffectNet has a label "None"
    if label is None and is_undefined(s):
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


def labels_tuple(raw: Any, tax: Taxonomy, field: str, problems: list, label_map: Mapping[str, str] | None = None) -> tuple:
    """:func:`labels_of` as (emotion, emotion24, emotion8)."""
    d = labels_of(tax, raw, field, problems, label_map)
    return d["emotion"], d["emotion24"], d["emotion8"]


# ---- file access ---------------------------------------------------------------------------------

def csv_records(path: Path, delimiter: str | None = None) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
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
        raise AnnotationSourceError(path, describe_non_utf8(path)) from e
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") or ("\t" in sample.split("\n", 1)[0] and "," not in sample.split("\n", 1)[0]) else ","
    reader = csv.reader(fh, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        fh.close()
        raise AnnotationSourceError(path, "empty file (no header line)") from None
    except UnicodeDecodeError as e:
        fh.close()
        raise AnnotationSourceError(path, describe_non_utf8(path)) from e
    except csv.Error as e:
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
        except UnicodeDecodeError as e:
            raise AnnotationSourceError(path, describe_non_utf8(path)) from e
        except csv.Error as e:
            raise AnnotationSourceError(path, f"unreadable near line {prev + 1}: {e}") from e
        finally:
            fh.close()

    return header, gen()


def table_source(path: Path, delimiter: str | None = None) -> tuple[list[str], Iterator[tuple[int, Any]], bool]:
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
    header, recs = csv_records(path, delimiter)
    return header, recs, True


def table_records(path: Path, delimiter: str | None = None) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """(columns, iterator of (line, row dict)) for CSV/TSV or Parquet files."""
    header, recs, is_csv = table_source(path, delimiter)
    if not is_csv:
        return header, recs

    def gen() -> Iterator[tuple[int, dict]]:
        for line, rec in recs:
            if len(rec) != len(header):
                yield line, {"__bad__": len(rec)}
                continue
            yield line, dict(zip(header, rec))

    return header, gen()


def require_columns(path: Path, columns: Sequence[str], needed: Iterable[str]) -> None:
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
def gc_paused() -> Iterator[None]:
    """Cyclic GC off while a reader creates millions of small, acyclic objects (it cost ~30 % of
    ingest time at 1M rows); restored afterwards (left off if it was off)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def collect_columns(header: Sequence[str], recs: Iterator[tuple[int, Any]], is_csv: bool,
                     needed: Iterable[str]) -> tuple[list[int], dict[str, Sequence], list[tuple[int, int]]]:
    """Records of :func:`table_source` -> (lines, {column: raw values}, [(line, number of fields)]
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


def parser(fn, *args, **kwargs):
    """``fn(raw, *args, problems, **kwargs)`` as ``raw -> (value, tuple of problems)``."""
    def one(raw: Any) -> tuple[Any, tuple]:
        local: list = []
        value = fn(raw, *args, local, **kwargs)
        return value, tuple(local)
    return one


def map_column(values: Sequence, one, all_str: bool = False, fast=None) -> tuple[list, list[tuple[int, tuple]]]:
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


def iso_datetimes(fillers: Sequence[str]):
    """``fast`` reader of :func:`map_column` for :func:`parse_datetime`: a naive ISO string with
    nothing to strip, not a fill-in stamp, read as the ``datetime`` itself rather than a
    ``pd.Timestamp`` of it (the same ``annotated_at`` once the column is typed, without the
    Timestamp's cost: timestamps are mostly distinct values). "Not given" words are no ISO dates."""
    def fast(distinct: Iterable[str]) -> dict:
        fromiso = datetime.fromisoformat
        out = {}
        for u in distinct:
            try:
                d = fromiso(u)
            except Exception:  # left to parse_datetime, which reads it (or raises) as before
                continue
            if d.tzinfo is None and u not in fillers:
                out[u] = d
        return out
    return fast


class Problems:
    """Per-row problems (field, raw value, reason), added field by field in the row-wise order."""

    def __init__(self) -> None:
        self.rows: dict[int, list] = {}

    def add(self, probs: list[tuple[int, tuple]]) -> None:
        rows = self.rows
        for i, p in probs:
            rows.setdefault(i, []).extend(p)


def collect_rejects(file: str, lines: list[int], bad: list[tuple[int, int]], problems: Problems,
                    imgs: Sequence, anns: Sequence, extra_rejects: Sequence[dict] = (),
                    dedupe: bool = True) -> tuple[RejectCollector, Sequence[int]]:
    """The rejects of one file, in line order (a row's rejects in field order): rows with the wrong
    number of fields, every problem of a row, ``extra_rejects`` and, with ``dedupe``, a repeated
    (image_id, annotator_id) among the remaining rows (the first wins). Also the rows that remain."""
    n = len(lines)
    coll = RejectCollector(file)
    coll.rejects.extend(extra_rejects)
    for line, nfields in bad:
        coll.reject(line, "*", nfields, R_SHORT_ROW)
    probs = problems.rows
    for i, ps in probs.items():
        for field, value, reason in ps:
            coll.reject(lines[i], field, value, reason, imgs[i], anns[i])
    good: Sequence[int] = [i for i in range(n) if i not in probs] if probs else range(n)
    if dedupe:
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
    return coll, good


def rejects_frame(coll: RejectCollector) -> pd.DataFrame:
    """The ``annotation_rejects`` rows of a collector, typed."""
    rej = pd.DataFrame(coll.rejects, columns=list(REJECT_COLUMNS))
    rej["line"] = rej["line"].astype("int64")
    return rej


def finish_columns(file: str, lines: list[int], bad: list[tuple[int, int]], problems: Problems,
                   columns: dict[str, Any], item_columns: Sequence[str] = (),
                   extra_rejects: Sequence[dict] = ()) -> IngestResult:
    """The engine's last step: rejects (:func:`collect_rejects`) and the annotations of the rows
    that remain. ``columns``: output column -> per-row list, or a constant (:class:`Const`)."""
    n = len(lines)
    imgs = column_values(columns.get("image_id", Const(None)), n)
    anns = column_values(columns.get("annotator_id", Const(None)), n)
    coll, good = collect_rejects(file, lines, bad, problems, imgs, anns, extra_rejects)
    names = list(ANNOTATION_COLUMNS) + [c for c in item_columns if c not in ANNOTATION_COLUMNS]
    m = len(good)
    if m == 0:
        df = pd.DataFrame([], columns=names)
    else:
        subset = m < n
        data = {}
        for c in names:
            v = columns.get(c, Const(None))
            if isinstance(v, Const):
                data[c] = [v.value] * m
            elif subset:
                data[c] = list(map(v.__getitem__, good))
            else:
                data[c] = v if isinstance(v, list) else list(v)
        df = pd.DataFrame(data, columns=names)
    return IngestResult(coerce(df), rejects_frame(coll))


class Const:
    """The same value on every row (an output column of :func:`finish_columns`)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def column_values(v: Any, n: int) -> Sequence:
    """A per-row list, or a :class:`Const` repeated n times."""
    return [v.value] * n if isinstance(v, Const) else v


