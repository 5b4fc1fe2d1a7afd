"""A task's data in memory: :class:`TaskData` holds, per split, the text columns, integer labels and a stable
string key per example (used to align teacher logits and bootstrap data), and a :class:`LoadReport` of the rows
kept and skipped. Also how a dataset without predefined splits is split, and the checks every loader applies."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featherweight_core.data.tasks import SplitConfig, TaskSpec
from featherweight_core.errors import UserError


class DataError(UserError, ValueError):
    """Input data that cannot be used: missing files, bad headers, wrong label sets, unreachable hub."""


@dataclass
class Split:
    """One split: ``texts[i]`` is a tuple with one string per text field, ``labels[i]`` an int in [0, C)."""

    texts: list[tuple[str, ...]]
    labels: np.ndarray  # (N,) int64
    keys: list[str]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if not (len(self.texts) == len(self.labels) == len(self.keys)):
            raise ValueError("Split texts, labels and keys must have equal lengths")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: Iterable[int]) -> Split:
        idx = list(idx)
        return Split([self.texts[i] for i in idx], self.labels[idx], [self.keys[i] for i in idx])


# Kinds of bad rows, in report order, with how the report names them
BAD_ROW_KINDS = {
    "bad_bytes": "undecodable bytes",
    "wrong_columns": "wrong column count",
    "missing_label": "missing label",
    "unknown_label": "unknown label",
    "empty_text": "empty text",
}


@dataclass
class SplitReport:
    """What reading one file did: rows read, rows kept, and per kind of bad row the count and the first
    ``file:line``. Rows with undecodable bytes are kept (bytes replaced by U+FFFD) unless bad in another way too;
    every other kind of bad row is skipped."""

    source: str
    rows: int = 0
    kept: int = 0
    wrong_columns: int = 0
    missing_label: int = 0
    unknown_label: int = 0
    bad_bytes: int = 0
    empty_text: int = 0
    first: dict[str, str] = field(default_factory=dict)  # kind -> "file:line" of its first row

    @property
    def skipped(self) -> int:
        return self.rows - self.kept

    def count(self, kind: str, where: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.first.setdefault(kind, where)

    def counts(self) -> dict[str, int]:
        return {kind: getattr(self, kind) for kind in BAD_ROW_KINDS}

    def to_dict(self) -> dict:
        return {"source": self.source, "rows": self.rows, "kept": self.kept, **self.counts(), "first": dict(self.first)}

    def __str__(self) -> str:
        s = f"{self.source}: {self.kept}/{self.rows} rows kept"
        skipped = [
            f"{getattr(self, k)} {BAD_ROW_KINDS[k]} (first at {self.first[k]})"
            for k in BAD_ROW_KINDS
            if k != "bad_bytes" and getattr(self, k)
        ]
        if skipped:
            s += f" (skipped: {', '.join(skipped)})"
        if self.bad_bytes:
            s += (
                f"; {self.bad_bytes} rows with undecodable bytes, replaced by U+FFFD"
                f" (first at {self.first['bad_bytes']})"
            )
        return s


@dataclass
class LoadReport:
    """Per source split (``all`` for one file that was split here) a :class:`SplitReport`; ``str()`` is one line
    per split: ``SPLIT: FILE: KEPT/ROWS rows kept (skipped: N KIND (first at FILE:LINE), ...)``."""

    splits: dict[str, SplitReport] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.splits.values())

    @property
    def bad_bytes(self) -> int:
        return sum(r.bad_bytes for r in self.splits.values())

    def counts(self) -> dict[str, int]:
        """Totals per kind of bad row over all splits."""
        return {k: sum(getattr(r, k) for r in self.splits.values()) for k in BAD_ROW_KINDS}

    def to_dict(self) -> dict:
        return {name: rep.to_dict() for name, rep in self.splits.items()}

    def __str__(self) -> str:
        return "\n".join(f"{name}: {rep}" for name, rep in self.splits.items())


@dataclass
class TaskData:
    task: TaskSpec
    splits: dict[str, Split]
    report: LoadReport
    source: str
    split_info: dict = field(default_factory=dict)  # how the splits were made (JSON-able; stored with trials)

    @property
    def train(self) -> Split:
        return self.splits["train"]

    def fingerprint(self) -> str:
        """Content hash of all splits (texts, labels, keys): the cache key for anything derived from the data."""
        h = hashlib.sha256(self.task.name.encode())
        for name in sorted(self.splits):
            sp = self.splits[name]
            h.update(name.encode())
            for key, text, label in zip(sp.keys, sp.texts, sp.labels.tolist(), strict=True):
                h.update(key.encode())
                h.update("\x1f".join(text).encode())
                h.update(str(label).encode())
        return h.hexdigest()[:16]


def split_indices(labels: np.ndarray, split: SplitConfig) -> dict[str, np.ndarray]:
    """Row indices of ``train``, ``validation`` and (when ``split.test_fraction`` > 0) ``test``: per class (when
    ``split.stratify``) ``round(fraction * class rows)`` go to dev and test, deterministically for ``split.seed``.

    >>> parts = split_indices(np.array([0] * 10 + [1] * 30), SplitConfig(dev_fraction=0.1, test_fraction=0.2))
    >>> {k: len(v) for k, v in parts.items()}
    {'train': 28, 'validation': 4, 'test': 8}
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(split.seed)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if split.stratify else [np.arange(len(labels))]
    dev, test, train = [], [], []
    for idx in groups:
        idx = rng.permutation(idx)
        n_dev = int(math.floor(split.dev_fraction * len(idx) + 0.5))
        n_test = int(math.floor(split.test_fraction * len(idx) + 0.5))
        dev.append(idx[:n_dev])
        test.append(idx[n_dev : n_dev + n_test])
        train.append(idx[n_dev + n_test :])
    out = {"train": np.sort(np.concatenate(train)), "validation": np.sort(np.concatenate(dev))}
    if not len(out["validation"]) and len(out["train"]) > 1:  # tiny data: hold out at least one row
        out["validation"], out["train"] = out["train"][:1], out["train"][1:]
    if split.test_fraction > 0:
        out["test"] = np.sort(np.concatenate(test))
        if not len(out["test"]) and len(out["train"]) > 1:
            out["test"], out["train"] = out["train"][:1], out["train"][1:]
    return out


def recorded_source(source: str) -> str:
    """A data source as artefacts record it: local paths made absolute (so a later command run from another
    directory finds them), anything else (hub:..., hf:..., synthetic) as it is."""
    return str(Path(source).resolve()) if Path(source).exists() else source


def check_train_classes(data: TaskData) -> TaskData:
    """``data`` itself, or a DataError when its training split holds a single class: nothing can be learnt from it
    (every student would score its dev accuracy by predicting that one class)."""
    train = data.splits.get("train")
    present = np.unique(train.labels) if train is not None else np.array([])
    if len(present) == 1:
        rep = data.report.splits.get("train") or data.report.splits.get("all")
        where = rep.source if rep is not None else data.source
        name = data.task.label_names[int(present[0])]
        raise DataError(
            f"{where}: the training split holds a single class ({name!r}, all {len(train)} rows) of task"
            f" {data.task.name!r}; at least two classes are needed to train a classifier (labels:"
            f" {list(data.task.label_names)})"
        )
    return data
