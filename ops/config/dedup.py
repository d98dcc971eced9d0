"""Configuration of de-duplication (StockEmotion §3.1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ops.config.base import _Strict


class DedupConfig(_Strict):
    """Near-duplicate removal (StockEmotion §3.1: perceptual-hash de-duplication)."""

    threshold: int = Field(4, ge=0, le=16)   # Hamming distance t for near-duplicates
    mode: Literal["fast", "exact"] = "fast"  # exact: bit-for-bit imagehash.phash
    # multi-index hashing bands; None: threshold + 2, i.e. lookup tables keyed on pairs of bands:
    # real pHashes have biased bits, and at 1M hashes this is 2-9x faster than threshold + 1
    # (bench/results/neardup.md) for about 3x the index size
    bands: int | None = Field(None, ge=2, le=32)
    batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _bands(self) -> "DedupConfig":
        if self.bands is not None and self.bands <= self.threshold:
            raise ValueError(f"bands ({self.bands}) must exceed threshold ({self.threshold}) (pigeonhole)")
        if self.bands is None and self.threshold + 2 > 32:
            raise ValueError("threshold too large for the default bands; set bands explicitly")
        return self

    @property
    def effective_bands(self) -> int:
        return self.bands if self.bands is not None else self.threshold + 2
