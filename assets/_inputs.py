"""What a global asset's materialization saw, so that a refresh skips the assets whose inputs did not change.

A refresh (``emoforge build`` on a built data directory) used to run every global stage again: each
re-read its inputs, found most of its work in its caches and rewrote its tables, which cost 7-10 % of
a full demo build with nothing new (bench/results/refresh_every_source.md). Each global asset's
materialization now records

- ``emoforge/inputs_key``: a hash of everything it read: the code (the asset's ``code_version`` and
  the source of the asset, ops, models and warehouse packages, the versions of the libraries that
  compute results), the whole configuration, the files outside the warehouse it reads (annotation
  exports, URL lists, pretrained weights: :data:`EXTERNAL`), and the identity of every upstream asset:
  the content fingerprint of the tables it wrote when it recorded one, else the storage id of its
  latest materialization (one per partition for the scrape batches);
- ``emoforge/outputs``: the files it wrote, relative to the data directory, with size, mtime and
  SHA-256, and ``emoforge/output_fingerprint``, their hash: the identity its consumers see. An
  asset that ran again and wrote the same bytes leaves its consumers' keys unchanged.

``emoforge build`` (pipelines/build.py) computes the key again before a global job and leaves out an
asset when it equals the recorded one, its latest run succeeded (so its blocking checks passed) and
its files are still the ones it wrote. Runs launched from the UI record the same keys, so a build
after a UI launch skips what the UI already did. An explicit ``--select`` or ``--rebuild`` runs what
it names regardless.

Dagster's own staleness ("unsynced" in the UI) follows code versions and data versions of upstream
assets but not the configuration or files outside the asset graph, so the build keeps this key and the
UI shows the same inputs in each materialization's metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ops.hashing import sha256_file

INPUTS_KEY = "emoforge/inputs_key"
OUTPUTS = "emoforge/outputs"
OUTPUT_FINGERPRINT = "emoforge/output_fingerprint"

_PACKAGES = ("emoforge", "torch", "torchvision", "numpy", "pandas", "pyarrow", "duckdb", "scikit-learn", "scipy",
             "imagehash", "pillow", "mediapipe", "onnxruntime", "crowd-kit", "opencv-python-headless")


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def code_identity() -> str:
    """A hash of the source of the packages that compute results and of the library versions: an
    upgrade or an edit anywhere in them reruns every global asset (a refresh never changes them)."""
    from importlib import metadata

    from ops.hashing import source_hash

    def version(name: str) -> str:
        try:
            return f"{name}={metadata.version(name)}"
        except metadata.PackageNotFoundError:
            return f"{name}=absent"

    return source_hash(("assets", "ops", "models", "warehouse"), [version(n) for n in _PACKAGES])


def _stat(path: Path) -> list:
    try:
        st = path.stat()
        return [str(path), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), "missing"]


def _annotation_exports(settings) -> Any:
    from ops.annotations.sources import export_files, exports_fingerprint
    from ops.config.annotations import source_spec

    cfg = settings.annotations
    files = export_files([source_spec(s) for s in cfg.sources], cfg.grading.gold_path and Path(cfg.grading.gold_path))
    return exports_fingerprint(files)


def _url_list(settings) -> Any:
    a = settings.acquisition
    return _stat(Path(a.url_list_spec().path)) if a.provider.kind == "url_list" else None


def _weights(settings) -> Any:
    out = [_stat(Path(b.weights)) for b in settings.models.backbones if b.weights != "train" and Path(b.weights).exists()]
    return {"files": out, "TORCH_HOME": os.environ.get("TORCH_HOME")}


# files outside the warehouse an asset reads: asset name -> settings -> a JSON-able fingerprint
EXTERNAL: dict[str, Callable[[Any], Any]] = {
    "raw_annotations": _annotation_exports,
    "search_queries": _url_list,
    "backbones": _weights,
}


def upstream_identity(instance, key) -> str:
    """What a consumer of ``key`` sees of it now: the content fingerprint its latest materialization
    recorded, else that materialization's storage id; for a partitioned asset, the latest storage id
    of every partition."""
    from dagster._core.events import DagsterEventType

    by_partition = instance.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION)
    if by_partition:
        return "partitions:" + digest(sorted(by_partition.items()))
    recs = instance.fetch_materializations(key, limit=1).records
    if not recs:
        return "never materialized"
    md = recs[0].asset_materialization.metadata if recs[0].asset_materialization else {}
    fp = md.get(OUTPUT_FINGERPRINT)
    return f"content:{fp.value}" if fp is not None else f"storage:{recs[0].storage_id}"


def inputs_key(instance, key, parents: Iterable, code_version: str | None, settings,
               external: Any = None) -> str:
    """The hash of everything the asset ``key`` reads (module docstring). ``external``: the
    fingerprint of its files outside the warehouse, as read (default: :data:`EXTERNAL` now)."""
    name = key.to_user_string()
    if external is None and name in EXTERNAL:
        external = EXTERNAL[name](settings)
    return digest({"asset": name, "code_version": code_version, "code": code_identity(),
                 "config": settings.model_dump(mode="json"), "external": external,
                 "upstream": {p.to_user_string(): upstream_identity(instance, p) for p in sorted(parents, key=str)}})


def outputs_record(root: Path, paths: Iterable[Path]) -> dict[str, dict]:
    """{path relative to the data directory: size, mtime_ns, sha256} of the files an asset wrote."""
    out = {}
    for p in paths:
        p = Path(p)
        st = p.stat()
        rel = str(p.resolve().relative_to(Path(root).resolve())) if p.resolve().is_relative_to(Path(root).resolve()) else str(p)
        out[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(p)}
    return out


def outputs_intact(root: Path, recorded: Mapping[str, Mapping]) -> str | None:
    """None when every recorded file is still the one written, else what differs (a file's size and
    mtime unchanged count as unchanged; otherwise its content is hashed again)."""
    for rel, rec in recorded.items():
        p = Path(rel) if Path(rel).is_absolute() else Path(root) / rel
        try:
            st = p.stat()
        except OSError:
            return f"{rel} is missing"
        if st.st_size == rec.get("size") and st.st_mtime_ns == rec.get("mtime_ns"):
            continue
        if st.st_size != rec.get("size") or sha256_file(p) != rec.get("sha256"):
            return f"{rel} changed since it was written"
    return None


def skip_reason(instance, key, parents: Iterable, code_version: str | None, settings, root: Path) -> str | None:
    """Why the asset ``key`` must run (None: its inputs and outputs are those of its latest successful
    materialization, so running it again would redo the same work)."""
    from dagster import DagsterRunStatus

    recs = instance.fetch_materializations(key, limit=1).records
    if not recs:
        return "never materialized"
    rec = recs[0]
    md = rec.asset_materialization.metadata if rec.asset_materialization else {}
    if INPUTS_KEY not in md or OUTPUTS not in md:
        return "its latest materialization recorded no inputs"
    run = instance.get_run_by_id(rec.run_id)
    if run is None or run.status != DagsterRunStatus.SUCCESS:
        return "its latest run did not succeed"
    if md[INPUTS_KEY].value != inputs_key(instance, key, parents, code_version, settings):
        return "its inputs changed"
    return outputs_intact(root, md[OUTPUTS].value)
