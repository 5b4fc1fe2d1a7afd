"""BERT-Vision's inputs: the hidden states of a teacher's first layers, pooled per example and cached on disk per
(teacher, texts, layers, pooling), so every head trained on them reads them once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from featherweight_core import vocab
from featherweight_core.atomic import atomic_write, write_text_atomic
from featherweight_core.teacher.batches import tokenize
from featherweight_core.teacher.bertvision_config import BertVisionError
from featherweight_core.teacher.devices import autocast_dtype, progress_bar, resolve_device
from featherweight_core.teacher.loading import load_classifier, read_teacher_meta
from featherweight_core.teacher.softtargets import teacher_fingerprint, texts_fingerprint
from featherweight_core.teacher.teacher_compression import quantize_int8

# ---------------------------------------------------------------------------------------------------------------
# teacher facts


def teacher_layer_count(config) -> int:
    n = getattr(config, "num_hidden_layers", None)
    if not isinstance(n, int):
        raise BertVisionError(f"model type {config.model_type!r}: no num_hidden_layers in its config")
    return n


def teacher_max_length(teacher_dir: str | Path, default: int = 128) -> int:
    """The max length the teacher was fine-tuned with (``featherweight_teacher.json``), else ``default``."""
    return int(read_teacher_meta(teacher_dir).get("config", {}).get("max_length", default))


# ---------------------------------------------------------------------------------------------------------------
# the hidden-state cache


@dataclass
class HiddenStates:
    """Pooled hidden states of every layer, ``(N, L + 1, H)``, stored as float16 ``centered`` values plus a float32
    ``offset`` (L + 1, H) that adds back: near-constant features (the first token's state in early layers barely
    varies between examples) keep their small differences, which float16 alone would round away."""

    centered: np.ndarray
    offset: np.ndarray

    def __len__(self) -> int:
        return len(self.centered)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.centered.shape)

    def layers(self, k: int | None = None) -> np.ndarray:
        """float32 ``(N, k + 1, H)``: the embeddings' output and layers 1..k (None: all)."""
        depth = self.centered.shape[1] if k is None else k + 1
        return self.centered[:, :depth].astype(np.float32) + self.offset[:depth]


def pool_layers(hidden: Sequence[torch.Tensor], attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``(B, len(hidden), H)``: per layer, the first position's state (``first``) or the mean over the real tokens
    (``mean``, padding excluded by ``attention_mask``)."""
    if pooling == "first":
        return torch.stack([h[:, 0, :] for h in hidden], dim=1)
    if pooling == "mean":
        m = attention_mask.to(hidden[0].dtype).unsqueeze(-1)
        denom = m.sum(1).clamp_min(1.0)
        return torch.stack([(h * m).sum(1) / denom for h in hidden], dim=1)
    raise BertVisionError(f"pooling must be one of {list(vocab.BERTVISION_POOLINGS)}, got {pooling!r}")


class HiddenStateCache:
    """Pooled hidden states of every layer, computed once per (teacher, texts, max_length, pooling), kept on disk.

    Layout under ``root`` (as :class:`featherweight_core.teacher.softtargets.SoftTargetStore`)::

        {teacher_fp}/teacher.json                                  where the teacher came from (for people)
        {teacher_fp}/{name}-{data_fp}-L{max_len}-{pooling}[-int8].npz   centered float16 (N, L + 1, H), offset float32

    ``teacher_fp`` is :func:`featherweight_core.teacher.softtargets.teacher_fingerprint` (weights, config, tokenizer), so a
    changed teacher gets new files; ``data_fp`` hashes the keys and texts; ``-int8``: the states of the teacher
    with int8 dynamic quantization of every ``nn.Linear`` (computed on the CPU one example at a time, since the
    activations' int8 scale depends on the batch), which a quantized output's head
    trains on because its backbone computes those. Files are written to a temporary name and
    renamed into place. ``root=None`` keeps nothing on disk. ``model_runs`` counts the teacher runs (tests assert on
    it), ``examples_computed`` the rows they covered.
    """

    def __init__(
        self,
        root: str | Path | None,
        device: str = "auto",
        batch_size: int = 128,
        precision: str = "fp32",
        progress: bool = False,
    ) -> None:
        self.root = Path(root) if root is not None else None
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.progress = progress
        self.model_runs = 0
        self.examples_computed = 0
        self._loaded: dict[str, tuple[Any, Any]] = {}

    def path_for(
        self,
        teacher_dir: str | Path,
        name: str,
        data_fp: str,
        max_length: int,
        pooling: str = "first",
        int8: bool = False,
    ) -> Path | None:
        if self.root is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return (
            self.root
            / teacher_fingerprint(teacher_dir)
            / f"{safe}-{data_fp}-L{max_length}-{pooling}{'-int8' if int8 else ''}.npz"
        )

    def has(
        self,
        teacher_dir,
        name: str,
        keys: Sequence[str],
        texts: Sequence[tuple[str, ...]],
        max_length: int,
        pooling: str = "first",
        int8: bool = False,
    ) -> bool:
        texts = [tuple(t) for t in texts]
        path = self.path_for(teacher_dir, name, texts_fingerprint(list(keys), texts), max_length, pooling, int8)
        return path is not None and path.is_file()

    def get_or_compute(
        self,
        teacher_dir: str | Path,
        name: str,
        keys: Sequence[str],
        texts: Sequence[tuple[str, ...]],
        max_length: int,
        pooling: str = "first",
        int8: bool = False,
    ) -> HiddenStates:
        """The states of ``texts`` in order, all layers; served from disk when stored, else computed once with the
        teacher (``int8``: its int8-quantized copy) and stored."""
        if pooling not in vocab.BERTVISION_POOLINGS:
            raise BertVisionError(f"pooling must be one of {list(vocab.BERTVISION_POOLINGS)}, got {pooling!r}")
        teacher_dir = Path(teacher_dir)
        texts = [tuple(t) for t in texts]
        if not texts:
            raise BertVisionError(f"{name}: no examples to compute hidden states for")
        path = self.path_for(teacher_dir, name, texts_fingerprint(list(keys), texts), max_length, pooling, int8)
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as f:
                    states = HiddenStates(f["centered"], f["offset"])
            except (ValueError, OSError, KeyError):
                states = None  # a damaged file: compute again and replace it
            if states is not None and len(states.shape) == 3 and len(states) == len(texts):
                return states
        states = self._run_teacher(teacher_dir, texts, max_length, pooling, int8)
        if path is not None:

            def write(tmp: Path) -> None:
                with tmp.open("wb") as f:
                    np.savez(f, centered=states.centered, offset=states.offset)

            atomic_write(path, write)
            meta = path.parent / "teacher.json"
            if not meta.is_file():
                write_text_atomic(meta, json.dumps({"teacher_dir": str(teacher_dir.resolve())}, indent=2) + "\n")
        return states

    def _run_teacher(
        self, teacher_dir: Path, texts: list[tuple[str, ...]], max_length: int, pooling: str, int8: bool = False
    ) -> HiddenStates:
        fp = teacher_fingerprint(teacher_dir) + ("-int8" if int8 else "")
        if fp not in self._loaded:
            self._loaded = {}  # one teacher in memory at a time
            model, tokenizer = load_classifier(teacher_dir)
            if int8:
                model = quantize_int8(model)
            self._loaded[fp] = (model, tokenizer)
        model, tokenizer = self._loaded[fp]
        device = torch.device("cpu") if int8 else resolve_device(self.device)
        # int8 dynamic quantization scales activations per batch: one example at a time, as the model is deployed
        batch = 1 if int8 else self.batch_size
        states = layer_states(
            model, tokenizer, texts, max_length, pooling, device, batch, self.precision, self.progress
        )
        self.model_runs += 1
        self.examples_computed += len(texts)
        return states


@torch.inference_mode()
def layer_states(
    model,
    tokenizer,
    texts: Sequence[tuple[str, ...]],
    max_length: int,
    pooling: str = "first",
    device: torch.device | str = "cpu",
    batch_size: int = 128,
    precision: str = "fp32",
    progress: bool = False,
) -> HiddenStates:
    """Pooled ``(N, L + 1, H)`` states after the embeddings and after each layer (:func:`pool_layers`) of a Hugging
    Face model that returns ``hidden_states``; batches sorted by length and padded to their longest row. The
    offset is the mean of the first batch."""
    device = torch.device(device) if isinstance(device, str) else device
    model.to(device).eval()
    tok = tokenize(tokenizer, texts, max_length, model)
    n = len(tok)
    order = np.argsort(-tok.lengths, kind="stable")
    dtype = autocast_dtype(device, precision)
    out: np.ndarray | None = None
    offset: np.ndarray | None = None
    starts = range(0, n, batch_size)
    for s in progress_bar(starts, len(starts), "hidden states", progress):
        idx = order[s : s + batch_size]
        inputs = {k: v.to(device) for k, v in tok.batch(idx).items()}
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            hidden = model(**inputs, output_hidden_states=True).hidden_states
        pooled = pool_layers([h.float() for h in hidden], inputs["attention_mask"], pooling).cpu().numpy()
        if out is None:
            offset = pooled.mean(0)
            out = np.zeros((n, *pooled.shape[1:]), dtype=np.float16)
        out[idx] = pooled - offset
    assert out is not None and offset is not None
    return HiddenStates(out, offset.astype(np.float32))
