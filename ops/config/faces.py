"""Configuration of faces, their metadata and AffectNet+'s soft labels (AffectNet+ §3.1–3.5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ops.config.base import _Strict


class FacesConfig(_Strict):
    """Which images hold faces and how they are found.

    ``mode``: ``auto`` treats images annotated in a face taxonomy (AffectNet-8 vote counts, FER+) as
    face crops (``whole_image``: the crop is the face) and searches the others for faces
    (``detect``); ``whole_image`` / ``detect`` apply to every image."""

    mode: Literal["auto", "whole_image", "detect"] = "auto"
    face_taxonomies: list[str] = Field(default_factory=lambda: ["affectnet8"])
    detect_on: Literal["kept", "all"] = "kept"        # detect mode: kept images (keep/reject CNN) or all
    detector: Literal["retinaface", "mtcnn"] = "retinaface"
    min_score: float = Field(0.9, ge=0, le=1)
    max_side: int = Field(1280, ge=64)                 # larger images are scaled down for the detector
    crop_size: int = Field(224, ge=32, le=1024)
    workers: int = Field(2, ge=1, le=64)
    metadata: bool = True                              # head pose, 68 landmarks, age, gender per face
    blendshapes: bool = True                           # MediaPipe's 52 blendshapes as face features
                                                       # (id "mediapipe_blendshapes", ops/faces/blendshapes.py)
    ethnicity_weights: str | None = None               # no offline model exists: a user-supplied ONNX file


class SoftLabelsConfig(_Strict):
    """AffectNet+ soft labels: the ensemble of binary classifiers (§3.2) and the AU-based classifier
    (§3.3) on cached face features, Eq. 14, and the Easy / Challenging / Difficult subsets (§3.5.1)."""

    # face feature extractors by id: models.backbones ids, or "mediapipe_blendshapes" (faces.blendshapes)
    ebc_backbones: list[str] | None = None      # default: every extractor with face features
    au_backbone: str | None = None              # default: the first of ebc_backbones
    test_mas_per_class: int = Field(100, ge=1)  # §3.1: up to 100 full-agreement faces per emotion
    test_mas_seed: int = 0
    cs_variant: Literal["printed", "balanced_accuracy"] = "printed"  # Eq. 3 as printed, or as the tables
    au_scores: Literal["derived", "printed"] = "derived"             # Eq. 8 from Table 2, or as printed
    shared_aus: Literal["derived", "printed"] = "derived"            # Table 3 for negative sampling
    lr: float = Field(1e-2, gt=0)              # heads on cached features (the paper: 1e-3 EBC, 1e-4 AU on images)
    epochs_ebc: int = Field(25, ge=1)          # §3.2: 25 epochs
    epochs_au: int = Field(40, ge=1)           # §3.3: 40 epochs
    batch_size: int = Field(50, ge=1)          # §3.2: batch 50
    negatives_per_positive: float = Field(1.0, gt=0)
    seed: int = 0
