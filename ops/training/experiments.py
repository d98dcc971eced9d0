"""Baseline experiments: which runs a build makes, running (or finding again) each one, and the
tables they fill (``training_runs``, ``run_metrics``, ``learning_curves``; CONTRACT of DESIGN.md).

A plan is a list of :class:`Planned` runs (the run's identity, its training labels' snapshot, the
options that define it, and a closure that trains it). :func:`execute` looks the run up in the model
store by its training key and trains only when it is not there, so a rebuild with unchanged labels,
features and settings reproduces every table without training, and a new scrape batch costs nothing
here. A run that cannot train (a class without training samples…) gets a row with status ``failed``
and the reason, never a missing row.

Plans (the paper sections are in ``ops.training.baselines``): :func:`findingemo_plan`,
:func:`affectnet_plan`, :func:`deep_affect_plan`, :func:`cage_plan`. Features come in as
``{extractor id: (extractor key, X, found)}`` aligned with the items, so this module never knows
where files live.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from ops.training import baselines as B
from ops.training.labels import snapshot, training_key
from ops.training.loop import zscore
from ops.training.reuse import LabelBudget, fit_or_reuse
from ops.training.tasks import arousal_to_1_9, get_task, valence_to_1_9

S, F64, I64 = pa.string(), pa.float64(), pa.int64()
RUNS_SCHEMA = pa.schema([
    ("run_id", S), ("family", S), ("task", S), ("model_kind", S), ("extractor_id", S), ("extractor", S),
    ("loss", S), ("lr", F64), ("seed", I64), ("scheme", S), ("eval_split", S), ("status", S), ("reason", S),
    ("epochs", I64), ("best_epoch", I64), ("stop_reason", S), ("n_train", I64), ("n_eval", I64),
    ("model_version", S), ("label_snapshot", S), ("config_fingerprint", S), ("seconds", F64),
    ("trained_now", pa.bool_()), ("labels_changed_since_training", F64),
])
RUN_METRICS_SCHEMA = pa.schema([("run_id", S), ("split", S), ("subset", S), ("metric", S), ("class", S),
                                ("value", F64)])
CURVES_SCHEMA = pa.schema([("run_id", S), ("epoch", I64), ("lr", F64), ("train_loss", F64), ("metric", S),
                           ("value", F64)])
CODE = "experiments-2"   # bump when a run's computation changes for the same inputs

Features = Mapping[str, tuple[str, np.ndarray, np.ndarray]]   # id -> (extractor key, X (N, d), found (N,))


@dataclass(frozen=True)
class RunSpec:
    family: str           # findingemo | affectnet_plus | deep_affect | cage
    task: str             # emo8 | arousal3 | valence3 | hard_fer | soft_fer | va | joint | va_only
    model_kind: str       # linear | dffn_shared | dffn_split | cage_joint | cage_va
    extractor_id: str
    loss: str | None
    lr: float
    seed: int
    scheme: str
    eval_split: str

    @property
    def run_id(self) -> str:
        loss = f"/{self.loss}" if self.loss else ""
        return (f"{self.family}/{self.task}/{self.model_kind}/{self.extractor_id}{loss}/lr{self.lr:g}"
                f"/seed{self.seed}/{self.scheme}:{self.eval_split}")

    @property
    def store_task(self) -> str:
        return f"{self.family}-{self.task}"


@dataclass
class Planned:
    spec: RunSpec
    extractor: str
    label_snapshot: str
    options: dict
    train: Callable[[], B.RunOutput]
    labels: pd.DataFrame | None = None    # sha256, label, split: what the snapshot hashes (ops.training.reuse)


# ---- running -----------------------------------------------------------------------------------

def _envelope(out: B.RunOutput) -> bytes:
    """A run as stored: the model's bytes, metrics, curve and run facts. Pickle protocol 4 stores the
    model's bytes as they are; torch.save's default (2) turns them into a latin-1 string and back,
    which made reading a 16 MB Deep Affect run take 115 ms instead of 6 ms (a refresh reads every
    kept run)."""
    buf = io.BytesIO()
    torch.save({"model": out.model_bytes, "metrics": out.metrics.to_dict("list"), "curve": out.curve.to_dict("list"),
                "run": {"best_epoch": out.best_epoch, "epochs": out.epochs, "stop_reason": out.stop_reason,
                        "seconds": out.seconds, "n_train": out.n_train, "n_eval": out.n_eval, "details": out.details}},
               buf, pickle_protocol=4)
    return buf.getvalue()


def open_envelope(data: bytes) -> dict:
    """A stored run: model (bytes for ``baselines.load``), metrics and curve (frames), run facts."""
    env = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    env["metrics"] = pd.DataFrame(env["metrics"], columns=B.METRIC_COLUMNS)
    env["curve"] = pd.DataFrame(env["curve"])
    return env


def _summary(metrics: pd.DataFrame) -> dict:
    overall = metrics[metrics["class"].isna() & (metrics["subset"].isna() | (metrics["subset"] == "All"))]
    return {f"{r.split}:{r.metric}": round(float(r.value), 6) for r in overall.itertuples()}


def _budget(p: Planned, conf: str, max_change: float) -> LabelBudget | None:
    """The run's label budget: its labels, held out = in the split it is evaluated on."""
    if p.labels is None:
        return None
    lab = pd.DataFrame({"sha256": p.labels["sha256"].astype(str), "label": p.labels["label"].astype(str),
                        "heldout": (p.labels["split"].astype(str) == p.spec.eval_split).to_numpy()})
    return LabelBudget(training_key(CODE, p.spec.run_id, p.extractor, conf), lab, max_change)


def execute(plan: Iterable[Planned], store, log: Callable[[str], None] | None = None, max_change: float = 0.0
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run (or find again) every planned run: (training_runs, run_metrics, learning_curves).
    ``max_change``: a stored run of the same configuration is kept while at most this share of its
    labels changed and none of its training images is now in its evaluation split (ops.training.reuse);
    the row says by how much its labels moved (``labels_changed_since_training``)."""
    runs, metrics, curves = [], [], []
    for p in plan:
        s = p.spec
        conf = training_key(json.dumps(p.options, sort_keys=True, default=str))
        key = training_key(CODE, s.run_id, p.extractor, p.label_snapshot, conf)
        row = {**{k: v for k, v in asdict(s).items()}, "run_id": s.run_id, "extractor": p.extractor,
               "label_snapshot": p.label_snapshot, "config_fingerprint": conf, "status": "ok", "reason": None,
               "trained_now": False, "labels_changed_since_training": 0.0}
        t0 = time.perf_counter()

        def fit_fn(p=p):
            out = p.train()
            meta = {"backbone": p.spec.extractor_id, "extractor": p.extractor, "label_snapshot": p.label_snapshot,
                    "n_training_labels": out.n_train, "config_fingerprint": conf,
                    "metrics": _summary(out.metrics), "run_id": p.spec.run_id}
            return _envelope(out), meta
        try:
            desc, new = fit_or_reuse(store, s.store_task, key, fit_fn, _budget(p, conf, max_change))
        except (ValueError, FloatingPointError) as e:
            runs.append({**row, "status": "failed", "reason": f"{type(e).__name__}: {e}"[:500],
                         "seconds": time.perf_counter() - t0})
            if log:
                log(f"{s.run_id}: failed: {e}")
            continue
        env = open_envelope(store.get(desc["model_version"])[0])
        r = env["run"]
        if "label_budget" in desc:
            row["label_snapshot"] = desc.get("label_snapshot")     # the labels the kept model was trained on
            row["labels_changed_since_training"] = float(desc["label_budget"]["fraction"])
        runs.append({**row, "model_version": desc["model_version"], "trained_now": bool(new),
                     "epochs": r["epochs"], "best_epoch": r["best_epoch"], "stop_reason": r["stop_reason"],
                     "n_train": r["n_train"], "n_eval": r["n_eval"], "seconds": float(r["seconds"])})
        metrics.append(env["metrics"].assign(run_id=s.run_id))
        c = env["curve"]
        if len(c):
            long = c.melt(id_vars=["epoch", "lr", "train_loss"], var_name="metric", value_name="value")
            curves.append(long.assign(run_id=s.run_id))
    return (_frame(runs, RUNS_SCHEMA), _frame(metrics, RUN_METRICS_SCHEMA, concat=True),
            _frame(curves, CURVES_SCHEMA, concat=True))


def _frame(parts, schema: pa.Schema, concat: bool = False) -> pd.DataFrame:
    if concat:
        df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=schema.names)
    else:
        df = pd.DataFrame(parts, columns=schema.names) if parts else pd.DataFrame(columns=schema.names)
    for f in schema:
        if f.name not in df.columns:
            df[f.name] = None
        if pa.types.is_integer(f.type):
            df[f.name] = pd.array(df[f.name], dtype="Int64")
        elif pa.types.is_floating(f.type):
            df[f.name] = pd.to_numeric(df[f.name], errors="coerce").astype(float)
        elif pa.types.is_boolean(f.type):
            df[f.name] = df[f.name].astype("boolean")
        else:
            df[f.name] = df[f.name].astype(object).where(df[f.name].notna(), None)
    return df[schema.names].reset_index(drop=True)


# ---- plans -------------------------------------------------------------------------------------

def _usable(features: Features, ids: Sequence[str] | None) -> dict:
    if ids:
        missing = [i for i in ids if i not in features]
        if missing:
            raise ValueError(f"no features for extractors {missing} (have: {sorted(features)})")
        return {i: features[i] for i in ids}
    return dict(features)


def findingemo_plan(items: pd.DataFrame, features: Features, *, tasks: Sequence[str], losses: Sequence[str],
                    lrs: Sequence[float], runs: int, max_epochs: int, patience: int, batch_size: int,
                    monitor: str, uce_penalty: str, device: str, extractors: Sequence[str] | None = None,
                    scheme: str = "findingemo_80_20") -> list[Planned]:
    """FindingEmo §3: items (sha256, emotion8, valence, arousal, split train/test) × extractors × tasks
    × losses × learning rates × seeds. An item without the task's label or without features is left
    out of that run (Arousal3 and Valence3 use every kept image with ratings, Emo8 those with a leaf)."""
    plan = []
    for ex_id, (ex_key, X, found) in _usable(features, extractors).items():
        for task_name in tasks:
            task = get_task(task_name)
            col = {"emo8": "emotion8", "arousal3": "arousal", "valence3": "valence"}[task.name]
            ok = found & items[col].notna().to_numpy() & items["split"].isin(["train", "test"]).to_numpy()
            sub = items[ok]
            y = task.encode(sub[col].tolist())
            is_test = (sub["split"] == "test").to_numpy()
            lab = pd.DataFrame({"sha256": sub["sha256"].astype(str).to_numpy(), "label": [f"{a}|{b}" for a, b in zip(y, sub["split"])],
                                "split": sub["split"].astype(str).to_numpy()})
            snap = snapshot(lab)
            Xs = X[ok]
            for loss in losses:
                for lr in lrs:
                    for seed in range(runs):
                        spec = RunSpec("findingemo", task.name, "linear", ex_id, loss, float(lr), seed, scheme, "test")
                        opts = {"max_epochs": max_epochs, "patience": patience, "batch_size": batch_size,
                                "monitor": monitor, "penalty": uce_penalty}
                        plan.append(Planned(spec, ex_key, snap, opts, lambda Xs=Xs, y=y, t=is_test, task=task, loss=loss,
                                            lr=lr, seed=seed: B.findingemo_run(
                                                Xs, y, t, task, loss, lr, seed, max_epochs=max_epochs, patience=patience,
                                                batch_size=batch_size, monitor=monitor, penalty=uce_penalty,
                                                device=device), lab))
    return plan


def affectnet_plan(faces: pd.DataFrame, features: Features, classes: Sequence[str], *, kinds: Sequence[str],
                   lr: float, runs: int, max_epochs: int, patience: int, batch_size: int, device: str,
                   train_split: str, eval_split: str, scheme: str, extractors: Sequence[str] | None = None
                   ) -> list[Planned]:
    """AffectNet+ §4.3: faces (face_id, hard_label, difficulty, split, soft label columns = classes
    lower-cased) with a hard label and a split in (train_split, eval_split)."""
    soft_cols = [c.lower() for c in classes]
    plan = []
    for ex_id, (ex_key, X, found) in _usable(features, extractors).items():
        ok = (found & faces["hard_label"].isin(classes).to_numpy()
              & faces["split"].isin([train_split, eval_split]).to_numpy())
        sub = faces[ok]
        y = np.array([list(classes).index(c) for c in sub["hard_label"]], dtype=np.int64)
        is_eval = (sub["split"] == eval_split).to_numpy()
        diff = sub["difficulty"].to_numpy(dtype=object)
        soft = sub[soft_cols].to_numpy(dtype=np.float32)
        lab = pd.DataFrame({"sha256": sub["face_id"].astype(str).to_numpy(), "label": [
            f"{a}|{b}|{c}|{','.join(f'{v:.4f}' for v in s)}" for a, b, c, s in zip(y, sub["split"], diff, soft)],
            "split": sub["split"].astype(str).to_numpy()})
        snap = snapshot(lab)
        Xs = X[ok]
        for kind in kinds:
            for seed in range(runs):
                spec = RunSpec("affectnet_plus", kind, "linear", ex_id, "weighted_ce" if kind == "hard_fer" else "mse",
                               float(lr), seed, scheme, eval_split)
                opts = {"max_epochs": max_epochs, "patience": patience, "batch_size": batch_size}
                if kind == "hard_fer":
                    train = (lambda Xs=Xs, y=y, e=is_eval, d=diff, seed=seed: B.hard_fer_run(
                        Xs, y, e, d, classes, lr, seed, max_epochs=max_epochs, patience=patience,
                        batch_size=batch_size, device=device))
                else:
                    train = (lambda Xs=Xs, s=soft, y=y, e=is_eval, d=diff, seed=seed: B.soft_fer_run(
                        Xs, s, y, e, d, classes, lr, seed, max_epochs=max_epochs, patience=patience,
                        batch_size=batch_size, device=device))
                plan.append(Planned(spec, ex_key, snap, opts, train, lab))
    return plan


def deep_affect_plan(items: pd.DataFrame, groups: Mapping[str, Mapping[str, tuple[str, np.ndarray, np.ndarray]]], *,
                     architectures: Sequence[str], hidden: Sequence[int], dropout: float, lr: float,
                     batch_size: int, max_epochs: int, runs: int, device: str, scheme: str) -> list[Planned]:
    """Deep Affect §2.2–2.4: items (sha256, valence, arousal, split = fold0…) with both ratings;
    ``groups``: feature set name → {group name: (key, X, found)}; one run per (set, architecture,
    seed, fold): train on the other folds, MSE on this one. V/A on 1–9 (§2.1)."""
    plan = []
    for set_name, members in groups.items():
        found = np.all([f for _, _, f in members.values()], axis=0) if members else np.zeros(len(items), bool)
        ok = found & items["valence"].notna().to_numpy() & items["arousal"].notna().to_numpy() & items["split"].notna().to_numpy()
        sub = items[ok]
        va = np.c_[valence_to_1_9(sub["valence"].to_numpy(float)), arousal_to_1_9(sub["arousal"].to_numpy(float))]
        feats = {g: X[ok] for g, (_, X, _) in members.items()}
        keys = ",".join(f"{g}={k}" for g, (k, _, _) in members.items())
        lab = pd.DataFrame({"sha256": sub["sha256"].astype(str).to_numpy(),
                            "label": [f"{a:.4f}|{b:.4f}|{c}" for (a, b), c in zip(va, sub["split"])],
                            "split": sub["split"].astype(str).to_numpy()})
        snap = snapshot(lab)
        for arch in architectures:
            for seed in range(runs):
                for fold in sorted(sub["split"].unique()):
                    is_eval = (sub["split"] == fold).to_numpy()
                    spec = RunSpec("deep_affect", "va", f"dffn_{arch}", set_name, "mse", float(lr), seed, scheme, fold)
                    opts = {"hidden": list(hidden), "dropout": dropout, "batch_size": batch_size, "max_epochs": max_epochs}
                    plan.append(Planned(spec, keys, snap, opts, lambda f=feats, va=va, e=is_eval, arch=arch, seed=seed, fold=fold:
                                        B.deep_affect_run(f, va, e, seed, architecture=arch, lr=lr, max_epochs=max_epochs,
                                                          batch_size=batch_size, hidden=hidden, dropout=dropout,
                                                          device=device, split_name=fold), lab))
    return plan


def cage_plan(items: pd.DataFrame, features: Features, classes: Sequence[str], *, kinds: Sequence[str], alpha: float,
              beta: float, lr: float, runs: int, max_epochs: int, patience: int, batch_size: int, device: str,
              scheme: str, extractors: Sequence[str] | None = None) -> list[Planned]:
    """CAGE §4.1–4.3 on items with an expression (emotion8) and both ratings, valence −3..3 and arousal
    0..6 mapped affinely onto CAGE's [−1, 1] (§3.1: AffectNet's range)."""
    plan = []
    for ex_id, (ex_key, X, found) in _usable(features, extractors).items():
        ok = (found & items["emotion8"].isin(classes).to_numpy() & items["valence"].notna().to_numpy()
              & items["arousal"].notna().to_numpy() & items["split"].isin(["train", "test"]).to_numpy())
        sub = items[ok]
        va = np.c_[sub["valence"].to_numpy(float) / 3.0, (sub["arousal"].to_numpy(float) - 3.0) / 3.0].astype(np.float32)
        y = np.array([list(classes).index(c) for c in sub["emotion8"]], dtype=np.int64)
        is_eval = (sub["split"] == "test").to_numpy()
        lab = pd.DataFrame({"sha256": sub["sha256"].astype(str).to_numpy(),
                            "label": [f"{a}|{v[0]:.4f}|{v[1]:.4f}|{s}" for a, v, s in zip(y, va, sub["split"])],
                            "split": sub["split"].astype(str).to_numpy()})
        snap = snapshot(lab)
        Xs = X[ok]
        for kind in kinds:
            for seed in range(runs):
                spec = RunSpec("cage", kind, f"cage_{kind}", ex_id, "wce+mse" if kind == "joint" else "ccc+mse",
                               float(lr), seed, scheme, "test")
                opts = {"alpha": alpha, "beta": beta, "max_epochs": max_epochs, "patience": patience, "batch_size": batch_size}
                plan.append(Planned(spec, ex_key, snap, opts, lambda Xs=Xs, y=y, va=va, e=is_eval, kind=kind, seed=seed:
                                    B.cage_run(Xs, y, va, e, classes, kind, lr, seed, alpha=alpha, beta=beta,
                                               max_epochs=max_epochs, patience=patience, batch_size=batch_size,
                                               device=device), lab))
    return plan


# ---- predictions with a registered model ---------------------------------------------------------

def predict(model_bytes: bytes, X: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Class probabilities of a stored linear-head run (FindingEmo or Hard-FER) for features X."""
    from models.heads import make_head

    env = open_envelope(model_bytes)
    saved = B.load(env["model"])
    if "config" not in saved or "classes" not in saved:
        raise ValueError(f"model of task {saved.get('task')!r} is not a classifier with a linear head")
    head = make_head(**saved["config"])
    head.load_state_dict(saved["state_dict"])
    head.eval()
    Z = zscore(X, saved["mean"], saved["std"])
    with torch.no_grad():
        p = torch.softmax(head(torch.as_tensor(Z)), 1).numpy()
    return list(saved["classes"]), p


PREDICTIONS_SCHEMA = pa.schema([("sha256", S), ("task", S), ("model_version", S), ("predicted", S),
                                ("probability", F64), ("classes", pa.list_(S)), ("probabilities", pa.list_(F64))])


def prediction_rows(model_bytes: bytes, shas: Sequence[str], X: np.ndarray, model_version: str, task: str) -> pd.DataFrame:
    """``baseline_predictions`` rows: one per image, the argmax class and every probability."""
    if len(shas) == 0:
        return pd.DataFrame(columns=PREDICTIONS_SCHEMA.names)
    classes, p = predict(model_bytes, X)
    top = p.argmax(1)
    return pd.DataFrame({"sha256": list(map(str, shas)), "task": task, "model_version": model_version,
                         "predicted": [classes[i] for i in top], "probability": p[np.arange(len(p)), top].astype(float),
                         "classes": [list(classes)] * len(p), "probabilities": [row.astype(float).tolist() for row in p]})


def face_means(shas: Sequence[str], face_sha: np.ndarray, F: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deep Affect §2.2's facial-expression group per image: the mean feature over the image's faces
    with features, and a has-face flag (zeros and 0 for an image without one); every image is usable."""
    F = np.asarray(F, np.float32)
    d = F.shape[1] if F.ndim == 2 else 0
    index = {s: i for i, s in enumerate(shas)}
    acc = np.zeros((len(shas), d), np.float64)
    n = np.zeros(len(shas), np.int64)
    for j, s in enumerate(face_sha):
        i = index.get(str(s))
        if i is not None and found[j]:
            acc[i] += F[j]
            n[i] += 1
    mean = np.where(n[:, None] > 0, acc / np.maximum(n, 1)[:, None], 0.0).astype(np.float32)
    return np.c_[mean, (n > 0).astype(np.float32)], np.ones(len(shas), bool)
