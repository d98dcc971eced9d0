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


BATCH_READERS = {"duplicate_groups", "unique_images", "raw_annotations", "annotator_scores", "merged_annotations",
                 "annotation_stats"}


def _global_state(home) -> dict:
    """{asset: (storage id, output fingerprint)} of every unpartitioned asset's latest materialization."""
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    out = {}
    with DagsterInstance.from_config(str(home)) as inst:
        for k in graph.get_all_asset_keys():
            if graph.get(k).partitions_def is not None:
                continue
            recs = inst.fetch_materializations(k, limit=1).records
            assert recs, f"{k.to_user_string()} was never materialized"
            md = recs[0].asset_materialization.metadata
            fp = md.get("emoforge/output_fingerprint")
            out[k.to_user_string()] = (recs[0].storage_id, fp.value if fp is not None else None)
    return out


def test_a_plain_rebuild_runs_only_the_global_assets_whose_inputs_changed(demo_build, clean_env, capsys):
    """A refresh with nothing new leaves out every global asset whose inputs, code, configuration and
    files are those of its last successful run; a table deleted by hand is written again, and since it
    comes out the same, nothing after it runs."""
    home = demo_build.root / "dagster_home"
    clean_env.setenv("DAGSTER_HOME", str(home))
    wh = Warehouse(demo_build.data_dir)
    before = _global_state(home)
    soft_labels_file = wh.table_path("soft_labels")     # written by an asset no batch reader feeds into
    mtime = soft_labels_file.stat().st_mtime_ns

    assert main(["build", *demo_build.args]) == 0
    out = capsys.readouterr().out
    after = _global_state(home)
    ran = {k for k in before if after[k][0] != before[k][0]}
    # the demo's stalled and failing hosts leave transient failures, which the next builds download again
    # (download.max_build_attempts): the stages that read the batches (dedup; raw_annotations links
    # annotations to downloads) and the ones after them in their job run again and write the same content
    assert ran <= BATCH_READERS, sorted(ran)
    assert all(after[k][1] is not None and after[k][1] == before[k][1] for k in ran)
    assert "unchanged since they were built, not run" in out
    assert soft_labels_file.stat().st_mtime_ns == mtime             # not even rewritten

    kept = wh.table_path("kept_images")
    content = kept.read_bytes()
    kept.unlink()
    assert main(["build", *demo_build.args]) == 0
    again = _global_state(home)
    ran = {k for k in after if again[k][0] != after[k][0]}
    # kept_images runs, and the assets after it in the same run (what it writes is not known before);
    # it writes the same bytes, so the faces job after it (it searches kept images) is left out
    assert "kept_images" in ran and ran <= {"kept_images", "emo8_model", "emo8_predictions"} | BATCH_READERS, sorted(ran)
    assert "faces" not in ran and "dataset_release" not in ran
    assert kept.read_bytes() == content and all(again[k][1] == after[k][1] for k in ran)
