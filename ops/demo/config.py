"""The demo configuration: the generated corpus and world on a local server, loopback explicitly
allowed, and the world's simulated annotation exports next to FindingEmo-Light's real ones.

The corpus (:mod:`ops.demo.corpus`) and its expected statuses assume these limits: 800 < w < 1600,
``download.max_bytes`` 3,000,000, read timeout 2 s with 2 retries, at most 5 redirects.

The world's exports are written by the build (asset ``demo_world``) into the data directory, so
their paths are given as ``@demo_world/...`` and resolved by :func:`resolve_world_paths` once the
data directory is known (their sources say ``generated_by: demo_world``: not checked at load).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ops.config import EmoforgeConfig, parse_config
from ops.demo.corpus import DEMO_KEYWORDS

WORLD_MARK = "@demo_world/"
FACE_LABELS = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt", "None",
               "Uncertain", "Non-Face"]


def demo_settings() -> dict[str, Any]:
    """The demo configuration as a plain mapping (a config file can be layered over it)."""
    return {
        "acquisition": {
            "keywords": {k: list(v) for k, v in DEMO_KEYWORDS.items()},
            "provider": {"kind": "demo", "results_per_query": 100},
            "queries_per_batch": 4,
            "download": {
                "concurrency": 8, "per_host": 8, "connect_timeout": 2.0, "read_timeout": 2.0,
                "retries": 2, "backoff_base": 0.05, "backoff_max": 0.5, "max_retry_after": 5.0,
                "max_bytes": 3_000_000, "allow_hosts": ["127.0.0.1"],
            },
        },
        "dedup": {"threshold": 4},
        # two small CNNs trained from scratch on the world's labelled images (no pretrained weights here):
        # one on scenes (keep/reject, Emo8: the FindingEmo branch), one on faces (AffectNet-8);
        # letterboxed so that a scene's reject cues (a watermark in a corner, a collage) stay in view
        "models": {"backbones": [
            {"id": "scene_cnn", "name": "tiny_cnn", "weights": "train", "train_tasks": ["keep", "emotion8"],
             "input_size": 112, "resize": "letterbox"},
            {"id": "face_cnn", "name": "tiny_cnn", "weights": "train", "train_tasks": ["affectnet8"],
             "input_size": 96, "resize": "letterbox"}],
            "predictor_backbone": "scene_cnn", "backbone_training": {"epochs": 40}},
        "annotations": {
            "sources": [
                {"kind": "findingemo"},  # FindingEmo-Light's 25,869 real annotations
                {"kind": "findingemo", "name": "demo_scenes", "generated_by": "demo_world",
                 "path": WORLD_MARK + "annotations/findingemo.ann"},
                {"kind": "vote_counts", "name": "demo_faces", "generated_by": "demo_world", "taxonomy": "affectnet8",
                 "path": WORLD_MARK + "annotations/face_votes.csv", "item_column": "face_id",
                 "label_columns": FACE_LABELS, "split_column": "split", "image_path_column": "image_path"},
            ],
            "grading": {"gold_path": WORLD_MARK + "annotations/gold.csv", "gold_generated_by": "demo_world"},
        },
        # the world's face images are crops (whole_image); its kept scenes are searched with RetinaFace
        "faces": {"max_side": 960},
        # AffectNet+ §3.2 ensembles three ImageNet backbones, none of which can be loaded here: the demo
        # ensembles the small face CNN and MediaPipe's blendshapes (facial action coefficients, the
        # closest offline kin of action units, which also feed the AU-based classifier, §3.3). Its 800
        # faces hold fewer full-agreement faces than AffectNet's test-MAS (100 per emotion): 25 each.
        "soft_labels": {"ebc_backbones": ["face_cnn", "mediapipe_blendshapes"], "au_backbone": "mediapipe_blendshapes",
                        "test_mas_per_class": 25},
        # baselines: FindingEmo's full grid (3 tasks x 2 losses x 4 lrs) on the scene backbone with 2 runs
        # each; Deep Affect's ablation scene vs scene + pooled face blendshapes; CAGE on the scene backbone
        "training": {
            "findingemo": {"extractors": ["scene_cnn"], "runs": 2},
            "affectnet": {"extractors": ["face_cnn", "mediapipe_blendshapes"]},
            "deep_affect": {"architectures": ["shared"], "feature_sets": {"scene": ["scene_cnn"],
                                             "scene+faces": ["scene_cnn", "faces:mediapipe_blendshapes"]}},
            "cage": {"extractors": ["scene_cnn"]},
        },
    }


def demo_config() -> EmoforgeConfig:
    """The embedded demo configuration (world paths unresolved: see :func:`resolve_world_paths`)."""
    return parse_config(demo_settings(), "<demo>")


def resolve_world_paths(cfg: EmoforgeConfig, world_dir: Path) -> EmoforgeConfig:
    """``@demo_world/...`` paths made absolute under ``world_dir``; with the world disabled (or a
    provider other than the demo) the sources it would generate are left out."""
    world_on = cfg.acquisition.provider.kind == "demo" and cfg.acquisition.provider.demo.world.enabled

    def fix(p: str | None) -> str | None:
        return str(Path(world_dir) / p[len(WORLD_MARK):]) if isinstance(p, str) and p.startswith(WORLD_MARK) else p

    sources = [s.model_copy(update={"path": fix(s.path)}) for s in cfg.annotations.sources
               if world_on or s.generated_by != "demo_world"]
    g = cfg.annotations.grading
    grading = g.model_copy(update={"gold_path": fix(g.gold_path)} if world_on or g.gold_generated_by != "demo_world"
                           else {"gold_path": None, "gold_generated_by": None})
    ann = cfg.annotations.model_copy(update={"sources": sources, "grading": grading})
    return cfg.model_copy(update={"annotations": ann})
