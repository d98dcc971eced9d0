"""PIL drawing of the synthetic faces of :mod:`ops.demo.faces`.

A face is drawn into a local patch (optionally supersampled, then reduced with a Lanczos filter for
clean edges at small sizes) and pasted onto the canvas through its own silhouette mask, so scenes can
place many faces. Layers, back to front: long hair / bun, neck, far ear, the head silhouette (the
convex hull of a projected head ellipsoid and the jaw line) with soft edge shading, the hair cap (the
scalp above a hairline curve, minus the face region below it), near ear, texture cues (age wrinkles
and the AU cues listed in :mod:`ops.demo.faces`), brows, eyes (sclera, iris clipped by the lids, lid
lines), nose (nostrils, shadow), mouth (lips, the opening between the inner lip landmarks with teeth
and tongue). Every position comes from the projected 3-D geometry, so expression and pose drive the
pixels; nothing is drawn for an AU at intensity 0.

The truth returned with a drawing: the 68 landmarks in canvas pixels (continuous coordinates, origin
at the top-left corner, accurate to about half a pixel), the face box (landmark bounding box, x y w h),
the head box (silhouette with hair), the AU vector, emotion mixture, dominant emotion, intensity,
pose and SYNTHETIC attributes.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from ops.demo.faces import (
    AU_INDEX,
    EYE_COLOURS,
    HAIR_COLOURS,
    FaceSpec,
    au_dict,
    rotation_matrix,
)

_SKIN_RAMP = np.array([(250, 222, 200), (236, 196, 164), (208, 160, 122), (170, 118, 82), (124, 82, 56), (84, 54, 38)], float)


def skin_colour(t: float) -> np.ndarray:
    """RGB of a SYNTHETIC skin tone 0 (light) .. 1 (dark) on a six-stop ramp."""
    x = float(np.clip(t, 0, 1)) * (len(_SKIN_RAMP) - 1)
    i = min(int(x), len(_SKIN_RAMP) - 2)
    return _SKIN_RAMP[i] * (1 - (x - i)) + _SKIN_RAMP[i + 1] * (x - i)


def _sphere(n_az: int = 28, n_el: int = 13) -> np.ndarray:
    az = np.linspace(0, 2 * np.pi, n_az, endpoint=False)
    el = np.linspace(-np.pi / 2, np.pi / 2, n_el)
    a, e = np.meshgrid(az, el)
    return np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], -1).reshape(-1, 3)


_SPHERE = _sphere()
_HEAD_C = np.array([0.0, -0.36, -0.12])


def _hull(p: np.ndarray) -> np.ndarray:
    """Convex hull (Andrew's monotone chain) of 2-D points, counter-clockwise."""
    pts = sorted(set(map(tuple, np.round(p, 6))))
    if len(pts) < 3:
        return np.array(pts)

    def half(seq):
        out: list = []
        for q in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(q)
        return out
    lower, upper = half(pts), half(reversed(pts))
    return np.array(lower[:-1] + upper[:-1])


HAIRLINE_FRONT = -0.95


def _hairline(style: str, alpha: np.ndarray, recede: float) -> np.ndarray:
    """Height (face units, y down) of the hairline around the head; alpha = azimuth, 0 = front."""
    side = {"medium": -0.05, "long": -0.1}.get(style, -0.32)
    t = np.clip(np.abs(alpha) / (np.pi / 2), 0, 1) ** 1.5
    return HAIRLINE_FRONT - recede + (side - HAIRLINE_FRONT + recede) * t


def _shoelace(q: list[tuple[float, float]]) -> float:
    x, y = np.array(q).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


class _Face:
    """Projected geometry of one face, in face units and in patch pixels."""

    def __init__(self, spec: FaceSpec, center: tuple[float, float], scale: float, ss: int, neck: float):
        a = spec.attributes
        self.spec, self.a, self.scale, self.ss = spec, a, float(scale), int(ss)
        self.center = np.asarray(center, float)
        self.R = rotation_matrix(spec.pose)
        self.L3 = spec.landmarks_3d()
        self.L2 = self.rot(self.L3)
        rad = np.array([a.face_width, 1.0, 0.98])
        sphere = _SPHERE * rad + _HEAD_C
        self.head = _hull(np.vstack([self.rot(sphere), self.L2[:17]]))
        # hair: the scalp above the hairline (slightly off the skin), minus the face region below it
        self.cap = self.back = self.face_region = None
        self.bun = None
        if a.hair_style != "bald":
            recede = 0.12 if a.gender_presentation == "masculine" and a.age_years > 45 else 0.0
            s1 = _SPHERE * rad * 1.045 + _HEAD_C
            az = np.arctan2(s1[:, 0], s1[:, 2] - _HEAD_C[2])
            cap = s1[s1[:, 1] < _hairline(a.hair_style, az, recede)]
            self.cap = _hull(self.rot(cap))
            al = np.linspace(-1.15, 1.15, 17) * np.pi / 2
            hy = _hairline(a.hair_style, al, recede)
            rho = np.sqrt(np.clip(1 - ((hy - _HEAD_C[1]) / rad[1]) ** 2, 0, 1))
            hl = np.stack([rad[0] * rho * np.sin(al), hy, _HEAD_C[2] + rad[2] * rho * np.cos(al)], -1)
            self.face_region = _hull(np.vstack([self.rot(hl), self.L2[:17]]))
            if a.hair_style == "long":
                band = s1[s1[:, 1] < 0.1] * [1.08, 1, 1.05]
                low = np.array([[-1.2, 1.45, -0.3], [1.2, 1.45, -0.3], [-0.9, 1.7, -0.3], [0.9, 1.7, -0.3]])
                low[:, 0] *= a.face_width
                self.back = _hull(np.vstack([self.rot(band), low[:, :2]]))
            elif a.hair_style == "bun":
                self.bun = self.rot(np.array([[0, -1.3, -0.45]]))[0]
        nk = np.array([[-0.34, 0.35, -0.2], [0.34, 0.35, -0.2]]) * [a.face_width, 1, 1]
        top = self.rot(nk)
        bottom = nk[:, :2] + [[-0.06, neck], [0.06, neck]]
        self.neck = np.vstack([top, bottom[::-1]])
        self.ears = []
        for sgn in (-1, 1):
            c = self.rot(np.array([[sgn * 1.03 * a.face_width, -0.12, -0.16]]))[0]
            nz = float((self.R @ np.array([sgn, 0.0, 0.0]))[2])
            self.ears.append((c, nz))
        pts = [self.head, self.neck] + [x for x in (self.cap, self.back) if x is not None]
        allp = np.vstack(pts + [np.array([e[0] for e in self.ears]) + [[-0.2, -0.3], [0.2, 0.3]]])
        if self.bun is not None:
            allp = np.vstack([allp, self.bun + [[-0.4, -0.4], [0.4, 0.4]]])
        lo = np.floor(allp.min(0) * scale + self.center - 2).astype(int)
        hi = np.ceil(allp.max(0) * scale + self.center + 2).astype(int)
        self.origin, self.size = lo, hi - lo

    def rot(self, p3: np.ndarray) -> np.ndarray:
        return (np.asarray(p3, float) @ self.R.T)[:, :2]

    def q(self, p2: np.ndarray) -> list[tuple[float, float]]:
        """Face units (projected) -> patch pixels."""
        p = (np.atleast_2d(p2) * self.scale + self.center - self.origin) * self.ss
        return [(float(x), float(y)) for x, y in p]

    def q3(self, p3) -> list[tuple[float, float]]:
        return self.q(self.rot(np.atleast_2d(p3)))

    def w(self, units: float) -> int:
        return max(1, int(units * self.scale * self.ss + 0.5))


def _clip_paste(img: Image.Image, poly: list, paint) -> None:
    """Draw ``paint(draw, dx, dy)`` on a local layer and paste it through polygon ``poly``."""
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    x0, y0 = max(0, int(min(xs)) - 1), max(0, int(min(ys)) - 1)
    x1, y1 = min(img.width, int(max(xs)) + 2), min(img.height, int(max(ys)) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    layer = img.crop((x0, y0, x1, y1))
    paint(ImageDraw.Draw(layer), x0, y0)
    mask = Image.new("L", layer.size, 0)
    ImageDraw.Draw(mask).polygon([(x - x0, y - y0) for x, y in poly], fill=255)
    img.paste(layer, (x0, y0), mask)


def _shade(img: Image.Image, head_mask: Image.Image, radius: float) -> None:
    """Soft rim shading of the skin inside ``head_mask`` (light from the upper left)."""
    W, H = img.size
    k = 8
    small = head_mask.resize((max(2, W // k), max(2, H // k)), Image.BILINEAR)
    small = small.filter(ImageFilter.GaussianBlur(max(1.0, radius / k)))
    s = np.asarray(small, np.float32) / 255.0
    sh = max(1, int(radius / k / 2))
    lit = np.zeros_like(s)
    lit[sh:, sh:] = s[:-sh, :-sh]
    f = 0.6 + 0.4 * (0.55 * s + 0.45 * lit) ** 0.7
    f = Image.fromarray((f * 255).astype(np.uint8)).resize((W, H), Image.BILINEAR)
    img.paste(ImageChops.multiply(img, Image.merge("RGB", (f, f, f))), (0, 0), head_mask)


def _c(rgb, k: float = 1.0, alpha: int | None = None) -> tuple:
    c = tuple(int(np.clip(v * k, 0, 255)) for v in rgb)
    return c if alpha is None else c + (int(np.clip(alpha, 0, 255)),)


def _draw_layers(f: _Face, img: Image.Image, mask: Image.Image) -> None:
    a, spec = f.a, f.spec
    au = {n: float(spec.au[i]) for n, i in AU_INDEX.items()}
    skin = skin_colour(a.skin_tone)
    hair = np.array(HAIR_COLOURS[a.hair_colour], float)
    hair = hair * (1 - a.grey) + np.array(HAIR_COLOURS["grey" if a.grey < 0.75 else "white"]) * a.grey
    d, m = ImageDraw.Draw(img, "RGBA"), ImageDraw.Draw(mask)
    L2, q = f.L2, f.q

    def poly(p2, fill) -> None:
        pts = q(p2)
        d.polygon(pts, fill=fill)
        m.polygon(pts, fill=255)

    if f.back is not None:
        poly(f.back, _c(hair, 0.8))
    if f.bun is not None:
        c, r = q(f.bun)[0], 0.36 * f.scale * f.ss
        d.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=_c(hair, 0.85))
        m.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=255)
    poly(f.neck, _c(skin, 0.8))
    ear_r = (0.1 * f.scale * f.ss, 0.2 * f.scale * f.ss)

    def ear(c, nz) -> None:
        x, y = q(c)[0]
        rx = ear_r[0] * (0.6 + 0.6 * abs(nz))
        d.ellipse([x - rx, y - ear_r[1], x + rx, y + ear_r[1]], fill=_c(skin, 0.88))
        m.ellipse([x - rx, y - ear_r[1], x + rx, y + ear_r[1]], fill=255)
        if nz > 0.3:
            d.arc([x - rx * 0.6, y - ear_r[1] * 0.7, x + rx * 0.6, y + ear_r[1] * 0.7], 200, 160, fill=_c(skin, 0.6), width=f.w(0.012))

    for c, nz in f.ears:
        if nz <= 0.3:
            ear(c, nz)
    head_mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(head_mask).polygon(q(f.head), fill=255)
    poly(f.head, _c(skin))
    _shade(img, head_mask, 0.35 * f.scale * f.ss)
    if f.cap is not None:
        hm = Image.new("L", img.size, 0)
        hd = ImageDraw.Draw(hm)
        hd.polygon(q(f.cap), fill=255)
        hd.polygon(q(f.face_region), fill=0)
        img.paste(Image.new("RGB", img.size, _c(hair)), (0, 0), hm)
        mask.paste(255, (0, 0), hm)
    for c, nz in f.ears:
        if nz > 0.3:
            ear(c, nz)
    _draw_cues(f, d, skin, au)
    # brows
    brow = hair * 0.75 if a.hair_style != "bald" else np.array([70, 55, 45.0])
    if a.hair_colour in ("blond", "white") or a.grey > 0.6:
        brow = brow * 0.8
    for idx, widths in ((range(17, 22), (0.035, 0.05, 0.058, 0.062, 0.065)), (range(26, 21, -1), (0.035, 0.05, 0.058, 0.062, 0.065))):
        pts = q(L2[list(idx)])
        for k in range(4):
            wd = f.w(a.brow_thickness * 0.5 * (widths[k] + widths[k + 1]))
            d.line([pts[k], pts[k + 1]], fill=_c(brow), width=wd)
        for k, (x, y) in enumerate(pts):
            r = 0.5 * f.w(a.brow_thickness * widths[k])
            d.ellipse([x - r, y - r, x + r, y + r], fill=_c(brow))
    _draw_eyes(f, img, d, skin)
    _draw_nose(f, d, skin)
    _draw_mouth(f, img, d, skin)


def _draw_cues(f: _Face, d: ImageDraw.ImageDraw, skin: np.ndarray, au: dict[int, float]) -> None:
    """Age wrinkles and the AU texture cues; an AU at 0 draws nothing."""
    a, L3 = f.a, f.L3
    line = _c(skin, 0.45)
    wr = a.wrinkles
    lw = f.w(0.012)

    def stroke(p3, alpha: float, width: int = lw) -> None:
        if alpha > 0.5:
            d.line(f.q3(p3), fill=line + (int(min(alpha, 220)),), width=width, joint="curve")

    def surf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = np.clip(1 - (x / a.face_width) ** 2 - ((y - _HEAD_C[1]) / 1.0) ** 2, 0, 1)
        return _HEAD_C[2] + 0.98 * np.sqrt(r)

    by = float(L3[17:27, 1].mean())
    recede = 0.12 if a.gender_presentation == "masculine" and a.age_years > 45 else 0.0
    for k in range(3):  # forehead creases below the hairline: AU1 central, AU2 lateral, age everywhere
        y0 = by - 0.12 - 0.07 * k
        for xs, alpha in ((np.linspace(-0.3, 0.3, 7), 150 * au[1] + 70 * wr),
                          (np.linspace(0.22, 0.6, 5), 150 * au[2] + 60 * wr)):
            for sgn in ((1,) if xs[0] < 0 else (-1, 1)):
                x = sgn * xs * a.face_width
                y = y0 + 0.03 * (x / 0.6) ** 2
                if a.hair_style != "bald":
                    keep = y > _hairline(a.hair_style, np.arcsin(np.clip(x / a.face_width, -1, 1)), recede) + 0.04
                    x, y = x[keep], y[keep]
                if len(x) >= 2:
                    stroke(np.stack([x, y, surf(x, y) + 0.01], -1), alpha)
    if au[4] > 0 or wr > 0.5:  # glabella furrows (AU4)
        for sgn in (-1, 1):
            x = sgn * 0.045 * a.face_width
            y = float(L3[[21, 22], 1].mean())
            stroke([[x, y - 0.03, 0.75], [x * 0.8, y + 0.09, 0.78]], 170 * au[4] + 30 * max(0, wr - 0.5), f.w(0.015))
    for corner, inner, sgn in ((36, 41, -1), (45, 46, 1)):
        c = L3[corner]
        for ang in (-25, 0, 25):  # crow's feet (AU6, age)
            t = math.radians(ang)
            p0 = c + [sgn * 0.04, 0, -0.05]
            p1 = p0 + [sgn * 0.09 * math.cos(t), 0.09 * math.sin(t), -0.05]
            stroke([p0, p1], 140 * au[6] + 100 * wr)
        under = L3[[41, 40, 39]] if sgn < 0 else L3[[46, 47, 42]]
        stroke(under + [0, 0.065, 0.02], 130 * au[6] + 70 * wr)  # infraorbital furrow / bag
        if au[6] > 0:  # raised cheek highlight
            cx, cy = f.q3(L3[inner] + [sgn * 0.02, 0.17, 0.05])[0]
            r = 0.13 * f.scale * f.ss
            d.ellipse([cx - r, cy - r * 0.7, cx + r, cy + r * 0.7], fill=(255, 230, 215, int(60 * au[6])))
    if au[9] > 0:  # nose wrinkles across the bridge
        for y in (-0.2, -0.15, -0.1):
            stroke([[-0.07, y, 0.78], [0, y - 0.012, 0.84], [0.07, y, 0.78]], 190 * au[9])
    naso = max(0.6 * au[10], au[11], 0.85 * au[12])
    for wing, corner, sgn in ((31, 48, -1), (35, 54, 1)):  # nasolabial folds
        p0 = L3[wing] + [sgn * 0.05, -0.03, -0.05]
        p2 = L3[corner] + [sgn * 0.06, 0.05, -0.05]
        p1 = 0.5 * (p0 + p2) + [sgn * 0.06, 0, 0]
        stroke([p0, p1, p2], 40 * wr + 170 * naso, f.w(0.014))
        stroke([L3[corner] + [sgn * 0.02, 0.02, 0], L3[corner] + [sgn * 0.03, 0.14, -0.02]], 120 * au[15] + 50 * wr)
    if au[14] > 0:  # dimple beside the image-right corner
        c = L3[54]
        stroke([c + [0.03, -0.05, -0.02], c + [0.06, 0.0, -0.02], c + [0.04, 0.045, -0.02]], 230 * au[14], f.w(0.024))
    if au[17] > 0 or au[24] > 0:  # chin boss / bulge under the lower lip
        lo = L3[[59, 58, 57, 56, 55]] + [0, 0.05, 0]
        stroke(lo, 150 * au[17] + 90 * au[24], f.w(0.014))


def _draw_eyes(f: _Face, img: Image.Image, d: ImageDraw.ImageDraw, skin: np.ndarray) -> None:
    a, spec = f.a, f.spec
    iris_c = EYE_COLOURS[a.eye_colour]
    cy, cp = abs(math.cos(math.radians(spec.pose.yaw))), abs(math.cos(math.radians(spec.pose.pitch)))
    r = 0.072 * a.eye_scale * f.scale * f.ss
    rx, ry = r * (0.55 + 0.45 * cy), r * (0.7 + 0.3 * cp)
    fem = a.gender_presentation == "feminine"
    for idx in (list(range(36, 42)), list(range(42, 48))):
        poly = f.q(f.L2[idx])
        c3 = 0.5 * (f.L3[idx[0]] + f.L3[idx[3]]) + [spec.gaze[0] * 0.06 * a.eye_scale, spec.gaze[1] * 0.035 * a.eye_scale - 0.005, 0.02]
        ix, iy = f.q3(c3)[0]

        def paint(ld: ImageDraw.ImageDraw, x0: int, y0: int, ix: float = ix, iy: float = iy) -> None:
            ld.rectangle([0, 0, 10 ** 5, 10 ** 5], fill=(236, 232, 226))
            x, y = ix - x0, iy - y0
            ld.ellipse([x - rx, y - ry, x + rx, y + ry], fill=iris_c, outline=_c(iris_c, 0.5), width=max(1, int(r * 0.12)))
            ld.ellipse([x - rx * 0.45, y - ry * 0.45, x + rx * 0.45, y + ry * 0.45], fill=(12, 10, 10))
            hx, hy, hr = x - rx * 0.3, y - ry * 0.35, max(1.0, r * 0.16)
            ld.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=(250, 250, 250))
        _clip_paste(img, poly, paint)
        up, lo = poly[0:4], poly[3:6] + poly[0:1]
        d.line(up, fill=(38, 28, 26, 255), width=f.w(0.024 if fem else 0.018), joint="curve")
        d.line(lo, fill=_c(skin, 0.55, 200), width=f.w(0.008), joint="curve")
        crease = f.q3(f.L3[idx[:4]] + [0, -0.05 * a.eye_scale, 0.01])
        d.line(crease, fill=_c(skin, 0.6, 110), width=f.w(0.01), joint="curve")


def _draw_nose(f: _Face, d: ImageDraw.ImageDraw, skin: np.ndarray) -> None:
    L3 = f.L3
    d.line(f.q3(L3[[27, 28, 29, 30]] + [0.05, 0, -0.03]), fill=_c(skin, 0.6, 45), width=f.w(0.03), joint="curve")
    tip = f.q3(L3[30] + [-0.02, -0.02, 0])[0]
    r = 0.05 * f.scale * f.ss
    d.ellipse([tip[0] - r, tip[1] - r * 0.7, tip[0] + r, tip[1] + r * 0.7], fill=(255, 255, 255, 35))
    d.line(f.q3(L3[31:36]), fill=_c(skin, 0.5, 120), width=f.w(0.012), joint="curve")
    for a, b in ((31, 32), (35, 34)):
        cx, cy = f.q3(0.45 * L3[a] + 0.55 * L3[b] + [0, -0.012, 0])[0]
        rx, ry = 0.035 * f.scale * f.ss, 0.017 * f.scale * f.ss
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=_c(skin, 0.3, 220))
    for w_, s in ((31, -1), (35, 1)):
        p = L3[w_]
        d.line(f.q3([p + [0, -0.075, -0.02], p + [s * 0.025, -0.04, -0.02], p]), fill=_c(skin, 0.55, 110),
               width=f.w(0.012), joint="curve")


def _draw_mouth(f: _Face, img: Image.Image, d: ImageDraw.ImageDraw, skin: np.ndarray) -> None:
    a, L2, L3, q = f.a, f.L2, f.L3, f.q
    lip = skin * np.array([0.8, 0.55, 0.55]) + [40, 4, 10] + (np.array([20, 0, 6]) if a.gender_presentation == "feminine" else 0)
    lower = q(L2[[54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64]])
    upper = q(L2[[48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]])
    d.polygon(lower, fill=_c(lip))
    d.polygon(upper, fill=_c(lip, 0.9))
    d.line(q(L2[list(range(48, 60)) + [48]]), fill=_c(skin, 0.42, 200), width=f.w(0.01), joint="curve")
    inner = q(L2[60:68])
    if _shoelace(inner) > 1.5 * f.ss * f.ss:
        th = 0.065
        up_teeth = q(np.vstack([L2[60:65], f.rot(L3[64:59:-1] + [0, th, 0])]))
        lo_teeth = q(np.vstack([L2[[64, 65, 66, 67, 60]], f.rot(L3[[60, 67, 66, 65, 64]] + [0, -0.045, 0])]))
        gap = float(L3[66, 1] - L3[62, 1])
        tongue = f.q3(0.5 * (L3[66] + L3[62]) + [0, 0.3 * gap, 0])[0]

        def paint(ld: ImageDraw.ImageDraw, x0: int, y0: int) -> None:
            ld.rectangle([0, 0, 10 ** 5, 10 ** 5], fill=(58, 18, 24))
            sh = lambda pts: [(x - x0, y - y0) for x, y in pts]
            if gap > 0.12:
                tr = 0.14 * f.scale * f.ss
                tx, ty = tongue[0] - x0, tongue[1] - y0 + gap * 0.3 * f.scale * f.ss
                ld.ellipse([tx - tr, ty - tr * 0.55, tx + tr, ty + tr * 0.55], fill=(160, 62, 72))
            ld.polygon(sh(lo_teeth), fill=(214, 208, 192))
            ld.polygon(sh(up_teeth), fill=(238, 234, 222))
        _clip_paste(img, inner, paint)
    d.line(q(L2[60:65]), fill=_c(lip, 0.45, 230), width=f.w(0.014), joint="curve")
    d.line(q(L2[[64, 65, 66, 67, 60]]), fill=_c(lip, 0.55, 160), width=f.w(0.01), joint="curve")
    hl = f.q3(L3[57] + [0, -0.035, 0.02])[0]
    r = 0.05 * f.scale * f.ss
    d.ellipse([hl[0] - r, hl[1] - r * 0.4, hl[0] + r, hl[1] + r * 0.4], fill=(255, 255, 255, 30))


def draw_face(canvas: Image.Image, spec: FaceSpec, center: tuple[float, float], scale: float, *,
              supersample: int | None = None, neck: float = 1.3) -> dict[str, Any]:
    """Draw ``spec`` onto ``canvas`` (RGB, in place) with the face origin at ``center`` (px) and
    ``scale`` px per face unit (the face is about 2 x scale wide); return its truth.

    ``supersample`` (default: 1 for large faces, up to 4 for small ones) draws at that factor and
    reduces with a Lanczos filter. ``neck``: neck length below the face origin, in face units.
    """
    if supersample is None:
        supersample = int(np.clip(math.ceil(120 / max(scale, 1)), 1, 4))
    f = _Face(spec, center, scale, supersample, neck)
    W, H = (f.size * supersample).tolist()
    patch = Image.new("RGB", (W, H), _c(skin_colour(spec.attributes.skin_tone)))
    mask = Image.new("L", (W, H), 0)
    _draw_layers(f, patch, mask)
    if supersample > 1:
        patch = patch.resize(tuple(f.size.tolist()), Image.LANCZOS)
        mask = mask.resize(tuple(f.size.tolist()), Image.LANCZOS)
    canvas.paste(patch, tuple(f.origin.tolist()), mask)
    lm = f.L2 * scale + f.center
    bbox = np.array(mask.getbbox() or (0, 0, 0, 0), float) + np.tile(f.origin, 2)
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    e = spec.expression
    return {
        "landmarks": np.round(lm, 2).tolist(),
        "face_box": [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
        "head_box": [float(bbox[0]), float(bbox[1]), float(bbox[2] - bbox[0]), float(bbox[3] - bbox[1])],
        "au": au_dict(e.au), "emotion_mixture": dict(e.mixture), "dominant_emotion": e.dominant,
        "intensity": e.intensity, "pose": spec.pose.to_dict(), "gaze": [round(g, 3) for g in spec.gaze],
        "attributes": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in spec.attributes.to_dict().items()},
    }


def backdrop(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A soft out-of-focus background: two-colour gradient and blurred blobs, built small and upscaled."""
    W, H = size
    sw, sh = max(8, W // 16), max(8, H // 16)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    t = (xx / sw) * math.cos(ang) + (yy / sh) * math.sin(ang)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    c0, c1 = rng.uniform(30, 230, 3), rng.uniform(30, 230, 3)
    c0, c1 = 0.55 * c0 + 0.45 * c0.mean(), 0.55 * c1 + 0.45 * c1.mean()  # muted, photo-like
    bg = Image.fromarray((c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.uint8))
    dd = ImageDraw.Draw(bg)
    for _ in range(int(rng.integers(3, 8))):
        x, y, r = rng.uniform(0, sw), rng.uniform(0, sh), rng.uniform(0.08, 0.3) * sw
        c = rng.uniform(30, 240, 3)
        dd.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in 0.5 * c + 0.5 * c.mean()))
    bg = bg.filter(ImageFilter.GaussianBlur(1.5))
    return bg.resize((W, H), Image.BILINEAR)


@lru_cache(maxsize=1)
def _grain_tile(side: int = 1600) -> np.ndarray:
    return np.random.default_rng(20240607).standard_normal((side, side), dtype=np.float32)


def add_grain(img: Image.Image, rng: np.random.Generator, sd: float = 3.0) -> Image.Image:
    """Film grain (one luminance channel): a fixed unit-normal tile cropped at a random offset."""
    tile = _grain_tile()
    h, w = img.height, img.width
    if h > tile.shape[0] or w > tile.shape[1]:
        tile = np.tile(tile, (-(-h // tile.shape[0]), -(-w // tile.shape[1])))
    oy, ox = int(rng.integers(0, tile.shape[0] - h + 1)), int(rng.integers(0, tile.shape[1] - w + 1))
    n = tile[oy:oy + h, ox:ox + w, None] * np.float32(sd)
    return Image.fromarray((np.asarray(img, np.float32) + n).clip(0, 255).astype(np.uint8))


def render_face(spec: FaceSpec, size: int = 896, *, rng: np.random.Generator | int = 0,
                face_fraction: float = 0.6, jitter: float = 0.04, grain: float = 3.0,
                supersample: int | None = None) -> tuple[Image.Image, dict[str, Any]]:
    """A square face crop (AffectNet-style: one face, roughly centred) and its truth.

    The face is ``face_fraction`` of the crop wide (x 0.92..1.08), its centre jittered by ``jitter``
    of the size; background, shoulders and grain come from ``rng``.
    """
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    img = backdrop((size, size), rng)
    scale = size * face_fraction / 2 * rng.uniform(0.92, 1.08)
    cx = size / 2 + rng.uniform(-jitter, jitter) * size
    cy = size / 2 + 0.06 * scale + rng.uniform(-jitter, jitter) * size
    d = ImageDraw.Draw(img)
    shirt = tuple(int(v) for v in rng.uniform(20, 230, 3))
    sw = 1.7 * scale * spec.attributes.face_width
    top = cy + 1.25 * scale
    d.rounded_rectangle([cx - sw, top, cx + sw, size + scale], radius=0.6 * scale, fill=shirt)
    truth = draw_face(img, spec, (cx, cy), scale, supersample=supersample, neck=1.5)
    if grain > 0:
        img = add_grain(img, rng, grain)
    truth.update({"width": size, "height": size})
    return img, truth
