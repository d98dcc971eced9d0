"""AffectNet+ label mathematics (AffectNet+ §3.1-3.5, Supplement II) as plain numpy/pandas functions.

The tables come from ``ops/data/affectnet_plus.json`` (Table 2 AU sets, the Eq. 6 AU list, the AU
scores printed in Eq. 8, Table 3 as printed, sim_Neutral). Emotion order everywhere is Eq. 1's:
Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt (= the ``affectnet8`` taxonomy).
Arrays: soft labels / probabilities (N, 8), AU vectors (N, 21), binary vectors (N, 2) ordered
[positive = the model's own emotion, negative = the rest] as BSV in Eq. 10 (``POSITIVE = 0``).

What the paper prints does not all follow from Table 2 (computed by :func:`au_score_differences`
and :func:`table3_differences`; every other value agrees):

* Eq. 8 (AU scores, 1 / number of Table 2 emotions showing the AU): two of 21 are off.
  AU26 is printed 0.25 but appears in 3 emotions (Surprise, Fear, Anger), so 1/3;
  AU27 is printed 0.5 but appears in 3 emotions (Surprise, Fear, Disgust), so 1/3.
  (0.33 is read as 1/3.) :func:`au_scores` derives by default; ``source="printed"`` gives Eq. 8.
* Table 3 (AUs shared by two emotions): one pair, i.e. the two symmetric cells
  Disgust-Anger and Anger-Disgust, is printed 4 but Table 2 gives 3 (AU10, AU17, AU25).
  The other 40 off-diagonal cells agree (Fear-Anger = 4, Fear-Surprise = 5 as §4.2 says).
* Eq. 3 vs its name. §3.2 calls CS the "average per-class accuracy" and Tables 6/7/VIII/IX report
  it as Acc-bar "based on Eq. 3", but the printed formula ½(TP/(TP+FP) + TN/(TN+FN)) is the mean
  of precision and negative predictive value. With test-MAS's 100 positives / 700 negatives, the
  confusion matrix of every column of Tables VIII/IX can be recovered from Acc and Acc-bar
  (e.g. ResNet-50 Neutral: TP=77, TN=574); the printed Eq. 3 then reproduces the "Prec" row
  (67.0) and the reported Acc-bar equals ½(TPR + TNR) (79.5 = the "Rec" row), i.e. balanced
  accuracy, in all 24 columns. :func:`confidence_score` implements the printed formula by default,
  ``variant="balanced_accuracy"`` gives what the tables report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import numpy as np
import pandas as pd

from ops.annotations.taxonomy import get_taxonomy

DATA_FILE = "affectnet_plus.json"
POSITIVE, NEGATIVE = 0, 1  # element order of BPV/BSV/APV/P (Eq. 10-12): [own emotion, the rest]
Variant = Literal["printed", "balanced_accuracy"]


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    """The packaged tables (Table 2, Eq. 6, Eq. 8, Table 3, sim_Neutral), read once."""
    return json.loads(resources.files("ops").joinpath("data", DATA_FILE).read_text("utf-8"))


EMOTIONS: tuple[str, ...] = tuple(_data()["emotions"])  # Eq. 1 order
ACTION_UNITS: tuple[int, ...] = tuple(_data()["action_units_eq6"])  # Eq. 6
SIM_NEUTRAL: float = float(_data()["sim_neutral"])  # Eq. 9 hyper-parameter
_TAX = get_taxonomy("affectnet8")
if tuple(_TAX.labels) != EMOTIONS:  # pragma: no cover - guards the two data files against drift
    raise RuntimeError(f"{DATA_FILE} emotions {EMOTIONS} differ from taxonomy affectnet8 {_TAX.labels}")


def emotion_index(emotion: int | str) -> int:
    """Index of an emotion in Eq. 1's order; names case-insensitive with affectnet8 aliases ("Angry")."""
    if isinstance(emotion, (int, np.integer)) and not isinstance(emotion, bool):
        if not 0 <= int(emotion) < len(EMOTIONS):
            raise ValueError(f"emotion index {emotion} out of range 0..{len(EMOTIONS) - 1}")
        return int(emotion)
    name = _TAX.normalize(emotion)
    if name not in EMOTIONS:
        raise ValueError(f"not an AffectNet-8 emotion: {emotion!r}")
    return EMOTIONS.index(name)


# ---- Table 2, Eq. 6: AU sets and AU representation vectors ----------------------------------------

def au_set(emotion: int | str) -> tuple[int, ...]:
    """Table 2: the action units of an emotion (Neutral: none)."""
    return tuple(_data()["table2_action_units"][EMOTIONS[emotion_index(emotion)]])


def au_vector(emotion: int | str) -> np.ndarray:
    """Eq. 6 / §3.3: AU_i, 21 entries over ACTION_UNITS, 1 where the AU is in Table 2's set, else 0."""
    s = set(au_set(emotion))
    return np.array([1.0 if au in s else 0.0 for au in ACTION_UNITS])


def au_matrix() -> np.ndarray:
    """Eq. 6 for all emotions: the (8, 21) matrix whose row i is AU_i (Neutral's row is zero)."""
    return np.stack([au_vector(i) for i in range(len(EMOTIONS))])


# ---- Table 3: shared AUs ---------------------------------------------------------------------------

def shared_au_matrix() -> pd.DataFrame:
    """Table 3 derived from Table 2: number of AUs two emotions share (8x8, Eq. 1 order, Neutral
    included with zeros). The diagonal holds each emotion's own AU count (Table 3 prints "-")."""
    m = au_matrix()
    return pd.DataFrame((m @ m.T).astype(int), index=list(EMOTIONS), columns=list(EMOTIONS))


def printed_table3() -> pd.DataFrame:
    """Table 3 exactly as printed (7x7, the paper's row order, NaN on the "-" diagonal)."""
    t = _data()["table3_printed"]
    vals = np.array([[np.nan if v is None else float(v) for v in row] for row in t["shared_aus"]])
    return pd.DataFrame(vals, index=t["order"], columns=t["order"])


def table3_differences() -> pd.DataFrame:
    """Table 3 cells whose printed value differs from :func:`shared_au_matrix` (one row per cell)."""
    printed, derived = printed_table3(), shared_au_matrix()
    rows = []
    for a in printed.index:
        for b in printed.columns:
            if a != b and printed.loc[a, b] != derived.loc[a, b]:
                common = sorted(set(au_set(a)) & set(au_set(b)))
                rows.append({"row": a, "column": b, "printed": int(printed.loc[a, b]),
                             "derived": int(derived.loc[a, b]), "shared_aus": ", ".join(f"AU{u}" for u in common)})
    return pd.DataFrame(rows, columns=["row", "column", "printed", "derived", "shared_aus"])


def _shared(shared: str | pd.DataFrame | np.ndarray | None) -> np.ndarray:
    """An 8x8 shared-AU matrix: None/"derived" (Table 2), "printed" (Table 3 with Neutral = 0), or given."""
    if shared is None:
        shared = "derived"
    if isinstance(shared, str):
        named = {"derived": lambda: shared_au_matrix().to_numpy(float),
                 "printed": lambda: printed_table3().reindex(index=list(EMOTIONS), columns=list(EMOTIONS))
                 .fillna(0.0).to_numpy(float)}
        if shared not in named:
            raise ValueError(f"shared must be 'derived', 'printed' or a matrix, not {shared!r}")
        return named[shared]()
    if isinstance(shared, pd.DataFrame):
        shared = shared.reindex(index=list(EMOTIONS), columns=list(EMOTIONS)).fillna(0.0)
    m = np.asarray(shared, dtype=float)
    if m.shape != (len(EMOTIONS), len(EMOTIONS)):
        raise ValueError(f"shared matrix must be {len(EMOTIONS)}x{len(EMOTIONS)}, got {m.shape}")
    return m


# ---- Eq. 8: AU scores ------------------------------------------------------------------------------

def au_emotion_counts() -> np.ndarray:
    """Per AU of Eq. 6, the number of Table 2 emotions in which it appears (Eq. 8's denominator)."""
    return au_matrix().sum(axis=0)


def au_scores(source: Literal["derived", "printed"] = "derived") -> np.ndarray:
    """Eq. 8: AUS, 21 scores inversely proportional to how many emotions show each AU (AU14 only in
    Contempt -> 1; AU25 in four -> 1/4). "derived" computes 1/count from Table 2 (exact fractions);
    "printed" returns the values printed in Eq. 8 (AU26 0.25 and AU27 0.5 do not follow, see above)."""
    if source == "printed":
        return np.array(_data()["eq8_printed_aus"], dtype=float)
    if source != "derived":
        raise ValueError(f"source must be 'derived' or 'printed', not {source!r}")
    counts = au_emotion_counts()
    if (counts == 0).any():  # pragma: no cover - every Eq. 6 AU is in Table 2
        raise ValueError("an Eq. 6 AU appears in no Table 2 emotion")
    return 1.0 / counts


def au_score_differences(tol: float = 0.005) -> pd.DataFrame:
    """AUs where Eq. 8 as printed differs from the Table 2 derivation by more than ``tol`` (the
    default treats the printed two-decimal 0.33 as 1/3)."""
    derived, printed, counts = au_scores("derived"), au_scores("printed"), au_emotion_counts()
    m = au_matrix()
    rows = [{"au": au, "emotions": ", ".join(EMOTIONS[j] for j in np.flatnonzero(m[:, i])),
             "n_emotions": int(counts[i]), "printed": float(printed[i]), "derived": float(derived[i])}
            for i, au in enumerate(ACTION_UNITS) if abs(printed[i] - derived[i]) > tol]
    return pd.DataFrame(rows, columns=["au", "emotions", "n_emotions", "printed", "derived"])


# ---- Eq. 3: confidence score -----------------------------------------------------------------------

def _ratio(num: Any, den: Any, zero_division: float) -> np.ndarray:
    """num/den elementwise; ``zero_division`` where den == 0 (Eq. 3's undefined terms)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, float(zero_division))
    np.divide(num, den, out=out, where=den != 0)
    return out


def confidence_score(tp: Any, fp: Any, tn: Any, fn: Any, variant: Variant = "printed",
                     zero_division: float = 0.0) -> np.ndarray | float:
    """Eq. 3, CS(emo_i) of a one-vs-rest classifier; vectorized over arrays of counts.

    ``variant="printed"`` (default): ½(TP/(TP+FP) + TN/(TN+FN)), Eq. 3 exactly as printed = mean of
    precision and negative predictive value. ``variant="balanced_accuracy"``: ½(TP/(TP+FN) +
    TN/(TN+FP)), the "average per-class accuracy" the text names and the value Tables 6/7/VIII/IX
    report (see the module docstring): the paper contradicts itself, so both are offered.

    A term with a zero denominator (no positive predictions, no negative predictions, no positives,
    no negatives) is ``zero_division`` (default 0): a classifier that never makes a kind of
    prediction earns no credit for it, CS stays finite and CS only scales probabilities down in Eq.
    4/13 (NaN would poison every soft label); this matches scikit-learn's zero_division=0.
    Pass ``zero_division=np.nan`` to see undefined scores instead."""
    if variant == "printed":
        s = 0.5 * (_ratio(tp, np.add(tp, fp), zero_division) + _ratio(tn, np.add(tn, fn), zero_division))
    elif variant == "balanced_accuracy":
        s = 0.5 * (_ratio(tp, np.add(tp, fn), zero_division) + _ratio(tn, np.add(tn, fp), zero_division))
    else:
        raise ValueError(f"variant must be 'printed' or 'balanced_accuracy', not {variant!r}")
    return float(s) if s.ndim == 0 else s


def confidence_score_from_confusion(cm: Any, variant: Variant = "printed", zero_division: float = 0.0):
    """Eq. 3 from a 2x2 confusion matrix in scikit-learn's layout for labels [negative, positive]:
    rows = truth, columns = prediction, ``[[TN, FP], [FN, TP]]``; stacks (..., 2, 2) allowed."""
    cm = np.asarray(cm, dtype=float)
    if cm.shape[-2:] != (2, 2):
        raise ValueError(f"confusion matrix must be (..., 2, 2), got {cm.shape}")
    return confidence_score(cm[..., 1, 1], cm[..., 0, 1], cm[..., 0, 0], cm[..., 1, 0], variant, zero_division)


def confidence_score_from_predictions(y_true: Any, y_pred: Any, variant: Variant = "printed",
                                      zero_division: float = 0.0) -> float:
    """Eq. 3 from binary truth and predictions (True/1 = the classifier's emotion, False/0 = the rest)."""
    t, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    tp, fp, tn, fn = (t & p).sum(), (~t & p).sum(), (~t & ~p).sum(), (t & ~p).sum()
    return confidence_score(tp, fp, tn, fn, variant, zero_division)


# ---- Eq. 4, 5, 13, 14: semantic scores and the soft label ------------------------------------------

def semantic_score(cs: Any, p: Any) -> np.ndarray:
    """Eq. 4 (and Eq. 13): SC(emo_i, img_k) = CS(emo_i) x P(emo_i | img_k); cs (8,), p (N, 8)."""
    cs, p = np.asarray(cs, dtype=float), np.asarray(p, dtype=float)
    if cs.ndim and cs.shape[-1] != p.shape[-1]:
        raise ValueError(f"cs {cs.shape} does not match the emotion axis of p {p.shape}")
    return cs * p


def sc_eb_mean(cs_by_model: Any, p_by_model: Any) -> np.ndarray:
    """Eq. 5: SC^EB_Mean(emo_i, img_k) = Σ_j (1/M) CS_j(emo_i) P_j(emo_i | img_k).

    The paper has three backbones (RN, EN, XN) and writes 1/3 per term; here 1/M for M models, i.e.
    the mean over models of Eq. 4. ``cs_by_model`` (M, 8) and ``p_by_model`` (M, N, 8) arrays, or two
    mappings model name -> (8,) / (N, 8) with the same keys."""
    if isinstance(cs_by_model, Mapping) or isinstance(p_by_model, Mapping):
        if not (isinstance(cs_by_model, Mapping) and isinstance(p_by_model, Mapping)):
            raise TypeError("pass both cs_by_model and p_by_model as mappings, or both as arrays")
        if set(cs_by_model) != set(p_by_model):
            raise ValueError(f"models differ: {sorted(cs_by_model)} vs {sorted(p_by_model)}")
        keys = sorted(cs_by_model)
        cs_by_model = [cs_by_model[k] for k in keys]
        p_by_model = [p_by_model[k] for k in keys]
    cs, p = np.asarray(cs_by_model, dtype=float), np.asarray(p_by_model, dtype=float)
    if cs.ndim != 2 or p.shape[0] != cs.shape[0] or p.shape[-1] != cs.shape[-1]:
        raise ValueError(f"expected cs (M, K) and p (M, N, K), got {cs.shape} and {p.shape}")
    if cs.shape[0] == 0:
        raise ValueError("no models")
    cs_b = cs.reshape(cs.shape[:1] + (1,) * (p.ndim - 2) + cs.shape[1:])
    return (cs_b * p).mean(axis=0)


def sc_au(cs_au: Any, p: Any) -> np.ndarray:
    """Eq. 13: SC^AU(emo_i, img_k) = CS^AU(emo_i) P(emo_i | img_k), with P the positive element of the
    Eq. 12 vector of emotion i's AU model (see :func:`au_positive_probabilities`)."""
    return semantic_score(cs_au, p)


def soft_label(sc_eb_mean_: Any, sc_au_: Any) -> np.ndarray:
    """Eq. 14: sl(emo_i, img_k) = ½ [SC^EB_Mean + SC^AU], elementwise (N, 8). As printed, not
    renormalized: a soft label need not sum to 1 (each P is a one-vs-rest probability times CS)."""
    a, b = np.asarray(sc_eb_mean_, dtype=float), np.asarray(sc_au_, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"SC^EB {a.shape} and SC^AU {b.shape} differ in shape")
    return 0.5 * (a + b)


# ---- Eq. 9-12: from a generated AU vector to the AU model's binary probability ---------------------

def similarity_vector(au_hat: Any, aus: Any = None, sim_neutral: float | None = None) -> np.ndarray:
    """Eq. 9: SV_k, sim_j = Σ_i AUS^i · AU_emo_j^i · ÂU^i for the 7 emotions with AUs; Neutral (an
    all-zero AU vector) gets the constant ``sim_neutral`` (default 0.25, from the data file).
    ``au_hat`` (N, 21) or (21,) sigmoid outputs; ``aus`` defaults to the derived Eq. 8 scores."""
    x = np.asarray(au_hat, dtype=float)
    if x.shape[-1] != len(ACTION_UNITS):
        raise ValueError(f"au_hat must end in {len(ACTION_UNITS)} AUs, got {x.shape}")
    w = au_matrix() * (au_scores() if aus is None else np.asarray(aus, dtype=float))  # (8, 21)
    sv = x @ w.T
    sv[..., EMOTIONS.index("Neutral")] = SIM_NEUTRAL if sim_neutral is None else float(sim_neutral)
    return sv


def _row_indices(gt: Any, n: int | None) -> np.ndarray | int:
    """Emotion index per row (scalar or (N,)), names allowed."""
    if np.ndim(gt) == 0:
        return emotion_index(gt.item() if isinstance(gt, np.ndarray) else gt)
    idx = np.array([emotion_index(g) for g in np.asarray(gt, dtype=object)], dtype=int)
    if n is not None and len(idx) != n:
        raise ValueError(f"{len(idx)} gt indices for {n} rows")
    return idx


def binary_similarity_vector(sv: Any, gt: Any) -> np.ndarray:
    """Eq. 10: BSV_k = {SV_k^gt, (1/7) Σ_{i≠gt} SV_k^i}, shape (N, 2) [own, rest]; 1/(K-1) for K emotions.
    At inference ``gt`` is the emotion of the AU model that produced ÂU (see au_model_probability)."""
    s = np.asarray(sv, dtype=float)
    k = s.shape[-1]
    g = _row_indices(gt, s.shape[0] if s.ndim == 2 else None)
    own = s[..., g] if np.ndim(g) == 0 else s[np.arange(s.shape[0]), g]
    rest = (s.sum(axis=-1) - own) / (k - 1)
    return np.stack([own, rest], axis=-1)


def au_probability_vector(bsv: Any) -> np.ndarray:
    """Eq. 11: APV_k = softmax(BSV_k) over its two elements (numerically stable)."""
    b = np.asarray(bsv, dtype=float)
    e = np.exp(b - b.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def combined_probability(bpv: Any, apv: Any) -> np.ndarray:
    """Eq. 12: P_k = ½ (BPV_k + APV_k), both ordered [own emotion, rest] (``POSITIVE = 0``)."""
    a, b = np.asarray(bpv, dtype=float), np.asarray(apv, dtype=float)
    if a.shape != b.shape or a.shape[-1] != 2:
        raise ValueError(f"BPV {a.shape} and APV {b.shape} must both be (..., 2)")
    return 0.5 * (a + b)


def au_model_probability(au_hat: Any, bpv: Any, emotion: int | str, aus: Any = None,
                         sim_neutral: float | None = None) -> np.ndarray:
    """Eq. 9-12 for the one-vs-rest AU model of ``emotion`` (§3.3): its ÂU -> SV -> BSV with gt =
    that emotion -> APV, averaged with its BPV. Returns P_k (N, 2) [own, rest].

    Reading of Eq. 10 at inference: there is one AU model per emotion; "gt" is the emotion the
    model was trained to recognize (the positive class), not the image's hard label, which soft
    labelling must not use (and test-MAS evaluation of Tables 7/IX could not use either)."""
    sv = similarity_vector(au_hat, aus, sim_neutral)
    apv = au_probability_vector(binary_similarity_vector(sv, emotion_index(emotion)))
    return combined_probability(bpv, apv)


def au_positive_probabilities(au_hat_by_emotion: Any, bpv_by_emotion: Any, aus: Any = None,
                              sim_neutral: float | None = None) -> np.ndarray:
    """P(emo_i | img_k) of Eq. 13 for all 8 AU models: the positive element of each model's Eq. 12
    vector. Inputs (8, N, 21) and (8, N, 2) in Eq. 1 order, or mappings emotion -> array. (N, 8)."""
    if isinstance(au_hat_by_emotion, Mapping):
        au_hat_by_emotion = [au_hat_by_emotion[e] for e in _mapping_order(au_hat_by_emotion)]
    if isinstance(bpv_by_emotion, Mapping):
        bpv_by_emotion = [bpv_by_emotion[e] for e in _mapping_order(bpv_by_emotion)]
    if len(au_hat_by_emotion) != len(EMOTIONS) or len(bpv_by_emotion) != len(EMOTIONS):
        raise ValueError(f"need one AU model output per emotion ({len(EMOTIONS)})")
    cols = [au_model_probability(au_hat_by_emotion[i], bpv_by_emotion[i], i, aus, sim_neutral)[..., POSITIVE]
            for i in range(len(EMOTIONS))]
    return np.stack(cols, axis=-1)


def _mapping_order(m: Mapping) -> list:
    """Keys of an emotion-keyed mapping in Eq. 1 order (every emotion exactly once)."""
    by_index = {emotion_index(k): k for k in m}
    if sorted(by_index) != list(range(len(EMOTIONS))) or len(by_index) != len(m):
        raise ValueError(f"mapping must have each of {EMOTIONS} once, got {list(m)}")
    return [by_index[i] for i in range(len(EMOTIONS))]


_SETS_API = ("difficulty", "hard_label_rank", "negative_allocation", "sample_negatives", "split_mas")


def __getattr__(name: str) -> Any:
    """§3.1 test-MAS split, §3.2 negative sampling and §3.5.1 subsets live in affectnet_plus_sets
    (kept apart for size); re-exported here lazily so that either module can be imported first."""
    if name in _SETS_API:
        from ops.labels import affectnet_plus_sets

        return getattr(affectnet_plus_sets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTION_UNITS", "EMOTIONS", "NEGATIVE", "POSITIVE", "SIM_NEUTRAL", "au_emotion_counts",
    "au_matrix", "au_model_probability", "au_positive_probabilities", "au_probability_vector",
    "au_score_differences", "au_scores", "au_set", "au_vector", "binary_similarity_vector",
    "combined_probability", "confidence_score", "confidence_score_from_confusion",
    "confidence_score_from_predictions", "emotion_index", "printed_table3", "sc_au", "sc_eb_mean",
    "semantic_score", "shared_au_matrix", "similarity_vector", "soft_label", "table3_differences",
]
__all__ += list(_SETS_API)  # resolved lazily by __getattr__
