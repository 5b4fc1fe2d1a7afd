"""The driver's walk over the registered stages (``sweep.stages.registry``): their checks before Ray starts and right
after, their plans from the database, the assets, then each trial stage in order, stopping the sweep where a stage
was stopped (Ctrl-C, SIGTERM) with the message that says how far it got and how to resume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from featherweight_core.errors import UserError
from sweep.assets import TaskAssets, TaskDataCache
from sweep.spec import SweepSpec
from sweep.stages.base import Stage, StagePlan, StageResult, StageRun
from sweep.stages.registry import ASSET_STEPS, STAGES
from sweep.stages.study_stages import record_baselines
from sweep.stopping import StageStopped, how_stopped, resume_command


class Tally(Protocol):
    """What the walk reports to (the runner's ``SweepOutcome``)."""

    status: str
    message: str | None
    phase: str

    def add(self, stage: str, r: StageResult) -> None: ...


def enabled_stages(spec: SweepSpec) -> list[Stage]:
    return [s for s in STAGES if s.enabled(spec)]


def check_stages(spec: SweepSpec) -> None:
    """Before Ray starts and anything is written."""
    for stage in enabled_stages(spec):
        stage.check(spec)


def check_stage_resources(spec: SweepSpec) -> None:
    """Right after Ray starts, before anything is written: every step's and stage's tasks fit on one node."""
    for step in ASSET_STEPS:
        step.check_resources(spec)
    for stage in enabled_stages(spec):
        stage.check_resources(spec)


@dataclass
class StartPlan:
    """The stages' plans before Ray starts (by stage name): the first stages', up to the first with anything left to
    run (the later ones plan once it ran). ``done``: what a resume with nothing left says after ``sweep NAME:
    nothing to do (`` (None when something is left, or without a database); ``headlines``: what the driver says
    about the planned stages once Ray has started."""

    plans: dict[str, StagePlan]
    done: str | None
    headlines: list[str]


def plan_at_start(spec: SweepSpec, store) -> StartPlan:
    """Plan from the database (``store``; None when there is none yet: the first stage's plan alone)."""
    stages = enabled_stages(spec)
    plans: dict[str, StagePlan] = {}
    for stage in stages:
        plan = plans[stage.name] = stage.plan(spec, store)
        if plan.pending or store is None:
            break
    done = None
    if store is not None and all(s.name in plans and not plans[s.name].pending for s in stages):
        notes = [s.done_note(plans[s.name]) for s in stages]
        done = f"{notes[0]}{''.join(' and ' + n for n in notes[1:])} already finished"
    headlines = [p.headline for p in plans.values() if p.headline]
    return StartPlan(plans, done, headlines)


def build_assets(
    spec: SweepSpec, store, data: TaskDataCache, say: Callable[[str], None], tally: Tally
) -> dict[str, TaskAssets]:
    """Every asset step in order, then the stages' checks against the assets (a grid that does not fit a built
    teacher fails before anything trains), then the teachers' and the spec's baselines."""
    assets: dict[str, TaskAssets] = {}
    for step in ASSET_STEPS:
        tally.phase = step.phase
        try:
            assets.update(step.build(spec, store, data, say))
        except UserError as e:
            if step.fails_sweep:
                tally.status, tally.message = "failed", str(e)
            raise
    try:
        for stage in enabled_stages(spec):
            stage.check_assets(spec, assets)
    except UserError as e:
        tally.status, tally.message = "failed", str(e)
        raise
    record_baselines(spec, store, assets)
    return assets


def run_stages(run: StageRun, plans: dict[str, StagePlan], tally: Tally) -> None:
    """Each trial stage in order. A stage planned before the assets existed, or one that reads an earlier stage's
    rows after that stage ran trials, is planned again first."""
    earlier_ran = False
    for stage in enabled_stages(run.spec):
        plan = plans.get(stage.name)
        if plan is None or plan.provisional or (earlier_ran and stage.reads_earlier_stages):
            plan = stage.plan(run.spec, run.store, run.assets)
        if plan.remaining:
            run_stage(stage, run, plan, tally)
            earlier_ran = True


def run_stage(stage: Stage, run: StageRun, plan: StagePlan, tally: Tally) -> StageResult:
    """Run ``plan``, count what ran, stop the sweep when Tune returned early (:class:`StageStopped`, whose message
    says how far the stage got and how to resume), and apply what the journal holds (later stages plan from every
    row)."""
    tally.phase = stage.phase
    r = stage.run(run, plan)
    tally.add(stage.name, r)
    if r.stopped_early:
        raise StageStopped(
            f"{how_stopped()} after {r.ran} of {r.planned} {stage.label} trials;"
            f" `{resume_command(run.spec)}` runs the rest"
        )
    run.database.sync(run.store, run.say)
    return r
