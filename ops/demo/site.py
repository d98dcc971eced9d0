"""The demo's web site: the fault corpus plus the demo world's images, as one list of search results.

The corpus (:mod:`ops.demo.corpus`) holds what the real web throws at a downloader (duplicates,
broken files, hostile hosts); the world (:mod:`ops.demo.world`) holds images with known emotional
content (face crops and scenes). Both are served by :class:`ops.demo.server.DemoServer` from one
directory: the corpus files at the top, the world under ``world/``. Each world image is a search
result of one of the demo queries (a seeded shuffle deals them out evenly), ranked after the
corpus's results of that query. The world's annotation exports name images by content hash, so
they link to whatever URL the image was acquired from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ops.acquisition import statuses as S
from ops.demo.corpus import DEMO_QUERIES, DemoEntry, build_corpus

WORLD_DIR = "world"


@dataclass(frozen=True)
class WorldSpec:
    """Parameters of the demo world (``acquisition.provider.demo.world`` of the configuration)."""

    enabled: bool = True
    seed: int = 11
    n_faces: int = 800
    n_scenes: int = 400
    face_size: int = 832
    render_size: int | None = 160   # faces are drawn at this size and scaled up (cheaper to render)
    face_fraction: float = 0.85     # of the crop the face spans (AffectNet-style tight crops)
    overlap_fraction: float = 0.6   # scenes annotated by 2-5 annotators (the others by one)
    workers: int = 2


@dataclass(frozen=True)
class Site:
    """A built demo site: its directory, entries (search results) and the world (None if disabled)."""

    root: Path
    entries: list[DemoEntry]
    world: object | None

    @property
    def world_dir(self) -> Path:
        return self.root / WORLD_DIR


def world_entries(world, corpus: list[DemoEntry], seed: int) -> list[DemoEntry]:
    """Search results for every world image: dealt out over the demo queries, ranked after the
    corpus's own results of each query (reported sizes are the true ones)."""
    records = [("world_face", f) for f in world.faces] + [("world_scene", s) for s in world.scenes]
    order = np.random.default_rng([seed, 5]).permutation(len(records))
    last_rank = {q: 0 for q in DEMO_QUERIES}
    for e in corpus:
        last_rank[e.query] = max(last_rank.get(e.query, 0), e.rank)
    out = []
    for k, i in enumerate(order):
        kind, rec = records[int(i)]
        q = DEMO_QUERIES[k % len(DEMO_QUERIES)]
        last_rank[q] += 1
        file = f"{WORLD_DIR}/{rec['file']}"
        out.append(DemoEntry(
            name=f"world-{rec['item_id']}", kind=kind, path=f"/{file}", host_override=None, query=q,
            rank=last_rank[q], reported_width=int(rec["width"]), reported_height=int(rec["height"]),
            expected_status=S.OK, duplicate_of=None, file=file))
    return out


def build_site(root: Path, *, n_images: int = 240, seed: int = 7, world=None) -> Site:
    """Build (or find intact) the corpus and the world under ``root``; return every search result.
    ``world``: a WorldSpec, or the configuration's ``acquisition.provider.demo.world`` section (the
    configuration does not know this module; the section is read here)."""
    from ops.demo.world import build_world

    root = Path(root)
    if world is not None and not isinstance(world, WorldSpec):
        world = WorldSpec(**world.model_dump())
    corpus = build_corpus(root, n_images=n_images, seed=seed)
    w = None
    entries = list(corpus)
    if world is not None and world.enabled:
        w = build_world(root / WORLD_DIR, seed=world.seed, n_faces=world.n_faces, n_scenes=world.n_scenes,
                        face_size=world.face_size, render_size=world.render_size, workers=world.workers,
                        face_fraction=world.face_fraction, overlap_fraction=world.overlap_fraction)
        entries += world_entries(w, corpus, seed)
    return Site(root, entries, w)


def entries_json(entries: list[DemoEntry]) -> list[dict]:
    return [asdict(e) for e in entries]
