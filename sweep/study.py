"""One spec, the whole study: the stages a sweep runs before its distillation grid, each as Ray tasks.

For a task whose spec has a teacher mapping (``{model, finetune}``) or bootstrap settings with ``mode`` / ``mlm`` /
``shards`` (:meth:`sweep.spec.SweepSpec.is_study`), in this order, every task of a stage at once:

* ``teacher``: fine-tune ``model`` (``small``: the project's small offline BERT, built first) as one Ray task with
  ``resources.teacher_cpus`` / ``teacher_gpus``, into ``<storage>/<sweep>/assets/<task>/teacher-<fp>/`` (written
  atomically by :func:`featherweight_core.teacher.finetune.finetune_teacher`). A directory without ``finetune`` is already a
  fine-tuned teacher: nothing to build.
* ``bootstrap``: word vectors on the task's training text (one Ray task, cached), then ``shards`` Ray tasks, each
  augmenting a contiguous range of training rows (:func:`featherweight_core.teacher.augment.augment_to_file` with ``rows``;
  every row draws from the random stream seeded by (seed, row index), so the output does not depend on the number of
  shards), each shard its own file; the driver concatenates them in order, applies ``ratio``, and writes
  ``assets/<task>/bootstrap-<fp>.parquet`` atomically. Fill-mask runs its masked LM on the shard's device.
* ``soft_targets``: one Ray task (on a GPU when there is one) labels the train split and the bootstrap rows with the
  teacher into the soft-target store ``assets/softtargets``, the store ``prepare()`` then reads on the driver: the
  driver never runs the teacher.

A teacher known by its outputs only (``teacher: {outputs: FILE}``) runs no Ray task: its ``soft_targets`` stage
reads and matches the file on the driver (:mod:`sweep.outputs_stage`).

Every other task with a teacher (a teacher directory, ``small``: built on the driver by
:func:`sweep.assets.materialize_assets`, like plain bootstrap settings) goes through the same ``soft_targets``
stage, into the store ``prepare()`` used for them before, the driver's ``<cache_dir>/softtargets``
(:func:`sweep.assets.driver_soft_targets`): labels an earlier run or another sweep stored there are found, and its
Ray task runs on the driver's node, the one that has that cache.

Each stage's output is named by a fingerprint of what it depends on (task definition, data, the stage's settings,
the fingerprints upstream); an output that exists is not built again, so a resumed sweep never fine-tunes or labels
twice, and a killed bootstrap stage keeps its finished shards. Every stage is a row of the ``stages`` table
(``db/migrations/005_stages.sql``): ``running`` when it starts (a killed driver leaves it so), then ``finished``,
``cached`` or ``failed``. The storage must be a filesystem every Ray node shares: the tasks write there and the driver
reads what they wrote. What runs inside the Ray tasks is :mod:`sweep.study_tasks`.

``FEATHERWEIGHT_FAULT_STAGE=<stage>`` SIGKILLs the driver inside that stage (after its Ray tasks are submitted; in
the bootstrap stage once the first shard is done), to test that a resume picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featherweight_core.atomic import atomic_write
from featherweight_core.data.taskdata import DataError
from featherweight_core.errors import UserError
from featherweight_core.teacher.augment import META_KEY, read_augmented
from featherweight_core.teacher.softtargets import SoftTargetStore, teacher_fingerprint, texts_fingerprint
from sweep.assets import TaskAssets, TaskDataCache, driver_soft_targets, plain_assets
from sweep.outputs_stage import file_teacher_stage
from sweep.spec import SweepSpec
from sweep.study_tasks import label_task, last_progress, remote, shard_task, teacher_task, vectors_task
from sweep.tuner import ResourceError

STUDY_VERSION = 1  # part of every fingerprint: bump when a stage's output for the same inputs changes
FAULT_ENV = "FEATHERWEIGHT_FAULT_STAGE"
STAGES = ("teacher", "bootstrap", "soft_targets")
MAX_AUTO_SHARDS = 16
SOFT_TARGETS_DIR = "softtargets"
PROGRESS_EVERY_S = 60.0  # how often the driver says how a running stage is getting on


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps({"v": STUDY_VERSION, **obj}, sort_keys=True).encode()).hexdigest()[:16]


def _model_identity(model: str) -> str:
    """``small``, a hub id as is, or a local directory by content (a retrained model is a new fingerprint)."""
    path = Path(model).expanduser()
    if model == "small" or not path.is_dir():
        return model
    try:
        return f"dir:{teacher_fingerprint(path)}"
    except DataError:  # a model directory without weights the store knows: its resolved path
        return f"path:{path.resolve()}"


# ---- resources -------------------------------------------------------------------------------------------------------


def _cluster() -> tuple[dict[str, float], list[dict]]:
    import ray

    return ray.cluster_resources(), [n for n in ray.nodes() if n.get("Alive", True)]


def stage_gpus(spec: SweepSpec, key: str, cluster: dict[str, float], shards: int = 1, fill_mask: bool = True) -> float:
    """GPUs per Ray task of a stage: the spec's number, or ``auto``: teacher 1 when the cluster has a GPU; bootstrap
    (fill-mask only) the cluster's GPUs shared among the shards (at most 1 each)."""
    value = spec.resources[key]
    if value != "auto":
        return float(value)
    gpus = float(cluster.get("GPU", 0))
    if gpus <= 0:
        return 0.0
    if key == "teacher_gpus":
        return 1.0
    if not fill_mask:
        return 0.0
    return max(0.01, math.floor(min(1.0, gpus / max(shards, 1)) * 100) / 100)


def _on_driver_node(spec: SweepSpec) -> tuple[str, float, float, int]:
    """``(node id, CPUs, GPUs, torch threads)`` for a stage task that must run on the driver's node: ``teacher_cpus``
    and ``teacher_gpus`` capped at what that node has (``auto``: 1 GPU when it has one), so it never waits for a node
    that cannot take it, and the driver's own torch thread count: on a CPU the teacher's logits depend on it (in the
    last bits), and the driver labelled with it when it ran the teacher itself."""
    import ray
    import torch  # deferred: heavy, and only this stage needs it on the driver

    node = ray.get_runtime_context().get_node_id()
    have = next((n.get("Resources") or {} for n in ray.nodes() if n.get("NodeID") == node), {})
    cpus = min(float(spec.resources["teacher_cpus"]), float(have.get("CPU", 0)))
    gpus_here = float(have.get("GPU", 0))
    asked = spec.resources["teacher_gpus"]
    gpus = (1.0 if gpus_here >= 1 else 0.0) if asked == "auto" else min(float(asked), gpus_here)
    return node, cpus, gpus, torch.get_num_threads()


def _amount(n: float, unit: str) -> str:
    return f"{n:g} {unit}{'' if float(n) == 1 else 's'}"


def check_stage_resources(
    spec: SweepSpec, cluster: dict[str, float] | None = None, nodes: list[dict] | None = None
) -> None:
    """A stage task's CPUs / GPUs (``resources.teacher_*``, ``bootstrap_*``) must fit on one node of the Ray cluster
    (``ray.cluster_resources()``, the live ``ray.nodes()``; the running cluster when not given). Run right after Ray
    starts, before anything is written: :class:`sweep.tuner.ResourceError` otherwise."""
    if not any(spec.is_study(t) for t in spec.tasks):
        return
    if cluster is None or nodes is None:
        cluster, nodes = _cluster()
    alive = [n for n in nodes if n.get("Alive", True)]
    for key, ray_key in (
        ("teacher_cpus", "CPU"),
        ("bootstrap_cpus", "CPU"),
        ("teacher_gpus", "GPU"),
        ("bootstrap_gpus", "GPU"),
    ):
        asked = spec.resources[key]
        if asked == "auto" or float(asked) <= 0:
            continue
        per_node = [float((n.get("Resources") or {}).get(ray_key, 0)) for n in alive]
        if per_node and max(per_node) >= float(asked):
            continue
        where = ", ".join(
            f"{n.get('NodeManagerAddress', '?')}: {_amount(c, ray_key)}" for n, c in zip(alive, per_node, strict=True)
        )
        raise ResourceError(
            f"resources.{key}: {_amount(float(asked), ray_key)} per stage task asked, the Ray cluster"
            f" has {_amount(float(cluster.get(ray_key, 0)), ray_key)} (nodes: {where})"
        )


# ---- the stage runner ---------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One task's part of a stage: ``submit`` starts its Ray tasks (returns their refs), ``finish`` turns their
    results into the output (run on the driver) and returns details for the stage row."""

    task: str
    stage: str
    fingerprint: str
    output: Path
    done: Callable[[], bool]
    submit: Callable[[], list]
    finish: Callable[[list[dict]], dict] = lambda results: {}
    detail: dict = field(default_factory=dict)
    fault_after_first: bool = False  # the fault hook waits for one of the Ray tasks to finish (bootstrap shards)
    progress: Path | None = None  # where its Ray task writes progress lines (teacher, soft targets)


class StudyRunner:
    """Runs the stages of :mod:`sweep.study` for the spec's study tasks (and the ``soft_targets`` stage for its other
    tasks with a teacher) and records them in ``store``."""

    def __init__(self, spec: SweepSpec, store, data: TaskDataCache, say: Callable[[str], None]) -> None:
        self.spec, self.store, self.data, self.say = spec, store, data, say
        self.root = spec.storage / spec.name / "assets"
        self.tasks = [t for t in spec.tasks if spec.is_study(t)]
        # tasks with a teacher outside the study stages: only their soft_targets stage runs here
        self.files = [t for t in spec.tasks if spec.file_teacher(t)]  # a teacher known by its outputs: read here
        self.plain = [
            t for t in spec.tasks if not spec.is_study(t) and spec.tasks[t]["teacher"] and t not in self.files
        ]
        self._refs: dict[str, Any] = {}
        self._rows = {(r["task"], r["stage"], r["fingerprint"]): r for r in store.stages(spec.name)}

    def task_data_ref(self, task: str):
        import ray

        if task not in self._refs:
            self._refs[task] = ray.put(self.data(task))
        return self._refs[task]

    def run(self) -> dict[str, TaskAssets]:
        if not self.tasks and not self.plain and not self.files:
            return {}
        assets = {t: TaskAssets(soft_targets=str(self.root / SOFT_TARGETS_DIR)) for t in self.tasks}
        for t in self.files:  # no Ray task: the file is read and matched on the driver
            assets[t] = plain_assets(self.spec, t)
            file_teacher_stage(self.spec, self.store, self._rows, self.data, self.say, t, assets[t])
        self._run_stage("teacher", [self._teacher_job(t, assets[t]) for t in self.tasks])
        self._run_stage("bootstrap", [self._bootstrap_job(t, assets[t]) for t in self.tasks])
        for t in self.plain:  # built on the driver (sweep.assets.materialize_assets); labelled in the driver's cache
            assets[t] = plain_assets(self.spec, t)
            assets[t].soft_targets = str(driver_soft_targets(self.spec))
        self._run_stage(
            "soft_targets",
            [self._label_job(t, assets[t], on_driver=t in self.plain) for t in self.spec.tasks if t in assets],
        )
        return assets

    # -- the generic part: skip what exists, record, submit, wait, record -----------------------------------------

    def _run_stage(self, stage: str, jobs: list[Job | None]) -> None:
        """Every job of the stage at once; each job's row is finished or failed; the first error is raised after
        all of them are recorded (a UserError from a Ray task as itself: one line for the user)."""
        import ray

        name = self.spec.name
        running: list[tuple[Job, list]] = []
        errors: list[BaseException] = []
        for job in (j for j in jobs if j is not None):
            row = self._rows.get((job.task, stage, job.fingerprint))
            if job.done():
                if row is None or row["status"] not in ("finished", "cached"):
                    self.store.finish_stage(
                        name,
                        job.task,
                        stage,
                        job.fingerprint,
                        "cached",
                        output=str(job.output),
                        message="output found from an earlier run",
                        detail=job.detail,
                    )
                self.say(f"{stage} {job.task}: done already ({job.output.name})")
                continue
            self.store.start_stage(name, job.task, stage, job.fingerprint, str(job.output), job.detail)
            self.say(f"{stage} {job.task}: running ({job.output.name})")
            try:
                running.append((job, job.submit()))
            except Exception as e:
                errors.append(self._failed(stage, job, e))
        if running and os.environ.get(FAULT_ENV) == stage:  # the fault hook: the driver dies inside the stage
            job, refs = running[0]
            if job.fault_after_first and len(refs) > 2:  # refs[0]: the word vectors, done already
                ray.wait(refs[1:], num_returns=1)
            os.kill(os.getpid(), signal.SIGKILL)
        for job, refs in running:
            try:
                self._wait(stage, job, refs)
                results = ray.get(refs)
                detail = {**job.detail, **job.finish(results)}
            except Exception as e:
                errors.append(self._failed(stage, job, e))
                continue
            ran = [r for r in results if "start" in r]
            seconds = max(r["end"] for r in ran) - min(r["start"] for r in ran) if ran else 0.0
            devices = sorted({r["device"] for r in ran})
            nodes = sorted({r["node"] for r in ran})
            self.store.finish_stage(
                name,
                job.task,
                stage,
                job.fingerprint,
                "finished",
                seconds=round(seconds, 3),
                device=",".join(devices) or None,
                node=",".join(nodes) or None,
                output=str(job.output),
                detail=detail,
            )
            self.say(f"{stage} {job.task}: finished in {seconds:.1f}s on {','.join(devices)} ({job.output.name})")
        if errors:
            raise errors[0]

    def _wait(self, stage: str, job: Job, refs: list) -> None:
        """Wait for the job's Ray tasks, saying every ``PROGRESS_EVERY_S`` how long it has run and how far it is
        (its progress file's last line; for several tasks, how many are done)."""
        import ray

        started = time.time()
        while True:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=PROGRESS_EVERY_S)
            if len(ready) == len(refs):
                break
            elapsed = time.time() - started
            where = last_progress(job.progress) if len(refs) == 1 else f"{len(ready)} of {len(refs)} tasks done"
            self.say(
                f"{stage} {job.task}: running for {elapsed // 60:.0f}m{elapsed % 60:02.0f}s"
                + (f": {where}" if where else "")
            )
        if job.progress is not None:
            job.progress.unlink(missing_ok=True)

    def _failed(self, stage: str, job: Job, e: Exception) -> BaseException:
        """Record the job's row as failed; returns what to raise: the UserError a Ray task raised, else ``e``."""
        cause = _user_error(e)
        lines = str(cause or e).strip().splitlines()
        message = lines[0] if lines else type(e).__name__
        self.store.finish_stage(self.spec.name, job.task, stage, job.fingerprint, "failed", message=message)
        self.say(f"{stage} {job.task}: failed: {message}")
        return cause if cause is not None else e

    # -- teacher ---------------------------------------------------------------------------------------------------

    def _teacher_job(self, task: str, a: TaskAssets) -> Job | None:
        t = self.spec.tasks[task]["teacher"]  # {model, finetune} (the spec normalises study tasks)
        if t["finetune"] is None:  # an already fine-tuned teacher directory: nothing to build
            a.teacher = str(Path(t["model"]).expanduser().resolve())
            return None
        td = self.data(task)
        fp = _fingerprint(
            {
                "stage": "teacher",
                "task": td.task.to_dict(),
                "data": td.fingerprint(),
                "model": _model_identity(t["model"]),
                "finetune": t["finetune"],
            }
        )
        out = self.root / task / f"teacher-{fp}"
        progress = out.with_name(f".{out.name}.progress")
        a.teacher = str(out)
        cluster, _ = _cluster()
        cpus, gpus = float(self.spec.resources["teacher_cpus"]), stage_gpus(self.spec, "teacher_gpus", cluster)
        ref = self.task_data_ref(task)
        return Job(
            task,
            "teacher",
            fp,
            out,
            done=lambda: (out / "config.json").is_file() and (out / "featherweight_teacher.json").is_file(),
            submit=lambda: [
                remote(teacher_task, cpus, gpus).remote(
                    t["model"], ref, str(out), t["finetune"], cpus, gpus, str(progress)
                )
            ],
            progress=progress,
            finish=lambda results: {"metrics": results[0]["metrics"]},
            detail={"model": t["model"], "finetune": t["finetune"], "cpus": cpus, "gpus": gpus},
        )

    # -- bootstrap -------------------------------------------------------------------------------------------------

    def _bootstrap_job(self, task: str, a: TaskAssets) -> Job | None:
        b = self.spec.tasks[task]["bootstrap"]
        if b is None:
            return None
        if isinstance(b, str):
            a.bootstrap = str(Path(b).expanduser().resolve())
            return None
        td = self.data(task)
        teacher = self.spec.tasks[task]["teacher"]
        mlm = None
        if b["mode"] == "fill-mask":
            mlm = teacher["model"] if b["mlm"] == "teacher" else b["mlm"]
        settings = {k: b[k] for k in ("n", "p", "k", "ratio", "seed", "mode")}
        fp = _fingerprint(
            {
                "stage": "bootstrap",
                "task": td.task.to_dict(),
                "data": td.fingerprint(),
                **settings,
                "mlm": _model_identity(mlm) if mlm else None,
                "vectors": "task:100",
            }
        )
        out = self.root / task / f"bootstrap-{fp}.parquet"
        a.bootstrap = str(out)
        cluster, _ = _cluster()
        n_rows = len(td.train)
        shards = b["shards"]
        if shards == "auto":
            if mlm is not None and float(cluster.get("GPU", 0)) > 0:
                shards = max(1, int(cluster["GPU"]))
            else:
                cpus_each = float(self.spec.resources["bootstrap_cpus"])
                shards = max(1, min(MAX_AUTO_SHARDS, int(float(cluster.get("CPU", 1)) // cpus_each)))
        shards = max(1, min(shards, n_rows))
        cpus = float(self.spec.resources["bootstrap_cpus"])
        gpus = stage_gpus(self.spec, "bootstrap_gpus", cluster, shards, fill_mask=mlm is not None)
        bounds = [(n_rows * i // shards, n_rows * (i + 1) // shards) for i in range(shards)]
        shard_dir = out.with_name(f"{out.stem}.shards")
        files = [shard_dir / f"shard-{i:05d}-of-{shards:05d}.parquet" for i in range(shards)]
        cfg = {**{k: b[k] for k in ("n", "p", "k", "seed", "mode")}, "ratio": 1.0}
        ref = self.task_data_ref(task)
        vectors_dir = str(self.root / task)

        def submit() -> list:
            import ray

            vec = ray.get(remote(vectors_task, 1, 0).remote(ref, vectors_dir))
            shard = remote(shard_task, cpus, gpus)
            return [ray.put(vec)] + [
                shard.remote(ref, str(f), cfg, vec["path"], mlm, bounds[i], cpus, gpus)
                for i, f in enumerate(files)
                if not f.is_file()
            ]

        def finish(results: list[dict]) -> dict:
            kept = _concat_shards(files, out, b["ratio"], shards)
            import shutil

            shutil.rmtree(shard_dir, ignore_errors=True)
            return {"kept": kept, "shards_run": len(results) - 1}

        return Job(
            task,
            "bootstrap",
            fp,
            out,
            done=out.is_file,
            submit=submit,
            finish=finish,
            detail={**settings, "mlm": mlm, "shards": shards, "cpus": cpus, "gpus": gpus},
            fault_after_first=True,
        )

    # -- soft targets ----------------------------------------------------------------------------------------------

    def _label_job(self, task: str, a: TaskAssets, on_driver: bool = False) -> Job | None:
        """Label the train split and the bootstrap rows with the teacher into ``a.soft_targets``. ``on_driver``: that
        store is the driver's cache (:func:`sweep.assets.driver_soft_targets`), so the Ray task runs on the driver's
        node, with the GPU share ``teacher_gpus`` asks for if that node has it (``auto``: 1 when it has a GPU) and the
        driver's torch threads (:func:`_on_driver_node`): the logits the driver computed when it labelled itself."""
        if a.teacher is None:
            return None
        td = self.data(task)
        root = Path(a.soft_targets)
        store = SoftTargetStore(root)
        parts: list[tuple[Any, str]] = [(td, "train")]
        boot_fp = None
        if a.bootstrap is not None:
            aug, _ = read_augmented(a.bootstrap, td.task)
            parts.append((aug, f"{td.task.name}-bootstrap"))
            boot_fp = texts_fingerprint(aug.keys, aug.texts)
        fp = _fingerprint(
            {
                "stage": "soft_targets",
                "teacher": teacher_fingerprint(a.teacher),
                "data": td.fingerprint(),
                "bootstrap": boot_fp,
            }
        )
        node = threads = None
        if on_driver:
            node, cpus, gpus, threads = _on_driver_node(self.spec)
        else:
            cluster, _ = _cluster()
            cpus, gpus = float(self.spec.resources["teacher_cpus"]), stage_gpus(self.spec, "teacher_gpus", cluster)
        ref = self.task_data_ref(task)
        teacher_dir, boot = a.teacher, a.bootstrap
        progress = self.root / task / f".soft_targets-{fp}.progress"
        return Job(
            task,
            "soft_targets",
            fp,
            root,
            done=lambda: all(store.has(teacher_dir, d, split) for d, split in parts),
            submit=lambda: [
                remote(label_task, cpus, gpus, node).remote(
                    teacher_dir, ref, boot, str(root), cpus, gpus, str(progress), threads
                )
            ],
            progress=progress,
            finish=lambda results: {"rows": results[0]["rows"]},
            detail={
                "teacher": teacher_dir,
                "bootstrap": boot,
                "cpus": cpus,
                "gpus": gpus,
                **({"threads": threads} if on_driver else {}),
            },
        )


def _user_error(e: BaseException) -> UserError | None:
    """The UserError a Ray task raised, or None. Ray raises a ``RayTaskError(TeacherError)`` whose text is the
    remote traceback: the original exception is its ``cause``."""
    for _ in range(5):
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):
            e = cause
            continue
        return e if isinstance(e, UserError) else None
    return None


def _concat_shards(files: list[Path], output: Path, ratio: float, shards: int) -> int:
    """Concatenate the shard files in order, keep ``ratio`` of the variants (the same systematic sampling as
    :func:`featherweight_core.teacher.augment.augment_to_file`), write ``output`` atomically; returns the rows kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(f) for f in files]
    meta = json.loads(tables[0].schema.metadata[META_KEY])
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    if ratio < 1.0:
        keep = [i for i in range(table.num_rows) if math.floor((i + 1) * ratio) > math.floor(i * ratio)]
        table = table.take(pa.array(keep, type=pa.int64()))
    if table.num_rows == 0:
        raise DataError(
            f"augmentation of task {meta['task'].get('name')!r} produced no examples (no word had"
            f" candidates; vectors: {meta.get('vectors')})"
        )
    meta["config"]["ratio"] = ratio
    meta["shards"] = shards
    meta["source_examples"] = sum(json.loads(t.schema.metadata[META_KEY])["source_examples"] for t in tables)
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    atomic_write(output, lambda tmp: pq.write_table(table, str(tmp)))
    return table.num_rows


def run_study(spec: SweepSpec, store, data: TaskDataCache, say: Callable[[str], None]) -> dict[str, TaskAssets]:
    """Run the teacher, bootstrap and soft-target stages of the spec's study tasks, and the soft-target stage of its
    other tasks with a teacher (after :func:`sweep.assets.materialize_assets`; Ray must be initialised); returns
    their assets (the teacher directory, the bootstrap file, the soft-target store prepare() reads)."""
    return StudyRunner(spec, store, data, say).run()
