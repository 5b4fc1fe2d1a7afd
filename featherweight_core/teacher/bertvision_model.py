"""BERT-Vision's model: the heads trained on a teacher's hidden states, the classifier that joins a truncated
backbone and a head (a sequence classifier like any other), and loading a saved one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from featherweight_core import vocab
from featherweight_core.errors import InputFileError
from featherweight_core.teacher import teacher_compression as tc
from featherweight_core.teacher.bertvision_config import METHOD, BertVisionError
from featherweight_core.teacher.bertvision_states import pool_layers, teacher_layer_count
from featherweight_core.teacher.config import TeacherError
from featherweight_core.teacher.loading import load_tokenizer, quiet_transformers
from featherweight_core.teacher.modelfiles import first_line, load_pretrained, load_state_strictly

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
    :func:`featherweight_core.teacher.predict.predict_logits` runs it like any sequence classifier.
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
    total = teacher_layer_count(config)
    if not 1 <= layers <= total:
        raise BertVisionError(f"layers {layers}: the teacher {teacher_dir} has {total} layers; expected 1..{total}")
    config.num_hidden_layers = layers
    return _auto_backbone(str(teacher_dir), config, weights=True)


# ---------------------------------------------------------------------------------------------------------------
# loading


def _read_meta(output_dir: Path) -> dict[str, Any]:
    meta = tc.read_meta(output_dir)
    if meta.get("method") != METHOD or not isinstance(meta.get("head"), dict):
        raise tc.CompressedTeacherError(f"{output_dir}: not a BERT-Vision output (method {meta.get('method')!r})")
    return meta


def load_bertvision_model(output_dir: str | Path, quantized: bool | None = None):
    """``(model, tokenizer, meta)`` of a directory saved by :func:`train_bertvision`, float or int8
    (``quantized``: None = as recorded). The model is on the CPU in eval mode."""
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
