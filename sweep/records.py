"""Trial + outcome -> database row (``db.store.TrialRecord``): the only place the trial contract meets the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from db.columns import PLACEMENT_COLUMNS
from db.rows import class_metric_rows
from db.store import TrialRecord
from trainables.trial import CompressTrial, DistillTrial, TeacherCompressionTrial, TrialOutcome


def _checkpoint(outcome: TrialOutcome, checkpoint_dir: str | None) -> str | None:
    if not outcome.finished or not checkpoint_dir or not outcome.checkpoint_file:
        return None
    return str(Path(checkpoint_dir) / outcome.checkpoint_file)


def _common(sweep: str, trial, outcome: TrialOutcome, checkpoint_dir: str | None) -> dict[str, Any]:
    return {
        "sweep": sweep,
        "trial_id": trial.trial_id,
        "stage": trial.stage,
        "status": outcome.status,
        "error": outcome.error,
        "metrics": outcome.metrics if outcome.finished else {},
        "sizes": outcome.sizes if outcome.finished else {},
        "started_at": outcome.started_at,
        "finished_at": outcome.finished_at,
        "seconds": outcome.seconds,
        "checkpoint_path": _checkpoint(outcome, checkpoint_dir),
        "history": outcome.history,
        "device": outcome.device,
        "node": outcome.node,
        **{c: getattr(outcome, c) for c in PLACEMENT_COLUMNS},
        "class_metrics": class_metric_rows(outcome.class_metrics) if outcome.finished else [],
    }


def distill_record(sweep: str, trial: DistillTrial, outcome: TrialOutcome, checkpoint_dir: str | None) -> TrialRecord:
    config = trial.to_dict()
    if outcome.finished:
        config["resolved"] = outcome.resolved
    return TrialRecord(
        **_common(sweep, trial, outcome, checkpoint_dir),
        task=trial.task,
        arch=trial.arch,
        embedding=trial.embedding,
        emb_dim=trial.emb_dim,
        vocab_size=trial.vocab_size,
        alpha=trial.alpha,
        temperature=(outcome.resolved.get("distill") or {}).get("temperature"),
        bootstrap=trial.bootstrap,
        seed=trial.seed,
        pooling=trial.pooling,
        config=config,
    )


def compress_record(
    sweep: str, trial: CompressTrial, outcome: TrialOutcome, checkpoint_dir: str | None, parent: dict[str, Any]
) -> TrialRecord:
    """``parent`` is the parent's trial_results row (its resolved temperature and pooling are copied)."""
    p = trial.parent_config
    return TrialRecord(
        **_common(sweep, trial, outcome, checkpoint_dir),
        parent_trial_id=trial.parent_trial_id,
        task=p["task"],
        arch=p["arch"],
        embedding=p["embedding"],
        emb_dim=int(p["emb_dim"]),
        vocab_size=p["vocab_size"],
        alpha=p["alpha"],
        temperature=parent.get("temperature"),
        bootstrap=bool(p["bootstrap"]),
        seed=int(p["seed"]),
        pooling=parent.get("pooling"),
        pruning=outcome.pruning,
        quantization=outcome.quantization,
        config=trial.to_dict(),
    )


def teacher_compression_record(
    sweep: str,
    trial: TeacherCompressionTrial,
    outcome: TrialOutcome,
    checkpoint_dir: str | None,
    teacher: dict[str, Any],
) -> TrialRecord:
    """``teacher`` describes the task's teacher as the driver found it: ``dir`` (the directory compressed),
    ``hidden_size`` and ``vocab_size`` (the record's emb_dim and vocab_size: a transformer's width and its
    tokenizer's vocabulary). The checkpoint is the output directory itself."""
    config = trial.to_dict()
    if outcome.finished:
        config["resolved"] = outcome.resolved
    return TrialRecord(
        **{
            **_common(sweep, trial, outcome, checkpoint_dir),
            "checkpoint_path": checkpoint_dir if outcome.finished else None,
        },
        task=trial.task,
        arch=trial.method,
        embedding="transformer",
        emb_dim=int(teacher["hidden_size"]),
        vocab_size=teacher.get("vocab_size"),
        alpha=None,
        temperature=None,
        bootstrap=False,
        seed=trial.seed,
        pooling=None,
        quantization=outcome.quantization,
        config=config,
        teacher=teacher.get("dir"),
        trainable_params=outcome.trainable_params,
        latency_ms=outcome.latency_ms,
        layers=outcome.layers,
        teacher_latency_ms=(outcome.teacher or {}).get("latency_ms"),
    )
