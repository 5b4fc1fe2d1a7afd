"""Stage 1: the distillation grid. Each grid point the database has no finished row for runs as one Tune trial."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sweep.assets import TaskAssets, TaskDataCache, prepare_for_trials
from sweep.callback import DatabaseCallback, ProgressReporter
from sweep.records import distill_record
from sweep.spec import SweepSpec
from sweep.tuner import build_tuner
from trainables.trial import DistillTrial


@dataclass
class StageResult:
    ran: int = 0  # trials that ended (finished or failed)
    failed: int = 0
    db_write_ms: list[float] = field(default_factory=list)
    first_error: str | None = None
    planned: int = 0  # trials the stage set out to run

    @property
    def stopped_early(self) -> bool:
        """Tune returned before every planned trial ended: it stops gracefully on Ctrl-C (SIGINT) and returns."""
        return self.ran < self.planned


def run_distill_stage(
    spec: SweepSpec,
    todo: list[DistillTrial],
    assets: dict[str, TaskAssets],
    data: TaskDataCache,
    say: Callable[[str], None],
    prefix: str = "",
) -> StageResult:
    """Prepare one dataset per (task, encoding) the trials need, put each in Ray's object store once, and run
    ``todo`` through Tune as the experiment ``<prefix>distill`` (the runner's ``run<N>-``). Ray must be
    initialised."""
    import ray
    from ray import tune

    from trainables.distill import distill_trainable

    say("preparing data (encoded once per task and encoding, shared with all trials)")
    prepared = prepare_for_trials(spec, todo, assets, data)
    boot_keys = {t.data_key for t in todo if t.bootstrap}
    # bootstrapping trials share one train+bootstrap split instead of concatenating their own (Prepared.share_bootstrap)
    refs = {key: ray.put(p.share_bootstrap() if key in boot_keys else p) for key, p in prepared.items()}

    def trial_of(tune_trial) -> DistillTrial:
        return DistillTrial.from_dict(tune_trial.config["trial"])

    size_measure = spec.compress["size_measure"] if spec.compress else "gzip_bytes"
    db = DatabaseCallback(
        spec.database, trial_of, lambda t, o, c: distill_record(spec.name, t, o, c), spec.journal_path
    )
    progress = ProgressReporter(len(todo), "distill", trial_of, size_measure, say)
    tuner = build_tuner(
        tune.with_parameters(distill_trainable, data=refs),
        resources=spec.resources,
        param_space={"trial": tune.grid_search([t.to_dict() for t in todo])},
        storage_path=spec.storage / spec.name / "tune",
        name=f"{prefix}distill",
        callbacks=[db, progress],
        max_concurrent=spec.resources["max_concurrent"],
    )
    tuner.fit()
    return StageResult(
        progress.done, progress.failed, [s * 1000 for s in db.write_seconds], progress.first_error, planned=len(todo)
    )
