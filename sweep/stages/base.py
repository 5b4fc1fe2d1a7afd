"""The stage contract: what every trial stage of a sweep implements, and the one Tune run they all share.

A stage (:class:`Stage`) is one kind of trial the sweep runs through Ray Tune (``distill``, ``compress``,
``teacher_compression``; its ``name`` is the ``stage`` column of its ``trial_results`` rows). It says

* its trial class (``trial``, beside its trainable in ``trainables``: ids, configs, ``describe``),
* which section of the spec switches it on (``section``, validated by its module in ``sweep/sections/``;
  ``None``: always on),
* what is left to run, from the database (:meth:`Stage.plan`, a :class:`StagePlan`): trial ids are deterministic, so
  a resume runs exactly the trials without a finished row,
* how to run that (:meth:`Stage.run`, normally through :func:`run_tune`: tuner, database callback with its journal,
  progress lines), with which trainable (:meth:`Stage.trainable`) and which database row each outcome becomes
  (:meth:`Stage.record`),
* the spec's resource keys its trials take their CPU/GPU share from (``resource_keys``), checked against the Ray
  cluster right after Ray starts (:meth:`Stage.check_resources`),
* its ``title`` in progress lines and its ``label`` in stop messages.

The driver (``sweep.stages.run``) walks the registered stages (``sweep.stages.registry``) in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sweep.assets import TaskAssets, TaskDataCache
from sweep.callback import DatabaseCallback, ProgressReporter
from sweep.database import SweepDatabase
from sweep.spec import SweepSpec
from sweep.tuner import build_tuner
from trainables.latency import measure_config


@dataclass
class StageResult:
    ran: int = 0  # trials that ended (finished, failed, or stopped by a scheduler)
    failed: int = 0
    db_write_ms: list[float] = field(default_factory=list)
    first_error: str | None = None
    planned: int = 0  # trials the stage set out to run
    stopped: int = 0  # trials a scheduler stopped at a rung (counted in ran)

    @property
    def stopped_early(self) -> bool:
        """Tune returned before every planned trial ended: it stops gracefully on Ctrl-C (SIGINT) and returns."""
        return self.ran < self.planned

    def add(self, other: StageResult) -> None:
        """Count ``other`` (a later Tune run of the same stage) in."""
        self.ran += other.ran
        self.failed += other.failed
        self.db_write_ms += other.db_write_ms
        self.first_error = self.first_error or other.first_error
        self.planned += other.planned
        self.stopped += other.stopped


@dataclass
class StagePlan:
    """What a stage has left to run. ``todo``: the units its run takes (trials, or compression parents);
    ``remaining``: trials left; ``total``: trials of the whole stage; ``provisional``: planned before the assets
    exist, only to tell whether anything is left (planned again once they do); ``unplanned``: something is left that
    can be planned only once the assets exist (a teacher still to build); ``inputs``: what the run needs besides
    ``todo`` (the teachers' directories); ``headline``: what the driver says about the stage once Ray has started
    (``None``: nothing)."""

    todo: list = field(default_factory=list)
    remaining: int = 0
    total: int = 0
    provisional: bool = False
    unplanned: bool = False
    inputs: Any = None
    headline: str | None = None

    @property
    def pending(self) -> bool:
        return self.remaining > 0 or self.unplanned


@dataclass
class StageRun:
    """What a stage's run gets from the driver: the spec, the sweep's database and its one open store, the built
    assets and task data, where to print, and this run's Tune experiment prefix (``run<N>-``)."""

    spec: SweepSpec
    database: SweepDatabase
    store: Any
    assets: dict[str, TaskAssets]
    data: TaskDataCache
    say: Callable[[str], None]
    prefix: str = ""

    @property
    def tune_dir(self) -> Path:
        return self.spec.storage / self.spec.name / "tune"


class Stage:
    """One trial stage. Subclasses set the class attributes and implement :meth:`plan`, :meth:`run`,
    :meth:`trainable` and :meth:`record`; the checks default to none."""

    trial: ClassVar[type]  # its trial dataclass (``trainables``): ``from_dict``, ``to_dict``, ``trial_id``, ``stage``
    name: ClassVar[str]  # the trial_results.stage value: ``trial.stage``
    section: ClassVar[str | None] = None  # the spec section that switches the stage on; None: always on
    label: ClassVar[str]  # "distillation": stop messages and the stage's phase
    title: ClassVar[str]  # "distill": the first word of its progress lines
    resource_keys: ClassVar[tuple[str, str]] = ("cpus_per_trial", "gpus_per_trial")
    reads_earlier_stages: ClassVar[bool] = False  # planned again after an earlier stage ran trials

    @property
    def phase(self) -> str:
        """``"the distillation stage"``: where a sweep was when it stopped."""
        return f"the {self.label} stage"

    def enabled(self, spec: SweepSpec) -> bool:
        return self.section is None or bool(getattr(spec, self.section))

    def check(self, spec: SweepSpec) -> None:
        """Before Ray starts and anything is written: one error line for what the spec gets wrong."""

    def check_resources(self, spec: SweepSpec) -> None:
        """Right after Ray starts: the trials' CPU/GPU shares must fit on one node (``sweep.tuner.ResourceError``)."""

    def check_assets(self, spec: SweepSpec, assets: dict[str, TaskAssets]) -> None:
        """Once the assets exist, before any stage trains: what only they tell (a grid against a built teacher)."""

    def plan(self, spec: SweepSpec, store, assets: dict[str, TaskAssets] | None = None) -> StagePlan:
        """What is left to run: every trial without a finished row in ``store`` (every trial without a store).
        ``assets`` is ``None`` before they are built (the plan may then be provisional)."""
        raise NotImplementedError

    def done_note(self, plan: StagePlan) -> str:
        """How the stage appears in a resume's "nothing to do" line."""
        return self.phase

    def run(self, run: StageRun, plan: StagePlan) -> StageResult:
        raise NotImplementedError

    def trainable(self) -> Callable:
        """The Tune trainable of the stage's trials (``trainables``; imported when a run needs it: it loads torch)."""
        raise NotImplementedError

    def record(self, sweep: str, trial, outcome, checkpoint_dir: str | None, about: Any = None):
        """A trial and its outcome -> its database row: ``sweep.records.common_fields`` plus the columns only this
        stage fills. ``about``: what the row copies from outside the trial (a compression parent's row, a teacher's
        shape)."""
        raise NotImplementedError


class TuneRun:
    """The database callback and the progress lines of one stage's run, shared by the Tune experiments it fits
    (one per compression parent, one per wave): each ended trial is written to the database (or its journal while
    a reader holds the file) as :meth:`Stage.record` makes it, and printed as a progress line titled ``title`` (the
    stage's own by default)."""

    def __init__(
        self,
        stage: Stage,
        run: StageRun,
        trial_of: Callable,
        total: int,
        size_measure: str,
        about: Any = None,
        title: str | None = None,
        why_stopped: Callable[[Any], str | None] | None = None,
    ) -> None:
        db = run.database
        self.stage, self.run = stage, run
        self.db = DatabaseCallback(
            db.path, trial_of, lambda t, o, c: stage.record(db.name, t, o, c, about), db.journal_path
        )
        self.progress = ProgressReporter(total, title or stage.title, trial_of, size_measure, run.say, why_stopped)

    def fit(
        self,
        trainable,
        experiment: str,
        *,
        param_space: dict[str, Any],
        resources: dict[str, Any] | None = None,
        search_alg=None,
        num_samples: int = 1,
        max_concurrent: int | None = None,
        scheduler=None,
    ) -> None:
        """Run the Tune experiment ``<prefix><experiment>``; Tune returns early on Ctrl-C (see :meth:`result`).
        ``scheduler``: a Tune trial scheduler that may stop trials early (None: every trial runs to its end)."""
        run = self.run
        tuner = build_tuner(
            trainable,
            resources=resources or run.spec.resources,
            param_space={**param_space, **measure_config(run.spec, run.assets or {}, run.data)},
            storage_path=self.run.tune_dir,
            name=f"{self.run.prefix}{experiment}",
            callbacks=[self.db, self.progress],
            search_alg=search_alg,
            num_samples=num_samples,
            max_concurrent=max_concurrent,
            resource_keys=self.stage.resource_keys,
            scheduler=scheduler,
        )
        tuner.fit()

    def result(self, planned: int) -> StageResult:
        """How far the experiments got out of ``planned`` trials (fewer ended: stopped early)."""
        p = self.progress
        return StageResult(
            p.done,
            p.failed,
            [s * 1000 for s in self.db.write_seconds],
            p.first_error,
            planned=planned,
            stopped=p.stopped,
        )
