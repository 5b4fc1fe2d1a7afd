"""Encoded splits and length-bucketed batching.

An :class:`EncodedSplit` is what a trial trains on: ragged id arrays per text field, labels, optional teacher
logits aligned row for row, and the example keys. Plain numpy, so it pickles cheaply into Ray's object store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from featherweight_core.encoders import Ragged


@dataclass
class EncodedSplit:
    """fields: one Ragged per text field; labels (N,) int64; teacher_logits (N, C) float32 or None; keys (N,)."""

    fields: tuple[Ragged, ...]
    labels: np.ndarray
    keys: list[str]
    teacher_logits: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if any(len(f) != n for f in self.fields) or len(self.keys) != n:
            raise ValueError("EncodedSplit fields, labels and keys must have equal lengths")
        if self.teacher_logits is not None and len(self.teacher_logits) != n:
            raise ValueError(f"teacher logits have {len(self.teacher_logits)} rows for {n} examples")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        """Per-example length used for bucketing: the longest field."""
        return np.max(np.stack([f.lengths for f in self.fields]), axis=0)

    def take(self, idx: np.ndarray) -> EncodedSplit:
        idx = np.asarray(idx)
        return EncodedSplit(
            tuple(f.take(idx) for f in self.fields),
            self.labels[idx],
            [self.keys[i] for i in idx],
            None if self.teacher_logits is None else self.teacher_logits[idx],
        )

    def concat(self, other: EncodedSplit) -> EncodedSplit:
        if (self.teacher_logits is None) != (other.teacher_logits is None):
            raise ValueError("cannot concatenate splits where only one has teacher logits")
        return EncodedSplit(
            tuple(a.concat(b) for a, b in zip(self.fields, other.fields, strict=True)),
            np.concatenate([self.labels, other.labels]),
            self.keys + other.keys,
            None if self.teacher_logits is None else np.concatenate([self.teacher_logits, other.teacher_logits]),
        )


@dataclass
class Batch:
    inputs: tuple[torch.Tensor, ...]  # (ids_a, len_a[, ids_b, len_b])
    labels: torch.Tensor  # (B,)
    teacher_logits: torch.Tensor | None  # (B, C)
    index: np.ndarray  # (B,) rows of the split

    def to(self, device: torch.device) -> Batch:
        if device.type == "cpu":
            return self
        return Batch(
            tuple(t.to(device, non_blocking=True) if i % 2 == 0 else t for i, t in enumerate(self.inputs)),
            self.labels.to(device, non_blocking=True),
            None if self.teacher_logits is None else self.teacher_logits.to(device, non_blocking=True),
            self.index,
        )


def make_batch(split: EncodedSplit, idx: np.ndarray) -> Batch:
    inputs: list[torch.Tensor] = []
    for f in split.fields:
        ids, lens = f.padded(idx)
        inputs += [torch.from_numpy(ids), torch.from_numpy(lens)]
    tl = None if split.teacher_logits is None else torch.from_numpy(split.teacher_logits[idx])
    return Batch(tuple(inputs), torch.from_numpy(split.labels[idx]), tl, idx)


def bucket_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Group examples of similar length into batches to minimise padding.

    With ``rng``: sort by length with random tie-breaking, cut into batches, shuffle the batch order (training).
    Without: sort by length, keep order (evaluation).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(lengths)
    tiebreak = rng.random(n) if rng is not None else np.arange(n)
    order = np.lexsort((tiebreak, lengths))
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def iter_batches(split: EncodedSplit, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[Batch]:
    for idx in bucket_batches(split.lengths, batch_size, rng):
        yield make_batch(split, idx)
