"""The demo's generated world (asset ``demo_world``): what the embedded demo acquires and annotates.

In a demo build it writes the fault corpus and the world of face crops and scenes with known
emotional content (``ops.demo.site``), the world's simulated annotation exports that the annotation
sources read, and its truth manifest (for tests and benchmarks; the pipeline never reads it). In any
other build it records that there is nothing to generate.
"""

from pathlib import Path

from dagster import AssetExecutionContext, MetadataValue, asset

from assets._io import AssetIO, code_version
from assets.resources import EmoforgeResource
from ops.demo import annotators, corpus, face_render, faces, scenes, site, world

GROUP = "demo"


@asset(group_name=GROUP, kinds={"python"}, code_version=code_version(corpus, site, world, faces, face_render, scenes, annotators),
       description="The embedded demo's web corpus (duplicates, faults, hostile hosts) and its world of face "
                   "crops and scenes with known emotion mixtures, action units, pose and attributes, plus the "
                   "world's simulated FindingEmo and vote-count annotation exports. Nothing outside demo builds.")
def demo_world(context: AssetExecutionContext, emoforge: EmoforgeResource):
    s = emoforge.settings
    io = AssetIO(context, emoforge, s.acquisition.provider.demo)
    if s.acquisition.provider.kind != "demo":
        return io.result(None, demo=False, note=f"not a demo build (provider {s.acquisition.provider.kind}): nothing to generate")
    d = s.acquisition.provider.demo
    built = site.build_site(emoforge.demo_site_dir, n_images=d.n_images, seed=d.seed, world=d.world)
    kinds: dict[str, int] = {}
    for e in built.entries:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    md = {"demo": True, "site_dir": MetadataValue.path(str(built.root)), "search_results": MetadataValue.int(len(built.entries)),
          "by_kind": MetadataValue.json(kinds)}
    w = built.world
    if w is not None:
        md.update({
            "world_faces": MetadataValue.int(len(w.faces)), "world_scenes": MetadataValue.int(len(w.scenes)),
            "scene_rejects": MetadataValue.json({k: sum(1 for x in w.scenes if x.get("reject_reason") == k)
                                                 for k in sorted({x.get("reject_reason") for x in w.scenes if x.get("reject_reason")})}),
            "annotation_exports": MetadataValue.json([str(p) for p in (w.ann_path, w.votes_path, w.gold_path)]),
            "truth": MetadataValue.path(str(w.out_dir / "truth")),
        })
        io.other_files += [p for p in (w.ann_path, w.votes_path, w.gold_path) if p is not None and Path(p).is_file()]
    else:
        md["world"] = "disabled (acquisition.provider.demo.world.enabled: false)"
    io.identity["site"] = [str(built.root), len(built.entries)]
    return io.result(None, **md)
