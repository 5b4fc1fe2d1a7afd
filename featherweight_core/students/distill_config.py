"""How one student is trained (:class:`DistillConfig`) and the training settings a user gives: the ``training:``
section of a sweep spec, a distillation trial's settings and the options of ``featherweight distill``
(:data:`TRAINING_SETTINGS`, declared once on the config's fields).

Plain Python (no torch), so the spec validator and the command-line parser read it without loading the training
code; :mod:`featherweight_core.students.distill` (the loop) re-exports :class:`DistillConfig`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass

from featherweight_core import vocab
from featherweight_core.errors import ConfigError
from featherweight_core.settings import Setting, setting, settings_of

BATCH_SIZE_HELP = "examples per training step (default: 50, or 256 for sentence-pair tasks)"


@dataclass(frozen=True)
class DistillConfig:
    """How one student is trained. ``None`` fields take the arch's table 6.1 defaults via :meth:`resolved`.

    A field made with :func:`~featherweight_core.settings.setting` is a training setting: the sweep spec's
    ``training:`` section, the distillation trials and ``featherweight distill`` take it (with its default, range
    and help) without further code."""

    alpha: float = 1.0
    temperature: float | None = setting(
        None,
        "softmax temperature before the MSE: a number, none (raw logits) or auto (3 for the FFN, raw logits otherwise)",
        kind="float",
        above=0,
        words=("auto",),
        user_default="auto",
    )
    max_epochs: int = setting(
        50, "epochs at most; the best epoch is kept (the thesis' 50; 3-5 for a quick run)", kind="int", minimum=1
    )
    patience: int = setting(
        7, "stop after this many epochs without a better dev score (early stopping)", kind="int", minimum=1
    )
    batch_size: int | None = setting(None, BATCH_SIZE_HELP, kind="int", minimum=1)
    lr: float | None = setting(
        None,
        "learning rate (default: table 6.1, 1.0 for bilstm/adadelta, 1e-4 for rnn and ffn/adam, tuned for 50"
        " epochs; for short runs of 3-5 epochs use optimizer adam and lr 3e-3)",
        kind="float",
        above=0,
    )
    optimizer: str | None = setting(
        None,
        "default: the thesis' per-arch choice (table 6.1): adadelta for bilstm, adam for rnn and ffn",
        kind="choice",
        choices=vocab.OPTIMIZERS,
    )
    weight_decay: float | None = None
    seed: int = 0
    device: str = "cpu"
    eval_batch_size: int = 512
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.alpha, int | float) or not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha!r}")
        if self.temperature is not None and not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"temperature must be a finite number > 0 or None, got {self.temperature!r}")
        for name, s in settings_of(DistillConfig).items():  # the integer settings' ranges, as declared
            value = getattr(self, name)
            if s.kind == "int" and value is not None and s.minimum is not None and value < s.minimum:
                raise ConfigError(f"{name} must be >= {s.minimum}, got {value}")
        if self.optimizer is not None and self.optimizer not in vocab.OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; expected one of {list(vocab.OPTIMIZERS)}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}")
        if self.weight_decay is not None and not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and not (self.grad_clip > 0 and math.isfinite(self.grad_clip)):
            raise ConfigError(f"grad_clip must be a finite number > 0 or None, got {self.grad_clip}")
        if not isinstance(self.device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError(f"unknown device {self.device!r}; expected cpu, cuda or cuda:N")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be an integer in 0..{2**32 - 1}, got {self.seed!r}")

    def resolved(self, arch: str, pair: bool) -> DistillConfig:
        # the arch table lives with the student modules (torch), loaded only where a student is trained
        from featherweight_core.students.models import ARCH_DEFAULTS

        d = ARCH_DEFAULTS[arch]
        return dataclasses.replace(
            self,
            batch_size=self.batch_size or (256 if pair else 50),
            optimizer=self.optimizer or d["optimizer"],
            lr=self.lr if self.lr is not None else d["lr"],
            weight_decay=self.weight_decay if self.weight_decay is not None else d["weight_decay"],
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The student's recurrent pooling is a training setting too; StudentConfig (with the student modules, which need
# torch) holds the same default (tests/featherweight_core/test_settings.py checks it).
POOLING = Setting(
    name="pooling",
    default="last",
    help="recurrent output: the last hidden state per direction, or max over time",
    kind="choice",
    choices=vocab.POOLINGS,
)

# Every training setting, by name: the spec's ``training:`` keys, the trial fields and the distill options
TRAINING_SETTINGS: dict[str, Setting] = {"pooling": POOLING, **settings_of(DistillConfig)}
