"""What an export starts from: a student checkpoint, a teacher directory or a compressed-teacher directory, loaded
into one :class:`ExportSource`, the task data it records, and its sizes measured again the way its trial measured
them (students: ``measure.param_counts`` and ``measure.disk_size``; teacher directories:
``measure.saved_model_sizes``; compressed teachers: ``teacher_compression.measure_saved``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from featherweight_core.data.loading import load_task_data
from featherweight_core.data.tasks import TaskSpec, recorded_task_of
from featherweight_core.errors import InputFileError, UserError
from featherweight_core.pipeline import checkpoint as ck
from featherweight_core.pipeline.checkpoint import load_checkpoint
from featherweight_core.students.measure import disk_size, param_counts, saved_model_sizes
from featherweight_core.teacher import teacher_compression as tc
from featherweight_core.teacher.compressed import load_compressed
from featherweight_core.teacher.config import TeacherConfig
from featherweight_core.teacher.loading import load_classifier, read_teacher_meta
from featherweight_core.teacher.teacher_compression import measure_saved

SIZE_MEASURES = ("params", "disk_bytes", "gzip_bytes")


class ExportError(UserError, ValueError):
    """A model that cannot be exported as asked, an artefact whose predictions differ from the model's, or a
    checkpoint whose sizes differ from the recorded ones."""


# ---------------------------------------------------------------------------------------------------------------
# sources


@dataclass
class ExportSource:
    kind: str  # student | compressed_student | teacher | compressed_teacher
    path: Path
    model: nn.Module
    meta: dict[str, Any]
    student_cfg: Any = None  # StudentConfig (students)
    tokenizer: Any = None  # transformers
    max_length: int | None = None  # transformers

    @property
    def is_student(self) -> bool:
        return self.student_cfg is not None


def load_source(source: str | Path) -> ExportSource:
    path = Path(source)
    if path.is_file():
        payload = ck.load_weights_only(path)
        fmt = payload.get("format") if isinstance(payload, dict) else None
        if fmt == ck.COMPRESSED_FORMAT:
            model, cfg, meta = ck.load_compressed(path)
            return ExportSource("compressed_student", path, model, meta, cfg.resolved())
        if fmt == ck.FORMAT:
            model, cfg, meta = ck.load_checkpoint(path)
            return ExportSource("student", path, model, meta, cfg.resolved())
        raise ExportError(f"{path}: not a featherweight student checkpoint (student.pt or compressed.pt)")
    if path.is_dir():
        if (path / tc.COMPRESSED_META).is_file():
            model, tokenizer, meta = load_compressed(path)
            return ExportSource(
                "compressed_teacher", path, model.eval(), meta, tokenizer=tokenizer, max_length=_max_length(meta, path)
            )
        if (path / "config.json").is_file():
            meta = read_teacher_meta(path)
            model, tokenizer = load_classifier(path)
            return ExportSource(
                "teacher", path, model.eval(), meta, tokenizer=tokenizer, max_length=_max_length(meta, path)
            )
        raise ExportError(
            f"{path}: not a model directory (expected a fine-tuned teacher with config.json, or a"
            f" compressed teacher with {tc.COMPRESSED_META})"
        )
    raise InputFileError(f"{path}: no such checkpoint file or model directory")


def _max_length(meta: dict[str, Any], path: Path) -> int:
    for value in (meta.get("max_length"), (meta.get("config") or {}).get("max_length")):
        if isinstance(value, int) and value > 0:
            return value
    return TeacherConfig().max_length


def source_task_metas(src: ExportSource) -> list[dict[str, Any]]:
    """The metadata that may record the source's task and data, in order: its own, its parent checkpoint's (a
    compressed student names its parent) and its teacher directory's (a compressed teacher names its teacher)."""
    metas = [src.meta]
    parent = src.meta.get("parent")
    if isinstance(parent, str) and Path(parent).is_file():
        with contextlib.suppress(UserError):
            metas.append(load_checkpoint(parent)[2])
    teacher = src.meta.get("teacher")
    tdir = teacher.get("dir") if isinstance(teacher, dict) else None
    if isinstance(tdir, str) and Path(tdir).is_dir():
        with contextlib.suppress(UserError):
            metas.append(read_teacher_meta(tdir))
    return metas


def resolve_task_data(metas: list[dict[str, Any]], data: str | None, what: str):
    """The :class:`~featherweight_core.data.taskdata.TaskData` an artefact records: the task (``task_spec`` / ``task``) and
    the ``data_source`` of the first of ``metas`` that records one; ``data`` replaces the recorded data source."""
    metas = [m for m in metas if m]
    recorded = next((recorded_task_of(m) for m in metas if recorded_task_of(m) is not None), None)
    if recorded is None:
        raise ExportError(f"{what} records no task: cannot check the artefact on a dev split")
    task = TaskSpec.from_dict(recorded)
    source = data
    if source is None:
        source = next((m.get("data_source") for m in metas if m.get("data_source")), None)
    if isinstance(source, str) and source.startswith("synthetic"):  # recorded as e.g. "synthetic(seed=13)"
        source = "synthetic"
    if source is not None and not str(source).startswith(("hf:", "hub", "synthetic")) and not Path(source).exists():
        raise InputFileError(f"{source}: the data {what} was made from is not there; pass its new place with --data")
    return load_task_data(task, source)


# ---------------------------------------------------------------------------------------------------------------
# sizes


def measure_source(src: ExportSource) -> dict[str, int]:
    """``{"params", "disk_bytes", "gzip_bytes"}`` of the source, measured as its trial was."""
    if src.is_student:
        return {"params": int(param_counts(src.model)["total"]), **disk_size(src.model)}
    if src.kind == "compressed_teacher":
        return measure_saved(src.path)
    return saved_model_sizes(src.path)


def check_recorded_sizes(src: ExportSource, recorded: dict[str, Any] | None) -> dict[str, tuple[int, int]]:
    """Compare the recorded sizes (``params``, ``disk_bytes``, ``gzip_bytes``; None or missing ones skipped) with the
    source measured now; a difference is an :class:`ExportError` naming the measure and both values."""
    wanted = {k: v for k, v in (recorded or {}).items() if k in SIZE_MEASURES and v is not None}
    if not wanted:
        return {}
    now = measure_source(src)
    check = {k: (int(v), int(now[k])) for k, v in wanted.items()}
    bad = [f"{k} recorded {a:,}, now {b:,}" for k, (a, b) in check.items() if a != b]
    if bad:
        raise ExportError(
            f"{src.path}: differs from what was recorded ({'; '.join(bad)}): the checkpoint changed"
            " since it was recorded"
        )
    return check


def error_summary(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {line[:300]}" if line else type(e).__name__
