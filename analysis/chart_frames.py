"""The rows a Pareto chart is drawn from: ``pareto_points`` and ``seed_summary`` shaped into chart frames (x in MB
or parameters, y in percent, stage labels, configurations for the tooltips), and the small readers and formatters
the charts and the report share (hardware budgets, a task's metric, parameter counts, method settings).
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING

from db.errors import StoreError
from featherweight_core.errors import UserError
from featherweight_core.vocab import CHART_SIZE_MEASURES, LATENCY_SIZE_MEASURES

if TYPE_CHECKING:
    import pandas as pd

    from db.store import ExperimentStore

SCORE_MEASURES = ("score", "accuracy", "f1", "macro_f1")
# What a task's ``score`` is: the metric a custom task names in its spec (tasks.<task>.metric), else the built-in one
METRIC_NAMES = {"accuracy": "accuracy", "f1": "F1", "macro_f1": "macro-F1"}
BUILTIN_METRICS = {"sst2": "accuracy", "qqp": "accuracy", "mnli": "accuracy"}
DEFAULT_METRIC = "accuracy"
# how a teacher-compression method is written in charts and tables
METHOD_NAMES = {"theseus": "Theseus", "bertvision": "BERT-Vision"}
SKYLINE_SERIES = "skyline (Pareto front)"
_SIZE_UNITS = {
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "kb": 1e3,
    "mb": 1e6,
    "gb": 1e9,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


class BudgetError(UserError, ValueError):
    """A hardware budget that is not a size (``32KB``, ``1.5MB``, ``48KiB``, ``4096`` bytes)."""


def parse_size(text: str | int | float) -> int:
    """A size with an optional unit (B/bytes, KB/MB/GB = 10^3/10^6/10^9, KiB/MiB/GiB = 2^10/2^20/2^30) -> bytes.

    >>> parse_size("32KB"), parse_size("48 KiB"), parse_size("1.5MB"), parse_size(4096)
    (32000, 49152, 1500000, 4096)
    """
    if isinstance(text, bool):
        raise BudgetError(f"budget {text!r}: expected a size such as 32KB, 48KiB, 1.5MB or 4096 (bytes)")
    if isinstance(text, (int, float)):
        value, unit = float(text), "b"
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
        if not m or m.group(2).lower() not in ("", *_SIZE_UNITS):
            raise BudgetError(f"budget {text!r}: expected a size such as 32KB, 48KiB, 1.5MB or 4096 (bytes)")
        value, unit = float(m.group(1)), (m.group(2).lower() or "b")
    size = value * _SIZE_UNITS[unit]
    if not math.isfinite(size) or size <= 0:
        raise BudgetError(f"budget {text!r}: expected a size > 0")
    return int(round(size))


def size_label(n_bytes: int) -> str:
    """32000 -> '32 KB', 49152 -> '48 KiB', 1500000 -> '1.5 MB' (the unit the number is round in)."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n_bytes >= factor and n_bytes % factor == 0 and n_bytes % (factor * 1000 // 1024) != 0:
            return f"{n_bytes // factor} {unit}"
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:g} {unit}"
    return f"{n_bytes} B"


def task_metric(spec: dict | None, task: str) -> str:
    """The metric a task's ``score`` is (``accuracy`` | ``f1`` | ``macro_f1``), from the sweep's stored spec.

    >>> task_metric({"tasks": {"tweets": {"metric": "macro_f1"}}}, "tweets"), task_metric({}, "qqp")
    ('macro_f1', 'accuracy')
    """
    tasks = spec.get("tasks") if isinstance(spec, dict) else None
    cfg = tasks.get(task) if isinstance(tasks, dict) else None
    metric = cfg.get("metric") if isinstance(cfg, dict) else None
    if metric in METRIC_NAMES:
        return metric
    return BUILTIN_METRICS.get(task, DEFAULT_METRIC)


def sweep_task_metric(store: ExperimentStore, sweep: str, task: str) -> str:
    """``task_metric`` of the spec ``sweep`` was last started with (the default when it has none)."""
    try:
        spec = store.sweep_spec(sweep)
    except StoreError:
        spec = None
    return task_metric(spec, task)


def spec_budgets(spec: dict | None) -> list[int]:
    """The hardware budgets (bytes) of a stored spec's ``report.budgets``; [] when it has none."""
    report = spec.get("report") if isinstance(spec, dict) else None
    budgets = report.get("budgets") if isinstance(report, dict) else None
    return [parse_size(b) for b in budgets or []]


def _size_divisor(size_measure: str) -> float:
    return 1e6 if size_measure.endswith("_bytes") else 1.0


def _stage_label(row) -> str:
    if row["kind"] == "baseline":
        return "teacher baseline" if row.get("source") == "measured" else "literature/user baseline"
    if row.get("stage") == "teacher_compression":
        quantized = isinstance(row.get("quantization"), str) and bool(row.get("quantization"))
        return "teacher compressed + quantized" if quantized else "teacher compressed"
    if row.get("stage") != "compress":
        return "distilled"
    pruned = isinstance(row.get("pruning"), str) and bool(row.get("pruning"))
    quantized = isinstance(row.get("quantization"), str) and bool(row.get("quantization"))
    if pruned and quantized:
        return "pruned + quantized"
    return "quantized" if quantized else "pruned"


def present(v) -> bool:
    """Not None, NaN, NaT or pandas.NA (nullable integer columns come back with pandas.NA)."""
    import pandas as pd

    if v is None:
        return False
    try:
        return not bool(pd.isna(v))
    except (TypeError, ValueError):  # list-like
        return True


def method_settings(settings) -> str:
    """A teacher-compression trial's settings (JSON text or dict) as ``key value`` pairs in key order.

    >>> method_settings('{"schedule": "linear", "replace_rate": 0.3}')
    'replace_rate 0.3, schedule linear'
    """
    if isinstance(settings, str):
        try:
            settings = json.loads(settings)
        except ValueError:
            return settings
    if not isinstance(settings, dict):
        return ""
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(settings.items()))


def count_text(n) -> str:
    """A parameter count in a tooltip or table: 5300000 -> '5.3M', 52000 -> '52k', 300 -> '300'.

    >>> count_text(5_300_000), count_text(52_000), count_text(300), count_text(None)
    ('5.3M', '52k', '300', '-')
    """
    if not present(n):
        return "-"
    n = float(n)
    for unit, factor in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= factor:
            return f"{n / factor:.3g}{unit}"
    return f"{n:.0f}"


def layers_text(n) -> str:
    """1 -> '1 layer', 3 -> '3 layers'."""
    return f"{int(n)} layer" + ("" if int(n) == 1 else "s")


def _teacher_compression_configuration(row) -> str:
    layers = row.get("layers")
    parts = [METHOD_NAMES.get(row["arch"], str(row["arch"])) + (f" {layers_text(layers)}" if present(layers) else "")]
    settings = method_settings(row.get("settings"))
    if settings:
        parts.append(settings)
    if present(row.get("seed")):
        parts.append(f"seed {row['seed']}")
    if isinstance(row.get("quantization"), str) and row.get("quantization"):
        parts.append(str(row["quantization"]))
    parts.append(f"trainable {count_text(row.get('trainable_params'))} params")
    if present(row.get("latency_ms")):
        parts.append(f"CPU latency {float(row['latency_ms']):.2f} ms (batch 1)")
    return ", ".join(parts)


def _latency_text(row) -> str:
    """A teacher-compressed point's CPU latency for the tooltip, with its speed-up over the teacher when measured."""
    if not present(row.get("latency_ms")):
        return "-"
    speedup = row.get("speedup_vs_teacher")
    return f"{float(row['latency_ms']):.2f} ms" + (f" ({float(speedup):.2f}x faster)" if present(speedup) else "")


def fidelity_text(value) -> str:
    """A trial's agreement with the teacher on dev for a tooltip or table: 0.9312 -> '93.1%', '-' when unknown.

    >>> fidelity_text(0.9312), fidelity_text(None)
    ('93.1%', '-')
    """
    return "-" if value is None or value != value else f"{100 * float(value):.1f}%"


def _configuration(row) -> str:
    if row["kind"] == "baseline":
        return str(row.get("source") or "")
    if row.get("stage") == "teacher_compression":
        return _teacher_compression_configuration(row)
    parts = [f"{row['arch']} {row['embedding']} d{row['emb_dim']}"]
    for col, name in (("vocab_size", "vocab"), ("alpha", "alpha"), ("temperature", "T"), ("seed", "seed")):
        v = row.get(col)
        if v is not None and v == v:
            parts.append(f"{name} {v:g}" if isinstance(v, float) else f"{name} {v}")
    if row.get("bootstrap") is True:
        parts.append("bootstrap")
    for col in ("pruning", "quantization"):
        if isinstance(row.get(col), str) and row.get(col):
            parts.append(str(row[col]))
    return ", ".join(parts)


def pareto_frame(store: ExperimentStore, sweep: str, task: str, score_measure: str, size_measure: str) -> pd.DataFrame:
    """Rows of ``pareto_points`` for one chart panel, with ``x`` (MB or parameter count), ``y`` (percent),
    ``stage_label``, ``color_key`` (arch, or ``baseline``), ``frontier`` and ``configuration`` added (``store`` needs
    the analysis views: ``analysis.views.open_store``)."""
    if score_measure not in SCORE_MEASURES:
        raise ValueError(f"score measure must be one of {SCORE_MEASURES}, got {score_measure!r}")
    if size_measure not in CHART_SIZE_MEASURES:
        raise ValueError(f"size measure must be one of {CHART_SIZE_MEASURES}, got {size_measure!r}")
    df = store.query(
        "SELECT * FROM pareto_points WHERE sweep = ? AND task = ? AND score_measure = ? AND size_measure = ? "
        "AND size_value > 0 ORDER BY size_value, score_value DESC",
        [sweep, task, score_measure, size_measure],
    )
    df["x"] = df["size_value"] / _size_divisor(size_measure)
    df["y"] = df["score_value"].astype(float) * 100
    records = df.to_dict("records")
    df["stage_label"] = [_stage_label(r) for r in records]
    df["configuration"] = [_configuration(r) for r in records]
    df["color_key"] = [r["arch"] if r["kind"] == "trial" else "baseline" for r in records]
    compressed = [r.get("stage") == "teacher_compression" for r in records]
    df["trainable_text"] = [
        count_text(r.get("trainable_params")) if c else "-" for r, c in zip(records, compressed, strict=True)
    ]
    df["latency_text"] = [_latency_text(r) if c else "-" for r, c in zip(records, compressed, strict=True)]
    df["fidelity_text"] = [fidelity_text(r.get("fidelity")) for r in records]
    df["frontier"] = ["skyline" if r["on_skyline"] else "dominated" for r in records]
    df["series"] = SKYLINE_SERIES
    return df


# sizes a stopped trial has (measured at its rung); a latency it has not (it was never timed)
STOPPED_SIZE_COLUMNS = {"gzip_bytes": "gzip_bytes", "disk_bytes": "disk_bytes", "params": "params"}


def stopped_frame(store: ExperimentStore, sweep: str, task: str, score_measure: str, size_measure: str) -> pd.DataFrame:
    """Trials a scheduler stopped at a rung (status ``stopped``): ``x``/``y`` as :func:`pareto_frame` places points
    (their best dev score up to the rung, their size measured there), ``color_key`` (arch), ``configuration``,
    ``stopped_text`` ("stopped after epoch 3") and ``stop_reason``. Empty for a latency axis (never timed)."""
    import pandas as pd  # as the other frames: loaded when a chart is drawn

    if score_measure not in SCORE_MEASURES:
        raise ValueError(f"score measure must be one of {SCORE_MEASURES}, got {score_measure!r}")
    size_col = STOPPED_SIZE_COLUMNS.get(size_measure)
    columns = ["x", "y", "color_key", "configuration", "stopped_text", "stop_reason", "arch", "embedding"]
    if size_col is None:
        return pd.DataFrame(columns=columns)
    df = store.query(
        f"SELECT t.arch, t.embedding, t.emb_dim, t.vocab_size, t.alpha, t.temperature, t.seed, t.bootstrap,"
        f" t.stopped_at_rung, t.stop_reason, r.{score_measure} AS score_value, r.{size_col} AS size_value"
        " FROM trials t JOIN results r USING (sweep, trial_id)"
        f" WHERE t.sweep = ? AND t.task = ? AND t.status = 'stopped' AND r.{size_col} > 0"
        f" AND r.{score_measure} IS NOT NULL ORDER BY size_value, score_value DESC",
        [sweep, task],
    )
    if df.empty:
        return pd.DataFrame(columns=columns)
    df["x"] = df["size_value"].astype(float) / _size_divisor(size_measure)
    df["y"] = df["score_value"].astype(float) * 100
    records = df.to_dict("records")
    df["configuration"] = [_configuration({**r, "kind": "trial"}) for r in records]
    df["color_key"] = df["arch"]
    df["stopped_text"] = [f"stopped after epoch {int(r)}" for r in df["stopped_at_rung"]]
    df["stop_reason"] = df["stop_reason"].fillna("")
    return df


def seed_frame(store: ExperimentStore, sweep: str, task: str, score_measure: str, size_measure: str) -> pd.DataFrame:
    """Configurations with several seeds (``seed_summary``): x at the mean size, ``y`` the mean score in percent and
    ``y_lo``/``y_hi`` mean -+ one sample sd, cut at 0 and 100 (a bar past a score's bounds would stretch the axis to
    values no model can have)."""
    col = "score" if score_measure == "score" else score_measure
    if size_measure in LATENCY_SIZE_MEASURES:  # seed summaries carry sizes only: no error bars on a latency axis
        size_measure = "gzip_bytes"
        empty = True
    else:
        empty = False
    size_col = "nonzero_params" if size_measure == "params" else size_measure
    df = store.query(
        f"SELECT stage, label, arch, embedding, emb_dim, vocab_size, alpha, bootstrap, method, settings, n_seeds, "
        f"coalesce({size_col}, params) AS size_value, {col}_mean AS mean, {col}_sd AS sd "
        f"FROM seed_summary WHERE sweep = ? AND task = ? AND n_seeds > 1 AND {col}_mean IS NOT NULL",
        [sweep, task],
    )
    df = df[df["size_value"].astype(float) > 0].copy()
    df["x"] = df["size_value"].astype(float) / _size_divisor(size_measure)
    df["y"] = df["mean"].astype(float) * 100
    sd = df["sd"].astype(float).fillna(0.0) * 100
    df["y_lo"], df["y_hi"] = (df["y"] - sd).clip(lower=0.0), (df["y"] + sd).clip(upper=100.0)
    df["color_key"] = df["arch"]
    df["configuration"] = [
        (
            f"{r['label']}, {method_settings(r['settings'])}"
            if r["stage"] == "teacher_compression"
            else f"{r['arch']} {r['embedding']} d{r['emb_dim']}, {r['method']}"
        )
        + f", mean of {r['n_seeds']} seeds"
        for r in df.to_dict("records")
    ]
    return df.iloc[0:0] if empty else df


def link_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per compressed trial whose parent is a point of ``df``: the child's x/y and the parent's x_parent,
    y_parent."""
    import pandas as pd

    trials = df[df["kind"] == "trial"]
    parents = trials[["trial_id", "x", "y"]].rename(
        columns={"trial_id": "parent_trial_id", "x": "x_parent", "y": "y_parent"}
    )
    children = trials[trials["parent_trial_id"].notna()][
        ["trial_id", "parent_trial_id", "x", "y", "color_key", "arch", "embedding"]
    ]
    if children.empty:
        return pd.DataFrame(columns=["trial_id", "parent_trial_id", "x", "y", "x_parent", "y_parent", "color_key"])
    return children.merge(parents, on="parent_trial_id", how="inner")
