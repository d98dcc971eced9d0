"""Annotation ingest: FindingEmo exports, long-format tables and vote-count tables -> ``annotations``.

The table's columns and the export conventions are documented in :mod:`ops.annotations.schema`;
every reader returns an :class:`~ops.annotations.schema.IngestResult` (annotations, rejects) and
parses with the one column-wise engine of :mod:`ops.annotations.parsing`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ops.annotations.parsing import (
    Const, Problems, RejectCollector, collect_columns, collect_rejects, rejects_frame, column_values, default_emotion_words, finish_columns,
    gc_paused, is_undefined, iso_datetimes, labels_tuple, map_column, normalize_image_path,
    parse_datetime, parse_keep, parse_list, parse_number, parser, query_emotion_word, query_of_path,
    require_columns, table_source,
)
from ops.annotations.schema import (  # noqa: F401  (re-exported: the readers' vocabulary)
    ANNOTATION_COLUMNS, FINDINGEMO_AGE_GROUPS, FINDINGEMO_COLUMNS, FINDINGEMO_DECIDING_FACTORS,
    FINDINGEMO_FILLER_DATETIMES, FINDINGEMO_REJECT_TAGS, FINDINGEMO_SCALES, FINDINGEMO_TAGS, LONG_FIELDS,
    R_DUPLICATE_ITEM, R_EMPTY_ANNOTATOR, R_EMPTY_IMAGE, R_NEGATIVE, R_NO_VOTES, R_SHORT_ROW, R_TOO_MANY_VOTES,
    REJECT_COLUMNS, AnnotationSourceError, IngestResult, annotations_schema, annotations_to_arrow, concat_sources,
    default_findingemo_path, empty_result, reject_summary,
)
from ops.annotations.taxonomy import Taxonomy, get_taxonomy

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
    words = list(emotion_words) if emotion_words is not None else default_emotion_words()
    header, recs, is_csv = table_source(path)
    require_columns(path, header, FINDINGEMO_COLUMNS)
    keep_col = "keep" if "keep" in header else ("reject" if "reject" in header else None)
    with gc_paused():
        lines, raw, bad = collect_columns(header, recs, is_csv, list(FINDINGEMO_COLUMNS) + ([keep_col] if keep_col else []))
        problems = Problems()

        def col(name: str, one, fast=None) -> list:
            values, probs = map_column(raw[name], one, is_csv, fast)
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
            tags = parse_list(v, "tags", FINDINGEMO_TAGS if strict_vocab else None, ",", problems)
            return tags, not any(t.casefold() in reject_set for t in tags)

        anns = col("user", user)
        images = col("image_path", image)
        tags_k = col("tags", parser(tags_keep))
        if keep_col:
            keep = col(keep_col, parser(parse_keep, keep_col, invert=(keep_col == "reject")))
        else:
            keep = [k for _, k in tags_k]
        columns: dict[str, Any] = {
            "image_id": [x[0] for x in images], "annotator_id": anns, "source": Const(source), "keep": keep,
            "valence": col("valence", parser(parse_number, "valence", scales.get("valence"), True)),
            "arousal": col("arousal", parser(parse_number, "arousal", scales.get("arousal"), True)),
            "ambiguity": col("ambiguity", parser(parse_number, "ambiguity", scales.get("ambiguity"), True)),
            "age_groups": col("age", parser(parse_list, "age", FINDINGEMO_AGE_GROUPS if strict_vocab else None, ",")),
            "deciding_factors": col("dec_factors", parser(parse_list, "dec_factors", FINDINGEMO_DECIDING_FACTORS if strict_vocab else None, ",")),
            "tags": [t for t, _ in tags_k],
            "annotated_at": col("datetime", parser(parse_datetime, "datetime", filler_datetimes), iso_datetimes(filler_datetimes)),
            "taxonomy": Const(tax.name), "image_path": [x[1] for x in images],
            "source_file": Const(str(path)), "source_line": lines,
            "source_index": map_column(raw["index"], lambda v: ((v or "").strip() or None, ()), is_csv)[0],
            "synthetic_annotator": Const(False),
        }
        labels = col("emotion", parser(labels_tuple, tax, "emotion"))
        for j, c in enumerate(("emotion", "emotion24", "emotion8")):
            columns[c] = [x[j] for x in labels]
        queries = [x[2] for x in images]
        qe = {q: query_emotion_word(q, words) for q in dict.fromkeys(queries)}
        columns["query"], columns["query_emotion"] = queries, list(map(qe.__getitem__, queries))
        raw.clear()  # the raw strings: parsed values share one object per distinct value
        return finish_columns(str(path), lines, bad, problems, columns)


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
    words = list(emotion_words) if emotion_words is not None else default_emotion_words()
    header, recs, is_csv = table_source(path, delimiter)
    require_columns(path, header, list(mapping.values()) + list(items.values()))
    m = mapping
    with gc_paused():
        lines, raw, bad = collect_columns(header, recs, is_csv, list(m.values()) + list(items.values()))
        n = len(lines)
        problems = Problems()

        def col(f: str, one, default: Any = None, fast=None) -> Any:
            """Field f parsed per row (problems recorded), or ``default`` on every row if not mapped."""
            if f not in m:
                return Const(default)
            values, probs = map_column(raw[m[f]], one, is_csv, fast)
            problems.add(probs)
            return values

        def ident(f: str, reason: str):
            field = m[f]

            def one(v: Any) -> tuple[str, tuple]:
                s = "" if is_undefined(v) else str(v).strip()
                return s, (() if s else ((field, v, reason),))
            return one

        def txt(v: Any) -> tuple[str | None, tuple]:
            return (None if is_undefined(v) else str(v).strip()), ()

        def num(f: str):
            return col(f, parser(parse_number, m.get(f), scales.get(f), integer_scales))

        def lst(f: str):
            return col(f, parser(parse_list, m.get(f), vocab.get(f), list_sep), ())

        columns: dict[str, Any] = {
            "image_id": col("image_id", ident("image_id", R_EMPTY_IMAGE)),
            "annotator_id": col("annotator_id", ident("annotator_id", R_EMPTY_ANNOTATOR)),
            "source": Const(source),
            "keep": col("keep", parser(parse_keep, m.get("keep")), default_keep),
        }
        columns.update({
            "valence": num("valence"), "arousal": num("arousal"), "ambiguity": num("ambiguity"),
            # a source without age groups leaves them NULL (unknown), not an empty list (none ticked)
            "age_groups": col("age_groups", parser(parse_list, m.get("age_groups"), vocab.get("age_groups"), list_sep), None),
            "deciding_factors": lst("deciding_factors"), "tags": lst("tags"),
            "annotated_at": col("annotated_at", parser(parse_datetime, m.get("annotated_at"), ()), fast=iso_datetimes(())),
            "taxonomy": Const(tax.name), "source_file": Const(str(path)), "source_line": lines,
            "source_index": Const(None), "synthetic_annotator": Const(False),
        })
        image_path = col("image_path", txt)
        query = col("query", txt)
        if not isinstance(image_path, Const) or not isinstance(query, Const):
            image_path_l, query_l = column_values(image_path, n), column_values(query, n)
            qop = {p: query_of_path(p) for p in dict.fromkeys(image_path_l) if p}
            query = [q or (qop[p] if p else None) for q, p in zip(query_l, image_path_l)]
        if isinstance(query, Const):  # None on every row
            qe = Const(query_emotion_word(None, words))
        else:
            qew = {q: query_emotion_word(q, words) for q in dict.fromkeys(query)}
            qe = list(map(qew.__getitem__, query))
        query_emotion = col("query_emotion", txt)
        if not isinstance(query_emotion, Const):
            qe = [a or b for a, b in zip(query_emotion, column_values(qe, n))]
        columns.update({"image_path": image_path, "query": query, "query_emotion": qe})
        labels = col("emotion", parser(labels_tuple, tax, m.get("emotion"), label_map=label_map))
        if isinstance(labels, Const):
            columns.update({"emotion": Const(None), "emotion24": Const(None), "emotion8": Const(None)})
        else:
            for j, c in enumerate(("emotion", "emotion24", "emotion8")):
                columns[c] = [x[j] for x in labels]
        for out, c in items.items():
            columns[out] = map_column(raw[c], lambda v: ((None if is_undefined(v) else v), ()), is_csv)[0]
        raw.clear()  # the raw strings: parsed values share one object per distinct value
        return finish_columns(str(path), lines, bad, problems, columns, list(items))


# ---- vote-count format: one row per item, one count column per label -----------------------------

DEFAULT_MAX_VOTES_PER_CELL = 1000


@gc_paused()
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
    max_votes_per_cell: int = DEFAULT_MAX_VOTES_PER_CELL,
) -> IngestResult:
    """Read a vote-count table (AffectNet+ Supplement II's multi-annotated set shape; FER+ alike).

    One row per item, one column per label holding how many annotators chose it. Each vote becomes
    one synthetic annotation row (``annotator_id`` = "<item>#<n>", ``synthetic_annotator`` True,
    ``keep`` True), so vote distributions come out exactly as counted; per-annotator statistics and
    annotator models (grading, Dawid-Skene) are meaningless on such rows. ``label_columns``: the
    count columns (their names must be labels of ``taxonomy``, or give {column: label}). Item-level
    columns (``split_column`` and ``item_columns``; default: every other column) are kept on each row
    and carried to merged_annotations. Empty count cells read as 0; a non-integer or negative count,
    or one above ``max_votes_per_cell`` (a cell of 3,000,000 would expand to 3M rows), is a reject
    naming file, line and column; an item with no vote at all is recorded in rejects (``no_votes``).
    """
    path = Path(path)
    tax = get_taxonomy(taxonomy)
    labels = dict(label_columns) if isinstance(label_columns, Mapping) else {c: c for c in label_columns}
    header, recs, is_csv = table_source(path, delimiter)
    require_columns(path, header, [item_column] + list(labels))
    canon: dict[str, str] = {}
    for col, lab in labels.items():
        c = tax.normalize(lab)
        if c is None:
            raise AnnotationSourceError(path, f"count column is not a label of taxonomy {tax.name!r} (labels: {', '.join(tax.all_labels)})", column=col)
        canon[col] = c
    special = [c for c in (image_path_column, query_column) if c]
    if item_columns is None:
        item_columns = [c for c in header if c != item_column and c not in labels and c not in special]
    item_columns = list(item_columns)
    if split_column and split_column not in item_columns:
        item_columns.append(split_column)
    require_columns(path, header, item_columns + special)
    source = source or path.stem
    words = list(emotion_words) if emotion_words is not None else default_emotion_words()
    lines, raw, bad = collect_columns(header, recs, is_csv, [item_column, *labels, *item_columns, *special])
    n = len(lines)
    problems = Problems()

    def ident(v: Any) -> tuple[str, tuple]:
        s = "" if is_undefined(v) else str(v).strip()
        return s, (() if s else ((item_column, v, R_EMPTY_IMAGE),))

    def count(col: str):
        def one(v: Any) -> tuple[int, tuple]:
            if is_undefined(v):
                return 0, ()
            local: list = []
            x = parse_number(v, col, None, True, local)
            if x is None:
                return 0, tuple(local)
            if x < 0:
                return 0, ((col, v, R_NEGATIVE),)
            if x > max_votes_per_cell:
                return 0, ((col, v, f"{R_TOO_MANY_VOTES} (more than max_votes_per_cell={max_votes_per_cell})"),)
            return int(x), ()
        return one

    def col(name: str, one) -> list:
        values, probs = map_column(raw[name], one, is_csv)
        problems.add(probs)
        return values

    items = col(item_column, ident)
    counts = {c: col(c, count(c)) for c in labels}
    text = (lambda v: ((None if is_undefined(v) else str(v).strip()), ()))
    paths = col(image_path_column, text) if image_path_column else [None] * n
    queries = col(query_column, text) if query_column else [None] * n
    extras = {c: map_column(raw[c], lambda v: ((None if is_undefined(v) else v), ()), is_csv)[0] for c in item_columns}

    # item-level rejects (duplicates, no votes) and the expansion of votes into rows
    item_rejects: list[dict] = []
    seen: dict[str, int] = {}
    order = list(tax.all_labels)
    per_item_rows: list[int] = []          # input row of each output (vote) row
    per_item_label: list[str] = []
    for i in range(n):
        if i in problems.rows:
            continue
        img = items[i]
        if img in seen:
            item_rejects.append(_reject(path, lines[i], item_column, img,
                                        f"{R_DUPLICATE_ITEM} (first at line {seen[img]})", img))
            continue
        seen[img] = lines[i]
        per_label = {lab: 0 for lab in order}
        for c, lab in canon.items():
            per_label[lab] += counts[c][i]
        if not any(per_label.values()):
            item_rejects.append(_reject(path, lines[i], "*", 0, R_NO_VOTES, img))
            continue
        for lab in order:
            per_item_rows.extend([i] * per_label[lab])
            per_item_label.extend([lab] * per_label[lab])
    coll, _ = collect_rejects(str(path), lines, bad, problems, items, [None] * n, item_rejects, dedupe=False)
    rejects = rejects_frame(coll)
    if not per_item_rows:
        return IngestResult(empty_result(item_columns).annotations, rejects)
    j_of: dict[int, int] = {}
    annotators = []
    for i in per_item_rows:
        j_of[i] = j_of.get(i, 0) + 1
        annotators.append(f"{items[i]}#{j_of[i]}")
    q_of = {}
    for i in set(per_item_rows):
        q = queries[i] or (query_of_path(paths[i]) if paths[i] else None)
        q_of[i] = (q, query_emotion_word(q, words))
    label_cols = {lab: labels_tuple(lab, tax, "label", []) for lab in order}
    columns: dict[str, Any] = {
        "image_id": [items[i] for i in per_item_rows], "annotator_id": annotators, "source": Const(source),
        "keep": Const(True), "valence": Const(None), "arousal": Const(None), "ambiguity": Const(None),
        "age_groups": Const(None), "deciding_factors": Const(()), "tags": Const(()), "annotated_at": Const(None),
        "taxonomy": Const(tax.name), "image_path": [paths[i] for i in per_item_rows],
        "query": [q_of[i][0] for i in per_item_rows], "query_emotion": [q_of[i][1] for i in per_item_rows],
        "source_file": Const(str(path)), "source_line": [lines[i] for i in per_item_rows],
        "source_index": Const(None), "synthetic_annotator": Const(True),
    }
    for k, name in enumerate(("emotion", "emotion24", "emotion8")):
        columns[name] = [label_cols[lab][k] for lab in per_item_label]
    for c in item_columns:
        columns[c] = [extras[c][i] for i in per_item_rows]
    votes = finish_columns(str(path), columns["source_line"], [], Problems(), columns, item_columns)
    return IngestResult(votes.annotations, rejects)


def _reject(path: Path, line: int, field: str, value: Any, reason: str, image_id: Any = None) -> dict:
    """One reject row (the shape of ``RejectCollector.reject``)."""
    coll = RejectCollector(str(path))
    coll.reject(line, field, value, reason, image_id)
    return coll.rejects[0]
