"""Metrics (thesis 6.4) and size measures: small pure functions.

Sizes: ``disk_bytes`` is the byte length of ``torch.save(model.state_dict())``; ``gzip_bytes`` is that file
compressed with gzip (DEFLATE, level 9, Python's ``gzip`` module) as the thesis measured compressed models.
"""

from __future__ import annotations

import gzip
import io
import os
import tempfile

import numpy as np
import torch
from torch import nn

GROUPS = ("embedding", "encoder", "classifier")


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of correct predictions.

    >>> accuracy(np.array([1, 0, 1]), np.array([1, 1, 1]))
    0.6666666666666666
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"pred shape {pred.shape} != labels shape {labels.shape}")
    return float((pred == labels).mean()) if len(labels) else float("nan")


def f1_score(pred: np.ndarray, labels: np.ndarray, positive: int = 1) -> float:
    """F1 of the positive class: tp / (tp + (fp + fn) / 2) (thesis eq. 6.9); 0.0 when there are no positives.

    >>> f1_score(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    0.5
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    tp = int(((pred == positive) & (labels == positive)).sum())
    fp = int(((pred == positive) & (labels != positive)).sum())
    fn = int(((pred != positive) & (labels == positive)).sum())
    denom = tp + 0.5 * (fp + fn)
    return tp / denom if denom else 0.0


METRICS = {"accuracy": accuracy, "f1": f1_score}


def split_metrics(pred: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    return {name: METRICS[name](pred, labels) for name in names}


def _group_of(name: str) -> str:
    head = name.split(".", 1)[0]
    return head if head in GROUPS else "other"


def _tensor_items(model: nn.Module):
    """Yield (name, tensor) for every stored weight, including packed weights of quantized modules."""
    for name, value in model.state_dict().items():
        if isinstance(value, torch.Tensor):
            if value.is_quantized:
                yield name, value.dequantize()
            elif value.is_floating_point():
                yield name, value
        elif isinstance(value, tuple | list):
            for i, v in enumerate(value):
                if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_quantized):
                    yield f"{name}.{i}", v.dequantize() if v.is_quantized else v


def param_counts(model: nn.Module) -> dict[str, int]:
    """Parameter counts: ``total``, per group (``embedding``, ``encoder``, ``classifier``) and ``nonzero``.

    Counts trainable parameters for float models. Buffers (e.g. masks) are not parameters and are not counted.
    """
    counts = dict.fromkeys(("total", *GROUPS, "nonzero"), 0)
    params = list(model.named_parameters())
    if not params:  # quantized models hold packed weights, not Parameters
        params = [(n, t) for n, t in _tensor_items(model) if not n.endswith(("scale", "zero_point"))]
    for name, p in params:
        n = p.numel()
        counts["total"] += n
        group = _group_of(name)
        if group in counts:
            counts[group] += n
        counts["nonzero"] += int(torch.count_nonzero(p.detach()).item())
    return counts


def state_dict_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def disk_size(model: nn.Module) -> dict[str, int]:
    """Bytes of the state_dict saved to disk, and gzip size of that file.

    Written to a unique temporary file (mkstemp), so parallel trials never collide.
    """
    fd, path = tempfile.mkstemp(prefix="featherweight-size-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(model.state_dict(), f)
        with open(path, "rb") as f:
            raw = f.read()
    finally:
        os.unlink(path)
    return {"disk_bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, compresslevel=9, mtime=0))}


def size_report(model: nn.Module) -> dict:
    """``{"params": {...}, "disk_bytes": int, "gzip_bytes": int}``."""
    return {"params": param_counts(model), **disk_size(model)}
