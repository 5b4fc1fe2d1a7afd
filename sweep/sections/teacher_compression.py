"""The ``teacher_compression:`` section of a sweep spec: which tasks' teachers to compress, and the grid of each
method (Theseus, BERT-Vision) to run; checked against a teacher's layer count once the teacher exists."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from featherweight_core.errors import UserError
from featherweight_core.vocab import (
    BERTVISION_HEADS,
    BERTVISION_POOLINGS,
    TEACHER_COMPRESSION_METHODS,
    TEACHER_PRECISIONS,
    THESEUS_SCHEDULES,
)
from sweep.spec_values import (
    Section,
    SpecError,
    check_choice,
    check_gpus,
    check_int,
    check_keys,
    check_list,
    check_number,
)

# ---- teacher_compression: a smaller transformer from each task's fine-tuned teacher ---------------------------------
# Per method: grid keys (a list or one value; the stage runs their product) and training keys (one value). A key left
# out is the core config's default (featherweight_core.teacher.theseus_config.TheseusConfig, bertvision.BertVisionConfig) and is
# not part of the trial's settings. Each entry: key -> (check, what the check expects).
TC_TOP_KEYS = {"tasks": None, "theseus": None, "bertvision": None}
_TC_COMMON_GRID = ("seeds", "quantize")
TC_GRID_KEYS = {
    "theseus": ("replace_rate", "schedule", "p", "replacing_fraction", "k", "b", "train_classifier", *_TC_COMMON_GRID),
    "bertvision": ("layers", "head", "adapter_size", "pooling", *_TC_COMMON_GRID),
}
TC_TRAINING_KEYS = {
    "theseus": ("epochs", "lr", "batch_size", "max_length", "max_train_examples", "warmup_ratio", "precision"),
    "bertvision": ("epochs", "lr", "batch_size", "max_length", "max_train_examples", "dropout"),
}
TC_ALIASES = {"theseus": {"r": "replace_rate"}, "bertvision": {"k": "layers"}}
# Knobs of one schedule only: the other schedule's values are left out of its trials (no duplicate trials that
# differ only in a knob they do not use)
THESEUS_SCHEDULE_KNOBS = {"constant": ("p", "replacing_fraction"), "linear": ("k", "b")}


def _tc_value(method: str, key: str, value: Any, where: str) -> Any:
    """One value of a teacher_compression knob, normalised (numbers of float knobs as floats)."""
    if key in ("seeds",):
        return check_int(value, where, 0)
    if key == "replace_rate":  # teacher layers per successor layer
        return check_int(value, where, 2)
    if key in ("layers", "adapter_size", "epochs", "batch_size", "max_train_examples"):
        return check_int(value, where, 1)
    if key == "max_length":
        return check_int(value, where, 8)
    if key in ("quantize", "train_classifier"):
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}")
        return value
    if key == "schedule":
        return check_choice(value, THESEUS_SCHEDULES, where)
    if key == "head":
        return check_choice(value, BERTVISION_HEADS, where)
    if key == "pooling":
        return check_choice(value, BERTVISION_POOLINGS, where)
    if key == "precision":
        return check_choice(value, TEACHER_PRECISIONS, where)
    if key in ("k", "lr"):
        v = check_number(value, where)
        if v <= 0:
            raise SpecError(f"{where}: expected a number > 0, got {value!r}")
        return v
    if key in ("p", "b", "replacing_fraction"):
        return check_number(value, where, 0.0, 1.0)
    if key in ("dropout", "warmup_ratio"):
        return check_number(value, where, 0.0, 1.0, hi_open=True)
    raise AssertionError(f"no check for teacher_compression.{method}.{key}")  # a key in the schema without a check


def _validate_tc_method(method: str, value: Any) -> dict:
    """``teacher_compression.<method>``: grid keys as a list or one value (stored as lists), training keys as one
    value; aliases (``r``, ``k``) become the key they stand for; keys left out stay out (the core's default)."""
    where = f"teacher_compression.{method}"
    value = {} if value is None else value
    aliases = TC_ALIASES[method]
    allowed = dict.fromkeys((*TC_GRID_KEYS[method], *TC_TRAINING_KEYS[method], *aliases))
    check_keys(value, allowed, where)
    for alias, key in aliases.items():
        if alias in value and key in value:
            raise SpecError(f"{where}.{alias}: {alias} is another name of {key}; give one of them, not both")
    out: dict[str, Any] = {}
    for given, v in value.items():
        key = aliases.get(given, given)
        w = f"{where}.{given}"
        if key in TC_GRID_KEYS[method]:
            values = check_list(v, w) if isinstance(v, list) else [v]
            checked = [
                _tc_value(method, key, x, f"{w}[{i}]" if isinstance(v, list) else w) for i, x in enumerate(values)
            ]
            out[key] = list(dict.fromkeys(checked))  # a value given twice runs once
        else:
            out[key] = _tc_value(method, key, v, w)
    out.setdefault("seeds", [0])
    out.setdefault("quantize", [False])
    for seed, quantize, settings in teacher_compression_grid(method, out):
        _check_core_config(method, settings, seed, quantize, where)
    return out


def _check_core_config(method: str, settings: dict, seed: int, quantize: bool, where: str) -> None:
    """The core config validates the combination (its own ranges and rules): its one-line error, under the
    section's name."""
    # the method's config lives with its training code (torch): loaded only for a teacher_compression section
    if method == "theseus":
        from featherweight_core.teacher.theseus_config import TheseusConfig as Config
    else:
        from featherweight_core.teacher.bertvision_config import BertVisionConfig as Config
    try:
        Config(**settings, seed=seed, quantize=quantize)
    except UserError as e:
        raise SpecError(f"{where}: {e}") from None


def teacher_compression_grid(method: str, section: dict) -> list[tuple[int, bool, dict]]:
    """``(seed, quantize, settings)`` per grid point of a validated method section; Theseus points leave out the
    knobs of the schedule they do not run."""
    grid_keys = [k for k in TC_GRID_KEYS[method] if k not in _TC_COMMON_GRID and k in section]
    training = {k: section[k] for k in TC_TRAINING_KEYS[method] if k in section}
    points = []
    for values in itertools.product(*(section[k] for k in grid_keys)):
        settings = dict(zip(grid_keys, values, strict=True))
        schedule = settings.get("schedule")
        if schedule is not None:
            for other, knobs in THESEUS_SCHEDULE_KNOBS.items():
                if other != schedule:
                    for knob in knobs:
                        settings.pop(knob, None)
        settings.update(training)
        points.append(settings)
    out, seen = [], set()
    for settings in points:
        for seed, quantize in itertools.product(section["seeds"], section["quantize"]):
            key = (seed, quantize, tuple(sorted(settings.items())))
            if key not in seen:
                seen.add(key)
                out.append((seed, quantize, dict(settings)))
    return out


def _outputs_only(task: dict) -> bool:
    """Whether the task's teacher is a file of its outputs (no model)."""
    return isinstance(task.get("teacher"), dict) and "outputs" in task["teacher"]


def validate_teacher_compression(value: Any, tasks: dict[str, dict]) -> dict:
    """``teacher_compression: {tasks, theseus, bertvision}``: which tasks' teachers to compress (default: every
    task with a teacher) and the grid of each method to run (a method key present, even empty, runs it)."""
    if value is None:
        value = {}
    check_keys(value, TC_TOP_KEYS, "teacher_compression")
    methods = [m for m in TEACHER_COMPRESSION_METHODS if m in value]
    if not methods:
        raise SpecError(
            f"teacher_compression: expected the settings of theseus and/or bertvision (empty for the"
            f" defaults), got {value!r}"
        )
    names = value.get("tasks")
    if names is None:
        names = [t for t, cfg in tasks.items() if cfg.get("teacher") and not _outputs_only(cfg)]
        if not names:
            raise SpecError(
                "teacher_compression.tasks: no task of this spec has a teacher to compress; set tasks.<task>.teacher"
            )
    else:
        names = [names] if isinstance(names, str) else check_list(names, "teacher_compression.tasks")
        for i, t in enumerate(names):
            if not isinstance(t, str) or t not in tasks:
                raise SpecError(
                    f"teacher_compression.tasks[{i}]: {t!r} is not a task of this spec; expected one of {sorted(tasks)}"
                )
            if not tasks[t].get("teacher"):
                raise SpecError(
                    f"teacher_compression.tasks[{i}]: task {t!r} has no teacher to compress; set tasks.{t}.teacher"
                )
            if _outputs_only(tasks[t]):
                raise SpecError(
                    f"teacher_compression.tasks[{i}]: task {t!r} has a teacher known by its outputs only: there is no"
                    " model to compress"
                )
        names = list(dict.fromkeys(names))
    out: dict[str, Any] = {"tasks": names}
    for m in methods:  # a method left out stays out (a saved spec validates to itself)
        out[m] = _validate_tc_method(m, value[m])
    return out


def teacher_layers(teacher_dir: str | Path) -> int:
    """The transformer layers of a fine-tuned teacher directory (its ``config.json``)."""
    from featherweight_core.teacher.config import TeacherError  # torch: only once a teacher exists

    path = Path(teacher_dir) / "config.json"
    try:
        layers = json.loads(path.read_text(encoding="utf-8")).get("num_hidden_layers")
    except (OSError, ValueError) as e:
        raise TeacherError(f"{path}: cannot read the teacher's config ({type(e).__name__}: {e})") from None
    if not isinstance(layers, int) or layers < 1:
        raise TeacherError(f"{path}: no num_hidden_layers (expected a transformer encoder's config)")
    return layers


def check_grid_against_teacher(tc: dict, layers: int, task: str, teacher: str | Path) -> None:
    """Every point of the ``teacher_compression`` section ``tc`` against a teacher of ``layers`` layers
    (:func:`_check_against_teacher`; ``teacher`` names it in the error)."""
    for method in TEACHER_COMPRESSION_METHODS:
        if method in tc:
            for _, _, settings in teacher_compression_grid(method, tc[method]):
                _check_against_teacher(method, settings, layers, task, teacher)


def _check_against_teacher(method: str, settings: dict, layers: int, task: str, teacher: str | Path) -> None:
    where = f"teacher_compression.{method}"
    if method == "bertvision" and settings.get("layers") is not None and settings["layers"] > layers:
        raise SpecError(
            f"{where}.layers: {settings['layers']} is more than the {layers} layers of task {task}'s"
            f" teacher ({teacher})"
        )
    r = settings.get("replace_rate")
    if method == "theseus" and r is not None and (r > layers or layers % r):
        raise SpecError(
            f"{where}.replace_rate: {r} does not divide the {layers} layers of task {task}'s teacher"
            f" ({teacher}) into blocks"
        )


def check_resources(resources: dict) -> None:
    """The per-trial resources of the stage's trials (``resources.teacher_compression_cpus`` / ``_gpus``)."""
    check_number(resources["teacher_compression_cpus"], "resources.teacher_compression_cpus", 0.01)
    check_gpus(resources["teacher_compression_gpus"], "resources.teacher_compression_gpus")


SECTION = Section(
    "teacher_compression",
    validate_teacher_compression,
    # auto GPUs: 1 per trial when the Ray cluster has a GPU, else 0
    resources={"teacher_compression_cpus": 1, "teacher_compression_gpus": "auto"},
    check_resources=check_resources,
)
