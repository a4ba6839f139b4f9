"""Where tensors run and in which precision: shared by training, evaluation and dev scoring."""

from __future__ import annotations

from typing import Literal, get_args

import torch

Precision = Literal["auto", "bf16", "fp16", "fp32"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def pick_device(device: str = "auto") -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32.

    auto: bf16 (fp16 where bf16 is missing) on CUDA, fp32 elsewhere. bf16 on a CPU with AVX512-BF16
    or AMX runs about 1.5x faster than fp32 with the same loss curve, so it is worth asking for there.
    """
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or device.type != "cuda" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def cpu_has_fast_bf16() -> bool:
    """oneDNN's own check for bf16 kernels on this CPU (AVX512 and newer); False where unknown."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
