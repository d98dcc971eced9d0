"""Emotion spaces of the demo world and the documented mappings between them.

* Plutchik's 8 leaves and 24 emotions (FindingEmo §2.1, Fig. 3) come from the project's taxonomy
  (:mod:`ops.annotations.taxonomy`): ``RINGS[leaf]`` = (mild, basic, intense) Emo24 names.
* Valence (-3..3) and arousal (0..6) centres: each Emo24 emotion gets the mean valence and arousal
  its annotations received in FindingEmo Table 4 (outer ring = mild, middle = basic, inner =
  intense). A leaf at intensity s in 0..1 sits between its mild (s = 0), basic (s = 0.5) and intense
  (s = 1) emotions, linearly (:func:`leaf_va`); a mixture averages its leaves by weight
  (:func:`scene_va`). "Serenity" is not legible in our copy of Table 4: valence 1.5, arousal 1.9
  (between Acceptance and Joy) is our estimate.
* AffectNet emotions (faces) -> Plutchik: Happy -> Joy, Sad -> Sadness, Surprise, Fear, Disgust and
  Anger -> the same leaf, Contempt -> half Disgust, half Anger (Plutchik's dyad), Neutral -> its own
  centre (valence 0, arousal 1, our choice) (:func:`face_va`).
* Plutchik leaf -> the AffectNet emotions its people show (:data:`LEAF_TO_FACE`; Trust and
  Anticipation have no AffectNet prototype and map to calm / interested mixtures).
"""

from __future__ import annotations

import numpy as np

from ops.annotations.taxonomy import EMO8, PLUTCHIK24

LEAVES: tuple[str, ...] = tuple(EMO8.labels)  # Plutchik's 8 leaves in wheel order
RINGS: dict[str, tuple[str, str, str]] = {  # leaf -> (mild, basic, intense) Emo24 names
    leaf: tuple(sorted((x for x in PLUTCHIK24.labels if PLUTCHIK24.parent[x] == leaf), key=PLUTCHIK24.ordinal))
    for leaf in LEAVES
}
# FindingEmo Table 4: (valence, arousal) means per Emo24 emotion (Serenity: our estimate, see above).
EMO24_VA: dict[str, tuple[float, float]] = {
    "Serenity": (1.5, 1.9), "Joy": (2.02, 3.04), "Ecstasy": (2.27, 3.97),
    "Acceptance": (1.14, 2.21), "Trust": (1.49, 2.57), "Admiration": (1.70, 3.06),
    "Apprehension": (-0.96, 2.73), "Fear": (-1.79, 3.76), "Terror": (-2.03, 4.34),
    "Distraction": (-0.06, 2.04), "Surprise": (0.35, 2.76), "Amazement": (1.51, 3.14),
    "Pensiveness": (-0.90, 2.53), "Sadness": (-1.65, 3.44), "Grief": (-2.01, 4.12),
    "Boredom": (-0.36, 1.65), "Disgust": (-1.62, 3.31), "Loathing": (-1.57, 3.93),
    "Annoyance": (-1.20, 2.78), "Anger": (-1.80, 3.99), "Rage": (-1.92, 4.54),
    "Interest": (0.79, 2.03), "Anticipation": (0.49, 2.58), "Vigilance": (0.22, 3.13),
}
LEAF_TO_FACE: dict[str, dict[str, float]] = {
    "Joy": {"Happy": 1.0}, "Trust": {"Happy": 0.5, "Neutral": 0.5}, "Fear": {"Fear": 1.0},
    "Surprise": {"Surprise": 1.0}, "Sadness": {"Sad": 1.0}, "Disgust": {"Disgust": 0.75, "Contempt": 0.25},
    "Anger": {"Anger": 1.0}, "Anticipation": {"Neutral": 0.5, "Surprise": 0.3, "Happy": 0.2},
}
AFFECTNET_TO_LEAVES: dict[str, dict[str, float]] = {
    "Happy": {"Joy": 1.0}, "Sad": {"Sadness": 1.0}, "Surprise": {"Surprise": 1.0}, "Fear": {"Fear": 1.0},
    "Disgust": {"Disgust": 1.0}, "Anger": {"Anger": 1.0}, "Contempt": {"Disgust": 0.5, "Anger": 0.5},
}
NEUTRAL_VA: tuple[float, float] = (0.0, 1.0)


# FindingEmo emotion keywords (ops/data/findingemo_keywords.json) used in the search query per leaf
QUERY_WORDS: dict[str, tuple[str, ...]] = {
    "Joy": ("Happy", "Joyful", "Cheerful"), "Trust": ("Loving", "Affectionate", "Kind"),
    "Fear": ("Fearful", "Scared", "Petrified"), "Surprise": ("Surprised", "Astonished", "Shocked"),
    "Sadness": ("Sad", "Grieving", "Heartbroken"), "Disgust": ("Disgusted", "Repulsed", "Grossed out"),
    "Anger": ("Angry", "Furious", "Outraged"), "Anticipation": ("Excited", "Optimistic", "Desiring"),
}


def leaf_va(leaf: str, intensity: float) -> tuple[float, float]:
    """(valence, arousal) of a Plutchik leaf at intensity 0..1 (FindingEmo Table 4, interpolated)."""
    s = 2 * float(np.clip(intensity, 0, 1))
    lo = min(int(s), 1)
    t = s - lo
    (v0, a0), (v1, a1) = EMO24_VA[RINGS[leaf][lo]], EMO24_VA[RINGS[leaf][lo + 1]]
    return v0 + (v1 - v0) * t, a0 + (a1 - a0) * t


def scene_va(mixture: dict[str, float], intensity: float) -> tuple[float, float]:
    """Valence (-3..3) and arousal (0..6) implied by an Emo8 mixture: the weighted mean of its leaves."""
    tot = sum(mixture.values())
    v = sum(w * leaf_va(l, intensity)[0] for l, w in mixture.items()) / tot
    a = sum(w * leaf_va(l, intensity)[1] for l, w in mixture.items()) / tot
    return round(v, 3), round(a, 3)


def emo24_of(leaf: str, intensity: float) -> str:
    """The Emo24 ring of a leaf at an intensity: mild < 0.4 <= basic < 0.75 <= intense."""
    return RINGS[leaf][0 if intensity < 0.4 else 1 if intensity < 0.75 else 2]


def face_mixture(mixture: dict[str, float]) -> dict[str, float]:
    """AffectNet-8 distribution expected on faces for an Emo8 scene mixture (:data:`LEAF_TO_FACE`)."""
    out: dict[str, float] = {}
    for leaf, w in mixture.items():
        for e, x in LEAF_TO_FACE[leaf].items():
            out[e] = out.get(e, 0.0) + w * x
    return out


def face_va(mixture: dict[str, float], intensity: float) -> tuple[float, float]:
    """Valence and arousal of an AffectNet emotion mixture (a face): the weighted mean of the
    Plutchik centres of its emotions (:data:`AFFECTNET_TO_LEAVES`), Neutral at :data:`NEUTRAL_VA`."""
    tot = sum(mixture.values())
    if tot <= 0:
        return NEUTRAL_VA
    v = a = 0.0
    for e, w in mixture.items():
        if e == "Neutral":
            ve, ae = NEUTRAL_VA
        else:
            ve, ae = scene_va(AFFECTNET_TO_LEAVES[e], intensity)
        v, a = v + w * ve, a + w * ae
    return round(v / tot, 3), round(a / tot, 3)
