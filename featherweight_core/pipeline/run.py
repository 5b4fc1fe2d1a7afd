"""One distillation run end to end: build the student from prepared data, train, measure, checkpoint.

This is the function ``featherweight distill`` and the sweep's distillation trainable both call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from featherweight_core.pipeline.checkpoint import save_checkpoint
from featherweight_core.pipeline.prepare import Prepared
from featherweight_core.students.distill import DistillConfig, EpochRecord, TrainResult, seed_everything, train
from featherweight_core.students.measure import check_student_fits, size_report
from featherweight_core.students.models import Student, StudentConfig, build_student


@dataclass
class RunResult:
    model: Student
    student_config: StudentConfig  # resolved
    distill_config: DistillConfig  # resolved
    train: TrainResult
    sizes: dict[str, Any]  # {"params": {...}, "disk_bytes", "gzip_bytes"}
    checkpoint: Path | None

    def summary(self) -> dict[str, Any]:
        """A flat JSON-able record: configs, dev metrics of the best epoch, its test metrics (``test_metrics``, the
        same keys; ``{}`` without a test split), per-class metrics per dev and test split (``class_metrics``),
        sizes."""
        return {
            "student": self.student_config.to_dict(),
            "distill": self.distill_config.to_dict(),
            "best_epoch": self.train.best_epoch,
            "epochs": len(self.train.history),
            "train_seconds": round(self.train.seconds, 3),
            "metrics": self.train.metrics,
            "test_metrics": self.train.test_metrics,
            "class_metrics": self.train.class_metrics,
            "params": self.sizes["params"],
            "disk_bytes": self.sizes["disk_bytes"],
            "gzip_bytes": self.sizes["gzip_bytes"],
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
        }


def student_config_for(prepared: Prepared, arch: str, **overrides: Any) -> StudentConfig:
    """The student config that fits ``prepared`` (embedding, dim, vocab, labels, pair) plus overrides."""
    return StudentConfig(
        arch=arch,
        embedding=prepared.embedding,
        emb_dim=prepared.emb_dim,
        vocab_size=prepared.vocab_size,
        num_labels=prepared.task.num_labels,
        pair=prepared.task.pair,
        **overrides,
    ).resolved()


def run_distillation(
    prepared: Prepared,
    student: StudentConfig,
    cfg: DistillConfig,
    output_dir: str | Path | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    train_split=None,
    on_epoch_model: Callable[[EpochRecord, torch.nn.Module], None] | None = None,
) -> RunResult:
    """Seed, build, train (early stopping), measure sizes, and save ``student.pt`` in ``output_dir`` if given.

    ``train_split`` overrides ``prepared.train`` (e.g. original plus bootstrap examples). ``on_epoch`` gets each
    epoch's record; ``on_epoch_model`` the record and the model as it is after that epoch (to measure it, not to
    change it).
    """
    student = student.resolved()
    cfg = cfg.resolved(student.arch, student.pair)
    # counted on the meta device first: a student too large to train here is one error naming its sizes
    check_student_fits(
        student,
        f"embedding dim {student.emb_dim} ({student.arch}, {student.embedding}, {prepared.num_embeddings} embedding rows)",
        num_embeddings=prepared.num_embeddings,
    )
    seed_everything(cfg.seed)
    model = build_student(student, prepared.num_embeddings, prepared.vectors)
    hook = on_epoch
    if on_epoch_model is not None:

        def hook(record: EpochRecord) -> None:
            if on_epoch is not None:
                on_epoch(record)
            on_epoch_model(record, model)

    result = train(
        model,
        train_split if train_split is not None else prepared.train,
        prepared.evals,
        prepared.task,
        cfg,
        hook,
        tests=prepared.tests,
    )
    model.to("cpu").eval()
    sizes = size_report(model)
    ckpt = None
    if output_dir is not None:
        meta = {
            "task": prepared.task.name,
            "task_spec": prepared.task.to_dict(),
            "data_source": prepared.data_source,
            "metrics": result.metrics,
            "test_metrics": result.test_metrics,
            "best_epoch": result.best_epoch,
            "distill": cfg.to_dict(),
            "data_fingerprint": prepared.data_fingerprint,
            "torch": str(torch.__version__),  # TorchVersion is not loadable with weights_only=True
        }
        ckpt = save_checkpoint(Path(output_dir) / "student.pt", model, student, prepared.num_embeddings, meta)
    return RunResult(model, student, cfg, result, sizes, ckpt)
