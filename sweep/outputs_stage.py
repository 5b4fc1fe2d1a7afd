"""The ``soft_targets`` stage of a teacher known by its outputs only (``tasks.T.teacher: {outputs: FILE}``: an LLM,
a model on another machine). Nothing runs the teacher: the driver reads the file(s)
(:mod:`featherweight_core.teacher.outputs`), matches their rows to the task's texts, records the coverage in the
stage's row, scores the teacher on dev when the file covers it, and stops the sweep before training when training
rows (unless ``allow_missing``) or bootstrap rows have no output, writing the bootstrap texts to label to a file the
error names."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from featherweight_core.data.taskdata import DataError
from featherweight_core.errors import UserError
from featherweight_core.teacher.augment import read_augmented
from featherweight_core.teacher.outputs import write_texts
from featherweight_core.teacher.softtargets import texts_fingerprint
from sweep.assets import TaskAssets, TaskDataCache
from sweep.spec import SweepSpec

STAGE_VERSION = 1


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps({"v": STAGE_VERSION, **obj}, sort_keys=True).encode()).hexdigest()[:16]


def file_teacher_stage(
    spec: SweepSpec, store, stage_rows: dict, data: TaskDataCache, say: Callable[[str], None], task: str, a: TaskAssets
) -> None:
    """The ``soft_targets`` stage of a teacher known by its outputs: match the file's rows to the task's texts
    by their normalised text, count what each split has, score the teacher on dev when the file covers it (its
    baseline row), and stop with a UserError when training rows (unless ``allow_missing``) or bootstrap rows
    have no output: for bootstrap rows, their texts are written to a file to label, which the error names.
    ``stage_rows``: the sweep's stage rows by (task, stage, fingerprint); a finished one is not written again."""
    td = data(task)
    out = a.teacher_outputs(td.task)
    boot = read_augmented(a.bootstrap, td.task)[0] if a.bootstrap else None
    fp = _fingerprint(
        {
            "stage": "soft_targets",
            "outputs": out.fingerprint,
            "data": td.fingerprint(),
            "bootstrap": texts_fingerprint(boot.keys, boot.texts) if boot is not None else None,
        }
    )
    row = stage_rows.get((task, "soft_targets", fp))
    done = row is not None and row["status"] in ("finished", "cached")
    detail: dict[str, Any] = {"outputs": list(out.sources), "layouts": list(out.layouts), "rows": out.rows_read}
    if not done:
        store.start_stage(spec.name, task, "soft_targets", fp, out.name, detail)
    try:
        looked_up = []
        for name, sp in td.splits.items():
            found, cov = out.coverage(sp.texts, f"{name} rows")
            looked_up.append(found)
            detail[f"covered_{name}"] = cov.covered
            if cov.missing:
                say(f"soft_targets {task}: {cov}")
            if name == "train" and cov.missing and not a.allow_missing:
                raise DataError(
                    f"tasks.{task}.teacher.outputs: {out.name}: {cov}; label those texts too, or set"
                    f" tasks.{task}.teacher.allow_missing: true (they are then taught their gold label)"
                )
        if boot is not None:
            found, cov = out.coverage(boot.texts, "bootstrap rows")
            looked_up.append(found)
            detail["covered_bootstrap"] = cov.covered
            if cov.missing:
                raise DataError(_to_label(spec, task, boot, found, cov, out.name))
        detail["unused"] = out.unused(looked_up)
        metrics = out.dev_metrics(td)
    except UserError as e:
        store.finish_stage(spec.name, task, "soft_targets", fp, "failed", message=str(e))
        say(f"soft_targets {task}: failed: {e}")
        raise
    if detail["unused"]:
        say(f"soft_targets {task}: {detail['unused']:,} texts of {out.name} are not in the task: ignored")
    t = spec.file_teacher(task)
    if metrics is not None:
        detail["metrics"] = metrics
        a.baseline = {
            "name": f"teacher:{t['name'] or Path(out.sources[0]).stem}",
            "score": metrics["score"],
            "accuracy": metrics.get("accuracy"),
            "f1": metrics.get("f1"),
            **{k: t[k] for k in ("params", "disk_bytes", "gzip_bytes")},
            "note": f"scored from its outputs {out.name} (fingerprint {out.fingerprint})",
        }
    else:
        say(f"soft_targets {task}: {out.name} does not cover every dev row: the teacher has no dev score")
    if not done:
        store.finish_stage(spec.name, task, "soft_targets", fp, "finished", seconds=0.0, output=out.name, detail=detail)
    say(f"soft_targets {task}: teacher outputs {out.name} ({out.rows_read:,} rows) match the task's texts")


def _to_label(spec: SweepSpec, task: str, boot, rows, cov, outputs: str) -> str:
    """Write the bootstrap texts without a teacher output to ``assets/<task>/to-label-<fp>.csv`` (atomically);
    the error message that names it."""
    missing = [boot.texts[i] for i in range(len(boot)) if rows[i] < 0]
    path = (
        spec.storage
        / spec.name
        / "assets"
        / task
        / f"to-label-{texts_fingerprint([str(i) for i in range(len(missing))], missing)}.csv"
    )
    n = write_texts(path, missing, spec.task_spec(task))
    return (
        f"tasks.{task}.teacher.outputs: {outputs}: {cov}; label the {n:,} texts in {path} with your teacher and"
        f" add the labelled file to tasks.{task}.teacher.outputs (a list of files is fine), then run the sweep again"
    )
