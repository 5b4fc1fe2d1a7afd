"""Altair Pareto (skyline) charts of score against size, drawn from the ``pareto_points`` view (thesis figs 7.2-7.4).

Size on a log x axis, score on y; skyline points coloured by architecture and joined by a step line (the best score
reachable at or below each size), dominated trials greyed, baselines marked as black diamonds with their names, and
tooltips carrying each point's configuration.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from featherweight_core.vocab import SIZE_MEASURES

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

    from db.store import ExperimentStore

SCORE_MEASURES = ("score", "accuracy", "f1", "macro_f1")
SIZE_TITLES = {
    "disk_bytes": "size on disk (MB, log scale)",
    "gzip_bytes": "gzip size (MB, log scale)",
    "params": "parameters (log scale)",
}
SCORE_TITLES = {"score": "score", "accuracy": "accuracy", "f1": "F1", "macro_f1": "macro-F1"}
# What a task's ``score`` is: the metric a custom task names in its spec (tasks.<task>.metric), else the built-in one
METRIC_NAMES = {"accuracy": "accuracy", "f1": "F1", "macro_f1": "macro-F1"}
BUILTIN_METRICS = {"sst2": "accuracy", "qqp": "accuracy", "mnli": "accuracy"}
DEFAULT_METRIC = "accuracy"
TOOLTIP_FIELDS = (
    ("name", "model"),
    ("kind", "kind"),
    ("trial_id", "trial"),
    ("stage", "stage"),
    ("arch", "arch"),
    ("embedding", "embedding"),
    ("emb_dim", "dim"),
    ("vocab_size", "vocab"),
    ("alpha", "alpha"),
    ("bootstrap", "bootstrap"),
    ("seed", "seed"),
    ("pruning", "pruning"),
    ("quantization", "quantization"),
    ("source", "source"),
)
ARCH_COLORS = {"bilstm": "#1b9e77", "rnn": "#d95f02", "ffn": "#7570b3"}


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
    from db.errors import StoreError

    try:
        spec = store.sweep_spec(sweep)
    except StoreError:
        spec = None
    return task_metric(spec, task)


def pareto_frame(store: ExperimentStore, sweep: str, task: str, score_measure: str, size_measure: str) -> pd.DataFrame:
    """Rows of ``pareto_points`` for one chart panel, with ``x`` (MB or parameter count) added (``store`` needs the
    analysis views: ``analysis.views.open_store``)."""
    if score_measure not in SCORE_MEASURES:
        raise ValueError(f"score measure must be one of {SCORE_MEASURES}, got {score_measure!r}")
    if size_measure not in SIZE_MEASURES:
        raise ValueError(f"size measure must be one of {SIZE_MEASURES}, got {size_measure!r}")
    df = store.query(
        "SELECT * FROM pareto_points WHERE sweep = ? AND task = ? AND score_measure = ? AND size_measure = ? "
        "AND size_value > 0 ORDER BY size_value, score_value DESC",
        [sweep, task, score_measure, size_measure],
    )
    df["x"] = df["size_value"] / (1e6 if size_measure.endswith("_bytes") else 1.0)
    return df


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Pandas nullable dtypes -> plain objects with None, which Altair serialises as JSON null."""
    out = df.astype(object)
    return out.where(df.notna(), None)


def pareto_chart(
    df: pd.DataFrame,
    title: str,
    score_title: str = "score",
    size_title: str = "gzip size (MB, log scale)",
    width: int = 420,
    height: int = 300,
) -> alt.LayerChart:
    """One skyline panel from ``pareto_frame`` rows (columns x, score_value, on_skyline, kind, name, config...)."""
    import altair as alt

    data = _plain(df[[c for c in df.columns if c not in ("sweep",)]])
    tooltip = [alt.Tooltip(f"{c}:N", title=t) for c, t in TOOLTIP_FIELDS if c in data.columns]
    tooltip += [
        alt.Tooltip("score_value:Q", title=score_title, format=".4f"),
        alt.Tooltip("x:Q", title=size_title.replace(", log scale", ""), format=",.4g"),
    ]
    if len(df):
        lo, hi = float(df["x"].min()), float(df["x"].max())
        domain = [10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))]
    else:
        domain = [1e-3, 1e4]
    x = alt.X("x:Q", scale=alt.Scale(type="log", domain=domain), title=size_title, axis=alt.Axis(format="~g"))
    y = alt.Y("score_value:Q", scale=alt.Scale(zero=False), title=score_title)
    base = alt.Chart(data).encode(x=x, y=y, tooltip=tooltip)

    is_trial = alt.datum.kind == "trial"
    dominated = base.transform_filter(is_trial & ~alt.datum.on_skyline).mark_circle(
        size=45, color="#bbbbbb", opacity=0.6
    )
    arch_scale = alt.Scale(domain=list(ARCH_COLORS), range=list(ARCH_COLORS.values()))
    optimal = (
        base.transform_filter(is_trial & alt.datum.on_skyline)
        .mark_circle(size=80, opacity=0.95)
        .encode(color=alt.Color("arch:N", scale=arch_scale, title="architecture"))
    )
    step = (
        base.transform_filter(alt.datum.on_skyline)
        .mark_line(interpolate="step-after", color="#2ca02c", strokeWidth=2)
        .encode(order=alt.Order("x:Q"), tooltip=alt.value(None))
    )
    baselines = base.transform_filter(alt.datum.kind == "baseline")
    # dominated baselines stay marked and named, only lighter
    faded = alt.condition(alt.datum.on_skyline, alt.value(1.0), alt.value(0.45))
    marks = baselines.mark_point(shape="diamond", size=110, filled=True, color="black").encode(opacity=faded)
    names = baselines.mark_text(align="left", dx=8, dy=-6, fontSize=10).encode(text="name:N", opacity=faded)
    return alt.layer(step, dominated, optimal, marks, names).properties(title=title, width=width, height=height)


def task_chart(
    store: ExperimentStore, sweep: str, task: str, size_measure: str = "gzip_bytes", metric: str | None = None
) -> alt.HConcatChart | alt.LayerChart | None:
    """The Pareto chart of one task: a score panel (its y axis named by the task's ``metric``, default: read from the
    sweep's spec), plus an F1 panel when the task reports F1 besides (thesis fig 7.3).

    Returns None when the task has no point with both a score and a positive size."""
    import altair as alt

    metric = metric or sweep_task_metric(store, sweep, task)
    titles = {**SCORE_TITLES, "score": METRIC_NAMES.get(metric, metric)}
    panels = []
    for measure in ("score", "f1"):
        df = pareto_frame(store, sweep, task, measure, size_measure)
        if measure == "f1":
            trials = df[df["kind"] == "trial"]
            if trials.empty or metric == "f1":  # the score panel shows F1 already
                continue
        if df.empty:
            continue
        title = f"{task}: {titles[measure]} vs {size_measure.replace('_bytes', ' size')}"
        panels.append(pareto_chart(df, title, titles[measure], SIZE_TITLES[size_measure]))
    if not panels:
        return None
    chart = panels[0] if len(panels) == 1 else alt.hconcat(*panels).resolve_scale(color="shared")
    return chart.configure_view(stroke=None).configure_axis(grid=True, gridOpacity=0.4)


def save_static(chart, path_stem, scale_factor: float = 2.0) -> dict[str, str]:
    """Write ``<stem>.png`` and ``<stem>.svg`` through vl-convert (offline); returns {"png": path, "svg": path}."""
    from pathlib import Path

    from featherweight_core.atomic import atomic_write

    out = {}
    stem = Path(path_stem)
    for fmt in ("png", "svg"):
        final = stem.with_suffix(f".{fmt}")
        options = {"scale_factor": scale_factor} if fmt == "png" else {}
        atomic_write(final, lambda tmp, fmt=fmt, options=options: chart.save(str(tmp), format=fmt, **options),
                     suffix=f".{fmt}")  # fmt: skip
        out[fmt] = str(final)
    return out
