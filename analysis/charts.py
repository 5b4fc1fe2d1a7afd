"""Altair Pareto (skyline) charts of dev score against size, drawn from the ``pareto_points`` view (thesis figs
7.2-7.4), made to be read without the tables and put in a paper.

- y: the task's metric on dev in percent (``dev accuracy (%)``), x: the size measure with its unit on a log scale;
  both domains fitted to the data with padding, so no point is clipped.
- Every point coloured by architecture (students: bilstm, rnn, ffn; transformers made from the teacher: theseus,
  bertvision; baselines black), shaped by stage (distilled, pruned, quantized, pruned + quantized, teacher compressed,
  teacher compressed + quantized, teacher baseline, literature/user baseline); dominated points lighter, skyline
  points opaque and named; the skyline a black dashed step line with its own legend entry. One chart spans the whole
  range, from kilobyte students to the teacher (the log axis labels each decade).
- A thin line from each compressed trial to its distilled parent; for configurations with several seeds, a hollow
  mean marker with an error bar of +- one sample sd (``seed_summary``).
- Optional hardware budgets (e.g. L1/L2 cache sizes) as labelled vertical rules (``chart_frames.parse_size`` reads
  them).
- Interactive in HTML: tooltips with the whole configuration (for a teacher-compressed model: its method settings,
  trainable parameters and CPU latency), zoom and pan (scroll, drag), click a legend entry to
  show one architecture only. Legends sit under the plot, never over a label.

The rows come from ``analysis.chart_frames``, the names' places from ``analysis.chart_labels``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.chart_frames import (
    METRIC_NAMES,
    SKYLINE_SERIES,
    link_frame,
    pareto_frame,
    seed_frame,
    size_label,
    stopped_frame,
    sweep_task_metric,
)
from analysis.chart_labels import LABEL_DX, LABEL_DYS, one_per_cluster, place_labels
from featherweight_core.atomic import atomic_write

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

    from db.store import ExperimentStore

SIZE_TITLES = {
    "disk_bytes": "size on disk (MB, log scale)",
    "gzip_bytes": "gzip size (MB, log scale)",
    "params": "parameters, non-zero (log scale)",
    "latency_ms_torch": "CPU latency, batch 1, PyTorch (ms, log scale)",
    "latency_ms_onnxruntime": "CPU latency, batch 1, ONNX Runtime (ms, log scale)",
}
SCORE_TITLES = {"score": "score", "accuracy": "accuracy", "f1": "F1", "macro_f1": "macro-F1"}
FACETS = ("task", "embedding", "arch")
TOOLTIP_FIELDS = (
    ("name", "model"),
    ("trial_id", "trial"),
    ("stage_label", "stage"),
    ("configuration", "configuration"),
    ("parent_trial_id", "parent"),
    ("source", "source"),
)
# in the tooltips of a panel whose trials know their agreement with the teacher on dev
FIDELITY_TOOLTIP = "agrees with the teacher (dev)"
# in the tooltips of a panel with teacher-compressed models ('-' for the other points)
TEACHER_COMPRESSION_TOOLTIPS = (("trainable_text", "trainable params"), ("latency_text", "CPU latency, batch 1"))
# colour-blind-safe (Okabe-Ito), far from black (the skyline and the baselines); theseus and bertvision are the
# transformers teacher compression makes (featherweight_core.vocab.TEACHER_COMPRESSION_METHODS)
ARCH_COLORS = {"bilstm": "#0072b2", "rnn": "#e69f00", "ffn": "#cc79a7", "theseus": "#009e73", "bertvision": "#d55e00"}
BASELINE_COLOR = "#222222"
STAGE_SHAPES = {
    "distilled": "circle",
    "pruned": "triangle-up",
    "quantized": "square",
    "pruned + quantized": "triangle-down",
    # a five-pointed star (SVG path in Vega's unit square): the transformers made from the teacher
    # (outer radius 1.3, inner 0.65: a star's area is about half its box, so it outgrows the unit square to weigh
    # about as much as the circles and squares at the same mark size)
    "teacher compressed": "M0,-1.3L0.38,-0.53L1.24,-0.4L0.62,0.2L0.76,1.05L0,0.65"
    "L-0.76,1.05L-0.62,0.2L-1.24,-0.4L-0.38,-0.53Z",
    "teacher compressed + quantized": "triangle-right",
    "teacher baseline": "diamond",
    "literature/user baseline": "cross",
}
DOMINATED_OPACITY = 0.35
STOPPED_OPACITY = 0.3  # a trial the scheduler stopped: a hollow point, fainter than a dominated finished one


def plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Pandas nullable dtypes -> plain objects with None, which Altair serialises as JSON null."""
    out = df.astype(object)
    return out.where(df.notna(), None)


def axis_domains(frames: list[pd.DataFrame], budgets_x: list[float]) -> tuple[list[float], list[float]]:
    xs = [float(v) for f in frames for v in f["x"].dropna()] + list(budgets_x)
    ys = [float(v) for f in frames for c in ("y", "y_lo", "y_hi") if c in f for v in f[c].dropna()]
    if not xs or not ys:
        return [1e-3, 1e4], [0.0, 100.0]
    lo, hi = min(xs), max(xs)
    span = max(math.log10(hi / lo), 0.3)
    pad = 10 ** (0.08 * span)
    ylo, yhi = min(ys), max(ys)
    ypad = max((yhi - ylo) * 0.08, 0.5)
    return [lo / pad, hi * pad], [ylo - ypad, yhi + ypad]


def budget_layers(budgets, budgets_x: list[float], x, height: int) -> list:
    """A dashed vertical rule at each size budget (``budgets`` in bytes, ``budgets_x`` where they sit on the x axis),
    labelled along the rule from the bottom up: the top holds the skyline's labels."""
    import altair as alt
    import pandas as pd

    rule = alt.Chart(pd.DataFrame({"x": budgets_x, "label": [size_label(b) for b in budgets]})).encode(x=x)
    return [
        rule.mark_rule(color="#777777", strokeDash=[2, 2], strokeWidth=1),
        rule.mark_text(angle=270, align="left", baseline="bottom", dx=4, dy=-3, fontSize=10, color="#555555").encode(
            text="label:N", y=alt.value(height)
        ),
    ]


def pareto_chart(
    df: pd.DataFrame,
    title: str,
    score_title: str = "dev score (%)",
    size_title: str = "gzip size (MB, log scale)",
    width: int = 900,
    height: int = 420,
    seeds: pd.DataFrame | None = None,
    budgets: list[int] | tuple = (),
    skyline: pd.DataFrame | None = None,
    name: str = "p0",
    color_domain: list[str] | None = None,
    stage_domain: list[str] | None = None,
    stopped: pd.DataFrame | None = None,
) -> alt.LayerChart:
    """One skyline panel from ``pareto_frame`` rows; ``seeds`` (``seed_frame``) adds seed means with sd bars,
    ``budgets`` (bytes) vertical rules, ``skyline`` the rows the skyline line is drawn through (default: ``df``'s),
    ``stopped`` (``stopped_frame``) the trials a scheduler stopped, as faint hollow points off the skyline.
    ``name`` keeps the panel's selections apart from its neighbours'."""
    import altair as alt
    import pandas as pd

    skyline = df if skyline is None else skyline
    is_bytes = "MB" in size_title
    budgets_x = [b / 1e6 for b in budgets] if is_bytes else []
    seeds = seeds if seeds is not None else pd.DataFrame(columns=["x", "y", "y_lo", "y_hi", "color_key"])
    xdom, ydom = axis_domains([df, seeds], budgets_x)
    size_short = size_title.replace(", log scale", "").replace(" (log scale)", "")
    # log axes label 2..9 within a decade when few decades are shown: keep 6 px between labels (0.03 0.04 0.05 would
    # otherwise run together); a range of many decades is labelled at each decade
    x_axis = alt.Axis(format="~g" if is_bytes else "~s", grid=True, labelOverlap="greedy", labelSeparation=6)
    x = alt.X("x:Q", scale=alt.Scale(type="log", domain=xdom, nice=False), title=size_title, axis=x_axis)
    y_scale = alt.Scale(zero=False, domain=ydom, nice=False)
    y = alt.Y("y:Q", scale=y_scale, title=score_title)
    color_domain = color_domain or sorted(set(df["color_key"].dropna()))
    color_range = [ARCH_COLORS.get(k, BASELINE_COLOR if k == "baseline" else "#999999") for k in color_domain]
    color_scale = alt.Scale(domain=color_domain, range=color_range)
    color = alt.Color(
        "color_key:N", scale=color_scale, title="architecture", legend=alt.Legend(symbolType="circle", symbolOpacity=1)
    )
    stage_domain = stage_domain or [s for s in STAGE_SHAPES if s in set(df["stage_label"])]
    shape = alt.Shape(
        "stage_label:N",
        title="stage",
        scale=alt.Scale(domain=stage_domain, range=[STAGE_SHAPES[s] for s in stage_domain]),
        legend=alt.Legend(symbolFillColor="#555555", symbolStrokeColor="#555555", symbolOpacity=1),
    )
    pick = alt.selection_point(fields=["color_key"], bind="legend", name=f"{name}_arch")
    zoom = alt.selection_interval(bind="scales", name=f"{name}_zoom")
    shown = pick
    frontier_scale = alt.Scale(domain=["skyline", "dominated"], range=[1.0, DOMINATED_OPACITY])
    frontier = alt.Opacity(
        "frontier:O",
        title="point",
        scale=frontier_scale,
        sort=["skyline", "dominated"],
        legend=alt.Legend(symbolType="circle", symbolFillColor="#555555"),
    )
    data = plain_frame(df[[c for c in df.columns if c not in ("sweep",)]])
    tooltip = [alt.Tooltip(f"{c}:N", title=t) for c, t in TOOLTIP_FIELDS if c in data.columns]
    if "stage" in df.columns and (df["stage"] == "teacher_compression").any():
        tooltip += [alt.Tooltip(f"{c}:N", title=t) for c, t in TEACHER_COMPRESSION_TOOLTIPS if c in data.columns]
    if "fidelity" in df.columns and df["fidelity"].notna().any():  # a teacher whose dev outputs are known
        tooltip.append(alt.Tooltip("fidelity_text:N", title=FIDELITY_TOOLTIP))
    tooltip += [
        alt.Tooltip("y:Q", title=score_title, format=".2f"),
        alt.Tooltip("x:Q", title=size_short, format=",.4~g"),
    ]

    layers = []
    links = link_frame(df)
    if not links.empty:
        layers.append(
            alt.Chart(plain_frame(links))
            .mark_rule(strokeWidth=1)
            .encode(
                x=x,
                y=y,
                x2="x_parent:Q",
                y2="y_parent:Q",
                color=color,
                opacity=alt.condition(shown, alt.value(0.45), alt.value(0.05)),
            )
        )
    sky = skyline[skyline["on_skyline"].astype(bool)].sort_values("x")
    if not sky.empty:
        layers.append(
            alt.Chart(plain_frame(sky[["x", "y", "series"]]))
            .mark_line(interpolate="step-after", color="black", strokeWidth=1.5)
            .encode(
                x=x,
                y=y,
                order=alt.Order("x:Q"),
                strokeDash=alt.StrokeDash(
                    "series:N",
                    title=None,
                    scale=alt.Scale(domain=[SKYLINE_SERIES], range=[[6, 4]]),
                    legend=alt.Legend(
                        symbolType="stroke", symbolSize=400, symbolStrokeColor="black", symbolStrokeWidth=1.5
                    ),
                ),
            )
        )
    if budgets_x:
        layers += budget_layers(budgets, budgets_x, x, height)
    if not seeds.empty:
        sd = alt.Chart(plain_frame(seeds)).encode(
            x=x,
            color=color,
            opacity=alt.condition(shown, alt.value(0.9), alt.value(0.05)),
            tooltip=[
                alt.Tooltip("configuration:N", title="configuration"),
                alt.Tooltip("y:Q", title=f"mean {score_title}", format=".2f"),
                alt.Tooltip("y_lo:Q", title="mean - sd", format=".2f"),
                alt.Tooltip("y_hi:Q", title="mean + sd", format=".2f"),
            ],
        )
        layers.append(
            sd.mark_rule(strokeWidth=1.5).encode(y=alt.Y("y_lo:Q", scale=y_scale, title=score_title), y2="y_hi:Q")
        )
        layers.append(sd.mark_point(shape="circle", filled=False, size=140, strokeWidth=1.5).encode(y=y))
    if stopped is not None and not stopped.empty:
        # the scheduler's stopped trials: where they were when it stopped them (not on the skyline, which is of
        # finished trials); the same colours, hollow and faint
        layers.append(
            alt.Chart(plain_frame(stopped[["x", "y", "color_key", "configuration", "stopped_text", "stop_reason"]]))
            .mark_point(filled=False, size=45, strokeWidth=1)
            .encode(
                x=x,
                y=y,
                color=color,
                opacity=alt.condition(shown, alt.value(STOPPED_OPACITY), alt.value(0.03)),
                tooltip=[
                    alt.Tooltip("configuration:N", title="configuration"),
                    alt.Tooltip("stopped_text:N", title="scheduler"),
                    alt.Tooltip("stop_reason:N", title="why"),
                    alt.Tooltip("y:Q", title=score_title, format=".2f"),
                    alt.Tooltip("x:Q", title=size_short, format=",.4~g"),
                ],
            )
        )
    points = (
        alt.Chart(data)
        .mark_point(filled=True, size=75, strokeWidth=1.5)
        .encode(
            x=x, y=y, color=color, shape=shape, tooltip=tooltip, opacity=alt.condition(shown, frontier, alt.value(0.05))
        )
        .add_params(pick, zoom)
    )
    layers.append(points)
    named = df[df["on_skyline"].astype(bool) | (df["kind"] == "baseline")].copy()
    named = named[
        one_per_cluster(
            named["name"].astype(str).tolist(), named["x"].astype(float).tolist(), named["y"].astype(float).tolist()
        )
    ]
    if not named.empty:
        # skyline points and the measured teacher are named first, then the other baselines; each group by size
        named["_rank"] = ((named["kind"] != "trial") & (named["source"] != "measured")).astype(int)
        named = named.sort_values(["_rank", "x"])
        places = place_labels(
            named["x"].astype(float).tolist(),
            named["y"].astype(float).tolist(),
            named["name"].astype(str).tolist(),
            xdom,
            ydom,
            width,
            height,
            list(zip(df["x"].astype(float), df["y"].astype(float), strict=True)),
            list(zip(sky["x"].astype(float), sky["y"].astype(float), strict=True)),
        )
        named["_right"] = [p.right if p else None for p in places]
        named["_dy"] = [p.dy if p else None for p in places]
        for right in (True, False):
            for dy in LABEL_DYS:
                part = named[(named["_right"] == right) & (named["_dy"] == dy)]
                if part.empty:
                    continue
                layers.append(
                    alt.Chart(plain_frame(part[["x", "y", "name", "frontier", "color_key"]]))
                    .mark_text(
                        align="left" if right else "right",
                        dx=LABEL_DX if right else -LABEL_DX,
                        dy=dy,
                        fontSize=10,
                        color="#333333",
                    )
                    .encode(x=x, y=y, text="name:N", opacity=alt.condition(shown, frontier, alt.value(0.05)))
                )
    return alt.layer(*layers).properties(title=title, width=width, height=height)


def panels_by(df: pd.DataFrame, by: str | None) -> list[tuple[str | None, pd.DataFrame]]:
    """Split a panel's rows by ``by`` (``embedding`` | ``arch``); baselines go into every part."""
    if by in (None, "task") or by not in df.columns:
        return [(None, df)]
    values = sorted(v for v in df.loc[df["kind"] == "trial", by].dropna().unique())
    if len(values) <= 1:
        return [(None, df)]
    return [(str(v), df[(df[by] == v) | (df["kind"] == "baseline")]) for v in values]


def task_chart(
    store: ExperimentStore,
    sweep: str,
    task: str,
    size_measure: str = "gzip_bytes",
    metric: str | None = None,
    by: str | None = None,
    budgets: list[int] | tuple = (),
) -> alt.HConcatChart | alt.VConcatChart | alt.LayerChart | None:
    """The Pareto chart of one task: a score panel (its y axis named by the task's ``metric``, default: read from the
    sweep's spec), plus an F1 panel when the task reports F1 besides (thesis fig 7.3); with ``by`` (``embedding`` or
    ``arch``) one panel per value, each with the baselines and the whole task's skyline line. ``budgets`` (bytes)
    are drawn as vertical rules on byte axes.

    Returns None when the task has no point with both a score and a positive size."""
    import altair as alt

    if by not in (None, *FACETS):
        raise ValueError(f"by must be one of {FACETS}, got {by!r}")
    metric = metric or sweep_task_metric(store, sweep, task)
    titles = {**SCORE_TITLES, "score": METRIC_NAMES.get(metric, metric)}
    rows = []  # (measure, df, seeds)
    for measure in ("score", "f1"):
        df = pareto_frame(store, sweep, task, measure, size_measure)
        if measure == "f1":
            trials = df[df["kind"] == "trial"]
            if trials.empty or metric == "f1":  # the score panel shows F1 already
                continue
        if df.empty:
            continue
        rows.append(
            (
                measure,
                df,
                seed_frame(store, sweep, task, measure, size_measure),
                stopped_frame(store, sweep, task, measure, size_measure),
            )
        )
    if not rows:
        return None
    color_domain = [k for k in (*ARCH_COLORS, "baseline") if any(k in set(d["color_key"]) for _, d, _, _ in rows)]
    color_domain += sorted({k for _, d, _, _ in rows for k in d["color_key"].dropna()} - set(color_domain))
    stage_domain = [s for s in STAGE_SHAPES if any(s in set(d["stage_label"]) for _, d, _, _ in rows)]
    grid = []
    for measure, df, seeds, stopped in rows:
        parts = panels_by(df, by)
        n_cols = min(len(parts) * len(rows), 2)
        width = 900 if n_cols == 1 else 440
        line = []
        for value, part in parts:
            part_seeds = seeds if value is None else seeds[seeds[by].astype(str) == value]
            part_stopped = stopped if value is None else stopped[stopped[by].astype(str) == value]
            shown = f"dev {titles[measure]}"
            title = f"{task}: {shown} vs {size_measure.replace('_bytes', ' size')}" + (
                f" ({by} {value})" if value else ""
            )
            line.append(
                pareto_chart(
                    part,
                    title,
                    f"{shown} (%)",
                    SIZE_TITLES[size_measure],
                    width=width,
                    height=380 if n_cols == 1 else 320,
                    seeds=part_seeds,
                    budgets=budgets,
                    skyline=df,
                    name=f"p{len(grid)}_{len(line)}",
                    color_domain=color_domain,
                    stage_domain=stage_domain,
                    stopped=part_stopped,
                )
            )
        grid.append(line)
    panels = [p for line in grid for p in line]
    if len(panels) == 1:
        chart = panels[0]
    else:
        # two panels a row: a score and an F1 panel side by side, or the facets of one measure in rows of two
        rows_of_two = [panels[i : i + 2] for i in range(0, len(panels), 2)]
        chart = alt.vconcat(*[alt.hconcat(*r) for r in rows_of_two]) if len(rows_of_two) > 1 else alt.hconcat(*panels)
        chart = chart.resolve_scale(color="shared", shape="shared", opacity="shared", strokeDash="shared")
    return (
        chart.configure_view(stroke=None)
        .configure_axis(grid=True, gridOpacity=0.4, labelFontSize=11, titleFontSize=12)
        .configure_legend(
            orient="bottom", direction="horizontal", titleFontSize=11, labelFontSize=11, columns=4, labelLimit=260
        )
        .configure_title(fontSize=13, anchor="start")
    )


PNG_SCALE = 2.0  # PNG pixels per SVG pixel: sharp in print and on high-density screens


def save_static(chart, path_stem, scale_factor: float = PNG_SCALE) -> dict[str, str]:
    """Write ``<stem>.png`` (``scale_factor`` PNG pixels per SVG pixel) and ``<stem>.svg`` through vl-convert
    (offline); returns {"png": path, "svg": path}."""
    out = {}
    stem = Path(path_stem)
    for fmt in ("png", "svg"):
        final = stem.with_suffix(f".{fmt}")
        options = {"scale_factor": scale_factor} if fmt == "png" else {}
        atomic_write(
            final, lambda tmp, fmt=fmt, options=options: chart.save(str(tmp), format=fmt, **options), suffix=f".{fmt}"
        )
        out[fmt] = str(final)
    return out
