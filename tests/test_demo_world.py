"""The demo world: synthetic faces and scenes whose emotions are known, simulated annotators, exports."""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections import Counter
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ops.annotations.grading import gold_from_frame, grade_annotators
from ops.annotations.readers import (
    FINDINGEMO_COLUMNS,
    read_findingemo_ann,
    read_vote_counts,
)
from ops.annotations.taxonomy import PLUTCHIK24
from ops.demo import annotators as A
from ops.demo.affect import LEAVES, scene_va
from ops.demo.face_render import draw_face, render_face
from ops.demo.faces import (
    AU_LIST,
    AU_REGIONS,
    EMOTIONS,
    PARTS,
    TABLE2,
    Attributes,
    Expression,
    FaceSpec,
    Pose,
    au_vector,
    expression_aus,
    face_landmarks_3d,
    neutral_landmarks,
    sample_attributes,
)
from ops.demo.scenes import REJECT_TAGS
from ops.demo.world import ANN_FILE, MANIFEST, build_world, load_world

# integration tests (trained models, face detectors, demo worlds or exports): `make test`, not `make test-fast`
pytestmark = pytest.mark.slow

TINY = {"seed": 5, "n_faces": 24, "n_scenes": 20, "face_size": 256}
VOTE_LABELS = list(A.FACE_LABELS)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world_a")
    t = time.perf_counter()
    w = build_world(d, **TINY)
    return w, time.perf_counter() - t


def _neutral_spec(**kw) -> FaceSpec:
    return FaceSpec(Expression({"Neutral": 1.0}, 0.0, tuple(au_vector(kw.pop("au", None)))), Attributes(), Pose(**kw))


# ---- the face model ------------------------------------------------------------------------------

def test_table2_and_eq6_come_from_the_data_file():
    data = json.loads(resources.files("ops").joinpath("data", "affectnet_plus.json").read_text("utf-8"))
    assert list(AU_LIST) == data["action_units_eq6"] and len(AU_LIST) == 21
    for e in EMOTIONS:
        v = expression_aus({e: 1.0}, 1.0)
        assert {AU_LIST[k] for k in np.flatnonzero(v)} == set(data["table2_action_units"][e]) == set(TABLE2[e])


def test_au_at_zero_leaves_geometry_and_pixels_unchanged():
    base = neutral_landmarks()
    img0, _ = render_face(_neutral_spec(), 160, rng=1)
    for au in AU_LIST:
        assert np.array_equal(face_landmarks_3d(au_vector({au: 0.0})), base)
    for au in (1, 6, 9, 12, 14, 17, 26):  # AUs with texture cues too
        img, _ = render_face(_neutral_spec(au={au: 0.0}), 160, rng=1)
        assert img.tobytes() == img0.tobytes()
        moved, _ = render_face(_neutral_spec(au={au: 0.5}), 160, rng=1)
        assert moved.tobytes() != img0.tobytes()
    fear = expression_aus({"Fear": 1.0}, 0.9)  # an AU added at 0 to an expression changes nothing
    k = AU_LIST.index(12)
    assert fear[k] == 0 and np.array_equal(face_landmarks_3d(fear), face_landmarks_3d(fear.copy()))


def _moves(au: int) -> np.ndarray:
    return face_landmarks_3d(au_vector({au: 1.0})) - neutral_landmarks()


@pytest.mark.parametrize("au", AU_LIST)
def test_each_au_moves_only_its_region(au):
    d = _moves(au)
    moved = set(np.flatnonzero(np.abs(d).sum(1) > 1e-12))
    allowed = {i for r in AU_REGIONS[au] for i in PARTS[r]}
    assert moved and moved <= allowed, (au, sorted(moved - allowed))


def test_au_directions_follow_facs():
    n = neutral_landmarks()
    x, y = 0, 1  # image axes: x right, y down

    def m(au):
        return _moves(au)

    def eye_h(p, up=(37, 38), lo=(40, 41)):
        return p[list(lo), y].mean() - p[list(up), y].mean()

    def mouth_w(p):
        return p[54, x] - p[48, x]

    assert m(1)[21, y] < 0 and m(1)[22, y] < 0 and m(1)[21, y] < m(1)[17, y]            # inner brows up
    assert m(2)[17, y] < 0 and m(2)[26, y] < 0 and m(2)[17, y] < m(2)[21, y]            # outer brows up
    assert m(4)[21, y] > 0 and m(4)[21, x] > 0 and m(4)[22, x] < 0                      # down, together
    assert eye_h(n + m(5)) > eye_h(n) and m(5)[37, y] < 0                               # lids up: wider
    assert m(6)[40, y] < 0 and m(6)[47, y] < 0 and eye_h(n + m(6)) < eye_h(n)           # narrowed from below
    assert eye_h(n + m(7)) < eye_h(n)
    assert all(m(9)[i, y] < 0 for i in range(31, 36))                                   # nostrils up
    assert m(10)[51, y] < 0 and m(10)[62, y] < 0                                         # upper lip up
    assert m(11)[49, y] < 0
    assert m(12)[48, x] < 0 and m(12)[48, y] < 0 and m(12)[54, x] > 0 and m(12)[54, y] < 0  # corners out, up
    assert m(14)[54, y] < 0 and not m(14)[48].any()                                     # unilateral smirk
    assert m(15)[48, y] > 0 and m(15)[54, y] > 0                                         # corners down
    assert m(16)[57, y] > 0 and m(16)[66, y] > 0                                         # lower lip down
    assert m(17)[8, y] < 0 and m(17)[57, y] < 0                                          # chin up
    assert mouth_w(n + m(20)) > mouth_w(n)
    assert mouth_w(n + m(22)) < mouth_w(n) and m(22)[51, 2] > 0                          # funnel forward
    assert mouth_w(n + m(23)) < mouth_w(n)
    assert (n + m(24))[57, y] - (n + m(24))[51, y] < n[57, y] - n[51, y]                 # lips pressed thin
    assert (n + m(25))[66, y] - (n + m(25))[62, y] > n[66, y] - n[62, y]                 # lips part
    assert m(26)[8, y] > 0 and m(26)[57, y] > 0 and m(26)[5, y] > 0 and m(26)[0, y] == 0  # jaw drops
    assert m(27)[8, y] > m(26)[8, y] and mouth_w(n + m(27)) < mouth_w(n)                  # stretched tall


@pytest.mark.parametrize("pose", [Pose(yaw=30), Pose(yaw=-25), Pose(roll=20), Pose(pitch=15)])
def test_pose_moves_landmarks_as_a_rotation(pose):
    spec = FaceSpec(Expression({"Happy": 1.0}, 1.0, tuple(expression_aus({"Happy": 1.0}, 1.0))),
                    sample_attributes(np.random.default_rng(3)), pose)
    canvas = Image.new("RGB", (400, 400))
    truth = draw_face(canvas, spec, (200.0, 210.0), 80.0)
    p = face_landmarks_3d(spec.au, spec.attributes)
    yw, pt, rl = (math.radians(a) for a in (pose.yaw, pose.pitch, pose.roll))
    x = p[:, 0] * math.cos(yw) + p[:, 2] * math.sin(yw)                      # yaw about the vertical axis
    z = -p[:, 0] * math.sin(yw) + p[:, 2] * math.cos(yw)
    y = p[:, 1] * math.cos(pt) - z * math.sin(pt)                            # then pitch
    x, y = x * math.cos(rl) - y * math.sin(rl), x * math.sin(rl) + y * math.cos(rl)  # then roll
    expect = np.stack([200 + 80 * x, 210 + 80 * y], 1)
    assert np.allclose(np.array(truth["landmarks"]), expect, atol=0.01)
    if pose.yaw:
        assert np.sign(truth["landmarks"][30][0] - 200) == np.sign(pose.yaw)   # the nose turns with the face
    fx, _, fw, _ = truth["face_box"]
    assert np.isclose(fx, expect[:, 0].min(), atol=0.01) and np.isclose(fx + fw, expect[:, 0].max(), atol=0.01)


@pytest.mark.parametrize("seed", [8, 21])  # a mid and a very dark SYNTHETIC skin tone
def test_expressions_differ_visibly_at_112_px(seed):
    attrs = sample_attributes(np.random.default_rng(seed), age_group="Adults")
    crops = {}
    for e in EMOTIONS:
        spec = FaceSpec(Expression({e: 1.0}, 1.0, tuple(expression_aus({e: 1.0}, 1.0))), attrs, Pose())
        img, _ = render_face(spec, 448, rng=4, grain=0)
        crops[e] = np.asarray(img.resize((112, 112), Image.LANCZOS), np.float32)
    changed = {(a, b): int((np.abs(crops[a] - crops[b]).max(-1) > 25).sum())
               for i, a in enumerate(EMOTIONS) for b in EMOTIONS[i + 1:]}
    # pixels of 112 x 112 changed by more than 25 levels: the subtle pair (Neutral/Contempt, a
    # one-sided smirk) still moves ~20, most pairs hundreds
    assert min(changed.values()) >= 15, min(changed.items(), key=lambda kv: kv[1])
    assert np.median(list(changed.values())) >= 150


# ---- annotators ------------------------------------------------------------------------------------

def _tolerance(p: float, n: int) -> float:
    return 4 * math.sqrt(p * (1 - p) / n)  # 4 standard errors of a binomial proportion


def test_annotator_noise_rates_are_reproduced():
    rng = np.random.default_rng(0)
    good = A.Annotator("g", A.AnnotatorProfile("good", accuracy=0.75, keep_accuracy=0.9))
    spam = A.Annotator("s", A.AnnotatorProfile("spammer", accuracy=0.0, keep_accuracy=0.5))
    scene = {"keep": True, "reject_tag": None, "emotion8": "Anger", "emotion_mixture": {"Anger": 1.0},
             "clarity": 1.0, "intensity": 0.8, "valence": -1.8, "arousal": 4.2, "ambiguity": 0.5,
             "age_groups": ["Adults"], "deciding_factors": ["FacialExpression"]}
    n = 3000
    for ann, p_keep, p_emo in ((good, 0.9, 0.75), (spam, 0.5, 1 / 8)):
        rows = [A.annotate_scene(ann, scene, rng) for _ in range(n)]
        kept = [r for r in rows if "Reject" not in r["tags"]]
        assert abs(len(kept) / n - p_keep) <= _tolerance(p_keep, n)
        agree = sum(PLUTCHIK24.to_parent(r["emotion"]) == "Anger" for r in kept) / len(kept)
        assert abs(agree - p_emo) <= _tolerance(p_emo, len(kept)), (ann.profile.kind, agree)
    face = {"is_face": True, "dominant_emotion": "Sad", "emotion_mixture": {"Sad": 1.0}, "intensity": 1.0}
    assert A.face_clarity(face) == 1.0
    for ann, p in ((A.Annotator("g", A.AnnotatorProfile("good", accuracy=0.9)), 0.9),
                   (spam, 1 / len(VOTE_LABELS))):
        votes = [A.vote_face(ann, face, rng) for _ in range(n)]
        assert abs(votes.count("Sad") / n - p) <= _tolerance(p, n)
    biased = A.Annotator("b", A.AnnotatorProfile("biased_arousal", accuracy=0.8, va_sd=0.3, arousal_bias=2.0))
    rows = [A.annotate_scene(biased, scene, rng) for _ in range(300)]
    ar = [int(r["arousal"]) for r in rows if "Reject" not in r["tags"]]
    assert np.mean(ar) > scene["arousal"] + 1.5


# ---- the world -------------------------------------------------------------------------------------

def test_world_files_truth_and_reject_kinds(world):
    w, _ = world
    assert len(w.faces) == TINY["n_faces"] and len(w.scenes) == TINY["n_scenes"]
    for rec in w.faces + w.scenes:
        data = w.path(rec).read_bytes()
        assert hashlib.sha256(data).hexdigest() == rec["sha256"]
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (rec["width"], rec["height"]) and im.format == "JPEG"
    for f in w.faces:
        assert f["width"] == TINY["face_size"]
        if f["is_face"]:
            lm = np.array(f["landmarks"])
            assert lm.shape == (68, 2) and (lm > 0).all() and (lm < TINY["face_size"]).all()
            assert len(f["au"]) == 21 and f["dominant_emotion"] in EMOTIONS
    kinds = Counter(s["kind"] for s in w.scenes)
    assert set(REJECT_TAGS) <= set(kinds) and kinds["keep"] >= 10
    for s in w.scenes:
        assert 900 <= s["width"] <= 1500
        assert s["keep"] == (s["kind"] == "keep")
        assert s["reject_tag"] == (None if s["keep"] else REJECT_TAGS[s["reject_reason"]])
        assert (s["n_people"] == 0) == (s["kind"] == "NoPeople")
        assert set(s["emotion_mixture"]) <= set(LEAVES) and abs(sum(s["emotion_mixture"].values()) - 1) < 1e-6
        assert (s["valence"], s["arousal"]) == scene_va(s["emotion_mixture"], s["intensity"])
        assert -3 <= s["valence"] <= 3 and 0 <= s["arousal"] <= 6
        for p in s["people"]:
            assert len(p["face"]["landmarks"]) == 68 and p["face"]["dominant_emotion"] in EMOTIONS


def test_exports_parse_with_the_project_readers(world):
    w, _ = world
    header = w.ann_path.read_text().splitlines()[0]
    assert header == ",".join(FINDINGEMO_COLUMNS)
    ann, rej = read_findingemo_ann(w.ann_path)
    assert rej.empty and len(ann) == len(w.ann_path.read_text().splitlines()) - 1
    paths = {s["image_path"]: s for s in w.scenes}
    assert set(ann["image_id"]) <= set(paths)
    gold = pd.read_csv(w.gold_path)
    refs = gold_from_frame(gold)
    assert len(refs) == 5 and sum(r.keep for r in refs) == 4
    n_ann = len(w.annotators["scene_annotators"])
    per_image = ann.groupby("image_id")["annotator_id"].nunique()
    assert all(per_image[r.image_id] == n_ann for r in refs)          # gold: everybody
    assert (per_image.drop([r.image_id for r in refs]) >= 2).any()     # overlap images
    truth_keep = ann["image_id"].map(lambda i: paths[i]["keep"])
    assert (ann["keep"] == truth_keep).mean() > 0.75
    assert ann.loc[~ann["keep"], "tags"].map(lambda t: "Reject" in t).all()
    scores = grade_annotators(ann, refs).set_index("annotator_id")["score"]
    kinds = {a["annotator_id"]: a["kind"] for a in w.annotators["scene_annotators"]}
    good = [scores[a] for a, k in kinds.items() if k == "good"]
    spam = [scores[a] for a, k in kinds.items() if k == "spammer"]
    assert np.mean(good) > np.mean(spam)

    votes, vrej = read_vote_counts(w.votes_path, VOTE_LABELS, "face_id", split_column="split", image_path_column="image_path")
    assert vrej.empty
    per_face = votes.groupby("image_id").size()
    assert (per_face == w.params["votes_per_face"]).all() and len(per_face) == len(w.faces)
    assert set(votes["split"]) <= {"train", "validation"}
    full = votes.groupby("image_id")["emotion"].nunique() == 1
    assert full.any()  # a multi-annotated set with full-agreement faces


def test_world_is_deterministic_and_idempotent(world, tmp_path):
    w, _ = world
    again = build_world(tmp_path / "b", **TINY)
    m1 = json.loads((w.out_dir / MANIFEST).read_text())
    m2 = json.loads((again.out_dir / MANIFEST).read_text())
    assert m1 == m2  # same params, same bytes (SHA-256 of every file)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*") if p.is_file()}
    build_world(tmp_path / "b", **TINY)
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert load_world(tmp_path / "b").scenes == again.scenes
    other = build_world(tmp_path / "c", **{**TINY, "seed": 6, "n_faces": 8, "n_scenes": 10})
    assert json.loads((other.out_dir / MANIFEST).read_text())["sha256"][ANN_FILE] != m1["sha256"][ANN_FILE]


def test_tiny_world_builds_fast(world):
    _, seconds = world
    assert seconds < 30, seconds  # about 5 s on the 2-core machine
