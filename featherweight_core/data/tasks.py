"""Task specifications: what a task's text columns, labels, splits and headline metric are.

A :class:`TaskSpec` says nothing about where data comes from; :mod:`featherweight_core.data` loads a spec's
splits from the HF hub, a local GLUE directory, custom TSV/CSV files, or the built-in synthetic generator.

A custom task (the user's own dataset) is built from plain options with :func:`task_from_options` - the one place
the command line and the sweep spec turn options into a task - and travels with its artefacts as
:meth:`TaskSpec.to_dict` (rebuilt with :meth:`TaskSpec.from_dict`).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from featherweight_core import vocab
from featherweight_core.errors import ConfigError

# Split names are the HF `datasets` names; local GLUE files map onto them in data.py.
TRAIN = "train"
TEST = "test"

TASK_OPTIONS = ("text_columns", "label_column", "labels", "metric", "split", "encoding", "on_bad_bytes")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class SplitConfig:
    """How one data file is split: ``dev_fraction`` held out as ``validation``, ``test_fraction`` as ``test``
    (none when 0), per class when ``stratify``, deterministically for a given ``seed``. A directory with its own
    train/dev(/test) files, or a hub dataset with its own splits, is used as it is."""

    dev_fraction: float = 0.1
    test_fraction: float = 0.0
    seed: int = 0
    stratify: bool = True

    def __post_init__(self) -> None:
        if not _is_number(self.dev_fraction) or not 0.0 < self.dev_fraction < 1.0:
            raise ConfigError(f"split.dev_fraction: expected a number in (0, 1), got {self.dev_fraction!r}")
        if not _is_number(self.test_fraction) or not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"split.test_fraction: expected a number in [0, 1), got {self.test_fraction!r}")
        if self.dev_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                f"split.test_fraction: dev_fraction + test_fraction must be < 1 (something must be left to train"
                f" on), got {self.dev_fraction} + {self.test_fraction}"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"split.seed: expected an integer, got {self.seed!r}")
        if not isinstance(self.stratify, bool):
            raise ConfigError(f"split.stratify: expected true or false, got {self.stratify!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dev_fraction": self.dev_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            "stratify": self.stratify,
        }

    @classmethod
    def from_options(cls, options: Any) -> SplitConfig:
        """Build from a mapping of SplitConfig's fields; errors start with ``split.<field>``."""
        if isinstance(options, SplitConfig):
            return options
        if not isinstance(options, Mapping):
            raise ConfigError(f"split: expected a mapping of {[f.name for f in fields(cls)]}, got {options!r}")
        known = [f.name for f in fields(cls)]
        for key in options:
            if key not in known:
                raise ConfigError(f"split.{key}: unknown split option; expected one of {known}")
        return cls(**dict(options))


@dataclass(frozen=True)
class TaskSpec:
    """A classification task.

    name: registry key (``sst2``, ``qqp``, ``mnli``, ``synthetic`` or a user-chosen name).
    text_fields: one field for single-sentence tasks, two for sentence-pair tasks.
    label_names: class names in label-id order.
    eval_splits: dev splits scored after each epoch; the headline score is the mean of their primary metric.
    metric: ``accuracy``, ``f1`` (positive class = the second label; binary tasks) or ``macro_f1``: the metric
        early stopping and the sweep rank by.
    label_column, split, encoding, on_bad_bytes: how a custom task's files are read (see :mod:`~.data`);
    custom: built by :func:`task_from_options` (the user's own dataset) rather than a built-in task.
    """

    name: str
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    eval_splits: tuple[str, ...] = ("validation",)
    metric: str = "accuracy"
    extra_metrics: tuple[str, ...] = ()
    hub_id: tuple[str, str] | None = None  # (dataset path, config name) for `datasets.load_dataset`
    glue_dir: str | None = None  # directory name inside a GLUE data root
    glue_files: dict[str, str] = field(default_factory=dict)  # split -> file name in glue_dir
    glue_text_columns: tuple[str, ...] = ()  # header names of the text columns in GLUE TSVs
    glue_label_column: str = "label"
    label_column: str = "label"
    split: SplitConfig = SplitConfig()
    encoding: str = "utf-8"
    on_bad_bytes: str = "replace"
    custom: bool = False

    def __post_init__(self) -> None:
        try:
            codecs.lookup(self.encoding)
        except (LookupError, TypeError):
            raise ConfigError(f"encoding: unknown text encoding {self.encoding!r} (e.g. utf-8, latin-1)") from None
        if self.on_bad_bytes not in vocab.BAD_BYTES_POLICIES:
            raise ConfigError(f"on_bad_bytes: {self.on_bad_bytes!r} is not one of {list(vocab.BAD_BYTES_POLICIES)}")
        if len(self.text_fields) not in (1, 2):
            raise ConfigError(f"task {self.name!r}: text_fields must have 1 or 2 entries, got {self.text_fields}")
        if len(self.label_names) < 2:
            raise ConfigError(f"task {self.name!r}: needs at least 2 labels, got {self.label_names}")
        if self.metric not in vocab.TASK_METRICS:
            raise ConfigError(
                f"task {self.name!r}: metric must be one of {list(vocab.TASK_METRICS)}, got {self.metric!r}"
            )
        if self.metric == "f1" and len(self.label_names) != 2:
            raise ConfigError(f"task {self.name!r}: f1 needs a binary task, got {len(self.label_names)} labels")

    @property
    def text_columns(self) -> tuple[str, ...]:
        """Header names of the text columns in the task's files."""
        return self.glue_text_columns or self.text_fields

    def to_dict(self) -> dict[str, Any]:
        """JSON-able definition: ``{"name": ...}`` for a built-in task, every option for a custom one."""
        if not self.custom:
            return {"name": self.name}
        return {
            "name": self.name,
            "custom": True,
            "text_columns": list(self.text_columns),
            "label_column": self.label_column,
            "labels": list(self.label_names),
            "metric": self.metric,
            "split": self.split.to_dict(),
            "encoding": self.encoding,
            "on_bad_bytes": self.on_bad_bytes,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskSpec:
        """Rebuild a task from :meth:`to_dict` (or a bare task name)."""
        if isinstance(d, str):
            return get_task(d)
        if not isinstance(d, Mapping) or not isinstance(d.get("name"), str):
            raise ConfigError(f"task: expected a task definition with a name, got {d!r}")
        if not d.get("custom"):
            return get_task(d["name"])
        return task_from_options(d["name"], {k: v for k, v in d.items() if k not in ("name", "custom")})

    def definition_fingerprint(self) -> str:
        """Short hash of :meth:`to_dict`: equal for equal task definitions."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def differences(self, other: TaskSpec) -> list[str]:
        """What differs between two task definitions, e.g. ``["labels ['a', 'b'] vs ['x', 'y']"]``."""
        a, b = self.to_dict(), other.to_dict()
        out = []
        for key in dict.fromkeys([*a, *b]):
            if a.get(key) != b.get(key):
                out.append(f"{key} {a.get(key)!r} vs {b.get(key)!r}")
        return out

    @property
    def pair(self) -> bool:
        return len(self.text_fields) == 2

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


SST2 = TaskSpec(
    name="sst2",
    text_fields=("sentence",),
    label_names=("negative", "positive"),
    hub_id=("nyu-mll/glue", "sst2"),
    glue_dir="SST-2",
    glue_files={"train": "train.tsv", "validation": "dev.tsv"},
    glue_text_columns=("sentence",),
    glue_label_column="label",
)

QQP = TaskSpec(
    name="qqp",
    text_fields=("question1", "question2"),
    label_names=("not_duplicate", "duplicate"),
    extra_metrics=("f1",),
    hub_id=("nyu-mll/glue", "qqp"),
    glue_dir="QQP",
    glue_files={"train": "train.tsv", "validation": "dev.tsv"},
    glue_text_columns=("question1", "question2"),
    glue_label_column="is_duplicate",
)

MNLI = TaskSpec(
    name="mnli",
    text_fields=("premise", "hypothesis"),
    label_names=("entailment", "neutral", "contradiction"),
    eval_splits=("validation_matched", "validation_mismatched"),
    hub_id=("nyu-mll/glue", "mnli"),
    glue_dir="MNLI",
    glue_files={
        "train": "train.tsv",
        "validation_matched": "dev_matched.tsv",
        "validation_mismatched": "dev_mismatched.tsv",
    },
    glue_text_columns=("sentence1", "sentence2"),
    glue_label_column="gold_label",
)

SYNTHETIC = TaskSpec(
    name="synthetic",
    text_fields=("sentence",),
    label_names=("negative", "positive"),
)

SYNTHETIC_PAIR = TaskSpec(
    name="synthetic_pair",
    text_fields=("sentence1", "sentence2"),
    label_names=("different", "same"),
    extra_metrics=("f1",),
)

TASKS: dict[str, TaskSpec] = {t.name: t for t in (SST2, QQP, MNLI, SYNTHETIC, SYNTHETIC_PAIR)}


def get_task(name: str) -> TaskSpec:
    """Look up a built-in task by name; custom tasks are built with :func:`task_from_options`."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown task {name!r}; expected one of {sorted(TASKS)} or a custom task") from None


def _str_list(key: str, value: Any, lo: int, hi: int | None) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(x, str | int) and not isinstance(x, bool) for x in items
    ):
        raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
    items = [str(x).strip() for x in items]
    if any(not x for x in items):
        raise ConfigError(f"{key}: empty name in {value!r}")
    if len(set(items)) != len(items):
        raise ConfigError(f"{key}: duplicate names in {value!r}")
    if len(items) < lo or (hi is not None and len(items) > hi):
        want = f"{lo} or {hi}" if hi == lo + 1 else (f"at least {lo}" if hi is None else f"{lo}..{hi}")
        raise ConfigError(f"{key}: expected {want} names, got {len(items)} ({value!r})")
    return tuple(items)


def task_from_options(name: str, options: Mapping[str, Any] | None = None) -> TaskSpec:
    """The one place a task is built from user options (command line, sweep spec, a stored definition).

    A built-in name without options is the built-in task. Any other name is a custom task and needs
    ``text_columns`` (one or two header names) and ``labels`` (label names as written in the data, in id order);
    optional: ``label_column`` (default ``label``), ``metric`` (default ``accuracy``), ``split`` (a mapping of
    :class:`SplitConfig`'s fields), ``encoding`` (default ``utf-8``), ``on_bad_bytes`` (``replace`` or ``error``).
    Errors are :class:`ConfigError` whose message starts with the option's key.

    >>> task_from_options("sst2").name
    'sst2'
    >>> t = task_from_options("tweets", {"text_columns": "text", "labels": ["neg", "neu", "pos"],
    ...                                  "metric": "macro_f1", "split": {"test_fraction": 0.1}})
    >>> t.num_labels, t.metric, t.split.test_fraction, TaskSpec.from_dict(t.to_dict()) == t
    (3, 'macro_f1', 0.1, True)
    """
    opts = dict(options or {})
    if not isinstance(name, str) or not name:
        raise ConfigError(f"task: expected a task name, got {name!r}")
    for key in opts:
        if key not in TASK_OPTIONS:
            raise ConfigError(f"{key}: unknown task option; expected one of {list(TASK_OPTIONS)}")
    if name in TASKS:
        if opts:
            key = next(iter(opts))
            raise ConfigError(
                f"{key}: task {name!r} is a built-in task and takes no task options; choose another name for a"
                " custom task"
            )
        return TASKS[name]
    if "text_columns" not in opts or "labels" not in opts:
        raise ConfigError(
            f"task {name!r} is not a built-in task ({sorted(TASKS)}); a custom task needs text_columns and labels"
            " (and data)"
        )
    if not _NAME_RE.match(name):
        raise ConfigError(f"task {name!r}: a custom task name uses letters, digits, '_', '-' and '.' only")
    text_columns = _str_list("text_columns", opts["text_columns"], 1, 2)
    labels = _str_list("labels", opts["labels"], 2, None)
    label_column = opts.get("label_column", "label")
    if not isinstance(label_column, str) or not label_column.strip():
        raise ConfigError(f"label_column: expected a column name, got {label_column!r}")
    label_column = label_column.strip()
    if label_column in text_columns:
        raise ConfigError(f"label_column: {label_column!r} is also a text column")
    metric = opts.get("metric", "accuracy")
    if metric not in vocab.TASK_METRICS:
        raise ConfigError(f"metric: {metric!r} is not one of {list(vocab.TASK_METRICS)}")
    if metric == "f1" and len(labels) != 2:
        raise ConfigError(
            f"metric: 'f1' (of the positive class) needs a binary task, got {len(labels)} labels; use macro_f1"
        )
    split = SplitConfig.from_options(opts.get("split", {}))
    encoding = opts.get("encoding", "utf-8")
    if not isinstance(encoding, str):
        raise ConfigError(f"encoding: expected an encoding name, got {encoding!r}")
    on_bad = opts.get("on_bad_bytes", "replace")
    if on_bad not in vocab.BAD_BYTES_POLICIES:
        raise ConfigError(f"on_bad_bytes: {on_bad!r} is not one of {list(vocab.BAD_BYTES_POLICIES)}")
    return TaskSpec(
        name=name,
        text_fields=text_columns,
        label_names=labels,
        metric=metric,
        extra_metrics=("f1",) if len(labels) == 2 and metric != "f1" else (),
        glue_text_columns=text_columns,
        glue_label_column=label_column,
        label_column=label_column,
        split=split,
        encoding=encoding,
        on_bad_bytes=on_bad,
        custom=True,
    )


def custom_task(
    name: str,
    text_fields: tuple[str, ...] | list[str],
    label_names: tuple[str, ...] | list[str],
    metric: str = "accuracy",
    label_column: str = "label",
    **options: Any,
) -> TaskSpec:
    """A user-defined task read from TSV/CSV files whose header names ``text_fields`` and ``label_column``
    (a shorthand for :func:`task_from_options`; ``options``: split, encoding, on_bad_bytes)."""
    if name in TASKS:
        raise ConfigError(f"custom task name {name!r} clashes with a built-in task; choose another name")
    return task_from_options(
        name,
        {
            "text_columns": list(text_fields),
            "labels": list(label_names),
            "metric": metric,
            "label_column": label_column,
            **options,
        },
    )


def recorded_task_of(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The task definition an artefact's metadata records: ``task_spec`` (``TaskSpec.to_dict()``), a ``task``
    that is such a dict, or (older artefacts) a built-in task's name; None when there is none."""
    spec = meta.get("task_spec")
    if isinstance(spec, dict):
        return spec
    task = meta.get("task")
    if isinstance(task, dict):
        return task
    if isinstance(task, str) and task in TASKS:
        return {"name": task}
    return None
