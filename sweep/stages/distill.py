"""The distillation stage: the spec's grid of students. Each grid point the database has no finished row for runs as
one Tune trial."""

from __future__ import annotations

from collections.abc import Callable

from db.store import TrialRecord
from sweep.assets import prepare_for_trials
from sweep.records import common_fields
from sweep.spec import SweepSpec
from sweep.stages.base import Stage, StagePlan, StageResult, StageRun, TuneRun
from trainables.trial import DistillTrial, TrialOutcome


class DistillStage(Stage):
    trial = DistillTrial
    name = DistillTrial.stage
    label = "distillation"
    title = "distill"

    def plan(self, spec: SweepSpec, store, assets=None) -> StagePlan:
        trials = spec.distill_trials()
        done = store.finished_trial_ids(spec.name, stage=self.name) if store is not None else set()
        todo = [t for t in trials if t.trial_id not in done]
        return StagePlan(todo, remaining=len(todo), total=len(trials))

    def headline(self, plan: StagePlan) -> str:
        return f"{plan.total} distillation trials, {plan.total - plan.remaining} already finished"

    def done_note(self, plan: StagePlan) -> str:
        return f"{plan.total} distillation trials"

    def trainable(self) -> Callable:
        from trainables.distill import distill_trainable  # loads torch: only where trials run

        return distill_trainable

    def record(
        self, sweep: str, trial: DistillTrial, outcome: TrialOutcome, checkpoint_dir: str | None, about=None
    ) -> TrialRecord:
        config = trial.to_dict()
        if outcome.finished:
            config["resolved"] = outcome.resolved
        return TrialRecord(
            **common_fields(sweep, trial, outcome, checkpoint_dir),
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

    def run(self, run: StageRun, plan: StagePlan) -> StageResult:
        """Prepare one dataset per (task, encoding) the trials need, put each in Ray's object store once, and run
        the plan through Tune as the experiment ``<prefix>distill`` (the runner's ``run<N>-``). Ray must be
        initialised."""
        import ray
        from ray import tune

        spec, todo = run.spec, plan.todo
        run.say("preparing data (encoded once per task and encoding, shared with all trials)")
        prepared = prepare_for_trials(spec, todo, run.assets, run.data)
        boot_keys = {t.data_key for t in todo if t.bootstrap}
        # bootstrapping trials share one train+bootstrap split instead of concatenating their own
        # (Prepared.share_bootstrap)
        refs = {key: ray.put(p.share_bootstrap() if key in boot_keys else p) for key, p in prepared.items()}

        def trial_of(tune_trial) -> DistillTrial:
            return DistillTrial.from_dict(tune_trial.config["trial"])

        size_measure = spec.compress["size_measure"] if spec.compress else "gzip_bytes"
        tune_run = TuneRun(self, run, trial_of, len(todo), size_measure)
        tune_run.fit(
            tune.with_parameters(self.trainable(), data=refs),
            "distill",
            param_space={"trial": tune.grid_search([t.to_dict() for t in todo])},
            max_concurrent=spec.resources["max_concurrent"],
        )
        return tune_run.result(len(todo))
