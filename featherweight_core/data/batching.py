"""Encoded splits and length-bucketed batching.

An :class:`EncodedSplit` is what a trial trains on: ragged id arrays per text field, labels, optional teacher
logits aligned row for row, and the example keys. Plain numpy, so it pickles cheaply into Ray's object store.

On an accelerator (CUDA) a trial moves its splits to the device once (:func:`to_device` -> :class:`DeviceSplit`)
and builds every batch there by index: no numpy -> tensor conversion and no host -> device copy of token ids per
step. The batch order and composition are the CPU path's (the same :func:`bucket_batches`); on the device each
batch's rows are ordered by decreasing length (packed RNNs then need no reordering) and its time axis is padded up
to one of a few bucket lengths (:func:`bucket_length`) so kernels see repeated shapes. On CPU nothing changes:
:func:`to_device` returns the split itself and batches are built from numpy as before.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from featherweight_core.data.encoders import Ragged


@dataclass
class EncodedSplit:
    """fields: one Ragged per text field; labels (N,) int64; teacher_logits (N, C) float32 or None; keys (N,)."""

    fields: tuple[Ragged, ...]
    labels: np.ndarray
    keys: list[str]  # a list, or Keys once unpickled
    teacher_logits: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if any(len(f) != n for f in self.fields) or len(self.keys) != n:
            raise ValueError("EncodedSplit fields, labels and keys must have equal lengths")
        if self.teacher_logits is not None and len(self.teacher_logits) != n:
            raise ValueError(f"teacher logits have {len(self.teacher_logits)} rows for {n} examples")

    def __getstate__(self) -> dict:
        # the keys travel as one bytes array (an out-of-band buffer under pickle protocol 5): a reader of Ray's object
        # store maps them like the other arrays instead of unpickling a list of ~1M str per worker
        state = dict(self.__dict__)
        # (numpy's bytes arrays drop trailing NULs: keys ending in one stay a list)
        if isinstance(self.keys, list) and len(self.keys) > 0 and not any(k.endswith("\0") for k in self.keys):
            state["keys"] = Keys.from_list(self.keys)
        return state

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


class Keys:
    """Example keys as one fixed-width UTF-8 bytes array, read as a sequence of str (what an unpickled
    :class:`EncodedSplit` holds: zero-copy when the array comes from Ray's object store). Supports what splits do
    with keys: len, indexing (an int gives a str, a slice a view), iteration, ``+`` (a list), ``==``."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    @classmethod
    def from_list(cls, keys: list[str]) -> Keys:
        return cls(np.array([k.encode("utf-8", "surrogatepass") for k in keys], dtype=bytes))

    def __reduce__(self):
        return (Keys, (self.data,))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Keys(self.data[i])  # a view
        return self.data[i].decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        return (b.decode("utf-8", "surrogatepass") for b in self.data)

    def __add__(self, other) -> list[str]:
        return list(self) + list(other)

    def __radd__(self, other) -> list[str]:
        return list(other) + list(self)

    def __eq__(self, other) -> bool:
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __repr__(self) -> str:
        return f"Keys({len(self)} keys)"


@dataclass
class Batch:
    inputs: tuple[torch.Tensor, ...]  # (ids_a, len_a[, ids_b, len_b])
    labels: torch.Tensor  # (B,)
    teacher_logits: torch.Tensor | None  # (B, C)
    index: np.ndarray  # (B,) rows of the split
    rows: torch.Tensor | None = None  # the same rows on the device (batches of a DeviceSplit), else None

    def to(self, device: torch.device) -> Batch:
        """Token ids, labels and teacher logits on ``device``; lengths stay where they are (on the host: a packed
        RNN reads them there)."""
        if device.type == "cpu":
            return self
        return Batch(
            tuple(t.to(device, non_blocking=True) if i % 2 == 0 else t for i, t in enumerate(self.inputs)),
            self.labels.to(device, non_blocking=True),
            None if self.teacher_logits is None else self.teacher_logits.to(device, non_blocking=True),
            self.index,
            self.rows,
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


def iter_batches(
    split: EncodedSplit | DeviceSplit, batch_size: int, rng: np.random.Generator | None = None
) -> Iterator[Batch]:
    """Length-bucketed batches of ``split`` (see :func:`bucket_batches`); a :class:`DeviceSplit` yields batches
    already on its device, built there by index."""
    if isinstance(split, DeviceSplit):
        yield from split.batches(batch_size, rng)
        return
    for idx in bucket_batches(split.lengths, batch_size, rng):
        yield make_batch(split, idx)


def bucket_length(T: int) -> int:
    """The padded time length a device batch uses for a longest sequence of ``T``: T itself up to 8, then the next
    multiple of 8 up to 64, of 32 up to 256, of 128 beyond. A few dozen distinct shapes in all, so kernels and the
    caching allocator see the same shapes again and again; the padding is never read (lengths mask it).

    >>> [bucket_length(t) for t in (1, 8, 9, 64, 65, 257)]
    [1, 8, 16, 64, 96, 384]
    """
    if T <= 8:
        return T
    step = 8 if T <= 64 else 32 if T <= 256 else 128
    return int(math.ceil(T / step) * step)


@dataclass
class _DeviceField:
    ids: torch.Tensor  # (total_tokens,) or (total_tokens, width) int64 on the device
    starts: torch.Tensor  # (N,) int64 on the device: where each sequence starts in ids
    lengths: torch.Tensor  # (N,) int64 on the device
    host_lengths: np.ndarray  # (N,) the same lengths on the host: batch shapes are decided there, without a sync


class DeviceSplit:
    """An :class:`EncodedSplit` whose arrays live on an accelerator, copied there once (:func:`to_device`).

    Batches are gathered on the device by index (:meth:`batches`): per step the only host -> device traffic is a
    slice of an index array uploaded once per epoch, and each field's lengths (a pinned CPU tensor, ``B`` int64s,
    which packed RNNs need on the host anyway). Nothing in it reads a device value back, so building a batch never
    waits for the device. ``labels`` (numpy), ``teacher_logits`` and ``len()`` are the host split's.
    """

    def __init__(self, split: EncodedSplit, device: torch.device | str) -> None:
        self.split = split
        self.device = torch.device(device)
        dev = self.device
        self.fields = []
        for f in split.fields:
            # an empty split keeps one padding token so gathers have something to index
            ids = f.ids if len(f.ids) else np.zeros((1, *f.ids.shape[1:]), np.int64)
            self.fields.append(
                _DeviceField(
                    ids=torch.as_tensor(ids, dtype=torch.int64).to(dev),
                    starts=torch.from_numpy(np.ascontiguousarray(f.offsets[:-1], dtype=np.int64)).to(dev),
                    lengths=torch.from_numpy(np.ascontiguousarray(f.lengths, dtype=np.int64)).to(dev),
                    host_lengths=np.asarray(f.lengths, dtype=np.int64),
                )
            )
        self.labels_t = torch.from_numpy(np.ascontiguousarray(split.labels, dtype=np.int64)).to(dev)
        tl = split.teacher_logits
        self.teacher_t = None if tl is None else torch.from_numpy(np.ascontiguousarray(tl)).to(dev)
        self._lengths = split.lengths
        self._max_len = int(max((int(f.host_lengths.max()) for f in self.fields if len(f.host_lengths)), default=1))
        self._arange = torch.arange(bucket_length(self._max_len), device=dev)
        self._pin = dev.type == "cuda"

    def __len__(self) -> int:
        return len(self.split)

    @property
    def labels(self) -> np.ndarray:
        return self.split.labels

    @property
    def teacher_logits(self) -> np.ndarray | None:
        return self.split.teacher_logits

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    def _host_tensor(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        return t.pin_memory() if self._pin else t

    def batches(self, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[Batch]:
        """The same batches as ``iter_batches(split, batch_size, rng)`` (same rows, same order; ``rng`` is drawn
        from identically), each built on the device."""
        groups = bucket_batches(self._lengths, batch_size, rng)
        if not groups:
            return
        first = self.fields[0].host_lengths
        # rows of each batch by decreasing length of the first field (stable): a packed RNN needs no reordering
        groups = [idx[np.argsort(-first[idx], kind="stable")] for idx in groups]
        order = np.concatenate(groups).astype(np.int64)
        order_dev = self._host_tensor(order).to(self.device, non_blocking=True)  # one upload per epoch
        start = 0
        for idx in groups:
            b = len(idx)
            rows = order_dev[start : start + b]
            start += b
            inputs: list[torch.Tensor] = []
            for f in self.fields:
                lens = f.host_lengths[idx]
                T = bucket_length(int(lens.max()))
                t = self._arange[:T]
                lens_dev = f.lengths[rows]
                valid = t[None, :] < lens_dev[:, None]  # (B, T)
                pos = f.starts[rows][:, None] + torch.minimum(t[None, :], lens_dev[:, None] - 1)
                ids = f.ids[pos]  # (B, T[, width])
                ids = ids * (valid[..., None] if ids.dim() == 3 else valid)
                inputs += [ids, self._host_tensor(np.ascontiguousarray(lens))]
            tl = None if self.teacher_t is None else self.teacher_t[rows]
            yield Batch(tuple(inputs), self.labels_t[rows], tl, idx, rows)


def to_device(split: EncodedSplit | DeviceSplit, device: torch.device | str) -> EncodedSplit | DeviceSplit:
    """``split`` itself on CPU; otherwise a :class:`DeviceSplit` holding its arrays on ``device`` (built once per
    trial: batches are then gathered there by index)."""
    device = torch.device(device)
    if isinstance(split, DeviceSplit):
        if split.device == device:
            return split  # already there: no second upload
        split = split.split
    if device.type == "cpu":
        return split
    return DeviceSplit(split, device)
