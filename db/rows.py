"""Trial rows: ``TrialRecord`` (one trial as the sweep driver reports it), cleaned into the rows of ``trials``,
``results``, ``epochs`` and ``class_metrics``, and the write of one trial. Each write function takes an open
connection inside a transaction; ``ExperimentStore`` opens it. Sweeps' rows are in ``db.sweep_rows``, baselines' in
``db.baseline_rows``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from db.columns import (
    CLASS_COLUMNS,
    EPOCH_COLUMNS,
    EXTRA_RESULT_COLUMNS,
    LATENCY_COLUMNS,
    LATENCY_MODELS,
    METRIC_COLUMNS,
    PLACEMENT_COLUMNS,
    RESULT_COLUMNS,
    SIZE_COLUMNS,
    TRIAL_COLUMNS,
    TRIAL_STATUSES,
)
from db.errors import StoreError
from db.values import (
    finite,
    first_set,
    insert_rows,
    is_stage_name,
    number,
    text_or_none,
    timestamp,
    to_json,
    utc_now,
)
from featherweight_core.vocab import LATENCY_RUNTIMES, MODULE_GROUPS

if TYPE_CHECKING:
    import duckdb


@dataclass
class TrialRecord:
    """One trial as the sweep driver reports it; ``metrics`` scores are fractions in [0, 1], sizes are bytes/counts."""

    sweep: str
    trial_id: str
    stage: str  # the stage that ran it: "distill" | "compress" | "teacher_compression" (sweep.stages.registry)
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
    status: str = "finished"  # "finished" | "error" | "stopped" (by a scheduler, at a rung)
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
    # CPU speed per model and runtime (migration 008): {"model", "runtime", "precision", "p50_ms", "p90_ms",
    # "throughput", "batch_size", "threads", "examples", "machine"}; empty when the sweep does not measure it
    latency: list[dict] = field(default_factory=list)
    # a trial a scheduler stopped (migration 009): the epoch of the rung it stopped at, and why
    stopped_at_rung: int | None = None
    stop_reason: str | None = None

    def validate(self) -> None:
        if not self.sweep or not self.trial_id:
            raise StoreError(
                f"trial record needs a sweep and a trial_id, got sweep={self.sweep!r} trial_id={self.trial_id!r}"
            )
        if not is_stage_name(self.stage):
            raise StoreError(
                f"trial {self.trial_id}: stage must be a name of lower-case letters, digits and '_', got {self.stage!r}"
            )
        if self.status not in TRIAL_STATUSES:
            raise StoreError(f"trial {self.trial_id}: status must be one of {TRIAL_STATUSES}, got {self.status!r}")


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
        predicted = [None if finite(c) is None else int(finite(c)) for c in predicted]
    support = finite(entry.get("support"))
    return [
        *key,
        str(entry["split"]),
        int(entry["label_id"]),
        text_or_none(entry.get("label")),
        number(entry.get("precision"), "precision"),
        number(entry.get("recall"), "recall"),
        number(entry.get("f1"), "f1"),
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
    epoch = finite(entry.get("epoch"))
    return {
        "epoch": int(epoch) if epoch is not None else index + 1,
        "train_loss": number(entry.get("train_loss"), "train_loss"),
        "score": number(entry.get("score"), "score"),
        "seconds": number(entry.get("seconds"), "seconds"),
        "samples_per_second": number(entry.get("samples_per_second"), "samples_per_second"),
        "metrics": to_json(metrics),
    }


@dataclass
class TrialRows:
    """A TrialRecord cleaned into the rows of ``trials``, ``results`` (None: nothing measured) and ``epochs``."""

    key: list
    trial: list
    result: list | None
    epochs: list[list]
    classes: list[list] = field(default_factory=list)
    latency: list[list] = field(default_factory=list)


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
        "alpha": number(rec.alpha, "alpha"),
        "temperature": number(rec.temperature, "temperature"),
        "bootstrap": bool(rec.bootstrap),
        "seed": int(rec.seed),
        "pooling": rec.pooling,
        "pruning": rec.pruning,
        "quantization": rec.quantization,
        "status": rec.status,
        "error": rec.error,
        "config": to_json(rec.config),
        "started_at": timestamp(rec.started_at),
        "finished_at": timestamp(rec.finished_at),
        "seconds": number(rec.seconds, "seconds"),
        "checkpoint_path": text_or_none(rec.checkpoint_path),
        "recorded_at": utc_now(),
        "device": text_or_none(rec.device),
        "node": text_or_none(rec.node),
        **{c: text_or_none(getattr(rec, c)) for c in PLACEMENT_COLUMNS},
        "teacher": text_or_none(rec.teacher),
        "stopped_at_rung": None if rec.stopped_at_rung is None else int(rec.stopped_at_rung),
        "stop_reason": text_or_none(rec.stop_reason),
    }
    extra = {
        "trainable_params": first_set(rec.trainable_params, sizes.get("trainable_params")),
        "latency_ms": first_set(rec.latency_ms, rec.metrics.get("latency_ms")),
        "layers": first_set(rec.layers, sizes.get("layers")),
        "teacher_latency_ms": first_set(rec.teacher_latency_ms, rec.metrics.get("teacher_latency_ms")),
    }
    result = None
    if rec.metrics or sizes or any(v is not None for v in extra.values()):
        result = [
            rec.sweep,
            rec.trial_id,
            *(number(rec.metrics.get(c), c) for c in METRIC_COLUMNS),
            *(number(sizes.get(c), c) for c in SIZE_COLUMNS),
            to_json(rec.metrics),
            to_json(sizes),
            *(number(extra[c], c) for c in EXTRA_RESULT_COLUMNS),
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
    latency: dict[tuple, list] = {}
    for entry in rec.latency:
        row = _latency_row(key, entry)
        latency[(row[2], row[3])] = row  # a repeated (model, runtime) keeps the last
    return TrialRows(
        key=key,
        trial=[values[c] for c in TRIAL_COLUMNS],
        result=result,
        epochs=[[*key, *(r[c] for c in EPOCH_COLUMNS[2:])] for r in epochs.values()],
        classes=list(classes.values()),
        latency=list(latency.values()),
    )


def _latency_row(key: list, entry: Any) -> list:
    entry = dict(entry)
    if entry.get("model") not in LATENCY_MODELS or entry.get("runtime") not in LATENCY_RUNTIMES:
        raise StoreError(
            f"trial {key[1]}: latency row needs model in {LATENCY_MODELS} and runtime in {LATENCY_RUNTIMES},"
            f" got {entry.get('model')!r}, {entry.get('runtime')!r}"
        )
    ints = {c: finite(entry.get(c)) for c in ("batch_size", "threads", "examples")}
    return [
        *key,
        entry["model"],
        entry["runtime"],
        text_or_none(entry.get("precision")),
        *(number(entry.get(c), c) for c in ("p50_ms", "p90_ms", "throughput")),
        *(None if v is None else int(v) for v in ints.values()),
        text_or_none(entry.get("machine")),
    ]


def insert_trial(con: duckdb.DuckDBPyConnection, rows: TrialRows) -> bool:
    """Write one trial; False (nothing changed) when it is already recorded as finished, an ``error`` row is
    replaced."""
    row = con.execute("SELECT status FROM trials WHERE sweep = ? AND trial_id = ?", rows.key).fetchone()
    if row is not None:
        if row[0] == "finished":
            return False
        for table in ("latency", "class_metrics", "epochs", "results", "trials"):
            con.execute(f"DELETE FROM {table} WHERE sweep = ? AND trial_id = ?", rows.key)
    insert_rows(con, "trials", TRIAL_COLUMNS, [rows.trial])
    if rows.result is not None:
        insert_rows(con, "results", RESULT_COLUMNS, [rows.result])
    insert_rows(con, "epochs", EPOCH_COLUMNS, rows.epochs)  # one statement, not one per epoch
    insert_rows(con, "class_metrics", CLASS_COLUMNS, rows.classes)
    insert_rows(con, "latency", LATENCY_COLUMNS, rows.latency)
    return True
