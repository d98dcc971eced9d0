"""AffectNet+ soft labels from cached features (§3.2-3.4, §4.1-4.2): train the ensemble of binary
classifiers (EBC) and the AU-based classifiers on train-MAS, score them on test-MAS (Eq. 3), and
label any face (Eq. 5, 9-14) with its Easy / Challenging / Difficult subset (§3.5.1).

    ebc = train_ebc({"resnet50": X_rn, "efficientnet_b3": X_en, "xception": X_xn}, hard_labels, split, spec)
    au = train_au_classifiers(X_rn, hard_labels, split, spec, backbone="resnet50")
    table = soft_labels(ebc, au, {"resnet50": X_rn2, ...}, hard_labels2, face_ids=ids2)
    ebc.describe(), au.describe()            # long (classifier, model, emotion, metric, value)
    EBCModel.from_bytes(ebc.to_bytes())      # for the content-addressed model store

Inputs: features (N, d) per backbone (float16/32, memory-mapped is fine: read in chunks); hard
labels (N,) emotion names/indices (None or other labels: no hard label); split (N,) "train" =
train-MAS, "test" = test-MAS, anything else is used by neither (§3.1, see ``split_mas``). The
paper's heads sit on fine-tuned CNNs; here they are heads on frozen, cached features (a linear
layer by default), trained as :mod:`ops.labels.soft_label_fit` documents (choices where the
paper is silent: number of negatives, lr decay, epochs on features, CS without test faces).

Models: EBC, per backbone and emotion a binary head (one logit, sigmoid, BCE), P_j(emo_i | img).
AU, per emotion an :class:`models.au_classifier.AUClassifierHead` (BPV softmax + 21-AU sigmoid,
Eq. 7 + binary CE) on one backbone's features (ResNet-50 in §4.2). At inference the AU model of
emotion i reads Eq. 10's "gt" as i, the emotion it was trained to recognise (never the face's
hard label; see ``affectnet_plus.au_model_probability``). One negative draw (§3.2) per emotion is
shared by that emotion's EBC heads and its AU model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from models.au_classifier import AUClassifierHead, AUClassifierLoss
from models.heads import LinearHead, make_head
from ops.labels.affectnet_plus import (
    EMOTIONS,
    au_matrix,
    au_positive_probabilities,
    au_scores,
    sc_eb_mean,
    semantic_score,
    soft_label,
)
from ops.labels.affectnet_plus_sets import _maybe_index, difficulty, hard_label_rank
from ops.labels.soft_label_fit import (
    CURVE_COLUMNS,
    DESCRIBE_COLUMNS,
    FEATURE_AU_TRAINING,
    FEATURE_EBC_TRAINING,
    FEATURE_SPEC,
    NEGATIVE_COLUMNS,
    PAPER_AU_TRAINING,
    PAPER_EBC_TRAINING,
    MASData,
    SoftLabelSpec,
    TrainSpec,
    binary_evaluation,
    check_features,
    confidence_scores,
    evaluation_rows,
    fit_head,
    frame,
    load_payload,
    row_chunks,
    save_payload,
    stacked_linear,
    standardized_rows,
    standardizer,
    sub_seed,
    torch_threads,
    training_sample,
)

EMOTION_COLUMNS = tuple(e.lower() for e in EMOTIONS)           # the soft_labels table's 8 columns
SC_EB_COLUMNS = tuple(f"sc_eb_mean_{c}" for c in EMOTION_COLUMNS)
SC_AU_COLUMNS = tuple(f"sc_au_{c}" for c in EMOTION_COLUMNS)
SOFT_LABEL_COLUMNS = ("face_id", *EMOTION_COLUMNS, "hard_label", "hard_label_rank", "difficulty", "soft_top1",
                      *SC_EB_COLUMNS, *SC_AU_COLUMNS)
EBC_FORMAT, AU_FORMAT = "emoforge.affectnet_plus.ebc/1", "emoforge.affectnet_plus.au/1"
CHUNK = 4096  # rows per inference chunk: bounds the float32 copy of float16 / memory-mapped features (32 MB at 2048-d)


# ---- §3.2: the ensemble of binary classifiers -------------------------------------------------------

class EBCModel:
    """§3.2 / Fig. 2: 8 one-vs-rest binary heads per backbone, their Eq. 3 confidence scores on
    test-MAS (``cs``: (M, 8), Eq. 1 order) and the evaluation behind them."""

    def __init__(self, backbones: Sequence[str], heads: Mapping[str, list[nn.Module]], mean: Mapping[str, np.ndarray],
                 std: Mapping[str, np.ndarray], spec: SoftLabelSpec, cs: np.ndarray | None = None,
                 evaluation: pd.DataFrame | None = None, negatives: pd.DataFrame | None = None,
                 curves: pd.DataFrame | None = None) -> None:
        self.backbones = tuple(backbones)
        self.heads = {b: list(heads[b]) for b in self.backbones}
        self.mean = {b: np.asarray(mean[b], np.float32) for b in self.backbones}
        self.std = {b: np.asarray(std[b], np.float32) for b in self.backbones}
        self.spec = spec
        self.cs = np.ones((len(self.backbones), len(EMOTIONS))) if cs is None else np.asarray(cs, dtype=float)
        self.evaluation = frame([], DESCRIBE_COLUMNS) if evaluation is None else evaluation
        self.negatives = frame([], NEGATIVE_COLUMNS) if negatives is None else negatives
        self.curves = frame([], CURVE_COLUMNS) if curves is None else curves
        self._fast: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for h in self.heads.values():
            for m in h:
                m.eval()

    @property
    def dims(self) -> dict[str, int]:
        """Feature dimension each backbone's heads expect."""
        return {b: int(self.mean[b].shape[0]) for b in self.backbones}

    def _logits(self, b: str, X: np.ndarray) -> np.ndarray:
        """§3.2: the 8 heads' logits (n, 8) on one chunk of raw features of backbone ``b``."""
        x = np.array(X, dtype=np.float32)  # a copy of the chunk (float16 / memory-mapped inputs), centered in place
        x -= self.mean[b]
        if all(type(h) is LinearHead for h in self.heads[b]):
            if b not in self._fast:
                self._fast[b] = stacked_linear([h.fc for h in self.heads[b]], self.std[b])
            w, c = self._fast[b]
            return x @ w + c
        z = torch.from_numpy(x / self.std[b])
        with torch.inference_mode():
            return torch.cat([h(z) for h in self.heads[b]], dim=1).numpy()

    def predict_proba(self, features_by_backbone: Mapping[str, Any], batch_size: int = CHUNK) -> dict[str, np.ndarray]:
        """§3.2 Inference: P_j(emo_i | img_k), backbone j -> (N, 8) float64 (sigmoid of each head)."""
        out = {}
        for b in self.backbones:
            X = check_features(features_by_backbone[b], self.dims[b], b)
            p = np.empty((len(X), len(EMOTIONS)))
            for s in row_chunks(len(X), batch_size):
                p[s] = 1.0 / (1.0 + np.exp(-self._logits(b, X[s]).astype(np.float64)))
            out[b] = p
        return out

    def semantic_scores(self, features_by_backbone: Mapping[str, Any], batch_size: int = CHUNK) -> np.ndarray:
        """Eq. 4-5: SC^EB_Mean(emo_i, img_k) = mean over backbones of CS_j(emo_i) · P_j(emo_i | img_k), (N, 8)."""
        p = self.predict_proba(features_by_backbone, batch_size)
        return sc_eb_mean(self.cs, np.stack([p[b] for b in self.backbones]))

    def describe(self) -> pd.DataFrame:
        """Tables 4, 6 (§4.1): long rows (classifier="ebc", model = backbone or "ensemble", emotion,
        metric, value). Metrics: n_train_positive/negative, n_test_positive/negative, tp, fp, tn, fn,
        acc, cs_printed, cs_balanced_accuracy (= the tables' Acc-bar), cs_defined, cs (used in Eq. 4)."""
        return self.evaluation.copy()

    def to_bytes(self) -> bytes:
        """§3.2 models for the model store: state dicts, standardization, CS and evaluation (JSON meta)."""
        meta = {"backbones": list(self.backbones), "spec": self.spec.to_dict(), "cs": self.cs.tolist(),
                "head_configs": {b: [h.config for h in self.heads[b]] for b in self.backbones},
                "evaluation": self.evaluation.to_dict("records"), "negatives": self.negatives.to_dict("records"),
                "curves": self.curves.to_dict("records")}
        return save_payload({"format": EBC_FORMAT, "meta": json.dumps(meta, sort_keys=True),
                             "state": {b: [h.state_dict() for h in self.heads[b]] for b in self.backbones},
                             "mean": {b: torch.from_numpy(self.mean[b]) for b in self.backbones},
                             "std": {b: torch.from_numpy(self.std[b]) for b in self.backbones}})

    @classmethod
    def from_bytes(cls, data: bytes) -> EBCModel:
        """Inverse of :meth:`to_bytes` (torch.load with weights_only=True)."""
        d = load_payload(data, EBC_FORMAT)
        meta = json.loads(d["meta"])
        heads = {}
        for b in meta["backbones"]:
            heads[b] = []
            for cfg, sd in zip(meta["head_configs"][b], d["state"][b]):
                h = make_head(**cfg)
                h.load_state_dict(sd)
                heads[b].append(h)
        return cls(meta["backbones"], heads, {b: d["mean"][b].numpy() for b in meta["backbones"]},
                   {b: d["std"][b].numpy() for b in meta["backbones"]}, SoftLabelSpec.from_dict(meta["spec"]),
                   np.asarray(meta["cs"], dtype=float), frame(meta["evaluation"], DESCRIBE_COLUMNS),
                   frame(meta["negatives"], NEGATIVE_COLUMNS), frame(meta["curves"], CURVE_COLUMNS))


def _negative_rows(samples: dict[int, tuple]) -> pd.DataFrame:
    """§3.2 negatives drawn per emotion (the Table 3 allocation actually used)."""
    recs = [{"emotion": EMOTIONS[e], "negative_emotion": k, "n_negatives": int(v)}
            for e, (_, _, counts) in samples.items() for k, v in counts.items()]
    return frame(recs, NEGATIVE_COLUMNS)


def _samples(mas: MASData, spec: SoftLabelSpec) -> dict[int, tuple]:
    """§3.2: one training sample (positives + AU-overlap negatives) per emotion, seeded by its name."""
    return {e: training_sample(mas, e, spec, sub_seed(spec.seed, "negatives", EMOTIONS[e])) for e in range(len(EMOTIONS))}


def _ebc_head(ts: TrainSpec, d: int, seed: int) -> nn.Module:
    """§3.2 / Fig. 2: the binary head of one backbone (one logit), linear or MLP."""
    if ts.head == "mlp":
        return make_head("mlp", d, 1, hidden=list(ts.hidden), dropout=ts.dropout, seed=seed)
    return make_head("linear", d, 1, dropout=ts.dropout, seed=seed)


def train_ebc(features_by_backbone: Mapping[str, Any], hard_labels: Any, split: Any, spec: SoftLabelSpec | None = None,
              *, ids: Any = None) -> EBCModel:
    """§3.2 + §4.1: per backbone and emotion a one-vs-rest binary head on train-MAS (positives: the
    emotion's faces; negatives: §3.2 sampling, see :func:`training_sample`), trained with binary CE
    by Adam (spec.ebc: paper lr 1e-3, 25 epochs, batch 50); then Eq. 3 per head on test-MAS and
    for the ensemble (mean P over backbones, Table 6's last block). ``ids`` (N,) orders every
    random draw (default: row positions)."""
    spec = spec or SoftLabelSpec()
    if not features_by_backbone:
        raise ValueError("no backbone features")
    mas = MASData.build(hard_labels, split, ids)
    samples = _samples(mas, spec)
    heads, mean, std, curves = {}, {}, {}, []
    with torch_threads(spec.torch_threads):
        _fit_ebc(features_by_backbone, mas, samples, spec, heads, mean, std, curves)
    model = EBCModel(list(features_by_backbone), heads, mean, std, spec,
                     negatives=_negative_rows(samples), curves=pd.concat(curves, ignore_index=True)[list(CURVE_COLUMNS)])
    test = np.flatnonzero(mas.test)
    p = model.predict_proba({b: np.asarray(X)[test] for b, X in features_by_backbone.items()})
    counts = [(int(s[1].sum()), int((~s[1]).sum())) for s in samples.values()]
    rows, cs = [], []
    for b in model.backbones:
        ev = [binary_evaluation(p[b][:, e], mas.label[test] == e, spec.threshold) for e in range(len(EMOTIONS))]
        cs.append(confidence_scores(ev, spec))
        rows += evaluation_rows("ebc", b, ev, cs[-1], counts)
    p_ens = np.mean([p[b] for b in model.backbones], axis=0) if len(test) else np.zeros((0, len(EMOTIONS)))
    ev = [binary_evaluation(p_ens[:, e], mas.label[test] == e, spec.threshold) for e in range(len(EMOTIONS))]
    rows += evaluation_rows("ebc", "ensemble", ev, confidence_scores(ev, spec), counts)
    model.cs, model.evaluation = np.array(cs), frame(rows, DESCRIBE_COLUMNS)
    return model


def _fit_ebc(features_by_backbone: Mapping[str, Any], mas: MASData, samples: dict[int, tuple], spec: SoftLabelSpec,
             heads: dict, mean: dict, std: dict, curves: list) -> None:
    """§4.1 Training: the 24 binary heads (filled into ``heads``/``mean``/``std``/``curves``)."""
    ts = spec.ebc
    for b, X in features_by_backbone.items():
        X = np.asarray(X)
        if X.ndim != 2 or len(X) != len(mas.label):
            raise ValueError(f"features of {b!r} must be (N={len(mas.label)}, d), got {X.shape}")
        mean[b], std[b] = standardizer(X[mas.train])
        heads[b] = []
        for e, (rows, is_pos, _) in samples.items():
            seed = sub_seed(spec.seed, "ebc", b, EMOTIONS[e])
            head = _ebc_head(ts, X.shape[1], seed)
            z, y = standardized_rows(X, rows, mean[b], std[b]), torch.from_numpy(is_pos.astype(np.float32))
            loss = lambda m, i, z=z, y=y: F.binary_cross_entropy_with_logits(m(z[i])[:, 0], y[i], reduction="sum")
            c = fit_head(head, len(rows), loss, ts, seed, strata=is_pos, ids=mas.ids[rows])
            curves.append(c.assign(classifier="ebc", model=b, emotion=EMOTIONS[e]))
            heads[b].append(head)


# ---- §3.3: the AU-based classifiers -----------------------------------------------------------------

class AUModel:
    """§3.3 / Fig. 3: per emotion a two-head model (BPV, ÂU) on one backbone's features, with its
    Eq. 3 confidence score CS^AU on test-MAS (``cs``: (8,), Eq. 1 order)."""

    def __init__(self, backbone: str | None, heads: Sequence[AUClassifierHead], mean: np.ndarray, std: np.ndarray,
                 spec: SoftLabelSpec, cs: np.ndarray | None = None, evaluation: pd.DataFrame | None = None,
                 negatives: pd.DataFrame | None = None, curves: pd.DataFrame | None = None) -> None:
        if len(heads) != len(EMOTIONS):
            raise ValueError(f"need one AU model per emotion ({len(EMOTIONS)}), got {len(heads)}")
        self.backbone, self.heads, self.spec = backbone, list(heads), spec
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.cs = np.ones(len(EMOTIONS)) if cs is None else np.asarray(cs, dtype=float)
        self.evaluation = frame([], DESCRIBE_COLUMNS) if evaluation is None else evaluation
        self.negatives = frame([], NEGATIVE_COLUMNS) if negatives is None else negatives
        self.curves = frame([], CURVE_COLUMNS) if curves is None else curves
        self._fast: tuple[np.ndarray, np.ndarray] | None = None
        for h in self.heads:
            h.eval()

    @property
    def dim(self) -> int:
        """Feature dimension the heads expect."""
        return int(self.mean.shape[0])

    @property
    def hidden(self) -> int:
        """Width of the optional shared layer (0: the two FC heads sit on the features, Fig. 3)."""
        return self.spec.au.hidden[0] if self.spec.au.hidden else 0

    def predict_heads(self, features: Any, batch_size: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """§3.3 head outputs of the 8 models: ÂU (8, N, 21) sigmoid and BPV (8, N, 2) softmax, [own, rest]."""
        X = check_features(features, self.dim, self.backbone or "au")
        k = len(EMOTIONS)
        au_hat, bpv = np.empty((k, len(X), 21)), np.empty((k, len(X), 2))
        for s in row_chunks(len(X), batch_size):
            x = np.array(X[s], dtype=np.float32)
            x -= self.mean
            if self.hidden == 0:
                if self._fast is None:
                    self._fast = stacked_linear([h.binary for h in self.heads] + [h.au for h in self.heads], self.std)
                out = (x @ self._fast[0] + self._fast[1]).astype(np.float64)
                bl, al = out[:, :2 * k].reshape(-1, k, 2), out[:, 2 * k:].reshape(-1, k, 21)
            else:
                z = torch.from_numpy(x / self.std)
                with torch.inference_mode():
                    outs = [h(z) for h in self.heads]
                bl = np.stack([o.bpv_logits.numpy() for o in outs], axis=1).astype(np.float64)
                al = np.stack([o.au_logits.numpy() for o in outs], axis=1).astype(np.float64)
            bl = np.exp(bl - bl.max(axis=-1, keepdims=True))
            bpv[:, s] = (bl / bl.sum(axis=-1, keepdims=True)).transpose(1, 0, 2)
            au_hat[:, s] = (1.0 / (1.0 + np.exp(-al))).transpose(1, 0, 2)
        return au_hat, bpv

    def predict_proba(self, features: Any, batch_size: int = CHUNK) -> np.ndarray:
        """Eq. 9-12: P(emo_i | img_k), the positive element of model i's P = ½(BPV + APV), (N, 8);
        Eq. 10's gt = i (the model's own emotion)."""
        X = check_features(features, self.dim, self.backbone or "au")
        out = np.empty((len(X), len(EMOTIONS)))
        aus = au_scores(self.spec.aus)
        for s in row_chunks(len(X), batch_size):
            au_hat, bpv = self.predict_heads(X[s], batch_size)
            out[s] = au_positive_probabilities(au_hat, bpv, aus=aus, sim_neutral=self.spec.sim_neutral)
        return out

    def semantic_scores(self, features: Any, batch_size: int = CHUNK) -> np.ndarray:
        """Eq. 13: SC^AU(emo_i, img_k) = CS^AU(emo_i) · P(emo_i | img_k), (N, 8)."""
        return semantic_score(self.cs, self.predict_proba(features, batch_size))

    def describe(self) -> pd.DataFrame:
        """Tables 4, 7 (§4.2): long rows (classifier="au", model = backbone, emotion, metric, value),
        the metrics of :meth:`EBCModel.describe`."""
        return self.evaluation.copy()

    def to_bytes(self) -> bytes:
        """§3.3 models for the model store (see :meth:`EBCModel.to_bytes`)."""
        meta = {"backbone": self.backbone, "spec": self.spec.to_dict(), "cs": self.cs.tolist(), "dim": self.dim,
                "evaluation": self.evaluation.to_dict("records"), "negatives": self.negatives.to_dict("records"),
                "curves": self.curves.to_dict("records")}
        return save_payload({"format": AU_FORMAT, "meta": json.dumps(meta, sort_keys=True),
                             "state": [h.state_dict() for h in self.heads],
                             "mean": torch.from_numpy(self.mean), "std": torch.from_numpy(self.std)})

    @classmethod
    def from_bytes(cls, data: bytes) -> AUModel:
        """Inverse of :meth:`to_bytes` (torch.load with weights_only=True)."""
        d = load_payload(data, AU_FORMAT)
        meta = json.loads(d["meta"])
        spec = SoftLabelSpec.from_dict(meta["spec"])
        heads = []
        for sd in d["state"]:
            h = _au_head(spec.au, meta["dim"])
            h.load_state_dict(sd)
            heads.append(h)
        return cls(meta["backbone"], heads, d["mean"].numpy(), d["std"].numpy(), spec, np.asarray(meta["cs"], float),
                   frame(meta["evaluation"], DESCRIBE_COLUMNS), frame(meta["negatives"], NEGATIVE_COLUMNS),
                   frame(meta["curves"], CURVE_COLUMNS))


def _au_head(ts: TrainSpec, d: int, seed: int | None = None) -> AUClassifierHead:
    """§3.3 / Fig. 3: two FC heads on the features (``ts.hidden``: at most one shared layer), seeded."""
    if len(ts.hidden) > 1:
        raise ValueError("the AU-based classifier takes at most one shared hidden layer (spec.au.hidden)")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return AUClassifierHead(d, hidden=ts.hidden[0] if ts.hidden else 0, dropout=ts.dropout)


def train_au_classifiers(features: Any, hard_labels: Any, split: Any, spec: SoftLabelSpec | None = None, *,
                         backbone: str | None = None, ids: Any = None) -> AUModel:
    """§3.3 + §4.2: per emotion i a two-head model on train-MAS (positives/negatives as §3.2), AU
    head target = the Eq. 6 / Table 2 vector of each face's hard label, binary target = label == i,
    loss = spec.au_weight · Eq. 7 + spec.bpv_weight · binary CE (summed over the batch), Adam
    (spec.au: paper lr 1e-4, 40 epochs, batch 50; on features use FEATURE_SPEC's lr 1e-2). Then Eq. 3
    (CS_AU) on test-MAS with P of Eq. 12 as the prediction. ``backbone`` names the features'
    backbone (the key :func:`soft_labels` reads); ``ids`` as in :func:`train_ebc`."""
    spec = spec or SoftLabelSpec()
    mas = MASData.build(hard_labels, split, ids)
    X = np.asarray(features)
    if X.ndim != 2 or len(X) != len(mas.label):
        raise ValueError(f"features must be (N={len(mas.label)}, d), got {X.shape}")
    samples = _samples(mas, spec)
    mean, std = standardizer(X[mas.train])
    targets = torch.from_numpy(au_matrix().astype(np.float32))
    loss_fn = AUClassifierLoss(spec.au_weight, spec.bpv_weight, reduction="sum")
    heads, curves = [], []
    with torch_threads(spec.torch_threads):
        for e, (rows, is_pos, _) in samples.items():
            seed = sub_seed(spec.seed, "au", backbone, EMOTIONS[e])
            head = _au_head(spec.au, X.shape[1], seed)
            z, au_t = standardized_rows(X, rows, mean, std), targets[torch.from_numpy(mas.label[rows])]
            pos = torch.from_numpy(is_pos)
            loss = lambda m, i, z=z, a=au_t, p=pos: loss_fn(m(z[i]), a[i], p[i]).total
            c = fit_head(head, len(rows), loss, spec.au, seed, strata=is_pos, ids=mas.ids[rows])
            curves.append(c.assign(classifier="au", model=backbone or "au", emotion=EMOTIONS[e]))
            heads.append(head)
    model = AUModel(backbone, heads, mean, std, spec, negatives=_negative_rows(samples),
                    curves=pd.concat(curves, ignore_index=True)[list(CURVE_COLUMNS)])
    test = np.flatnonzero(mas.test)
    p = model.predict_proba(X[test])
    ev = [binary_evaluation(p[:, e], mas.label[test] == e, spec.threshold) for e in range(len(EMOTIONS))]
    model.cs = confidence_scores(ev, spec)
    counts = [(int(s[1].sum()), int((~s[1]).sum())) for s in samples.values()]
    model.evaluation = frame(evaluation_rows("au", backbone or "au", ev, model.cs, counts), DESCRIBE_COLUMNS)
    return model


# ---- §3.4, §3.5.1: soft labels and subsets ----------------------------------------------------------

def soft_labels(ebc: EBCModel, au: AUModel, features_by_backbone: Mapping[str, Any], hard_labels: Any = None, *,
                face_ids: Any = None, au_features: Any = None, batch_size: int = CHUNK) -> pd.DataFrame:
    """§3.4 Eq. 14 for N faces: sl = ½ (SC^EB_Mean (Eq. 5) + SC^AU (Eq. 13)), not renormalized (as
    printed), and §3.5.1's subset from the hard label. The AU models read ``au_features`` or else
    ``features_by_backbone[au.backbone]`` (the only entry when au.backbone is None).

    Columns (SOFT_LABEL_COLUMNS): face_id (given or 0..N-1); neutral, happy, sad, surprise, fear,
    disgust, anger, contempt (Eq. 14); hard_label (canonical name or None); hard_label_rank (Int64,
    1 = top; ties: competition "min" rank, a hard label tied with others gets the best rank, see
    ``hard_label_rank``); difficulty ("Easy" rank 1, "Challenging" 2-3, "Difficult", None without a
    hard label); soft_top1 (argmax, ties to the first in Eq. 1 order); sc_eb_mean_<emotion> and
    sc_au_<emotion> (the two components)."""
    if au_features is None:
        if au.backbone is not None:
            au_features = features_by_backbone[au.backbone]
        elif len(features_by_backbone) == 1:
            au_features = next(iter(features_by_backbone.values()))
        else:
            raise ValueError("the AU model names no backbone: pass au_features")
    n = len(au_features)
    for b in ebc.backbones:
        if len(features_by_backbone[b]) != n:
            raise ValueError(f"features of {b!r} have {len(features_by_backbone[b])} rows, expected {n}")
    eb, sa = np.empty((n, len(EMOTIONS))), np.empty((n, len(EMOTIONS)))
    for s in row_chunks(n, batch_size):
        eb[s] = ebc.semantic_scores({b: features_by_backbone[b][s] for b in ebc.backbones}, batch_size)
        sa[s] = au.semantic_scores(au_features[s], batch_size)
    sl = soft_label(eb, sa)
    hard = np.full(n, None, dtype=object) if hard_labels is None else np.asarray(hard_labels, dtype=object)
    if hard.shape != (n,):
        raise ValueError(f"hard_labels must be ({n},), got {hard.shape}")
    rank = hard_label_rank(sl, hard) if n else np.zeros(0)
    canon = np.array([EMOTIONS[i] if i >= 0 else None for i in map(_hard_index, hard)], dtype=object)
    out = {"face_id": np.arange(n) if face_ids is None else np.asarray(face_ids)}
    out.update({c: sl[:, i] for i, c in enumerate(EMOTION_COLUMNS)})
    out["hard_label"] = pd.Series(canon, dtype=object)  # object columns: None stays None (pandas 3 infers str)
    out["hard_label_rank"] = pd.array([None if np.isnan(r) else int(r) for r in rank], dtype="Int64")
    out["difficulty"] = pd.Series(difficulty(sl, hard) if n else [], dtype=object)
    out["soft_top1"] = pd.Series(np.array(EMOTIONS, dtype=object)[sl.argmax(axis=1)] if n else [], dtype=object)
    out.update({c: eb[:, i] for i, c in enumerate(SC_EB_COLUMNS)})
    out.update({c: sa[:, i] for i, c in enumerate(SC_AU_COLUMNS)})
    return pd.DataFrame(out, columns=list(SOFT_LABEL_COLUMNS))


def _hard_index(v: Any) -> int:
    """Eq. 1 index of a hard label, -1 when there is none (§3.5.1 leaves such faces without subset)."""
    x = _maybe_index(v)
    return -1 if np.isnan(x) else int(x)


__all__ = [
    "EMOTION_COLUMNS",
    "FEATURE_AU_TRAINING",
    "FEATURE_EBC_TRAINING",
    "FEATURE_SPEC",
    "PAPER_AU_TRAINING",
    "PAPER_EBC_TRAINING",
    "SC_AU_COLUMNS",
    "SC_EB_COLUMNS",
    "SOFT_LABEL_COLUMNS",
    "AUModel",
    "EBCModel",
    "SoftLabelSpec",
    "TrainSpec",
    "soft_labels",
    "train_au_classifiers",
    "train_ebc",
]
