"""The steps that build a sweep's assets before its trial stages run, in the trial stages' shape (``name``,
``phase``, :meth:`check_resources`, then :meth:`build` instead of plan and run): the assets the spec asks for
(``sweep.assets``: the small teacher, augmented data) and the study stages of "whole study" tasks (``sweep.study``:
teacher, bootstrap, soft_targets, each planned from its ``stages`` rows and run as Ray tasks). Each returns the
assets it built, by task; the driver merges them in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from sweep.assets import TaskAssets, TaskDataCache, materialize_assets, teacher_baselines
from sweep.spec import SweepSpec
from sweep.study import check_stage_resources, run_study


class AssetStep:
    """One step that builds assets. ``fails_sweep``: a user error in it ends the sweep ``failed`` (else the sweep
    stays ``interrupted``, to be resumed)."""

    name: ClassVar[str]
    phase: ClassVar[str]
    fails_sweep: ClassVar[bool] = False

    def check_resources(self, spec: SweepSpec) -> None:
        """Right after Ray starts: the step's tasks must fit on one node (``sweep.tuner.ResourceError``)."""

    def build(self, spec: SweepSpec, store, data: TaskDataCache, say: Callable[[str], None]) -> dict[str, TaskAssets]:
        raise NotImplementedError


class SpecAssets(AssetStep):
    """The small teacher and the bootstrap data of the tasks that are not whole studies; reused on resume."""

    name = "assets"
    phase = "building the assets"

    def build(self, spec, store, data, say):
        return materialize_assets(spec, say, data)


class StudyStages(AssetStep):
    """The teacher, bootstrap and soft-target stages of "whole study" tasks (``sweep.study``)."""

    name = "study"
    phase = "the study stages"
    fails_sweep = True

    def check_resources(self, spec: SweepSpec) -> None:
        check_stage_resources(spec)

    def build(self, spec, store, data, say):
        return run_study(spec, store, data, say)


def record_baselines(spec: SweepSpec, store, assets: dict[str, TaskAssets]) -> None:
    """The teachers' scores and sizes, and the user's own reference points of each task (its ``baselines``)."""
    for row in teacher_baselines(assets):
        store.record_teacher(
            spec.name,
            row["task"],
            row["name"],
            row["score"],
            row.get("accuracy"),
            row.get("f1"),
            row["params"],
            row["disk_bytes"],
            row.get("gzip_bytes"),
            note=row.get("note"),
        )
    for task, t in spec.tasks.items():
        for b in t.get("baselines") or []:
            store.record_baseline(
                spec.name,
                task,
                b["name"],
                b["score"],
                params=b.get("params"),
                disk_bytes=b.get("disk_bytes"),
                gzip_bytes=b.get("gzip_bytes"),
                source="spec",
                note=b.get("note"),
            )
