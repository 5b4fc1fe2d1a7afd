"""Loading a teacher: a hub id or a local directory, its tokenizer and sequence classifier, its recorded metadata
and its dev metrics as a baseline row.

Offline, a hub id that is not already in the Hugging Face cache fails at once with a hint to pass a local directory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from featherweight_core.errors import InputFileError
from featherweight_core.teacher.config import METRICS_FILE, TEACHER_META, TeacherError
from featherweight_core.teacher.modelfiles import check_model_files, is_task_head, load_pretrained

_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"


def resolve_model_source(name_or_dir: str | Path) -> tuple[str, bool]:
    """Where to load a model from: ``(path_or_hub_id, local_files_only)``.

    A local directory must hold a ``config.json``. A hub id is used as is when the hub is reachable, or when it is
    already in the Hugging Face cache; otherwise (offline) this fails at once instead of retrying for minutes.
    """
    text = str(name_or_dir)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TeacherError(f"{path}: not a Hugging Face model directory (no config.json)")
        check_model_files(path, TeacherError)
        return str(path), True
    if path.exists():
        raise TeacherError(f"{path}: expected a model directory or a hub id, got a file")
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or not _HUB_ID_RE.match(text):
        raise TeacherError(f"{text}: no such model directory (and not a Hugging Face hub id)")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(text, "config.json")
    if isinstance(cached, str):
        return text, hub_offline()
    # deferred: loads numpy only when called (importing this module does not)
    from featherweight_core.data.loading import hub_reachable

    if hub_offline() or not hub_reachable():
        raise TeacherError(
            f"model {text!r} is not a local directory and is not cached, and the Hugging Face hub is unreachable"
            " (offline); pass a local model directory instead (a model saved with `save_pretrained` while online,"
            " or one made by `featherweight teacher init-small`)"
        )
    return text, False


def quiet_transformers() -> None:
    """Silence transformers' own load/save progress bars and info logs; our progress bars say what runs."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_tokenizer(source: str, local_only: bool = True):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as e:
        raise TeacherError(f"{source}: cannot load a tokenizer ({type(e).__name__}: {_first_line(e)})") from None


def load_classifier(
    name_or_dir: str | Path,
    num_labels: int | None = None,
    label_names: Sequence[str] | None = None,
):
    """Load ``(model, tokenizer)`` for sequence classification. With ``num_labels`` (a fine-tuning start), a checkpoint
    without a (matching) classification head gets a fresh one (and a fresh pooler where it has none); without it, the
    checkpoint's own head is used (an already fine-tuned teacher) and every tensor must be in the checkpoint: one left
    newly initialised (a config naming another architecture than the weights) is a :class:`TeacherError`.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    quiet_transformers()
    source, local_only = resolve_model_source(name_or_dir)
    kwargs: dict[str, Any] = {}
    if num_labels is not None:
        names = list(label_names) if label_names else [f"LABEL_{i}" for i in range(num_labels)]
        kwargs = {
            "num_labels": num_labels,
            "id2label": dict(enumerate(names)),
            "label2id": {n: i for i, n in enumerate(names)},
        }
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise TeacherError(
            f"{source}: cannot load a sequence classifier ({type(e).__name__}: {_first_line(e)})"
        ) from None
    model = load_pretrained(
        AutoModelForSequenceClassification,
        source,
        TeacherError,
        "a sequence classifier",
        new_ok=is_task_head if num_labels is not None else None,
        config=config,
        local_files_only=local_only,
        ignore_mismatched_sizes=num_labels is not None,
    )
    return model, load_tokenizer(source, local_only)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""


def read_teacher_meta(teacher_dir: str | Path) -> dict[str, Any]:
    """``featherweight_teacher.json`` of a teacher saved by :func:`finetune_teacher` ({} if absent)."""
    d = Path(teacher_dir)
    if not d.is_dir():
        raise TeacherError(f"{d}: teacher directory not found" if not d.exists() else f"{d}: not a directory")
    path = d / TEACHER_META
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise TeacherError(f"{path}: not valid JSON ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(meta, dict):
        raise TeacherError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def teacher_baseline(teacher_dir: str | Path) -> dict[str, Any]:
    """A fine-tuned teacher as a baseline row next to its students: ``name`` (``teacher:`` + the directory's name,
    or its parent's when the directory is called ``teacher``), ``score``, ``accuracy``, ``f1`` (from
    ``teacher_metrics.json``; None where not measured) and ``params``, ``disk_bytes``, ``gzip_bytes`` of its weight
    file, measured as students are (:func:`featherweight_core.students.measure.saved_model_sizes`)."""
    # deferred: loads torch and numpy only when called (importing this module does not)
    from featherweight_core.students.measure import saved_model_sizes

    tdir = Path(teacher_dir)
    if not tdir.is_dir():
        raise InputFileError(f"{tdir}: teacher directory not found")
    metrics_file = tdir / METRICS_FILE
    if not metrics_file.is_file():
        raise TeacherError(
            f"{tdir}: no {METRICS_FILE}; fine-tune the teacher with `featherweight teacher finetune`"
            " to measure its dev score"
        )
    try:
        metrics = json.loads(metrics_file.read_text())
    except (ValueError, OSError) as e:
        raise TeacherError(f"{metrics_file}: not readable JSON ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(metrics, dict):
        raise TeacherError(f"{metrics_file}: expected a JSON object of dev metrics")
    return {
        "name": f"teacher:{tdir.name if tdir.name != 'teacher' else tdir.parent.name}",
        "score": metrics.get("score", metrics.get("accuracy")),
        "accuracy": metrics.get("accuracy"),
        "f1": metrics.get("f1"),
        **saved_model_sizes(tdir),
    }
