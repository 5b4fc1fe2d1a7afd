"""The report over several sweeps of one database (``featherweight report A B ...``): per task one chart with every
sweep's points and skyline (``analysis.compare_charts``) and three tables comparing them:

- the skylines at the same size budgets: for each size a sweep's skyline steps at (and each hardware budget), every
  sweep's best dev score among its trials at or below that size, and each sweep's difference from the first sweep
  named, in percentage points;
- the smallest model within 1, 2 and 5 points of the teacher, per sweep (each sweep against the teacher it measured);
- the configurations the sweeps share (the same trial settings, seeds pooled), side by side with their mean scores.

Trials only: baselines (the teachers, literature and user reference points) are no sweep's result; they are on the
chart. Scores in percent, differences in points (pp).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.chart_frames import METRIC_NAMES, spec_budgets, task_metric
from analysis.charts import PNG_SCALE, save_static
from analysis.compare_charts import compare_chart
from analysis.report_blocks import Chart, Heading, Paragraph, Table, mb, missing, pct, sci, slug, times
from db.errors import StoreError

if TYPE_CHECKING:
    import pandas as pd

    from db.store import ExperimentStore

TOLERANCES = (1, 2, 5)  # points below the teacher
EPS = 1e-9  # scores are stored as floats: "within 2 points" must not miss 0.89 against 0.91 by rounding
# the trial settings two sweeps share (the seed is pooled, the teacher and data may differ by design)
SHARED_KEY = (
    "stage",
    "label",
    "arch",
    "embedding",
    "emb_dim",
    "vocab_size",
    "alpha",
    "temperature",
    "bootstrap",
    "pooling",
    "pruning",
    "quantization",
    "settings",
)


def _size(value: Any, size_measure: str) -> str:
    return mb(value) if size_measure.endswith("_bytes") else sci(value)


def _unit(size_measure: str) -> str:
    return "MB" if size_measure.endswith("_bytes") else "params"


def _diff(a: Any, b: Any) -> str:
    """b - a in points (scores are fractions)."""
    return "-" if missing(a) or missing(b) else f"{100 * (float(b) - float(a)):+.2f}"


def trial_skyline(points: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated rows of one sweep's trial points (``size_value``, ``score_value``), smallest first."""
    rows = points.sort_values(["size_value", "score_value"], ascending=[True, False])
    best, keep = None, []
    for i, r in rows.iterrows():
        if best is None or r["score_value"] > best:
            keep.append(i)
            best = r["score_value"]
    return rows.loc[keep]


def best_at_or_below(points: pd.DataFrame, budget: float) -> pd.Series | None:
    """The best-scoring row of size <= ``budget`` (the smaller on a tie), None when none is that small."""
    fit = points[points["size_value"] <= budget]
    if fit.empty:
        return None
    return fit.sort_values(["score_value", "size_value"], ascending=[False, True]).iloc[0]


def budget_table(points: pd.DataFrame, sweeps: list[str], size_measure: str, budgets: list[int] = ()) -> Table:
    """Every sweep's best dev score at or below each size where some sweep's skyline steps (and each of
    ``budgets``), with each later sweep's difference from the first. ``points``: trial rows of ``pareto_points``
    (``sweep``, ``size_value``, ``score_value``, ``name``)."""
    by_sweep = {s: points[points["sweep"] == s] for s in sweeps}
    sizes = {float(v) for s in sweeps for v in trial_skyline(by_sweep[s])["size_value"]} if not points.empty else set()
    sizes |= {float(b) for b in budgets} if size_measure.endswith("_bytes") else set()
    rows = []
    for size in sorted(sizes):
        best = {s: best_at_or_below(by_sweep[s], size) for s in sweeps}
        score = {s: None if best[s] is None else best[s]["score_value"] for s in sweeps}
        cells: list[Any] = [_size(size, size_measure)]
        for s in sweeps:
            cells.append("-" if best[s] is None else f"{pct(score[s], 2)} ({best[s]['name']})")
        cells += [_diff(score[sweeps[0]], score[s]) for s in sweeps[1:]]
        rows.append(cells)
    columns = [f"size <= ({_unit(size_measure)})", *[f"{s} %" for s in sweeps]]
    columns += [f"{s} - {sweeps[0]} (pp)" for s in sweeps[1:]]
    caption = (
        f"Best dev score among each sweep's trials at or below each size ({size_measure}): the sizes are where some "
        "sweep's skyline steps, plus the hardware budgets; the model reaching it in brackets. pp: percentage points "
        f"against {sweeps[0]}; -: the sweep has no trial that small."
    )
    return Table(columns, rows, caption)


def smallest_within(points: pd.DataFrame, teacher_score: float, points_below: float) -> pd.Series | None:
    """The smallest trial scoring at least ``teacher_score`` less ``points_below`` percentage points (the better
    on a tie); None when none does."""
    fit = points[points["score_value"] >= teacher_score - points_below / 100 - EPS]
    if fit.empty:
        return None
    return fit.sort_values(["size_value", "score_value"], ascending=[True, False]).iloc[0]


def teacher_table(points: pd.DataFrame, teachers: pd.DataFrame, sweeps: list[str], size_measure: str) -> Table:
    """Per sweep the smallest trial within 1, 2 and 5 points of the sweep's measured teacher (the best of them when
    it measured several): name, size, score and how many times smaller than the teacher. ``teachers``: baseline
    rows of ``pareto_points`` with source 'measured'."""
    rows = []
    for s in sweeps:
        mine = teachers[teachers["sweep"] == s].sort_values("score_value", ascending=False)
        if mine.empty:
            rows.append([s, "-", "-", "-"] + ["no teacher measured"] * len(TOLERANCES))
            continue
        t = mine.iloc[0]
        cells: list[Any] = [s, str(t["name"]), pct(t["score_value"], 2), _size(t["size_value"], size_measure)]
        for tol in TOLERANCES:
            m = smallest_within(points[points["sweep"] == s], float(t["score_value"]), tol)
            if m is None:
                cells.append("none")
                continue
            ratio = float(t["size_value"]) / float(m["size_value"]) if m["size_value"] else None
            cells.append(
                f"{m['name']}: {_size(m['size_value'], size_measure)} {_unit(size_measure)}, "
                f"{pct(m['score_value'], 2)}, {times(ratio)} smaller"
            )
        rows.append(cells)
    columns = ["sweep", "teacher", "teacher %", f"teacher ({_unit(size_measure)})"]
    columns += [f"within {t} pt{'s' if t > 1 else ''}" for t in TOLERANCES]
    caption = (
        "The smallest trial (by "
        + size_measure
        + ") whose dev score is at most 1, 2 or 5 points below the teacher its own sweep measured, with its size, "
        "score (%) and how many times smaller than that teacher it is."
    )
    return Table(columns, rows, caption)


def _key_text(value: Any) -> str:
    if missing(value):
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def shared_configurations(trials: pd.DataFrame, sweeps: list[str]) -> pd.DataFrame:
    """One row per configuration (``SHARED_KEY``, seeds pooled) and sweep that at least two of ``sweeps`` ran:
    ``key``, ``sweep``, ``score`` (mean over seeds), ``n_seeds``, ``size`` (mean) and the first row's settings."""
    import pandas as pd

    if trials.empty:
        return pd.DataFrame(columns=["key", "sweep", "score", "n_seeds"])
    df = trials.copy()
    df["key"] = ["\x1f".join(_key_text(r[c]) for c in SHARED_KEY) for _, r in df.iterrows()]
    sweeps_per_key = df.groupby("key")["sweep"].nunique()
    df = df[df["key"].isin(sweeps_per_key[sweeps_per_key > 1].index)]
    if df.empty:
        return pd.DataFrame(columns=["key", "sweep", "score", "n_seeds"])
    agg = df.groupby(["key", "sweep"], sort=False).agg(
        score=("score", "mean"), n_seeds=("score", "count"), size=("size", "mean")
    )
    first = df.drop_duplicates("key").set_index("key")
    return agg.reset_index().join(first.drop(columns=["sweep", "score", "size"]), on="key")


def shared_table(trials: pd.DataFrame, sweeps: list[str], size_measure: str, describe) -> Table | None:
    """The configurations at least two sweeps ran, side by side: mean dev score (seeds in brackets when more than
    one) per sweep and each later sweep's difference from the first. ``trials``: ``trial_results`` rows with a
    ``size`` column (the size measure); ``describe(row)`` writes a configuration. None when they share none."""
    shared = shared_configurations(trials, sweeps)
    if shared.empty:
        return None
    rows = []
    for _, group in shared.groupby("key", sort=False):
        by = {r["sweep"]: r for _, r in group.iterrows()}
        first = group.iloc[0]
        cells: list[Any] = [str(first["label"]), describe(first), _size(group["size"].mean(), size_measure)]
        for s in sweeps:
            r = by.get(s)
            cells.append(
                "-" if r is None else pct(r["score"], 2) + (f" ({r['n_seeds']} seeds)" if r["n_seeds"] > 1 else "")
            )
        score = {s: by[s]["score"] if s in by else None for s in sweeps}
        cells += [_diff(score[sweeps[0]], score[s]) for s in sweeps[1:]]
        rows.append(cells)
    columns = ["model", "configuration", f"size ({_unit(size_measure)})", *[f"{s} %" for s in sweeps]]
    columns += [f"{s} - {sweeps[0]} (pp)" for s in sweeps[1:]]
    caption = (
        "Configurations (the same trial settings; seeds pooled: mean dev score over them, their number in brackets) "
        f"that more than one sweep ran. Size: mean {size_measure}. pp: percentage points against {sweeps[0]}."
    )
    return Table(columns, rows, caption)


def describe(row) -> str:
    """A configuration without its seed: ``bilstm bpe d25, vocab 1000, alpha 0.5, +b`` (the method's settings for
    a teacher-compressed model)."""
    if row.get("stage") == "teacher_compression":
        settings = row.get("settings")
        return _key_text(json.loads(settings) if isinstance(settings, str) else settings) or str(row["arch"])
    parts = [f"{row['arch']} {row['embedding']} d{row['emb_dim']}"]
    for col, name in (("vocab_size", "vocab"), ("alpha", "alpha"), ("temperature", "T"), ("pooling", "pooling")):
        if not missing(row.get(col)):
            v = row[col]
            parts.append(f"{name} {v:g}" if isinstance(v, float) else f"{name} {v}")
    if not missing(row.get("bootstrap")) and bool(row["bootstrap"]):
        parts.append("+b")
    parts += [str(row[c]) for c in ("pruning", "quantization") if not missing(row.get(c))]
    return ", ".join(parts)


def compare_blocks(
    store: ExperimentStore,
    sweeps: list[str],
    out_dir,
    size_measure: str = "gzip_bytes",
    by: str | None = None,
    budgets: list[int] | None = None,
    png_scale: float = PNG_SCALE,
) -> tuple[list, dict]:
    """The blocks of the report over ``sweeps`` (two or more, one database); writes each task's chart as
    ``compare_<task>.png/.svg`` into ``out_dir``. ``by``: the chart's panels under the overview (``arch``, the
    default, or ``embedding``; ``task``: the overview alone); ``budgets`` (bytes): rules on the charts and rows of the
    budget table (default: the first sweep's spec's); ``png_scale`` as in the sweep report."""
    if len(set(sweeps)) != len(sweeps):
        raise ValueError(f"sweeps named twice: {sweeps}")
    statuses = [store.sweep_status(s) for s in sweeps]  # StoreError naming an unknown sweep
    specs = [_spec(store, s) for s in sweeps]
    if budgets is None:
        budgets = spec_budgets(specs[0])
    blocks: list = [Heading(f"Featherweight comparison report: {' vs '.join(sweeps)}", 1)]
    blocks.append(
        Paragraph(
            "One database, "
            + str(len(sweeps))
            + " sweeps. Scores are in percent, differences in percentage points (pp) against the first sweep named."
        )
    )
    blocks.append(
        Table(
            ["sweep", "status", "trials", "finished", "failed", "started (UTC)", "code version"],
            [
                [
                    s,
                    st["status"],
                    st["trials"],
                    st["by_status"].get("finished", 0),
                    st["by_status"].get("error", 0),
                    str(st["started_at"]),
                    str(st["code_version"]),
                ]
                for s, st in zip(sweeps, statuses, strict=True)
            ],
        )
    )
    tasks = store.query(
        "SELECT task FROM trial_results WHERE list_contains(?, sweep) GROUP BY task ORDER BY task", [sweeps]
    )["task"].tolist()
    if not tasks:
        blocks.append(Paragraph("No finished trials yet."))
    charts: dict[str, dict[str, str]] = {}
    for task in tasks:
        ran = [
            s
            for s in sweeps
            if not store.query("SELECT 1 FROM trial_results WHERE sweep = ? AND task = ? LIMIT 1", [s, task]).empty
        ]
        metrics = {s: task_metric(spec, task) for s, spec in zip(sweeps, specs, strict=True) if s in ran}
        blocks += _task_blocks(
            store, task, ran, metrics, Path(out_dir), size_measure, by, budgets, charts, png_scale=png_scale
        )
    return blocks, charts


def _task_blocks(
    store, task, ran, metrics, out_dir, size_measure, by, budgets, charts, png_scale: float = PNG_SCALE
) -> list:
    """One task's heading, chart and comparison tables over the sweeps that ``ran`` it; the chart's files are
    added to ``charts``."""
    metric = metrics[ran[0]]
    name = METRIC_NAMES.get(metric, metric)
    note = f"Score: dev {name}. Sweeps with trials on it: {', '.join(ran)}."
    if len(set(metrics.values())) > 1:
        listed = ", ".join(f"{s}: {METRIC_NAMES.get(m, m)}" for s, m in metrics.items())
        note += f" The sweeps score it with different metrics ({listed}): compare with care."
    blocks: list = [Heading(f"Task {task}", 2), Paragraph(note)]
    chart = compare_chart(store, ran, task, size_measure, name, by=by or "arch", budgets=budgets)
    if chart is not None:
        stem = f"compare_{slug(task)}"
        charts[task] = save_static(chart, out_dir / stem, png_scale)
        blocks.append(Heading(f"Pareto chart: {name} vs {size_measure}, every sweep", 3))
        blocks.append(Chart(stem, chart.to_dict(), f"Pareto chart for {task} over {len(ran)} sweeps"))
        blocks.append(Paragraph(COMPARE_LEGEND))
    if len(ran) == 1:
        blocks.append(Paragraph(f"Only {ran[0]} ran this task: nothing to compare (its own report has its tables)."))
        return blocks
    points = store.query(
        "SELECT sweep, kind, source, name, size_value, score_value FROM pareto_points WHERE list_contains(?, sweep) "
        "AND task = ? AND score_measure = 'score' AND size_measure = ? AND size_value > 0",
        [ran, task, size_measure],
    )
    trial_points = points[points["kind"] == "trial"]
    teachers = points[(points["kind"] == "baseline") & (points["source"] == "measured")]
    blocks.append(Heading(f"Skylines at the same sizes: {name} vs {size_measure}", 3))
    blocks.append(budget_table(trial_points, ran, size_measure, budgets))
    blocks.append(Heading("Smallest model near the teacher", 3))
    blocks.append(teacher_table(trial_points, teachers, ran, size_measure))
    size_col = "nonzero_params" if size_measure == "params" else size_measure
    trials = store.query(
        f"SELECT *, {size_col} AS size FROM trial_results WHERE list_contains(?, sweep) AND task = ? "
        "AND score IS NOT NULL",
        [ran, task],
    )
    table = shared_table(trials, ran, size_measure, describe)
    blocks.append(Heading("Configurations the sweeps share", 3))
    blocks.append(table if table is not None else Paragraph("The sweeps share no configuration on this task."))
    return blocks


COMPARE_LEGEND = (
    "Colour: sweep (reference baselines every sweep has in black); each sweep's skyline is a step line in its colour "
    "and dash pattern. Shape: stage (distilled, pruned, quantized, ..., teacher baseline, literature/user baseline). "
    "Opaque points are on their own sweep's skyline, lighter ones dominated within it. The panels under the first "
    "show one architecture (or embedding) each, with every sweep's whole skyline for reference. In the HTML report: "
    "hover for the configuration, scroll to zoom, drag to pan, click a sweep in the legend to show it alone."
)


def _spec(store: ExperimentStore, sweep: str) -> dict | None:
    try:
        return store.sweep_spec(sweep)
    except StoreError:
        return None
