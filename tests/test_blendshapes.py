"""MediaPipe blendshapes as face features (ops.faces.blendshapes) on real photographs and on
images without a face: vectors in the store, recorded statuses, nothing recomputed."""


import numpy as np
import pytest
import skimage.data
from PIL import Image

from ops.faces import blendshapes as blend
from ops.faces.landmarks import FaceLandmarker
from warehouse.features import FeatureStore

# integration tests (trained models, face detectors, demo worlds or exports): `make test`, not `make test-fast`
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def landmarker():
    lm = FaceLandmarker()
    yield lm
    lm.close()


def _save(tmp_path, name, arr):
    p = tmp_path / name
    Image.fromarray(arr).save(p)
    return p


def test_vectors_statuses_and_incremental(tmp_path, landmarker):
    astro = skimage.data.astronaut()
    face = _save(tmp_path, "face.png", astro[20:220, 130:330])              # her face, centred
    smile = _save(tmp_path, "mirror.png", astro[20:220, 130:330][:, ::-1])  # the same face mirrored
    wall = _save(tmp_path, "wall.png", np.stack([skimage.data.brick()] * 3, -1))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    store = FeatureStore(tmp_path / "store", blend.extractor_key(landmarker.task_sha256), blend.DIM)
    items = [("f", face), ("m", smile), ("w", wall), ("b", broken)]
    rep = blend.extract_blendshapes(items, store, landmarker, shard_size=2)
    assert (rep.computed, rep.no_face, rep.failed, rep.reused) == (2, 1, 1, 0)
    X, found = store.read(["f", "m", "w", "b"])
    assert found.tolist() == [True, True, False, False]
    assert X.shape == (4, blend.DIM) and ((X[:2] >= 0) & (X[:2] <= 1.001)).all()
    st = store.index().set_index("sha256")["status"]
    assert st["w"] == blend.STATUS_NO_FACE and st["b"] == "decode_error"
    # a mirrored face swaps left and right blendshapes: mouthSmileLeft <-> mouthSmileRight etc.
    i = {n: k for k, n in enumerate(blend.NAMES)}
    for a, b in (("eyeBlinkLeft", "eyeBlinkRight"), ("mouthSmileLeft", "mouthSmileRight")):
        assert X[0, i[a]] == pytest.approx(X[1, i[b]], abs=0.1)
    again = blend.extract_blendshapes(items, store, landmarker)
    assert (again.computed, again.reused) == (0, 4)


def test_a_wrong_store_is_refused(tmp_path, landmarker):
    store = FeatureStore(tmp_path / "s", "mediapipe.blendshapes.x", 8)
    with pytest.raises(ValueError, match="dim 8"):
        blend.extract_blendshapes([], store, landmarker)
