"""Simulated annotators of known reliability, writing what real annotation exports look like.

Two exports:

* FindingEmo ``.ann`` CSV for the scenes (FindingEmo §2.1 dimensions, §2.3.2 keep/reject with reject
  tags, §2.3.3 gold images and overlap): header ``index,user,image_path,tags,age,valence,arousal,
  emotion,dec_factors,ambiguity,datetime``; Emo24 names; multi-valued fields comma-separated;
  "Undefined" for nothing given. A reject carries the explicit "Reject" tag (what
  :func:`ops.annotations.readers.read_findingemo_ann` reads as a reject by default) followed by the
  reason tag when the annotator gave one ("Reject,Watermark"); keep rows carry no reason tag. The 5
  gold images (4 keep, 1 reject, chosen for being unambiguous) are annotated first by everyone; their
  reference answers go to a gold CSV (image_id, keep, valence_min, valence_max, arousal_min,
  arousal_max, emotion8). A share of the other images is annotated by 2-5 annotators (overlap).
* AffectNet / FER+-style vote counts for the faces: one row per face, ``n_votes`` votes over Neutral,
  Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt, None, Uncertain, Non-Face, plus ``split``
  (AffectNet+ Supplement II's multi-annotated set shape; full-agreement faces arise).

Annotator model (one :class:`AnnotatorProfile` per annotator). On an item of clarity c in 0..1 (1 =
a pure, strong expression or scene), a "good" annotator gives the true label with probability
    p = chance + (accuracy - chance) x c        (chance = 1 / number of labels)
and otherwise a confusable label: the item's other mixture emotions, wheel neighbours (Plutchik),
AU-sharing emotions (AffectNet+ Tables 2-3), Neutral for weak expressions, Uncertain / None. So on
clear items the agreement with truth is exactly ``accuracy``. A "biased_label" annotator answers
``bias_label`` with probability ``bias_rate`` and otherwise like a good one; "biased_arousal" adds
``arousal_bias`` to every arousal; a "spammer" answers uniformly at random (agreement = chance: 1/8
leaves for scenes, answering among the 24 Emo24 names; 1/11 labels for faces) and keeps or rejects
at random.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from ops.annotations.taxonomy import AFFECTNET8, PLUTCHIK24
from ops.demo.affect import LEAVES, RINGS, emo24_of
from ops.demo.faces import EMOTIONS, TABLE2
from ops.demo.scenes import REJECT_TAGS

ANN_HEADER = ("index", "user", "image_path", "tags", "age", "valence", "arousal", "emotion",
              "dec_factors", "ambiguity", "datetime")
GOLD_HEADER = ("image_id", "keep", "valence_min", "valence_max", "arousal_min", "arousal_max", "emotion8")
FACE_LABELS: tuple[str, ...] = tuple(AFFECTNET8.all_labels)  # 8 emotions + None, Uncertain, Non-Face
AGE_GROUPS = ("Children", "Youth", "Young Adults", "Adults", "Seniors")
DEC_FACTORS = ("Neutral", "BodyLanguage", "ConflictCtxtPerson", "Context", "FacialExpression", "Staging")
KINDS = ("good", "biased_label", "biased_arousal", "spammer")
UNDEFINED = "Undefined"


@dataclass(frozen=True)
class AnnotatorProfile:
    """How one simulated annotator answers (see the module docstring)."""

    kind: str = "good"
    accuracy: float = 0.8          # P(true label) on a clear item
    keep_accuracy: float = 0.95    # P(right keep/reject decision)
    va_sd: float = 0.6             # noise on valence, arousal (scale points)
    bias_label: str | None = None  # biased_label: the favoured label (Emo8 leaf or AffectNet label)
    bias_rate: float = 0.0
    arousal_bias: float = 0.0      # biased_arousal: added to arousal

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown annotator kind {self.kind!r} (one of {KINDS})")


@dataclass(frozen=True)
class Annotator:
    annotator_id: str
    profile: AnnotatorProfile

    def to_dict(self) -> dict[str, Any]:
        return {"annotator_id": self.annotator_id, **asdict(self.profile)}


def default_scene_annotators(n: int = 14) -> list[AnnotatorProfile]:
    """A FindingEmo-like pool: ~60 % good, label-biased, arousal-biased, ~15 % spammers."""
    n_spam, n_bl, n_ba = max(1, round(0.15 * n)), max(1, round(0.12 * n)), max(1, round(0.12 * n))
    out = [AnnotatorProfile("good", accuracy=0.8)] * max(1, n - n_spam - n_bl - n_ba)
    out += [AnnotatorProfile("biased_label", accuracy=0.8, bias_label=LEAVES[(2 * k) % 8], bias_rate=0.4) for k in range(n_bl)]
    out += [AnnotatorProfile("biased_arousal", accuracy=0.8, arousal_bias=2.0)] * n_ba
    out += [AnnotatorProfile("spammer", accuracy=0.0, keep_accuracy=0.5, va_sd=0.0)] * n_spam
    return out


def default_face_annotators(n: int = 20) -> list[AnnotatorProfile]:
    """A crowd for the face votes: mostly good (accuracy 0.9), one biased to Neutral, one spammer."""
    return ([AnnotatorProfile("good", accuracy=0.9)] * (n - 2)
            + [AnnotatorProfile("biased_label", accuracy=0.9, bias_label="Neutral", bias_rate=0.3),
               AnnotatorProfile("spammer", accuracy=0.0, keep_accuracy=0.5)])


def make_annotators(profiles: Sequence[AnnotatorProfile], rng: np.random.Generator) -> list[Annotator]:
    """Prolific-like 24-hex ids for a list of profiles (order kept)."""
    return [Annotator("".join(f"{int(x):02x}" for x in rng.integers(0, 256, 12)), p) for p in profiles]


# ---- label distributions ----------------------------------------------------------------------------

def label_distribution(profile: AnnotatorProfile, truth: str, clarity: float, labels: Sequence[str],
                       confusion: dict[str, float]) -> np.ndarray:
    """P(answer) over ``labels`` for one item (true label ``truth``, confusable labels weighted)."""
    n = len(labels)
    if profile.kind == "spammer":
        return np.full(n, 1.0 / n)
    chance = 1.0 / n
    p_true = chance + (profile.accuracy - chance) * float(np.clip(clarity, 0, 1))
    w = np.array([0.0 if l == truth else max(0.0, confusion.get(l, 0.0)) + 1e-3 for l in labels])
    p = (1 - p_true) * w / w.sum()
    p[labels.index(truth)] = p_true
    if profile.kind == "biased_label" and profile.bias_label in labels:
        p = (1 - profile.bias_rate) * p
        p[labels.index(profile.bias_label)] += profile.bias_rate
    return p / p.sum()


def _shared_aus(a: str, b: str) -> int:
    return len(set(TABLE2.get(a, ())) & set(TABLE2.get(b, ())))  # AffectNet+ Table 3 from Table 2


def face_confusion(face: dict[str, Any]) -> dict[str, float]:
    """Where wrong votes on a face go: its other mixture emotions, AU-sharing emotions (Tables 2-3),
    Neutral for weak expressions, a little Uncertain / None."""
    if not face.get("is_face", True):
        return {"Uncertain": 1.0, "None": 0.6, "Neutral": 0.3}
    dom = face["dominant_emotion"]
    conf: dict[str, float] = {e: 3.0 * w for e, w in face["emotion_mixture"].items() if e != dom}
    for e in EMOTIONS:
        if e not in (dom, "Neutral"):
            conf[e] = conf.get(e, 0.0) + 0.4 * _shared_aus(dom, e) + 0.05
    if dom == "Neutral":
        conf.update({"Contempt": conf.get("Contempt", 0) + 1.0, "Sad": conf.get("Sad", 0) + 0.5, "Happy": conf.get("Happy", 0) + 0.4})
    else:
        conf["Neutral"] = conf.get("Neutral", 0.0) + 1.5 * (1 - float(face["intensity"])) + 0.1
    conf["Uncertain"], conf["None"], conf["Non-Face"] = 0.3, 0.1, 0.01
    return conf


def face_clarity(face: dict[str, Any]) -> float:
    """1 for a pure full-strength expression (and for Neutral and non-faces); lower for weak or mixed."""
    if not face.get("is_face", True):
        return 1.0
    ws = sorted(face["emotion_mixture"].values(), reverse=True) + [0.0]
    purity = (ws[0] - ws[1]) / ws[0]
    if face["dominant_emotion"] == "Neutral":
        return purity
    return float(min(1.0, float(face["intensity"]) / 0.6) * purity)


def scene_confusion(scene: dict[str, Any]) -> dict[str, float]:
    """Wrong Emo8 answers: the scene's other leaves, wheel neighbours, a little of everything."""
    dom = scene["emotion8"]
    i = LEAVES.index(dom)
    conf = {l: 0.2 for l in LEAVES}
    for k in (-1, 1):
        conf[LEAVES[(i + k) % 8]] += 1.0
    for l, w in scene["emotion_mixture"].items():
        conf[l] = conf.get(l, 0.0) + 4.0 * w
    return conf


def vote_face(annotator: Annotator, face: dict[str, Any], rng: np.random.Generator) -> str:
    """One AffectNet-style vote on a face (truth dict with dominant_emotion, mixture, intensity, is_face)."""
    truth = face["dominant_emotion"] if face.get("is_face", True) else "Non-Face"
    p = label_distribution(annotator.profile, truth, face_clarity(face), FACE_LABELS, face_confusion(face))
    return FACE_LABELS[int(rng.choice(len(FACE_LABELS), p=p))]


def _clip_round(x: float, lo: int, hi: int) -> int:
    return int(np.clip(np.rint(x), lo, hi))


def annotate_scene(annotator: Annotator, scene: dict[str, Any], rng: np.random.Generator) -> dict[str, str]:
    """One FindingEmo annotation (the .ann fields but index/user/image_path/datetime) of a scene."""
    prof = annotator.profile
    row = {k: UNDEFINED for k in ("tags", "age", "valence", "arousal", "emotion", "dec_factors", "ambiguity")}
    spam = prof.kind == "spammer"
    keep = (rng.random() < 0.5) if spam else (bool(scene["keep"]) == (rng.random() < prof.keep_accuracy))
    if not keep:
        tags = ["Reject"]
        true_tag = scene.get("reject_tag")
        if true_tag and not spam and rng.random() < 0.8:
            tags.append(true_tag)
        elif rng.random() < 0.3:
            tags.append(str(rng.choice(list(REJECT_TAGS.values()))))
        row["tags"] = ",".join(tags)
        return row
    if spam:
        row.update(valence=str(int(rng.integers(-3, 4))), arousal=str(int(rng.integers(0, 7))),
                   emotion=str(rng.choice(PLUTCHIK24.labels)), ambiguity=str(int(rng.integers(0, 7))),
                   age=",".join(sorted(rng.choice(AGE_GROUPS, size=int(rng.integers(1, 3)), replace=False), key=AGE_GROUPS.index)),
                   dec_factors=",".join(sorted(rng.choice(DEC_FACTORS, size=int(rng.integers(1, 3)), replace=False), key=DEC_FACTORS.index)))
        return row
    p = label_distribution(prof, scene["emotion8"], scene["clarity"], LEAVES, scene_confusion(scene))
    leaf = LEAVES[int(rng.choice(len(LEAVES), p=p))]
    ring = RINGS[leaf].index(emo24_of(leaf, scene["intensity"]))
    if rng.random() < 0.25:
        ring = int(np.clip(ring + rng.choice([-1, 1]), 0, 2))
    ages = [g for g in scene["age_groups"] if rng.random() < 0.9] or list(scene["age_groups"][:1])
    if rng.random() < 0.1:
        ages = sorted(set(ages) | {str(rng.choice(AGE_GROUPS))}, key=AGE_GROUPS.index)
    factors = [f for f in scene["deciding_factors"] if rng.random() < 0.7] or list(scene["deciding_factors"][:1])
    row.update(
        valence=str(_clip_round(scene["valence"] + rng.normal(0, prof.va_sd), -3, 3)),
        arousal=str(_clip_round(scene["arousal"] + prof.arousal_bias + rng.normal(0, prof.va_sd), 0, 6)),
        emotion=RINGS[leaf][ring], ambiguity=str(_clip_round(scene["ambiguity"] + rng.normal(0, 1.0), 0, 6)),
        age=",".join(ages) or UNDEFINED, dec_factors=",".join(factors) or UNDEFINED,
    )
    return row


# ---- whole exports ---------------------------------------------------------------------------------

def choose_gold(scenes: Sequence[dict[str, Any]], n_keep: int = 4, n_reject: int = 1) -> list[int]:
    """Indices of FindingEmo §2.3.3's fixed overlap images: the clearest kept scenes (pure mixture,
    strong, no context conflict, several people) and a plain reject (NoPeople first)."""
    keeps = sorted((i for i, s in enumerate(scenes) if s["keep"]),
                   key=lambda i: (-scenes[i]["clarity"], scenes[i]["conflict"], -scenes[i]["intensity"], -min(scenes[i]["n_people"], 3), i))
    rejects = sorted((i for i, s in enumerate(scenes) if not s["keep"]),
                     key=lambda i: (scenes[i]["reject_reason"] != "NoPeople", i))
    return keeps[:n_keep] + rejects[:n_reject]


def gold_reference(scene: dict[str, Any], image_id: str) -> dict[str, Any]:
    """Reference answer of a gold image: keep, V and A ranges (rounded value +- 1), Emo8 leaf."""
    if not scene["keep"]:
        return {"image_id": image_id, "keep": False, "valence_min": None, "valence_max": None,
                "arousal_min": None, "arousal_max": None, "emotion8": None}
    v, a = int(np.rint(scene["valence"])), int(np.rint(scene["arousal"]))
    return {"image_id": image_id, "keep": True, "valence_min": max(-3, v - 1), "valence_max": min(3, v + 1),
            "arousal_min": max(0, a - 1), "arousal_max": min(6, a + 1), "emotion8": scene["emotion8"]}


def simulate_findingemo(scenes: Sequence[dict[str, Any]], annotators: Sequence[Annotator], rng: np.random.Generator, *,
                        gold: Sequence[int] = (), overlap_fraction: float = 0.2, max_overlap: int = 5,
                        start: datetime = datetime(2023, 10, 2, 9, 0, 0)) -> list[dict[str, Any]]:
    """Every annotation of the scenes: gold images by everyone first (fixed order), then each other
    scene by one annotator, or by 2..max_overlap on an ``overlap_fraction`` of them (least-loaded
    annotators first). Scenes carry ``image_path``. Rows sorted by time, ``index`` numbered."""
    n = len(annotators)
    plan: list[list[int]] = [[] for _ in range(n)]  # per annotator: scene indices in serving order
    for j in range(n):
        plan[j].extend(gold)
    load = np.zeros(n)
    rest = [i for i in range(len(scenes)) if i not in set(gold)]
    for i in rest:
        k = 1
        if rng.random() < overlap_fraction and n >= 2:
            k = int(rng.integers(2, min(max_overlap, n) + 1))
        order = np.lexsort((rng.random(n), load))[:k]
        for j in order:
            plan[j].append(i)
            load[j] += 1
    rows = []
    for j, a in enumerate(annotators):
        t = start + timedelta(days=int(rng.integers(0, 20)), seconds=int(rng.integers(0, 8 * 3600)))
        for i in plan[j]:
            t += timedelta(seconds=float(rng.uniform(25, 120)))
            row = {"user": a.annotator_id, "image_path": scenes[i]["image_path"],
                   "datetime": t.strftime("%Y-%m-%d %H:%M:%S.%f")}
            row.update(annotate_scene(a, scenes[i], rng))
            rows.append(row)
    rows.sort(key=lambda r: (r["datetime"], r["user"]))
    for k, r in enumerate(rows):
        r["index"] = k
    return rows


def simulate_votes(faces: Sequence[dict[str, Any]], annotators: Sequence[Annotator], rng: np.random.Generator, *,
                   n_votes: int = 10) -> list[dict[str, Any]]:
    """Vote counts per face from ``n_votes`` distinct annotators drawn from the pool."""
    if n_votes > len(annotators):
        raise ValueError(f"n_votes={n_votes} needs at least as many face annotators (got {len(annotators)})")
    out = []
    for f in faces:
        counts = dict.fromkeys(FACE_LABELS, 0)
        for j in rng.choice(len(annotators), size=n_votes, replace=False):
            counts[vote_face(annotators[j], f, rng)] += 1
        # faces are named by their content hash (they link to the acquired image whatever its URL)
        out.append({"face_id": f.get("sha256") or f["item_id"], "image_path": f["file"], "split": f["split"], **counts})
    return out


def _csv(rows: Iterable[dict[str, Any]], header: Sequence[str]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(header), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in header})
    return buf.getvalue().encode("utf-8")


def ann_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    """The FindingEmo .ann CSV (header exactly as FindingEmo's export)."""
    return _csv(rows, ANN_HEADER)


def gold_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    return _csv(rows, GOLD_HEADER)


def votes_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    return _csv(rows, ("face_id", "image_path", "split") + FACE_LABELS)
