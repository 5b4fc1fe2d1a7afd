"""BERT-Vision: a small head on the hidden states of every layer of a fine-tuned teacher.

After "A High Performance Compression Approach for Transformer-Based NLP Tasks" (Jiang et al.).

A fine-tuned transformer computes a hidden state per layer and position; plain inference uses only the last one.
BERT-Vision keeps the teacher frozen, collects the hidden states of *every* layer once, and trains a small head on
them. For classification the paper reads the first position (``[CLS]`` in BERT, ``<s>`` in RoBERTa) of each layer
(``pooling="first"``, the default); ``pooling="mean"`` reads the mean over the real tokens instead.

Layers: a teacher with ``L`` transformer layers has ``L + 1`` hidden states per position - the embeddings' output
(layer 0) and the output of each transformer layer (1..L), as the paper counts them (13 for BERT-base). Reading the
first ``k`` layers (``BertVisionConfig.layers``) means the states 0..k, so ``k + 1`` vectors per example, and the
deployed model is the teacher's embeddings and its first ``k`` transformer layers (the layers above ``k``, the pooler
and the classifier are dropped) plus the head: ``k`` is a size knob that trades accuracy for size and latency.

Heads (``vocab.BERTVISION_HEADS``) over the ``(k + 1, H)`` pooled states of one example, each standardized first
with the training set's per-(layer, feature) mean and standard deviation (buffers stored with the head, ``2 (k+1) H``
values; without it a head cannot use early layers, whose ``[CLS]`` state varies by ~1e-3 between examples):

* ``adapter`` (the paper's AdapterPooler): one linear map ``H -> a`` shared by every layer, GELU, dropout, the
  ``(k + 1) * a`` values flattened, then a linear classifier. Trainable: ``H*a + a + (k+1)*a*C + C``.
* ``concat`` (the paper's BertConcat): a learned weighted sum of the layers (softmax over ``k + 1`` weights),
  dropout, then a linear classifier. Trainable: ``(k+1) + H*C + C``.

The adapter width defaults to 128: the paper's pooling maps each layer's ``H``-dim state to as many values as the
input has tokens (386 for SQuAD), which on BERT-base is where its ~0.3-0.4M trainable parameters come from; 128 is
this project's default input length, so the head stays near the paper's ratio (BERT-base: 0.1M, MiniLM-384: 50k) and
is still tiny next to even one transformer layer.

Hidden states are computed once per (teacher, texts, max_length, pooling) and stored by :class:`HiddenStateCache` as
float16 ``(N, L + 1, H)`` arrays centered on a float32 offset (all layers, so every ``k`` slices the same file); the
head then trains on them without any transformer forward. The result is saved as a deployable model (truncated
backbone + ``head.safetensors``, or one int8 state dict) and evaluated end to end, so the recorded score is the
saved model's.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from featherweight_core import vocab
from featherweight_core.atomic import atomic_dir, atomic_write, write_text_atomic
from featherweight_core.data import TaskData
from featherweight_core.errors import ConfigError
from featherweight_core.measure import split_metrics, task_metric_names

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


# ---------------------------------------------------------------------------------------------------------------
# teacher facts


def _num_layers(config) -> int:
    n = getattr(config, "num_hidden_layers", None)
    if not isinstance(n, int):
        raise BertVisionError(f"model type {config.model_type!r}: no num_hidden_layers in its config")
    return n


def teacher_max_length(teacher_dir: str | Path, default: int = 128) -> int:
    """The max length the teacher was fine-tuned with (``featherweight_teacher.json``), else ``default``."""
    from featherweight_core.teacher import read_teacher_meta

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

    Layout under ``root`` (as :class:`featherweight_core.softtargets.SoftTargetStore`)::

        {teacher_fp}/teacher.json                                  where the teacher came from (for people)
        {teacher_fp}/{name}-{data_fp}-L{max_len}-{pooling}[-int8].npz   centered float16 (N, L + 1, H), offset float32

    ``teacher_fp`` is :func:`featherweight_core.softtargets.teacher_fingerprint` (weights, config, tokenizer), so a
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
        from featherweight_core.softtargets import teacher_fingerprint

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
        from featherweight_core.softtargets import texts_fingerprint

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
        from featherweight_core.softtargets import texts_fingerprint

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
        from featherweight_core.softtargets import teacher_fingerprint
        from featherweight_core.teacher import load_classifier, resolve_device

        fp = teacher_fingerprint(teacher_dir) + ("-int8" if int8 else "")
        if fp not in self._loaded:
            self._loaded = {}  # one teacher in memory at a time
            model, tokenizer = load_classifier(teacher_dir)
            if int8:
                from featherweight_core.teacher_compression import quantize_int8

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
    from featherweight_core.teacher import autocast_dtype, progress_bar, tokenize

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


# ---------------------------------------------------------------------------------------------------------------
# heads and the deployable model


# a feature whose standard deviation over the training set is below this is constant (the first token's state after
# the embeddings is the same for every example, std 0): it gets scale 0 rather than 1 / std, which would only
# amplify rounding noise (another runtime's last-digit differences) into the head. Early layers do vary it, by ~1e-3.
MIN_STD = 1e-4


class _StandardizedHead(nn.Module):
    """Standardizes each (layer, feature) with the training set's mean and standard deviation, kept as buffers
    (stored with the head, not trained): the first token's state varies between examples by ~1e-3 of its size in
    early layers, too little for a small head to pick up unscaled."""

    def __init__(self, depth: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(depth, hidden))
        self.register_buffer("feature_scale", torch.ones(depth, hidden))

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_scale.copy_(torch.where(std >= MIN_STD, 1.0 / std.clamp_min(MIN_STD), torch.zeros_like(std)))

    def standardize(self, states: torch.Tensor) -> torch.Tensor:
        return (states - self.feature_mean) * self.feature_scale


class AdapterHead(_StandardizedHead):
    """A linear adapter ``H -> a`` shared by every layer, GELU, dropout, flattened, a linear classifier."""

    def __init__(self, depth: int, hidden: int, adapter_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__(depth, hidden)
        self.adapter = nn.Linear(hidden, adapter_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(depth * adapter_size, num_labels)

    def forward(self, states: torch.Tensor) -> torch.Tensor:  # (B, depth, H) -> (B, C)
        z = self.dropout(F.gelu(self.adapter(self.standardize(states))))
        return self.classifier(z.flatten(1))


class ConcatHead(_StandardizedHead):
    """A learned weighted sum of the layers (softmax weights, uniform at the start), dropout, a linear classifier."""

    def __init__(self, depth: int, hidden: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__(depth, hidden)
        self.layer_weights = nn.Parameter(torch.zeros(depth))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        x = self.standardize(states)
        w = torch.softmax(self.layer_weights, dim=0).to(x.dtype)
        return self.classifier(self.dropout(torch.einsum("bdh,d->bh", x, w)))


def build_head(
    head: str, depth: int, hidden: int, num_labels: int, adapter_size: int = 128, dropout: float = 0.1
) -> nn.Module:
    if head == "adapter":
        return AdapterHead(depth, hidden, adapter_size, num_labels, dropout)
    if head == "concat":
        return ConcatHead(depth, hidden, num_labels, dropout)
    raise BertVisionError(f"head must be one of {list(vocab.BERTVISION_HEADS)}, got {head!r}")


def head_param_count(head: str, depth: int, hidden: int, num_labels: int, adapter_size: int = 128) -> int:
    """Trainable parameters of a head, by formula (``depth`` = layers read + 1 for the embeddings' output)."""
    if head == "adapter":
        return hidden * adapter_size + adapter_size + depth * adapter_size * num_labels + num_labels
    if head == "concat":
        return depth + hidden * num_labels + num_labels
    raise BertVisionError(f"head must be one of {list(vocab.BERTVISION_HEADS)}, got {head!r}")


def head_stored_count(head: str, depth: int, hidden: int, num_labels: int, adapter_size: int = 128) -> int:
    """Values a saved head holds: its trainable parameters and the standardization's mean and scale per
    (layer, feature)."""
    return head_param_count(head, depth, hidden, num_labels, adapter_size) + 2 * depth * hidden


class BertVisionClassifier(nn.Module):
    """The deployable model: the teacher's backbone cut to ``k`` layers, then the head on its pooled states.

    ``forward(input_ids, attention_mask, token_type_ids=None)`` returns a ``SequenceClassifierOutput`` with
    ``logits``; ``config`` is the backbone's (``num_labels`` and the label names come from the teacher), so
    :func:`featherweight_core.teacher.predict_logits` runs it like any sequence classifier.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, pooling: str = "first") -> None:
        super().__init__()
        if pooling not in vocab.BERTVISION_POOLINGS:
            raise BertVisionError(f"pooling must be one of {list(vocab.BERTVISION_POOLINGS)}, got {pooling!r}")
        self.backbone = backbone
        self.head = head
        self.pooling = pooling
        self.config = backbone.config
        import inspect

        self._takes_token_types = "token_type_ids" in inspect.signature(backbone.forward).parameters

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ):
        from transformers.modeling_outputs import SequenceClassifierOutput

        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self._takes_token_types:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.backbone(**kwargs, output_hidden_states=True).hidden_states
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        states = pool_layers(hidden, mask, self.pooling)
        return SequenceClassifierOutput(logits=self.head(states))


def _auto_backbone(source: str | Path, config, weights: bool, error: type[Exception] | None = None):
    """AutoModel (no task head) from ``config``: with the checkpoint's weights (``weights``; every tensor of the
    backbone must be in the checkpoint, else ``error``, default :class:`TeacherError`) or uninitialised; without a
    pooler where the architecture has the option (BERT, RoBERTa: the head does not use it)."""
    from transformers import AutoModel

    from featherweight_core.modelfiles import load_pretrained
    from featherweight_core.teacher import TeacherError, quiet_transformers

    quiet_transformers()
    for kwargs in ({"add_pooling_layer": False}, {}):
        try:
            if weights:
                return load_pretrained(
                    AutoModel,
                    source,
                    error or TeacherError,
                    "a transformer backbone",
                    config=config,
                    local_files_only=True,
                    **kwargs,
                )
            return AutoModel.from_config(config, **kwargs)
        except TypeError:
            if not kwargs:
                raise
    raise AssertionError("unreachable")


def truncated_backbone(teacher_dir: str | Path, layers: int):
    """The teacher's embeddings and first ``layers`` transformer layers (its weights), config saying so."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(teacher_dir), local_files_only=True)
    total = _num_layers(config)
    if not 1 <= layers <= total:
        raise BertVisionError(f"layers {layers}: the teacher {teacher_dir} has {total} layers; expected 1..{total}")
    config.num_hidden_layers = layers
    return _auto_backbone(str(teacher_dir), config, weights=True)


# ---------------------------------------------------------------------------------------------------------------
# training


def _metrics(task, logits_by_split: dict[str, np.ndarray], labels_by_split: dict[str, np.ndarray]) -> dict:
    names = task_metric_names(task)
    per = {
        s: split_metrics(lg.argmax(-1), labels_by_split[s], names, task.num_labels) for s, lg in logits_by_split.items()
    }
    out = {m: float(np.mean([v[m] for v in per.values()])) for m in names}
    if len(per) > 1:
        out.update({f"{m}_{s}": v[m] for s, v in per.items() for m in names})
    out["score"] = out[task.metric]
    return out


@torch.no_grad()
def _head_logits(head: nn.Module, feats: torch.Tensor, device: torch.device, batch: int = 1024) -> np.ndarray:
    head.eval()
    return np.concatenate(
        [head(feats[i : i + batch].to(device).float()).float().cpu().numpy() for i in range(0, len(feats), batch)]
    )


def _train_rows(n: int, cfg: BertVisionConfig) -> np.ndarray:
    if cfg.max_train_examples is None or cfg.max_train_examples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n, cfg.max_train_examples, replace=False))


def teacher_summary(teacher_dir: str | Path) -> dict[str, Any]:
    """``{"dir", "fingerprint", "score", "params", "disk_bytes", "gzip_bytes", "layers"}`` of a fine-tuned teacher
    (sizes of its weight file, measured as students are)."""
    from transformers import AutoConfig

    from featherweight_core.measure import saved_model_sizes
    from featherweight_core.softtargets import teacher_fingerprint
    from featherweight_core.teacher import METRICS_FILE

    d = Path(teacher_dir)
    score = None
    if (d / METRICS_FILE).is_file():
        try:
            m = json.loads((d / METRICS_FILE).read_text())
            score = m.get("score", m.get("accuracy")) if isinstance(m, dict) else None
        except ValueError:
            score = None
    config = AutoConfig.from_pretrained(str(d), local_files_only=True)
    sizes = saved_model_sizes(d)
    return {
        "dir": str(d),
        "fingerprint": teacher_fingerprint(d),
        "score": score,
        "params": sizes["params"],
        "disk_bytes": sizes["disk_bytes"],
        "gzip_bytes": sizes["gzip_bytes"],
        "layers": _num_layers(config),
    }


def _check_teacher(teacher_dir: Path, task) -> Any:
    """The teacher's config, after checking it is a model directory whose labels fit the task."""
    from transformers import AutoConfig

    from featherweight_core.softtargets import teacher_fingerprint
    from featherweight_core.teacher import TeacherError, resolve_model_source

    if not teacher_dir.exists():
        raise TeacherError(f"{teacher_dir}: teacher directory not found")
    resolve_model_source(teacher_dir)  # a model directory (config.json, readable weight files)
    teacher_fingerprint(teacher_dir)
    try:
        config = AutoConfig.from_pretrained(str(teacher_dir), local_files_only=True)
    except (OSError, ValueError) as e:
        raise TeacherError(f"{teacher_dir}: cannot read config.json ({type(e).__name__})") from None
    if int(getattr(config, "num_labels", 0)) != task.num_labels:
        raise TeacherError(
            f"{teacher_dir}: the teacher predicts {config.num_labels} labels but task {task.name!r}"
            f" has {task.num_labels}; pass a teacher fine-tuned on this task"
        )
    return config


def train_bertvision(
    teacher_dir: str | Path,
    task_data: TaskData,
    output_dir: str | Path,
    cfg: BertVisionConfig | None = None,
    cache_dir: str | Path | HiddenStateCache | None = None,
    progress: bool = False,
    log=None,
    overwrite: bool = False,
    time_teacher: bool = True,
):
    """Train a BERT-Vision head on ``teacher_dir``'s hidden states and save the deployable model to ``output_dir``.

    Hidden states come from a :class:`HiddenStateCache` (``cache_dir``: its root, or a cache object; None: nothing
    kept on disk); the head trains on them (cross-entropy on the labels, AdamW), the epoch with the best dev score
    is kept; the model (backbone cut to ``k`` layers + head, or its int8 form) is saved atomically and evaluated end
    to end on dev (and test, when it has labels), and its CPU latency is timed interleaved with the teacher's
    (``time_teacher``; False leaves ``teacher["latency_ms"]`` None and saves loading the teacher once more). Returns
    a :class:`featherweight_core.teacher_compression.CompressedTeacherResult`.
    """
    from safetensors.torch import save_file

    from featherweight_core import teacher_compression as tc
    from featherweight_core.teacher import check_model_output_dir, resolve_device

    cfg = cfg or BertVisionConfig()
    start = time.perf_counter()
    teacher_dir = Path(teacher_dir)
    output_dir = Path(output_dir)
    task = task_data.task
    check_model_output_dir(output_dir, overwrite)
    tconfig = _check_teacher(teacher_dir, task)
    total_layers = _num_layers(tconfig)
    k = cfg.layers if cfg.layers is not None else total_layers
    if k > total_layers:
        raise BertVisionError(
            f"layers {k}: the teacher {teacher_dir} has {total_layers} layers; expected 1..{total_layers}"
        )
    if len(task_data.train) == 0:
        raise BertVisionError(f"task {task.name!r}: the train split is empty")
    eval_splits = [s for s in task.eval_splits if s in task_data.splits and len(task_data.splits[s])]
    if not eval_splits:
        raise BertVisionError(f"task {task.name!r}: no dev split among {list(task.eval_splits)} to evaluate on")
    max_length = cfg.max_length or teacher_max_length(teacher_dir)
    device = resolve_device(cfg.device)
    if isinstance(cache_dir, HiddenStateCache):
        cache = cache_dir
    else:
        cache = HiddenStateCache(cache_dir, device=cfg.device, progress=progress)

    # 1. hidden states (all layers, from the cache), sliced to the first k layers
    train = task_data.train
    rows = _train_rows(len(train), cfg)
    runs = cache.model_runs
    feats: dict[str, torch.Tensor] = {}
    labels: dict[str, np.ndarray] = {}
    for split, idx in [("train", rows), *[(s, None) for s in eval_splits]]:
        sp = task_data.splits[split]
        keys = list(sp.keys) if idx is None else [sp.keys[i] for i in idx]
        texts = list(sp.texts) if idx is None else [sp.texts[i] for i in idx]
        states = cache.get_or_compute(
            teacher_dir, f"{task.name}-{split}", keys, texts, max_length, cfg.pooling, int8=cfg.quantize
        )
        feats[split] = torch.from_numpy(states.layers(k))
        labels[split] = sp.labels if idx is None else sp.labels[idx]
    computed = cache.model_runs - runs
    if log:
        how = f"computed for {computed} split(s)" if computed else "served from the cache"
        print(
            f"hidden states: {len(rows):,} train rows x {k + 1} layers x {feats['train'].shape[-1]} ({how})",
            file=log,
            flush=True,
        )

    # 2. the head, trained on the cached states
    hidden = int(feats["train"].shape[-1])
    torch.manual_seed(cfg.seed)
    head = build_head(cfg.head, k + 1, hidden, task.num_labels, cfg.adapter_size, cfg.dropout)
    head.set_feature_stats(feats["train"].mean(0), feats["train"].std(0, unbiased=False))
    head.to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    y_train = torch.from_numpy(np.asarray(labels["train"], dtype=np.int64))
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best_state, best_score, best_epoch = None, -math.inf, 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        head.train()
        perm = torch.randperm(len(y_train), generator=gen)
        running = 0.0
        for i in range(0, len(perm), cfg.batch_size):
            b = perm[i : i + cfg.batch_size]
            x = feats["train"][b].to(device)
            loss = F.cross_entropy(head(x), y_train[b].to(device))
            if not torch.isfinite(loss):
                raise BertVisionError(f"non-finite loss in epoch {epoch} (lr {cfg.lr} too high?)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item() * len(b)
        dev = _metrics(
            task, {s: _head_logits(head, feats[s], device) for s in eval_splits}, {s: labels[s] for s in eval_splits}
        )
        history.append(
            {"epoch": epoch, "train_loss": running / len(y_train), **dev, "seconds": round(time.perf_counter() - t0, 3)}
        )
        if dev["score"] > best_score:
            best_score, best_epoch = dev["score"], epoch
            best_state = copy.deepcopy(head.state_dict())
        if log:
            print(
                f"epoch {epoch}/{cfg.epochs}  loss {running / len(y_train):.4f}  dev {dev['score']:.4f}",
                file=log,
                flush=True,
            )
    assert best_state is not None
    head.load_state_dict(best_state)
    head.to("cpu").eval()
    cache_logits = {s: _head_logits(head, feats[s], torch.device("cpu")) for s in eval_splits}

    # 3. the deployable model, saved atomically, then measured and evaluated as saved
    backbone = truncated_backbone(teacher_dir, k)
    model = BertVisionClassifier(backbone, head, cfg.pooling).eval()
    from featherweight_core.teacher import load_tokenizer

    tokenizer = load_tokenizer(str(teacher_dir), True)
    teacher = teacher_summary(teacher_dir)
    meta = {
        "method": METHOD,
        "settings": cfg.to_dict(),
        "task": task.to_dict(),
        "labels": list(task.label_names),
        "layers": k,
        "teacher_layers": total_layers,
        "max_length": max_length,
        "quantized": cfg.quantize,
        "head": {
            "kind": cfg.head,
            "depth": k + 1,
            "hidden": hidden,
            "num_labels": task.num_labels,
            "adapter_size": cfg.adapter_size,
            "pooling": cfg.pooling,
            "params": sum(p.numel() for p in head.parameters()),
        },
        "teacher": teacher,
        "best_epoch": best_epoch,
    }

    # int8: activations are quantized per batch, so evaluate one example at a time, as latency is measured and the
    # quantized head's training states were computed
    eval_batch = 1 if cfg.quantize else 64
    with atomic_dir(output_dir) as tmp:  # measured and evaluated as saved, before it appears under output_dir
        tokenizer.save_pretrained(tmp)
        if cfg.quantize:
            tc.save_int8(tc.quantize_int8(model), tmp, meta)
        else:
            backbone.save_pretrained(tmp)
            save_file({n: t.contiguous() for n, t in head.state_dict().items()}, str(tmp / tc.HEAD_WEIGHTS))
            tc.write_meta(tmp, meta)
        saved, tokenizer, _ = load_bertvision_model(tmp, cfg.quantize)
        ev = tc.evaluate(saved, tokenizer, task_data, max_length, batch_size=eval_batch)
        dev_metrics, test_metrics, classes = ev.metrics, ev.test_metrics, ev.class_metrics
        # the saved model must predict what the head predicted on the cached states (float16 rounding aside)
        agreement = float(np.mean([(ev.predictions[s] == cache_logits[s].argmax(-1)).mean() for s in eval_splits]))
        cache_score = _metrics(task, cache_logits, {s: labels[s] for s in eval_splits})["score"]
        sizes = tc.measure_saved(tmp)
        latency, teacher["latency_ms"] = tc.latency_with_teacher(
            saved, tokenizer, task_data.splits[eval_splits[0]].texts, max_length, teacher_dir if time_teacher else None
        )
        meta["metrics"] = {**dev_metrics, "cache_score": cache_score, "cache_agreement": agreement}
        meta["test_metrics"] = test_metrics
        tc.write_meta(tmp, {**meta, "quantized": cfg.quantize})
    if log and agreement < AGREEMENT_WARN:
        print(
            f"warning: the saved model agrees with the head on cached states on only {agreement:.3f} of dev", file=log
        )
    return tc.CompressedTeacherResult(
        method=METHOD,
        output_dir=str(output_dir),
        metrics=meta["metrics"],
        test_metrics=test_metrics,
        class_metrics=classes,
        params=int(sizes["params"]),
        trainable_params=int(sum(p.numel() for p in head.parameters())),
        disk_bytes=int(sizes["disk_bytes"]),
        gzip_bytes=int(sizes["gzip_bytes"]),
        latency_ms=float(latency),
        layers=k,
        quantized=cfg.quantize,
        seconds=round(time.perf_counter() - start, 2),
        history=history,
        settings={**cfg.to_dict(), "layers": k, "max_length": max_length},
        teacher=teacher,
    )


# ---------------------------------------------------------------------------------------------------------------
# loading


def _read_meta(output_dir: Path) -> dict[str, Any]:
    from featherweight_core import teacher_compression as tc

    meta = tc.read_meta(output_dir)
    if meta.get("method") != METHOD or not isinstance(meta.get("head"), dict):
        raise tc.CompressedTeacherError(f"{output_dir}: not a BERT-Vision output (method {meta.get('method')!r})")
    return meta


def load_bertvision_model(output_dir: str | Path, quantized: bool | None = None):
    """``(model, tokenizer, meta)`` of a directory saved by :func:`train_bertvision`, float or int8
    (``quantized``: None = as recorded). The model is on the CPU in eval mode."""
    from featherweight_core import teacher_compression as tc
    from featherweight_core.errors import InputFileError
    from featherweight_core.teacher import load_tokenizer

    output_dir = Path(output_dir)
    meta = _read_meta(output_dir)
    quantized = bool(meta.get("quantized")) if quantized is None else quantized
    h = meta["head"]
    pooling = h.get("pooling", "first")
    head = build_head(
        h["kind"],
        int(h["depth"]),
        int(h["hidden"]),
        int(h["num_labels"]),
        int(h["adapter_size"]),
        float(meta.get("settings", {}).get("dropout", 0.0)),
    )
    if quantized:
        from transformers import AutoConfig

        weights = output_dir / tc.INT8_WEIGHTS
        if not weights.is_file():
            raise InputFileError(f"{output_dir}: no {tc.INT8_WEIGHTS} (not saved quantized)")
        config = AutoConfig.from_pretrained(str(output_dir), local_files_only=True)
        skeleton = BertVisionClassifier(_auto_backbone(str(output_dir), config, weights=False), head, pooling)
        model = tc.quantize_int8(skeleton)
        tc.load_int8_state(model, weights)
    else:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from featherweight_core.modelfiles import first_line, load_state_strictly

        if not (output_dir / tc.HEAD_WEIGHTS).is_file():
            raise InputFileError(f"{output_dir}: no {tc.HEAD_WEIGHTS} (saved quantized? it holds {tc.INT8_WEIGHTS})")
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(output_dir), local_files_only=True)
        backbone = _auto_backbone(str(output_dir), config, weights=True, error=tc.CompressedTeacherError)
        head_file = output_dir / tc.HEAD_WEIGHTS
        try:
            state = load_file(str(head_file))
        except (OSError, SafetensorError) as e:
            raise tc.CompressedTeacherError(f"{head_file}: not a readable weights file ({first_line(e)})") from None
        load_state_strictly(head, state, head_file, tc.CompressedTeacherError, "the head its metadata describes")
        model = BertVisionClassifier(backbone, head, pooling)
    return model.eval(), load_tokenizer(str(output_dir), True), meta
