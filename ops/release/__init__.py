"""Releases of a built dataset: an immutable, versioned folder with a manifest and a datasheet
(``freeze``, ``datasheet``), and exports of a release to Hugging Face ``datasets`` and WebDataset
shards (``exports``). ``make_release`` is what the CLI and the ``dataset_release`` asset call.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

import pyarrow as pa

from ops.hashing import source_hash

from ops.release import datasheet, exports, freeze

FORMATS = ("hf", "webdataset")
# per-build bookkeeping, not facts about the dataset: whether a baseline run was trained in this
# build or found again in the model store flips on every rebuild. Left out of a release's tables and
# of its content version, so a rebuild on unchanged data finds its release again.
BOOKKEEPING_COLUMNS = {"training_runs": ("trained_now",)}
# released, but not part of the content version: a download that failed transiently is tried again
# by the next builds (download.max_build_attempts) and each try rewrites when and how long it took
# and how often it was tried. A release of the same data with other retry timings is the same release.
VOLATILE_COLUMNS = {"downloaded_images": ("attempts", "elapsed_s", "downloaded_at", "build_attempts")}


def release_table(wh, name: str) -> pa.Table:
    """Table ``name`` as a release holds it (without BOOKKEEPING_COLUMNS)."""
    t = wh.read_arrow(name)
    drop = [c for c in BOOKKEEPING_COLUMNS.get(name, ()) if c in t.column_names]
    return t.drop_columns(drop) if drop else t


def content_version(wh, names: Sequence[str], config_fingerprint: str) -> str:
    """A version naming what a release of ``names`` would hold: the tables' rows as released, the
    code version and the config (all three are in the manifest, so any change of one is a new
    release, never a clash)."""
    h = hashlib.sha256(f"{code_version()}|{config_fingerprint}".encode())
    for n in sorted(names):
        if not wh.has_table(n):
            continue
        t = release_table(wh, n)
        t = t.drop_columns([c for c in VOLATILE_COLUMNS.get(n, ()) if c in t.column_names])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        h.update(n.encode())
        h.update(hashlib.sha256(sink.getvalue()).digest())
    return h.hexdigest()[:12]


def version_key(version: str) -> tuple:
    """Order of release versions: numbers compare as numbers (1.10.0 after 1.9.0), text as text."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|[^\d.\-_+=]+", version))


def code_version() -> str:
    """A hash of the source that computes the data (ops/, models/, warehouse/), stable across machines."""
    return source_hash(("ops", "models", "warehouse"))


def make_release(wh, *, name: str, version: str, config_yaml: str, config_fingerprint: str,
                 formats: Sequence[str] = (), tables: Sequence[str] | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Freeze the warehouse ``wh`` as release ``name`` ``version`` and export it in ``formats``.

    Returns {path, manifest, reused, changes, exports: {format: {collection: {split: rows}}}}."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown export formats {bad}; known: {list(FORMATS)}")
    names = list(tables) if tables else wh.table_names()
    if not names:
        raise FileNotFoundError(f"no tables in the warehouse at {wh.root}: build the dataset first")
    missing = [n for n in names if not wh.has_table(n)]
    if missing:
        raise FileNotFoundError(f"tables {missing} are not in the warehouse at {wh.root}: build them first")
    data = {n: release_table(wh, n) for n in names}
    earlier = sorted((v for v in wh.releases(name) if version_key(v) < version_key(version)), key=version_key)
    previous = wh.release_path(name, earlier[-1]) if earlier else None   # the newest version below this one
    cv = code_version()

    def sheet(t):
        return datasheet.build_datasheet(t, name=name, version=version, config_fingerprint=config_fingerprint,
                                         code_version=cv)
    def draw(t):
        return release_pictures(t, wh.blobs.path, wh.thumbnail_path)
    rel = freeze.write_release(wh.release_path(name, version), name=name, version=version, tables=data,
                               blob_path=wh.blobs.path, datasheet=sheet, config_yaml=config_yaml,
                               config_fingerprint=config_fingerprint, code_version=cv, previous=previous,
                               progress=(lambda i, n: progress("images", i, n)) if progress else None,
                               pictures=draw)
    out = {"path": rel.path, "manifest": rel.manifest, "reused": rel.reused,
           "changes": (rel.path / "changes.json").read_text(), "exports": {}}
    for fmt in formats:
        dest = wh.release_export_path(name, version, fmt)
        if fmt == "hf":
            out["exports"][fmt] = exports.export_hf(rel.path, dest)
        else:
            out["exports"][fmt] = exports.export_webdataset(rel.path, dest)
        out.setdefault("export_paths", {})[fmt] = dest
    return out


def release_pictures(tables, blob_path, thumb_path) -> dict[str, bytes]:
    """The contact sheets of a release (ops.pictures), for the tables it has."""
    from ops import pictures

    out = {}
    t = {n: tables[n].to_pandas() for n in ("duplicate_groups", "kept_images", "soft_labels") if n in tables}
    if "duplicate_groups" in t and {"group_size", "is_representative"} <= set(t["duplicate_groups"].columns):
        out["near_duplicates"] = pictures.near_duplicate_sheet(t["duplicate_groups"], blob_path, thumb_path)
    if "kept_images" in t and {"p_keep", "kept"} <= set(t["kept_images"].columns):
        out["keep_reject"] = pictures.keep_reject_sheet(t["kept_images"], blob_path, thumb_path)
    if "soft_labels" in t and {"crop_sha256", "difficulty", "hard_label"} <= set(t["soft_labels"].columns):
        out["faces_by_subset"] = pictures.faces_by_subset_sheet(
            t["soft_labels"], [c.lower() for c in exports.AFFECTNET8], blob_path, thumb_path)
    return {k: v for k, v in out.items() if v}
