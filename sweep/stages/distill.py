"""The distillation stage: the spec's grid of students. Each grid point the database has no finished row for runs as
one Tune trial.

With the spec's ``scheduler: pareto_halving`` the trials run under :class:`sweep.halving_scheduler.ParetoHalvingScheduler`
(a trial dominated at a rung stops there and is recorded ``stopped``, which a resume does not run again), and with its
``seeds: first`` one seed per configuration runs first, the other seeds afterwards only for the configurations near
the frontier (:func:`more_seeds`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from db.store import TrialRecord
from sweep.assets import prepare_for_trials
from sweep.halving_scheduler import HalvingRun, ParetoHalvingScheduler
from sweep.pareto_halving import HalvingSettings, near_front, rungs_for
from sweep.records import common_fields
from sweep.spec import SweepSpec
from sweep.stages.base import Stage, StagePlan, StageResult, StageRun, TuneRun
from trainables.trial import RUNGS_KEY, DistillTrial, TrialOutcome

ENDED = ("finished", "stopped")  # under a scheduler: what a resume does not run again
FIRST_SEEDS, MORE_SEEDS = "first seeds", "more seeds"  # StagePlan.inputs with `seeds: first`


def _plan(todo: list, total: int, ended: str = "already finished", inputs: str | None = None) -> StagePlan:
    """The stage's plan with its headline ("18 distillation trials of the first seed, 3 already finished or
    stopped")."""
    what = "distillation trials of the first seed" if inputs == FIRST_SEEDS else "distillation trials"
    return StagePlan(
        todo, remaining=len(todo), total=total, inputs=inputs, headline=f"{total} {what}, {total - len(todo)} {ended}"
    )


def first_seed(spec: SweepSpec, trial: DistillTrial) -> int:
    """The first seed of the trial's task's grid: the one every configuration runs with `seeds: first`."""
    return spec.grid_for(trial.task)["seeds"][0]


def more_seeds(spec: SweepSpec, store, trials: list[DistillTrial]) -> list[DistillTrial]:
    """The trials of other seeds than the first whose configuration's first-seed trial finished within
    ``seeds_margin`` points of its task's frontier (dev score vs parameters, among the finished first-seed trials)."""
    scores = store.trial_scores(spec.name, DistillTrial.stage) if store is not None else {}
    firsts = {t.trial_id: t for t in trials if t.seed == first_seed(spec, t)}
    chosen: set[str] = set()
    for task in {t.task for t in firsts.values()}:
        points = {
            tid: (float(s[1]), float(s[2]))
            for tid, t in firsts.items()
            if t.task == task and (s := scores.get(tid)) and s[0] == "finished" and None not in s[1:]
        }
        chosen |= near_front(points, spec.scheduler.seeds_margin) if points else set()
    return [
        t
        for t in trials
        if t.seed != first_seed(spec, t) and dataclasses.replace(t, seed=first_seed(spec, t)).trial_id in chosen
    ]


class DistillStage(Stage):
    trial = DistillTrial
    name = DistillTrial.stage
    label = "distillation"
    title = "distill"

    def plan(self, spec: SweepSpec, store, assets=None) -> StagePlan:
        trials = spec.distill_trials()
        halving = spec.scheduler
        if halving is None:
            done = store.finished_trial_ids(spec.name, stage=self.name) if store is not None else set()
            todo = [t for t in trials if t.trial_id not in done]
            return _plan(todo, len(trials))
        done = store.trial_ids_with_status(spec.name, ENDED, stage=self.name) if store is not None else set()
        if halving.seeds == "all":
            todo = [t for t in trials if t.trial_id not in done]
            return _plan(todo, len(trials), "already finished or stopped")
        firsts = [t for t in trials if t.seed == first_seed(spec, t)]
        todo = [t for t in firsts if t.trial_id not in done]
        if todo or store is None:
            return _plan(todo, len(firsts), "already finished or stopped", FIRST_SEEDS)
        chosen = more_seeds(spec, store, trials)
        todo = [t for t in chosen if t.trial_id not in done]
        return _plan(todo, len(firsts) + len(chosen), "already finished or stopped", MORE_SEEDS)

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
        fields = common_fields(sweep, trial, outcome, checkpoint_dir)
        stopped_at = reason = None
        if isinstance(about, HalvingRun):  # under the scheduler: its decisions go into the row
            about.count_epochs(outcome, trial.trial_id)
            fields["history"] = about.annotate(trial.trial_id, fields["history"])
            if outcome.stopped:
                stopped_at = about.stopped_at(trial.trial_id) or outcome.metrics.get("epochs")
                reason = about.reason(trial.trial_id)
        return TrialRecord(
            **fields,
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
            stopped_at_rung=stopped_at,
            stop_reason=reason,
        )

    def run(self, run: StageRun, plan: StagePlan) -> StageResult:
        """Prepare one dataset per (task, encoding) the trials need, put each in Ray's object store once, and run
        the plan through Tune as the experiment ``<prefix>distill`` (the runner's ``run<N>-``); with `seeds: first`,
        then the other seeds of the configurations near the frontier as ``<prefix>distill-seeds``. Ray must be
        initialised."""
        halving = run.spec.scheduler
        if halving is None:
            return self.fit(run, plan.todo, "distill")
        if plan.inputs == MORE_SEEDS:  # the first seeds ran before: the added seeds train to the end
            return self.fit(run, plan.todo, "distill-seeds")
        result = self.fit(run, plan.todo, "distill", halving)
        if plan.inputs != FIRST_SEEDS or result.stopped_early:
            return result
        run.database.sync(run.store, run.say)
        trials = run.spec.distill_trials()
        done = run.store.trial_ids_with_status(run.spec.name, ENDED, stage=self.name)
        todo = [t for t in more_seeds(run.spec, run.store, trials) if t.trial_id not in done]
        configs = len({t.trial_id for t in trials if t.seed == first_seed(run.spec, t)})
        run.say(
            f"distill: seeds where they matter: {len(todo)} more trial(s) for the configurations within"
            f" {halving.seeds_margin:g} point{'' if halving.seeds_margin == 1 else 's'} of the frontier"
            f" (of {configs} configurations)"
        )
        if todo:
            result.add(self.fit(run, todo, "distill-seeds"))
        return result

    def fit(self, run: StageRun, todo: list[DistillTrial], experiment: str, halving: HalvingSettings | None = None):
        import ray
        from ray import tune

        spec = run.spec
        run.say("preparing data (encoded once per task and encoding, shared with all trials)")
        prepared = prepare_for_trials(spec, todo, run.assets, run.data)
        boot_keys = {t.data_key for t in todo if t.bootstrap}
        # bootstrapping trials share one train+bootstrap split instead of concatenating their own
        # (Prepared.share_bootstrap)
        refs = {key: ray.put(p.share_bootstrap() if key in boot_keys else p) for key, p in prepared.items()}

        def trial_of(tune_trial) -> DistillTrial:
            return DistillTrial.from_dict(tune_trial.config["trial"])

        size_measure = spec.compress["size_measure"] if spec.compress else "gzip_bytes"
        param_space = {"trial": tune.grid_search([t.to_dict() for t in todo])}
        scheduler = halving_run = None
        if halving is not None:
            halving_run = HalvingRun(
                halving, trial_sizes(todo, prepared), {t.trial_id: t.task for t in todo}, spec.training["max_epochs"]
            )
            replayed = halving_run.replay(run.store.rung_entries(spec.name, self.name) if run.store else [])
            scheduler = ParetoHalvingScheduler(halving_run, lambda t: trial_of(t).trial_id)
            rungs = rungs_for(halving, spec.training["max_epochs"])
            param_space[RUNGS_KEY] = list(rungs)
            run.say(
                f"distill: pareto_halving: rungs at epoch(s) {', '.join(map(str, rungs)) or 'none'}, eta"
                f" {halving.eta}: a trial goes on past a rung if it ranks in the top 1/{halving.eta} by (dev score,"
                f" parameters)" + (f"; {replayed} rung result(s) of earlier runs replayed" if replayed else "")
            )
        tune_run = TuneRun(
            self,
            run,
            trial_of,
            len(todo),
            size_measure,
            about=halving_run,
            why_stopped=(lambda t: halving_run.reason(t.trial_id)) if halving_run else None,
        )
        tune_run.fit(
            tune.with_parameters(self.trainable(), data=refs),
            experiment,
            param_space=param_space,
            max_concurrent=spec.resources["max_concurrent"],
            scheduler=scheduler,
        )
        result = tune_run.result(len(todo))
        if halving_run is not None:
            run.say(f"distill: pareto_halving: {halving_run.summary()}")
        return result


def trial_sizes(trials: list[DistillTrial], prepared: dict) -> dict[str, float]:
    """Each trial's parameter count, exact before training (the student counted on PyTorch's meta device): the size
    the scheduler ranks by."""
    # torch: loaded only where a scheduled run starts (the data preparation before it has loaded it already)
    from featherweight_core.pipeline.run import student_config_for
    from featherweight_core.students.measure import student_param_counts

    out: dict[str, float] = {}
    counted: dict[tuple, float] = {}
    for t in trials:
        key = (t.data_key, t.arch, t.pooling)
        if key not in counted:
            p = prepared[t.data_key]
            counted[key] = float(
                student_param_counts(student_config_for(p, t.arch, pooling=t.pooling), p.num_embeddings)["total"]
            )
        out[t.trial_id] = counted[key]
    return out
