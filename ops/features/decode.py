"""Decoding images for inference: file → uint8 (H, W, 3) at the backbone's input size.

JPEGs are decoded with libjpeg's DCT scaling (PIL ``draft``, via ``Preprocess(draft=True)``): a
1200 px photo bound for a 256 px resize is decoded at 1/4 scale, which skips most of the inverse
DCT and colour conversion (DESIGN.md "Machines here": 82 → 216 img/s per core). PIL releases the
GIL while it decodes and resizes, so a few threads decode in parallel with the backbone's forward
pass; worker processes are the alternative (``mode="process"``; bench/bench_features.py measures
both). Normalization happens later, on the whole batch (:func:`to_batch`), in the main process.

A file that cannot be decoded is an outcome, not a crash: :func:`decode_for_inference` returns the
error text and the caller records it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from models.preprocess import Preprocess

DECODE_MODES = ("thread", "process")
MISSING = "missing"  # the file could not be opened at all (not recorded in the store: transient)


@dataclass(frozen=True)
class Decoded:
    """One image's outcome: ``pixels`` (H, W, 3) uint8, or ``status`` and ``error``."""

    pixels: np.ndarray | None
    status: str | None = None
    error: str | None = None


def decode_for_inference(path, preprocess: Preprocess) -> Decoded:
    """Open, draft-decode (when ``preprocess.draft``), resize and crop to ``preprocess.size``."""
    try:
        fh = open(path, "rb")
    except OSError as e:
        return Decoded(None, MISSING, f"{type(e).__name__}: {e}")
    try:
        with fh, Image.open(fh) as im:
            return Decoded(np.asarray(preprocess.resize_image(im), dtype=np.uint8))
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError…
        return Decoded(None, "decode_error", f"{type(e).__name__}: {e}"[:500])


def decode_chunk(paths: Sequence, preprocess: Preprocess) -> tuple[list[Decoded], float]:
    """Decode several files in one task; returns the outcomes and the seconds spent."""
    t0 = time.perf_counter()
    out = [decode_for_inference(p, preprocess) for p in paths]
    return out, time.perf_counter() - t0


def make_pool(mode: str, workers: int) -> Executor:
    if mode not in DECODE_MODES:
        raise ValueError(f"decode mode must be one of {DECODE_MODES}, not {mode!r}")
    workers = max(1, int(workers))
    if mode == "thread":
        return ThreadPoolExecutor(workers, thread_name_prefix="decode")
    import multiprocessing as mp

    return ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))


def submit_batch(pool: Executor, paths: Sequence, preprocess: Preprocess, workers: int) -> list[Future]:
    """Split one batch into ``workers`` chunks so that every worker decodes a part of it."""
    n = len(paths)
    k = max(1, min(int(workers), n))
    bounds = np.linspace(0, n, k + 1).astype(int)
    return [pool.submit(decode_chunk, list(paths[a:b]), preprocess) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def to_batch(pixels: Sequence[np.ndarray], preprocess: Preprocess) -> torch.Tensor:
    """uint8 (H, W, 3) images → (B, 3, H, W) float32, scaled to [0, 1] and normalized exactly as
    ``Preprocess.to_tensor`` does per image. The permuted stack is already channels_last in memory,
    which is what the fast path of the backbone wants."""
    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(preprocess.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)
