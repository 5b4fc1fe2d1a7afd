"""Running a sweep: prepare data once, fan the distillation grid out with Ray Tune, then search pruning
thresholds with Optuna for the chosen parents, recording everything in DuckDB through the driver-side callback.

Resuming is driven by the database: trial ids are deterministic (a hash of the trial config), so a resumed sweep
runs exactly the grid points that have no finished row yet, and never duplicates a row.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db.store import ExperimentStore, TrialRecord, flatten_sizes
from featherweight_core.data import load_task_data
from featherweight_core.prepare import DEFAULT_CACHE_DIR, Prepared, prepare
from featherweight_core.tasks import get_task
from sweep.callback import DatabaseCallback, Progress, decode_json_field
from sweep.spec import SweepSpec
from trainables.distill import data_key

log = logging.getLogger("featherweight.sweep")


def code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        sha = ""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("featherweight")
    except PackageNotFoundError:
        v = "dev"
    return f"{v}+{sha}" if sha else v


def quiet_ray_env() -> None:
    """Ray's console noise off by default (ARCHITECTURE.md: measured settings)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def init_ray(address: str | None, resources: dict, verbose: bool = False) -> None:
    import ray

    quiet_ray_env()
    if ray.is_initialized():
        return
    level = logging.INFO if verbose else logging.ERROR
    kwargs: dict[str, Any] = {"logging_level": level, "log_to_driver": verbose, "include_dashboard": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=resources.get("num_cpus"), num_gpus=resources.get("num_gpus"), **kwargs)
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.CRITICAL if not verbose else logging.INFO)


# ---- data preparation (driver side, once per sweep) ----------------------------------------------------------------


@dataclass
class TaskAssets:
    teacher: str | None = None  # fine-tuned teacher dir
    bootstrap: str | None = None  # augmented data file


def materialize_assets(spec: SweepSpec, say: Callable[[str], None]) -> dict[str, TaskAssets]:
    """Build what the spec asks to be built (the small teacher, bootstrap data) under the sweep's storage dir.

    Idempotent: finished artifacts are reused on resume."""
    from featherweight_core import augment

    assets: dict[str, TaskAssets] = {}
    root = spec.storage / spec.name / "assets"
    for tname, t in spec.tasks.items():
        a = TaskAssets()
        task = get_task(tname)
        task_data = None
        if t["teacher"] == "small":
            tdir = root / tname / "teacher"
            if not (tdir / "config.json").is_file():
                say(f"building the small teacher for {tname} in {tdir}")
                task_data = task_data or load_task_data(task, t["data"], **(t["data_options"] or {}))
                build_small_teacher_dir(task_data, tdir)
            a.teacher = str(tdir)
        elif t["teacher"]:
            a.teacher = str(Path(t["teacher"]).expanduser().resolve())
        b = t["bootstrap"]
        if isinstance(b, dict):
            bfile = root / tname / "bootstrap.parquet"
            if not bfile.is_file():
                say(f"generating bootstrap data for {tname} in {bfile}")
                task_data = task_data or load_task_data(task, t["data"], **(t["data_options"] or {}))
                report = augment.augment_to_file(
                    task_data, bfile, augment.AugmentConfig(mode="embedding", **b), cache_dir=root / tname
                )
                say(str(report))
            a.bootstrap = str(bfile)
        elif b:
            a.bootstrap = str(Path(b).expanduser().resolve())
        assets[tname] = a
    return assets


def build_small_teacher_dir(task_data, tdir: Path) -> None:
    """The project's small offline teacher (a few-layer BERT with a locally trained tokenizer), fine-tuned on the
    task through the same code path as a real teacher; built in a sibling dir and renamed when complete."""
    import shutil

    from featherweight_core import teacher

    base = tdir.with_name(tdir.name + ".base")
    if base.exists():
        shutil.rmtree(base)
    teacher.build_small_teacher(task_data, base)
    teacher.finetune_teacher(base, task_data, tdir, teacher.SMALL_TEACHER_FINETUNE, progress=False, overwrite=True)
    shutil.rmtree(base, ignore_errors=True)


def teacher_baseline(tdir: str | Path) -> dict[str, Any]:
    """A teacher as a baseline row: its saved dev metrics, parameter count and weight-file size."""
    import gzip
    import json
    import math

    tdir = Path(tdir)
    metrics = json.loads((tdir / "teacher_metrics.json").read_text())
    weights = next((p for p in (tdir / "model.safetensors", tdir / "pytorch_model.bin") if p.is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{tdir}: no model.safetensors or pytorch_model.bin")
    from safetensors import safe_open

    params = 0
    if weights.suffix == ".safetensors":
        with safe_open(str(weights), "pt") as f:
            for k in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                params += math.prod(f.get_slice(k).get_shape())
    raw = weights.read_bytes()
    return {
        "name": f"teacher:{tdir.name if tdir.name != 'teacher' else tdir.parent.name}",
        "score": metrics.get("score", metrics.get("accuracy")),
        "accuracy": metrics.get("accuracy"),
        "f1": metrics.get("f1"),
        "params": params,
        "disk_bytes": len(raw),
        "gzip_bytes": len(gzip.compress(raw, compresslevel=6)),
    }


def prepare_all(spec: SweepSpec, trials: list[dict], assets: dict[str, TaskAssets]) -> dict[str, Prepared]:
    """One ``Prepared`` per (task, embedding, vocab, dim) the trials need; task data loaded once per task."""
    out: dict[str, Prepared] = {}
    task_data: dict[str, Any] = {}
    cache = spec.raw["cache_dir"] or DEFAULT_CACHE_DIR
    for t in trials:
        key = data_key(t["task"], t["embedding"], t["vocab_size"], t["emb_dim"])
        if key in out:
            continue
        task = get_task(t["task"])
        if t["task"] not in task_data:
            tspec = spec.tasks[t["task"]]
            task_data[t["task"]] = load_task_data(task, tspec["data"], **(tspec["data_options"] or {}))
        a = assets.get(t["task"], TaskAssets())
        extra: dict[str, Any] = {}
        if a.teacher:
            extra["teacher"] = a.teacher
        if a.bootstrap:
            extra["bootstrap"] = a.bootstrap
        out[key] = prepare(
            task, None, t["embedding"], t["emb_dim"], t["vocab_size"], spec.raw["bpemb_dir"],
            cache_dir=cache, task_data=task_data[t["task"]], **extra,
        )  # fmt: skip
    return out


# ---- turning Tune results into database rows ------------------------------------------------------------------------


def distill_record(sweep: str) -> Callable[[dict, dict, str | None], TrialRecord]:
    def to_record(cfg: dict, result: dict, checkpoint: str | None) -> TrialRecord:
        summary = decode_json_field(result, "fw_summary", {})
        finished = result.get("fw_status") == "finished"
        params = summary.get("params", {})
        started = result.get("fw_started_at")
        now = time.time()
        temperature = (summary.get("distill") or {}).get("temperature")
        return TrialRecord(
            sweep=sweep,
            trial_id=cfg["trial_id"],
            stage="distill",
            task=cfg["task"],
            arch=cfg["arch"],
            embedding=cfg["embedding"],
            emb_dim=cfg["emb_dim"],
            vocab_size=cfg["vocab_size"],
            alpha=cfg["alpha"],
            temperature=temperature,
            bootstrap=bool(cfg["bootstrap"]),
            seed=cfg["seed"],
            pooling=cfg["pooling"],
            status="finished" if finished else "error",
            error=None if finished else result.get("fw_error", "unknown error"),
            config={**cfg, "resolved": {k: summary.get(k) for k in ("student", "distill")}} if finished else cfg,
            metrics={
                **summary.get("metrics", {}),
                "best_epoch": summary.get("best_epoch"),
                "epochs": summary.get("epochs"),
            }
            if finished
            else {},  # fmt: skip
            sizes=flatten_sizes(
                {"params": params, "disk_bytes": summary.get("disk_bytes"), "gzip_bytes": summary.get("gzip_bytes")}
            )
            if finished
            else {},  # fmt: skip
            started_at=started,
            finished_at=now,
            seconds=(now - started) if started else None,
            checkpoint_path=str(Path(checkpoint) / "student.pt") if checkpoint and finished else None,
            history=decode_json_field(result, "fw_history", []),
        )

    return to_record


# ---- the sweep ------------------------------------------------------------------------------------------------------


@dataclass
class SweepOutcome:
    name: str
    database: Path
    distill_total: int = 0
    distill_ran: int = 0
    compress_ran: int = 0
    failed: int = 0
    seconds: float = 0.0
    db_write_ms: list[float] = field(default_factory=list)


def _run_tuner(trainable, trials: list[dict], spec: SweepSpec, name: str, callback: DatabaseCallback,
               resources: dict, search_alg=None, num_samples: int = 1, max_concurrent: int | None = None) -> None:  # fmt: skip
    from ray import tune

    param_space: dict[str, Any] = {"cpus": resources["cpus_per_trial"], "gpus": resources["gpus_per_trial"]}
    if search_alg is None:
        param_space["trial"] = tune.grid_search(trials)
    else:
        param_space.update(trials[0])  # searcher space
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": resources["cpus_per_trial"], "gpu": resources["gpus_per_trial"]}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            max_concurrent_trials=max_concurrent,
            search_alg=search_alg,
            num_samples=num_samples,
            **({"metric": "score", "mode": "max"} if search_alg is None else {}),
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(spec.storage / spec.name / "tune"),
            verbose=0,
            callbacks=[callback],
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    tuner.fit()


def run_sweep(
    spec: SweepSpec, address: str | None = None, say: Callable[[str], None] = print, verbose: bool = False
) -> SweepOutcome:
    """Run (or continue) ``spec``: stage 1 distillation grid, then stage 2 compression if the spec has one."""
    from ray import tune

    from trainables.distill import distill_trainable

    t0 = time.time()
    spec.storage.mkdir(parents=True, exist_ok=True)
    spec.database.parent.mkdir(parents=True, exist_ok=True)
    store = ExperimentStore(spec.database)
    store.start_sweep(spec.name, spec.raw, code_version(), str(spec.storage / spec.name))
    outcome = SweepOutcome(spec.name, spec.database)
    status = "interrupted"
    try:
        all_trials = spec.distill_trials()
        done = store.finished_trial_ids(spec.name)
        todo = [t for t in all_trials if t["trial_id"] not in done]
        outcome.distill_total = len(all_trials)
        say(f"sweep {spec.name}: {len(all_trials)} distillation trials, {len(all_trials) - len(todo)} already finished")
        resources = spec.resources
        if todo:
            assets = materialize_assets(spec, say)
            say("preparing data (encoded once, shared with all trials)")
            prepared = prepare_all(spec, todo, assets)
            _record_teachers(store, spec, prepared)
            init_ray(address, resources, verbose)
            progress = Progress(len(todo), "distill", say)
            cb = DatabaseCallback(spec.database, progress, distill_record(spec.name),
                                  spec.compress["size_measure"] if spec.compress else "gzip_bytes")  # fmt: skip
            _run_tuner(tune.with_parameters(distill_trainable, prepared=prepared), todo, spec, "distill", cb, resources,
                       max_concurrent=resources["max_concurrent"])  # fmt: skip
            outcome.distill_ran, outcome.failed = progress.done, progress.failed
            outcome.db_write_ms += [s * 1000 for s in cb.write_seconds]
        if spec.compress:
            from sweep.stage2 import run_compression_stage

            ran, failed, writes = run_compression_stage(spec, store, address, say, verbose)
            outcome.compress_ran += ran
            outcome.failed += failed
            outcome.db_write_ms += writes
        status = "finished"
    finally:
        outcome.seconds = time.time() - t0
        try:
            store.finish_sweep(spec.name, status)
        except Exception as e:  # never mask the original error
            log.warning("could not mark sweep %s as %s: %s", spec.name, status, e)
    return outcome


def _record_teachers(store: ExperimentStore, spec: SweepSpec, prepared: dict[str, Prepared]) -> None:
    """Each teacher the sweep used becomes a measured baseline row (its dev metrics and size)."""
    seen = set()
    for p in prepared.values():
        tdir = getattr(p, "teacher", None)
        if not tdir or (p.task.name, tdir) in seen or not Path(tdir).is_dir():
            continue
        seen.add((p.task.name, tdir))
        try:
            b = teacher_baseline(tdir)
        except Exception as e:  # a teacher without saved metrics is still usable; it just has no baseline row
            log.warning("no baseline row for teacher %s: %s", tdir, e)
            continue
        store.record_teacher(spec.name, p.task.name, b["name"], b["score"], b.get("accuracy"), b.get("f1"),
                             b["params"], b["disk_bytes"], b.get("gzip_bytes"))  # fmt: skip
