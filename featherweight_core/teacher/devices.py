"""Devices, precision and progress for every module that runs a transformer (teachers, augmentation, soft
targets, teacher compression)."""

from __future__ import annotations

import sys

import torch

from featherweight_core.teacher.config import TeacherError

# ---------------------------------------------------------------------------------------------------------------
# devices, precision, progress


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TeacherError(f"device {device!r}: CUDA is not available on this machine")
    try:
        return torch.device(device)
    except RuntimeError:
        raise TeacherError(f"unknown device {device!r}; expected auto, cpu, cuda or cuda:N") from None


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None = plain fp32. Half precision is GPU-only."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def progress_bar(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", file=sys.stderr, leave=False, mininterval=1.0)
