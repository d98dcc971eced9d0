"""A rebuild of the demo on unchanged data redoes nothing it can keep (issue 11, refreshes): face
metadata of unchanged faces is reused, every image keeps its split, the blocking checks answer from
their earlier outcomes, and the release made by the first build is found again.

Runs on the session's demo build (tests/conftest.py ``demo_build``) through the CLI, as a user
refreshes; what was reused is read from the Dagster instance's materializations and the data
directory, not from the code under test."""

from __future__ import annotations

import pytest
from dagster import AssetKey, DagsterInstance

from pipelines.cli import main
from warehouse.store import Warehouse

pytestmark = pytest.mark.slow

RELEASE = "emoforge-dataset"   # ops/config/release.py's default name


def _latest_metadata(home, asset: str) -> dict:
    with DagsterInstance.from_config(str(home)) as inst:
        ev = inst.get_latest_materialization_event(AssetKey(asset))
        assert ev is not None, f"{asset} was never materialized"
        return {k: v.value for k, v in ev.asset_materialization.metadata.items()}


def test_a_rebuild_on_unchanged_data_reuses_face_metadata_splits_checks_and_the_release(demo_build, clean_env):
    home = demo_build.root / "dagster_home"
    clean_env.setenv("DAGSTER_HOME", str(home))
    wh = Warehouse(demo_build.data_dir)
    splits_before = wh.read_table("dataset_splits").sort_values(["scheme", "item_id"]).reset_index(drop=True)
    meta_before = wh.read_table("face_metadata")
    releases_before = wh.releases(RELEASE)
    checks_dir = wh.check_results().root
    outcomes_before = sorted(p.name for p in checks_dir.glob("*.json"))
    assert releases_before and outcomes_before and len(meta_before) > 0

    assert main(["build", *demo_build.args, "--select",
                 "key:face_metadata or key:dataset_splits or key:dataset_release"]) == 0

    md = _latest_metadata(home, "face_metadata")
    assert md["reused_rows"] == len(meta_before) and md["computed_rows"] == 0
    after = wh.read_table("face_metadata")
    assert after.sort_values("face_id")["yaw"].round(9).equals(meta_before.sort_values("face_id")["yaw"].round(9))

    splits_after = wh.read_table("dataset_splits").sort_values(["scheme", "item_id"]).reset_index(drop=True)
    assert splits_after[["scheme", "item_id", "split"]].equals(splits_before[["scheme", "item_id", "split"]])
    kept = _latest_metadata(home, "dataset_splits")["kept_from_previous_build"]
    assert kept and all(v["same_split"] == v["in_previous"] == v["images"] for v in kept.values())

    # the check of dataset_splits saw the same rows as in the first build: no new outcome
    assert sorted(p.name for p in checks_dir.glob("*.json")) == outcomes_before
    assert wh.releases(RELEASE) == releases_before                              # the same release, found again
    assert _latest_metadata(home, "dataset_release")["reused"] is True
