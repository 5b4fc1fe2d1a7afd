"""What trials train on, built on the driver through the core APIs: the teacher and bootstrap data a spec asks
for outside the study stages (``featherweight_core.teacher`` / ``augment``), then one ``Prepared`` dataset per
(task, encoding) (``featherweight_core.pipeline.prepare``), and the teachers as measured baseline rows. Every teacher labels
in the ``soft_targets`` stage (:mod:`sweep.study`); ``prepare()`` here only reads the soft targets it stored.

Everything built lands under ``<storage>/<sweep>/assets`` and is reused on resume.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featherweight_core.data.loading import load_task_data
from featherweight_core.data.taskdata import TaskData
from featherweight_core.pipeline.prepare import DEFAULT_CACHE_DIR, Prepared, prepare
from featherweight_core.teacher import augment, smallbert
from featherweight_core.teacher.loading import teacher_baseline
from featherweight_core.teacher.outputs import TeacherOutputs, read_teacher_outputs
from featherweight_core.teacher.softtargets import SoftTargetStore
from sweep.spec import SweepSpec
from trainables.trial import data_key

log = logging.getLogger("featherweight.sweep")


@dataclass
class TaskAssets:
    teacher: str | None = None  # fine-tuned teacher directory
    bootstrap: str | None = None  # augmented-data file
    # the soft-target store the soft_targets stage filled (sweep.study); None: prepare()'s own, which labels itself
    soft_targets: str | None = None
    # a teacher known by its outputs only: the files (resolved), their layout, whether uncovered training rows are
    # allowed, and its baseline row once the soft_targets stage has scored the file on dev (None: dev not covered)
    outputs: list[str] | None = None
    outputs_layout: str = "auto"
    allow_missing: bool = False
    baseline: dict[str, Any] | None = None

    def teacher_outputs(self, task) -> TeacherOutputs | None:
        """The file teacher's outputs read for ``task`` (a TaskSpec; memoised on the files' content), or None."""
        return read_teacher_outputs(self.outputs, task, self.outputs_layout) if self.outputs else None


class TaskDataCache:
    """Each task's data loaded at most once per driver process."""

    def __init__(self, spec: SweepSpec, say: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self.say = say
        self._data: dict[str, TaskData] = {}

    def __call__(self, task: str) -> TaskData:
        if task not in self._data:
            t = self.spec.tasks[task]
            data = load_task_data(self.spec.task_spec(task), t["data"], **(t["data_options"] or {}))
            if self.say is not None and data.report.skipped:  # malformed rows are counted and reported, not hidden
                self.say(f"{task}: {data.report}")
            self._data[task] = data
        return self._data[task]


def plain_assets(spec: SweepSpec, task: str) -> TaskAssets:
    """Where the teacher and bootstrap data of a task outside the study stages are (built or not): a teacher
    directory as given, ``small`` under ``assets/<task>/teacher``, generated bootstrap data under
    ``assets/<task>/bootstrap.parquet``, an augmented file as given."""
    t = spec.tasks[task]
    root = spec.storage / spec.name / "assets"
    a = TaskAssets()
    outputs = spec.file_teacher(task)
    if outputs is not None:
        files = outputs["outputs"] if isinstance(outputs["outputs"], list) else [outputs["outputs"]]
        a.outputs = [str(Path(f).expanduser().resolve()) for f in files]
        a.outputs_layout, a.allow_missing = outputs["layout"], outputs["allow_missing"]
    elif t["teacher"] == "small":
        a.teacher = str(root / task / "teacher")
    elif t["teacher"]:
        a.teacher = str(Path(t["teacher"]).expanduser().resolve())
    b = t["bootstrap"]
    if isinstance(b, dict):
        a.bootstrap = str(root / task / "bootstrap.parquet")
    elif b:
        a.bootstrap = str(Path(b).expanduser().resolve())
    return a


def driver_soft_targets(spec: SweepSpec) -> Path:
    """The soft-target store of the teachers of tasks outside the study stages: ``<cache_dir>/softtargets``, the
    driver's cache, shared by every sweep that uses the same cache (the store ``prepare()`` defaults to)."""
    return Path(spec.raw["cache_dir"] or DEFAULT_CACHE_DIR) / "softtargets"


def materialize_assets(spec: SweepSpec, say: Callable[[str], None], data: TaskDataCache) -> dict[str, TaskAssets]:
    """Build what the spec asks to be built (the small teacher, bootstrap data) for the tasks outside the study
    stages, on the driver; idempotent, reused on resume. Their teachers label in the ``soft_targets`` stage
    (:mod:`sweep.study`), which fills in ``soft_targets``."""
    assets: dict[str, TaskAssets] = {}
    root = spec.storage / spec.name / "assets"
    for tname, t in spec.tasks.items():
        if spec.is_study(tname):  # built by the stages of sweep.study
            continue
        a = plain_assets(spec, tname)
        if t["teacher"] == "small" and not (Path(a.teacher) / "config.json").is_file():
            say(f"building the small teacher for {tname} in {a.teacher}")
            smallbert.build_demo_teacher(data(tname), Path(a.teacher))
        b = t["bootstrap"]
        if isinstance(b, dict) and not Path(a.bootstrap).is_file():
            say(f"generating bootstrap data for {tname} in {a.bootstrap}")
            cfg = augment.AugmentConfig(mode="embedding", **b)
            say(str(augment.augment_to_file(data(tname), Path(a.bootstrap), cfg, cache_dir=root / tname)))
        assets[tname] = a
    return assets


class LabelledOnly(SoftTargetStore):
    """The soft-target store the ``soft_targets`` stage filled: serves logits, never runs the teacher (a miss is a
    bug of the stage, not something to paper over on the driver)."""

    def _run_teacher(self, teacher_dir, texts, max_length):
        raise RuntimeError(
            f"soft targets of {len(texts)} rows missing from {self.root} for teacher {teacher_dir}:"
            " the soft_targets stage should have written them"
        )


def prepare_datasets(
    spec: SweepSpec,
    keys: Iterable[tuple[str, str, int | None, int]],
    assets: dict[str, TaskAssets],
    data: TaskDataCache,
) -> dict[str, Prepared]:
    """One ``Prepared`` per (task, embedding, vocab_size, emb_dim) in ``keys``, keyed by :func:`data_key`."""
    out: dict[str, Prepared] = {}
    cache = spec.raw["cache_dir"] or DEFAULT_CACHE_DIR
    for task, embedding, vocab_size, emb_dim in keys:
        key = data_key(task, embedding, vocab_size, emb_dim)
        if key in out:
            continue
        a = assets.get(task, TaskAssets())
        store = LabelledOnly(a.soft_targets) if a.soft_targets and a.teacher else None
        out[key] = prepare(
            spec.task_spec(task),
            None,
            embedding,
            emb_dim,
            vocab_size,
            spec.raw["bpemb_dir"],
            cache_dir=cache,
            task_data=data(task),
            teacher=a.teacher,
            bootstrap=a.bootstrap,
            store=store,
            teacher_outputs=a.teacher_outputs(spec.task_spec(task)),
            allow_missing=a.allow_missing,
        )
    return out


def prepare_for_trials(
    spec: SweepSpec, trials, assets: dict[str, TaskAssets] | None = None, data: TaskDataCache | None = None
) -> dict[str, Prepared]:
    """The datasets ``trials`` (DistillTrials) train on, keyed by their ``data_key``."""
    keys = [(t.task, t.embedding, t.vocab_size, t.emb_dim) for t in trials]
    return prepare_datasets(spec, keys, assets or {}, data or TaskDataCache(spec))


def teacher_baselines(assets: dict[str, TaskAssets]) -> list[dict[str, Any]]:
    """Each teacher directory as a measured baseline row (``task`` added), measured like every student; a file
    teacher's row as the soft_targets stage scored it on dev (its sizes as the spec gives them, else unknown)."""
    rows = []
    for task, a in assets.items():
        if a.baseline is not None:
            rows.append({"task": task, **a.baseline})
            continue
        if not a.teacher or not Path(a.teacher).is_dir():
            continue
        try:
            rows.append({"task": task, **teacher_baseline(a.teacher)})
        except Exception as e:  # a teacher without saved metrics still teaches; it just has no baseline row
            log.warning("no baseline row for teacher %s: %s", a.teacher, e)
    return rows


# ---- what a killed run leaves behind ---------------------------------------------------------------------------------

# Dot-named temporaries under <storage>/<sweep>/ that only a running writer uses: a directory or file being written
# atomically (``featherweight_core.atomic``: ``.NAME.<8 random>.tmp[.suffix]``, and ``.NAME.<8 random>.old`` during the
# swap), a small teacher being built (``.teacher.init<pid>``, ``featherweight_core.teacher.smallbert.build_demo_teacher``) and
# a running stage task's progress file (``.teacher-<fp>.progress``, ``.soft_targets-<fp>.progress``, sweep.study).
LEFTOVER = re.compile(r"^\..+\.(?:init(?P<pid>\d+)|[a-z0-9_]{8}\.(?:tmp|old)(?:\.[A-Za-z0-9]+)*|progress)$")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(sweep_dir: Path, say: Callable[[str], None] | None = None) -> list[Path]:
    """Remove the temporaries (:data:`LEFTOVER`) an earlier, killed run of the sweep left under ``sweep_dir`` (Tune's
    own experiment directories, ``tune/``, are left alone). Call it only while holding the sweep's driver lock
    (``sweep.runner.SweepLock``): no other driver of the sweep runs then, so no live writer owns them. A name that
    carries the pid of a process still alive on this machine is kept anyway. Returns what was removed."""
    removed: list[Path] = []
    if not sweep_dir.is_dir():
        return removed
    for root, dirs, files in os.walk(sweep_dir):
        here = Path(root)
        if here == sweep_dir:
            dirs[:] = [d for d in dirs if d != "tune"]
        for name in [*dirs, *files]:
            m = LEFTOVER.match(name)
            if not m or (m.group("pid") and pid_alive(int(m.group("pid")))):
                continue
            path = here / name
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                continue
            except OSError as e:
                log.warning("could not remove %s left by an earlier run: %s", path, e)
                continue
            removed.append(path)
        dirs[:] = [d for d in dirs if (here / d).is_dir()]  # not into what was just removed
    if removed and say is not None:
        names = ", ".join(str(p.relative_to(sweep_dir)) for p in removed[:3])
        more = f" and {len(removed) - 3} more" if len(removed) > 3 else ""
        say(f"removed {len(removed)} temporary file(s) an earlier, stopped run left: {names}{more}")
    return removed
