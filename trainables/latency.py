"""Latency as a trial's measured property, when the sweep asks for it (the spec's ``measure:`` key).

The driver hands every trial a small ``measure`` entry in its Tune config (:func:`measure_config`): the runtimes to
time, each task's definition with a sample of its dev examples (at most :data:`DEV_SAMPLE` per eval split, spread
over the split), each task's teacher directory, and the BPEmb directory (absolute) bpe students read. Once a trial
has saved its model, :func:`with_latency` times it in
PyTorch and as an ONNX artefact in ONNX Runtime (exported and checked on the sample, then thrown away), interleaved
with the teacher in the trial's process and with its thread count
(:func:`featherweight_core.export.speed.measure_speed`), and adds the rows to the outcome. The entry sits beside the
trial in the config, not in it: trial ids do not depend on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from featherweight_core.data.taskdata import LoadReport, Split, TaskData
from featherweight_core.data.tasks import TaskSpec
from trainables.trial import TrialOutcome

MEASURE_KEY = "measure"  # the Tune-config key
DEV_SAMPLE = 256  # dev examples per eval split a trial's latency is measured (and its ONNX artefact checked) on


def dev_sample(task_data: TaskData, n: int = DEV_SAMPLE) -> dict[str, Any]:
    """The task's definition and up to ``n`` examples of each of its eval splits, spread over the split, as JSON."""
    splits = {}
    for name in task_data.task.eval_splits:
        sp = task_data.splits.get(name)
        if sp is None or not len(sp):
            continue
        idx = np.unique(np.linspace(0, len(sp) - 1, min(n, len(sp))).round().astype(int))
        splits[name] = {"texts": [list(sp.texts[i]) for i in idx], "labels": [int(sp.labels[i]) for i in idx]}
    return {"task_spec": task_data.task.to_dict(), "splits": splits}


def sample_task_data(sample: dict[str, Any]) -> TaskData:
    """:func:`dev_sample`'s output back as a :class:`TaskData` holding only the sampled eval splits."""
    splits = {
        name: Split([tuple(t) for t in s["texts"]], np.asarray(s["labels"]), [str(i) for i in range(len(s["labels"]))])
        for name, s in sample["splits"].items()
    }
    return TaskData(TaskSpec.from_dict(sample["task_spec"]), splits, LoadReport(), "dev sample")


def measure_config(spec, assets: dict, task_data) -> dict[str, Any]:
    """The ``measure`` entry of every trial's Tune config (empty when the spec measures nothing). ``task_data``:
    task name -> its TaskData (the driver's cache); ``assets``: task name -> its assets (the teacher directory)."""
    m = spec.measure
    if not m:
        return {}
    return {
        MEASURE_KEY: {
            "runtimes": list(m["runtimes"]),
            "tasks": {task: dev_sample(task_data(task)) for task in spec.tasks},
            "teachers": {t: str(a.teacher) for t, a in assets.items() if a is not None and a.teacher},
            # a bpe student's encoder reads the BPEmb files again; a trial runs in a directory of its own
            "bpemb_dir": str(Path(bpemb).expanduser().resolve()) if (bpemb := spec.raw.get("bpemb_dir")) else None,
        }
    }


def with_latency(config: dict[str, Any], task: str, out_dir: str | Path, outcome: TrialOutcome) -> TrialOutcome:
    """``outcome`` with its model's latency rows added when ``config`` asks for them (else as it is). The model is
    ``out_dir / outcome.checkpoint_file`` (a student checkpoint), or ``out_dir`` itself (a compressed teacher)."""
    m = config.get(MEASURE_KEY)
    if not m or not outcome.finished or task not in m["tasks"]:
        return outcome
    # deferred: the export toolchain (onnx, onnxruntime) loads only in sweeps that measure latency
    from featherweight_core.export.speed import measure_speed

    model = Path(out_dir) / outcome.checkpoint_file if outcome.checkpoint_file else Path(out_dir)
    lats = measure_speed(
        model,
        runtimes=m["runtimes"],
        task_data=sample_task_data(m["tasks"][task]),
        teacher_dir=(m.get("teachers") or {}).get(task),
        bpemb_dir=m.get("bpemb_dir"),
    )
    outcome.latency = [x.to_dict() for x in lats]
    return outcome
