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
from featherweight_core.compression.quantize import QuantConfig, quantize_student
from featherweight_core.errors import InputFileError, UserError
from featherweight_core.readable import check_readable
from featherweight_core.students.models import Student, StudentConfig, build_student

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
    _check_file(path, "checkpoint")
    payload = load_weights_only(path)
    if isinstance(payload, dict) and payload.get("format") == COMPRESSED_FORMAT:
        raise CheckpointError(f"{path}: a compressed student; load it with checkpoint.load_compressed")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a featherweight student checkpoint (expected format {FORMAT!r})")
    _check_payload(path, payload, FORMAT)
    return payload


def load_checkpoint(path: str | Path) -> tuple[Student, StudentConfig, dict[str, Any]]:
    """Rebuild the float student and load its weights. Returns (model in eval mode, config, meta)."""
    payload = read_checkpoint(path)
    model, cfg = _build(Path(path), payload)
    return model, cfg, payload["meta"]


# ----------------------------------------------------------------------------------------------------------------
# Compressed (pruned and/or quantized) students
#
# Layout: ``{"format": "featherweight-compressed/1", "student_config": {...}, "num_embeddings": int,
# "prune": {...} | None, "quant": {...} | None, "state_dict": {...}, "meta": {...}}``. Loading rebuilds the float
# student, applies the same quantization structure (without calibration) and loads the state_dict, so what
# comes back predicts exactly like what was saved. Dynamic-quantized LSTM weights are stored by PyTorch as
# ``torch.ScriptObject`` (packed torchbind parameters), the one global allow-listed for ``weights_only`` loading.


def _check_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise CheckpointError(f"{path}: a directory, not a {what} file")
    if not path.is_file():
        raise InputFileError(f"{path}: {what} not found")
    check_readable(path, what)


def load_weights_only(path: Path) -> Any:
    # ScriptObject unpickles only registered torchbind classes (packed quantized weights), not arbitrary code;
    # never fall back to weights_only=False.
    # TorchVersion (a str subclass) is allow-listed because checkpoints written before run.py stored
    # str(torch.__version__) hold one in their meta.
    from torch.torch_version import TorchVersion

    with torch.serialization.safe_globals([torch.ScriptObject, TorchVersion]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)  # deprecation notes on quantized storages
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except LOAD_ERRORS as e:
            raise CheckpointError(f"{path}: {NOT_A_CHECKPOINT} ({_reason(e)})") from None


NOT_A_CHECKPOINT = "not a featherweight student checkpoint (truncated or not written by featherweight)"

# What torch.load raises on a file it cannot read: not a zip (RuntimeError), truncated (EOFError, OSError EINVAL
# from the zip reader), a foreign or disallowed pickle (UnpicklingError), and the unpickler's own failures on
# corrupted bytes (IndexError "pop from empty list", KeyError, TypeError, UnicodeDecodeError, ValueError).
LOAD_ERRORS = (pickle.UnpicklingError, EOFError, RuntimeError, OSError, IndexError, KeyError, TypeError, ValueError)


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    if isinstance(e, pickle.UnpicklingError) and "weights_only" in text:
        if "Unsupported global" in text:
            return "it holds Python objects other than tensors and plain values"
        return "not a torch file"
    first = text.splitlines()[0] if text else ""
    if isinstance(e, (EOFError, OSError)) and not isinstance(e, FileNotFoundError | PermissionError):
        return "the file ends early"
    if isinstance(e, RuntimeError) and "central directory" in first:
        return "not a complete torch zip archive"
    if isinstance(e, RuntimeError) and ("inline_container" in first or "PytorchStreamReader" in first):
        return "a zip archive, but not a torch checkpoint"
    first = first.split(". ")[0]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _check_payload(path: Path, payload: Any, fmt: str) -> None:
    """The keys every checkpoint of ``fmt`` holds, with the types the loaders need."""
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        return
    kinds = {"student_config": dict, "num_embeddings": int, "state_dict": dict, "meta": dict}
    for key, kind in kinds.items():
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(f"{path}: {NOT_A_CHECKPOINT} (no valid {key!r})")


def _build(path: Path, payload: dict[str, Any], quant: Any = None) -> tuple[nn.Module, StudentConfig]:
    """Rebuild the student a payload describes and load its weights; a payload that does not fit is the file's
    fault (a CheckpointError naming it), not a bug."""
    try:
        cfg = StudentConfig.from_dict(payload["student_config"])
        model: nn.Module = build_student(cfg, payload["num_embeddings"])
        if quant is not None:
            qcfg = QuantConfig.from_dict(quant)
            if qcfg.enabled:
                model = quantize_student(model, qcfg, cfg.resolved().arch, calibrate=False)
        model.load_state_dict(payload["state_dict"])
    except (UserError, RuntimeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: {NOT_A_CHECKPOINT} (its weights do not fit its config: {_reason(e)})") from None
    model.eval()
    return model, cfg


def save_compressed(path: str | Path, result: Any, meta: dict[str, Any] | None = None) -> Path:
    """Write a :class:`~featherweight_core.pipeline.compress.CompressResult` atomically. ``meta`` is merged into the stored
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
    path = Path(path)
    _check_file(path, "compressed student")
    payload = load_weights_only(path)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        raise CheckpointError(f"{path}: a float student checkpoint, not a compressed one; use load_checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != COMPRESSED_FORMAT:
        raise CheckpointError(f"{path}: not a compressed featherweight student (expected format {COMPRESSED_FORMAT!r})")
    _check_payload(path, payload, COMPRESSED_FORMAT)
    quant = payload.get("quant")
    model, cfg = _build(path, payload, quant)
    meta = dict(payload["meta"])
    meta["prune"], meta["quant"] = payload.get("prune"), quant
    return model, cfg, meta
