"""BERT-of-Theseus' settings: :class:`TheseusConfig`, the :class:`ReplacementSchedule` of the replacement rate and
its error."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from featherweight_core import vocab
from featherweight_core.teacher.config import TeacherConfig, TeacherError

DEFAULT_REPLACING_FRACTION = 0.85
DEFAULT_START_RATE = 0.3


class TheseusError(TeacherError):
    """A Theseus compression that cannot run: a bad setting, a layer count the replace rate does not divide, a model
    whose layer list is not found."""


@dataclass(frozen=True)
class TheseusConfig:
    """How a teacher is compressed by module replacement (see the module docstring).

    replace_rate: teacher layers per successor layer (``r``); the teacher's layer count must be divisible by it.
    schedule: ``linear`` (``p = min(k * t + b, 1)``) or ``constant`` (``p``, then 1.0).
    p: the constant schedule's replacement probability.
    b, k: the linear schedule's start rate and slope per optimiser step; ``k`` None: p reaches 1.0 after
        ``replacing_fraction`` of the steps.
    replacing_fraction: share of the steps spent replacing modules before successor-only fine-tuning (constant
        schedule; linear schedule when ``k`` is None).
    train_classifier: also train the classification head (everything outside the embeddings and the layer list,
        e.g. BERT's pooler and classifier); otherwise it stays as the teacher had it, and a step in which every
        block drew its predecessor has nothing to train (counted per epoch as ``steps_without_update``).
    quantize: save the successor int8-quantized (dynamic, every Linear) instead of as float weights.
    """

    replace_rate: int = 2
    schedule: str = "linear"
    p: float = 0.5
    b: float = DEFAULT_START_RATE
    k: float | None = None
    replacing_fraction: float = DEFAULT_REPLACING_FRACTION
    train_classifier: bool = True
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    max_length: int = 128
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0
    seed: int = 0
    max_train_examples: int | None = None
    device: str = "auto"
    precision: str = "auto"
    eval_batch_size: int = 128
    quantize: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.replace_rate, bool) or not isinstance(self.replace_rate, int):
            raise TheseusError(f"replace_rate must be an integer >= 2, got {self.replace_rate!r}")
        checks = [
            (self.replace_rate >= 2, f"replace_rate must be an integer >= 2, got {self.replace_rate}"),
            (
                self.schedule in vocab.THESEUS_SCHEDULES,
                f"schedule must be one of {list(vocab.THESEUS_SCHEDULES)}, got {self.schedule!r}",
            ),
            (0.0 <= self.p <= 1.0, f"p (replacement probability) must be in [0, 1], got {self.p}"),
            (0.0 <= self.b <= 1.0, f"b (start replacement rate) must be in [0, 1], got {self.b}"),
            (self.k is None or self.k > 0, f"k (replacement rate slope per step) must be > 0, got {self.k}"),
            (
                0.0 <= self.replacing_fraction <= 1.0,
                f"replacing_fraction must be in [0, 1], got {self.replacing_fraction}",
            ),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.max_length >= 8, f"max_length must be >= 8, got {self.max_length}"),
            (0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be > 0 or None, got {self.grad_clip}"),
            (
                self.precision in vocab.TEACHER_PRECISIONS,
                f"precision must be one of {list(vocab.TEACHER_PRECISIONS)}, got {self.precision!r}",
            ),
            (self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}"),
            (
                self.max_train_examples is None or self.max_train_examples >= 1,
                f"max_train_examples must be >= 1 or None, got {self.max_train_examples}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise TheseusError(msg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def teacher_config(self) -> TeacherConfig:
        """The training/evaluation settings in the form the teacher helpers take."""
        return TeacherConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            max_length=self.max_length,
            seed=self.seed,
            warmup_ratio=self.warmup_ratio,
            weight_decay=self.weight_decay,
            grad_clip=self.grad_clip,
            precision=self.precision,
            device=self.device,
            eval_batch_size=self.eval_batch_size,
            max_train_examples=self.max_train_examples,
        )

    def replacement_schedule(self, total_steps: int) -> ReplacementSchedule:
        return ReplacementSchedule(self.schedule, total_steps, self.p, self.b, self.k, self.replacing_fraction)


@dataclass(frozen=True)
class ReplacementSchedule:
    """The probability that a block runs its successor at optimiser step ``t`` (0-based) of ``total_steps``."""

    schedule: str
    total_steps: int
    p: float = 0.5
    b: float = DEFAULT_START_RATE
    k: float | None = None
    replacing_fraction: float = DEFAULT_REPLACING_FRACTION

    def __post_init__(self) -> None:
        if self.schedule not in vocab.THESEUS_SCHEDULES:
            raise TheseusError(f"schedule must be one of {list(vocab.THESEUS_SCHEDULES)}, got {self.schedule!r}")
        if self.total_steps < 1:
            raise TheseusError(f"total_steps must be >= 1, got {self.total_steps}")

    @property
    def replacing_steps(self) -> int:
        """Steps before ``p`` is 1.0 (successor-only fine-tuning from then on)."""
        if self.schedule == "linear" and self.k is not None:
            return min(self.total_steps, max(0, math.ceil((1.0 - self.b) / self.k)))
        return min(self.total_steps, round(self.replacing_fraction * self.total_steps))

    @property
    def slope(self) -> float:
        """The linear schedule's ``k`` (the given one, or the one that reaches 1.0 after ``replacing_steps``)."""
        if self.k is not None:
            return self.k
        n = self.replacing_steps
        return (1.0 - self.b) / n if n else math.inf

    def __call__(self, step: int) -> float:
        if step >= self.replacing_steps:
            return 1.0
        if self.schedule == "constant":
            return self.p
        return min(self.slope * step + self.b, 1.0)
