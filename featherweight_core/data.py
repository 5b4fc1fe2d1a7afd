"""Loading task splits from the HF hub, local GLUE directories, custom TSV/CSV files, or the synthetic generator.

Every loader returns a :class:`TaskData`: per split, the text columns, integer labels and a stable string key per
example (used to align teacher logits and bootstrap data). Rows that are malformed (wrong column count, missing or
unknown label) are skipped and counted in a :class:`LoadReport`; a file whose header is wrong, or whose labels are
mostly not in the task's label set, is a :class:`DataError` naming the file, line and value.
"""

from __future__ import annotations

import csv
import hashlib
import os
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featherweight_core.errors import UserError
from featherweight_core.synthetic import generate_synthetic
from featherweight_core.tasks import TaskSpec

# A label set is "wrong" (not merely a few bad rows) when more than this fraction of rows have unknown labels.
_MAX_UNKNOWN_LABEL_FRACTION = 0.1
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


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


@dataclass
class SplitReport:
    source: str
    rows: int = 0
    kept: int = 0
    wrong_columns: int = 0
    missing_label: int = 0
    unknown_label: int = 0

    @property
    def skipped(self) -> int:
        return self.rows - self.kept

    def __str__(self) -> str:
        s = f"{self.source}: {self.kept}/{self.rows} rows kept"
        if self.skipped:
            s += (
                f" (skipped: {self.wrong_columns} wrong column count, {self.missing_label} missing label,"
                f" {self.unknown_label} unknown label)"
            )
        return s


@dataclass
class LoadReport:
    splits: dict[str, SplitReport] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.splits.values())

    def __str__(self) -> str:
        return "\n".join(f"{name}: {rep}" for name, rep in self.splits.items())


@dataclass
class TaskData:
    task: TaskSpec
    splits: dict[str, Split]
    report: LoadReport
    source: str

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


def _label_index(task: TaskSpec) -> dict[str, int]:
    """Labels may be written as names ('entailment') or as integer ids ('0')."""
    index = {name: i for i, name in enumerate(task.label_names)}
    index.update({str(i): i for i in range(task.num_labels)})
    return index


def read_table(
    path: Path,
    task: TaskSpec,
    split: str,
    text_columns: tuple[str, ...],
    label_column: str,
    key_column: str | None = None,
) -> tuple[Split, SplitReport]:
    """Read one TSV/CSV file with a header row. Delimiter: tab for .tsv, comma for .csv."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the {split!r} split of task {task.name!r})")
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    labels_by_name = _label_index(task)
    report = SplitReport(source=str(path))
    texts: list[tuple[str, ...]] = []
    labels: list[int] = []
    keys: list[str] = []
    first_unknown: tuple[int, str] | None = None
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}:1: file is empty (expected a header row with {list(text_columns)})")
        header = [h.strip() for h in header]
        missing = [c for c in (*text_columns, label_column) if c not in header]
        if missing:
            raise DataError(
                f"{path}:1: header {header} lacks column(s) {missing}; expected text column(s)"
                f" {list(text_columns)} and label column {label_column!r}"
            )
        text_idx = [header.index(c) for c in text_columns]
        label_idx = header.index(label_column)
        key_idx = header.index(key_column) if key_column and key_column in header else None
        for line_no, row in enumerate(reader, start=2):
            report.rows += 1
            if len(row) != len(header):
                report.wrong_columns += 1
                continue
            raw_label = row[label_idx].strip()
            if raw_label == "" or raw_label == "-":
                report.missing_label += 1
                continue
            label = labels_by_name.get(raw_label)
            if label is None:
                report.unknown_label += 1
                if first_unknown is None:
                    first_unknown = (line_no, raw_label)
                continue
            texts.append(tuple(row[i].strip() for i in text_idx))
            labels.append(label)
            keys.append(f"{split}:{row[key_idx] if key_idx is not None else line_no}")
            report.kept += 1
    if first_unknown is not None and report.unknown_label > _MAX_UNKNOWN_LABEL_FRACTION * max(report.rows, 1):
        line_no, value = first_unknown
        raise DataError(
            f"{path}:{line_no}: label {value!r} is not in the label set of task {task.name!r}"
            f" ({list(task.label_names)} or their ids 0..{task.num_labels - 1});"
            f" {report.unknown_label} of {report.rows} rows have unknown labels"
        )
    if report.kept == 0:
        raise DataError(f"{path}: no usable rows ({report})")
    return Split(texts, np.array(labels, dtype=np.int64), keys), report


def load_glue_dir(task: TaskSpec, root: str | Path) -> TaskData:
    """Load a task from GLUE TSVs. ``root`` is either the GLUE root (containing e.g. ``SST-2/``) or the task dir."""
    root = Path(root)
    if not task.glue_files:
        raise DataError(f"task {task.name!r} has no GLUE file layout; use a custom task for local files")
    task_dir = root / task.glue_dir if task.glue_dir and (root / task.glue_dir).is_dir() else root
    if not (task_dir / task.glue_files["train"]).is_file():
        raise DataError(
            f"{task_dir}: no {task.glue_files['train']} here; expected a GLUE directory holding"
            f" {sorted(task.glue_files.values())} (or its parent with a {task.glue_dir}/ folder)"
        )
    splits: dict[str, Split] = {}
    report = LoadReport()
    for split, fname in task.glue_files.items():
        path = task_dir / fname
        if (
            split != "train"
            and not path.is_file()
            and any((task_dir / task.glue_files[s]).is_file() for s in task.eval_splits)
        ):
            # e.g. the MNLI samples ship dev_matched only; the headline score then averages what exists.
            print(
                f"warning: {path} not found; task {task.name!r} is evaluated without {split!r}",
                file=sys.stderr,
            )
            continue
        key_col = "id" if task.name == "qqp" else ("pairID" if task.name == "mnli" else None)
        sp, rep = read_table(path, task, split, task.glue_text_columns, task.glue_label_column, key_col)
        splits[split] = sp
        report.splits[split] = rep
    return TaskData(task, splits, report, source=str(task_dir))


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_hub(task: TaskSpec, cache_dir: str | None = None) -> TaskData:
    """Load a GLUE task through `datasets`. Fails fast offline with a pointer to local files."""
    if task.hub_id is None:
        raise DataError(f"task {task.name!r} is not on the HF hub; pass a local data directory instead")
    hint = (
        f"cannot load {task.hub_id[0]}/{task.hub_id[1]} from the Hugging Face hub (offline?);"
        f" pass --data PATH with a local GLUE directory (e.g. data/glue) instead"
    )
    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    if not offline and not _hub_reachable():
        raise DataError(hint)
    try:
        import datasets  # heavy import, only when the hub is used

        ds = datasets.load_dataset(*task.hub_id, cache_dir=cache_dir)
    except Exception as e:  # datasets raises many types offline (ConnectionError, FileNotFoundError, ...)
        raise DataError(f"{hint} ({type(e).__name__}: {e})") from None
    splits: dict[str, Split] = {}
    report = LoadReport()
    for split in ("train", *task.eval_splits):
        rows = ds[split]
        cols = [rows[c] for c in task.text_fields]
        labels = np.asarray(rows["label"], dtype=np.int64)
        keep = labels >= 0  # GLUE test splits carry -1
        idx = rows["idx"] if "idx" in rows.column_names else list(range(len(labels)))
        texts = [tuple(c[i] for c in cols) for i in range(len(labels)) if keep[i]]
        keys = [f"{split}:{idx[i]}" for i in range(len(labels)) if keep[i]]
        splits[split] = Split(texts, labels[keep], keys)
        report.splits[split] = SplitReport(f"hub:{split}", rows=len(labels), kept=int(keep.sum()))
    return TaskData(task, splits, report, source=f"hub:{task.hub_id[0]}/{task.hub_id[1]}")


def load_custom(task: TaskSpec, path: str | Path, dev_fraction: float = 0.1, seed: int = 0) -> TaskData:
    """Load a user task from a directory with ``train.{tsv,csv}`` and ``dev.{tsv,csv}`` (or ``validation``),
    or from one file, from which a deterministic ``dev_fraction`` is held out as the dev split."""
    path = Path(path)
    report = LoadReport()
    cols, label_col = task.glue_text_columns or task.text_fields, task.glue_label_column
    if path.is_dir():
        found: dict[str, Path] = {}
        for split, stems in (("train", ("train",)), ("validation", ("dev", "validation"))):
            for stem in stems:
                for ext in (".tsv", ".csv"):
                    if (path / f"{stem}{ext}").is_file():
                        found.setdefault(split, path / f"{stem}{ext}")
            if split not in found:
                raise DataError(f"{path}: no {stems[0]}.tsv or {stems[0]}.csv in this directory")
        splits = {}
        for split, p in found.items():
            splits[split], report.splits[split] = read_table(p, task, split, cols, label_col)
        return TaskData(task, splits, report, source=str(path))
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory (expected a TSV/CSV file or a directory)")
    if not 0.0 < dev_fraction < 1.0:
        raise DataError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    full, rep = read_table(path, task, "all", cols, label_col)
    report.splits["all"] = rep
    perm = np.random.default_rng(seed).permutation(len(full))
    n_dev = max(1, int(round(dev_fraction * len(full))))
    return TaskData(
        task,
        {"train": full.subset(sorted(perm[n_dev:])), "validation": full.subset(sorted(perm[:n_dev]))},
        report,
        source=str(path),
    )


def load_synthetic(task: TaskSpec, n_train: int = 3000, n_dev: int = 500, seed: int = 13) -> TaskData:
    """The built-in deterministic demo task (see :mod:`featherweight_core.synthetic`)."""
    splits = {}
    report = LoadReport()
    for i, (split, n) in enumerate((("train", n_train), ("validation", n_dev))):
        texts, labels = generate_synthetic(n, seed=seed * 1000 + i, pair=task.pair)
        splits[split] = Split(texts, labels, [f"{split}:{j}" for j in range(n)])
        report.splits[split] = SplitReport(f"synthetic:{split}", rows=n, kept=n)
    return TaskData(task, splits, report, source=f"synthetic(seed={seed})")


def load_task_data(task: TaskSpec, source: str | Path | None = None, **kwargs) -> TaskData:
    """Load ``task`` from ``source``: ``"hub"``, ``"synthetic"``, or a local path (GLUE dir or custom files).

    ``None`` picks the natural default: the generator for synthetic tasks, the hub for GLUE tasks.
    """
    if task.name.startswith("synthetic"):
        if source not in (None, "synthetic"):
            raise DataError(f"task {task.name!r} is generated; data source must be 'synthetic', got {source!r}")
        return load_synthetic(task, **kwargs)
    if source is None or source == "hub":
        return load_hub(task, **kwargs)
    if source == "synthetic":
        raise DataError(f"data source 'synthetic' only serves the synthetic tasks, not {task.name!r}")
    if task.glue_files:
        return load_glue_dir(task, source)
    return load_custom(task, source, **kwargs)
