"""Rows and the writes: ``TrialRecord``, value cleaning (NaN -> NULL, numpy scalars, JSON), and the write
transactions for sweeps, trials and teachers. Each write function takes an open connection inside a transaction;
``ExperimentStore`` opens it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from db.errors import StoreError
from featherweight_core.vocab import MODULE_GROUPS, STAGES

TRIAL_STATUSES = ("finished", "error")
# 'running' while the runner works; then 'finished', 'failed' (trials failed: the message says how many) or
# 'interrupted' (stopped before the end: Ctrl-C, a crash of the driver)
SWEEP_STATUSES = ("running", "finished", "failed", "interrupted")
FINAL_SWEEP_STATUSES = SWEEP_STATUSES[1:]

# Columns of ``results`` filled from TrialRecord.metrics / .sizes (everything is also kept in the JSON columns).
METRIC_COLUMNS = (
    "score",
    "accuracy",
    "f1",
    "accuracy_matched",
    "accuracy_mismatched",
    "best_epoch",
    "epochs",
    "macro_f1",
    "test_score",
    "test_accuracy",
    "test_f1",
    "test_macro_f1",
)
SIZE_COLUMNS = (
    "params",
    "params_embedding",
    "params_encoder",
    "params_classifier",
    "nonzero_params",
    "disk_bytes",
    "gzip_bytes",
    "ideal_bytes",
)
_INT_COLUMNS = {"best_epoch", "epochs", "trainable_params", "layers", *SIZE_COLUMNS}

# Where a trial ran (migration 004), besides ``device`` and ``node``; see trainables.placement
PLACEMENT_COLUMNS = ("node_id", "host", "node_ip", "gpu_model", "torch_version", "cuda_version")
TRIAL_COLUMNS = (
    "sweep",
    "trial_id",
    "stage",
    "parent_trial_id",
    "task",
    "arch",
    "embedding",
    "emb_dim",
    "vocab_size",
    "alpha",
    "temperature",
    "bootstrap",
    "seed",
    "pooling",
    "pruning",
    "quantization",
    "status",
    "error",
    "config",
    "started_at",
    "finished_at",
    "seconds",
    "checkpoint_path",
    "recorded_at",
    "device",
    "node",
    *PLACEMENT_COLUMNS,
    "teacher",
)
# Columns of ``results`` added by migrations 006 and 007 (teacher compression): TrialRecord fields of the same name,
# falling back to the same key of ``sizes`` (trainable_params, layers) or ``metrics`` (latency_ms, teacher_latency_ms)
EXTRA_RESULT_COLUMNS = ("trainable_params", "latency_ms", "layers", "teacher_latency_ms")
RESULT_COLUMNS = ("sweep", "trial_id", *METRIC_COLUMNS, *SIZE_COLUMNS, "metrics", "sizes", *EXTRA_RESULT_COLUMNS)
EPOCH_COLUMNS = ("sweep", "trial_id", "epoch", "train_loss", "score", "seconds", "samples_per_second", "metrics")
CLASS_COLUMNS = ("sweep", "trial_id", "split", "label_id", "label", "precision", "recall", "f1", "support", "predicted")
# User reference points: 'user' (featherweight db add-baseline) and 'spec' (a sweep spec's tasks.<task>.baselines);
# 'thesis table 7.5' rows come with the schema and 'measured' teachers through record_teacher.
BASELINE_SOURCES = ("user", "spec")
BASELINE_COLUMNS = (
    "sweep",
    "task",
    "name",
    "source",
    "score",
    "accuracy",
    "f1",
    "macro_f1",
    "params",
    "disk_bytes",
    "gzip_bytes",
    "note",
    "recorded_at",
)


@dataclass
class TrialRecord:
    """One trial as the sweep driver reports it; ``metrics`` scores are fractions in [0, 1], sizes are bytes/counts."""

    sweep: str
    trial_id: str
    stage: str  # "distill" | "compress" | "teacher_compression" (featherweight_core.vocab.STAGES)
    task: str
    arch: str
    embedding: str
    emb_dim: int
    vocab_size: int | None
    alpha: float | None
    temperature: float | None
    bootstrap: bool
    seed: int
    pooling: str | None
    parent_trial_id: str | None = None
    pruning: str | None = None  # describe() string, None = not pruned
    quantization: str | None = None  # describe() string, None = not quantized
    status: str = "finished"  # "finished" | "error"
    error: str | None = None
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    started_at: float | None = None  # unix seconds
    finished_at: float | None = None
    seconds: float | None = None
    checkpoint_path: str | None = None
    history: list[dict] = field(
        default_factory=list
    )  # per epoch: epoch, train_loss, score, seconds, samples_per_second, metrics
    device: str | None = None  # "cpu" | "cuda:0" ... (N: the GPU's index on its node; older rows may say "cuda")
    node: str | None = None  # "ip/node-id prefix" of the Ray node, or the host name outside Ray
    node_id: str | None = None  # the Ray node id (hex)
    host: str | None = None  # the machine's host name
    node_ip: str | None = None
    gpu_model: str | None = None  # e.g. "NVIDIA H100 80GB HBM3"; None on the CPU
    torch_version: str | None = None
    cuda_version: str | None = None  # torch.version.cuda; None for a CPU build
    # per split and class: {"split", "label_id", "label", "precision", "recall", "f1", "support", "predicted": [ints]}
    # (class_metric_rows builds them from the core's per-split shape)
    class_metrics: list[dict] = field(default_factory=list)
    # teacher compression (migration 006); None for student trials. teacher: the teacher directory the trial started
    # from; trainable_params: parameters the method trained (params stays the whole saved model); latency_ms: CPU,
    # batch size 1, median milliseconds; layers: transformer layers inference runs; teacher_latency_ms (migration
    # 007): the teacher timed interleaved with the trial's model, for the speed-up
    teacher: str | None = None
    trainable_params: int | None = None
    latency_ms: float | None = None
    layers: int | None = None
    teacher_latency_ms: float | None = None

    def validate(self) -> None:
        if not self.sweep or not self.trial_id:
            raise StoreError(
                f"trial record needs a sweep and a trial_id, got sweep={self.sweep!r} trial_id={self.trial_id!r}"
            )
        if self.stage not in STAGES:
            raise StoreError(f"trial {self.trial_id}: stage must be one of {STAGES}, got {self.stage!r}")
        if self.status not in TRIAL_STATUSES:
            raise StoreError(f"trial {self.trial_id}: status must be one of {TRIAL_STATUSES}, got {self.status!r}")


# --------------------------------------------------------------------------------------------------- value cleaning


def _finite(x: Any) -> Any:
    """NaN/inf -> None (a NaN score would sort above every number in DuckDB and break skylines and maxima)."""
    if x is None:
        return None
    if hasattr(x, "item") and not isinstance(x, (list, dict)):  # numpy / torch scalars
        with suppress(TypeError, ValueError):
            x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _json_safe(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    obj = _finite(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "tolist"):
        return _json_safe(obj.tolist())
    return str(obj)


def to_json(obj: Any) -> str:
    return json.dumps(_json_safe(obj), sort_keys=True)


def _ts(unix: float | None) -> datetime | None:
    """Unix seconds -> naive UTC datetime (stored as TIMESTAMP, documented as UTC)."""
    unix = _finite(unix)
    if unix is None:
        return None
    return datetime.fromtimestamp(float(unix), timezone.utc).replace(tzinfo=None)


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _num(value: Any, column: str) -> Any:
    value = _finite(value)
    if value is None or isinstance(value, (dict, list, str)):
        return None
    if isinstance(value, bool):
        value = int(value)
    return int(round(value)) if column in _INT_COLUMNS else float(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _first(*values: Any) -> Any:
    """The first value that is not None (a TrialRecord field before the same key of its metrics / sizes)."""
    return next((v for v in values if v is not None), None)


def flatten_sizes(sizes: dict) -> dict:
    """Accept both the contract's flat keys and the core's ``size_report`` shape (``{"params": {"total": ...}}``).

    >>> flatten_sizes({"params": {"total": 10, "embedding": 6, "nonzero": 9}, "disk_bytes": 80})["params_embedding"]
    6
    """
    flat = dict(sizes)
    nested = flat.get("params")
    if isinstance(nested, dict):
        flat["params"] = nested.get("total")
        for part in MODULE_GROUPS:
            flat.setdefault(f"params_{part}", nested.get(part))
        flat.setdefault("nonzero_params", nested.get("nonzero"))
    return flat


def class_metric_rows(per_split: dict[str, dict]) -> list[dict]:
    """The core's per-split class metrics (``{split: {"labels": [names], "precision": [...], "recall": [...],
    "f1": [...], "support": [...], "confusion": [[...]]}}``, confusion rows = true label, columns = predicted) as
    ``TrialRecord.class_metrics`` rows, one per split and class.

    >>> rows = class_metric_rows({"validation": {"labels": ["neg", "pos"], "precision": [1.0, 0.5],
    ...     "recall": [0.5, 1.0], "f1": [0.667, 0.667], "support": [2, 1], "confusion": [[1, 1], [0, 1]]}})
    >>> [(r["split"], r["label_id"], r["label"], r["support"], r["predicted"]) for r in rows]
    [('validation', 0, 'neg', 2, [1, 1]), ('validation', 1, 'pos', 1, [0, 1])]
    """
    out = []
    for split, m in (per_split or {}).items():
        labels = list(m.get("labels") or [])
        confusion = list(m.get("confusion") or [])

        def at(key: str, i: int, m=m) -> Any:
            values = m.get(key)
            return values[i] if values is not None and i < len(values) else None

        for i, label in enumerate(labels):
            row = confusion[i] if i < len(confusion) else None
            out.append(
                {
                    "split": str(split),
                    "label_id": i,
                    "label": str(label),
                    "precision": at("precision", i),
                    "recall": at("recall", i),
                    "f1": at("f1", i),
                    "support": at("support", i),
                    "predicted": None if row is None else list(row),
                }
            )
    return out


def _class_row(key: list, entry: Any) -> list:
    entry = dict(entry)
    missing = [k for k in ("split", "label_id") if entry.get(k) is None]
    if missing:
        raise StoreError(f"trial {key[1]}: class metrics row without {', '.join(missing)}: {entry!r}")
    predicted = entry.get("predicted")
    if predicted is not None:
        predicted = [None if _finite(c) is None else int(_finite(c)) for c in predicted]
    support = _finite(entry.get("support"))
    return [
        *key,
        str(entry["split"]),
        int(entry["label_id"]),
        _text(entry.get("label")),
        _num(entry.get("precision"), "precision"),
        _num(entry.get("recall"), "recall"),
        _num(entry.get("f1"), "f1"),
        None if support is None else int(support),
        predicted,
    ]


def _history_row(entry: Any, index: int) -> dict:
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        entry = dataclasses.asdict(entry)
    entry = dict(entry)
    known = {"epoch", "train_loss", "score", "seconds", "samples_per_second", "metrics"}
    metrics = dict(entry.get("metrics") or {})
    metrics.update({k: v for k, v in entry.items() if k not in known})  # keep extra keys rather than drop them
    epoch = _finite(entry.get("epoch"))
    return {
        "epoch": int(epoch) if epoch is not None else index + 1,
        "train_loss": _num(entry.get("train_loss"), "train_loss"),
        "score": _num(entry.get("score"), "score"),
        "seconds": _num(entry.get("seconds"), "seconds"),
        "samples_per_second": _num(entry.get("samples_per_second"), "samples_per_second"),
        "metrics": to_json(metrics),
    }


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...], rows: list[list]) -> None:
    """One INSERT with named columns (a migration that adds columns never shifts the values)."""
    if not rows:
        return
    one = "(" + ", ".join("?" * len(columns)) + ")"
    con.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * len(rows))}",
        [v for row in rows for v in row],
    )


# ----------------------------------------------------------------------------------------------------------- writes


def start_sweep(con: duckdb.DuckDBPyConnection, name: str, spec: dict, code_version: str, storage_path: str) -> None:
    """Create the sweep row, or mark an existing one running again (a resume keeps the original start time)."""
    if not name:
        raise StoreError("sweep name must not be empty")
    if con.execute("SELECT 1 FROM sweeps WHERE name = ?", [name]).fetchone():
        con.execute(
            "UPDATE sweeps SET spec = ?, status = 'running', message = NULL, finished_at = NULL, code_version = ?, "
            "storage_path = ? WHERE name = ?",
            [to_json(spec), code_version, str(storage_path), name],
        )
    else:
        _insert(
            con,
            "sweeps",
            ("name", "spec", "started_at", "status", "code_version", "storage_path"),
            [[name, to_json(spec), utc_now(), "running", code_version, str(storage_path)]],
        )


def finish_sweep(con: duckdb.DuckDBPyConnection, name: str, status: str, message: str | None = None) -> None:
    """Set the final ``status`` ('finished' | 'failed' | 'interrupted'), ``message`` and ``finished_at``."""
    if status not in FINAL_SWEEP_STATUSES:  # the runner passes literals: another value is a bug
        raise ValueError(f"sweep status must be one of {FINAL_SWEEP_STATUSES}, got {status!r}")
    if not con.execute("SELECT 1 FROM sweeps WHERE name = ?", [name]).fetchone():
        raise StoreError(f"unknown sweep {name!r}")
    con.execute(
        "UPDATE sweeps SET status = ?, message = ?, finished_at = ? WHERE name = ?",
        [status, _text(message), utc_now(), name],
    )


@dataclass
class TrialRows:
    """A TrialRecord cleaned into the rows of ``trials``, ``results`` (None: nothing measured) and ``epochs``."""

    key: list
    trial: list
    result: list | None
    epochs: list[list]
    classes: list[list] = field(default_factory=list)


def trial_rows(rec: TrialRecord) -> TrialRows:
    """Validate and clean ``rec`` (done before the transaction opens, so the file is held only for the INSERTs)."""
    rec.validate()
    sizes = flatten_sizes(rec.sizes)
    values = {
        "sweep": rec.sweep,
        "trial_id": rec.trial_id,
        "stage": rec.stage,
        "parent_trial_id": rec.parent_trial_id,
        "task": rec.task,
        "arch": rec.arch,
        "embedding": rec.embedding,
        "emb_dim": int(rec.emb_dim),
        "vocab_size": None if rec.vocab_size is None else int(rec.vocab_size),
        "alpha": _num(rec.alpha, "alpha"),
        "temperature": _num(rec.temperature, "temperature"),
        "bootstrap": bool(rec.bootstrap),
        "seed": int(rec.seed),
        "pooling": rec.pooling,
        "pruning": rec.pruning,
        "quantization": rec.quantization,
        "status": rec.status,
        "error": rec.error,
        "config": to_json(rec.config),
        "started_at": _ts(rec.started_at),
        "finished_at": _ts(rec.finished_at),
        "seconds": _num(rec.seconds, "seconds"),
        "checkpoint_path": _text(rec.checkpoint_path),
        "recorded_at": utc_now(),
        "device": _text(rec.device),
        "node": _text(rec.node),
        **{c: _text(getattr(rec, c)) for c in PLACEMENT_COLUMNS},
        "teacher": _text(rec.teacher),
    }
    extra = {
        "trainable_params": _first(rec.trainable_params, sizes.get("trainable_params")),
        "latency_ms": _first(rec.latency_ms, rec.metrics.get("latency_ms")),
        "layers": _first(rec.layers, sizes.get("layers")),
        "teacher_latency_ms": _first(rec.teacher_latency_ms, rec.metrics.get("teacher_latency_ms")),
    }
    result = None
    if rec.metrics or sizes or any(v is not None for v in extra.values()):
        result = [
            rec.sweep,
            rec.trial_id,
            *(_num(rec.metrics.get(c), c) for c in METRIC_COLUMNS),
            *(_num(sizes.get(c), c) for c in SIZE_COLUMNS),
            to_json(rec.metrics),
            to_json(sizes),
            *(_num(extra[c], c) for c in EXTRA_RESULT_COLUMNS),
        ]
    epochs: dict[int, dict] = {}
    for i, entry in enumerate(rec.history):
        row = _history_row(entry, i)
        epochs[row["epoch"]] = row  # a repeated epoch number keeps the last report
    key = [rec.sweep, rec.trial_id]
    classes: dict[tuple, list] = {}
    for entry in rec.class_metrics:
        row = _class_row(key, entry)
        classes[(row[2], row[3])] = row  # a repeated (split, label_id) keeps the last
    return TrialRows(
        key=key,
        trial=[values[c] for c in TRIAL_COLUMNS],
        result=result,
        epochs=[[*key, *(r[c] for c in EPOCH_COLUMNS[2:])] for r in epochs.values()],
        classes=list(classes.values()),
    )


def insert_trial(con: duckdb.DuckDBPyConnection, rows: TrialRows) -> bool:
    """Write one trial; False (nothing changed) when it is already recorded as finished, an ``error`` row is
    replaced."""
    row = con.execute("SELECT status FROM trials WHERE sweep = ? AND trial_id = ?", rows.key).fetchone()
    if row is not None:
        if row[0] == "finished":
            return False
        for table in ("class_metrics", "epochs", "results", "trials"):
            con.execute(f"DELETE FROM {table} WHERE sweep = ? AND trial_id = ?", rows.key)
    _insert(con, "trials", TRIAL_COLUMNS, [rows.trial])
    if rows.result is not None:
        _insert(con, "results", RESULT_COLUMNS, [rows.result])
    _insert(con, "epochs", EPOCH_COLUMNS, rows.epochs)  # one statement, not one per epoch
    _insert(con, "class_metrics", CLASS_COLUMNS, rows.classes)
    return True


def record_teacher(
    con: duckdb.DuckDBPyConnection,
    sweep: str,
    task: str,
    name: str,
    score: float,
    accuracy: float | None,
    f1: float | None,
    params: int,
    disk_bytes: int,
    gzip_bytes: int | None,
    accuracy_matched: float | None = None,
    accuracy_mismatched: float | None = None,
    note: str | None = None,
) -> None:
    """A teacher a sweep used, as measured (source 'measured'); re-recording (sweep, task, name) replaces it."""
    con.execute(
        "DELETE FROM baselines WHERE sweep = ? AND task = ? AND name = ? AND source = 'measured'", [sweep, task, name]
    )
    columns = (
        "sweep",
        "task",
        "name",
        "source",
        "score",
        "accuracy",
        "f1",
        "accuracy_matched",
        "accuracy_mismatched",
        "params",
        "disk_bytes",
        "gzip_bytes",
        "note",
        "recorded_at",
    )
    _insert(
        con,
        "baselines",
        columns,
        [
            [
                sweep,
                task,
                name,
                "measured",
                _num(score, "score"),
                _num(accuracy, "accuracy"),
                _num(f1, "f1"),
                _num(accuracy_matched, "accuracy_matched"),
                _num(accuracy_mismatched, "accuracy_mismatched"),
                _num(params, "params"),
                _num(disk_bytes, "disk_bytes"),
                _num(gzip_bytes, "gzip_bytes"),
                note or "teacher",
                utc_now(),
            ]
        ],
    )


def _fraction(value: Any, what: str) -> float | None:
    value = _finite(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise StoreError(f"baseline {what}: expected a fraction in [0, 1] (0.87, not 87), got {value!r}")
    return float(value)


def _count(value: Any, what: str) -> int | None:
    value = _finite(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise StoreError(f"baseline {what}: expected a non-negative whole number, got {value!r}")
    return int(value)


def baseline_row(
    sweep: str | None,
    task: str,
    name: str,
    score: float,
    params: int | None = None,
    disk_bytes: int | None = None,
    gzip_bytes: int | None = None,
    accuracy: float | None = None,
    f1: float | None = None,
    macro_f1: float | None = None,
    source: str = "user",
    note: str | None = None,
) -> list:
    """Validate a user reference point into a ``baselines`` row (BASELINE_COLUMNS); StoreError names a bad value."""
    if not task or not isinstance(task, str):
        raise StoreError(f"baseline: expected a task name, got {task!r}")
    if not name or not isinstance(name, str):
        raise StoreError(f"baseline: expected a non-empty name, got {name!r}")
    if sweep is not None and (not isinstance(sweep, str) or not sweep):
        raise StoreError(f"baseline: sweep must be a sweep name or None (every sweep), got {sweep!r}")
    if source not in BASELINE_SOURCES:
        raise StoreError(f"baseline source must be one of {BASELINE_SOURCES}, got {source!r}")
    if _finite(score) is None:
        raise StoreError(f"baseline score: expected a fraction in [0, 1], got {score!r}")
    return [
        sweep,
        task,
        name,
        source,
        _fraction(score, "score"),
        _fraction(accuracy, "accuracy"),
        _fraction(f1, "f1"),
        _fraction(macro_f1, "macro_f1"),
        _count(params, "params"),
        _count(disk_bytes, "disk_bytes"),
        _count(gzip_bytes, "gzip_bytes"),
        _text(note),
        utc_now(),
    ]


def insert_baseline(con: duckdb.DuckDBPyConnection, row: list) -> None:
    """Write a ``baseline_row``; a baseline of the same (sweep, task, name, source) is replaced."""
    sweep, task, name, source = row[:4]
    con.execute(
        "DELETE FROM baselines WHERE sweep IS NOT DISTINCT FROM ? AND task = ? AND name = ? AND source = ?",
        [sweep, task, name, source],
    )
    _insert(con, "baselines", BASELINE_COLUMNS, [row])
