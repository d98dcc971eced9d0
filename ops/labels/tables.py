"""The SQL views of AffectNet+'s Tables 4–7 and of the per-face metadata (§3.5.4), on any data set.

They read two warehouse tables the labels assets write:

* ``soft_label_classifiers``: long rows (classifier 'ebc' | 'au', model = backbone id or 'ensemble',
  emotion, metric, value, model_version) from the EBC and AU models' test-MAS evaluation
  (ops.labels.soft_label_fit.evaluation_rows);
* ``soft_labels``: one row per face (Eq. 14, hard label, difficulty).

Views (values in percent, as the paper prints them; one column per affectnet8 emotion in lower case):

``affectnet_table4``  Table 4: per-class confidence scores, rows ``EBC`` and ``AU``. The EBC row is
    the mean over backbones of each binary classifier's CS: the paper's Table 4 EBC row matches the
    mean of Table 6's three per-backbone Acc-bar rows (Neutral: (79.48 + 82.91 + 81.55) / 3 = 81.31 vs
    81.33 printed; Happy 87.50 vs 87.45), not Table 6's ensemble row (88.52). Its AU row is close to,
    not equal to, Table 7's Acc-bar (88.71 vs 88.43 for Neutral): we print the CS the AU models use
    (Eq. 13), in the reading of Eq. 3 that soft_labels.cs_variant selects (see affectnet_plus).
``affectnet_table5``  Table 5: faces with a hard label per subset (Easy / Challenging / Difficult,
    §3.5.1) and class, with the share of the class in percent; a row ``All`` and a column ``overall``.
    Long form (subset, emotion, n, percent) in ``affectnet_table5_long``. Per split of the
    multi-annotated set (train / test / excluded / NULL for faces outside it) in
    ``affectnet_table5_by_split``.
``affectnet_table6``  Table 6: per EBC model (each backbone and the ensemble) the rows Acc and Acc-bar
    over test-MAS, with the mean and sample standard deviation over the 8 classes (§4.1 quotes the
    standard deviations). Acc-bar is the balanced accuracy, the value the tables print; ``cs_printed``
    (Eq. 3 as printed) is a third row.
``affectnet_table7``  Table 7: the same for the AU-based classifier.
``face_demographics`` one row per face: pose, age, gender, ethnicity (each with its model or the reason
    it is NULL) and the annotators' age-group shares of the face's image (FindingEmo §2.1, from
    ``merged_annotations``), averaged over the image's merged rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from ops.annotations.schema import FINDINGEMO_AGE_GROUPS
from ops.labels.affectnet_plus import EMOTIONS
from ops.annotations.taxonomy import slug

_COLS = [(e, e.lower()) for e in EMOTIONS]

# Fixed schemas: an empty table (no faces, no models yet) still binds the views below.
SOFT_LABEL_CLASSIFIERS_SCHEMA = pa.schema([("classifier", pa.string()), ("model", pa.string()), ("emotion", pa.string()),
                                           ("metric", pa.string()), ("value", pa.float64()),
                                           ("model_version", pa.string())])
FACE_EXTRACTORS_SCHEMA = pa.schema([("id", pa.string()), ("extractor", pa.string()), ("feature_dim", pa.int64()),
                                    ("source", pa.string()), ("model_version", pa.string())])
MAS_SPLIT_SCHEMA = pa.schema([("face_id", pa.string()), ("sha256", pa.string()), ("hard_label", pa.string()),
                              ("n_votes", pa.int64()), ("all_agree", pa.bool_()), ("split", pa.string()),
                              ("test_candidate", pa.bool_()), ("group_id", pa.string())])
SOFT_LABELS_SCHEMA = pa.schema(
    [("face_id", pa.string())] + [(c, pa.float64()) for _, c in _COLS]
    + [("hard_label", pa.string()), ("hard_label_rank", pa.int64()), ("difficulty", pa.string()),
       ("soft_top1", pa.string())]
    + [(f"sc_eb_mean_{c}", pa.float64()) for _, c in _COLS] + [(f"sc_au_{c}", pa.float64()) for _, c in _COLS]
    + [("sha256", pa.string()), ("crop_sha256", pa.string()), ("mode", pa.string()), ("split", pa.string()),
       ("ebc_model_version", pa.string()), ("au_model_version", pa.string())])


def _pivot(value: str, where: str) -> str:
    """8 emotion columns of ``value`` over rows matching ``where`` (conditional aggregation)."""
    return ", ".join(f"round(100 * avg({value}) FILTER (WHERE emotion = '{e}' AND {where}), 2) AS {c}" for e, c in _COLS)


def _table4() -> str:
    return f"""
SELECT CASE classifier WHEN 'ebc' THEN 'EBC' ELSE 'AU' END AS classifier, {_pivot('value', "metric = 'cs'")},
       any_value(model_version) AS model_version
FROM soft_label_classifiers
WHERE model <> 'ensemble'
GROUP BY classifier ORDER BY classifier DESC""".strip()


def _per_model(classifier: str) -> str:
    rows = [("Acc", "acc"), ("Acc_bar", "cs_balanced_accuracy"), ("CS_printed", "cs_printed")]
    parts = []
    for label, metric in rows:
        vals = ", ".join(f"round(100 * avg(value) FILTER (WHERE emotion = '{e}'), 2) AS {c}" for e, c in _COLS)
        parts.append(f"""SELECT model, '{label}' AS metric, {vals},
       round(100 * avg(value), 2) AS mean, round(100 * stddev_samp(value), 2) AS std,
       any_value(model_version) AS model_version
FROM soft_label_classifiers WHERE classifier = '{classifier}' AND metric = '{metric}' GROUP BY model""")
    body = "\nUNION ALL\n".join(parts)
    return (f"SELECT * FROM (\n{body}\n) ORDER BY model = 'ensemble', model, "
            "CASE metric WHEN 'Acc' THEN 0 WHEN 'Acc_bar' THEN 1 ELSE 2 END")


_ORDER = ", ".join(f"('{e}', {i})" for i, e in enumerate(EMOTIONS))
_SUBSETS = "('Easy', 1), ('Challenging', 2), ('Difficult', 3)"

TABLE5_LONG = f"""
WITH lab AS (SELECT hard_label AS emotion, difficulty FROM soft_labels WHERE hard_label IS NOT NULL),
counts AS (
    SELECT s.subset, e.emotion, count(lab.emotion) AS n
    FROM (VALUES {_SUBSETS}, ('All', 0)) s(subset, so)
    CROSS JOIN (VALUES {_ORDER}, ('Overall', 8)) e(emotion, eo)
    LEFT JOIN lab ON (e.emotion = 'Overall' OR lab.emotion = e.emotion) AND (s.subset = 'All' OR lab.difficulty = s.subset)
    GROUP BY ALL)
SELECT c.subset, c.emotion, c.n,
       round(100.0 * c.n / nullif(a.n, 0), 2) AS percent
FROM counts c JOIN counts a ON a.emotion = c.emotion AND a.subset = 'All'
ORDER BY (SELECT so FROM (VALUES {_SUBSETS}, ('All', 0)) s(subset, so) WHERE s.subset = c.subset),
         (SELECT eo FROM (VALUES {_ORDER}, ('Overall', 8)) e(emotion, eo) WHERE e.emotion = c.emotion)
""".strip()


def _table5() -> str:
    cols = ", ".join([f"any_value(n) FILTER (WHERE emotion = '{e}') AS {c}" for e, c in _COLS]
                     + ["any_value(n) FILTER (WHERE emotion = 'Overall') AS overall"])
    pcts = ", ".join([f"any_value(percent) FILTER (WHERE emotion = '{e}') AS {c}_percent" for e, c in _COLS]
                     + ["any_value(percent) FILTER (WHERE emotion = 'Overall') AS overall_percent"])
    return (f"SELECT subset, {cols}, {pcts} FROM affectnet_table5_long GROUP BY subset "
            "ORDER BY CASE subset WHEN 'All' THEN 0 WHEN 'Easy' THEN 1 WHEN 'Challenging' THEN 2 ELSE 3 END")


TABLE5_BY_SPLIT = """
SELECT split, hard_label AS emotion, difficulty AS subset, count(*) AS n,
       round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY split, hard_label), 2) AS percent
FROM soft_labels WHERE hard_label IS NOT NULL
GROUP BY split, hard_label, difficulty ORDER BY split, emotion, subset
""".strip()


def _demographics(age_groups: Iterable[str]) -> str:
    cols = [f"age_{slug(g)}" for g in age_groups]
    inner = "".join(f", avg({c}) AS annotators_{c}" for c in cols)
    outer = "".join(f", a.annotators_{c}" for c in cols)
    return f"""
SELECT f.face_id, f.sha256, f.mode, f.score,
       m.yaw, m.pitch, m.roll, m.pose_model, m.pose_reason,
       m.age, m.age_model, m.age_reason, m.gender, m.gender_probability, m.gender_model, m.gender_reason,
       m.ethnicity, m.ethnicity_model, m.ethnicity_reason{outer}
FROM faces f
LEFT JOIN face_metadata m ON m.face_id = f.face_id
LEFT JOIN (SELECT sha256{inner} FROM merged_annotations WHERE sha256 IS NOT NULL GROUP BY sha256) a ON a.sha256 = f.sha256
ORDER BY f.face_id""".strip()


def soft_label_views() -> dict[str, str]:
    """Tables 4–7 (name -> SELECT), registered in the catalog by the soft_labels asset."""
    return {"affectnet_table4": _table4(), "affectnet_table5_long": TABLE5_LONG, "affectnet_table5": _table5(),
            "affectnet_table5_by_split": TABLE5_BY_SPLIT,
            "affectnet_table6": _per_model("ebc"), "affectnet_table7": _per_model("au")}


def metadata_views(merged_columns: Iterable[str]) -> dict[str, str]:
    """``face_demographics`` with the FindingEmo age-group columns ``merged_annotations`` has."""
    have = set(merged_columns)
    groups = [g for g in FINDINGEMO_AGE_GROUPS if f"age_{slug(g)}" in have]
    return {"face_demographics": _demographics(groups)}
