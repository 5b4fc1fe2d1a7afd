"""Compress a trained student: prune (optionally while fine-tuning on its distillation loss), make the pruning
permanent, quantize, then evaluate and measure. The one entry point ``featherweight compress`` and the sweep's
stage-2 trainable both call: :func:`compress_student`.

Example (a notebook)::

    model, cfg, meta = load_checkpoint("runs/sst2-bilstm/student.pt")
    res = compress_student(model, cfg, PruneConfig(method="topv"), QuantConfig(), prepared.train,
                           prepared.evals, prepared.task, tests=prepared.tests)
    res.metrics["score"], res.sizes["gzip_bytes"], res.describe()
    save_compressed("runs/sst2-bilstm/compressed.pt", res)
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from featherweight_core import vocab
from featherweight_core.compression.prune import prune_student, sparsity_report
from featherweight_core.compression.prune_config import PruneConfig
from featherweight_core.compression.quantize import QuantConfig, QuantizationError, is_quantized, quantize_student
from featherweight_core.data.batching import EncodedSplit
from featherweight_core.data.tasks import TaskSpec
from featherweight_core.errors import ConfigError
from featherweight_core.pipeline.checkpoint import load_compressed, save_compressed
from featherweight_core.students.distill import DistillConfig, default_temperature, evaluate_detailed
from featherweight_core.students.measure import disk_size, ideal_size, param_counts
from featherweight_core.students.models import StudentConfig

__all__ = [
    "CompressResult",
    "compress_student",
    "default_distill_config",
    "measure_sizes",
    "save_compressed",
    "load_compressed",
    "PruneConfig",
    "QuantConfig",
]


@dataclass
class CompressResult:
    """What :func:`compress_student` returns.

    model: the compressed student (CPU, eval mode). metrics: same keys as ``distill.evaluate``. sizes:
    ``{"params": {...}, "nonzero_params", "disk_bytes", "gzip_bytes", "ideal_bytes"}``. sparsity: see
    ``prune.sparsity_report`` (per module, per group, per tensor, overall), measured after pruning and before
    quantization. prune_log: one record per fine-tuning epoch. test_metrics: the same keys on the test splits
    (``{}`` without one). class_metrics: ``{split: measure.per_class_metrics(...)}`` for every dev and test split.
    """

    model: nn.Module
    student_config: StudentConfig
    prune: PruneConfig | None
    quant: QuantConfig | None
    metrics: dict[str, float]
    sizes: dict[str, Any]
    sparsity: dict[str, Any]
    num_embeddings: int
    distill_config: DistillConfig | None = None
    prune_log: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    test_metrics: dict[str, float] = field(default_factory=dict)
    class_metrics: dict[str, dict] = field(default_factory=dict)

    def describe(self) -> dict[str, str]:
        """``{"prune": "magnitude-local(lstm=0.5,linear=0.125,emb=0.4)", "quant": "int8-dyn(enc,cls)+emb-u8"}``;
        ``"none"`` for a step that was not applied."""
        a, e = self.student_config.arch, self.student_config.embedding
        return {
            "prune": self.prune.describe(a, e) if self.prune is not None else "none",
            "quant": self.quant.describe(a, e) if self.quant is not None and self.quant.enabled else "none",
        }

    def summary(self) -> dict[str, Any]:
        """A flat JSON-able record (what the CLI writes to result.json)."""
        return {
            "student": self.student_config.to_dict(),
            "prune": self.prune.to_dict() if self.prune is not None else None,
            "quant": self.quant.to_dict() if self.quant is not None else None,
            "distill": self.distill_config.to_dict() if self.distill_config is not None else None,
            **{f"{k}_label": v for k, v in self.describe().items()},
            "metrics": self.metrics,
            "test_metrics": self.test_metrics,
            "class_metrics": self.class_metrics,
            "sizes": self.sizes,
            "sparsity": {k: v for k, v in self.sparsity.items() if k != "tensors"},
            "sparsity_tensors": self.sparsity.get("tensors", {}),
            "prune_log": self.prune_log,
            "seconds": round(self.seconds, 3),
        }


def default_distill_config(student: StudentConfig, train_split: EncodedSplit | None) -> DistillConfig:
    """The fine-tuning loss when the caller gives none: labels only (alpha 1) without teacher logits, otherwise
    alpha 0.5; the arch's table 6.1 optimizer and temperature."""
    alpha = 1.0 if train_split is None or train_split.teacher_logits is None else 0.5
    return DistillConfig(alpha=alpha, temperature=default_temperature(student.arch))


def measure_sizes(model: nn.Module) -> dict[str, Any]:
    """``{"params": {...}, "nonzero_params", "disk_bytes", "gzip_bytes", "ideal_bytes"}`` of a (compressed) model."""
    params = param_counts(model)
    return {
        "params": params,
        "nonzero_params": params["nonzero"],
        **disk_size(model),
        "ideal_bytes": ideal_size(model)["ideal_bytes"],
    }


def _num_embeddings(model: nn.Module, cfg: StudentConfig) -> int:
    emb = getattr(model, "embedding", None)
    if isinstance(emb, nn.Embedding):
        return emb.num_embeddings
    return int(cfg.vocab_size or vocab.DEFAULT_VOCAB_SIZE)  # hash embeddings size themselves from vocab_size


def compress_student(
    model: nn.Module,
    student_cfg: StudentConfig,
    prune: PruneConfig | None,
    quant: QuantConfig | None,
    train_split: EncodedSplit,
    evals: dict[str, EncodedSplit],
    task: TaskSpec,
    distill_cfg: DistillConfig | None = None,
    on_epoch=None,
    tests: dict[str, EncodedSplit] | None = None,
) -> CompressResult:
    """Prune then quantize a copy of ``model`` (the parent is left untouched), evaluate on ``evals``, measure.

    ``train_split`` is the parent's training split (with teacher logits when ``distill_cfg.alpha < 1``): pruning
    fine-tunes on it and static classifier quantization calibrates on it - the dev splits in ``evals`` are only
    reported, as are the test splits in ``tests``. ``distill_cfg`` (resolved here) is the fine-tuning loss; default
    :func:`default_distill_config`.
    """
    start = time.perf_counter()
    cfg = student_cfg.resolved()
    if is_quantized(model):
        raise QuantizationError("model is already quantized; compress the float student checkpoint instead")
    if prune is None and (quant is None or not quant.enabled):
        raise ConfigError("nothing to do: give a PruneConfig, a QuantConfig with at least one group, or both")
    num_embeddings = _num_embeddings(model, cfg)
    m = copy.deepcopy(model).cpu().eval()
    dcfg, log = None, []
    if prune is not None:
        if prune.epochs:
            dcfg = (distill_cfg or default_distill_config(cfg, train_split)).resolved(cfg.arch, cfg.pair)
        m, log = prune_student(m, prune, cfg.arch, cfg.embedding, train_split, dcfg, on_epoch)
        m = m.cpu().eval()
    sparsity = sparsity_report(m, cfg.arch, cfg.embedding)
    if quant is not None and quant.enabled:
        m = quantize_student(m, quant, cfg.arch, calibration_split=train_split)
    metrics, dev_classes = evaluate_detailed(m, evals, task)
    test_metrics, test_classes = evaluate_detailed(m, tests or {}, task)
    sizes = measure_sizes(m)
    return CompressResult(
        m,
        cfg,
        prune,
        quant,
        metrics,
        sizes,
        sparsity,
        num_embeddings,
        dcfg,
        log,
        time.perf_counter() - start,
        test_metrics,
        {**dev_classes, **test_classes},
    )
