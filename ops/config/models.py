"""Configuration of the model side: backbones and features, the keep/reject and Emo8 predictors
(FindingEmo §2.3.1, §2.3.2, §3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ops.config.base import _Strict


class BackboneConfig(_Strict):
    """One feature extractor. ``weights``: ``train`` (the small CNN trained from scratch on the
    build's labelled images), ``none`` (random init, explicit), ``torchvision-default`` /
    ``timm-default`` / ``places365-default`` (the local cache, never downloaded), or a file path."""

    name: str = "tiny_cnn"                  # the architecture (models.backbones registry)
    id: str | None = None                   # this backbone's name in the build (default: name)
    weights: str = "train"
    train_tasks: list[Literal["keep", "emotion8", "affectnet8"]] = Field(
        default_factory=lambda: ["keep", "emotion8", "affectnet8"])  # weights: train: the labels it learns
    input_size: int | None = None                                  # None: the backbone's own recipe
    resize: Literal["center_crop", "letterbox", "stretch"] | None = None
    findingemo_letterbox: bool = False                             # FindingEmo §3: 800 x 600 letterbox
    batch_size: int = Field(32, ge=1, le=4096)
    compile: bool = False                   # torch.compile for feature extraction (~40 s once, then faster:
                                            # ResNet-50 bf16 1.5x here); the extractor key records it

    @property
    def key(self) -> str:
        return self.id or self.name

    @model_validator(mode="after")
    def _train_only_small(self) -> "BackboneConfig":
        if self.weights == "train" and self.name != "tiny_cnn":
            raise ValueError("weights: train trains the small CNN (name: tiny_cnn) from scratch; "
                             f"{self.name} needs pretrained weights (a path or a *-default cache)")
        return self


class BackboneTrainingConfig(_Strict):
    epochs: int = Field(24, ge=1, le=500)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=1)
    seed: int = 0
    augment: bool = True


class HeadConfig(_Strict):
    kind: Literal["linear", "mlp"] = "linear"
    hidden: list[int] = Field(default_factory=lambda: [128])
    dropout: float = Field(0.0, ge=0, lt=1)
    epochs: int = Field(300, ge=1, le=5000)
    lr: float = Field(1e-2, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=1)
    patience: int = Field(30, ge=1)
    seed: int = 0

    def spec(self):
        from ops.training.classifier import HeadSpec

        d = self.model_dump(exclude={"threshold"})
        return HeadSpec(**{**d, "hidden": tuple(d["hidden"])})


class KeepRejectConfig(HeadConfig):
    threshold: float = Field(0.75, ge=0, le=1)    # kept_images: p_keep at or above (FindingEmo §2.3.2: 0.75)


class ModelsConfig(_Strict):
    backbones: list[BackboneConfig] = Field(default_factory=lambda: [BackboneConfig()], min_length=1)
    predictor_backbone: str | None = None          # which backbone the predictors use (default: the first)
    backbone_training: BackboneTrainingConfig = BackboneTrainingConfig()
    keep_reject: KeepRejectConfig = KeepRejectConfig()
    emo8: HeadConfig = HeadConfig()
    holdout_fraction: float = Field(0.2, ge=0, lt=0.9)   # labelled images every model is scored on
    holdout_seed: int = 0
    # a stored model (the trained backbone, the baselines) is kept while at most this share of its
    # training labels changed (added, removed or relabelled) and none of the images it trained on is
    # held out now; 0 = retrain on any label change (ops.training.reuse)
    retrain_label_change: float = Field(0.10, ge=0, le=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _names(self) -> "ModelsConfig":
        names = [b.key for b in self.backbones]
        if len(set(names)) != len(names):
            raise ValueError(f"backbone ids repeat: {names} (give each an id)")
        if self.predictor_backbone is not None and self.predictor_backbone not in names:
            raise ValueError(f"predictor_backbone {self.predictor_backbone!r} is not among the backbones {names}")
        return self

    @property
    def primary(self) -> BackboneConfig:
        name = self.predictor_backbone or self.backbones[0].key
        return next(b for b in self.backbones if b.key == name)

    def backbone(self, key: str) -> BackboneConfig:
        return next(b for b in self.backbones if b.key == key)
