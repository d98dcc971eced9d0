"""Declarative automation (pipelines/definitions.py, the `refresh_on_new_data` sensor): after an
upstream table changes, exactly the automated assets downstream of it are requested, evaluated by
Dagster's own automation engine against an instance's materialization history."""

from __future__ import annotations

import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance, evaluate_automation_conditions

from pipelines.definitions import AUTOMATED_GROUPS, build_definitions, resources_from_env


def _descendants(graph, key) -> set:
    out, stack = set(), [key]
    while stack:
        for child in graph.get(stack.pop()).child_keys:
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def _settled_instance(defs):
    """An instance where every unpartitioned asset has been materialized once, in graph order."""
    instance = DagsterInstance.ephemeral()
    graph = defs.resolve_asset_graph()
    for key in graph.toposorted_asset_keys:
        if graph.get(key).partitions_def is None:
            instance.report_runless_asset_event(AssetMaterialization(key))
    return instance, graph


@pytest.mark.slow
def test_new_labels_request_exactly_what_depends_on_them():
    defs = build_definitions(resources=resources_from_env())
    instance, graph = _settled_instance(defs)
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0          # nothing changed since everything last ran

    instance.report_runless_asset_event(AssetMaterialization(AssetKey("merged_annotations")))
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    requested = {r.key for r in result.results if r.true_subset.size > 0}
    expected = {k for k in _descendants(graph, AssetKey("merged_annotations"))
                if graph.get(k).group_name in AUTOMATED_GROUPS}
    assert expected and requested == expected
    # outside the automated groups nothing is requested: the statistics beside the merge, a release
    assert AssetKey("annotation_stats") not in requested and AssetKey("dataset_release") not in requested


@pytest.mark.slow
def test_new_images_flow_to_features_and_everything_after_them():
    defs = build_definitions(resources=resources_from_env())
    instance, graph = _settled_instance(defs)
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    instance.report_runless_asset_event(AssetMaterialization(AssetKey("unique_images")))
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    requested = {r.key for r in result.results if r.true_subset.size > 0}
    expected = {k for k in _descendants(graph, AssetKey("unique_images"))
                if graph.get(k).group_name in AUTOMATED_GROUPS}
    assert AssetKey("image_features") in requested and requested == expected
    assert not any(graph.get(k).group_name in ("release", "annotations", "acquisition") for k in requested)
