"""Freeze a warehouse into an immutable, versioned release folder, and verify one.

A release (``<data>/releases/<name>/<version>/``, written to a temporary folder and renamed):

    tables/<table>.parquet   every warehouse table (partitions joined), rows in a fixed order
    images/<ab>/<sha256>     every image and face crop the tables reference, by content hash
                             (hard links into the blob store when it is on the same disk)
    datasheet.md             the datasheet, every number from the tables (ops.release.datasheet)
    pictures/*.png           contact sheets (ops.pictures) the datasheet shows
    config.yaml              the configuration that built the data
    changes.json             what changed against the previous version of the same name
    manifest.json            every other file with its SHA-256 and size, row counts per table,
                             the code version and the configuration's fingerprint

Deterministic: the same data gives byte-identical files (rows sorted by the table's key, no wall
clock anywhere: ``data_as_of`` is the newest first_seen of an image). Immutable: files are made
read-only; writing a version that exists is refused unless its content is identical (then the
existing release is returned, so the asset or the CLI may run twice). ``verify`` checks a release
against its manifest (missing, extra, altered files; row counts).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ops.hashing import sha256_file

FORMAT = "emoforge-release-1"

# key columns per table (rows sorted by them; changes are counted per key); other tables: whole rows
TABLE_KEYS: dict[str, list[str]] = {
    "unique_images": ["sha256"], "duplicate_groups": ["sha256"], "image_hashes": ["sha256", "batch"],
    "downloaded_images": ["candidate_id"], "candidate_urls": ["candidate_id"], "search_results": ["query_id", "rank"],
    "annotations": ["source", "image_id", "annotator_id", "source_index"], "merged_annotations": ["taxonomy", "image_id"],
    "faces": ["face_id"], "face_metadata": ["face_id"], "soft_labels": ["face_id"], "mas_split": ["face_id"],
    "face_status": ["sha256", "mode"], "dataset_splits": ["scheme", "item_id"], "kept_images": ["sha256"],
    "keep_predictions": ["sha256"], "emo8_predictions": ["sha256"], "baseline_predictions": ["sha256"],
    "training_runs": ["run_id"], "model_versions": ["model_version"],
}
# the label columns of a table: a row whose key stays but whose label changes is "relabelled"
LABEL_COLUMNS: dict[str, list[str]] = {
    "merged_annotations": ["emotion8", "emotion24", "emotion", "keep_majority"],
    "soft_labels": ["hard_label", "difficulty"], "kept_images": ["kept"], "dataset_splits": ["split"],
    "emo8_predictions": ["emotion8"], "baseline_predictions": ["predicted"],
}
IMAGE_COLUMNS = {"unique_images": ["sha256"], "faces": ["crop_sha256"]}


@dataclass
class Release:
    path: Path
    manifest: dict
    reused: bool = False
    problems: list[str] = field(default_factory=list)


def _sortable(t: pa.Table, keys: list[str]) -> list[str]:
    ok = [k for k in keys if k in t.column_names]
    if ok:
        return ok
    return [n for n, f in zip(t.column_names, t.schema) if not (pa.types.is_nested(f.type) or pa.types.is_null(f.type))]


def canonical(name: str, t: pa.Table) -> pa.Table:
    """Rows in a fixed order (the table's key, else every sortable column), schema metadata dropped."""
    keys = _sortable(t, TABLE_KEYS.get(name, []))
    if keys and t.num_rows:
        t = t.take(pc.sort_indices(t, sort_keys=[(k, "ascending") for k in keys]))
    return t.replace_schema_metadata(None)


def _row_hashes(t: pa.Table, *colsets: list[str]) -> list[list]:
    """For each list of columns, one 64-bit hash per row, in row order: DuckDB's vectorised ``hash``
    over the columns, nested ones included (a Python JSON encoding of every row made ``changes.json``
    most of a release's time). An empty list hashes every row to 0."""
    import duckdb

    if t.num_rows == 0:
        return [[] for _ in colsets]
    quoted = [", ".join('"' + c.replace('"', '""') + '"' for c in cols) for cols in colsets]
    select = ", ".join(f"hash({q}) as h{i}" if q else f"0::ubigint as h{i}" for i, q in enumerate(quoted))
    con = duckdb.connect()
    try:
        con.register("rows_to_hash", t)
        out = con.execute(f"select {select} from rows_to_hash").fetchnumpy()
        return [out[f"h{i}"].tolist() for i in range(len(colsets))]
    finally:
        con.close()


def table_changes(name: str, old: pa.Table | None, new: pa.Table) -> dict:
    """Rows added, removed, changed (and relabelled: a label column changed) between two versions."""
    if old is None:
        return {"added": new.num_rows, "removed": 0, "changed": 0, "relabelled": 0, "new_table": True}
    if old.schema.remove_metadata() == new.schema.remove_metadata() and old.equals(new):
        return {"added": 0, "removed": 0, "changed": 0, "relabelled": 0}   # the same rows in the same order
    keys = [k for k in TABLE_KEYS.get(name, []) if k in new.column_names and k in old.column_names]
    common = [c for c in new.column_names if c in old.column_names]
    if not keys:
        a, b = set(_row_hashes(old, common)[0]), set(_row_hashes(new, common)[0])
        return {"added": len(b - a), "removed": len(a - b), "changed": 0, "relabelled": 0}
    labels = [c for c in LABEL_COLUMNS.get(name, []) if c in common]

    def index(t):
        k, rows, lab = _row_hashes(t, keys, common, labels)
        return dict(zip(k, zip(rows, lab)))
    a, b = index(old), index(new)
    both = a.keys() & b.keys()
    return {"added": len(b.keys() - a.keys()), "removed": len(a.keys() - b.keys()),
            "changed": sum(a[k][0] != b[k][0] for k in both),
            "relabelled": sum(a[k][1] != b[k][1] for k in both) if labels else 0}


def referenced_images(tables: Mapping[str, pa.Table]) -> list[str]:
    shas: set[str] = set()
    for name, cols in IMAGE_COLUMNS.items():
        t = tables.get(name)
        for c in cols:
            if t is not None and c in t.column_names:
                shas.update(x for x in t.column(c).to_pylist() if isinstance(x, str))
    return sorted(shas)


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_release(dest: Path, *, name: str, version: str, tables: Mapping[str, pa.Table],
                  blob_path: Callable[[str], Path], datasheet: Callable[[Mapping[str, pa.Table]], str],
                  config_yaml: str, config_fingerprint: str, code_version: str,
                  previous: Path | None = None, progress: Callable[[int, int], None] | None = None,
                  pictures: Callable[[Mapping[str, pa.Table]], Mapping[str, bytes]] | None = None) -> Release:
    """Write release ``name`` ``version`` to ``dest`` (see the module docstring)."""
    tables = {n: canonical(n, t) for n, t in sorted(tables.items())}
    shas = referenced_images(tables)
    missing = [s for s in shas if not blob_path(s).exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} referenced images are not in the blob store, e.g. {missing[0]} "
                                f"(expected at {blob_path(missing[0])})")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=dest.parent))
    try:
        (tmp / "tables").mkdir()
        rows = {}
        for n, t in tables.items():
            pq.write_table(t, tmp / "tables" / f"{n}.parquet", compression="zstd")
            rows[n] = t.num_rows
        for i, s in enumerate(shas):
            _link(blob_path(s), tmp / "images" / s[:2] / s)
            if progress and (i % 500 == 0 or i + 1 == len(shas)):
                progress(i + 1, len(shas))
        drawn = dict(pictures(tables)) if pictures else {}
        if drawn:
            (tmp / "pictures").mkdir()
            for n, png in sorted(drawn.items()):
                (tmp / "pictures" / f"{n}.png").write_bytes(png)
        sheet = datasheet(tables)
        if drawn:
            sheet += "\n## Pictures\n\n" + "".join(f"![{n}](pictures/{n}.png)\n\n" for n in sorted(drawn))
        (tmp / "datasheet.md").write_text(sheet)
        (tmp / "config.yaml").write_text(config_yaml)
        changes = _changes(previous, tables)
        (tmp / "changes.json").write_text(json.dumps(changes, indent=1, sort_keys=True))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "format": FORMAT, "name": name, "version": version, "code_version": code_version,
            "config_fingerprint": config_fingerprint, "previous": previous.name if previous else None,
            "data_as_of": _data_as_of(tables), "n_images": len(shas), "tables": rows,
            "files": {str(p.relative_to(tmp)): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if dest.exists():
            old = json.loads((dest / "manifest.json").read_text()) if (dest / "manifest.json").exists() else None
            if old is not None and old.get("files") == manifest["files"]:
                shutil.rmtree(tmp)
                return Release(dest, old, reused=True)
            raise FileExistsError(f"release {name} {version} exists at {dest} with other content: releases never "
                                  f"change; choose a new version")
        for p in files + [tmp / "manifest.json"]:
            # images are hard links to the blobs, which are never modified in place either (a blob is
            # replaced by rename when rewritten), so read-only suits both
            p.chmod(0o444)
        os.replace(tmp, dest)
        return Release(dest, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _data_as_of(tables: Mapping[str, pa.Table]) -> str | None:
    t = tables.get("unique_images")
    if t is None or "first_seen" not in t.column_names or t.num_rows == 0:
        return None
    v = pc.max(t.column("first_seen")).as_py()
    return str(v) if v is not None else None


def _changes(previous: Path | None, tables: Mapping[str, pa.Table]) -> dict:
    if previous is None:
        return {"previous": None, "tables": {n: table_changes(n, None, t) for n, t in tables.items()}}
    out = {}
    for n, t in tables.items():
        f = previous / "tables" / f"{n}.parquet"
        out[n] = table_changes(n, pq.read_table(f) if f.exists() else None, t)
    gone = sorted(p.stem for p in (previous / "tables").glob("*.parquet") if p.stem not in tables)
    return {"previous": previous.name, "tables": out, "removed_tables": gone}


def verify(path: Path) -> list[str]:
    """Problems of a release against its manifest (empty = intact)."""
    path = Path(path)
    mf = path / "manifest.json"
    if not mf.exists():
        return [f"{mf}: no manifest (not a release, or an incomplete one)"]
    manifest = json.loads(mf.read_text())
    problems = []
    listed = manifest.get("files", {})
    present = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} - {"manifest.json"}
    for rel in sorted(present - listed.keys()):
        problems.append(f"{rel}: not in the manifest")
    for rel, info in sorted(listed.items()):
        p = path / rel
        if not p.exists():
            problems.append(f"{rel}: missing")
        elif p.stat().st_size != info["bytes"] or sha256_file(p) != info["sha256"]:
            problems.append(f"{rel}: content differs from the manifest (sha256 {info['sha256'][:12]}…)")
    for n, rows in manifest.get("tables", {}).items():
        f = path / "tables" / f"{n}.parquet"
        if f.exists():
            try:
                got = pq.ParquetFile(f).metadata.num_rows
            except Exception as e:  # noqa: BLE001 - a corrupt file is a finding, not a crash
                problems.append(f"tables/{n}.parquet: unreadable ({type(e).__name__}: {e})")
                continue
            if got != rows:
                problems.append(f"tables/{n}.parquet: {got} rows, manifest says {rows}")
    return problems


def table_iter(path: Path) -> Iterable[tuple[str, pa.Table]]:
    for f in sorted((Path(path) / "tables").glob("*.parquet")):
        yield f.stem, pq.read_table(f)
