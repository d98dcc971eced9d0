"""The preprocessing that travels with a backbone: PIL image → normalized float tensor.

One small frozen dataclass, hashable and serializable, so that the feature cache can key on it
(see `models.backbones.extractor_key`). Three resize policies:

- "center_crop": shorter side to `resize_size`, then a central `size` crop (torchvision's ImageNet
  recipe: 256 → 224; the arithmetic matches `torchvision.transforms` on PIL images exactly);
- "letterbox": scale to fit inside `size` keeping the aspect ratio, centre it and pad with `fill`
  (FindingEmo §3: "scaling images to an 800x600 resolution, keeping the original ratio and centering
  and padding with black borders where necessary, followed by normalization");
- "stretch": resize to `resize_size`×`resize_size` ignoring the aspect ratio, then a central `size`
  crop (the official Places365 scripts: Resize((256, 256)), CenterCrop(224)).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RESIZE_POLICIES = ("center_crop", "letterbox", "stretch")
_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
_EXIF_ORIENTATION = 0x0112


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    h, w = v
    return (int(h), int(w))


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the backbone's input tensor.

    size: (height, width) of the output tensor. resize_size: the shorter side before the crop
    ("center_crop") or the square side before the crop ("stretch"); ignored by "letterbox".
    fill: letterbox border colour in pixel space (black), normalized like the image.
    draft: let PIL decode JPEGs at a reduced scale (1/2, 1/4, 1/8) when that still leaves enough
    pixels; much faster decoding (DESIGN.md: 82 → 216 img/s per core), slightly different pixels.
    exif_transpose: apply the EXIF orientation first, as a viewer would.
    """

    size: tuple[int, int] = (224, 224)
    resize: str = "center_crop"
    resize_size: int | None = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    fill: tuple[int, int, int] = (0, 0, 0)
    draft: bool = False
    exif_transpose: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "size", _pair(self.size))
        set_(self, "mean", tuple(float(m) for m in self.mean))
        set_(self, "std", tuple(float(s) for s in self.std))
        set_(self, "fill", tuple(int(c) for c in self.fill))
        if self.resize_size is not None:
            set_(self, "resize_size", int(self.resize_size))
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {RESIZE_POLICIES}, not {self.resize!r}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {sorted(_INTERPOLATIONS)}, not {self.interpolation!r}"
            )
        if min(self.size) < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need three values each, std > 0")
        crops = self.resize != "letterbox" and self.resize_size is not None
        if crops and self.resize_size < max(self.size):
            raise ValueError(f"resize_size {self.resize_size} is smaller than the crop {self.size}")

    # --- constructors -------------------------------------------------------------------------

    @classmethod
    def imagenet(cls, size: int = 224, resize_size: int = 256, **kw) -> Preprocess:
        return cls(size=(size, size), resize="center_crop", resize_size=resize_size, **kw)

    @classmethod
    def findingemo(cls, **kw) -> Preprocess:
        """FindingEmo §3: 800×600 letterbox with black borders, ImageNet normalization."""
        return cls(size=(600, 800), resize="letterbox", resize_size=None, **kw)

    @classmethod
    def from_torchvision(cls, weights) -> Preprocess:
        """The recipe a torchvision weights enum member advertises via `.transforms()`."""
        t = weights.transforms()
        crop, resize = list(t.crop_size), list(t.resize_size)
        interp = getattr(t.interpolation, "value", str(t.interpolation))
        return cls(
            size=(crop[0], crop[-1]),
            resize="center_crop",
            resize_size=resize[0],
            mean=tuple(t.mean),
            std=tuple(t.std),
            interpolation=str(interp).lower(),
        )

    @classmethod
    def from_timm(cls, cfg: dict) -> Preprocess:
        """timm's eval recipe: shorter side to floor(size / crop_pct), central crop."""
        _, h, w = cfg.get("input_size", (3, 224, 224))
        crop_pct = float(cfg.get("crop_pct") or 0.875)
        return cls(
            size=(h, w),
            resize="center_crop",
            resize_size=math.floor(max(h, w) / crop_pct),
            mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
            std=tuple(cfg.get("std", IMAGENET_STD)),
            interpolation=str(cfg.get("interpolation") or "bilinear"),
        )

    def replace(self, **changes) -> Preprocess:
        return dataclasses.replace(self, **changes)

    # --- identity -----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def fingerprint(self) -> str:
        """A short hash of every field; any change of policy, size or statistics changes it."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # --- the transform ------------------------------------------------------------------------

    def _draft(self, img: Image.Image) -> None:
        if getattr(img, "format", None) != "JPEG" or not getattr(img, "tile", None):
            return  # not a JPEG, or already decoded (draft only acts before loading)
        w, h = img.size
        H, W = self.size
        if self.exif_transpose and img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
            H, W = W, H  # the stored image is rotated by 90° relative to what we will see
        if self.resize == "letterbox":
            s = min(W / w, H / h)
            need = (math.ceil(w * s), math.ceil(h * s))
        elif self.resize == "stretch":
            side = self.resize_size or max(H, W)
            need = (side, side)
        else:
            s = (self.resize_size or max(H, W)) / min(w, h)
            need = (math.ceil(w * s), math.ceil(h * s))
        if need[0] < w and need[1] < h:
            img.draft("RGB", need)

    def resize_image(self, img: Image.Image) -> Image.Image:
        """The geometric part: returns an RGB PIL image of exactly `size` (H, W)."""
        if self.draft:
            self._draft(img)
        if self.exif_transpose:
            img = ImageOps.exif_transpose(img)
        if img.mode != "RGB":
            img = img.convert("RGBA").convert("RGB") if img.mode == "P" else img.convert("RGB")
        resample = _INTERPOLATIONS[self.interpolation]
        H, W = self.size
        w, h = img.size
        if self.resize == "letterbox":
            s = min(W / w, H / h)
            nw, nh = max(1, min(W, round(w * s))), max(1, min(H, round(h * s)))
            canvas = Image.new("RGB", (W, H), self.fill)
            canvas.paste(img.resize((nw, nh), resample), ((W - nw) // 2, (H - nh) // 2))
            return canvas
        if self.resize == "stretch":
            side = self.resize_size or max(H, W)
            img = img.resize((side, side), resample)
        else:  # center_crop: shorter side to resize_size, as torchvision's Resize(int) does
            short = self.resize_size or max(H, W)
            if w <= h:
                nw, nh = short, int(short * h / w)
            else:
                nw, nh = int(short * w / h), short
            if (nw, nh) != (w, h):
                img = img.resize((nw, nh), resample)
        w, h = img.size
        top, left = round((h - H) / 2.0), round((w - W) / 2.0)  # as torchvision's center_crop
        return img.crop((left, top, left + W, top + H))

    def to_tensor(self, img: Image.Image) -> torch.Tensor:
        """An RGB image of `size` → (3, H, W) float32, scaled to [0, 1] and normalized."""
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        x = x.float().div_(255.0)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return x.sub_(mean).div_(std)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """PIL image → (3, H, W) float32 tensor ready for the backbone."""
        return self.to_tensor(self.resize_image(img))

    def stack(self, images: Iterable[Image.Image]) -> torch.Tensor:
        """Several PIL images → one (B, 3, H, W) batch."""
        return torch.stack([self(im) for im in images])
