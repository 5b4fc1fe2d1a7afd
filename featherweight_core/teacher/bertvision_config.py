"""BERT-Vision's settings: :class:`BertVisionConfig` (layers, pooling, head, training) and its error."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from featherweight_core import vocab
from featherweight_core.errors import ConfigError

METHOD = "bertvision"
# dev predictions of the saved model and of the head on the cached (float16) states may differ on this share of
# examples (rounding near the decision boundary) before train_bertvision warns
AGREEMENT_WARN = 0.99
SUBSET_SEED = 0  # of the max_train_examples subset, fixed so that every seed reads the same cached states


class BertVisionError(ConfigError):
    """A BERT-Vision setting that cannot work (a layer count the teacher does not have, an unknown head, ...)."""


@dataclass(frozen=True)
class BertVisionConfig:
    """How a BERT-Vision head is trained on a teacher's hidden states.

    layers: transformer layers read and kept (1..L; None = all L); the head sees the embeddings' output too.
    head: ``adapter`` or ``concat`` (see the module docstring); adapter_size: the adapter's width ``a``.
    pooling: which positions of each layer the head reads: ``first`` (the ``[CLS]`` token, as the paper) or
    ``mean`` (the mean over the real tokens; more informative when only a few layers are read).
    max_length: input truncation for the hidden states and the saved model (None: the teacher's fine-tuning length).
    max_train_examples: a random subset of the train split, the same for every ``seed`` (None: all).
    device: where the hidden states are computed and the head trains (``auto``: a GPU if present).
    quantize: save the model int8-quantized (dynamic, every ``nn.Linear``) instead of in float32; the head then
    trains on the hidden states of the int8-quantized teacher, the ones its deployed backbone computes.
    """

    layers: int | None = None
    head: str = "adapter"
    adapter_size: int = 128
    pooling: str = "first"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    seed: int = 0
    max_length: int | None = None
    max_train_examples: int | None = None
    device: str = "auto"
    quantize: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.layers is None or self.layers >= 1, f"layers must be >= 1 (or None for all), got {self.layers}"),
            (
                self.head in vocab.BERTVISION_HEADS,
                f"head must be one of {list(vocab.BERTVISION_HEADS)}, got {self.head!r}",
            ),
            (self.adapter_size >= 1, f"adapter_size must be >= 1, got {self.adapter_size}"),
            (
                self.pooling in vocab.BERTVISION_POOLINGS,
                f"pooling must be one of {list(vocab.BERTVISION_POOLINGS)}, got {self.pooling!r}",
            ),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.max_length is None or self.max_length >= 8, f"max_length must be >= 8, got {self.max_length}"),
            (
                self.max_train_examples is None or self.max_train_examples >= 1,
                f"max_train_examples must be >= 1 or None, got {self.max_train_examples}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise BertVisionError(msg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BertVisionConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise BertVisionError(f"unknown BERT-Vision setting(s) {unknown}; expected some of {sorted(names)}")
        return cls(**d)
