"""Scenes with known emotional content: the FindingEmo branch of the demo world.

A scene is a drawn social setting (birthday, wedding, funeral, protest, hospital, playground, office,
beach) with 1-6 people (body, arm pose and a face from :mod:`ops.demo.faces`) whose expressions are
drawn around the scene's emotion mixture, or one of the reject kinds of FindingEmo §2.3.2:

    NoPeople          the setting without anybody              tag "NoPeople"
    Watermark         a repeated semi-transparent logo/text    tag "Watermark"
    Text              large typeset text over the picture      tag "Text"
    Collage           a grid of unrelated sub-images           tag "NA" (the instructions' tag for collages)
    BadQualityPhoto   heavy blur, or noise and blockiness      tag "BadQualityPhoto"

The scene truth: setting, search query and FindingEmo-style image path, people (boxes, arm pose,
each face's truth), the scene's emotion mixture over Plutchik's 8 leaves (FindingEmo §2.1), its
intensity, the Emo24 label, valence and arousal implied by the mixture (:func:`scene_va`), ambiguity,
age groups, deciding factors, keep (bool) and the reject reason/tag.

The emotion mappings (Plutchik leaves -> valence/arousal, leaves -> AffectNet face emotions)
live in :mod:`ops.demo.affect`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ops.demo.affect import (
    LEAVES,
    QUERY_WORDS,
    emo24_of,
    face_mixture,
    face_va,
    scene_va,
)
from ops.demo.face_render import add_grain, draw_face, skin_colour
from ops.demo.faces import (
    EXPRESSION_NOISE,
    FaceSpec,
    Pose,
    sample_attributes,
    sample_expression,
)

SETTINGS: dict[str, dict[str, float]] = {  # setting -> prior over the dominant leaf
    "birthday": {"Joy": 0.6, "Surprise": 0.2, "Anticipation": 0.2},
    "wedding": {"Joy": 0.5, "Trust": 0.3, "Surprise": 0.1, "Sadness": 0.1},
    "funeral": {"Sadness": 0.75, "Trust": 0.15, "Fear": 0.1},
    "protest": {"Anger": 0.6, "Fear": 0.2, "Anticipation": 0.1, "Disgust": 0.1},
    "hospital": {"Fear": 0.35, "Sadness": 0.35, "Trust": 0.2, "Joy": 0.1},
    "playground": {"Joy": 0.6, "Surprise": 0.2, "Fear": 0.1, "Anticipation": 0.1},
    "office": {"Anticipation": 0.3, "Trust": 0.2, "Anger": 0.2, "Disgust": 0.15, "Joy": 0.15},
    "beach": {"Joy": 0.6, "Trust": 0.2, "Surprise": 0.1, "Disgust": 0.1},
}
PEOPLE_WORDS = {"Children": "children", "Youth": "teenagers", "Young Adults": "twenty-something",
                "Adults": "adults", "Seniors": "elderly", None: "people"}
REJECT_TAGS: dict[str, str] = {  # reject kind -> FindingEmo §2.3.2 tag
    "NoPeople": "NoPeople", "Watermark": "Watermark", "Text": "Text", "Collage": "NA", "BadQualityPhoto": "BadQualityPhoto",
}
ARM_POSES: dict[str, dict[str, float]] = {  # AffectNet emotion -> body language
    "Happy": {"raised": 0.3, "down": 0.7}, "Surprise": {"hands_up": 0.4, "down": 0.6},
    "Fear": {"hands_front": 0.5, "down": 0.5}, "Anger": {"fist_up": 0.4, "akimbo": 0.3, "down": 0.3},
    "Sad": {"slumped": 0.6, "down": 0.4}, "Disgust": {"hands_front": 0.2, "down": 0.8},
    "Contempt": {"akimbo": 0.3, "down": 0.7}, "Neutral": {"down": 1.0},
}


def _pick(rng: np.random.Generator, probs: dict[str, float]) -> str:
    keys = list(probs)
    p = np.array([probs[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def sample_mood(rng: np.random.Generator, setting: str) -> tuple[dict[str, float], float, bool]:
    """The scene's Emo8 mixture (one or two leaves), intensity, and whether it conflicts with the setting."""
    conflict = rng.random() < 0.12
    dom = str(rng.choice(LEAVES)) if conflict else _pick(rng, SETTINGS[setting])
    conflict = SETTINGS[setting].get(dom, 0.0) < 0.1
    mixture = {dom: 1.0}
    if rng.random() < 0.55:
        i = LEAVES.index(dom)
        second = LEAVES[(i + int(rng.choice([-1, 1]))) % 8] if rng.random() < 0.6 else _pick(rng, SETTINGS[setting])
        if second != dom:
            w = round(float(rng.uniform(0.15, 0.45)), 3)
            mixture = {dom: round(1 - w, 3), second: w}
    return mixture, round(float(rng.uniform(0.35, 1.0)), 3), conflict


# ---- drawing the settings ---------------------------------------------------------------------------

def _col(rng: np.random.Generator, base, spread: float = 25) -> tuple[int, int, int]:
    return tuple(int(np.clip(b + rng.normal(0, spread), 0, 255)) for b in base)


def _gradient(w: int, h: int, top, bottom) -> Image.Image:
    t = np.linspace(0, 1, max(2, h // 8))[:, None, None]
    a = (np.array(top, float) * (1 - t) + np.array(bottom, float) * t).astype(np.uint8)
    return Image.fromarray(np.repeat(a, 4, axis=1)).resize((w, h), Image.BILINEAR)


_PALETTES = {  # setting -> (sky/wall top, bottom, floor)
    "birthday": ((246, 214, 200), (236, 190, 170), (150, 110, 80)), "wedding": ((170, 205, 240), (215, 232, 245), (110, 160, 80)),
    "funeral": ((120, 125, 135), (165, 168, 172), (70, 95, 60)), "protest": ((160, 180, 205), (200, 205, 210), (120, 118, 115)),
    "hospital": ((210, 232, 230), (190, 215, 215), (175, 180, 178)), "playground": ((120, 180, 235), (190, 220, 245), (100, 170, 70)),
    "office": ((215, 210, 195), (200, 195, 180), (120, 115, 110)), "beach": ((90, 160, 230), (170, 210, 240), (230, 210, 160)),
}


def draw_setting(setting: str, w: int, h: int, rng: np.random.Generator) -> tuple[Image.Image, float]:
    """The empty setting (sky or wall, floor, props); returns the image and the horizon y."""
    top, bottom, floor = (_col(rng, c, 12) for c in _PALETTES[setting])
    horizon = h * rng.uniform(0.5, 0.66)
    img = _gradient(w, h, top, bottom)
    d = ImageDraw.Draw(img)
    d.rectangle([0, horizon, w, h], fill=floor)
    u = w / 100
    if setting == "birthday":
        for _ in range(int(rng.integers(5, 10))):  # balloons
            x, y, r = rng.uniform(0, w), rng.uniform(0.05, 0.4) * h, rng.uniform(2.5, 4) * u
            d.line([x, y + r * 1.2, x + rng.normal(0, u), y + 5 * r], fill=(90, 90, 90), width=max(1, int(u / 4)))
            d.ellipse([x - r, y - 1.2 * r, x + r, y + 1.2 * r], fill=_col(rng, rng.uniform(60, 240, 3), 0))
        pts = [(x, 0.06 * h + (i % 2) * 4 * u) for i, x in enumerate(np.linspace(0, w, 21))]
        for k in range(0, 20, 2):  # bunting
            d.polygon([pts[k], pts[k + 2] if k + 2 < 21 else pts[k], pts[k + 1]], fill=_col(rng, rng.uniform(80, 240, 3), 0))
        tx = rng.uniform(0.2, 0.8) * w
        d.rectangle([tx - 14 * u, horizon - 2 * u, tx + 14 * u, horizon + 8 * u], fill=(240, 240, 235))
        d.rectangle([tx - 6 * u, horizon - 9 * u, tx + 6 * u, horizon - 2 * u], fill=(250, 200, 215))
        for cx in np.linspace(tx - 4 * u, tx + 4 * u, 5):
            d.line([cx, horizon - 12 * u, cx, horizon - 9 * u], fill=(250, 240, 120), width=max(1, int(u / 2)))
    elif setting == "wedding":
        ax = rng.uniform(0.3, 0.7) * w
        d.arc([ax - 16 * u, horizon - 40 * u, ax + 16 * u, horizon + 8 * u], 180, 360, fill=(250, 250, 250), width=int(2 * u))
        for x in (ax - 16 * u, ax + 16 * u):
            d.line([x, horizon - 16 * u, x, horizon + 2 * u], fill=(250, 250, 250), width=int(2 * u))
        for _ in range(40):
            x, y, r = rng.uniform(0, w), rng.uniform(horizon, h), rng.uniform(0.4, 1.0) * u
            d.ellipse([x - r, y - r, x + r, y + r], fill=_col(rng, (240, 180, 200), 30))
    elif setting == "funeral":
        for _ in range(int(rng.integers(3, 7))):  # headstones
            x, s = rng.uniform(0, w), rng.uniform(3, 6) * u
            d.rounded_rectangle([x - s, horizon - 2.2 * s, x + s, horizon + 0.3 * s], radius=s * 0.8, fill=_col(rng, (150, 150, 150), 15))
        cx = rng.uniform(0.25, 0.75) * w
        d.rounded_rectangle([cx - 18 * u, horizon + 2 * u, cx + 18 * u, horizon + 9 * u], radius=2 * u, fill=(70, 42, 28))
        for k in range(7):
            x = cx - 12 * u + 4 * k * u
            d.ellipse([x - 1.5 * u, horizon - u, x + 1.5 * u, horizon + 2 * u], fill=_col(rng, (240, 240, 240), 20))
    elif setting in ("protest", "office", "hospital"):
        n = int(rng.integers(3, 7)) if setting == "protest" else int(rng.integers(2, 4))
        for _ in range(n):  # buildings / windows / wall panels
            x0, bw = rng.uniform(-0.1, 0.95) * w, rng.uniform(0.1, 0.3) * w
            y0 = rng.uniform(0.05, 0.4) * h if setting == "protest" else rng.uniform(0.1, 0.2) * h
            y1 = horizon if setting == "protest" else y0 + rng.uniform(0.15, 0.3) * h
            fill = _col(rng, (150, 140, 130), 30) if setting == "protest" else (200, 225, 240)
            d.rectangle([x0, y0, x0 + bw, y1], fill=fill, outline=(90, 90, 90), width=max(1, int(u / 3)))
            if setting == "protest":
                for wx in np.arange(x0 + 2 * u, x0 + bw - 2 * u, 5 * u):
                    for wy in np.arange(y0 + 2 * u, y1 - 3 * u, 6 * u):
                        d.rectangle([wx, wy, wx + 2.5 * u, wy + 3 * u], fill=(60, 70, 90))
        if setting == "protest":
            for _ in range(int(rng.integers(2, 5))):  # blank placards on sticks
                x, y = rng.uniform(0, w), rng.uniform(0.2, 0.45) * h
                d.line([x, y, x, y + 25 * u], fill=(110, 80, 50), width=int(u))
                d.rectangle([x - 7 * u, y - 5 * u, x + 7 * u, y + 5 * u], fill=_col(rng, (235, 230, 215), 15))
        elif setting == "office":
            for _ in range(int(rng.integers(1, 3))):
                x = rng.uniform(0.1, 0.9) * w
                d.rectangle([x - 15 * u, horizon + 3 * u, x + 15 * u, horizon + 6 * u], fill=(140, 105, 70))
                d.rectangle([x - 5 * u, horizon - 6 * u, x + 5 * u, horizon + 2 * u], fill=(35, 35, 40))
        else:
            x = rng.uniform(0.1, 0.9) * w
            d.rectangle([x - 20 * u, horizon + 1 * u, x + 20 * u, horizon + 7 * u], fill=(245, 245, 245))
            d.rectangle([x + 25 * u, horizon - 30 * u, x + 25.6 * u, horizon + 6 * u], fill=(150, 150, 150))
            d.rectangle([0.05 * w, 0.08 * h, 0.05 * w + 6 * u, 0.08 * h + 2 * u], fill=(210, 40, 40))
            d.rectangle([0.05 * w + 2 * u, 0.08 * h - 2 * u, 0.05 * w + 4 * u, 0.08 * h + 4 * u], fill=(210, 40, 40))
    elif setting == "playground":
        sx = rng.uniform(0.1, 0.8) * w
        d.polygon([(sx, horizon - 20 * u), (sx + 25 * u, horizon + 3 * u), (sx + 30 * u, horizon + 3 * u), (sx + 5 * u, horizon - 20 * u)], fill=(220, 60, 50))
        d.line([sx, horizon - 20 * u, sx, horizon + 3 * u], fill=(60, 60, 160), width=int(u))
        for _ in range(3):
            x, r = rng.uniform(0, w), rng.uniform(6, 12) * u
            d.ellipse([x - r, horizon - 2.5 * r, x + r, horizon - 0.5 * r], fill=_col(rng, (60, 130, 60), 20))
    elif setting == "beach":
        d.rectangle([0, horizon - 8 * u, w, horizon], fill=_col(rng, (40, 110, 180), 15))
        sx, sr = rng.uniform(0.1, 0.9) * w, 5 * u
        d.ellipse([sx - sr, 0.08 * h - sr, sx + sr, 0.08 * h + sr], fill=(255, 230, 120))
        ux = rng.uniform(0.1, 0.9) * w
        d.pieslice([ux - 14 * u, horizon - 14 * u, ux + 14 * u, horizon + 6 * u], 180, 360, fill=_col(rng, (230, 80, 80), 30))
        d.line([ux, horizon - 4 * u, ux, horizon + 12 * u], fill=(90, 90, 90), width=max(1, int(u / 2)))
    return img, float(horizon)


# ---- people ---------------------------------------------------------------------------------------

_ARMS = {  # (elbow, hand) in face-scale units relative to the shoulder joint, for the image-left arm
    "down": ((-0.4, 2.0), (-0.5, 4.0)), "slumped": ((-0.3, 2.1), (-0.35, 4.1)),
    "raised": ((-1.0, -1.6), (-1.6, -3.4)), "hands_up": ((-1.1, 0.9), (-0.7, -1.5)),
    "hands_front": ((-0.6, 1.8), (0.5, 0.4)), "akimbo": ((-1.2, 1.9), (0.0, 3.5)),
}


def draw_person(img: Image.Image, rng: np.random.Generator, x: float, feet: float, height: float,
                spec: FaceSpec, arm_pose: str) -> dict[str, Any]:
    """A person (legs, torso, arms, then the face) standing at ``x`` with feet at ``feet``; truth."""
    child = spec.attributes.age_group == "Children"
    torso, legs = (3.2, 3.2) if child else (4.2, 4.6)
    s = height / (1.45 + 1.45 + torso + legs)  # px per face unit
    cx, cy = x, feet - height + 1.45 * s
    sy = cy + 1.45 * s + (0.25 * s if arm_pose == "slumped" else 0)
    d = ImageDraw.Draw(img)
    shirt, pants = _col(rng, rng.uniform(30, 230, 3), 0), _col(rng, rng.uniform(20, 140, 3), 0)
    sw, hip = 1.5 * s * spec.attributes.face_width, sy + torso * s
    for sgn in (-1, 1):
        xa, xb = sorted((cx + sgn * 0.15 * s, cx + sgn * 1.05 * s))
        d.rectangle([xa, hip - s, xb, max(feet, hip)], fill=pants)
    d.rounded_rectangle([cx - sw, sy, cx + sw, hip + 0.3 * s], radius=0.6 * s, fill=shirt)
    skin = tuple(int(v) for v in skin_colour(spec.attributes.skin_tone))
    box = [cx - sw, cy - 1.5 * s, cx + sw, feet]
    for sgn in (-1, 1):
        pose = "down" if arm_pose == "fist_up" and sgn < 0 else ("raised" if arm_pose == "fist_up" else arm_pose)
        (ex, ey), (hx, hy) = _ARMS[pose]
        sh = (cx + sgn * (sw - 0.3 * s), sy + 0.35 * s)
        el = (sh[0] + sgn * -ex * s, sh[1] + ey * s)
        ha = (sh[0] + sgn * -hx * s, sh[1] + hy * s)
        d.line([sh, el, ha], fill=shirt, width=max(2, int(0.6 * s)), joint="curve")
        r = 0.32 * s
        d.ellipse([ha[0] - r, ha[1] - r, ha[0] + r, ha[1] + r], fill=skin)
        box = [min(box[0], el[0] - r, ha[0] - r), min(box[1], el[1] - r, ha[1] - r),
               max(box[2], el[0] + r, ha[0] + r), max(box[3], el[1] + r, ha[1] + r)]
    face = draw_face(img, spec, (cx, cy), s, neck=1.6)
    face["valence"], face["arousal"] = face_va(face["emotion_mixture"], face["intensity"])
    hb = face["head_box"]
    box = [min(box[0], hb[0]), min(box[1], hb[1]), max(box[2], hb[0] + hb[2]), max(box[3], hb[1] + hb[3])]
    box = [max(0.0, box[0]), max(0.0, box[1]), min(float(img.width), box[2]), min(float(img.height), box[3])]
    return {"box": [round(box[0], 2), round(box[1], 2), round(box[2] - box[0], 2), round(box[3] - box[1], 2)],
            "age_group": spec.attributes.age_group, "arm_pose": arm_pose, "face": face}


def _person_spec(rng: np.random.Generator, fmix: dict[str, float], intensity: float, age_group: str | None,
                 x_frac: float) -> tuple[FaceSpec, str]:
    """A person's face around the scene's face mixture: a Dirichlet draw, its top two emotions."""
    keys = list(fmix)
    alpha = np.array([fmix[k] for k in keys]) * 12 + 0.15
    draw = rng.dirichlet(alpha)
    order = np.argsort(-draw)
    dom = keys[order[0]]
    second, mix = (keys[order[1]], float(draw[order[1]] / (draw[order[0]] + draw[order[1]]))) if len(keys) > 1 else (None, 0.0)
    if mix < 0.12:
        second, mix = None, 0.0
    inten = float(np.clip(intensity + rng.normal(0, 0.12), 0.2, 1.0))
    expr = sample_expression(rng, dom, second=second, mix=round(mix, 3), intensity=inten, **EXPRESSION_NOISE)
    yaw = float(np.clip(rng.normal(25 * (0.5 - x_frac), 15), -45, 45))
    pitch = float(np.clip(rng.normal(-12 if dom == "Sad" else 0, 6), -25, 20))
    spec = FaceSpec(expr, sample_attributes(rng, age_group=age_group), Pose(yaw, pitch, float(np.clip(rng.normal(0, 5), -15, 15))),
                    (float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.3, 0.3))))
    return spec, _pick(rng, ARM_POSES[dom] if inten > 0.45 else {"down": 1.0})


def _people(img: Image.Image, rng: np.random.Generator, horizon: float, n: int, mixture: dict[str, float],
            intensity: float, ages: list[str]) -> list[dict[str, Any]]:
    w, h = img.size
    fmix = face_mixture(mixture)
    depth = rng.uniform(0, 1, n)
    slots = (np.arange(n) + 0.5 + rng.uniform(-0.3, 0.3, n)) / n
    rng.shuffle(slots)
    people = []
    for i in np.argsort(depth):  # far people first
        hgt = h * (0.42 + 0.45 * depth[i]) * (0.8 if ages[i] == "Children" else 1.0)
        feet = horizon + (h * 1.05 - horizon) * (0.25 + 0.75 * depth[i])
        hgt = min(hgt, feet - 0.03 * h)
        x = float(np.clip(slots[i] * w, 0.08 * w, 0.92 * w))
        spec, arms = _person_spec(rng, fmix, intensity, ages[i], slots[i])
        p = draw_person(img, rng, x, feet, hgt, spec, arms)
        p["depth"] = round(float(depth[i]), 3)
        people.append(p)
    for k, p in enumerate(people):  # face area covered by people drawn later (approximate, boxes)
        fx, fy, fw, fh = p["face"]["face_box"]
        cover = 0.0
        for q in people[k + 1:]:
            bx, by, bw, bh = q["box"]
            ix = max(0.0, min(fx + fw, bx + bw) - max(fx, bx))
            iy = max(0.0, min(fy + fh, by + bh) - max(fy, by))
            cover = max(cover, ix * iy / max(1e-6, fw * fh))
        p["occlusion"] = round(cover, 3)
    return people


# ---- reject kinds (FindingEmo §2.3.2) ---------------------------------------------------------------

def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, int(size)))


def _watermark(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    text = str(rng.choice(["stockdemo", "© PhotoBank", "DEMO IMAGES", "pixstock.example"]))
    font = _font(w / 16)
    tile = Image.new("RGBA", (int(w / 2.2), int(w / 7)), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((4, 4), text, font=font, fill=(255, 255, 255, int(rng.integers(110, 160))),
                              stroke_width=2, stroke_fill=(0, 0, 0, 60))
    tile = tile.rotate(float(rng.uniform(20, 35)), expand=True, resample=Image.BICUBIC)
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    for y in range(-tile.height // 2, h, int(tile.height * 0.8)):
        for x in range(-tile.width // 2, w, int(tile.width * 0.9)):
            layer.alpha_composite(tile, (max(0, x), max(0, y)), (max(0, -x), max(0, -y)))
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


_WORDS = ["BIG SALE", "BREAKING NEWS", "THANK YOU", "SAVE THE DATE", "OPEN DAY", "TOP 10 TIPS", "LIVE TONIGHT",
          "WELCOME", "JOIN US", "NEW SEASON"]


def _text(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    d = ImageDraw.Draw(img)
    lines = list(rng.choice(_WORDS, size=int(rng.integers(1, 3)), replace=False))
    size = h / rng.uniform(5, 7)
    font = _font(size)
    colour = tuple(int(v) for v in rng.choice([[255, 255, 255], [255, 220, 40], [230, 30, 30]]))
    y = rng.uniform(0.1, 0.45) * h
    for line in lines:
        tw = d.textlength(line, font=font)
        f = font if tw < 0.95 * w else _font(size * 0.95 * w / tw)
        tw = d.textlength(line, font=f)
        d.text(((w - tw) / 2, y), line, font=f, fill=colour, stroke_width=max(2, int(size / 18)), stroke_fill=(0, 0, 0))
        y += size * 1.15
    return img


def _bad_quality(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, str]:
    w, h = img.size
    if rng.random() < 0.5:
        return img.filter(ImageFilter.GaussianBlur(w * rng.uniform(0.01, 0.018))), "blur"
    k = int(rng.integers(8, 13))
    small = img.resize((max(1, w // k), max(1, h // k)), Image.BILINEAR).resize((w, h), Image.NEAREST)
    return add_grain(small, rng, float(rng.uniform(25, 40))), "noise_blocks"


# ---- one scene --------------------------------------------------------------------------------------

_ASPECTS = (4 / 3, 3 / 2, 16 / 9, 5 / 4)


def _ages(rng: np.random.Generator, n: int) -> list[str]:
    groups = ["Children", "Youth", "Young Adults", "Adults", "Seniors"]
    if rng.random() < 0.45:
        g = str(rng.choice(groups))
        return [g] * n
    return [str(g) for g in rng.choice(groups, size=n)]


def _compose(rng: np.random.Generator, w: int, h: int, setting: str, n: int) -> tuple[Image.Image, dict[str, Any]]:
    img, horizon = draw_setting(setting, w, h, rng)
    mixture, intensity, conflict = sample_mood(rng, setting)
    ages = _ages(rng, n)
    people = _people(img, rng, horizon, n, mixture, intensity, ages) if n else []
    return img, {"setting": setting, "emotion_mixture": mixture, "intensity": intensity, "conflict": conflict,
                 "people": people, "ages": ages}


def make_scene(rng: np.random.Generator, kind: str = "keep", *, width: int | None = None,
               setting: str | None = None, n_people: int | None = None) -> tuple[Image.Image, dict[str, Any]]:
    """One scene image and its truth. ``kind``: "keep" or a reject kind of :data:`REJECT_TAGS`."""
    if kind != "keep" and kind not in REJECT_TAGS:
        raise ValueError(f"unknown scene kind {kind!r}")
    w = int(width or rng.integers(900, 1501))
    h = round(w / float(rng.choice(_ASPECTS)))
    setting = setting or str(rng.choice(list(SETTINGS)))
    n = 0 if kind == "NoPeople" else int(n_people if n_people is not None else rng.integers(1, 7))
    extra: dict[str, Any] = {}
    if kind == "Collage":
        cols, rows = [(2, 2), (3, 2), (2, 3), (3, 3)][int(rng.integers(0, 4))]
        img = Image.new("RGB", (w, h), (250, 250, 250))
        g = max(4, w // 150)
        tw, th = (w - (cols + 1) * g) // cols, (h - (rows + 1) * g) // rows
        tiles, people = [], []
        for r in range(rows):
            for c in range(cols):
                t_img, t = _compose(rng, tw, th, str(rng.choice(list(SETTINGS))), int(rng.integers(0, 3)))
                ox, oy = g + c * (tw + g), g + r * (th + g)
                img.paste(t_img, (ox, oy))
                for p in t["people"]:
                    people.append(_offset(p, ox, oy))
                tiles.append({"box": [ox, oy, tw, th], "setting": t["setting"], "emotion_mixture": t["emotion_mixture"]})
        first = tiles[0]
        base = {"setting": first["setting"], "emotion_mixture": first["emotion_mixture"], "intensity": 0.5,
                "conflict": False, "people": people, "ages": [p["age_group"] for p in people]}
        extra["tiles"] = tiles
    else:
        img, base = _compose(rng, w, h, setting, n)
        if kind == "Watermark":
            img = _watermark(img, rng)
        elif kind == "Text":
            img = _text(img, rng)
        elif kind == "BadQualityPhoto":
            img, extra["degradation"] = _bad_quality(img, rng)
    if kind not in ("BadQualityPhoto",):
        img = add_grain(img, rng, 2.5)
    return img, _truth(base, kind, w, h, rng, extra)


def _offset(p: dict[str, Any], dx: float, dy: float) -> dict[str, Any]:
    q = dict(p)
    q["box"] = [p["box"][0] + dx, p["box"][1] + dy] + p["box"][2:]
    f = dict(p["face"])
    f["landmarks"] = [[round(x + dx, 2), round(y + dy, 2)] for x, y in f["landmarks"]]
    for k in ("face_box", "head_box"):
        f[k] = [f[k][0] + dx, f[k][1] + dy] + f[k][2:]
    q["face"] = f
    return q


def _truth(base: dict[str, Any], kind: str, w: int, h: int, rng: np.random.Generator, extra: dict[str, Any]) -> dict[str, Any]:
    mixture, intensity = base["emotion_mixture"], base["intensity"]
    dom = max(LEAVES, key=lambda l: (mixture.get(l, 0.0), -LEAVES.index(l)))
    v, a = scene_va(mixture, intensity)
    ws = sorted(mixture.values(), reverse=True) + [0.0]
    ambiguity = float(np.clip(12 * (1 - ws[0]) + (1.5 if base["conflict"] else 0.0), 0, 6))
    people = base["people"]
    ages = sorted(set(base["ages"]), key=["Children", "Youth", "Young Adults", "Adults", "Seniors"].index)
    factors = []
    if any(p["face"]["face_box"][2] >= 40 for p in people):
        factors.append("FacialExpression")
    if any(p["arm_pose"] != "down" for p in people):
        factors.append("BodyLanguage")
    if not base["conflict"]:
        factors.append("Context")
    else:
        factors.append("ConflictCtxtPerson")
    if len(people) >= 3:
        factors.append("Staging")
    if intensity < 0.4:
        factors.append("Neutral")
    major = max(set(base["ages"]), key=base["ages"].count) if base["ages"] and len(set(base["ages"])) == 1 else None
    word = str(rng.choice(QUERY_WORDS[dom] if rng.random() < 0.8 else QUERY_WORDS[str(rng.choice(LEAVES))]))
    out = {
        "kind": kind, "keep": kind == "keep", "reject_reason": None if kind == "keep" else kind,
        "reject_tag": REJECT_TAGS.get(kind), "width": w, "height": h, "setting": base["setting"],
        "query": f"{word} {PEOPLE_WORDS[major]} {base['setting']}",
        "emotion_mixture": mixture, "emotion8": dom, "emotion24": emo24_of(dom, intensity),
        "intensity": intensity, "valence": v, "arousal": a, "ambiguity": round(ambiguity, 3),
        "clarity": round((ws[0] - ws[1]) / ws[0], 4), "conflict": base["conflict"],
        "age_groups": ages, "deciding_factors": factors, "n_people": len(people), "people": people,
    }
    out.update(extra)
    return out


__all__ = ["ARM_POSES", "REJECT_TAGS", "SETTINGS", "draw_person", "draw_setting", "make_scene", "sample_mood"]
