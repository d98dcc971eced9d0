"""The UI as users meet it, through Dagster's GraphQL API (issue "Beyond one machine": the UI part).

`dagster dev` is started from the repository root on the demo build's own instance (DAGSTER_HOME)
and data directory, exactly as `make ui` does, and queried over HTTP on 127.0.0.1: the asset graph
has the expected groups and assets, the latest materializations carry their metadata (row counts,
plots, the datasheet), and a run of the annotation group launched from the API succeeds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import reserve_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _gql(url: str, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.loads(r.read())
    assert "errors" not in out, out["errors"]
    return out["data"]


@pytest.fixture(scope="module")
def ui(demo_build):
    sock, port = reserve_port()
    sock.close()   # dagster binds the port itself; the reservation only picked a free one
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOFORGE_")}
    env.update(EMOFORGE_HOME=str(demo_build.data_dir), EMOFORGE_DEMO="1",
               EMOFORGE_CONFIG=str(demo_build.root / "port.yaml"),
               DAGSTER_HOME=str(demo_build.root / "dagster_home"))
    log = open(demo_build.root / "dagster_dev.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        # wait for the event "the code location is loaded": the server answers and lists our assets
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {proc.returncode}; see {log.name}")
            try:
                data = _gql(url, "{ assetNodes { assetKey { path } } }")
                if data["assetNodes"]:
                    break
            except (OSError, AssertionError, ValueError):
                pass
            time.sleep(1)   # polling an HTTP server's readiness (there is no event to wait on)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_the_asset_graph_has_every_group_and_contract_asset(ui):
    nodes = _gql(ui, "{ assetNodes { assetKey { path } groupName jobNames } }")["assetNodes"]
    groups = {n["groupName"] for n in nodes}
    assert {"acquisition", "dedup", "annotations", "models", "features", "faces", "labels", "training",
            "release"} <= groups
    keys = {n["assetKey"]["path"][-1] for n in nodes}
    assert {"unique_images", "merged_annotations", "image_features", "kept_images", "faces", "soft_labels",
            "dataset_splits", "findingemo_baselines", "baseline_predictions", "dataset_release"} <= keys
    jobs = {j for n in nodes for j in n["jobNames"]}
    assert {"annotations_job", "faces_job", "training_job", "release_job"} <= jobs


MATERIALIZATION = """
query($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries {
          label
          __typename
          ... on IntMetadataEntry { intValue }
          ... on MarkdownMetadataEntry { mdStr }
          ... on JsonMetadataEntry { jsonString }
        }
      }
    }
  }
}"""


def _latest(ui, name: str) -> dict:
    mats = _gql(ui, MATERIALIZATION, {"path": [name]})["assetOrError"]["assetMaterializations"]
    assert mats, f"{name} has no materialization in the UI"
    return {e["label"]: e for e in mats[0]["metadataEntries"]}


def test_materializations_carry_row_counts_plots_and_the_datasheet(ui, demo_build):
    from warehouse.store import Warehouse

    wh = Warehouse(demo_build.data_dir)
    md = _latest(ui, "unique_images")
    assert md["dagster/row_count"]["intValue"] == len(wh.read_table("unique_images", columns=["sha256"]))
    # pictures where people would rather look than read: markdown entries with an embedded PNG
    for asset, label in (("duplicate_groups", "contact_sheet"), ("kept_images", "contact_sheet"),
                         ("soft_labels", "faces_by_subset"), ("annotation_queue", "next_batch"),
                         ("findingemo_baselines", "learning_curve"), ("affectnet_baselines", "confusion_matrix")):
        entry = _latest(ui, asset).get(label)
        assert entry is not None and "data:image/png;base64," in entry["mdStr"], (asset, label)
    rel = _latest(ui, "dataset_release")
    assert rel["datasheet"]["mdStr"].startswith("# Datasheet:")
    runs = json.loads(_latest(ui, "findingemo_baselines")["runs"]["jsonString"])
    assert runs["ok"] == len(wh.read_table("training_runs", partition="findingemo"))


LAUNCH = """
mutation($job: String!) {
  launchRun(executionParams: {selector: {repositoryLocationName: "emoforge", repositoryName: "__repository__",
                                         jobName: $job}, runConfigData: {}}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


def test_a_run_launched_from_the_api_succeeds(ui):
    out = _gql(ui, LAUNCH, {"job": "annotations_job"})["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    run_id = out["run"]["runId"]
    while True:   # wait for the run's terminal event (the daemon dequeues, the launcher executes)
        status = _gql(ui, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                      {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    md = _latest(ui, "merged_annotations")
    assert md["dagster/row_count"]["intValue"] > 0
