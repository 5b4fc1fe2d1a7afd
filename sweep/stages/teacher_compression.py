"""The teacher-compression stage: smaller transformers made from each task's fine-tuned teacher (BERT-of-Theseus
module replacement, BERT-Vision heads over the first k layers), one Tune trial per grid point of the spec's
``teacher_compression`` section (:meth:`sweep.spec.SweepSpec.teacher_compression_trials`).

It depends on the teacher only, not on any student: the runner plans it as soon as the teachers exist (after the
assets and study stages; a grid that does not fit a teacher, such as a BERT-Vision ``layers`` above its layer count,
fails before Ray starts when the teacher's config tells (``sweep.teacher_fit``), else there, before any student
trains) and runs it after the student stages, so a spec that adds a
``teacher_compression`` section to a finished sweep runs just this stage on resume. Planning is driven by the
database like the other stages: grid points without a finished row run; nothing left is a no-op. Trials run on a
GPU when ``resources.teacher_compression_gpus`` gives them one (``auto``: one each when the Ray cluster has a GPU);
CPU latency is measured on the CPU either way, with ``resources.teacher_compression_cpus`` threads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from db.store import TrialRecord
from sweep.assets import TaskAssets
from sweep.records import common_fields
from sweep.spec import SweepSpec, teacher_layers
from sweep.stages.base import Stage, StagePlan, StageResult, StageRun, TuneRun
from sweep.teacher_fit import check_grid_against_teacher_configs
from sweep.tuner import ResourceError
from trainables.trial import TeacherCompressionTrial, TrialOutcome

STAGE = TeacherCompressionTrial.stage


def known_teachers(spec: SweepSpec, store=None) -> dict[str, str]:
    """The teacher directories of the section's tasks that exist already, found without building anything (the
    runner's plan before Ray starts): ``small`` under the sweep's assets, a directory as given, a study teacher from
    its latest finished ``teacher`` stage row. A task missing here has a teacher still to build."""
    tc = spec.teacher_compression
    if not tc:
        return {}
    root = spec.storage / spec.name / "assets"
    built: dict[str, str] = {}
    if store is not None:
        for row in store.stages(spec.name):  # oldest first: the latest wins
            if row["stage"] == "teacher" and row["status"] in ("finished", "cached") and row.get("output"):
                built[row["task"]] = row["output"]
    out = {}
    for task in tc["tasks"]:
        t = spec.tasks[task]["teacher"]
        if t == "small":
            d = root / task / "teacher"
        elif isinstance(t, str):
            d = Path(t).expanduser().resolve()
        elif isinstance(t, dict) and t.get("finetune") is None:
            d = Path(t["model"]).expanduser().resolve()
        elif task in built:
            d = Path(built[task])
        else:
            continue
        if (d / "config.json").is_file():
            out[task] = str(d)
    return out


def teachers_from_assets(spec: SweepSpec, assets: dict[str, TaskAssets]) -> dict[str, str]:
    """The section's tasks -> their teacher directories, once the assets and study stages have built them."""
    tc = spec.teacher_compression or {"tasks": []}
    return {t: assets[t].teacher for t in tc["tasks"] if t in assets and assets[t].teacher}


def plan_teacher_compression(spec: SweepSpec, store, teachers: dict[str, str]) -> list[TeacherCompressionTrial]:
    """The grid points of the tasks in ``teachers`` without a finished row (all of them without a ``store``)."""
    trials = spec.teacher_compression_trials(teachers)
    done = store.finished_trial_ids(spec.name, stage=STAGE) if store is not None and trials else set()
    return [t for t in trials if t.trial_id not in done]


def check_teacher_compression_grid(spec: SweepSpec) -> None:
    """Check the grid against every teacher that exists already (a directory, a small teacher an earlier run built):
    :class:`sweep.spec.SpecError` before Ray starts and anything is written. A teacher this run builds is checked
    against the config it will have (``sweep.teacher_fit``: the small teacher's, a local model directory's), and
    again when planned, right after it is built."""
    if spec.teacher_compression:
        known = known_teachers(spec)
        spec.teacher_compression_trials(known)
        check_grid_against_teacher_configs(spec, skip=set(known))


def teacher_shape(teacher_dir: str | Path) -> dict[str, Any]:
    """``{"dir", "hidden_size", "vocab_size", "layers"}`` from the teacher's ``config.json`` (the record's emb_dim,
    vocab_size)."""
    cfg = json.loads((Path(teacher_dir) / "config.json").read_text(encoding="utf-8"))
    return {
        "dir": str(teacher_dir),
        "hidden_size": int(cfg.get("hidden_size") or cfg.get("dim")),
        "vocab_size": cfg.get("vocab_size"),
        "layers": teacher_layers(teacher_dir),
    }


# ---- resources -------------------------------------------------------------------------------------------------------


def trial_resources(spec: SweepSpec, cluster: dict[str, float] | None = None) -> tuple[float, float]:
    """``(cpus, gpus)`` per teacher-compression trial: the spec's numbers; ``auto`` GPUs: 1 when the Ray cluster
    (``ray.cluster_resources()``, the running one when not given) has a GPU, else 0."""
    res = spec.resources
    gpus = res["teacher_compression_gpus"]
    if gpus == "auto":
        if cluster is None:
            import ray

            cluster = ray.cluster_resources()
        gpus = 1.0 if float(cluster.get("GPU", 0)) > 0 else 0.0
    return float(res["teacher_compression_cpus"]), float(gpus)


def check_teacher_compression_resources(
    spec: SweepSpec, cluster: dict[str, float] | None = None, nodes: list[dict] | None = None
) -> None:
    """A teacher-compression trial's CPUs / GPUs must fit on one node of the Ray cluster: :class:`ResourceError`
    naming the key otherwise (run right after Ray starts, before anything is written)."""
    if not spec.teacher_compression:
        return
    if cluster is None or nodes is None:
        import ray

        cluster, nodes = ray.cluster_resources(), ray.nodes()
    cpus, gpus = trial_resources(spec, cluster)
    alive = [n for n in nodes if n.get("Alive", True)]
    for key, asked, ray_key in (("teacher_compression_cpus", cpus, "CPU"), ("teacher_compression_gpus", gpus, "GPU")):
        if asked <= 0:
            continue
        per_node = [float((n.get("Resources") or {}).get(ray_key, 0)) for n in alive]
        if per_node and max(per_node) >= asked:
            continue
        raise ResourceError(
            f"resources.{key}: {asked:g} {ray_key} per teacher compression trial asked, the Ray"
            f" cluster has {float(cluster.get(ray_key, 0)):g} (largest node:"
            f" {max(per_node, default=0):g})"
        )


# ---- running -------------------------------------------------------------------------------------------------------


class TeacherCompressionStage(Stage):
    trial = TeacherCompressionTrial
    name = STAGE
    section = "teacher_compression"
    label = "teacher compression"
    title = "teacher compression"
    resource_keys = ("teacher_compression_cpus", "teacher_compression_gpus")

    def check(self, spec: SweepSpec) -> None:
        check_teacher_compression_grid(spec)

    def check_resources(self, spec: SweepSpec) -> None:
        check_teacher_compression_resources(spec)

    def check_assets(self, spec: SweepSpec, assets: dict[str, TaskAssets]) -> None:
        # planned now that the teachers exist: a grid that does not fit a teacher fails before anything trains
        teachers = teachers_from_assets(spec, assets)
        spec.teacher_compression_trials(teachers)

    def plan(self, spec: SweepSpec, store, assets: dict[str, TaskAssets] | None = None) -> StagePlan:
        """From the built teachers once the assets exist; before, from the teachers that exist already
        (provisional: a teacher still to build leaves the stage unplanned)."""
        if assets is None:
            teachers = known_teachers(spec, store)
            if set(spec.teacher_compression["tasks"]) - set(teachers):
                return StagePlan(provisional=True, unplanned=True)
            todo = plan_teacher_compression(spec, store, teachers)
            return StagePlan(todo, remaining=len(todo), provisional=True)
        teachers = teachers_from_assets(spec, assets)
        todo = plan_teacher_compression(spec, store, teachers)
        return StagePlan(todo, remaining=len(todo), inputs=teachers)

    def trainable(self) -> Callable:
        from trainables.teacher_compression import teacher_compression_trainable  # loads torch

        return teacher_compression_trainable

    def record(
        self,
        sweep: str,
        trial: TeacherCompressionTrial,
        outcome: TrialOutcome,
        checkpoint_dir: str | None,
        about: dict[str, dict[str, Any]] | None = None,
    ) -> TrialRecord:
        """``about`` maps each task to its teacher as the driver found it: ``dir`` (the directory compressed),
        ``hidden_size`` and ``vocab_size`` (the row's emb_dim and vocab_size: a transformer's width and its
        tokenizer's vocabulary). The checkpoint is the output directory itself."""
        teacher = about[trial.task]
        config = trial.to_dict()
        if outcome.finished:
            config["resolved"] = outcome.resolved
        return TrialRecord(
            **{
                **common_fields(sweep, trial, outcome, checkpoint_dir),
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

    def run(self, run: StageRun, plan: StagePlan) -> StageResult:
        """Run the plan through Tune as the experiment ``<prefix>teacher_compression`` (an int8 wave that reuses
        its float siblings' models: ``..._int8``); each task's data goes into Ray's object store once. Ray must be
        initialised."""
        import ray
        from ray import tune

        from trainables.teacher_compression import HIDDEN_STATES_DIR  # loads torch

        spec, todo, teachers = run.spec, plan.todo, plan.inputs
        if not todo:
            return StageResult()
        cpus, gpus = trial_resources(spec)
        run.say(
            f"teacher compression: {len(todo)} trial(s) on {', '.join(sorted({t.task for t in todo}))}"
            f" ({cpus:g} CPU, {gpus:g} GPU each)"
        )
        tasks = sorted({t.task for t in todo})
        refs = {task: ray.put(run.data(task)) for task in tasks}
        shapes = {task: teacher_shape(teachers[task]) for task in tasks}

        def trial_of(tune_trial) -> TeacherCompressionTrial:
            return TeacherCompressionTrial.from_dict(tune_trial.config["trial"])

        tune_run = TuneRun(self, run, trial_of, len(todo), "gzip_bytes", about=shapes)
        cache_dir = spec.storage / spec.name / "assets" / HIDDEN_STATES_DIR
        trainable = tune.with_parameters(
            self.trainable(), data=refs, teachers={t: teachers[t] for t in tasks}, cache_dir=str(cache_dir)
        )
        expected = 0
        for wave, suffix in zip(waves(todo), ("", "_int8"), strict=True):
            if not wave:
                continue
            expected += len(wave)
            tune_run.fit(
                trainable,
                f"teacher_compression{suffix}",
                param_space={"trial": tune.grid_search([t.to_dict() for t in wave])},
                resources={**spec.resources, "cpus_per_trial": cpus, "gpus_per_trial": gpus},
                max_concurrent=spec.resources["max_concurrent"],
            )
            if tune_run.progress.done < expected:
                break  # Tune stopped early (Ctrl-C): the runner reports how far the stage got
        return tune_run.result(len(todo))


def waves(todo: list[TeacherCompressionTrial]) -> tuple[list, list]:
    """``(first, second)``: an int8 Theseus trial whose float sibling (the same grid point without ``quantize``)
    is also to run goes second, so it quantizes the sibling's saved successor instead of training the same model
    again (``trainables.teacher_compression``); everything else goes first."""
    # deferred: the trainable loads torch (the registry stays light)
    from trainables.teacher_compression import float_sibling

    ids = {t.trial_id for t in todo}
    second = [t for t in todo if (sib := float_sibling(t)) is not None and sib.trial_id in ids]
    second_ids = {t.trial_id for t in second}
    return [t for t in todo if t.trial_id not in second_ids], second
