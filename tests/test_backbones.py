"""Backbone registry, weight loading (local files only), preprocessing and heads (models/)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.backbones import (
    Preprocess,
    WeightsMismatchError,
    WeightsNotFoundError,
    create_backbone,
    extractor_key,
    list_backbones,
    pick_device,
)
from models.heads import LinearHead, MLPHead, make_head
from models.small_cnn import TinyCNN
from models.weights import find_timm_file, rename_legacy_densenet_keys

# integration tests (trained models, face detectors, demo worlds or exports): `make test`, not `make test-fast`
pytestmark = pytest.mark.slow

REQUIRED = [
    "resnet18", "resnet34", "resnet50", "resnet101", "vgg16", "vgg19", "densenet121",
    "densenet161", "alexnet", "efficientnet_b3", "xception", "resnet18_places365",
    "resnet50_places365", "densenet161_places365", "tiny_cnn",
]  # fmt: skip
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(autouse=True)
def _small_torch(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared: keep the tests on one core
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)  # let TORCH_HOME decide
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def _x(size=64, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, size, size, generator=g)


def _noise_image(w, h, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


# --- registry and construction ---------------------------------------------------------------


def test_required_names_are_registered():
    assert set(REQUIRED) <= set(list_backbones())


@pytest.mark.parametrize(
    "name,dim", [("tiny_cnn", 128), ("resnet18", 512), ("resnet18_places365", 512)]
)
def test_constructs_with_random_init_and_gives_features(name, dim):
    b = create_backbone(name, weights="none")
    y = b.forward_features(_x())
    assert y.shape == (2, dim) == (2, b.feature_dim)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert not y.requires_grad and not any(p.requires_grad for p in b.module.parameters())
    assert b.weights_fingerprint == "scratch:0" and b.device == pick_device()


def test_xception_comes_from_timm():
    pytest.importorskip("timm")
    b = create_backbone("xception", weights="none")
    assert b.feature_dim == 2048 and b.preprocess.size == (299, 299)
    assert b.forward_features(_x(b=1)).shape == (1, 2048)


@pytest.mark.parametrize("name", sorted(set(REQUIRED) | set(list_backbones())))
def test_every_registered_name_constructs(name):
    if name.startswith("xception"):
        pytest.importorskip("timm")
    b = create_backbone(name, weights="none")
    assert b.forward_features(_x()).shape == (2, b.feature_dim)


def test_unknown_name_and_tiny_without_weights_are_errors():
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("resnet9000", weights="none")
    with pytest.raises(ValueError, match="weights='none'"):
        create_backbone("tiny_cnn")  # None means "pretrained default": tiny_cnn has none


def test_random_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = create_backbone("tiny_cnn", weights="none", seed=5)
    assert torch.equal(torch.rand(1), before)
    b = create_backbone("tiny_cnn", weights="none", seed=5)
    c = create_backbone("tiny_cnn", weights="none", seed=6)
    x = _x()
    assert torch.equal(a.forward_features(x), b.forward_features(x))
    assert not torch.equal(a.forward_features(x), c.forward_features(x))


def test_speed_options_are_switchable_and_fp32_is_close_to_bf16():
    fp32 = create_backbone("tiny_cnn", weights="none", channels_last=False, autocast=False)
    fast = create_backbone("tiny_cnn", weights="none", channels_last=True, autocast=True)
    assert fp32.precision == "fp32" and not fp32.channels_last
    x = _x()
    ref, y = fp32.forward_features(x), fast.forward_features(x)
    assert y.dtype == torch.float32
    assert torch.allclose(ref, y, rtol=0.05, atol=0.05 * ref.abs().max().item())
    if fast.precision == "bf16":
        assert extractor_key(fast) != extractor_key(fp32)  # numerics differ: another cache key


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device() == torch.device("cpu")
        with pytest.raises(RuntimeError, match="cuda"):
            pick_device("cuda")


# --- local weight files ----------------------------------------------------------------------


def test_missing_weights_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "model.pth"
    with pytest.raises(WeightsNotFoundError) as ei:
        create_backbone("tiny_cnn", weights=missing)
    assert str(missing) in str(ei.value) and ei.value.paths == (missing,)


def test_saved_state_dict_loads_with_identical_outputs(tmp_path):
    src = create_backbone("tiny_cnn", weights="none", seed=7)
    path = tmp_path / "tiny.pth"
    torch.save(src.module.state_dict(), path)  # a stripped module: no fc keys
    loaded = create_backbone("tiny_cnn", weights=path)
    x = _x()
    assert torch.equal(src.forward_features(x), loaded.forward_features(x))
    assert loaded.weights_fingerprint.startswith("sha256:") and loaded.weights_path == path


def test_trained_classifier_file_gives_features_and_logits(tmp_path):
    torch.manual_seed(0)
    net = TinyCNN(num_classes=2).eval()  # e.g. a keep/reject CNN trained from scratch
    path = tmp_path / "keep_reject.pt"
    torch.save({"model": net.state_dict(), "epoch": 3}, path)
    x = _x()
    feats = create_backbone("tiny_cnn", weights=path, autocast=False)
    logits = create_backbone("tiny_cnn", weights=path, layer="logits", autocast=False)
    with torch.no_grad():
        assert torch.allclose(feats.forward_features(x), net.forward_features(x), atol=1e-5)
        assert torch.allclose(logits.forward_features(x), net(x), atol=1e-5)
    assert logits.feature_dim == 2 and logits.layer == "fc:out" and feats.layer == "fc:in"


def test_wrong_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "wide.pth"
    torch.save(TinyCNN(widths=(8, 16)).state_dict(), path)
    with pytest.raises(WeightsMismatchError, match="wide.pth"):
        create_backbone("tiny_cnn", weights=path)


def test_extractor_key_tracks_weights_and_preprocessing(tmp_path):
    p1, p2 = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save(create_backbone("tiny_cnn", weights="none", seed=1).module.state_dict(), p1)
    torch.save(create_backbone("tiny_cnn", weights="none", seed=2).module.state_dict(), p2)
    a, a2, b = (create_backbone("tiny_cnn", weights=p) for p in (p1, p1, p2))
    assert extractor_key(a) == extractor_key(a2) == a.key  # stable
    assert a.key.startswith("tiny_cnn.fc-in.") and len(a.key) < 40
    assert extractor_key(a) != extractor_key(b)  # another weights file
    torch.save(create_backbone("tiny_cnn", weights="none", seed=3).module.state_dict(), p1)
    assert extractor_key(create_backbone("tiny_cnn", weights=p1)) != extractor_key(a)  # changed
    keys = {
        extractor_key(a, a.preprocess.replace(size=(96, 96), resize_size=110)),
        extractor_key(a, a.preprocess.replace(resize="letterbox")),
        extractor_key(a, a.preprocess.replace(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))),
        extractor_key(a, a.preprocess.replace(interpolation="bicubic")),
        extractor_key(a),
    }
    assert len(keys) == 5
    scratch = create_backbone("tiny_cnn", weights="none", seed=1)
    assert scratch.weights_fingerprint == "scratch:1" and scratch.key != a.key


# --- torchvision / Places365 / timm caches ---------------------------------------------------


def test_torchvision_default_missing_names_the_hub_checkpoint(torch_home):
    with pytest.raises(WeightsNotFoundError) as ei:
        create_backbone("resnet18", weights="torchvision-default")
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    msg = str(ei.value)
    assert str(expected) in msg and "TORCH_HOME" in msg and "weights: /path/to/" in msg
    assert ei.value.paths == (expected,)
    with pytest.raises(WeightsNotFoundError, match="resnet18-f37072fd.pth"):
        create_backbone("resnet18")  # None = the name's pretrained default, never random


def test_torchvision_default_loads_a_file_in_the_hub_cache(torch_home):
    import torchvision

    torch.manual_seed(0)
    ref = torchvision.models.resnet18().eval()
    ckpt = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), ckpt)
    with pytest.warns(UserWarning, match="sha256"):  # our fake is not torchvision's file
        b = create_backbone("resnet18", weights="torchvision-default", autocast=False)
    assert b.weights_fingerprint.startswith("torchvision:ResNet18_Weights.IMAGENET1K_V1:sha256:")
    ref.fc = torch.nn.Identity()
    x = _x()
    with torch.no_grad():
        assert torch.allclose(b.forward_features(x), ref(x), atol=1e-5)


def test_places365_checkpoint_with_module_prefix_loads(tmp_path, torch_home):
    import torchvision

    torch.manual_seed(0)
    ref = torchvision.models.resnet18(num_classes=365).eval()
    sd = {f"module.{k}": v for k, v in ref.state_dict().items() if "num_batches" not in k}
    ckpt = {"epoch": 90, "arch": "resnet18", "state_dict": sd, "best_prec1": 54.7}
    path = tmp_path / "resnet18_places365.pth.tar"
    torch.save(ckpt, path)
    x = _x()
    feats = create_backbone("resnet18_places365", weights=path, autocast=False)
    preds = create_backbone("resnet18_places365", weights=path, layer="logits", autocast=False)
    with torch.no_grad():
        assert torch.allclose(preds.forward_features(x), ref(x), atol=1e-5)
        ref.fc = torch.nn.Identity()
        assert torch.allclose(feats.forward_features(x), ref(x), atol=1e-5)
    assert preds.feature_dim == 365 and feats.feature_dim == 512
    assert feats.preprocess.resize == "stretch" and feats.preprocess.resize_size == 256
    # the default source is the same file name in the torch hub checkpoint dir
    with pytest.raises(WeightsNotFoundError) as ei:
        create_backbone("resnet18_places365")
    assert str(torch_home / "hub" / "checkpoints" / "resnet18_places365.pth.tar") in str(ei.value)


def test_legacy_densenet_keys_are_renamed():
    sd = {
        "features.denseblock1.denselayer1.norm.1.weight": 1,
        "features.denseblock1.denselayer1.conv.2.weight": 2,
        "features.norm5.weight": 3,
    }
    assert list(rename_legacy_densenet_keys(sd)) == [
        "features.denseblock1.denselayer1.norm1.weight",
        "features.denseblock1.denselayer1.conv2.weight",
        "features.norm5.weight",
    ]


def test_timm_default_missing_names_the_path(torch_home):
    pytest.importorskip("timm")
    with pytest.raises(WeightsNotFoundError) as ei:
        create_backbone("xception", weights="timm-default")
    assert str(torch_home / "hub" / "checkpoints" / "xception-43020ad28.pth") in str(ei.value)


def test_timm_hf_cache_is_read_without_network(tmp_path, monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    cfg = {"hf_hub_id": "timm/fake_net.in1k", "architecture": "fake_net", "tag": "in1k"}
    with pytest.raises(WeightsNotFoundError) as ei:
        find_timm_file(cfg)
    assert str(tmp_path / "hf" / "models--timm--fake_net.in1k") in str(ei.value)
    repo = tmp_path / "hf" / "models--timm--fake_net.in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"x")
    assert find_timm_file(cfg) == snap / "model.safetensors"


# --- preprocessing ---------------------------------------------------------------------------


def test_letterbox_pads_rows_like_findingemo():
    # FindingEmo §3: 800x600 (w x h), keep the ratio, centre, black borders, then normalize.
    pp = Preprocess.findingemo()
    colour = np.array([200, 100, 50], dtype=np.float32)
    img = Image.new("RGB", (800, 400), tuple(int(c) for c in colour))
    t = pp(img)
    assert t.shape == (3, 600, 800)
    # independent arithmetic: scale = min(800/800, 600/400) = 1 → 800x400 content,
    # (600 - 400) / 2 = 100 black rows above and below.
    black = (0.0 - MEAN) / STD
    inside = (colour / 255.0 - MEAN) / STD
    arr = t.numpy()
    pad_rows = np.r_[0:100, 500:600]
    for c in range(3):
        assert np.allclose(arr[c, pad_rows, :], black[c], atol=1e-5)
        assert np.allclose(arr[c, 100:500, :], inside[c], atol=1e-5)


def test_letterbox_pads_columns_of_a_tall_image():
    pp = Preprocess(size=(60, 80), resize="letterbox", resize_size=None)
    t = pp(Image.new("RGB", (30, 120), (255, 255, 255))).numpy()
    # scale = min(80/30, 60/120) = 0.5 → 15x60, left pad (80 - 15) // 2 = 32 columns
    white, black = (1.0 - MEAN) / STD, (0.0 - MEAN) / STD
    assert np.allclose(t[0, :, :32], black[0]) and np.allclose(t[0, :, 47:], black[0])
    assert np.allclose(t[0, :, 32:47], white[0], atol=1e-5)


@pytest.mark.parametrize("arch", ["resnet50", "efficientnet_b3"])
def test_center_crop_matches_torchvision_transforms(arch):
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    pp = Preprocess.from_torchvision(weights)
    img = _noise_image(333, 250)
    assert torch.allclose(pp(img), weights.transforms()(img), atol=1e-6)


def test_places365_stretch_matches_the_official_recipe():
    from torchvision import transforms as T

    official = T.Compose([T.Resize((256, 256)), T.CenterCrop(224), T.ToTensor(),
                          T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])  # fmt: skip
    pp = create_backbone("resnet18_places365", weights="none").preprocess
    img = _noise_image(400, 300, seed=1)
    assert torch.allclose(pp(img), official(img), atol=1e-6)


def test_preprocess_is_frozen_hashable_and_validated():
    pp = Preprocess.imagenet()
    with pytest.raises(dataclasses.FrozenInstanceError):
        pp.size = (1, 1)
    assert hash(pp) == hash(Preprocess.imagenet()) and pp.fingerprint() != pp.replace(
        draft=True
    ).fingerprint()
    with pytest.raises(ValueError):
        Preprocess(resize="squash")
    with pytest.raises(ValueError):
        Preprocess(size=(224, 224), resize_size=200)


def test_draft_decode_and_modes(tmp_path):
    path = tmp_path / "photo.jpg"
    ramp = np.linspace(0, 255, 800, dtype=np.float32)
    smooth = np.stack([np.tile(ramp, (600, 1)), np.tile(ramp[::-1], (600, 1)),
                       np.full((600, 800), 90, np.float32)], -1).astype(np.uint8)  # fmt: skip
    Image.fromarray(smooth).save(path, quality=95)
    pp = Preprocess.imagenet(size=112, resize_size=128)
    with Image.open(path) as im:
        full = pp(im)
    with Image.open(path) as im:
        fast = pp.replace(draft=True)(im)
        # shorter side 600 → 128 needs 1/4.7: the decoder may go to 1/4 (200x150), not 1/8
        assert im.size == (200, 150)
    assert full.shape == fast.shape == (3, 112, 112)
    assert (full - fast).abs().mean() < 0.05
    grey = Image.new("L", (50, 70), 128)
    assert pp(grey).shape == (3, 112, 112)


def test_extract_from_pil_images():
    b = create_backbone("tiny_cnn", weights="none", preprocess=Preprocess.imagenet(64, 72))
    feats = b.extract([_noise_image(90, 70, seed=s) for s in range(5)], batch_size=2)
    assert feats.shape == (5, 128) and feats.device.type == "cpu"


# --- heads -----------------------------------------------------------------------------------


def test_heads():
    x = torch.randn(4, 128)
    lin = make_head("linear", 128, 8)
    mlp = make_head("mlp", 128, 3, hidden=(64, 32), dropout=0.1, norm="layer")
    assert isinstance(lin, LinearHead) and isinstance(mlp, MLPHead)
    assert lin(x).shape == (4, 8) and mlp(x).shape == (4, 3)
    rebuilt = make_head(**mlp.config)
    assert rebuilt.config == mlp.config
    a, b = make_head("mlp", 128, 3, seed=1), make_head("mlp", 128, 3, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError):
        make_head("transformer", 128, 3)


def test_no_warnings_on_plain_construction():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_backbone("tiny_cnn", weights="none")


def test_a_compiled_backbone_gives_the_eager_vectors_for_every_batch_size_under_its_own_key():
    """compile(batch): one fixed-shape graph, partial and oversized batches padded / split; the
    vectors match the eager module's (bf16 rounding aside) and the extractor key records it."""
    eager = create_backbone("tiny_cnn", weights="none", device="cpu", seed=0)
    comp = create_backbone("tiny_cnn", weights="none", device="cpu", seed=0).compile(4)
    assert comp.key != eager.key and comp.compiled_batch == 4
    x = torch.rand(11, 3, *eager.preprocess.size)
    for n in (1, 3, 4, 11):    # smaller than, equal to, and more than the compiled batch
        a, b = eager.forward_features(x[:n]), comp.forward_features(x[:n])
        assert a.shape == b.shape == (n, eager.feature_dim)
        assert torch.allclose(a, b, rtol=0.05, atol=0.05), (n, (a - b).abs().max())
    with pytest.raises(ValueError):
        eager.compile(0)
