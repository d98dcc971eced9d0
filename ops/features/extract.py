"""Feature extraction into the feature store: the buffered activations of FindingEmo §3 (footnote 4).

``extract_features(items, backbone, store)`` computes one vector per image not yet in ``store``:

- incremental: items whose sha256 the store already knows (ok, or a recorded decode failure) are
  reused, so a new scrape batch costs only its new images and a rerun computes nothing;
- decoding: DCT-scaled JPEG decoding (PIL draft) straight to about the target size, in worker
  threads (PIL releases the GIL) that run ahead of the backbone by ``prefetch`` batches;
- inference: batches of ``batch_size`` through ``backbone.forward_features`` (channels_last and
  bf16 autocast as the backbone was built; the batch arrives channels_last already);
- outcomes: an image that fails to decode is stored with status ``decode_error`` and the message,
  never a crash; a non-finite vector (or one that overflows float16) with status ``nonfinite``;
  a file that cannot be opened at all is reported as missing and not stored (it may come back);
- resume: vectors are committed to the store every ``shard_size`` items, so an interrupted run
  keeps its completed shards and recomputes at most the shard it was filling.

The extractor key the store must carry is :func:`feature_key` (the backbone's key with the
preprocessing actually used, draft decoding included): a store of another key is refused.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from models.backbones import Backbone, extractor_key
from models.preprocess import Preprocess
from ops.features.decode import MISSING, make_pool, submit_batch, to_batch
from warehouse.features import STATUS_NONFINITE, STATUS_OK, FeatureStore

__all__ = ["ExtractionReport", "extract_features", "extractor_meta", "feature_key", "inference_preprocess"]


def inference_preprocess(backbone: Backbone, preprocess: Preprocess | None = None, *, draft: bool = True) -> Preprocess:
    """The recipe extraction uses: ``preprocess`` (default: the backbone's) with JPEG draft
    decoding switched on (``draft=False`` keeps full decoding)."""
    pp = preprocess if preprocess is not None else backbone.preprocess
    return pp if pp.draft == draft else pp.replace(draft=draft)


def feature_key(backbone: Backbone, preprocess: Preprocess | None = None, *, draft: bool = True) -> str:
    """The extractor key of the vectors :func:`extract_features` computes with these arguments."""
    return extractor_key(backbone, inference_preprocess(backbone, preprocess, draft=draft))


def extractor_meta(backbone: Backbone, preprocess: Preprocess | None = None, *, draft: bool = True) -> dict:
    """A JSON-able description of the extractor, for the store's ``store.json`` (provenance)."""
    pp = inference_preprocess(backbone, preprocess, draft=draft)
    return {"backbone": backbone.name, "layer": backbone.layer, "weights": backbone.weights_fingerprint,
            "weights_path": str(backbone.weights_path) if backbone.weights_path else None,
            "preprocess": pp.to_dict(), "precision": backbone.precision, "feature_dim": backbone.feature_dim}


@dataclass
class ExtractionReport:
    """What one call did. Times are wall-clock seconds: ``decode_seconds`` summed over the decode
    workers, ``inference_seconds`` / ``wait_seconds`` / ``store_seconds`` in the calling thread
    (waiting = the backbone idle for want of decoded images)."""

    extractor: str
    requested: int = 0  # distinct sha256s asked for
    todo: int = 0  # not known to the store before this call
    computed: int = 0  # vectors computed and stored by this call
    reused: int = 0  # already in the store (ok or a recorded failure)
    failed: int = 0  # failures recorded by this call (decode_error, nonfinite)
    missing: int = 0  # files that could not be opened (not recorded, retried next time)
    shards: int = 0  # shards committed by this call
    seconds: float = 0.0
    decode_seconds: float = 0.0
    inference_seconds: float = 0.0
    wait_seconds: float = 0.0
    store_seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)  # the first 50: sha256, status, error

    @property
    def processed(self) -> int:
        return self.computed + self.failed + self.missing

    @property
    def images_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def decode_share(self) -> float:
        """Decode time over decode + inference time (the two costs of one image)."""
        total = self.decode_seconds + self.inference_seconds
        return self.decode_seconds / total if total > 0 else 0.0

    @property
    def inference_share(self) -> float:
        total = self.decode_seconds + self.inference_seconds
        return self.inference_seconds / total if total > 0 else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(processed=self.processed, images_per_s=round(self.images_per_s, 2),
                 decode_share=round(self.decode_share, 3), inference_share=round(self.inference_share, 3))
        return d


class _Buffer:
    """Outcomes waiting to be committed as one shard."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.shas: list[str] = []
        self.vectors: list[np.ndarray | None] = []
        self.statuses: list[str] = []
        self.errors: list[str | None] = []

    def add(self, sha: str, vector, status: str, error: str | None) -> None:
        self.shas.append(sha)
        self.vectors.append(vector)
        self.statuses.append(status)
        self.errors.append(error)

    def __len__(self) -> int:
        return len(self.shas)


def extract_features(
    items: Sequence[tuple[str, object]],
    backbone: Backbone,
    store: FeatureStore,
    *,
    preprocess: Preprocess | None = None,
    draft: bool = True,
    batch_size: int = 32,
    decode_workers: int = 2,
    decode_mode: str = "thread",
    prefetch: int = 2,
    shard_size: int = 1024,
    retry_failed: bool = False,
    progress: Callable[[ExtractionReport], None] | None = None,
) -> ExtractionReport:
    """Compute and store the vectors of the ``(sha256, path)`` items that ``store`` lacks.

    preprocess / draft: the recipe (default: the backbone's, with draft decoding); the store's
    extractor key must be :func:`feature_key` of the same arguments, else ValueError.
    decode_mode: "thread" (default, measured faster here) or "process".
    prefetch: batches decoded ahead of the one in inference.
    shard_size: items per committed shard (the most an interruption can cost).
    retry_failed: recompute items whose earlier attempt was recorded as failed.
    progress: called with the running report after every batch (raising from it interrupts the
    run; the committed shards stay).
    """
    pp = inference_preprocess(backbone, preprocess, draft=draft)
    key = extractor_key(backbone, pp)
    if store.extractor != key:
        raise ValueError(f"the store holds extractor {store.extractor!r}, but this backbone and "
                         f"preprocessing give {key!r}: open the store of that key (feature_key())")
    if store.dim != backbone.feature_dim:
        raise ValueError(f"store dim {store.dim} != backbone feature_dim {backbone.feature_dim}")
    if batch_size < 1 or shard_size < 1:
        raise ValueError("batch_size and shard_size must be positive")

    t_start = time.perf_counter()
    report = ExtractionReport(extractor=key)
    unique: dict[str, object] = {}
    for sha, path in items:
        unique.setdefault(str(sha), path)
    known = store.known(retry_failed=retry_failed)
    todo = [(sha, path) for sha, path in unique.items() if sha not in known]
    report.requested, report.todo, report.reused = len(unique), len(todo), len(unique) - len(todo)
    if not todo:
        report.seconds = time.perf_counter() - t_start
        return report

    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    buf = _Buffer()

    def commit() -> None:
        t0 = time.perf_counter()
        store.append(buf.shas, buf.vectors, buf.statuses, buf.errors)
        report.store_seconds += time.perf_counter() - t0
        report.shards += 1
        buf.clear()

    def record_failure(sha: str, status: str, error: str | None) -> None:
        if len(report.failures) < 50:
            report.failures.append({"sha256": sha, "status": status, "error": error})

    pool = make_pool(decode_mode, decode_workers)
    pending: deque = deque()
    try:
        nxt = 0
        for _ in range(min(len(batches), max(1, prefetch))):
            pending.append((batches[nxt], submit_batch(pool, [p for _, p in batches[nxt]], pp, decode_workers)))
            nxt += 1
        while pending:
            batch, futures = pending.popleft()
            if nxt < len(batches):  # keep the decoders busy while this batch runs
                pending.append((batches[nxt], submit_batch(pool, [p for _, p in batches[nxt]], pp, decode_workers)))
                nxt += 1
            t0 = time.perf_counter()
            decoded = []
            for f in futures:
                part, dt = f.result()
                decoded.extend(part)
                report.decode_seconds += dt
            report.wait_seconds += time.perf_counter() - t0

            good = [i for i, d in enumerate(decoded) if d.pixels is not None]
            vectors: dict[int, np.ndarray] = {}
            if good:
                t0 = time.perf_counter()
                x = to_batch([decoded[i].pixels for i in good], pp)
                y = backbone.forward_features(x).cpu().numpy()
                report.inference_seconds += time.perf_counter() - t0
                vectors = dict(zip(good, y))
            for i, (sha, _) in enumerate(batch):
                d = decoded[i]
                if d.pixels is None:
                    if d.status == MISSING:
                        report.missing += 1
                    else:
                        buf.add(sha, None, d.status, d.error)
                        report.failed += 1
                    record_failure(sha, d.status, d.error)
                    continue
                v = vectors[i]
                with np.errstate(over="ignore"):
                    fits = np.isfinite(v.astype(np.float16)).all()
                if not fits:
                    err = "non-finite activations" if not np.isfinite(v).all() else "vector overflows float16"
                    buf.add(sha, None, STATUS_NONFINITE, err)
                    report.failed += 1
                    record_failure(sha, STATUS_NONFINITE, err)
                    continue
                buf.add(sha, v, STATUS_OK, None)
                report.computed += 1
                if len(buf) >= shard_size:
                    commit()
            report.seconds = time.perf_counter() - t_start
            if progress is not None:
                progress(report)
        if len(buf):
            commit()
    finally:
        for _, futures in pending:
            for f in futures:
                f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    report.seconds = time.perf_counter() - t_start
    return report
