"""Synthetic faces whose expression is known: a parametric 68-landmark face driven by action units.

The demo world (see :mod:`ops.demo.world`) needs images whose emotional content is the truth, so that
every model stage (keep/reject CNN, Emo8 predictor, AffectNet+ soft labels, face detection, head pose,
demographics) can be checked against it. This module is the face model; :mod:`ops.demo.face_render`
draws it with PIL (``render_face`` / ``draw_face`` are re-exported here).

Geometry. 68 landmarks in the iBUG layout (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth
48-67) in *face units*: x to the image right, y down, z toward the viewer; half the face width at eye
level is 1, the origin sits between the nose wings. Each landmark has a depth (the nose tip is the most
forward point, the jaw line recedes toward the ears), so that a head pose can be applied as a 3-D
rotation followed by a scaled orthographic projection (:func:`project`).

Action units. The 21 AUs of AffectNet+ Eq. 6 (read from ``ops/data/affectnet_plus.json``, as are the
Table 2 AU sets per emotion) each move a documented set of landmarks (:data:`AU_REGIONS`) the way FACS
describes the muscle action (e.g. AU12 pulls the lip corners 48/54 outward and up; AU26 drops the
chin and the jaw line); intensities are 0..1 and displacements are linear in them, so an AU at
intensity 0 leaves the geometry exactly unchanged. Two small non-linear fixes keep the lips from
crossing (inner lower lip never above the inner upper lip); they never act on a neutral face. Some AUs
also leave a texture cue that the renderer draws (forehead creases for AU1/AU2, glabella furrows for
AU4, crow's feet and a raised cheek for AU6, nose wrinkles for AU9, nasolabial folds for AU10/11/12,
a dimple for AU14, a chin boss for AU17), again only when their intensity is above 0. AU14 is
rendered unilateral (on the image-right mouth corner), as in the contempt smirk (FACS "R14").

Expressions. One emotion's AU set from AffectNet+ Table 2 (Neutral: none), or a compound of two
emotions with a mixing weight, at an intensity, with per-AU noise (:func:`sample_expression`).

Appearance. :class:`Attributes` are SYNTHETIC rendering parameters standing in for demographic truth
(skin tone, face shape, hair style and colour, age cues such as wrinkle lines and grey hair, and a
binary "gender presentation" cue made of jaw width, jaw shape, brow thickness and hair-length odds).
They are not real demographic categories and must not be read as such; they only let demographic
estimators be checked for the cues they can see.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

# ---- AffectNet+ action units and Table 2 (loaded, not retyped) ----------------------------------


@lru_cache(maxsize=1)
def _affectnet_plus() -> dict:
    return json.loads(resources.files("ops").joinpath("data", "affectnet_plus.json").read_text("utf-8"))


AU_LIST: tuple[int, ...] = tuple(int(a) for a in _affectnet_plus()["action_units_eq6"])   # Eq. 6
EMOTIONS: tuple[str, ...] = tuple(_affectnet_plus()["emotions"])                        # AffectNet-8
TABLE2: dict[str, tuple[int, ...]] = {                                                  # Table 2
    e: tuple(int(a) for a in _affectnet_plus()["table2_action_units"].get(e, [])) for e in EMOTIONS
}
N_AU = len(AU_LIST)
AU_INDEX: dict[int, int] = {au: i for i, au in enumerate(AU_LIST)}
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser",
    6: "cheek raiser", 7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser",
    11: "nasolabial deepener", 12: "lip corner puller", 14: "dimpler", 15: "lip corner depressor",
    16: "lower lip depressor", 17: "chin raiser", 20: "lip stretcher", 22: "lip funneler",
    23: "lip tightener", 24: "lip pressor", 25: "lips part", 26: "jaw drop", 27: "mouth stretch",
}

# AUs that carry an emotion's look: never dropped when an expression samples a subset of its Table 2
# set ("different subsets of the corresponding AUs will create an expression", Table 2 caption).
CORE_AUS: dict[str, tuple[int, ...]] = {
    "Neutral": (), "Happy": (12,), "Sad": (1, 4, 15), "Surprise": (1, 2, 5, 26), "Fear": (1, 2, 4, 5, 20),
    "Anger": (4, 7, 23), "Disgust": (9, 10), "Contempt": (12, 14),
}
# Prototype weight of an AU within an emotion (default 1): a contempt smirk is half a smile, a happy
# mouth is parted less than a surprised one, and so on.
AU_WEIGHT: dict[tuple[str, int], float] = {
    ("Contempt", 12): 0.45, ("Happy", 25): 0.8, ("Sad", 6): 0.4, ("Sad", 11): 0.6,
    ("Surprise", 27): 0.45, ("Fear", 26): 0.6, ("Fear", 27): 0.3, ("Fear", 25): 0.8,
    ("Anger", 5): 0.6, ("Anger", 26): 0.55, ("Anger", 25): 0.8, ("Anger", 22): 0.5,
    ("Disgust", 27): 0.2, ("Disgust", 25): 0.6, ("Disgust", 16): 0.7,
}
# Table 2 lists both a pressed mouth (AU24) and an open one (AU25-27) for Anger: one is chosen.
_OPEN_MOUTH = (25, 26, 27)

for _e, _core in CORE_AUS.items():  # the choices above only refine Table 2
    assert set(_core) <= set(TABLE2[_e]), (_e, _core)
for (_e, _au) in AU_WEIGHT:
    assert _au in TABLE2[_e], (_e, _au)

# ---- landmark layout ----------------------------------------------------------------------------

PARTS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(17)), "brows": tuple(range(17, 27)), "nose": tuple(range(27, 36)),
    "eyes": tuple(range(36, 48)), "mouth": tuple(range(48, 68)),
}
# which parts each AU may move (FACS regions; checked by the tests)
AU_REGIONS: dict[int, tuple[str, ...]] = {
    1: ("brows",), 2: ("brows",), 4: ("brows",), 5: ("eyes",), 6: ("eyes",), 7: ("eyes",),
    9: ("nose", "mouth"), 10: ("nose", "mouth"), 11: ("mouth",), 12: ("mouth",), 14: ("mouth",),
    15: ("mouth",), 16: ("mouth",), 17: ("jaw", "mouth"), 20: ("mouth",), 22: ("mouth",), 23: ("mouth",),
    24: ("mouth",), 25: ("mouth",), 26: ("jaw", "mouth"), 27: ("jaw", "mouth"),
}


def _mirror_table() -> np.ndarray:
    m = np.arange(68)
    pairs = [(i, 16 - i) for i in range(8)] + [(17 + k, 26 - k) for k in range(5)] + [(31, 35), (32, 34)]
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
    for a, b in pairs:
        m[a], m[b] = b, a
    return m


MIRROR = _mirror_table()


def _template() -> np.ndarray:
    """The neutral average face (68 x 3, face units), before appearance attributes."""
    p = np.zeros((68, 3))
    phi = np.pi * np.arange(17) / 16  # jaw: a superellipse from the left temple round the chin
    c, s = np.cos(phi), np.sin(phi)
    p[:17, 0] = -np.sign(c) * np.abs(c) ** (2 / 2.8)
    p[:17, 1] = -0.25 + 1.2 * s ** (2 / 2.8)
    p[:17, 2] = -0.1 + 0.75 * s ** 1.2
    bx = [-0.78, -0.63, -0.48, -0.33, -0.14]
    by = [-0.44, -0.53, -0.56, -0.55, -0.51]
    p[17:22, 0], p[17:22, 1] = bx, by
    p[22:27, 0], p[22:27, 1] = [-x for x in bx[::-1]], by[::-1]
    p[27:31] = [[0, -0.28, 0.72], [0, -0.16, 0.82], [0, -0.04, 0.92], [0, 0.08, 1.02]]
    p[31:36, 0] = [-0.15, -0.075, 0, 0.075, 0.15]
    p[31:36, 1] = [0.17, 0.2, 0.215, 0.2, 0.17]
    p[31:36, 2] = [0.72, 0.8, 0.86, 0.8, 0.72]
    eye = np.array([[-0.57, -0.285], [-0.45, -0.355], [-0.31, -0.355], [-0.19, -0.27], [-0.31, -0.225], [-0.45, -0.225]])
    p[36:42, :2] = eye
    p[42:48, :2] = [(-x, y) for x, y in eye[[3, 2, 1, 0, 5, 4]]]
    p[36:48, 2] = 0.58
    p[[36, 45], 2] = 0.5
    mouth = [(-0.27, 0.47), (-0.18, 0.42), (-0.08, 0.395), (0, 0.41), (0.08, 0.395), (0.18, 0.42), (0.27, 0.47),
             (0.18, 0.54), (0.08, 0.575), (0, 0.58), (-0.08, 0.575), (-0.18, 0.54),
             (-0.24, 0.47), (-0.08, 0.47), (0, 0.47), (0.08, 0.47), (0.24, 0.47), (0.08, 0.47), (0, 0.47), (-0.08, 0.47)]
    p[48:68, :2] = mouth
    p[48:68, 2] = 0.74 - 0.5 * np.abs(p[48:68, 0])
    p[17:27, 2] = 0.7 - 0.35 * p[17:27, 0] ** 2
    return p


TEMPLATE = _template()
SIDE = np.sign(np.round(TEMPLATE[:, 0], 6)).astype(int)  # -1 image left, 0 midline, +1 image right

# ---- action units as landmark displacements (FACS, at intensity 1) ------------------------------
# (indices on the image-left side or the midline, outward dx, dy (down +), dz (toward viewer +));
# mirrored to the other side unless listed under _UNILATERAL. "Outward" = away from the midline.
_JAW = tuple(range(1, 9))
_JAW_W = {i: math.sin(math.pi * i / 16) ** 3 for i in _JAW}
_MOVES: dict[int, list[tuple[tuple[int, ...], float, float, float]]] = {
    1: [((21,), 0, -0.13, 0), ((20,), 0, -0.095, 0), ((19,), 0, -0.05, 0), ((18,), 0, -0.015, 0)],
    2: [((17,), 0, -0.10, 0), ((18,), 0, -0.09, 0), ((19,), 0, -0.06, 0), ((20,), 0, -0.025, 0)],
    4: [((21,), -0.05, 0.07, 0), ((20,), -0.035, 0.06, 0), ((19,), -0.02, 0.045, 0), ((18,), 0, 0.03, 0),
        ((17,), 0, 0.015, 0)],
    5: [((37, 38), 0, -0.05, 0)],
    6: [((40, 41), 0, -0.035, 0), ((36,), 0, -0.008, 0)],
    7: [((40, 41), 0, -0.04, 0), ((37, 38), 0, 0.02, 0)],
    9: [((31,), -0.01, -0.045, 0), ((32,), 0, -0.04, 0), ((33,), 0, -0.035, 0), ((30,), 0, -0.015, 0),
        ((29,), 0, -0.01, 0), ((50, 51), 0, -0.02, 0), ((61, 62), 0, -0.015, 0)],
    10: [((50, 51), 0, -0.06, 0), ((49,), 0, -0.04, 0), ((48,), 0, -0.015, 0), ((61, 62), 0, -0.075, 0),
         ((60,), 0, -0.02, 0), ((31,), 0, -0.015, 0)],
    11: [((49,), 0.01, -0.02, 0), ((50,), 0, -0.015, 0), ((61,), 0, -0.01, 0)],
    12: [((48,), 0.08, -0.08, -0.02), ((60,), 0.07, -0.075, -0.02), ((49,), 0.03, -0.035, 0),
         ((59,), 0.035, -0.04, 0), ((50,), 0, -0.01, 0), ((58,), 0.01, -0.015, 0), ((61, 67), 0.02, -0.02, 0)],
    14: [((54, 64), -0.03, -0.1, -0.03), ((53,), 0, -0.03, 0), ((55,), 0, -0.04, 0), ((63, 65), 0, -0.03, 0)],
    15: [((48,), 0.01, 0.1, 0), ((60,), 0.01, 0.095, 0), ((59,), 0, 0.04, 0), ((49,), 0, 0.025, 0),
         ((58,), 0, 0.01, 0), ((61, 67), 0, 0.012, 0)],
    16: [((57,), 0, 0.06, 0), ((58,), 0, 0.055, 0), ((59,), 0, 0.03, 0), ((66,), 0, 0.075, 0), ((67,), 0, 0.065, 0)],
    17: [((8,), 0, -0.045, 0.02), ((7,), 0, -0.035, 0.015), ((6,), 0, -0.015, 0), ((57,), 0, -0.04, 0.03),
         ((58,), 0, -0.035, 0.03), ((59,), 0, -0.015, 0.01)],
    20: [((48,), 0.07, 0.015, -0.02), ((60,), 0.065, 0.015, -0.02), ((49,), 0.03, 0.005, 0), ((59,), 0.03, 0, 0),
         ((50,), 0.01, 0.01, 0), ((58,), 0.01, -0.01, 0), ((51,), 0, 0.01, 0), ((57,), 0, -0.01, 0),
         ((61, 67), 0.02, 0, 0)],
    22: [((48, 60), -0.06, 0, 0.05), ((49,), -0.03, -0.01, 0.07), ((59,), -0.03, 0.01, 0.07),
         ((50,), -0.01, -0.02, 0.08), ((51,), 0, -0.02, 0.08), ((58,), -0.01, 0.02, 0.08), ((57,), 0, 0.02, 0.08),
         ((61,), -0.01, -0.03, 0.08), ((62,), 0, -0.03, 0.08), ((67,), -0.01, 0.03, 0.08), ((66,), 0, 0.03, 0.08)],
    23: [((48, 60), -0.035, 0, 0), ((49,), -0.015, 0.02, 0), ((50, 51), 0, 0.02, 0), ((59,), -0.015, -0.02, 0),
         ((58, 57), 0, -0.025, 0), ((61, 67), -0.01, 0, 0)],
    24: [((50, 51), 0, 0.03, 0), ((49,), 0, 0.02, 0), ((58, 57), 0, -0.03, 0), ((59,), 0, -0.02, 0),
         ((48, 60), 0, 0, -0.01)],
    25: [((61, 62), 0, -0.015, 0), ((67, 66), 0, 0.045, 0), ((58, 57), 0, 0.025, 0), ((59,), 0, 0.015, 0)],
    26: [((i,), 0, 0.16 * _JAW_W[i], 0) for i in _JAW] + [
        ((59,), 0, 0.09, 0), ((58, 57), 0, 0.12, 0), ((67, 66), 0, 0.13, 0), ((48, 60), 0, 0.04, 0)],
    27: [((i,), 0, 0.26 * _JAW_W[i], 0) for i in _JAW] + [
        ((59,), -0.02, 0.16, 0), ((58, 57), 0, 0.2, 0), ((67, 66), 0, 0.22, 0), ((61, 62), 0, -0.03, 0),
        ((49, 50, 51), 0, -0.015, 0), ((48, 60), -0.05, 0.07, 0)],
}
_UNILATERAL = {14}
# Cartoon exaggeration of the FACS movements, so that a small CNN sees them in 64-112 px crops
# (the jaw opening of AU26/AU27 is already large).
_GAIN: dict[int, float] = {26: 1.0, 27: 1.0}
_DEFAULT_GAIN = 1.4


def _deltas() -> np.ndarray:
    d = np.zeros((N_AU, 68, 3))
    for au, moves in _MOVES.items():
        k = AU_INDEX[au]
        for idx, out, dy, dz in moves:
            for i in idx:
                targets = [i] if au in _UNILATERAL or SIDE[i] == 0 else [i, int(MIRROR[i])]
                for t in targets:
                    if SIDE[t] == 0 and out:
                        raise AssertionError(f"AU{au}: outward move on midline landmark {t}")
                    d[k, t] = np.array((SIDE[t] * out, dy, dz)) * _GAIN.get(au, _DEFAULT_GAIN)
    return d


AU_DELTAS = _deltas()  # (21, 68, 3): displacement per unit intensity
assert set(_MOVES) == set(AU_LIST), "every Eq. 6 AU has a displacement"
for _au, _regions in AU_REGIONS.items():
    _allowed = {i for r in _regions for i in PARTS[r]}
    assert set(np.flatnonzero(np.abs(AU_DELTAS[AU_INDEX[_au]]).sum(1))) <= _allowed, _au


def au_vector(aus: Mapping[int, float] | Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """A 21-vector in Eq. 6 order from {AU number: intensity} (or a 21-sequence); None: all zero."""
    v = np.zeros(N_AU)
    if aus is None:
        return v
    if isinstance(aus, Mapping):
        for au, x in aus.items():
            v[AU_INDEX[int(au)]] = float(x)
        return v
    a = np.asarray(aus, dtype=float)
    if a.shape != (N_AU,):
        raise ValueError(f"an AU vector has {N_AU} entries in Eq. 6 order, got shape {a.shape}")
    return a.copy()


def au_dict(v: Sequence[float] | np.ndarray) -> dict[str, float]:
    """{"AU1": x, ...} (Eq. 6 order) for JSON truth files."""
    return {f"AU{au}": round(float(x), 4) for au, x in zip(AU_LIST, v)}


# ---- appearance (SYNTHETIC attributes) ------------------------------------------------------------

AGE_GROUPS = ("Children", "Youth", "Young Adults", "Adults", "Seniors")  # FindingEmo §2.1 age groups
_AGE_YEARS = {"Children": (4, 12), "Youth": (13, 19), "Young Adults": (20, 34), "Adults": (35, 59), "Seniors": (60, 86)}
GENDER_PRESENTATIONS = ("masculine", "feminine")
HAIR_STYLES = ("bald", "short", "medium", "long", "bun")
HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (28, 24, 22), "dark_brown": (62, 40, 28), "brown": (105, 70, 42), "blond": (196, 164, 104),
    "red": (146, 66, 36), "grey": (150, 148, 145), "white": (222, 220, 214),
}
EYE_COLOURS: dict[str, tuple[int, int, int]] = {
    "dark_brown": (58, 36, 22), "brown": (102, 64, 34), "hazel": (120, 100, 50), "green": (70, 110, 70),
    "blue": (70, 110, 160), "grey": (120, 130, 140),
}


@dataclass(frozen=True)
class Attributes:
    """SYNTHETIC appearance parameters (not real demographics): the truth for demographic cues.

    ``age_group`` uses FindingEmo's age-group names (§2.1) and drives the age cues (child proportions,
    ``wrinkles``, ``grey`` hair); ``gender_presentation`` is a binary rendering cue (jaw width and
    shape, brow thickness, odds of long hair); ``skin_tone`` 0 (light) .. 1 (dark) picks a colour on a
    ramp; the rest are shape factors around 1.
    """

    age_group: str = "Young Adults"
    age_years: int = 27
    gender_presentation: str = "feminine"
    skin_tone: float = 0.3
    face_width: float = 1.0
    face_length: float = 1.0
    jaw_width: float = 0.85
    jaw_squareness: float = 2.8
    eye_scale: float = 1.0
    lip_fullness: float = 1.0
    brow_thickness: float = 1.0
    hair_style: str = "short"
    hair_colour: str = "brown"
    grey: float = 0.0
    wrinkles: float = 0.0
    eye_colour: str = "brown"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_attributes(rng: np.random.Generator, *, age_group: str | None = None,
                      gender_presentation: str | None = None) -> Attributes:
    """Random SYNTHETIC appearance; ``age_group``/``gender_presentation`` fixed when given."""
    age_group = age_group or str(rng.choice(AGE_GROUPS, p=[0.15, 0.15, 0.3, 0.25, 0.15]))
    gp = gender_presentation or str(rng.choice(GENDER_PRESENTATIONS))
    lo, hi = _AGE_YEARS[age_group]
    years = int(rng.integers(lo, hi + 1))
    masc = gp == "masculine"
    child = age_group == "Children"
    if masc:
        styles = [0.12 if years >= 35 else 0.02, 0.6, 0.2, 0.06, 0.02]
    else:
        styles = [0.0, 0.15, 0.28, 0.45, 0.12]
    style = str(rng.choice(HAIR_STYLES, p=np.array(styles) / sum(styles)))
    colour = str(rng.choice(list(HAIR_COLOURS)[:5], p=[0.35, 0.25, 0.2, 0.13, 0.07]))
    grey = float(np.clip((years - 38) / 35 + rng.normal(0, 0.15), 0, 1)) if years >= 38 else 0.0
    wrinkles = float(np.clip((years - 30) / 50 + rng.normal(0, 0.08), 0, 1)) if years > 30 else 0.0
    return Attributes(
        age_group=age_group, age_years=years, gender_presentation=gp,
        skin_tone=float(rng.uniform(0, 1)),
        face_width=float(rng.uniform(0.92, 1.06) * (0.97 if child else 1.0)),
        face_length=float(rng.uniform(0.93, 1.07) * (0.88 if child else 0.95 if age_group == "Youth" else 1.0)),
        jaw_width=float(rng.uniform(0.9, 1.0) if masc else rng.uniform(0.74, 0.84)) * (0.95 if child else 1.0),
        jaw_squareness=float(rng.uniform(3.0, 3.6) if masc and not child else rng.uniform(2.3, 2.7)),
        eye_scale=float(rng.uniform(0.95, 1.05) * (1.15 if child else 1.05 if age_group == "Youth" else 1.0)),
        lip_fullness=float(rng.uniform(0.85, 1.0) if masc else rng.uniform(1.0, 1.2)),
        brow_thickness=float(rng.uniform(1.15, 1.4) if masc else rng.uniform(0.8, 1.0)),
        hair_style=style, hair_colour=colour, grey=grey, wrinkles=wrinkles,
        eye_colour=str(rng.choice(list(EYE_COLOURS))),
    )


def neutral_landmarks(attrs: Attributes | None = None) -> np.ndarray:
    """The 68 x 3 neutral face of these attributes (face units)."""
    a = attrs or Attributes()
    p = TEMPLATE.copy()
    phi = np.pi * np.arange(17) / 16  # the jaw line: width, squareness, length from the attributes
    c, s = np.cos(phi), np.sin(phi)
    e = 2 / a.jaw_squareness
    taper = 1 - (1 - a.jaw_width) * s ** 2
    p[:17, 0] = -np.sign(c) * np.abs(c) ** e * taper
    p[:17, 1] = -0.25 + 1.2 * s ** e
    eye_l, eye_r = p[36:42, :2].mean(0), p[42:48, :2].mean(0)
    p[36:42, :2] = eye_l + (p[36:42, :2] - eye_l) * a.eye_scale
    p[42:48, :2] = eye_r + (p[42:48, :2] - eye_r) * a.eye_scale
    mid = np.array([0.47, 0.47])  # lip fullness: outer lip contour away from the lip line
    outer = np.arange(48, 60)
    p[outer, 1] = mid[0] + (p[outer, 1] - mid[0]) * a.lip_fullness
    p[:, 0] *= a.face_width
    low = p[:, 1] > -0.28  # the lower face stretches about the eye line
    p[low, 1] = -0.28 + (p[low, 1] + 0.28) * a.face_length
    return p


def au_displacement(au: Sequence[float] | np.ndarray) -> np.ndarray:
    """Summed landmark displacement (68 x 3) of an AU intensity vector; AUs at 0 add nothing."""
    v = au_vector(au)
    d = np.zeros((68, 3))
    for k in np.flatnonzero(v):
        d += v[k] * AU_DELTAS[k]
    return d


def face_landmarks_3d(au: Sequence[float] | np.ndarray | None = None, attrs: Attributes | None = None) -> np.ndarray:
    """Neutral face of ``attrs`` moved by the AUs (AffectNet+ Eq. 6 order); 68 x 3 face units."""
    p = neutral_landmarks(attrs)
    v = au_vector(au)
    if not v.any():
        return p
    fw = (attrs or Attributes()).face_width
    d = au_displacement(v)
    d[:, 0] *= fw
    p = p + d
    # the lips never cross: inner lower lip not above the inner upper lip, outer contours outside
    for up, lo in ((61, 67), (62, 66), (63, 65)):
        if p[lo, 1] < p[up, 1]:
            p[up, 1] = p[lo, 1] = 0.5 * (p[up, 1] + p[lo, 1])
    for out, inn in ((50, 61), (51, 62), (52, 63)):
        p[out, 1] = min(p[out, 1], p[inn, 1])
    for out, inn in ((58, 67), (57, 66), (56, 65)):
        p[out, 1] = max(p[out, 1], p[inn, 1])
    return p


# ---- head pose -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees. yaw > 0: the face turns toward the image right (nose moves right);
    pitch > 0: the face looks up (nose moves up); roll > 0: the head tilts clockwise in the image."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {"yaw": round(self.yaw, 3), "pitch": round(self.pitch, 3), "roll": round(self.roll, 3)}


def rotation_matrix(pose: Pose) -> np.ndarray:
    """R = Rz(roll) @ Rx(pitch) @ Ry(yaw) in face coordinates (x right, y down, z to the viewer)."""
    y, p, r = (math.radians(a) for a in (pose.yaw, pose.pitch, pose.roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def rotate(points: np.ndarray, pose: Pose) -> np.ndarray:
    """Points (N x 3) rotated by the head pose (about the face origin)."""
    return np.asarray(points, float) @ rotation_matrix(pose).T


def project(points: np.ndarray, pose: Pose) -> np.ndarray:
    """Scaled-orthographic projection: rotate, then drop z (N x 2, face units; multiply by the scale
    in px per face unit and add the image position of the face origin to get pixels)."""
    return rotate(points, pose)[:, :2]


# ---- expressions (AffectNet+ Table 2) --------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """An emotion mixture at an intensity and the AU vector (Eq. 6 order) that renders it."""

    mixture: dict[str, float]
    intensity: float
    au: tuple[float, ...]

    @property
    def dominant(self) -> str:
        return dominant_emotion(self.mixture)


def dominant_emotion(mixture: Mapping[str, float]) -> str:
    """The emotion of largest weight (ties: AffectNet order)."""
    return max(EMOTIONS, key=lambda e: (mixture.get(e, 0.0), -EMOTIONS.index(e)))


def expression_aus(mixture: Mapping[str, float], intensity: float) -> np.ndarray:
    """Prototype AU vector of an emotion mixture (AffectNet+ Table 2, Eq. 6 order), no noise.

    au_k = intensity x min(1, sum_e (w_e / w_max) x weight(e, k) x [k in Table2(e)]): the dominant
    emotion's AUs at full intensity, a secondary emotion's in proportion to its weight.
    """
    mixture = {e: float(w) for e, w in mixture.items() if w > 0}
    for e in mixture:
        if e not in TABLE2:
            raise ValueError(f"unknown emotion {e!r} (AffectNet+ emotions: {EMOTIONS})")
    v = np.zeros(N_AU)
    if not mixture:
        return v
    wmax = max(mixture.values())
    for e, w in mixture.items():
        for au in TABLE2[e]:
            v[AU_INDEX[au]] += (w / wmax) * AU_WEIGHT.get((e, au), 1.0)
    return float(np.clip(intensity, 0, 1)) * np.minimum(v, 1.0)


def sample_expression(rng: np.random.Generator, dominant: str, *, second: str | None = None, mix: float = 0.0,
                      intensity: float = 0.8, noise: float = 0.1, drop: float = 0.15,
                      leak: float = 0.05, leak_max: float = 0.2) -> Expression:
    """One face's expression: ``dominant`` (weight 1 - mix) plus ``second`` (weight mix) at ``intensity``.

    Table 2 says different subsets of an emotion's AUs create the expression: each non-core AU of the
    set is dropped with probability ``drop``; Anger's mouth is either pressed (AU24) or open (AU25-27).
    Active AUs get multiplicative noise N(1, noise); each inactive AU leaks in with probability
    ``leak`` at U(0, leak_max). The returned AU vector is the exact truth of what is rendered.
    """
    mixture = {dominant: 1.0 - mix}
    if second and mix > 0 and second != dominant:
        mixture[second] = float(mix)
    else:
        mixture = {dominant: 1.0}
    mixture = {e: round(w, 4) for e, w in mixture.items()}
    weights = {}
    wmax = max(mixture.values())
    for e, w in mixture.items():
        aus = list(TABLE2[e])
        if 24 in aus and any(a in aus for a in _OPEN_MOUTH):
            aus = [a for a in aus if a != 24] if rng.random() < 0.5 else [a for a in aus if a not in _OPEN_MOUTH]
        for au in aus:
            if au not in CORE_AUS[e] and rng.random() < drop:
                continue
            weights[au] = weights.get(au, 0.0) + (w / wmax) * AU_WEIGHT.get((e, au), 1.0)
    v = np.zeros(N_AU)
    for au, w in weights.items():
        v[AU_INDEX[au]] = min(1.0, w) * intensity * max(0.0, 1.0 + rng.normal(0, noise))
    for k in range(N_AU):
        if v[k] == 0 and AU_LIST[k] not in weights and rng.random() < leak:
            v[k] = rng.uniform(0, leak_max)
    v = np.round(np.clip(v, 0, 1), 4)
    return Expression(mixture=mixture, intensity=round(float(intensity), 4), au=tuple(float(x) for x in v))


# default per-AU noise of the demo world's expressions (see sample_expression)
EXPRESSION_NOISE: dict[str, float] = {"noise": 0.1, "drop": 0.15, "leak": 0.05, "leak_max": 0.2}


# ---- a face to render ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceSpec:
    """Everything that determines a rendered face (and its truth)."""

    expression: Expression = field(default_factory=lambda: Expression({"Neutral": 1.0}, 0.0, (0.0,) * N_AU))
    attributes: Attributes = field(default_factory=Attributes)
    pose: Pose = field(default_factory=Pose)
    gaze: tuple[float, float] = (0.0, 0.0)   # iris offset, -1..1 of the eye's half size

    @property
    def au(self) -> np.ndarray:
        return np.asarray(self.expression.au, dtype=float)

    def landmarks_3d(self) -> np.ndarray:
        return face_landmarks_3d(self.au, self.attributes)


def sample_face(rng: np.random.Generator, dominant: str | None = None, *, compound_p: float = 0.3,
                intensity: tuple[float, float] = (0.4, 1.0), max_yaw: float = 40, max_pitch: float = 20,
                max_roll: float = 15, attributes: Attributes | None = None, **expression_kw: Any) -> FaceSpec:
    """A random face: emotion (uniform unless given), compound with probability ``compound_p``,
    pose from truncated normals, SYNTHETIC attributes."""
    dominant = dominant or str(rng.choice(EMOTIONS))
    second, mix = None, 0.0
    if rng.random() < compound_p:
        second = str(rng.choice([e for e in EMOTIONS if e != dominant]))
        mix = float(rng.uniform(0.15, 0.45))
    expr = sample_expression(rng, dominant, second=second, mix=mix,
                             intensity=float(rng.uniform(*intensity)), **expression_kw)
    pose = Pose(*(float(np.clip(rng.normal(0, m / 2.5), -m, m)) for m in (max_yaw, max_pitch, max_roll)))
    return FaceSpec(expr, attributes or sample_attributes(rng), pose,
                    (float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.3, 0.3))))


def render_face(spec: FaceSpec, size: int = 896, **kw: Any):
    """A face crop and its truth (see :func:`ops.demo.face_render.render_face`)."""
    from ops.demo.face_render import render_face as _render
    return _render(spec, size, **kw)


def draw_face(canvas, spec: FaceSpec, center: tuple[float, float], scale: float, **kw: Any) -> dict:
    """Draw a face onto an image (see :func:`ops.demo.face_render.draw_face`)."""
    from ops.demo.face_render import draw_face as _draw
    return _draw(canvas, spec, center, scale, **kw)
