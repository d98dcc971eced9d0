"""Training assets: leak-free dataset splits and the seed papers' baselines on cached features, with
their runs, metrics and learning curves in the warehouse (FindingEmo §3, AffectNet+ §4.3, Deep
Affect §2.2–2.4, CAGE §3–4), and predictions of a registered model for every image.

dataset_splits → findingemo_baselines, affectnet_baselines, deep_affect_baselines, cage_baselines
(each writes its partition of training_runs, run_metrics, learning_curves) → baseline_predictions.
"""

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, asset

from assets._io import AssetIO, code_version, md_table, png_md
from assets.annotations import merged_annotations
from assets.dedup import duplicate_groups, unique_images
from assets.faces import faces, face_features, mas_split, soft_labels
from assets.models import image_features
from assets.resources import EmoforgeResource
from ops.training import baselines, experiments as X, loop, plots, splits, views
from ops.training.labels import AFFECTNET8_CLASSES, EMO8_CLASSES

GROUP = "training"


def _device(io) -> str:
    from models.device import pick_device

    d = io.settings.models.device
    return str(pick_device(None if d == "auto" else d))


def _image_features(io, ids: list[str] | None, shas: list[str]) -> dict:
    """{backbone id: (extractor key, X, found)} for ``shas`` (backbones with cached features)."""
    bb = io.read("backbones")
    bb = bb[bb["extractor"].notna() & bb["feature_dim"].notna()]
    out = {}
    for r in bb.itertuples(index=False):
        if ids and r.id not in ids:
            continue
        Xs, found = io.wh.feature_store(r.extractor, int(r.feature_dim)).read(shas)
        out[r.id] = (r.extractor, np.asarray(Xs, np.float32), np.asarray(found, bool))
    return out


def _face_features(io, ids: list[str] | None, crops: list[str]) -> dict:
    """{face extractor id: (extractor key, X, found)} for face crops (``face_extractors``)."""
    if not io.has("face_extractors"):
        return {}
    out = {}
    for r in io.read("face_extractors").itertuples(index=False):
        if ids and r.id not in ids:
            continue
        Xs, found = io.wh.feature_store(r.extractor, int(r.feature_dim)).read(crops)
        out[r.id] = (r.extractor, np.asarray(Xs, np.float32), np.asarray(found, bool))
    return out


def _write_family(io, family: str, runs: pd.DataFrame, metrics: pd.DataFrame, curves: pd.DataFrame):
    io.write("run_metrics", metrics, partition=family, schema=X.RUN_METRICS_SCHEMA)
    io.write("learning_curves", curves, partition=family, schema=X.CURVES_SCHEMA)
    written = io.write("training_runs", runs, partition=family, schema=X.RUNS_SCHEMA)
    io.wh.write_model_versions()
    io.register_views({**views.training_views(), **views.circumplex_view()})
    return written


def _report(io, written, runs: pd.DataFrame, curves: pd.DataFrame, summary_sql: str | None, **extra):
    ok = runs[runs["status"] == "ok"]
    md = {"runs": MetadataValue.json({"ok": int(len(ok)), "failed": int((runs["status"] == "failed").sum()),
                                      "trained_now": int(ok["trained_now"].fillna(False).sum()),
                                      # found again although their labels moved (within models.retrain_label_change)
                                      "kept_with_changed_labels": int((ok["labels_changed_since_training"].fillna(0) > 0).sum())}),
          "train_seconds": MetadataValue.float(round(float(ok["seconds"].fillna(0).sum()), 1))}
    failed = runs[runs["status"] == "failed"]
    if len(failed):
        md["failed_runs"] = md_table(failed[["run_id", "reason"]], max_rows=10, max_chars=120)
    if summary_sql:
        with io.wh.connect() as con:
            md["summary"] = md_table(con.execute(summary_sql).df().round(4), max_rows=30, max_chars=40)
    if len(ok) and len(curves):
        first = ok.iloc[0]["run_id"]
        c = curves[curves["run_id"] == first].pivot_table(index="epoch", columns="metric", values="value")
        c.insert(0, "train_loss", curves[curves["run_id"] == first].groupby("epoch")["train_loss"].first())
        md["learning_curve"] = png_md(io.figure(plots.curves_png, c.reset_index(), first), f"learning curve of {first}")
    return io.result(written, items_in=int(len(runs)), items_out=int(len(ok)),
                     dropped={"failed": int(len(failed))} if len(failed) else None, **md, **extra)


# ---- splits ------------------------------------------------------------------------------------

def _groups(io) -> pd.Series:
    """sha256 → near-duplicate family of every hashed image (duplicates included, not only the
    representatives in unique_images: an annotated duplicate must follow its family)."""
    return io.read("duplicate_groups", columns=["sha256", "group_id"]).astype(str).set_index("sha256")["group_id"]


@asset(group_name=GROUP, kinds={"parquet"}, deps=[duplicate_groups, unique_images, merged_annotations, faces, mas_split],
       code_version=code_version(splits),
       description="`dataset_splits` (CONTRACT): one row per (scheme, image or face) with its split. Schemes: "
                   "findingemo_80_20 (FindingEmo §3, stratified per Emo8), kfold5 (Deep Affect §2.3), source (the "
                   "annotation source's own split, e.g. AffectNet train/validation), affectnet_mas (AffectNet+ §3.1). "
                   "Near-duplicate families and an image's faces never straddle splits (blocking check).")
def dataset_splits(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.training.splits
    io = AssetIO(context, emoforge, cfg)
    groups = _groups(io)
    merged = io.read("merged_annotations")
    fc = io.read("faces", columns=["face_id", "sha256"]) if io.has("faces") else pd.DataFrame(columns=["face_id", "sha256"])
    mas = io.read("mas_split") if io.has("mas_split") else None
    previous = io.read("dataset_splits") if cfg.keep_previous and io.has("dataset_splits") else None
    table = splits.build_splits(merged, groups, fc, mas, test_fraction=cfg.test_fraction, k=cfg.kfolds, seed=cfg.seed,
                                previous=previous)
    written = io.write("dataset_splits", table, schema=splits.SPLITS_SCHEMA)
    counts = table.groupby(["scheme", "split"]).size().rename("n").reset_index()
    moved = int((table["source_split"].notna() & (table["source_split"] != table["split"])).sum())
    kept = splits.kept_from_previous(table, previous)
    return io.result(written, items_out=int(len(table)), splits=md_table(counts, max_rows=40),
                     moved_from_source_split=moved, kept_from_previous_build=MetadataValue.json(kept))


# ---- baselines ---------------------------------------------------------------------------------

def _scheme_items(io, scheme: str) -> pd.DataFrame:
    """Image items of ``scheme`` with their labels and ratings."""
    sp = io.read("dataset_splits")
    sp = sp[(sp["scheme"] == scheme) & (sp["item_kind"] == "image")][["sha256", "split"]]
    items = splits.annotated_images(io.read("merged_annotations"), _groups(io))
    return items.merge(sp, on="sha256", how="inner").sort_values("sha256").reset_index(drop=True)


@asset(group_name=GROUP, kinds={"pytorch"}, deps=[dataset_splits, image_features],
       code_version=code_version(baselines, X, loop),
       description="FindingEmo §3 baselines: a linear output layer on each backbone's cached features for Emo8, "
                   "Arousal3 and Valence3, CrossEntropy and UnbalancedCrossEntropy (Eq. 1, weights §A.7), Adam from "
                   "each lr_0 of the grid with Eq. 2, early stopping (best loss or W.F1 6 epochs behind, max 250), "
                   "several runs. Rows in training_runs / run_metrics / learning_curves (partition findingemo); "
                   "`findingemo_table5` is the paper's Table 5. A run whose labels, features and settings are "
                   "unchanged is found again in the model store, not retrained.")
def findingemo_baselines(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.training.findingemo
    io = AssetIO(context, emoforge, cfg)
    items = _scheme_items(io, splits.FINDINGEMO_SCHEME)
    plan = []
    if cfg.enabled and len(items):
        feats = _image_features(io, cfg.extractors, items["sha256"].tolist())
        plan = X.findingemo_plan(items, feats, tasks=cfg.tasks, losses=cfg.losses, lrs=cfg.lrs, runs=cfg.runs,
                                 max_epochs=cfg.max_epochs, patience=cfg.patience, batch_size=cfg.batch_size,
                                 monitor=cfg.monitor, uce_penalty=cfg.uce_penalty, device=_device(io),
                                 extractors=cfg.extractors)
    runs, metrics, curves = X.execute(plan, io.wh.models, context.log.warning, io.settings.models.retrain_label_change)
    written = _write_family(io, "findingemo", runs, metrics, curves)
    return _report(io, written, runs, curves,
                   "select task, extractor, loss, lr, n_runs, wf1_mean, wf1_std, acc_mean, ap_mean from findingemo_table5",
                   images=MetadataValue.json(items.groupby("split").size().to_dict() if len(items) else {}))


@asset(group_name=GROUP, kinds={"pytorch"}, deps=[dataset_splits, soft_labels, face_features],
       code_version=code_version(baselines, X, loop),
       description="AffectNet+ §4.3 baselines on face features: Hard-FER (8-way, weighted loss; accuracy, average "
                   "accuracy, per-class precision/recall/F1, confusion matrices per subset: Tables 8–9, Fig. 5) and "
                   "Soft-FER (regression of the soft label; W-MAE, W-FR per subset and emotion: Tables 10–11), trained "
                   "on the source's train split and scored on its validation split.")
def affectnet_baselines(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.training.affectnet
    io = AssetIO(context, emoforge, cfg)
    sl = io.read("soft_labels")
    sp = io.read("dataset_splits")
    sp = sp[(sp["scheme"] == cfg.scheme) & (sp["item_kind"] == "face")][["item_id", "split"]]
    fc = sl.drop(columns=["split"]).merge(sp.rename(columns={"item_id": "face_id"}), on="face_id", how="inner")
    fc = fc.sort_values("face_id").reset_index(drop=True)
    plan = []
    if cfg.enabled and len(fc):
        feats = _face_features(io, cfg.extractors, fc["crop_sha256"].astype(str).tolist())
        plan = X.affectnet_plan(fc, feats, AFFECTNET8_CLASSES, kinds=cfg.kinds, lr=cfg.lr, runs=cfg.runs,
                                max_epochs=cfg.max_epochs, patience=cfg.patience, batch_size=cfg.batch_size,
                                device=_device(io), train_split=cfg.train_split, eval_split=cfg.eval_split,
                                scheme=cfg.scheme, extractors=cfg.extractors)
    runs, metrics, curves = X.execute(plan, io.wh.models, context.log.warning, io.settings.models.retrain_label_change)
    written = _write_family(io, "affectnet_plus", runs, metrics, curves)
    extra = {}
    cm = metrics[(metrics["metric"] == "confusion") & (metrics["subset"] == "All")]
    if len(cm):
        first = cm["run_id"].iloc[0]
        c = cm[cm["run_id"] == first]
        mat = np.zeros((len(AFFECTNET8_CLASSES),) * 2, int)
        for cls, v in zip(c["class"], c["value"]):
            t, p = cls.split("|")
            mat[AFFECTNET8_CLASSES.index(t), AFFECTNET8_CLASSES.index(p)] = int(v)
        extra["confusion_matrix"] = png_md(io.figure(plots.confusion_png, mat, AFFECTNET8_CLASSES, first), f"Hard-FER: {first}")
    return _report(io, written, runs, curves,
                   "select * from affectnet_table8 union all by name select * from affectnet_table10", **extra)


def _deep_affect_groups(io, cfg, items: pd.DataFrame) -> dict:
    """{feature set: {group: (key, X, found)}}; "faces:<id>" = mean over the image's faces + a flag."""
    shas = items["sha256"].tolist()
    sets = cfg.feature_sets
    if sets is None:
        bb = io.read("backbones")
        ids = [str(i) for i in bb.loc[bb["extractor"].notna(), "id"]]
        fx = io.read("face_extractors")["id"].tolist() if io.has("face_extractors") else []
        sets = {"all": ids + [f"faces:{f}" for f in fx]}
    image = _image_features(io, None, shas)
    fc = io.read("faces", columns=["face_id", "sha256", "crop_sha256"]) if io.has("faces") else None
    out = {}
    for name, members in sets.items():
        groups = {}
        for m in members:
            if m.startswith("faces:"):
                fid = m.split(":", 1)[1]
                got = _face_features(io, [fid], fc["crop_sha256"].astype(str).tolist()) if fc is not None else {}
                if fid not in got:
                    raise ValueError(f"training.deep_affect.feature_sets.{name}: no face features {fid!r}")
                key, F, found = got[fid]
                groups[m] = (key, *X.face_means(shas, fc["sha256"].astype(str).to_numpy(), F, found))
            else:
                if m not in image:
                    raise ValueError(f"training.deep_affect.feature_sets.{name}: backbone {m!r} has no image features")
                groups[m] = image[m]
        out[name] = groups
    return out


@asset(group_name=GROUP, kinds={"pytorch"}, deps=[dataset_splits, image_features, face_features],
       code_version=code_version(baselines, X, loop),
       description="Deep Affect §2.2–2.4: feature groups (object/scene backbones, facial-expression features pooled "
                   "over an image's faces) concatenated into the 3000-1000-500 network (dropout 0.5), MSE, SGD momentum "
                   "0.9 from 4e-4 with the plateau schedule; shared and split architectures; k-fold cross-validation on "
                   "valence and arousal rescaled to 1–9. `deep_affect_folds` gives MSE per fold.")
def deep_affect_baselines(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.training.deep_affect
    io = AssetIO(context, emoforge, cfg)
    scheme = f"kfold{emoforge.settings.training.splits.kfolds}"
    items = _scheme_items(io, scheme)
    plan = []
    if cfg.enabled and len(items):
        plan = X.deep_affect_plan(items, _deep_affect_groups(io, cfg, items), architectures=cfg.architectures,
                                  hidden=cfg.hidden, dropout=cfg.dropout, lr=cfg.lr, batch_size=cfg.batch_size,
                                  max_epochs=cfg.max_epochs, runs=cfg.runs, device=_device(io), scheme=scheme)
    runs, metrics, curves = X.execute(plan, io.wh.models, context.log.warning, io.settings.models.retrain_label_change)
    written = _write_family(io, "deep_affect", runs, metrics, curves)
    return _report(io, written, runs, curves,
                   "select feature_set, architecture, target, mse from deep_affect_folds where fold = 'mean' order by all")


@asset(group_name=GROUP, kinds={"pytorch"}, deps=[dataset_splits, image_features],
       code_version=code_version(baselines, X, loop),
       description="CAGE §4.1–4.3: a joint head for expression (Emo8) and valence/arousal, L = weighted CE + α·MSE "
                   "(α = 5), and a valence/arousal-only head, L = L_CCC + β·MSE (β = 3), on each backbone's features; "
                   "precision, recall, F1, MSE, MAE, RMSE, CCC (`cage_table`). `circumplex` (CAGE §3) summarises "
                   "valence and arousal per expression over any annotations that carry both.")
def cage_baselines(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.training.cage
    io = AssetIO(context, emoforge, cfg)
    items = _scheme_items(io, splits.FINDINGEMO_SCHEME)
    plan = []
    if cfg.enabled and len(items):
        feats = _image_features(io, cfg.extractors, items["sha256"].tolist())
        plan = X.cage_plan(items, feats, EMO8_CLASSES, kinds=cfg.kinds, alpha=cfg.alpha, beta=cfg.beta, lr=cfg.lr,
                           runs=cfg.runs, max_epochs=cfg.max_epochs, patience=cfg.patience, batch_size=cfg.batch_size,
                           device=_device(io), scheme=splits.FINDINGEMO_SCHEME, extractors=cfg.extractors)
    runs, metrics, curves = X.execute(plan, io.wh.models, context.log.warning, io.settings.models.retrain_label_change)
    written = _write_family(io, "cage", runs, metrics, curves)
    return _report(io, written, runs, curves, "select * from cage_table")


# ---- predictions -------------------------------------------------------------------------------

@asset(group_name=GROUP, kinds={"pytorch", "parquet"},
       deps=[findingemo_baselines, affectnet_baselines, deep_affect_baselines, cage_baselines, image_features],  # all of training_runs
       code_version=code_version(X),
       description="A registered baseline applied to every unique image with features (for example a new scrape "
                   "batch), without retraining: `training.predictions.model_version`, or the best FindingEmo run of "
                   "`training.predictions.task`. One row per image: predicted class, its probability, all probabilities.")
def baseline_predictions(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.training.predictions
    io = AssetIO(context, emoforge, cfg)
    runs = io.read("training_runs")
    version = cfg.model_version
    if version is None:
        with io.wh.connect() as con:
            best = con.execute("select model_version from best_runs where family = 'findingemo' and task = ? "
                               "order by value desc limit 1", [cfg.task]).fetchall()
        version = best[0][0] if best else None
    shas = io.read("unique_images", columns=["sha256"])["sha256"].astype(str).tolist()
    if version is None:
        context.log.warning(f"no trained FindingEmo {cfg.task} run: no predictions")
        written = io.write("baseline_predictions", pd.DataFrame(columns=X.PREDICTIONS_SCHEMA.names),
                           schema=X.PREDICTIONS_SCHEMA)
        return io.result(written, items_in=len(shas), items_out=0, reason="no trained run")
    row = runs[runs["model_version"] == version]
    if row.empty:
        raise ValueError(f"training.predictions.model_version {version!r} is not a run in training_runs "
                         f"(known: {sorted(runs['model_version'].dropna())[:10]} …)")
    r = row.iloc[0]
    ex = io.read("backbones").set_index("id")
    if r["extractor_id"] not in ex.index:
        raise ValueError(f"model {version} reads features of backbone {r['extractor_id']!r}, which is not configured")
    Xs, found = io.wh.feature_store(ex.loc[r["extractor_id"], "extractor"], int(ex.loc[r["extractor_id"], "feature_dim"])).read(shas)
    table = X.prediction_rows(io.wh.models.get(version)[0], np.asarray(shas)[found], np.asarray(Xs)[found],
                              version, r["task"])
    written = io.write("baseline_predictions", table, schema=X.PREDICTIONS_SCHEMA)
    return io.result(written, items_in=len(shas), items_out=len(table), dropped={"no_features": int((~found).sum())},
                     model_version=version,
                     predicted=MetadataValue.json(table["predicted"].value_counts().to_dict()))
