"""Tokenized texts and the batches a teacher trains and predicts on: unpadded token ids, padded per batch to its
own longest example (dynamic padding), training rows and length-grouped batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from featherweight_core.teacher.config import TeacherError

# ---------------------------------------------------------------------------------------------------------------
# tokenization, batching


@dataclass
class Tokenized:
    """Unpadded token ids per example; ``token_type_ids`` only for models that take them."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def batch(self, idx: Sequence[int], pad_to: int | None = None) -> dict[str, torch.Tensor]:
        """Tensors for rows ``idx``, padded to the longest of them (dynamic padding) or to ``pad_to``."""
        seqs = [self.input_ids[i] for i in idx]
        T = pad_to or max(len(s) for s in seqs)
        ids = np.full((len(seqs), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), T), dtype=np.int64)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = s
            mask[r, : len(s)] = 1
        out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self.token_type_ids is not None:
            tt = np.zeros((len(seqs), T), dtype=np.int64)
            for r, i in enumerate(idx):
                s = self.token_type_ids[i]
                tt[r, : len(s)] = s
            out["token_type_ids"] = torch.from_numpy(tt)
        return out


def tokenize(tokenizer, texts: Sequence[tuple[str, ...]], max_length: int, model=None) -> Tokenized:
    """Tokenize 1- or 2-field texts without padding, truncated to ``max_length`` tokens (pairs: longest first)."""
    if not len(texts):
        return Tokenized([], None, tokenizer.pad_token_id or 0)
    n_fields = len(texts[0])
    if any(len(t) != n_fields for t in texts):
        raise TeacherError("all texts must have the same number of fields")
    a = [t[0] for t in texts]
    b = [t[1] for t in texts] if n_fields == 2 else None
    wants_types = model is None or "token_type_ids" in _forward_args(model)
    enc = tokenizer(
        a,
        b,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=wants_types or None,
    )
    tt = enc.get("token_type_ids") if wants_types else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Tokenized(enc["input_ids"], tt, pad_id)


def _forward_args(model) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def training_rows(n: int, max_examples: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of the ``n`` training rows to train on: all of them, or (``max_examples`` < n) a random subset of that
    size drawn from ``rng``, in row order."""
    if max_examples is not None and max_examples < n:
        return np.sort(rng.choice(n, max_examples, replace=False))
    return np.arange(n)


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Training batches of similar length that still vary between epochs (as HF's ``group_by_length``):
    shuffle, cut into mega-batches of 50 batches, sort each by length, cut into batches, shuffle the batch order."""
    order = rng.permutation(len(lengths))
    mega = 50 * batch_size
    batches: list[np.ndarray] = []
    for s in range(0, len(order), mega):
        chunk = order[s : s + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]
