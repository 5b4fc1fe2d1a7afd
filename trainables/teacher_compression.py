"""Ray Tune adapter for one teacher-compression trial: trial config -> core config -> ``compress_theseus`` /
``train_bertvision`` -> ``tune.report``.

The methods read texts, not encoded ids: the driver puts each task's :class:`featherweight_core.data.taskdata.TaskData` in
Ray's object store once (as the study stages do) and the trainable fetches the one its trial needs, once per worker
process. The teacher directory comes from the driver too (``teachers``: task -> directory; the trial itself holds
only the teacher's content fingerprint, which the trainable checks, so a teacher replaced between planning and
running fails the trial instead of compressing the wrong model).

The output is a directory (tokenizer, config, weights or ``model_int8.pt``, ``featherweight_compressed.json``) saved
straight into ``<storage>/<name>/checkpoints/<trial_id>`` (``trainables.checkpoints``: built in a temporary sibling,
swapped into place when complete). BERT-Vision's hidden states are cached under ``<storage>/<name>/assets`` and
shared by every trial of the teacher (layers k = 2, 4, 6 read one cache; each cache file is written to a temporary
name and renamed, so two trials computing it at once both produce the complete file and neither sees half of one).
:func:`run_teacher_compression` is the Ray-free body.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from featherweight_core.data.taskdata import TaskData
from trainables.checkpoints import CHECKPOINT_ROOT, checkpoint_dir, save_and_report
from trainables.distill import error_message, inject_fault, setup_torch
from trainables.placement import placement
from trainables.trial import TeacherCompressionTrial, TrialOutcome

HIDDEN_STATES_DIR = "hidden_states"  # under <storage>/<name>/assets: BERT-Vision's cache, shared by its trials


def core_config(trial: TeacherCompressionTrial, device: str):
    """The core config the trial names: its settings (the core's defaults for knobs the spec left out), seed,
    quantization and the device the trial got."""
    if trial.method == "theseus":
        # deferred: loads transformers, only for the method the trial names
        from featherweight_core.teacher.theseus_config import TheseusConfig

        return TheseusConfig(**trial.settings, seed=trial.seed, quantize=trial.quantize, device=device)
    from featherweight_core.teacher.bertvision_config import BertVisionConfig

    return BertVisionConfig(**trial.settings, seed=trial.seed, quantize=trial.quantize, device=device)


def _history(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch rows in the shape every trial's history has: epoch, train_loss, score, seconds, the rest as
    metrics."""
    out = []
    for i, r in enumerate(rows):
        main = {
            "epoch": r.get("epoch", i + 1),
            "train_loss": r.get("train_loss"),
            "score": r.get("score"),
            "seconds": r.get("seconds"),
        }
        out.append({**main, "metrics": {k: v for k, v in r.items() if k not in main}})
    return out


def float_sibling(trial: TeacherCompressionTrial) -> TeacherCompressionTrial | None:
    """The float Theseus trial an int8 one can be quantized from (the same grid point without ``quantize``); None
    for other trials. (BERT-Vision's int8 trials train their head on the int8 teacher's states: nothing to reuse.)"""
    if trial.method != "theseus" or not trial.quantize:
        return None
    return dataclasses.replace(trial, quantize=False)


def reusable_successor(trial: TeacherCompressionTrial, float_dir: str | Path | None) -> bool:
    """Whether ``float_dir`` holds the finished float successor of ``trial``'s sibling, made from the same teacher."""
    from featherweight_core.teacher.teacher_compression import COMPRESSED_META, CompressedTeacherError, read_meta

    if float_dir is None or not (Path(float_dir) / COMPRESSED_META).is_file():
        return False
    try:
        meta = read_meta(float_dir)
    except CompressedTeacherError:
        return False
    teacher = meta.get("teacher") or {}
    return (
        meta["method"] == "theseus"
        and not meta.get("quantized")
        and "trainable_params" in meta
        and teacher.get("fingerprint") == trial.teacher_fingerprint
    )


def run_teacher_compression(
    trial: TeacherCompressionTrial,
    task_data: TaskData,
    teacher_dir: str,
    device: str,
    out_dir: str,
    cache_dir: str | None = None,
    float_dir: str | None = None,
) -> TrialOutcome:
    """One grid point, without Ray: compress ``teacher_dir`` as the trial says into ``out_dir`` (an empty or absent
    directory), return the outcome. An int8 Theseus trial whose float sibling's successor is in ``float_dir``
    quantizes that one instead of training again."""
    from featherweight_core.teacher.softtargets import teacher_fingerprint
    from featherweight_core.teacher.teacher_compression import QUANTIZATION_NAME

    started = time.time()
    found = teacher_fingerprint(teacher_dir)
    if found != trial.teacher_fingerprint:
        raise RuntimeError(
            f"teacher {teacher_dir} changed since the trial was planned (fingerprint {found}, planned"
            f" {trial.teacher_fingerprint}); resume the sweep to plan its trials again"
        )
    cfg = core_config(trial, device)
    if reusable_successor(trial, float_dir):
        from featherweight_core.teacher.theseus import quantize_successor

        result = quantize_successor(float_dir, task_data, out_dir, overwrite=True)
    elif trial.method == "theseus":
        from featherweight_core.teacher.theseus import compress_theseus

        result = compress_theseus(teacher_dir, task_data, out_dir, cfg)
    else:
        from featherweight_core.teacher.bertvision import train_bertvision

        result = train_bertvision(teacher_dir, task_data, out_dir, cfg, cache_dir=cache_dir)
    test = {f"test_{k}": v for k, v in (result.test_metrics or {}).items() if isinstance(v, int | float)}
    n_train = len(task_data.train)
    limit = getattr(cfg, "max_train_examples", None)
    return TrialOutcome(
        status="finished",
        started_at=started,
        finished_at=time.time(),
        **placement(device),
        metrics={**result.metrics, **test, "epochs": len(result.history)},
        sizes={
            "params": result.params,
            "disk_bytes": result.disk_bytes,
            "gzip_bytes": result.gzip_bytes,
            "trainable_params": result.trainable_params,
        },
        history=_history(result.history),
        class_metrics=result.class_metrics,
        resolved={trial.method: result.settings, "task": task_data.task.to_dict()},
        quantization=QUANTIZATION_NAME if result.quantized else None,
        train_examples=min(n_train, limit) if limit else n_train,
        trainable_params=result.trainable_params,
        latency_ms=result.latency_ms,
        layers=result.layers,
        teacher={**result.teacher, "dir": str(teacher_dir)},
    )


_FETCHED: dict[str, tuple[bytes, TaskData]] = {}  # in a worker process: task -> (object id, its data)


def fetch_task_data(data: dict[str, Any], task: str) -> TaskData:
    """The task's data from Ray's object store, fetched once per worker process (one task kept at a time)."""
    import ray

    ref = data[task]
    hit = _FETCHED.get(task)
    if hit is not None and hit[0] == ref.binary():
        return hit[1]
    _FETCHED.clear()
    task_data = ray.get(ref)
    _FETCHED[task] = (ref.binary(), task_data)
    return task_data


def teacher_compression_trainable(
    config: dict[str, Any], data: dict[str, Any], teachers: dict[str, str], cache_dir: str
) -> None:
    """Tune function trainable. ``config["trial"]`` is a TeacherCompressionTrial as a dict; ``data`` maps task names
    to object references of their ``TaskData``; ``teachers`` task names to teacher directories; ``cache_dir`` is
    BERT-Vision's shared hidden-state cache."""
    from ray import tune

    started = time.time()
    trial = TeacherCompressionTrial.from_dict(config["trial"])  # a malformed trial config is a bug: let it raise
    device = None
    try:
        device = setup_torch(config.get("cpus", 1), config.get("gpus", 0))
        inject_fault({**trial.to_dict(), **trial.settings})
        task_data = fetch_task_data(data, trial.task)
        teacher_dir = teachers[trial.task]
        sibling, root = float_sibling(trial), config.get(CHECKPOINT_ROOT)
        float_dir = str(checkpoint_dir(root, sibling.trial_id)) if sibling is not None and root else None
        save_and_report(
            config,
            trial.trial_id,
            lambda out: run_teacher_compression(trial, task_data, teacher_dir, device, out, cache_dir, float_dir),
            lambda o: o.to_result("gzip_bytes"),
            task=trial.task,
        )
    except Exception as e:  # recorded as an errored trial with its message; the sweep goes on
        outcome = TrialOutcome.failed(error_message(e), started, time.time(), **placement(device))
        tune.report(outcome.to_result("gzip_bytes"))
