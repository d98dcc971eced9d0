"""The model foundation on the demo world (issue 8), checked against the world's truth manifest.

The demo build trains its small backbones from scratch, caches features, trains the keep/reject and
Emo8 heads and predicts. These tests read what the build wrote and compare it with what the world's
generator planted (which the pipeline never reads). Each model test states the margin over chance
it demands, computed from the truth.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.cli import main
from warehouse.store import Warehouse

pytestmark = pytest.mark.slow


def _truth_scenes(world_dir) -> pd.DataFrame:
    return pd.DataFrame(json.loads((world_dir / "truth" / "scenes.json").read_text()))


def _truth_faces(world_dir) -> pd.DataFrame:
    return pd.DataFrame(json.loads((world_dir / "truth" / "faces.json").read_text()))


def _current(wh: Warehouse, task: str) -> dict:
    v = wh.current_model(task)
    assert v is not None, f"no current {task} model"
    _, desc = wh.models.get(v)
    return desc


def test_heads_are_never_scored_on_images_their_backbone_trained_on(demo_build):
    """The heads' held-out metrics (and the tests below, which read the same list) leave out images the
    from-scratch backbone trained on."""
    wh = Warehouse(demo_build.data_dir)
    bb = wh.read_table("backbones")
    for task in ("keep_reject", "emo8"):
        desc = _current(wh, task)
        row = bb[bb["id"] == desc["backbone"]].iloc[0]
        stored = next(d for d in wh.models.all() if d["model_version"] == row["model_version"])
        lab = wh.models.labels_of(stored)
        assert lab is not None, "a backbone trained on the build's labels keeps them"
        trained_on = set(lab.loc[~lab["heldout"].astype(bool), "sha256"].astype(str))
        held = set(desc["holdout"]["sha256"])
        assert held and not held & trained_on, (task, len(held & trained_on))


def test_the_heads_store_the_labels_their_budget_compares(demo_build):
    """A refresh keeps a head while few of its labels moved: the build stored each head with the labels
    and the held-out cut it trained on, under a base key that today's labels find again."""
    from ops.training.predictors import head_label_budget
    from ops.training.reuse import keep_within_budget

    wh = Warehouse(demo_build.data_dir)
    for task in ("keep_reject", "emo8"):
        desc = _current(wh, task)
        lab = wh.models.labels_of(desc)
        assert lab is not None and len(lab) == desc["n_training_labels"], task
        assert set(desc["holdout"]["sha256"]) <= set(lab.loc[lab["heldout"].astype(bool), "sha256"].astype(str))
        h = desc["holdout"]
        # two labels gone: within the budget, the stored head is found again
        fewer = lab.iloc[2:][["sha256", "label"]]
        kept = keep_within_budget(wh.models, task, head_label_budget(
            task, desc["extractor"], desc["config_fingerprint"], fewer, h["fraction"], h["seed"], 0.10))
        assert kept is not None and kept["model_version"] == desc["model_version"], task
        # every label flipped to another class: far beyond it
        flipped = lab[["sha256", "label"]].assign(label=lab["label"].astype(str).map(lambda v: v + "_other"))
        assert keep_within_budget(wh.models, task, head_label_budget(
            task, desc["extractor"], desc["config_fingerprint"], flipped, h["fraction"], h["seed"], 0.10)) is None


def test_keep_reject_beats_chance_on_held_out_scenes(demo_build):
    wh = Warehouse(demo_build.data_dir)
    desc = _current(wh, "keep_reject")
    held = set(desc["holdout"]["sha256"])
    truth = _truth_scenes(demo_build.world_dir)
    truth = truth[truth["sha256"].isin(held)]
    pred = wh.read_table("keep_predictions").merge(truth[["sha256", "keep"]], on="sha256")
    assert len(pred) == len(truth) >= 20
    tp = ((pred["p_keep"] >= 0.5) & pred["keep"]).sum() / max(1, pred["keep"].sum())
    tn = ((pred["p_keep"] < 0.5) & ~pred["keep"]).sum() / max(1, (~pred["keep"]).sum())
    balanced = (tp + tn) / 2
    # chance is 0.5 for a balanced accuracy; demanded: 0.15 above it, on scenes never trained on
    assert balanced >= 0.5 + 0.15, (balanced, len(pred))


def test_emo8_predictions_beat_the_majority_guess_on_held_out_scenes(demo_build):
    wh = Warehouse(demo_build.data_dir)
    desc = _current(wh, "emo8")
    held = set(desc["holdout"]["sha256"])
    truth = _truth_scenes(demo_build.world_dir)
    pred = wh.read_table("emo8_predictions").merge(truth[["sha256", "emotion8"]].rename(columns={"emotion8": "truth"}),
                                                  on="sha256")
    on_held = pred[pred["sha256"].isin(held)]
    assert len(on_held) >= 10
    # chance for top-3 accuracy over 8 leaves is 3/8; demanded: 0.1 above it against the planted leaf
    probs = on_held[[c for c in on_held.columns if c in ("joy", "trust", "fear", "surprise", "sadness", "disgust",
                                                         "anger", "anticipation")]]
    cols = list(probs.columns)
    top3 = np.argsort(-probs.to_numpy(), axis=1)[:, :3]
    hit = [t.lower() in {cols[j] for j in row} for t, row in zip(on_held["truth"], top3)]
    assert np.mean(hit) >= 3 / 8 + 0.1, (np.mean(hit), len(hit))


def test_face_backbone_learned_expressions(demo_build):
    """The face backbone's own held-out accuracy on AffectNet-8 labels (the majority of the simulated
    votes) against chance (1/8), and the face crops' features separating the planted emotions."""
    wh = Warehouse(demo_build.data_dir)
    rows = [d for d in wh.models.all() if d["task"] == "backbone" and "affectnet8" in d.get("train_tasks", [])]
    assert rows, "no face backbone trained"
    acc = rows[-1]["metrics"]["tasks"]["affectnet8"]["holdout_accuracy"]
    assert acc >= 1 / 8 + 0.2, acc


def test_every_unique_image_has_features_and_a_keep_probability(demo_build):
    wh = Warehouse(demo_build.data_dir)
    uniq = set(wh.read_table("unique_images", columns=["sha256"])["sha256"])
    feats = wh.read_table("image_features")
    bb = wh.read_table("backbones")
    assert len(feats) == len(uniq) * len(bb)
    assert set(feats["sha256"]) == uniq
    kp = wh.read_table("keep_predictions")
    assert set(kp["sha256"]) == uniq and kp["p_keep"].between(0, 1).all()
    kept = wh.read_table("kept_images")
    thr = kept["threshold"].iat[0]
    assert (kept["kept"] == (kept["p_keep"] >= thr)).all()
    assert set(wh.read_table("emo8_predictions")["sha256"]) == set(kept.loc[kept["kept"], "sha256"])


def test_model_versions_tell_provenance(demo_build, capsys):
    assert main(["sql", "--data-dir", str(demo_build.data_dir), "--format", "json",
                 "select task, model_version, label_snapshot, n_training_labels, config_fingerprint, metrics "
                 "from model_versions order by task"]) == 0
    rows = json.loads(capsys.readouterr().out)
    tasks = {r["task"] for r in rows}
    assert {"backbone", "keep_reject", "emo8"} <= tasks
    for r in rows:
        assert r["model_version"].startswith(r["task"] + "-") and r["label_snapshot"] and r["n_training_labels"] > 0
        assert json.loads(r["metrics"])
    kp = Warehouse(demo_build.data_dir).read_table("keep_predictions")
    assert set(kp["model_version"]) <= {r["model_version"] for r in rows if r["task"] == "keep_reject"}


def test_the_queue_serves_by_predicted_emo8(demo_build):
    q = Warehouse(demo_build.data_dir).read_table("annotation_queue")
    assert q["predictions_available"].all()
    assert (q["selection"] == "balanced").sum() > 0
    assert (q.loc[q["kind"] == "new", "keep_prob"] >= 0.75).all()


def test_a_second_build_computes_no_features_and_trains_nothing(demo_build, clean_env, capsys):
    clean_env.setenv("DAGSTER_HOME", str(demo_build.root / "dagster_home"))   # the build's own instance
    assert main(["build", *demo_build.args, "--select", "group:models or group:features"]) == 0
    out = capsys.readouterr().out
    assert "image_features" in out
    wh = Warehouse(demo_build.data_dir)
    assert len(wh.models.all()) == demo_build.n_models     # nothing retrained: the same versions
    feats = wh.read_table("image_features")
    assert feats["computed_at"].max() <= demo_build.features_at


def test_missing_weights_fail_naming_the_file(clean_env, tmp_path, capsys):
    missing = tmp_path / "weights" / "resnet18-f37072fd.pth"
    cfg = {"models": {"backbones": [{"name": "resnet18", "weights": str(missing)}]}}
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(cfg))
    assert main(["build", "--config", str(f), "--data-dir", str(tmp_path / "d"), "--select", "backbones"]) == 1
    out = capsys.readouterr().out
    assert str(missing) in out
