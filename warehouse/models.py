"""The model store: trained models, content-addressed, and what each one is.

``models/<sha256>.pt`` holds a model's bytes (the SHA-256 of the bytes is its address);
``models/<sha256>.json`` says what it is: its ``model_version`` (``<task>-<first 12 hex>``), task,
backbone and extractor key, the training-label snapshot (which annotations, how many), the config
fingerprint, the training key, metrics and ``created_at``. A model is found again by its training
key (task + extractor + label snapshot + config + code version), so a build retrains only when one
of those changed. The ``model_versions`` table (CONTRACT) is rebuilt from the JSON files.

A model may also keep the labels it was trained on, ``models/<sha256>.labels.parquet`` (sha256,
label, heldout), and its ``base_key`` (the training key without the label snapshot): a later build
with a few changed labels finds it by ``find_base`` and compares label sets (ops.training.reuse)
before deciding to train again.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.store import atomic_write_bytes

LABELS_SCHEMA = pa.schema([("sha256", pa.string()), ("label", pa.string()), ("heldout", pa.bool_())])

MODEL_VERSION_COLUMNS = ["model_version", "task", "created_at", "metrics", "label_snapshot", "n_training_labels",
                         "config_fingerprint", "training_key", "backbone", "extractor", "sha256", "path", "details"]


class ModelStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def put(self, data: bytes, meta: dict, labels: pd.DataFrame | None = None) -> dict:
        """Store a trained model; returns its full description (with ``model_version``, ``sha256``).
        ``labels`` (sha256, label, heldout): the training labels, kept beside the model; written
        before the description, so a model that has a description has its labels."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / f"{sha}.pt"
        if not (path.exists() and path.stat().st_size == len(data)):
            atomic_write_bytes(path, data)
        if labels is not None:
            table = pa.Table.from_pandas(labels[LABELS_SCHEMA.names].astype({"sha256": str, "label": str, "heldout": bool}),
                                         schema=LABELS_SCHEMA, preserve_index=False)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            atomic_write_bytes(self.root / f"{sha}.labels.parquet", sink.getvalue().to_pybytes())
        desc = {**meta, "sha256": sha, "model_version": f"{meta['task']}-{sha[:12]}",
                "path": f"models/{sha}.pt", "created_at": meta.get("created_at") or time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_bytes(self.root / f"{sha}.json", json.dumps(desc, indent=1, sort_keys=True, default=str).encode())
        return desc

    def get(self, model_version_or_sha: str) -> tuple[bytes, dict]:
        for d in self.all():
            if model_version_or_sha in (d["model_version"], d["sha256"]):
                return (self.root / f"{d['sha256']}.pt").read_bytes(), d
        raise KeyError(f"no stored model {model_version_or_sha!r} in {self.root}")

    def find(self, task: str, training_key: str) -> dict | None:
        """The newest stored model of ``task`` trained with this training key, if its bytes are intact."""
        hits = [d for d in self.all() if d.get("task") == task and d.get("training_key") == training_key
                and (self.root / f"{d['sha256']}.pt").exists()]
        return max(hits, key=lambda d: d.get("created_at", "")) if hits else None

    def find_base(self, task: str, base_key: str) -> dict | None:
        """The newest stored model of ``task`` with this base key (training key without the label
        snapshot) whose bytes and training labels are intact."""
        hits = [d for d in self.all() if d.get("task") == task and d.get("base_key") == base_key
                and (self.root / f"{d['sha256']}.pt").exists() and (self.root / f"{d['sha256']}.labels.parquet").exists()]
        # created_at has whole seconds: the description's write time breaks ties
        return max(hits, key=lambda d: (d.get("created_at", ""), (self.root / f"{d['sha256']}.json").stat().st_mtime_ns)) \
            if hits else None

    def labels_of(self, desc: dict) -> pd.DataFrame | None:
        """The labels a stored model was trained on (sha256, label, heldout), if it kept them."""
        p = self.root / f"{desc['sha256']}.labels.parquet"
        if not p.exists():
            return None
        return pq.read_table(p, schema=LABELS_SCHEMA).to_pandas()

    def all(self) -> list[dict]:
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def table(self) -> pd.DataFrame:
        """``model_versions``: one row per stored model (metrics and details as JSON text)."""
        rows = []
        for d in self.all():
            row = {c: d.get(c) for c in MODEL_VERSION_COLUMNS}
            row["metrics"] = json.dumps(d.get("metrics", {}), sort_keys=True, default=str)
            row["details"] = json.dumps({k: v for k, v in d.items() if k not in MODEL_VERSION_COLUMNS},
                                        sort_keys=True, default=str)
            rows.append(row)
        df = pd.DataFrame(rows, columns=MODEL_VERSION_COLUMNS)
        return df.sort_values(["created_at", "model_version"]).reset_index(drop=True)
