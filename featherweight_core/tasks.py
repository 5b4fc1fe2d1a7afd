"""Task specifications: what a task's text columns, labels, splits and headline metric are.

A :class:`TaskSpec` says nothing about where data comes from; :mod:`featherweight_core.data` loads a spec's
splits from the HF hub, a local GLUE directory, custom TSV/CSV files, or the built-in synthetic generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from featherweight_core import vocab
from featherweight_core.errors import ConfigError

# Split names are the HF `datasets` names; local GLUE files map onto them in data.py.
TRAIN = "train"


@dataclass(frozen=True)
class TaskSpec:
    """A classification task.

    name: registry key (``sst2``, ``qqp``, ``mnli``, ``synthetic`` or a user-chosen name).
    text_fields: one field for single-sentence tasks, two for sentence-pair tasks.
    label_names: class names in label-id order.
    eval_splits: dev splits scored after each epoch; the headline score is the mean of their primary metric.
    metric: ``accuracy`` or ``f1`` (positive class), the metric early stopping and the sweep rank by.
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

    def __post_init__(self) -> None:
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
    """Look up a built-in task by name; custom tasks are built with :func:`custom_task`."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; expected one of {sorted(TASKS)} or a custom task") from None


def custom_task(
    name: str,
    text_fields: tuple[str, ...] | list[str],
    label_names: tuple[str, ...] | list[str],
    metric: str = "accuracy",
    label_column: str = "label",
) -> TaskSpec:
    """A user-defined task read from TSV/CSV files whose header names ``text_fields`` and ``label_column``."""
    if name in TASKS:
        raise ConfigError(f"custom task name {name!r} clashes with a built-in task; choose another name")
    return TaskSpec(
        name=name,
        text_fields=tuple(text_fields),
        label_names=tuple(str(x) for x in label_names),
        metric=metric,
        extra_metrics=("f1",) if len(label_names) == 2 and metric != "f1" else (),
        glue_text_columns=tuple(text_fields),
        glue_label_column=label_column,
    )
