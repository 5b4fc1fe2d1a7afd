"""What runs inside the Ray tasks of the study stages (:mod:`sweep.study`): each fine-tunes, augments or labels on
the worker it lands on and returns where and how long it ran (and what it made). Progress lines a task writes to
stderr go to a file the driver reads while it waits (:func:`progress_to`, :func:`last_progress`).

Ray, torch and the core's model code are imported inside the functions on purpose: the driver imports this module
before Ray starts, and a worker only needs what its own task uses.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from featherweight_core.data.taskdata import TaskData
from featherweight_core.data.wordvectors import task_word_vectors
from featherweight_core.teacher import config as teacher_config
from featherweight_core.teacher.augment import AugmentConfig, augment_to_file, read_augmented
from featherweight_core.teacher.softtargets import SoftTargetStore


def placement(gpus: float) -> tuple[str, str, str]:
    """``(device for torch, device as recorded: cpu | cuda:N)`` and the node as ``ip/node-id prefix``."""
    import ray

    ctx = ray.get_runtime_context()
    node = f"{ray.util.get_node_ip_address()}/{ctx.get_node_id()[:8]}"
    if gpus > 0:
        ids = ray.get_gpu_ids()
        return "cuda", (f"cuda:{int(ids[0])}" if ids else "cuda:0"), node
    return "cpu", "cpu", node


def set_threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def teacher_task(
    model: str, task_data: TaskData, output: str, finetune: dict, cpus: float, gpus: float, progress: str | None = None
) -> dict:
    import dataclasses

    # deferred: loads torch only when called (importing this module does not)
    from featherweight_core.teacher import finetune as teacher_finetune
    from featherweight_core.teacher import smallbert as teacher_smallbert

    set_threads(cpus)
    device, recorded, node = placement(gpus)
    start = time.time()
    with progress_to(progress):
        if model == "small":
            cfg = dataclasses.replace(teacher_smallbert.SMALL_TEACHER_FINETUNE, **finetune, device=device)
            _, metrics = teacher_smallbert.build_demo_teacher(task_data, output, cfg=cfg)
        else:
            cfg = teacher_config.TeacherConfig(**finetune, device=device)
            metrics = teacher_finetune.finetune_teacher(
                model,
                task_data,
                output,
                cfg,
                progress=progress is not None,
                overwrite=True,
                log=sys.stderr if progress else None,
            )
    return {
        "start": start,
        "end": time.time(),
        "device": recorded,
        "node": node,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
    }


def vectors_task(task_data: TaskData, cache_dir: str) -> dict:
    set_threads(1)
    device, recorded, node = placement(0)
    start = time.time()
    _, path = task_word_vectors(task_data, cache_dir)
    return {"start": start, "end": time.time(), "device": recorded, "node": node, "path": str(path)}


def shard_task(
    task_data: TaskData,
    output: str,
    cfg: dict,
    vectors: str,
    mlm: str | None,
    rows: tuple[int, int],
    cpus: float,
    gpus: float,
) -> dict:
    set_threads(cpus)
    device, recorded, node = placement(gpus)
    start = time.time()
    report = augment_to_file(
        task_data, output, AugmentConfig(**cfg), vectors=vectors, mlm=mlm, device=device, rows=rows, allow_empty=True
    )
    return {"start": start, "end": time.time(), "device": recorded, "node": node, "kept": report.kept}


def label_task(
    teacher_dir: str,
    task_data: TaskData,
    bootstrap: str | None,
    root: str,
    cpus: float,
    gpus: float,
    progress: str | None = None,
    threads: int | None = None,
) -> dict:
    """Label the train split and the bootstrap rows (if any) into the store at ``root``, with ``threads`` torch
    threads (default: one per CPU of the task)."""
    set_threads(cpus if threads is None else threads)
    device, recorded, node = placement(gpus)
    start = time.time()
    store = SoftTargetStore(root, device=device, progress=progress is not None)
    with progress_to(progress):
        store.get_or_compute(teacher_dir, task_data, "train")  # what prepare() reads, under the same names
        if bootstrap is not None:
            aug, _ = read_augmented(bootstrap, task_data.task)
            store.get_or_compute(teacher_dir, aug, f"{task_data.task.name}-bootstrap")
    return {"start": start, "end": time.time(), "device": recorded, "node": node, "rows": store.examples_computed}


@contextlib.contextmanager
def progress_to(path: str | None):
    """A stage task's progress bars and epoch lines (written to stderr) go to ``path``, which the driver reads while
    it waits (:func:`last_progress`): a Ray worker's own output does not reach the user's terminal."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as f, contextlib.redirect_stderr(f):
        yield


def last_progress(path: str | Path | None) -> str | None:
    """The last line (or progress-bar update) a stage task wrote to its progress file, if any."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    parts = [p.strip() for p in re.split(r"[\r\n]", text) if p.strip()]
    return parts[-1] if parts else None


def remote(fn: Callable, cpus: float, gpus: float, node: str | None = None):
    """``fn`` as a Ray task asking for ``cpus`` / ``gpus``, not retried; with ``node`` (a Ray node id) it runs on that
    node only."""
    import ray

    options: dict = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": 0}
    if node is not None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
    return ray.remote(**options)(fn)
