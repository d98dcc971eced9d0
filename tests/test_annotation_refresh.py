"""Refreshes that react to new data: the ``annotation_exports_changed`` sensor requests an
annotations run exactly when an annotation export's content differs from what the last ingest read."""

from __future__ import annotations

import pytest
import yaml

from pipelines.cli import main
from warehouse.store import Warehouse

pytestmark = pytest.mark.slow

ROWS = ["item,worker,label,v,a",
        "img1,w1,Joy,2,3", "img1,w2,Joy,1,3", "img2,w1,Fear,-2,5", "img2,w2,Terror,-3,6"]


def _evaluate(cfg_path, data):
    from dagster import DagsterInstance, build_sensor_context

    from assets.resources import EmoforgeResource
    from pipelines.definitions import annotation_exports_changed

    emo = EmoforgeResource(config_path=str(cfg_path), data_dir=str(data))
    with build_sensor_context(instance=DagsterInstance.ephemeral(), resources={"emoforge": emo}) as ctx:
        return annotation_exports_changed(ctx)


def test_the_sensor_requests_a_run_only_when_an_export_changed(clean_env, tmp_path, capsys):
    from dagster import RunRequest, SkipReason

    csv = tmp_path / "crowd.csv"
    csv.write_text("\n".join(ROWS) + "\n")
    cfg = {"annotations": {"sources": [{
        "kind": "long", "path": "crowd.csv", "name": "crowd",
        "mapping": {"image_id": "item", "annotator_id": "worker", "emotion": "label", "valence": "v", "arousal": "a"},
        "scales": {"valence": [-3, 3], "arousal": [0, 6]}}]}}
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    data = tmp_path / "data"
    # before any ingest: nothing was read yet, so the exports are new
    assert isinstance(_evaluate(cfg_path, data), RunRequest)
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select", "group:annotations"]) == 0
    assert Warehouse(data).recorded_annotation_exports() is not None
    assert isinstance(_evaluate(cfg_path, data), SkipReason)
    # touching the file without changing it is no new data
    csv.write_text(csv.read_text())
    assert isinstance(_evaluate(cfg_path, data), SkipReason)
    # a new annotation: one run, keyed by the content (the same change never runs twice)
    csv.write_text("\n".join(ROWS + ["img2,w3,Fear,-1,4"]) + "\n")
    first, again = _evaluate(cfg_path, data), _evaluate(cfg_path, data)
    assert isinstance(first, RunRequest) and first.run_key == again.run_key
    assert str(csv) in first.tags["emoforge/changed_exports"]
    # the run the request stands for: the annotations job; afterwards the sensor is quiet again
    assert main(["build", "--config", str(cfg_path), "--data-dir", str(data), "--select", "group:annotations"]) == 0
    capsys.readouterr()
    assert isinstance(_evaluate(cfg_path, data), SkipReason)
    assert len(Warehouse(data).read_table("annotations")) == 5
