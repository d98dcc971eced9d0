"""Model assets: backbones, cached features, the keep/reject CNN and the Emo8 predictor
(FindingEmo §2.3.1, §2.3.2, §3 with buffered activations, footnote 4).

backbones → image_features → keep_reject_model → keep_predictions → kept_images → emo8_model →
emo8_predictions (→ the annotation queue serves by predicted Emo8). Every trained model is stored
content-addressed with a row in ``model_versions``; it is retrained only when its labels, its
configuration or the training code change.
"""

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, asset

from assets._io import AssetIO, code_version, md_table, png_md
from assets.annotations import merged_annotations
from assets.dedup import unique_images
from assets.resources import EmoforgeResource
from ops import pictures
from ops.features import extract
from ops.training import backbone_training, classifier, labels, plots, predictors
from ops.training.backbone_training import BackboneTrainingSpec, train_small_backbone
from ops.training.holdout import holdout_mask
from ops.training.labels import AFFECTNET8_CLASSES, EMO8_CLASSES, KEEP_CLASSES
from ops.training.predictors import BackboneChoice, fit_or_reuse, load_backbone, predict_task, train_head_task
from ops.training.reuse import LabelBudget

GROUP = "models"
FEATURES = "features"
EMO8_COLUMNS = [c.lower() for c in EMO8_CLASSES]
MIN_LABELS = 8   # a predictor trains on at least this many labelled images (of 2 classes or more)


def _choice(b, device: str) -> BackboneChoice:
    return BackboneChoice(name=b.name, weights=b.weights, input_size=b.input_size, resize=b.resize,
                          findingemo_letterbox=b.findingemo_letterbox, batch_size=b.batch_size, device=device,
                          compile=b.compile)


def _fingerprint(section) -> str:
    from assets._io import config_fingerprint

    return config_fingerprint(section)


def _features(io, extractor: str, dim: int):
    store = io.wh.feature_store(extractor, dim)

    def read(shas: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return store.read(shas)
    return read


def _primary(io) -> dict:
    bb = io.read("backbones")
    name = io.settings.models.primary.key
    row = bb[bb["id"] == name]
    if row.empty:
        raise ValueError(f"backbone {name!r} is not in the backbones table: build `backbones` first")
    return row.iloc[0].to_dict()


def _primary_ready(io) -> tuple[dict | None, str | None]:
    """The predictors' backbone, or the reason it has no features (a backbone not trained yet)."""
    p = _primary(io)
    if p.get("status") == "not_trained" or pd.isna(p.get("extractor")):
        return None, f"backbone {p['id']} has no weights yet: {p.get('reason')}"
    return p, None


def _backbone_heldout(io, primary: dict) -> dict[str, bool] | None:
    """{sha256: held out?} over the images the predictors' backbone was trained on, when it was trained
    on this build's labels (the labels stored beside it); None for pretrained weights."""
    version = primary.get("model_version")
    if not isinstance(version, str):
        return None
    desc = next((d for d in io.wh.models.all() if d.get("model_version") == version), None)
    lab = io.wh.models.labels_of(desc) if desc is not None else None
    if lab is None:
        return None
    return dict(zip(lab["sha256"].astype(str), lab["heldout"].astype(bool)))


def _model_metadata(io, desc: dict, trained: bool, title: str) -> dict:
    m = desc.get("metrics", {})
    hold = m.get("holdout", {})
    md = {"model_version": desc["model_version"], "trained_now": trained, "label_snapshot": desc.get("label_snapshot"),
          "n_training_labels": MetadataValue.int(int(desc.get("n_training_labels", 0))),
          "metrics": MetadataValue.json({k: v for k, v in hold.items() if k != "confusion_matrix"} or
                                        {"note": "no held-out images"})}
    if "label_budget" in desc:
        md["kept_within_label_budget"] = MetadataValue.json(desc["label_budget"])
    cm = hold.get("confusion_matrix")
    if cm:
        md["confusion_matrix"] = png_md(io.figure(plots.confusion_png, cm["matrix"], cm["classes"], f"{title}: held-out images"),
                                        f"{title} confusion matrix")
    curves = desc.get("curves")
    if curves:
        md["training_curve"] = png_md(io.figure(plots.curves_png, pd.DataFrame(curves), f"{title}: training"), f"{title} training curve")
    return md


# ---- backbones and features ------------------------------------------------------------------------------

@asset(group_name=GROUP, kinds={"pytorch", "parquet"}, deps=[merged_annotations, unique_images],
       code_version=code_version(predictors, backbone_training),
       description="Every configured backbone with its weights: from a local file or the torchvision / timm / "
                   "Places365 cache (a missing file fails with the path looked for and how to provide it; never a "
                   "silent random init), or, with `weights: train`, the small CNN trained from scratch on the "
                   "build's labelled images (keep/reject, Emo8, AffectNet-8; held-out images never trained on).")
def backbones(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.models
    io = AssetIO(context, emoforge, cfg.backbones)
    rows, trained_now, kept = [], [], {}
    for b in cfg.backbones:
        choice = _choice(b, cfg.device)
        weights, version = b.weights, None
        if b.weights == "train":
            desc, trained = _train_small(io, choice, cfg, b.key, list(b.train_tasks))
            if desc is None:   # nothing to learn from yet: recorded, and the models that need it say so
                rows.append({"id": b.key, "name": b.name, "extractor": None, "status": "not_trained", "reason": trained})
                context.log.warning(f"backbone {b.key}: {trained}")
                continue
            weights, version = str(io.wh.root / desc["path"]), desc["model_version"]
            if trained:
                trained_now.append(version)
            elif "label_budget" in desc:   # labels moved, but within models.retrain_label_change
                kept[b.key] = {"model_version": version, **desc["label_budget"]}
                context.log.info(f"backbone {b.key}: kept {version}: {desc['label_budget']}")
        bb = load_backbone(choice, weights)
        key = extract.feature_key(bb)
        rows.append({"id": b.key, "name": b.name, "extractor": key, "feature_dim": int(bb.feature_dim), "layer": bb.layer,
                     "weights": str(weights), "weights_fingerprint": bb.weights_fingerprint, "model_version": version,
                     "preprocess": str(extract.inference_preprocess(bb).to_dict()), "device": str(bb.device),
                     "precision": bb.precision, "status": "ready", "reason": None})
    df = pd.DataFrame(rows)
    written = io.write("backbones", df)
    if trained_now:
        io.wh.write_model_versions()
    return io.result(written, trained_now=MetadataValue.json(trained_now),
                     kept_within_label_budget=MetadataValue.json(kept or {"note": "no backbone kept with changed labels"}),
                     examples=md_table(df, max_chars=48))


def _train_small(io, choice: BackboneChoice, cfg, bid: str, tasks: list[str]):
    """The small CNN trained from scratch on the labelled acquired images (or the stored one), on
    the label kinds ``tasks`` (keep, emotion8, affectnet8)."""
    merged = io.read("merged_annotations")
    uniq = io.read("unique_images", columns=["sha256"])
    fns = {"keep": labels.keep_labels, "emotion8": labels.emo8_labels, "affectnet8": labels.affectnet8_labels}
    targets = pd.DataFrame({"sha256": pd.Series(dtype="string")})
    for name in ("keep", "emotion8", "affectnet8"):
        lab = fns[name](merged).rename(columns={"label": name}) if name in tasks else \
            pd.DataFrame({"sha256": pd.Series(dtype="string"), name: pd.Series(dtype="string")})
        targets = targets.merge(lab, on="sha256", how="outer")
    targets = targets[targets["sha256"].isin(set(uniq["sha256"]))].sort_values("sha256").reset_index(drop=True)
    if len(targets) < MIN_LABELS:
        return None, (f"weights: train needs labelled acquired images (annotations linked to downloaded images); "
                      f"{len(targets)} found, at least {MIN_LABELS} needed: configure annotation sources that name "
                      f"the acquired images, or give pretrained weights")
    probe = load_backbone(BackboneChoice(choice.name, "none"), "none")
    pp = predictors.preprocess_for(choice, probe.preprocess).replace(draft=True)
    spec = BackboneTrainingSpec(**cfg.backbone_training.model_dump())
    combined = ["|".join(v if isinstance(v, str) else "" for v in row)
                for row in targets[["keep", "emotion8", "affectnet8"]].itertuples(index=False)]
    snap = labels.snapshot(pd.DataFrame({"sha256": targets["sha256"], "label": combined}))
    base = ("backbone", choice.name, bid, sorted(tasks), _fingerprint(cfg.backbone_training),
            pp.fingerprint(), cfg.holdout_fraction, cfg.holdout_seed, predictors.CODE_VERSION)
    key = labels.training_key(*base[:4], snap, *base[4:])
    strata = predictors.stratify_key(targets, ["affectnet8", "emotion8", "keep"])
    hold = holdout_mask(targets["sha256"].astype(str), strata, cfg.holdout_fraction, cfg.holdout_seed)
    # the heads read which images a kept backbone trained on from its stored labels (and leave them out
    # of their metrics), so an image the hash cut moved into today's holdout does not force training
    budget = LabelBudget(labels.training_key(*base), pd.DataFrame({"sha256": targets["sha256"].astype(str),
                                                                   "label": combined, "heldout": hold}),
                         cfg.retrain_label_change, scored_on_current_holdout=False)

    def fit():
        paths = [io.wh.blobs.path(s) for s in targets["sha256"]]
        classes = {"keep": KEEP_CLASSES, "emotion8": EMO8_CLASSES, "affectnet8": AFFECTNET8_CLASSES}
        data, metrics, curves = train_small_backbone(
            paths, targets, classes, hold, pp, spec,
            progress=lambda e, loss: io.context.log.info(f"backbone {bid} epoch {e + 1}/{spec.epochs}: loss {loss:.3f}"))
        return data, {"backbone": bid, "architecture": choice.name, "train_tasks": tasks, "extractor": None, "label_snapshot": snap,
                      "n_training_labels": int(len(targets)), "config_fingerprint": _fingerprint(cfg.backbone_training),
                      "metrics": metrics, "curves": curves.to_dict("list"), "preprocess": pp.to_dict()}

    return fit_or_reuse(io.wh.models, "backbone", key, fit, budget)


@asset(group_name=FEATURES, kinds={"pytorch", "parquet"}, deps=[backbones, unique_images],
       code_version=code_version(extract),
       description="Cached activations (FindingEmo §3, footnote 4): one vector per unique image and extractor "
                   "(backbone, layer, weights fingerprint, preprocessing), float16 shards memory-mapped for "
                   "training, indexed in the CONTRACT table `image_features`. Incremental (a rerun computes none), "
                   "resumable, decode failures recorded per image.")
def image_features(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.models
    io = AssetIO(context, emoforge, cfg.backbones)
    bb_rows = io.read("backbones")
    uniq = io.read("unique_images", columns=["sha256"])
    items = [(s, io.wh.blobs.path(s)) for s in uniq["sha256"].astype(str)]
    tables, reports = [], {}
    skipped = {}
    for b in cfg.backbones:
        row = bb_rows[bb_rows["id"] == b.key].iloc[0]
        if row.get("status") == "not_trained" or pd.isna(row.get("extractor")):
            skipped[b.key] = row.get("reason")
            continue
        bb = load_backbone(_choice(b, cfg.device), row["weights"])
        key = extract.feature_key(bb)
        store = io.wh.feature_store(key, bb.feature_dim, meta=extract.extractor_meta(bb))
        step = max(1, len(items) // 5)
        rep = extract.extract_features(
            items, bb, store, batch_size=b.batch_size,
            progress=lambda r, n=b.key: (r.processed % step < b.batch_size) and
            context.log.info(f"{n}: {r.processed}/{r.todo} new images"))
        reports[b.key] = rep.as_dict()
        tables.append(io.wh.image_features_rows(store, only=uniq["sha256"]))
    import pyarrow as pa

    from warehouse.features import IMAGE_FEATURES_SCHEMA

    table = pa.concat_tables(tables) if tables else IMAGE_FEATURES_SCHEMA.empty_table()
    written = io.write("image_features", table)
    status = table.column("status").to_pandas().value_counts().to_dict() if table is not None else {}
    return io.result(
        written, items_in=len(items) * len(cfg.backbones), items_out=int(status.get("ok", 0)),
        dropped={k: int(v) for k, v in status.items() if k != "ok"},
        extraction=MetadataValue.json({k: {x: v[x] for x in ("computed", "reused", "failed", "missing", "seconds",
                                                             "images_per_s", "decode_share", "inference_share") if x in v}
                                       for k, v in reports.items()}),
        skipped_backbones=MetadataValue.json(skipped),
    )


# ---- keep/reject (FindingEmo §2.3.1) --------------------------------------------------------------------

@asset(group_name=GROUP, kinds={"pytorch"}, deps=[image_features, merged_annotations],
       code_version=code_version(classifier, labels, predictors),
       description="The keep/reject CNN (FindingEmo §2.3.1): a head on the cached activations trained on the merged "
                   "keep/reject majority of annotated images; evaluated on held-out images (accuracy, balanced "
                   "accuracy, ROC-AUC, confusion matrix; the paper reports 77.6 % and later 83.6 % accuracy). "
                   "Retrained only when its labels or configuration change.")
def keep_reject_model(context: AssetExecutionContext, emoforge: EmoforgeResource):
    return _train_predictor(context, emoforge, "keep_reject", lambda m: labels.keep_labels(m), KEEP_CLASSES,
                            emoforge.settings.models.keep_reject, "keep/reject")


@asset(group_name=GROUP, kinds={"pytorch", "parquet"}, deps=[keep_reject_model, image_features],
       code_version=code_version(predictors),
       description="`keep_predictions` (CONTRACT): p_keep for every unique image with features, by the current "
                   "keep/reject model version.")
def keep_predictions(context: AssetExecutionContext, emoforge: EmoforgeResource):
    io = AssetIO(context, emoforge, emoforge.settings.models.keep_reject)
    head, desc = _load_current(io, "keep_reject")
    uniq = io.read("unique_images", columns=["sha256"])
    if head is None:
        out = pd.DataFrame({"sha256": pd.Series(dtype="string"), "p_keep": pd.Series(dtype="float64"),
                            "model_version": pd.Series(dtype="string")})
        written = io.write("keep_predictions", out)
        return io.result(written, items_in=len(uniq), items_out=0, dropped={"no_keep_reject_model": len(uniq)},
                         reason="no keep/reject model (see keep_reject_model): no image has a keep probability")
    pred = predict_task(head, uniq["sha256"].astype(str).tolist(), _features(io, desc["extractor"], head.mean.shape[0]),
                        desc["model_version"], ["p_keep", "p_reject"])
    out = pred[["sha256", "p_keep", "model_version"]]
    written = io.write("keep_predictions", out)
    return io.result(written, items_in=len(uniq), items_out=len(out), dropped={"no_features": len(uniq) - len(out)},
                     model_version=desc["model_version"],
                     p_keep_quantiles=MetadataValue.json({str(q): round(float(out["p_keep"].quantile(q)), 3)
                                                          for q in (0.1, 0.25, 0.5, 0.75, 0.9)} if len(out) else {}))


@asset(group_name=GROUP, kinds={"parquet"}, deps=[keep_predictions, unique_images],
       description="Every unique image with its keep decision: `kept` when p_keep is at or above the configured "
                   "threshold (FindingEmo §2.3.2 served images with p_keep ≥ 0.75), otherwise the reason it was dropped.")
def kept_images(context: AssetExecutionContext, emoforge: EmoforgeResource):
    thr = emoforge.settings.models.keep_reject.threshold
    io = AssetIO(context, emoforge, {"threshold": thr})
    uniq = io.read("unique_images", columns=["sha256", "url", "query"])
    pred = io.read("keep_predictions")
    df = uniq.merge(pred, on="sha256", how="left")
    df["kept"] = df["p_keep"].ge(thr).fillna(False).astype(bool)
    df["status"] = np.where(df["kept"], "kept", np.where(df["p_keep"].isna(), "no_prediction", "p_keep_below_threshold"))
    df["reason"] = [("kept" if k else "no keep prediction (no features)" if pd.isna(p) else
                     f"p_keep {p:.3f} < threshold {thr:g}") for k, p in zip(df["kept"], df["p_keep"])]
    df["threshold"] = thr
    written = io.write("kept_images", df)
    drops = df.loc[~df["kept"], "status"].value_counts().to_dict()
    return io.result(written, items_in=len(df), items_out=int(df["kept"].sum()), dropped={k: int(v) for k, v in drops.items()},
                     examples=md_table(df.loc[~df["kept"], ["sha256", "p_keep", "reason"]]),
                     **io.picture("contact_sheet", lambda b, t: pictures.keep_reject_sheet(df, b, t),
                                  "kept vs rejected images with p_keep"))


# ---- Emo8 (FindingEmo §2.3.2) ----------------------------------------------------------------------------

@asset(group_name=GROUP, kinds={"pytorch"}, deps=[kept_images, merged_annotations, image_features],
       code_version=code_version(classifier, labels, predictors),
       description="The Emo8 predictor (FindingEmo §2.3.2): a head on the cached activations trained on the merged "
                   "Emo8 labels of images annotated as keep; evaluated on held-out images. Retrained only when its "
                   "labels or configuration change.")
def emo8_model(context: AssetExecutionContext, emoforge: EmoforgeResource):
    return _train_predictor(context, emoforge, "emo8", lambda m: labels.emo8_labels(m), EMO8_CLASSES,
                            emoforge.settings.models.emo8, "Emo8")


@asset(group_name=GROUP, kinds={"pytorch", "parquet"}, deps=[emo8_model, kept_images],
       code_version=code_version(predictors),
       description="`emo8_predictions` (CONTRACT): the predicted Emo8 leaf and one probability per leaf for every "
                   "kept image, by the current Emo8 model version.")
def emo8_predictions(context: AssetExecutionContext, emoforge: EmoforgeResource):
    io = AssetIO(context, emoforge, emoforge.settings.models.emo8)
    head, desc = _load_current(io, "emo8")
    kept = io.read("kept_images", columns=["sha256", "kept"])
    shas = kept.loc[kept["kept"], "sha256"].astype(str).tolist()
    if head is None:
        out = pd.DataFrame({"sha256": pd.Series(dtype="string"), "emotion8": pd.Series(dtype="string"),
                            **{c: pd.Series(dtype="float64") for c in EMO8_COLUMNS}, "model_version": pd.Series(dtype="string")})
        written = io.write("emo8_predictions", out)
        return io.result(written, items_in=len(shas), items_out=0, dropped={"no_emo8_model": len(shas)},
                         reason="no Emo8 model (see emo8_model): no image has a predicted Emo8 leaf")
    pred = predict_task(head, shas, _features(io, desc["extractor"], head.mean.shape[0]), desc["model_version"], EMO8_COLUMNS)
    out = pred.rename(columns={"predicted": "emotion8"})[["sha256", "emotion8", *EMO8_COLUMNS, "model_version"]]
    written = io.write("emo8_predictions", out)
    return io.result(written, items_in=len(shas), items_out=len(out), dropped={"no_features": len(shas) - len(out)},
                     model_version=desc["model_version"],
                     predicted=MetadataValue.json(out["emotion8"].value_counts().to_dict()))


# ---- shared -------------------------------------------------------------------------------------------------

def _train_predictor(context, emoforge, task: str, label_fn, classes: list[str], head_cfg, title: str):
    cfg = emoforge.settings.models
    io = AssetIO(context, emoforge, head_cfg)
    primary, why = _primary_ready(io)
    lab = label_fn(io.read("merged_annotations"))
    if primary is None:
        io.context.log.warning(f"{title}: not trained: {why}")
        io.wh.set_current_model(task, None)
        io.identity["model"] = None
        return io.result(None, trained=False, reason=f"not trained: {why}")
    snap = labels.snapshot(lab)
    bb_hold = _backbone_heldout(io, primary)
    fp = _fingerprint({"head": head_cfg.model_dump(), "holdout": [cfg.holdout_fraction, cfg.holdout_seed],
                       "scored_without_backbone_training": bb_hold is not None})
    key = predictors.predictor_key(task, primary["extractor"], snap, fp)
    feats = _features(io, primary["extractor"], int(primary["feature_dim"]))

    def fit():
        data, meta, _ = train_head_task(task, lab, classes, feats, head_cfg.spec(), cfg.holdout_fraction, cfg.holdout_seed,
                                        primary["extractor"], primary["id"], snap, fp, backbone_heldout=bb_hold)
        return data, meta

    X, found = feats(lab["sha256"].astype(str).tolist())
    usable = lab[found]
    if len(usable) < MIN_LABELS or usable["label"].nunique() < 2:
        why = (f"not trained: {len(usable)} labelled images with features in {usable['label'].nunique()} class(es); "
               f"a {title} model needs at least {MIN_LABELS} images of 2 classes (annotate more images)")
        io.context.log.warning(why)
        io.wh.set_current_model(task, None)
        io.identity["model"] = None
        return io.result(None, trained=False, reason=why, labels=MetadataValue.json(lab["label"].value_counts().to_dict()))
    # kept while at most models.retrain_label_change of its labels moved (predictors.head_label_budget)
    budget = predictors.head_label_budget(task, primary["extractor"], fp, usable, cfg.holdout_fraction,
                                          cfg.holdout_seed, cfg.retrain_label_change)
    desc, trained = fit_or_reuse(io.wh.models, task, key, fit, budget)
    if not trained and "label_budget" in desc:
        io.context.log.info(f"{title}: kept {desc['model_version']} within the label budget: {desc['label_budget']}")
    io.wh.write_model_versions()
    io.wh.set_current_model(task, desc["model_version"])
    io.identity["model"] = desc["model_version"]
    md = _model_metadata(io, desc, trained, title)
    md["labels"] = MetadataValue.json(lab["label"].value_counts().to_dict())
    return io.result(None, **md)


def _load_current(io, task: str):
    """The current model of ``task`` (None, None when its training asset decided not to train)."""
    from ops.training.classifier import TrainedHead

    version = io.wh.current_model(task)
    if version is None:
        return None, None
    data, desc = io.wh.models.get(version)
    return TrainedHead.from_bytes(data), desc
