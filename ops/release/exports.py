"""Exports of a release for training scripts: a Hugging Face ``datasets`` dataset and WebDataset shards.

Both read the release folder (never the live warehouse) and stream: rows are generated one at a
time from the release's tables and image files, so memory does not grow with the dataset.

Two collections, as the data has two kinds of items:

    images   every unique image: the image, its source URL and licence note, query, size, the
             merged Emo8 label (ClassLabel, -1 without one), valence, arousal, keep probability;
             split = the FindingEmo 80/20 scheme (``unsplit`` for images outside it)
    faces    every face crop: the crop, its image and source URL, the box, the AffectNet-8 hard label
             (ClassLabel, -1 without one), the soft label's 8 values, the difficulty subset, head
             pose, age and gender estimates; split = the source's own split (``unsplit`` otherwise)

Hugging Face: a ``DatasetDict`` per collection saved with ``save_to_disk`` (``datasets.Image``
features, labels as ``ClassLabel``), loadable offline with ``datasets.load_from_disk``.
WebDataset: tar shards ``<collection>-<split>-000000.tar`` written with ``webdataset.ShardWriter``
(img2dataset's layout): per sample the image bytes under its extension and a ``.json`` with every
other field.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

EMO8 = ["Joy", "Trust", "Fear", "Surprise", "Sadness", "Disgust", "Anger", "Anticipation"]
AFFECTNET8 = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
SOFT = [c.lower() for c in AFFECTNET8]
LICENSE_NOTE = "unknown: the licence of the source page (see source_url); not granted by this release"
UNSPLIT = "unsplit"


def _con(release: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for f in sorted((Path(release) / "tables").glob("*.parquet")):
        con.execute(f"create view {f.stem} as select * from read_parquet('{f.as_posix()}')")
    return con


def _has(con, name: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_name = ?", [name]).fetchone()[0])


def _cols(con, name: str) -> set[str]:
    return {r[0] for r in con.execute(f"describe {name}").fetchall()} if _has(con, name) else set()


def image_rows_sql(con) -> str:
    need = ["unique_images"]
    if not all(_has(con, n) for n in need):
        raise FileNotFoundError("the release has no unique_images table")
    m = _cols(con, "merged_annotations")
    merged = ("left join (select sha256, any_value(emotion8) as emotion8, avg(valence_mean) as valence, "
              "avg(arousal_mean) as arousal from merged_annotations where sha256 is not null and emotion8 is not null "
              "group by 1) m using (sha256)") if {"emotion8", "valence_mean", "sha256"} <= m else \
             "left join (select null::varchar sha256, null::varchar emotion8, null::double valence, null::double arousal) m using (sha256)"
    kept = "left join (select sha256, p_keep, kept from kept_images) k using (sha256)" if _has(con, "kept_images") else \
           "left join (select null::varchar sha256, null::double p_keep, null::boolean kept) k using (sha256)"
    split = ("left join (select sha256, split from dataset_splits where scheme = 'findingemo_80_20' and item_kind = 'image') s "
             "using (sha256)") if _has(con, "dataset_splits") else \
            "left join (select null::varchar sha256, null::varchar split) s using (sha256)"
    return (f"select u.sha256, coalesce(u.final_url, u.url) as source_url, u.url, u.query, u.width, u.height, "
            f"u.image_format, m.emotion8, m.valence, m.arousal, k.p_keep, k.kept, coalesce(s.split, '{UNSPLIT}') as split "
            f"from unique_images u {merged} {kept} {split} order by split, u.sha256")


def face_rows_sql(con) -> str:
    if not _has(con, "faces"):
        raise FileNotFoundError("the release has no faces table")
    sl = ("left join (select face_id, hard_label, difficulty, " + ", ".join(SOFT) + " from soft_labels) l using (face_id)"
          if _has(con, "soft_labels") else
          "left join (select null::varchar face_id, null::varchar hard_label, null::varchar difficulty, "
          + ", ".join(f"null::double {c}" for c in SOFT) + ") l using (face_id)")
    md = ("left join (select face_id, yaw, pitch, roll, age, gender from face_metadata) md using (face_id)"
          if _has(con, "face_metadata") else
          "left join (select null::varchar face_id, null::double yaw, null::double pitch, null::double roll, "
          "null::double age, null::varchar gender) md using (face_id)")
    split = ("left join (select item_id as face_id, split from dataset_splits where scheme = 'source' and item_kind = 'face') s "
             "using (face_id)") if _has(con, "dataset_splits") else \
            "left join (select null::varchar face_id, null::varchar split) s using (face_id)"
    return ("select f.face_id, f.sha256, f.crop_sha256, f.x, f.y, f.w, f.h, f.mode, coalesce(u.final_url, u.url) as source_url, "
            "l.hard_label, l.difficulty, " + ", ".join(f"l.{c}" for c in SOFT) + ", md.yaw, md.pitch, md.roll, md.age, md.gender, "
            f"coalesce(s.split, '{UNSPLIT}') as split from faces f left join unique_images u on u.sha256 = f.sha256 "
            f"{sl} {md} {split} order by split, f.face_id")


def _rows(con, sql: str, batch: int = 1000) -> Iterator[dict]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    while True:
        chunk = cur.fetchmany(batch)
        if not chunk:
            return
        for r in chunk:
            yield dict(zip(cols, r))


def _clean(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _image_path(release: Path, sha: str) -> Path:
    return Path(release) / "images" / sha[:2] / sha


def _ext(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:3] == b"GIF":
        return "gif"
    return "bin"


def splits_of(release: Path, collection: str) -> list[str]:
    con = _con(release)
    sql = image_rows_sql(con) if collection == "images" else face_rows_sql(con)
    return [r[0] for r in con.execute(f"select distinct split from ({sql}) order by 1").fetchall()]


def _records(release: Path, collection: str, split: str) -> Iterator[dict]:
    con = _con(release)
    sql = image_rows_sql(con) if collection == "images" else face_rows_sql(con)
    for r in _rows(con, f"select * from ({sql}) where split = '{split}'"):
        yield {k: _clean(v) for k, v in r.items()}


# ---- Hugging Face datasets ----------------------------------------------------------------------

def _hf_features(collection: str):
    import datasets as hf

    if collection == "images":
        return hf.Features({
            "image": hf.Image(), "sha256": hf.Value("string"), "source_url": hf.Value("string"),
            "license": hf.Value("string"), "query": hf.Value("string"), "width": hf.Value("int64"),
            "height": hf.Value("int64"), "emotion8": hf.ClassLabel(names=EMO8), "valence": hf.Value("float64"),
            "arousal": hf.Value("float64"), "p_keep": hf.Value("float64"), "kept": hf.Value("bool")})
    return hf.Features({
        "image": hf.Image(), "face_id": hf.Value("string"), "sha256": hf.Value("string"),
        "source_url": hf.Value("string"), "license": hf.Value("string"),
        "box": hf.Sequence(hf.Value("float64"), length=4), "mode": hf.Value("string"),
        "hard_label": hf.ClassLabel(names=AFFECTNET8), "soft_label": hf.Sequence(hf.Value("float64"), length=8),
        "difficulty": hf.Value("string"), "yaw": hf.Value("float64"), "pitch": hf.Value("float64"),
        "roll": hf.Value("float64"), "age": hf.Value("float64"), "gender": hf.Value("string")})


def _hf_example(release: Path, collection: str, r: dict) -> dict:
    if collection == "images":
        img = _image_path(release, r["sha256"]).read_bytes()
        lab = EMO8.index(r["emotion8"]) if r["emotion8"] in EMO8 else -1
        return {"image": {"bytes": img, "path": None}, "sha256": r["sha256"], "source_url": r["source_url"],
                "license": LICENSE_NOTE, "query": r["query"], "width": r["width"], "height": r["height"],
                "emotion8": lab, "valence": r["valence"], "arousal": r["arousal"], "p_keep": r["p_keep"],
                "kept": r["kept"]}
    img = _image_path(release, r["crop_sha256"]).read_bytes()
    lab = AFFECTNET8.index(r["hard_label"]) if r["hard_label"] in AFFECTNET8 else -1
    soft = [r[c] for c in SOFT]
    return {"image": {"bytes": img, "path": None}, "face_id": r["face_id"], "sha256": r["sha256"],
            "source_url": r["source_url"], "license": LICENSE_NOTE, "box": [r["x"], r["y"], r["w"], r["h"]],
            "mode": r["mode"], "hard_label": lab, "soft_label": soft if all(v is not None for v in soft) else None,
            "difficulty": r["difficulty"], "yaw": r["yaw"], "pitch": r["pitch"], "roll": r["roll"],
            "age": r["age"], "gender": r["gender"]}


def _hf_gen(release: str, collection: str, split: str):
    for r in _records(Path(release), collection, split):
        yield _hf_example(Path(release), collection, r)


def export_hf(release: Path, out: Path, collections: tuple[str, ...] = ("images", "faces")) -> dict:
    """``out/<collection>/``: a DatasetDict per collection (``datasets.load_from_disk``). Returns rows per split."""
    import datasets as hf

    hf.disable_progress_bars()
    counts: dict = {}
    with tempfile.TemporaryDirectory(prefix="hf-cache-") as cache:
        for col in collections:
            parts = {}
            for split in splits_of(release, col):
                ds = hf.Dataset.from_generator(_hf_gen, features=_hf_features(col), cache_dir=cache,
                                               gen_kwargs={"release": str(release), "collection": col, "split": split},
                                               keep_in_memory=False)
                parts[split] = ds
            dd = hf.DatasetDict(parts)
            dd.save_to_disk(str(Path(out) / col))
            counts[col] = {k: len(v) for k, v in parts.items()}
    return counts


# ---- WebDataset ---------------------------------------------------------------------------------

def export_webdataset(release: Path, out: Path, collections: tuple[str, ...] = ("images", "faces"),
                      maxcount: int = 1000) -> dict:
    """Tar shards per collection and split (``webdataset.ShardWriter``); returns samples per split."""
    import webdataset as wds

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict = {}
    for col in collections:
        counts[col] = {}
        for split in splits_of(release, col):
            pattern = str(out / f"{col}-{split}-%06d.tar")
            n = 0
            with wds.ShardWriter(pattern, maxcount=maxcount, verbose=0) as sink:
                for r in _records(Path(release), col, split):
                    sha = r["sha256"] if col == "images" else r["crop_sha256"]
                    data = _image_path(release, sha).read_bytes()
                    key = (r["sha256"] if col == "images" else r["face_id"]).replace(":", "_").replace(".", "_")
                    meta = {k: v for k, v in r.items()}
                    meta["license"] = LICENSE_NOTE
                    sink.write({"__key__": key, _ext(data): data, "json": json.dumps(meta, default=str).encode()})
                    n += 1
            counts[col][split] = n
    return counts


def table_rows(release: Path, name: str) -> int:
    return pq.ParquetFile(Path(release) / "tables" / f"{name}.parquet").metadata.num_rows
