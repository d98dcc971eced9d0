"""The release asset: the built dataset frozen into an immutable, versioned folder with a manifest,
a datasheet and the changes against the previous version, optionally exported to Hugging Face
``datasets`` and WebDataset (ops.release). ``emoforge release`` does the same from the command line.
"""

import json

from dagster import AssetExecutionContext, MetadataValue, asset

from assets._io import AssetIO, code_version, config_fingerprint, md_table
from assets.annotations import annotation_queue, annotation_stats
from assets.faces import face_metadata, soft_labels
from assets.models import emo8_predictions
from assets.resources import EmoforgeResource
from assets.training import affectnet_baselines, baseline_predictions, cage_baselines, deep_affect_baselines
from ops import release as rel
from ops.config import config_to_yaml
from ops.release import datasheet, exports, freeze

GROUP = "release"


def auto_version(existing: list[str], content: str) -> str:
    """``0.0.<n>-<content>``: the release already made from this content, else the next number (so
    versions order by time and a rebuild on unchanged data finds its release)."""
    same = [v for v in existing if v.endswith(f"-{content}")]
    if same:
        return same[0]
    n = sum(1 for v in existing if v.startswith("0.0.") and "-" in v)
    return f"0.0.{n}-{content}"


@asset(group_name=GROUP, kinds={"parquet"},
       deps=[baseline_predictions, affectnet_baselines, deep_affect_baselines, cage_baselines, soft_labels,
             face_metadata, annotation_stats, annotation_queue, emo8_predictions],   # every table it releases
       code_version=code_version(freeze, datasheet, exports, rel),
       description="An immutable release of the whole dataset under releases/<name>/<version>/: every table as "
                   "Parquet (rows in a fixed order), the images and face crops by content hash, manifest.json (every "
                   "file's SHA-256, row counts, code version, config fingerprint), datasheet.md (every number from the "
                   "tables), changes.json against the previous version; exports in `release.formats`. A release never "
                   "changes: the same data finds the same release, a version with other content is refused.")
def dataset_release(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.release
    io = AssetIO(context, emoforge, cfg)
    names = cfg.tables or io.wh.table_names()
    version = cfg.version or auto_version(io.wh.releases(cfg.name),
                                          rel.content_version(io.wh, names, config_fingerprint(emoforge.settings)))
    out = rel.make_release(io.wh, name=cfg.name, version=version, config_yaml=config_to_yaml(emoforge.settings),
                           config_fingerprint=config_fingerprint(emoforge.settings), formats=cfg.formats, tables=names)
    problems = freeze.verify(out["path"])
    if problems:
        raise RuntimeError(f"release {out['path']} does not match its manifest: {problems[:5]}")
    m = out["manifest"]
    changes = json.loads(out["changes"])
    moved = [{"table": n, **c} for n, c in sorted(changes["tables"].items())
             if any(c.get(k) for k in ("added", "removed", "changed"))] if changes.get("previous") else []
    sheet = (out["path"] / "datasheet.md").read_text()
    md = {"release": MetadataValue.path(str(out["path"])), "version": version, "reused": out["reused"],
          "images": m["n_images"], "tables": MetadataValue.json(m["tables"]),
          "previous": changes.get("previous") or "(first release)",
          "datasheet": MetadataValue.md(sheet)}
    if moved:
        import pandas as pd

        md["changes"] = md_table(pd.DataFrame(moved), max_rows=40)
    for fmt, counts in out["exports"].items():
        md[f"export_{fmt}"] = MetadataValue.json({"path": str(out["export_paths"][fmt]), "rows": counts})
    return io.result(None, items_out=int(sum(m["tables"].values())), **md)
