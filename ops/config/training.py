"""Configuration of the dataset splits and the seed papers' baselines (issue "Training and evaluation")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ops.config.base import _Strict

FINDINGEMO_TASKS = ("emo8", "arousal3", "valence3")


class SplitsConfig(_Strict):
    """FindingEmo §3: 80/20 stratified per Emo8; Deep Affect §2.3: k folds; seeds make them repeatable."""

    test_fraction: float = Field(0.2, gt=0, lt=1)
    kfolds: int = Field(5, ge=2, le=20)
    seed: int = 0
    # a refresh keeps every image's split from the last build (only new images are placed); false
    # draws the random schemes afresh from the items and the seed
    keep_previous: bool = True


class FindingEmoBaselinesConfig(_Strict):
    """FindingEmo §3: a linear output layer per backbone, tasks × losses × learning rates × runs."""

    enabled: bool = True
    extractors: list[str] | None = None        # models.backbones ids (image features); default: all
    tasks: list[Literal["emo8", "arousal3", "valence3"]] = Field(default_factory=lambda: list(FINDINGEMO_TASKS))
    losses: list[Literal["ce", "uce"]] = Field(default_factory=lambda: ["ce", "uce"])
    lrs: list[float] = Field(default_factory=lambda: [0.1, 0.01, 0.001, 0.0001])   # §3 grid
    runs: int = Field(3, ge=1)                 # seeds 0..runs-1 per setting
    max_epochs: int = Field(250, ge=1)         # §3
    patience: int = Field(6, ge=1)             # §3: best loss or W.F1 6 epochs behind
    batch_size: int = Field(64, ge=1)          # not stated in the paper
    monitor: Literal["test", "holdout"] = "test"   # §3 stops on the test set; holdout: 10 % of train
    uce_penalty: Literal["log", "linear"] = "log"  # Eq. 1's "log 1 − p_h" read as log(1 − p_h) or −p_h

    @field_validator("lrs")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if not v or any(x <= 0 for x in v):
            raise ValueError("learning rates must be a non-empty list of positive numbers")
        return v


class AffectNetBaselinesConfig(_Strict):
    """AffectNet+ §4.3: Hard-FER and Soft-FER per face feature extractor, on the source split."""

    enabled: bool = True
    extractors: list[str] | None = None        # face extractors (face_extractors ids); default: all
    kinds: list[Literal["hard_fer", "soft_fer"]] = Field(default_factory=lambda: ["hard_fer", "soft_fer"])
    scheme: Literal["source", "affectnet_mas"] = "source"   # AffectNet's train / validation
    train_split: str = "train"
    eval_split: str = "validation"
    lr: float = Field(0.01, gt=0)
    runs: int = Field(1, ge=1)
    max_epochs: int = Field(250, ge=1)
    patience: int = Field(6, ge=1)
    batch_size: int = Field(64, ge=1)


class DeepAffectConfig(_Strict):
    """Deep Affect §2.2–2.4: feature groups concatenated into the DFFN; k-fold cross-validation."""

    enabled: bool = True
    # named feature sets (the paper's ablations): models.backbones ids for image features, or
    # "faces:<face extractor id>" for the mean over an image's faces (zeros and a flag without a face).
    feature_sets: dict[str, list[str]] | None = None   # default: {"all": every backbone and face extractor}
    architectures: list[Literal["shared", "split"]] = Field(default_factory=lambda: ["shared", "split"])
    hidden: list[int] = Field(default_factory=lambda: [3000, 1000, 500])   # §2.3
    dropout: float = Field(0.5, ge=0, lt=1)                                # §2.3
    lr: float = Field(4e-4, gt=0)                                          # §2.3
    batch_size: int = Field(25, ge=1)                                      # §2.3
    max_epochs: int = Field(250, ge=1)
    runs: int = Field(1, ge=1)


class CageConfig(_Strict):
    """CAGE §4.1–4.3: joint expression + valence/arousal (α), and valence/arousal only (β)."""

    enabled: bool = True
    extractors: list[str] | None = None        # models.backbones ids; default: all
    kinds: list[Literal["joint", "va"]] = Field(default_factory=lambda: ["joint", "va"])
    alpha: float = Field(5.0, ge=0)            # Table 5
    beta: float = Field(3.0, ge=0)             # Table 5
    lr: float = Field(1e-3, gt=0)
    runs: int = Field(1, ge=1)
    max_epochs: int = Field(250, ge=1)
    patience: int = Field(6, ge=1)
    batch_size: int = Field(64, ge=1)


class PredictionsConfig(_Strict):
    """Which registered baseline labels new images (``baseline_predictions``): a model_version, or
    the best FindingEmo run of ``task`` (highest test W.F1) when None."""

    model_version: str | None = None
    task: Literal["emo8", "arousal3", "valence3"] = "emo8"


class TrainingConfig(_Strict):
    splits: SplitsConfig = SplitsConfig()
    findingemo: FindingEmoBaselinesConfig = FindingEmoBaselinesConfig()
    affectnet: AffectNetBaselinesConfig = AffectNetBaselinesConfig()
    deep_affect: DeepAffectConfig = DeepAffectConfig()
    cage: CageConfig = CageConfig()
    predictions: PredictionsConfig = PredictionsConfig()
