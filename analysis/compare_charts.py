"""The Pareto chart of one task over several sweeps (``featherweight report A B ...``): every sweep's points and
skyline in one figure.

- Colour: the sweep (colour-blind-safe Okabe-Ito, in the order the sweeps were named; reference baselines every
  sweep shares in black), with a legend naming the sweeps; each sweep's skyline a step line in its colour with its own
  dash pattern (so a grey-scale print tells them apart too).
- Shape: the stage, as on the one-sweep charts (distilled, pruned, quantized, ..., teacher baseline); opacity:
  skyline or dominated within its own sweep.
- Architecture: the colour is the sweep's, so the architectures get panels: under the panel with every point, one
  panel per architecture (``by="arch"``, the default) or per embedding (``by="embedding"``), each with every sweep's
  whole skyline for reference; ``by="task"`` draws the overview alone. The tooltip names the architecture as well.
- Interactive in HTML: tooltips, zoom and pan, click a sweep in the legend to show it alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis.chart_frames import pareto_frame
from analysis.charts import SIZE_TITLES, STAGE_SHAPES, axis_domains, budget_layers, panels_by, plain_frame

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

    from db.store import ExperimentStore

SWEEP_COLORS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442", "#999999")
SWEEP_DASHES = ([6, 3], [2, 2], [10, 3, 2, 3], [1, 3], [12, 4], [4, 2, 1, 2], [8, 2], [3, 5])
REFERENCE = "reference (every sweep)"
REFERENCE_COLOR = "#222222"
DOMINATED_OPACITY = 0.3


def compare_frame(store: ExperimentStore, sweeps: list[str], task: str, size_measure: str) -> pd.DataFrame:
    """``pareto_frame`` rows (dev score) of every sweep with a ``sweep_key`` column: the sweep, or ``REFERENCE`` for
    a literature/user baseline every sweep has (drawn once)."""
    import pandas as pd

    frames = []
    for sweep in sweeps:
        df = pareto_frame(store, sweep, task, "score", size_measure)
        if not df.empty:
            frames.append(df.assign(sweep_key=sweep))
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    shared = (df["kind"] == "baseline") & (df["source"] != "measured")
    refs = df[shared].drop_duplicates(["name", "source", "x", "y"])
    counts = df[shared].groupby(["name", "source", "x", "y"]).size()
    many = {k for k, n in counts.items() if n > 1}
    refs = refs.assign(
        sweep_key=[
            REFERENCE if (r.name, r.source, r.x, r.y) in many else r.sweep_key for r in refs.itertuples(index=False)
        ]
    )
    return pd.concat([df[~shared], refs], ignore_index=True)


def compare_panel(
    df: pd.DataFrame,
    skyline: pd.DataFrame,
    title: str,
    score_title: str,
    size_title: str,
    sweep_domain: list[str],
    stage_domain: list[str],
    width: int,
    height: int,
    name: str,
    budgets: list[int] | tuple = (),
) -> alt.LayerChart:
    """One panel: ``df``'s points coloured by sweep and shaped by stage, each sweep's skyline (``skyline``'s
    on-skyline points) as a step line."""
    import altair as alt

    is_bytes = "MB" in size_title
    budgets_x = [b / 1e6 for b in budgets] if is_bytes else []
    xdom, ydom = axis_domains([skyline] if df.empty else [df, skyline], budgets_x)
    x = alt.X(
        "x:Q",
        scale=alt.Scale(type="log", domain=xdom, nice=False),
        title=size_title,
        axis=alt.Axis(format="~g" if is_bytes else "~s", labelOverlap="greedy", labelSeparation=6),
    )
    y = alt.Y("y:Q", scale=alt.Scale(zero=False, domain=ydom, nice=False), title=score_title)
    colors = [
        REFERENCE_COLOR if s == REFERENCE else SWEEP_COLORS[i % len(SWEEP_COLORS)] for i, s in enumerate(sweep_domain)
    ]
    color = alt.Color(
        "sweep_key:N",
        title="sweep",
        scale=alt.Scale(domain=sweep_domain, range=colors),
        legend=alt.Legend(symbolType="circle", symbolOpacity=1),
    )
    pick = alt.selection_point(fields=["sweep_key"], bind="legend", name=f"{name}_sweep")
    zoom = alt.selection_interval(bind="scales", name=f"{name}_zoom")
    layers = []
    lines = skyline[skyline["on_skyline"].astype(bool) & (skyline["sweep_key"] != REFERENCE)].sort_values("x")
    if not lines.empty:
        line_sweeps = [s for s in sweep_domain if s != REFERENCE]
        layers.append(
            alt.Chart(plain_frame(lines[["x", "y", "sweep_key"]]))
            .mark_line(interpolate="step-after", strokeWidth=1.6)
            .encode(
                x=x,
                y=y,
                order=alt.Order("x:Q"),
                color=color,
                strokeDash=alt.StrokeDash(
                    "sweep_key:N",
                    title="skyline",
                    scale=alt.Scale(
                        domain=line_sweeps,
                        range=[SWEEP_DASHES[i % len(SWEEP_DASHES)] for i, _ in enumerate(line_sweeps)],
                    ),
                    legend=alt.Legend(symbolType="stroke", symbolSize=400, symbolStrokeWidth=1.6),
                ),
                opacity=alt.condition(pick, alt.value(0.9), alt.value(0.08)),
            )
        )
    if budgets_x:
        layers += budget_layers(budgets, budgets_x, x, height)
    cols = ["x", "y", "sweep_key", "name", "trial_id", "stage_label", "configuration", "arch", "frontier"]
    data = plain_frame(df[[c for c in cols if c in df.columns]])
    frontier = alt.Opacity(
        "frontier:O",
        title="point (within its sweep)",
        scale=alt.Scale(domain=["skyline", "dominated"], range=[1.0, DOMINATED_OPACITY]),
        sort=["skyline", "dominated"],
        legend=alt.Legend(symbolType="circle", symbolFillColor="#555555"),
    )
    shape = alt.Shape(
        "stage_label:N",
        title="stage",
        scale=alt.Scale(domain=stage_domain, range=[STAGE_SHAPES[s] for s in stage_domain]),
        legend=alt.Legend(symbolFillColor="#555555", symbolStrokeColor="#555555", symbolOpacity=1),
    )
    layers.append(
        alt.Chart(data)
        .mark_point(filled=True, size=70, strokeWidth=1.5)
        .encode(
            x=x,
            y=y,
            color=color,
            shape=shape,
            opacity=alt.condition(pick, frontier, alt.value(0.05)),
            tooltip=[
                alt.Tooltip("sweep_key:N", title="sweep"),
                alt.Tooltip("name:N", title="model"),
                alt.Tooltip("trial_id:N", title="trial"),
                alt.Tooltip("stage_label:N", title="stage"),
                alt.Tooltip("configuration:N", title="configuration"),
                alt.Tooltip("y:Q", title=score_title, format=".2f"),
                alt.Tooltip("x:Q", title=size_title.replace(", log scale", ""), format=",.4~g"),
            ],
        )
        .add_params(pick, zoom)
    )
    return alt.layer(*layers).properties(title=title, width=width, height=height)


def compare_chart(
    store: ExperimentStore,
    sweeps: list[str],
    task: str,
    size_measure: str = "gzip_bytes",
    score_name: str = "accuracy",
    by: str | None = "arch",
    budgets: list[int] | tuple = (),
) -> alt.VConcatChart | alt.LayerChart | None:
    """Every sweep's points and skyline on ``task`` (dev ``score_name`` against ``size_measure``): an overview
    panel and, under it, one panel per architecture (``by="arch"``) or embedding (``by="embedding"``) when there are
    several. None when no sweep has a point with a score and a positive size."""
    import altair as alt

    df = compare_frame(store, sweeps, task, size_measure)
    if df.empty:
        return None
    sweep_domain = [s for s in sweeps if s in set(df["sweep_key"])] + (
        [REFERENCE] if (df["sweep_key"] == REFERENCE).any() else []
    )
    stage_domain = [s for s in STAGE_SHAPES if s in set(df["stage_label"])]
    score_title = f"dev {score_name} (%)"
    size_title = SIZE_TITLES[size_measure]
    common = dict(score_title=score_title, size_title=size_title, sweep_domain=sweep_domain, stage_domain=stage_domain)
    short = size_measure.replace("_bytes", " size")
    overview = compare_panel(
        df,
        df,
        f"{task}: dev {score_name} vs {short}, {len(sweeps)} sweeps",
        width=900,
        height=400,
        name="c0",
        budgets=budgets,
        **common,
    )
    parts = panels_by(df, by) if by in ("arch", "embedding") else [(None, df)]
    if len(parts) <= 1:
        chart = overview
    else:
        panels = [
            compare_panel(part, df, f"{by} {value}", width=440, height=260, name=f"c{i + 1}", budgets=budgets, **common)
            for i, (value, part) in enumerate(parts)
        ]
        rows = [alt.hconcat(*panels[i : i + 2]) for i in range(0, len(panels), 2)]
        chart = alt.vconcat(overview, *rows).resolve_scale(
            color="shared", shape="shared", opacity="shared", strokeDash="shared"
        )
    return (
        chart.configure_view(stroke=None)
        .configure_axis(grid=True, gridOpacity=0.4, labelFontSize=11, titleFontSize=12)
        .configure_legend(
            orient="bottom", direction="horizontal", titleFontSize=11, labelFontSize=11, columns=4, labelLimit=260
        )
        .configure_title(fontSize=13, anchor="start")
    )
