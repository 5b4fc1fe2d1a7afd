"""What every trial's database row (``db.store.TrialRecord``) shares, from its trial and outcome. Each stage makes its
own rows (``sweep.stages.base.Stage.record``) from :func:`common_fields` plus the columns only it fills: the trial
contract meets the schema only in this module and the stages' ``record``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from db.columns import PLACEMENT_COLUMNS
from db.rows import class_metric_rows
from trainables.trial import TrialOutcome


def checkpoint_path(outcome: TrialOutcome, checkpoint_dir: str | None) -> str | None:
    """The trial's checkpoint file inside ``checkpoint_dir`` (``None`` for a failed trial or one without a file)."""
    if not outcome.finished or not checkpoint_dir or not outcome.checkpoint_file:
        return None
    return str(Path(checkpoint_dir) / outcome.checkpoint_file)


def common_fields(sweep: str, trial, outcome: TrialOutcome, checkpoint_dir: str | None) -> dict[str, Any]:
    """The row fields every stage fills the same way: identity, status, metrics, sizes, timing, checkpoint, history,
    placement and per-class metrics."""
    return {
        "sweep": sweep,
        "trial_id": trial.trial_id,
        "stage": trial.stage,
        "status": outcome.status,
        "error": outcome.error,
        # a stopped trial keeps what it measured up to its rung (score, epochs, its parameter counts and bytes at the rung)
        "metrics": outcome.metrics if outcome.status != "error" else {},
        "sizes": outcome.sizes if outcome.status != "error" else {},
        "started_at": outcome.started_at,
        "finished_at": outcome.finished_at,
        "seconds": outcome.seconds,
        "checkpoint_path": checkpoint_path(outcome, checkpoint_dir),
        "history": outcome.history,
        "device": outcome.device,
        "node": outcome.node,
        **{c: getattr(outcome, c) for c in PLACEMENT_COLUMNS},
        "class_metrics": class_metric_rows(outcome.class_metrics) if outcome.status != "error" else [],
        "latency": list(outcome.latency) if outcome.finished else [],
    }
