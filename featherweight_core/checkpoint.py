"""Checkpoints: a student's state_dict plus the config that rebuilds it, loadable with ``weights_only=True``.

Layout: ``{"format": "featherweight-student/1", "student_config": {...}, "num_embeddings": int,
"state_dict": {...}, "meta": {...}}`` - plain Python values and tensors only.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featherweight_core.atomic import atomic_write
from featherweight_core.errors import InputFileError, UserError
from featherweight_core.students import Student, StudentConfig, build_student

FORMAT = "featherweight-student/1"
COMPRESSED_FORMAT = "featherweight-compressed/1"


class CheckpointError(UserError, ValueError):
    """A file the user named is not the kind of featherweight checkpoint the command needs."""


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    cfg: StudentConfig,
    num_embeddings: int,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves half a checkpoint."""
    payload = {
        "format": FORMAT,
        "student_config": cfg.to_dict(),
        "num_embeddings": int(num_embeddings),
        "state_dict": model.state_dict(),
        "meta": meta or {},
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: checkpoint not found")
    payload = _safe_load(path)
    if isinstance(payload, dict) and payload.get("format") == COMPRESSED_FORMAT:
        raise CheckpointError(f"{path}: a compressed student; load it with checkpoint.load_compressed")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a featherweight student checkpoint (expected format {FORMAT!r})")
    return payload


def load_checkpoint(path: str | Path) -> tuple[Student, StudentConfig, dict[str, Any]]:
    """Rebuild the float student and load its weights. Returns (model in eval mode, config, meta)."""
    payload = read_checkpoint(path)
    cfg = StudentConfig.from_dict(payload["student_config"])
    model = build_student(cfg, payload["num_embeddings"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, cfg, payload["meta"]


# ----------------------------------------------------------------------------------------------------------------
# Compressed (pruned and/or quantized) students
#
# Layout: ``{"format": "featherweight-compressed/1", "student_config": {...}, "num_embeddings": int,
# "prune": {...} | None, "quant": {...} | None, "state_dict": {...}, "meta": {...}}``. Loading rebuilds the float
# student, applies the same quantization structure (without calibration) and loads the state_dict, so what
# comes back predicts exactly like what was saved. Dynamic-quantized LSTM weights are stored by PyTorch as
# ``torch.ScriptObject`` (packed torchbind parameters), the one global allow-listed for ``weights_only`` loading.


def _safe_load(path: Path) -> Any:
    # ScriptObject unpickles only registered torchbind classes (packed quantized weights), not arbitrary code;
    # never fall back to weights_only=False.
    # TorchVersion (a str subclass) is allow-listed because checkpoints written before run.py stored
    # str(torch.__version__) hold one in their meta.
    from torch.torch_version import TorchVersion

    with torch.serialization.safe_globals([torch.ScriptObject, TorchVersion]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)  # deprecation notes on quantized storages
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, EOFError, RuntimeError) as e:  # not a torch file, truncated, foreign pickle
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{path}: not a readable checkpoint ({first})") from None


def save_compressed(path: str | Path, result: Any, meta: dict[str, Any] | None = None) -> Path:
    """Write a :class:`~featherweight_core.compress.CompressResult` atomically. ``meta`` is merged into the stored
    meta (which already holds metrics, sizes, sparsity and the describe() labels)."""
    summary = result.summary()
    stored_meta = {
        "metrics": summary["metrics"],
        "test_metrics": summary.get("test_metrics", {}),
        "sizes": summary["sizes"],
        "sparsity": summary["sparsity"],
        "prune_label": summary["prune_label"],
        "quant_label": summary["quant_label"],
        "distill": summary["distill"],
        "torch": str(torch.__version__),
        "quantized_engine": torch.backends.quantized.engine,
        **(meta or {}),
    }
    payload = {
        "format": COMPRESSED_FORMAT,
        "student_config": result.student_config.to_dict(),
        "num_embeddings": int(result.num_embeddings),
        "prune": summary["prune"],
        "quant": summary["quant"],
        "state_dict": result.model.state_dict(),
        "meta": stored_meta,
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_compressed(path: str | Path) -> tuple[nn.Module, StudentConfig, dict[str, Any]]:
    """Rebuild a compressed student saved by :func:`save_compressed`. Returns (model in eval mode, config, meta);
    ``meta["prune"]`` / ``meta["quant"]`` hold the configs it was compressed with."""
    from featherweight_core.quantize import QuantConfig, quantize_student

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: compressed student not found")
    payload = _safe_load(path)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        raise CheckpointError(f"{path}: a float student checkpoint, not a compressed one; use load_checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != COMPRESSED_FORMAT:
        raise CheckpointError(f"{path}: not a compressed featherweight student (expected format {COMPRESSED_FORMAT!r})")
    cfg = StudentConfig.from_dict(payload["student_config"])
    model: nn.Module = build_student(cfg, payload["num_embeddings"])
    quant = payload.get("quant")
    if quant is not None:
        qcfg = QuantConfig.from_dict(quant)
        if qcfg.enabled:
            model = quantize_student(model, qcfg, cfg.resolved().arch, calibrate=False)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    meta = dict(payload["meta"])
    meta["prune"], meta["quant"] = payload.get("prune"), quant
    return model, cfg, meta
