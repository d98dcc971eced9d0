"""Finding, reading and fingerprinting weight files — local files only, never a download.

The machines here have no route to a model hub (DESIGN.md, "Machines here"), and a pipeline that
silently fell back to random weights would cache meaningless features under a plausible name. So
every lookup here either returns an existing file or raises `WeightsNotFoundError` naming the exact
paths it tried and the three ways to provide the file.

Where files are looked for:
- torchvision: `torch.hub.get_dir()/checkpoints/<basename of the weights enum's URL>` — the file
  torchvision itself would have cached (TORCH_HOME moves it);
- timm: the Hugging Face hub cache (`huggingface_hub.try_to_load_from_cache`, which never touches the
  network) for weights hosted on the hub, else the torch hub checkpoint dir for URL-hosted ones;
- Places365 (CSAILVision): `torch.hub.get_dir()/checkpoints/<arch>_places365.pth.tar`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


class WeightsNotFoundError(FileNotFoundError):
    """A weights file that should exist locally does not. `.paths` lists where we looked."""

    def __init__(self, message: str, paths: list[Path] | tuple[Path, ...] = ()):
        super().__init__(message)
        self.paths = tuple(Path(p) for p in paths)

    def __str__(self) -> str:  # FileNotFoundError would format (errno, strerror) otherwise
        return self.args[0]


class WeightsMismatchError(RuntimeError):
    """A weights file was found but its tensors do not fit the architecture."""


def hub_checkpoints_dir() -> Path:
    """`<TORCH_HOME>/hub/checkpoints` (default ~/.cache/torch/hub/checkpoints), read at call time."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _not_found(what: str, paths: list[Path], *, url: str | None = None, extra: str = "") -> str:
    lines = [f"No local weights for {what}. Looked for:"]
    lines += [f"  {p}" for p in paths]
    lines.append("Nothing is downloaded at run time. To provide the weights, either")
    src = f" (from {url}, fetched on a machine with internet access)" if url else ""
    lines.append(f"  - put the file at {paths[0]}{src},")
    lines.append(
        "  - set TORCH_HOME to a directory whose hub/checkpoints/ holds it"
        + (extra and f", {extra}")
        + ", or"
    )
    lines.append(f"  - give the file directly: weights: /path/to/{paths[0].name}")
    return "\n".join(lines)


# --- fingerprints -----------------------------------------------------------------------------

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes; memoized on (real path, size, mtime) so reloading is cheap."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


# --- reading ----------------------------------------------------------------------------------

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "state_dict_ema")
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _is_tensor_map(obj) -> bool:
    return isinstance(obj, Mapping) and obj and all(torch.is_tensor(v) for v in obj.values())


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a `.pth`/`.pt`/`.pth.tar`/`.bin` (torch.load, weights_only) or
    `.safetensors` file. Training checkpoints are unwrapped (`{"state_dict": …}` as CSAILVision's
    Places365 files, `{"model": …}`, …) and a DataParallel "module." prefix is stripped."""
    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError(
            f"Weights file {p} does not exist (give an existing file as weights: /path/to/file)",
            [p],
        )
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj = load_file(str(p), device="cpu")
    else:
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except UnicodeDecodeError:  # checkpoints pickled by Python 2 (some 2017 releases)
            obj = torch.load(p, map_location="cpu", weights_only=True, encoding="latin1")
        except pickle.UnpicklingError as e:
            raise WeightsMismatchError(
                f"{p} is not a plain state dict and is not unpickled (weights_only=True), e.g. a "
                "whole pickled model such as CSAILVision's whole_*_places365.pth.tar; use the "
                "state-dict file instead."
            ) from e
    if isinstance(obj, nn.Module):  # not reachable with weights_only, kept for clarity
        obj = obj.state_dict()
    if not _is_tensor_map(obj) and isinstance(obj, Mapping):
        for k in _WRAPPER_KEYS:
            if _is_tensor_map(obj.get(k)):
                obj = obj[k]
                break
    if not _is_tensor_map(obj):
        keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsMismatchError(f"{p} holds no state dict of tensors (top level: {keys})")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def rename_legacy_densenet_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old DenseNet checkpoints (torchvision's own densenet*.pth, Places365 densenet161) name
    layers `norm.1`, `conv.2`; current torchvision modules call them `norm1`, `conv2`."""
    out = {}
    for k, v in sd.items():
        m = _DENSENET_OLD_KEY.match(k)
        out[m.group(1) + m.group(2) if m else k] = v
    return out


def load_into(module: nn.Module, sd: Mapping[str, torch.Tensor], *, source: str) -> None:
    """load_state_dict with an error that says which keys or shapes did not fit and where from.

    Missing `num_batches_tracked` buffers are tolerated (checkpoints older than PyTorch 0.4.1 do
    not have them; BatchNorm then starts the counter at 0)."""
    try:
        res = module.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatches are raised even with strict=False
        raise WeightsMismatchError(
            f"Weights in {source} do not fit {type(module).__name__}: {e}"
        ) from None
    missing = [k for k in res.missing_keys if not k.endswith("num_batches_tracked")]
    unexpected = list(res.unexpected_keys)
    if missing or unexpected:
        hint = ""
        if any(k.startswith("module.") for k in unexpected):
            hint = " (keys carry a 'module.' prefix on only some entries)"
        raise WeightsMismatchError(
            f"Weights in {source} do not fit {type(module).__name__}{hint}: "
            f"{len(missing)} missing keys {missing[:5]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}"
        )


# --- locating ---------------------------------------------------------------------------------

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def find_torchvision_file(weights) -> Path:
    """The cached file of a torchvision weights enum member (e.g. ResNet50_Weights.IMAGENET1K_V2).

    Never calls `weights.get_state_dict()` (that would download). Warns when the file's sha256
    does not start with the hash torchvision puts in the file name (a different or corrupt file)."""
    fname = weights.url.rsplit("/", 1)[-1]
    path = hub_checkpoints_dir() / fname
    if not path.is_file():
        what = f"torchvision {type(weights).__name__}.{weights.name}"
        raise WeightsNotFoundError(_not_found(what, [path], url=weights.url), [path])
    m = _HASH_IN_NAME.search(fname)
    if m and not file_sha256(path).startswith(m.group(1)):
        warnings.warn(
            f"{path}: sha256 does not start with {m.group(1)} as torchvision's file name says; "
            "the features will be keyed on this file's own hash",
            stacklevel=3,
        )
    return path


def find_timm_file(pretrained_cfg: Mapping) -> Path:
    """The locally cached file of a timm pretrained config, HF hub cache or torch hub dir."""
    looked: list[Path] = []
    hf_id = pretrained_cfg.get("hf_hub_id")
    if hf_id:
        from huggingface_hub import constants, try_to_load_from_cache

        names = [pretrained_cfg.get("hf_hub_filename")] if pretrained_cfg.get("hf_hub_filename") else []
        names += ["model.safetensors", "pytorch_model.bin"]
        repo_dir = Path(constants.HF_HUB_CACHE) / ("models--" + hf_id.replace("/", "--"))
        for n in names:
            hit = try_to_load_from_cache(hf_id, n)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
            looked.append(repo_dir / "snapshots" / "<revision>" / n)
    if pretrained_cfg.get("file"):
        p = Path(pretrained_cfg["file"])
        if p.is_file():
            return p
        looked.append(p)
    url = pretrained_cfg.get("url")
    if url:
        p = hub_checkpoints_dir() / url.rsplit("/", 1)[-1]
        if p.is_file():
            return p
        looked.append(p)
    arch = pretrained_cfg.get("architecture", "?")
    tag = pretrained_cfg.get("tag")
    what = f"timm {arch}{'.' + tag if tag else ''}"
    if not looked:
        raise WeightsNotFoundError(f"timm declares no weights source for {what}")
    extra = "or HF_HOME/HF_HUB_CACHE to a Hugging Face cache that holds it" if hf_id else ""
    hint_url = f"https://huggingface.co/{hf_id}" if hf_id else url
    return _raise_not_found(what, looked, hint_url, extra)


def _raise_not_found(what: str, looked: list[Path], url: str | None, extra: str):
    raise WeightsNotFoundError(_not_found(what, looked, url=url, extra=extra), looked)


PLACES365_URL = "http://places2.csail.mit.edu/models_places365/{arch}_places365.pth.tar"


def find_places365_file(arch: str) -> Path:
    """CSAILVision's `<arch>_places365.pth.tar`, looked for in the torch hub checkpoint dir."""
    path = hub_checkpoints_dir() / f"{arch}_places365.pth.tar"
    if not path.is_file():
        url = PLACES365_URL.format(arch=arch)
        raise WeightsNotFoundError(_not_found(f"Places365 {arch}", [path], url=url), [path])
    return path
