"""What a teacher is on disk and how it is fine-tuned: the files a teacher directory holds, its config, its error."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from featherweight_core import vocab
from featherweight_core.errors import UserError

TEACHER_META = "featherweight_teacher.json"
METRICS_FILE = "teacher_metrics.json"
PRECISIONS = vocab.TEACHER_PRECISIONS  # alias of the one vocabulary


class TeacherError(UserError, ValueError):
    """A teacher that cannot be loaded or trained: unknown model id offline, not a model directory, bad config."""


@dataclass(frozen=True)
class TeacherConfig:
    """How a teacher is fine-tuned (and, through ``max_length``/``eval_batch_size``, how it predicts).

    precision: ``auto`` = bf16 autocast on a GPU that supports it, else fp16 on GPU, fp32 on CPU.
    device: ``auto`` (cuda if available), ``cpu``, ``cuda`` or ``cuda:N``.
    max_train_examples: use a deterministic random subset of the train split (None: all).
    eval_every: also evaluate on dev every this many optimiser steps (0: only at the end of each epoch).
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 5e-5
    max_length: int = 128
    seed: int = 0
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0
    precision: str = "auto"
    device: str = "auto"
    eval_batch_size: int = 128
    max_train_examples: int | None = None
    eval_every: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.max_length >= 8, f"max_length must be >= 8, got {self.max_length}"),
            (0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.precision in PRECISIONS, f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}"),
            (self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}"),
            (
                self.max_train_examples is None or self.max_train_examples >= 1,
                f"max_train_examples must be >= 1 or None, got {self.max_train_examples}",
            ),
            (self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise TeacherError(msg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
