"""Device choice and the inference fast path (channels_last memory format + autocast).

Measured here (2 threads, batch 32; see DESIGN.md "Machines here" and the report of the backbone
work): on this Xeon with AVX512-BF16/AMX, bf16 autocast plus channels_last runs ResNet-50 3.5×,
ResNet-18 3–4× and tiny_cnn ~4.5× faster than plain fp32. bf16 is only turned on where the CPU
has native bf16 instructions: elsewhere oneDNN emulates it and it can be slower than fp32.
"""

from __future__ import annotations

import torch


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """CUDA when present, else the CPU; `prefer` forces one (an absent CUDA is an error)."""
    if prefer is not None:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
        return dev
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX present (torch's private CPU probes; False if they are missing)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # pragma: no cover - depends on the torch build
        return False


def default_autocast(device: torch.device, on: bool) -> torch.dtype | None:
    """The autocast dtype for inference on `device`, or None for plain fp32.

    CPU: bf16 when the CPU runs it natively. CUDA: bf16 where supported, else fp16."""
    if not on:
        return None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None
