"""Checkpoints: a student's state_dict plus the config that rebuilds it, loadable with ``weights_only=True``.

Layout: ``{"format": "featherweight-student/1", "student_config": {...}, "num_embeddings": int,
"state_dict": {...}, "meta": {...}}`` - plain Python values and tensors only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featherweight_core.students import Student, StudentConfig, build_student

FORMAT = "featherweight-student/1"


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    cfg: StudentConfig,
    num_embeddings: int,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "student_config": cfg.to_dict(),
        "num_embeddings": int(num_embeddings),
        "state_dict": model.state_dict(),
        "meta": meta or {},
    }
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a featherweight student checkpoint (expected format {FORMAT!r})")
    return payload


def load_checkpoint(path: str | Path) -> tuple[Student, StudentConfig, dict[str, Any]]:
    """Rebuild the float student and load its weights. Returns (model in eval mode, config, meta)."""
    payload = read_checkpoint(path)
    cfg = StudentConfig.from_dict(payload["student_config"])
    model = build_student(cfg, payload["num_embeddings"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, cfg, payload["meta"]
