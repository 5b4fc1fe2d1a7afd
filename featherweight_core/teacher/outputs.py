"""Teachers you cannot run: soft targets from a file of teacher outputs (an LLM's answers, a model on a cluster).

A file of teacher outputs (Parquet, CSV, TSV or JSON lines) holds one row per text: the text in columns named like
the task's text columns (both, for sentence pairs; for a single-text task ``text`` works too) and the teacher's
judgement in one of four layouts:

* ``label``: a ``label`` column with one of the task's label names (hard labels, e.g. an LLM's answer). A hard label
  becomes the log-probabilities of a smoothed one-hot: ``1 - LABEL_SMOOTHING`` on the label, the rest shared evenly by
  the other labels (a one-hot's log has -inf, which no MSE can target).
* ``columns``: one probability column per class, named exactly like the task's labels.
* ``probs``: a ``probs`` column holding one list of probabilities per row, in the task's label order.
* ``logits``: a ``logits`` column holding one list of logits per row, in label order; used as they are.

Probabilities must be >= 0 and sum to 1 within ``SUM_TOLERANCE``; they are renormalised, floored at ``PROB_FLOOR``
and become log-probabilities, the targets of the distillation MSE. Rows are matched to the task's examples by their
text, compared after :func:`normalize_text` (Unicode NFC, runs of whitespace collapsed to one space, stripped; case
kept), never by internal keys. Every problem with a file is a :class:`DataError` naming the file, the row and what
was expected.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featherweight_core.atomic import atomic_write
from featherweight_core.data.taskdata import DataError, Split, TaskData
from featherweight_core.data.tasks import TaskSpec
from featherweight_core.readable import read_input_bytes
from featherweight_core.vocab import TEACHER_OUTPUT_LAYOUTS

FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
LABEL_SMOOTHING = 0.1  # a hard label: 0.9 on the label, 0.1 shared by the others
PROB_FLOOR = 1e-4  # probabilities below it are raised to it (then renormalised) before the log
SUM_TOLERANCE = 0.01  # a row of probabilities may sum to 1 +- this (rounded LLM output), then is renormalised
OUTPUTS_VERSION = 1  # part of the fingerprint: bump when the same file gives other targets
SHOW_MISSING = 3  # uncovered texts quoted in a coverage message


def normalize_text(text: str) -> str:
    """The form texts are matched in: Unicode NFC, every run of whitespace one space, no leading or trailing
    whitespace; case and punctuation kept."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_key(texts: Sequence[str]) -> tuple[str, ...]:
    return tuple(normalize_text(t) for t in texts)


def outputs_fingerprint(paths: Sequence[str | Path], layout: str = "auto") -> str:
    """Content hash (16 hex chars) of the files, in order, and the layout asked for: a relabelled file is another
    teacher. Missing files are a DataError naming them."""
    h = hashlib.sha256(f"teacher-outputs-v{OUTPUTS_VERSION}|{layout}".encode())
    for p in paths:
        h.update(b"\0")
        h.update(hashlib.sha256(_file_bytes(Path(p))).digest())
    return h.hexdigest()[:16]


def _file_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"{path}: teacher outputs file not found")
    return read_input_bytes(path, "teacher outputs file")


@dataclass
class Coverage:
    """How many of a split's rows the outputs cover, and the first few uncovered texts."""

    what: str
    total: int
    covered: int
    first_missing: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return self.total - self.covered

    def __str__(self) -> str:
        out = f"{self.what}: {self.covered:,} of {self.total:,} rows covered"
        if self.missing:
            shown = "; ".join(" | ".join(repr(t) for t in texts) for texts in self.first_missing)
            out += f", {self.missing:,} without a teacher output (first: {shown})"
        return out


@dataclass
class TeacherOutputs:
    """A file (or files) of teacher outputs read for one task: per distinct normalised text, its target vector
    (log-probabilities, or logits for the ``logits`` layout)."""

    sources: tuple[str, ...]
    layouts: tuple[str, ...]  # the layout of each file
    fingerprint: str
    texts: list[tuple[str, ...]]  # normalised, one per distinct text
    targets: np.ndarray  # (R, C) float32
    origin: list[str]  # "FILE, row N" of each target
    rows_read: int
    index: dict[tuple[str, ...], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {t: i for i, t in enumerate(self.texts)}

    @property
    def name(self) -> str:
        return ", ".join(self.sources)

    def lookup(self, texts: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, found)``: the row of ``targets`` for each text (-1 where none) and the mask of found ones."""
        rows = np.fromiter((self.index.get(text_key(t), -1) for t in texts), dtype=np.int64, count=len(texts))
        return rows, rows >= 0

    def coverage(self, texts: Sequence[Sequence[str]], what: str) -> tuple[np.ndarray, Coverage]:
        rows, found = self.lookup(texts)
        missing = np.flatnonzero(~found)[:SHOW_MISSING]
        return rows, Coverage(what, len(texts), int(found.sum()), [tuple(texts[i]) for i in missing])

    def for_training(self, split: Split, what: str, allow_missing: bool) -> tuple[np.ndarray, Coverage]:
        """Targets ``(N, C)`` for every row of ``split`` (the training split). An uncovered row is a DataError
        naming how many and the first few, unless ``allow_missing``: then it is taught its own gold label as a
        hard-label teacher would be (the smoothed one-hot), so both loss terms pull it towards its gold label."""
        rows, cov = self.coverage(split.texts, what)
        if cov.missing and not allow_missing:
            raise DataError(
                f"{self.name}: {cov}; label those texts too, or allow uncovered training rows"
                " (allow_missing: true in a spec, --allow-missing-outputs on the command line)"
            )
        out = np.empty((len(split), self.targets.shape[1]), dtype=np.float32)
        found = rows >= 0
        out[found] = self.targets[rows[found]]
        if not found.all():
            out[~found] = hard_targets(np.asarray(split.labels)[~found], self.targets.shape[1])
        return out, cov

    def for_bootstrap(self, split: Split, source: str) -> np.ndarray:
        """Targets for every augmented row of ``split`` (read from the file ``source``): all must be covered, or a
        DataError names the file whose texts to label."""
        rows, cov = self.coverage(split.texts, f"bootstrap rows of {source}")
        if cov.missing:
            raise DataError(
                f"{self.name}: {cov}; label the texts of {source} with your teacher and add that file to the"
                " teacher outputs"
            )
        return self.targets[rows]

    def unused(self, used_rows: Sequence[np.ndarray]) -> int:
        """How many distinct texts of the file match none of ``used_rows`` (the rows each split looked up)."""
        seen = np.zeros(len(self.texts), dtype=bool)
        for rows in used_rows:
            seen[rows[rows >= 0]] = True
        return int((~seen).sum())

    def dev_metrics(self, task_data: TaskData) -> dict[str, float] | None:
        """The teacher's dev metrics from the file (the task's metric + extras, mean over dev splits), or None when a
        dev row is not covered (a score on part of dev would not compare with the students')."""
        # deferred: the metrics live beside the student measurements, which load torch
        from featherweight_core.students.measure import split_metrics, task_metric_names

        task = task_data.task
        names = task_metric_names(task)
        per = {}
        for s in task.eval_splits:
            if s not in task_data.splits:
                continue
            sp = task_data.splits[s]
            rows, found = self.lookup(sp.texts)
            if not len(sp) or not found.all():
                return None
            per[s] = split_metrics(self.targets[rows].argmax(-1), sp.labels, names, task.num_labels)
        if not per:
            return None
        out = {m: float(np.mean([v[m] for v in per.values()])) for m in names}
        out["score"] = out[task.metric]
        return out


def hard_targets(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Log-probabilities of the smoothed one-hot of each label: ``1 - LABEL_SMOOTHING`` on it, the rest shared."""
    off = LABEL_SMOOTHING / (num_labels - 1)
    probs = np.full((len(labels), num_labels), off, dtype=np.float64)
    probs[np.arange(len(labels)), labels] = 1.0 - LABEL_SMOOTHING
    return np.log(probs).astype(np.float32)


# ---- reading ---------------------------------------------------------------------------------------------------------

_MEMO: dict[tuple, TeacherOutputs] = {}


def read_teacher_outputs(
    paths: str | Path | Sequence[str | Path], task: TaskSpec, layout: str = "auto"
) -> TeacherOutputs:
    """Read and check the files of teacher outputs for ``task`` (memoised per process on their content)."""
    paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not paths:
        raise DataError("no teacher outputs file given")
    if layout not in TEACHER_OUTPUT_LAYOUTS:
        raise DataError(f"teacher outputs layout {layout!r}: expected one of {list(TEACHER_OUTPUT_LAYOUTS)}")
    fp = outputs_fingerprint(paths, layout)
    memo_key = (fp, json.dumps(task.to_dict(), sort_keys=True), tuple(task.label_names), task.text_fields)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    texts: list[tuple[str, ...]] = []
    targets: list[np.ndarray] = []
    origin: list[str] = []
    layouts: list[str] = []
    index: dict[tuple[str, ...], int] = {}
    rows_read = 0
    for path in paths:
        columns, n = _read_columns(path)
        rows_read += n
        file_layout = _layout(path, columns, task, layout)
        layouts.append(file_layout)
        keys = _text_keys(path, columns, task, n)
        values = _targets(path, columns, task, file_layout, n)
        for i, (key, vec) in enumerate(zip(keys, values, strict=True)):
            j = index.get(key)
            where = f"{path}, row {i + 1}"
            if j is not None:
                if not np.allclose(targets[j], vec, atol=1e-5):
                    raise DataError(
                        f"{where}: the text {' | '.join(repr(t) for t in key)} has other outputs at {origin[j]}"
                        f" ({np.round(targets[j], 4).tolist()} vs {np.round(vec, 4).tolist()}); keep one"
                    )
                continue
            index[key] = len(texts)
            texts.append(key)
            targets.append(vec)
            origin.append(where)
    out = TeacherOutputs(
        sources=tuple(str(p) for p in paths),
        layouts=tuple(layouts),
        fingerprint=fp,
        texts=texts,
        targets=np.asarray(targets, dtype=np.float32).reshape(len(targets), task.num_labels),
        origin=origin,
        rows_read=rows_read,
        index=index,
    )
    _MEMO[memo_key] = out
    return out


def _read_columns(path: Path) -> tuple[dict[str, list], int]:
    """The file's columns as Python lists (CSV/TSV values as text), and its row count; a DataError for an unknown
    format, an unreadable or empty file."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unknown teacher outputs format {path.suffix or '(no suffix)'!r}; expected"
            f" {', '.join(sorted(FORMATS))}"
        )
    data = _file_bytes(path)
    if kind == "parquet":
        import pyarrow as pa  # deferred: pyarrow only for a Parquet file
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as e:
            raise DataError(
                f"{path}: not a readable Parquet file ({type(e).__name__}: {str(e).strip()[:200]})"
            ) from None
        columns, n = table.to_pydict(), table.num_rows
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
        if kind == "jsonl":
            columns, n = _read_jsonl(path, text)
        else:
            columns, n = _read_csv(path, text, "\t" if kind == "tsv" else ",")
    if n == 0:
        raise DataError(f"{path}: the teacher outputs file has no rows")
    return columns, n


def _read_jsonl(path: Path, text: str) -> tuple[dict[str, list], int]:
    records = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {line_no}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}, line {line_no}: expected one JSON object per line, got {type(rec).__name__}")
        records.append(rec)
    names = list(dict.fromkeys(k for r in records for k in r))
    return {k: [r.get(k) for r in records] for k in names}, len(records)


def _read_csv(path: Path, text: str, delimiter: str) -> tuple[dict[str, list], int]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: the teacher outputs file is empty") from None
    except csv.Error as e:
        raise DataError(f"{path}, line 1: not {'TSV' if delimiter == chr(9) else 'CSV'} ({e})") from None
    header = [h.strip() for h in header]
    columns: dict[str, list] = {h: [] for h in header}
    n = 0
    try:
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
                    f" ({'tabs' if delimiter == chr(9) else 'commas'} inside a text need quotes)"
                )
            for h, v in zip(header, row, strict=True):
                columns[h].append(v)
            n += 1
    except csv.Error as e:
        raise DataError(f"{path}, line {reader.line_num}: not readable as CSV ({e})") from None
    return columns, n


def _layout(path: Path, columns: dict[str, list], task: TaskSpec, asked: str) -> str:
    fits = {
        "label": "label" in columns,
        "columns": all(name in columns for name in task.label_names),
        "probs": "probs" in columns,
        "logits": "logits" in columns,
    }
    if asked != "auto":
        if not fits[asked]:
            need = (
                f"a column per label ({', '.join(task.label_names)})" if asked == "columns" else f"a column {asked!r}"
            )
            raise DataError(f"{path}: layout {asked!r} needs {need}; the file has columns {list(columns)}")
        return asked
    found = [k for k, ok in fits.items() if ok]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(
            f"{path}: cannot tell the teacher outputs' layout: expected a 'label', 'probs' or 'logits' column or one"
            f" column per label ({', '.join(task.label_names)}); the file has columns {list(columns)}"
        )
    raise DataError(
        f"{path}: several teacher outputs layouts fit ({', '.join(found)}); name one (layout: in a spec,"
        " --teacher-outputs-layout on the command line)"
    )


def _text_keys(path: Path, columns: dict[str, list], task: TaskSpec, n: int) -> list[tuple[str, ...]]:
    cols = []
    for i, field_name in enumerate(task.text_fields):
        names = list(dict.fromkeys([field_name, task.text_columns[i]] + (["text"] if not task.pair else [])))
        name = next((c for c in names if c in columns), None)
        if name is None:
            raise DataError(
                f"{path}: no text column {' or '.join(repr(c) for c in names)} (task {task.name!r} has"
                f" {len(task.text_fields)} text column(s)); the file has columns {list(columns)}"
            )
        cols.append((name, columns[name]))
    keys = []
    for r in range(n):
        values = []
        for name, col in cols:
            v = col[r]
            if not isinstance(v, str) or not v.strip():
                raise DataError(f"{path}, row {r + 1}: column {name!r} holds {v!r}, expected a non-empty text")
            values.append(v)
        keys.append(text_key(values))
    return keys


def _targets(path: Path, columns: dict[str, list], task: TaskSpec, layout: str, n: int) -> np.ndarray:
    c = task.num_labels
    if layout == "label":
        ids = {name: i for i, name in enumerate(task.label_names)}
        labels = np.empty(n, dtype=np.int64)
        for r, v in enumerate(columns["label"]):
            key = v.strip() if isinstance(v, str) else v
            if key not in ids:
                raise DataError(
                    f"{path}, row {r + 1}: label {v!r} is not one of the task's labels {list(task.label_names)}"
                )
            labels[r] = ids[key]
        return hard_targets(labels, c)
    if layout == "columns":
        values = np.empty((n, c), dtype=np.float64)
        for j, name in enumerate(task.label_names):
            for r, v in enumerate(columns[name]):
                values[r, j] = _number(path, r, name, v)
        return _log_probs(path, values)
    values = np.empty((n, c), dtype=np.float64)
    for r, v in enumerate(columns[layout]):
        vec = _vector(path, r, layout, v)
        if len(vec) != c:
            raise DataError(
                f"{path}, row {r + 1}: {layout} holds {len(vec)} values, expected {c} (one per label:"
                f" {', '.join(task.label_names)})"
            )
        values[r] = vec
    if layout == "logits":
        _check_finite(path, values, "logits")
        return values.astype(np.float32)
    return _log_probs(path, values)


def _number(path: Path, r: int, name: str, v) -> float:
    try:
        if isinstance(v, bool):
            raise ValueError
        x = float(v.strip()) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        raise DataError(f"{path}, row {r + 1}: column {name!r} holds {v!r}, expected a number") from None
    return x


def _vector(path: Path, r: int, name: str, v) -> list[float]:
    if isinstance(v, str):  # CSV / TSV: a JSON list, or numbers separated by spaces or commas
        s = v.strip()
        try:
            v = json.loads(s) if s.startswith("[") else [float(x) for x in s.replace(",", " ").split()]
        except (ValueError, json.JSONDecodeError):
            raise DataError(f"{path}, row {r + 1}: column {name!r} holds {v!r}, expected a list of numbers") from None
    if not isinstance(v, list | tuple):
        raise DataError(f"{path}, row {r + 1}: column {name!r} holds {v!r}, expected a list of numbers")
    return [_number(path, r, name, x) for x in v]


def _check_finite(path: Path, values: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        r = int(bad[0])
        raise DataError(
            f"{path}, row {r + 1}: {what} {values[r].tolist()} are not finite (NaN or inf);"
            f" {len(bad)} of {len(values)} rows are"
        )


def _log_probs(path: Path, probs: np.ndarray) -> np.ndarray:
    _check_finite(path, probs, "probabilities")
    neg = np.flatnonzero((probs < 0).any(axis=1))
    if len(neg):
        r = int(neg[0])
        raise DataError(f"{path}, row {r + 1}: probabilities {probs[r].tolist()} include a negative value")
    sums = probs.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE)
    if len(off):
        r = int(off[0])
        raise DataError(
            f"{path}, row {r + 1}: probabilities {probs[r].tolist()} sum to {sums[r]:.4g}, expected 1"
            f" (+- {SUM_TOLERANCE}); {len(off)} of {len(probs)} rows do not"
        )
    p = np.maximum(probs / sums[:, None], PROB_FLOOR)
    return np.log(p / p.sum(axis=1, keepdims=True)).astype(np.float32)


# ---- texts to label ----------------------------------------------------------------------------------------------------


def write_texts(path: str | Path, texts: Sequence[Sequence[str]], task: TaskSpec) -> int:
    """Write the distinct texts (normalised, first occurrence order) to label elsewhere: one column per text field
    of ``task``, as Parquet, CSV, TSV or JSON lines by the file's suffix, atomically. Returns the rows written."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unknown format {path.suffix or '(no suffix)'!r}; expected {', '.join(sorted(FORMATS))}"
        )
    rows = list(dict.fromkeys(text_key(t) for t in texts))
    names = list(task.text_fields)

    def write(tmp: Path) -> None:
        if kind == "parquet":
            import pyarrow as pa  # deferred: pyarrow only for a Parquet file
            import pyarrow.parquet as pq

            pq.write_table(pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}), str(tmp))
        elif kind == "jsonl":
            with tmp.open("w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(dict(zip(names, r, strict=True)), ensure_ascii=False) + "\n")
        else:
            with tmp.open("w", encoding="utf-8", newline="") as f:
                w = csv.writer(f, delimiter="\t" if kind == "tsv" else ",", lineterminator="\n")
                w.writerow(names)
                w.writerows(rows)

    atomic_write(path, write, suffix=path.suffix)
    return len(rows)
