"""The sweep report: Markdown and a self-contained HTML page (charts with their JavaScript inlined, offline-viewable),
plus per task a Pareto chart as PNG and SVG.

Contents per task: seed summaries in the shape of thesis tables 7.1-7.3 (mean and sd over seeds per configuration,
one column pair per training method), the compression table (shape of table 7.5: baselines, compressed students and
their parents, sizes and "times smaller" ratios), the teacher-compression table (Theseus and BERT-Vision models made
from the teacher: settings, layers, score retained, total and trainable parameters, gzip size, CPU latency), the
skyline tables and the chart. Scores are shown in percent.
The report is built as a list of blocks rendered twice (Markdown, HTML) so both always say the same thing.

The blocks and cell formats are in ``analysis.report_blocks``, the tables in ``analysis.report_tables``, the
Markdown and HTML writers in ``analysis.report_render``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.chart_frames import METRIC_NAMES, size_label, spec_budgets, task_metric
from analysis.charts import PNG_SCALE, save_static, task_chart
from analysis.report_blocks import Chart, Heading, Paragraph, Table, slug, trials_task_kind
from analysis.report_compare import compare_blocks
from analysis.report_render import render_html, render_markdown
from analysis.report_tables import (
    class_table,
    compression_table,
    deploy_table,
    seed_table,
    skyline_table,
    teacher_compression_table,
)
from db.errors import StoreError
from featherweight_core.atomic import write_text_atomic

if TYPE_CHECKING:
    import pandas as pd

    from db.store import ExperimentStore


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    charts: dict[str, dict[str, str]] = field(default_factory=dict)  # task -> {"png": path, "svg": path}


def build_blocks(
    store: ExperimentStore,
    sweep: str,
    out_dir: Path,
    size_measure: str = "gzip_bytes",
    by: str | None = None,
    budgets: list[int] | None = None,
    png_scale: float = PNG_SCALE,
) -> tuple[list, dict]:
    """Query the views and assemble the report blocks; writes chart PNG/SVG files into ``out_dir``. ``by``
    (``task`` | ``embedding`` | ``arch``) splits each task's chart into panels; ``budgets`` (bytes) are drawn as
    vertical rules (default: the stored spec's ``report.budgets``); ``png_scale`` sizes the PNG charts (pixels per
    SVG pixel)."""
    status = store.sweep_status(sweep)  # StoreError on an unknown sweep
    blocks: list = [Heading(f"Featherweight sweep report: {sweep}", 1)]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status["by_status"].items())) or "no trials"
    stages = "; ".join(
        f"{stage}: " + ", ".join(f"{n} {s}" for s, n in sorted(c.items()))
        for stage, c in sorted(status["by_stage"].items())
    )
    blocks.append(
        Paragraph(
            f"Status **{status['status']}**{' (' + status['message'] + ')' if status.get('message') else ''}, started {status['started_at']} UTC, finished {status['finished_at'] or '-'} UTC; "
            f"code version `{status['code_version']}`; storage `{status['storage_path']}`. "
            f"Trials: {status['trials']} ({counts}){'; ' + stages if stages else ''}. Scores are in percent."
        )
    )
    tasks = store.query("SELECT DISTINCT task FROM trial_results WHERE sweep = ? ORDER BY task", [sweep])[
        "task"
    ].tolist()
    if not tasks:
        blocks.append(Paragraph("No finished trials yet."))
    charts: dict[str, dict[str, str]] = {}
    try:
        spec = store.sweep_spec(sweep)
    except StoreError:
        spec = None
    if budgets is None:
        budgets = spec_budgets(spec)
    for task in tasks:
        trials = store.query("SELECT * FROM trial_results WHERE sweep = ? AND task = ?", [sweep, task])
        kind = trials_task_kind(trials)
        metric = task_metric(spec, task)
        name = METRIC_NAMES.get(metric, metric)
        has_test = bool(trials["test_score"].notna().any())
        blocks.append(Heading(f"Task {task}", 2))
        blocks.append(
            Paragraph(
                f"Score: dev {name}"
                + (f"; test {name} beside it (test split, best epoch's weights)." if has_test else ".")
            )
        )
        summary = store.query(
            "SELECT * FROM seed_summary WHERE sweep = ? AND task = ? AND stage = 'distill'", [sweep, task]
        )
        stopped = store.query(
            "SELECT * FROM stopped_summary WHERE sweep = ? AND task = ? AND stage = 'distill'", [sweep, task]
        )
        if not summary.empty:
            blocks.append(Heading("Distillation (mean and sd over seeds)", 3))
            blocks.append(seed_table(summary, kind, name, has_test, stopped))
        comp = store.query("SELECT * FROM compression WHERE sweep = ? AND task = ?", [sweep, task])
        table = compression_table(comp, kind, name, has_test)
        blocks.append(Heading("Compression", 3))
        if table is None:
            blocks.append(Paragraph("No pruned or quantized trials in this sweep for this task."))
        else:
            blocks.append(table)
        tc = store.query(
            "SELECT c.*, t.settings FROM compression c JOIN trial_results t USING (sweep, trial_id) "
            "WHERE c.sweep = ? AND c.task = ? AND c.stage = 'teacher_compression'",
            [sweep, task],
        )
        if not tc.empty:
            bases = store.query(
                "SELECT * FROM compression WHERE sweep = ? AND task = ? AND kind = 'baseline'", [sweep, task]
            )
            blocks.append(Heading("Teacher compression (Theseus, BERT-Vision)", 3))
            blocks.append(teacher_compression_table(_concat(tc, bases), kind, name))
        lat = store.query("SELECT * FROM trial_latency WHERE sweep = ?", [sweep])
        deploy = deploy_table(comp, lat, kind, name) if not lat.empty else None
        if deploy is not None:
            blocks.append(Heading("Deployment: fastest and smallest near the teacher", 3))
            blocks.append(deploy)
        for measure in ("score", "f1") if kind == "pair_f1" else ("score",):
            sky = store.query(
                "SELECT * FROM skyline WHERE sweep = ? AND task = ? AND score_measure = ? AND size_measure = ? "
                "ORDER BY skyline_rank",
                [sweep, task, measure, size_measure],
            )
            shown = name if measure == "score" else measure
            blocks.append(Heading(f"Skyline: {shown} vs {size_measure}", 3))
            blocks.append(skyline_table(sky, measure, size_measure, name, has_test))
        classes = class_block(store, sweep, task, name)
        if classes is not None:
            blocks += [Heading("Per class (best trial)", 3), classes]
        chart = task_chart(store, sweep, task, size_measure, metric, by=by, budgets=budgets)
        if chart is not None:
            stem = f"pareto_{slug(task)}"
            charts[task] = save_static(chart, out_dir / stem, png_scale)
            blocks.append(Heading(f"Pareto chart: {name} vs {size_measure}", 3))
            blocks.append(Chart(stem, chart.to_dict(), f"Pareto chart for {task}: dev {name} (%) vs {size_measure}"))
            tc_shown = bool((trials["stage"] == "teacher_compression").any())
            blocks.append(Paragraph(chart_legend_text(size_measure, budgets, tc_shown)))
    errors = store.query(
        "SELECT trial_id, stage, task, error FROM trials WHERE sweep = ? AND status = 'error' ORDER BY trial_id",
        [sweep],
    )
    if not errors.empty:
        blocks.append(Heading("Failed trials", 2))
        rows = [
            [r.trial_id, r.stage, r.task, (str(r.error or "").strip().splitlines() or [""])[0][:200]]
            for r in errors.itertuples()
        ]
        blocks.append(Table(["trial", "stage", "task", "error"], rows))
    stopped = store.query(
        """
        SELECT t.task, t.stopped_at_rung AS rung, count(*) AS trials, sum(r.epochs) AS epochs, max(r.score) AS best
        FROM trials t LEFT JOIN results r USING (sweep, trial_id)
        WHERE t.sweep = ? AND t.status = 'stopped' GROUP BY ALL ORDER BY ALL
        """,
        [sweep],
    )
    if not stopped.empty:  # the scheduler's: not on the skyline or the charts, which show finished trials
        blocks.append(Heading("Stopped by the scheduler", 2))
        blocks.append(
            Paragraph(
                "Trials the `pareto_halving` scheduler stopped at a rung: another trial was as small or smaller and"
                " scored better there, and they ranked outside the top 1/eta. They are not on the skylines or charts"
                " above, and the distillation table shows their scores only in brackets, as early scores (the"
                " `rung_results` view has every decision, the `trials` table each reason)."
            )
        )
        rows = [
            [r.task, str(r.rung), str(r.trials), str(int(r.epochs or 0)), f"{100 * r.best:.2f}"]
            for r in stopped.itertuples()
        ]
        blocks.append(Table(["task", "stopped at epoch", "trials", "trial-epochs", "best dev score there (%)"], rows))
    return blocks, charts


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    return pd.concat([x for x in (a, b) if not x.empty], ignore_index=True) if not b.empty else a


def chart_legend_text(size_measure: str, budgets: list[int] | None = None, teacher_compressed: bool = False) -> str:
    """What the chart shows, under it (the figure caption a paper would print); ``teacher_compressed``: the chart has
    transformers made from the teacher (Theseus, BERT-Vision)."""
    text = (
        "Colour: architecture (baselines black); shape: stage (distilled, pruned, quantized, pruned + quantized, "
        + (
            "teacher compressed (star: a Theseus or BERT-Vision model made from the teacher), teacher compressed + "
            "quantized, "
            if teacher_compressed
            else ""
        )
        + "teacher baseline, literature/user baseline). Opaque points are on the skyline (black dashed step "
        "line: no other point is both smaller and better) and named where space allows; lighter ones are dominated. "
        "Thin lines join each "
        "compressed student to its distilled parent; hollow circles with bars: mean and +-1 sd over seeds of a "
        "configuration with several seeds. "
        + (
            (
                "Size: number of non-zero parameters"
                + (" (teacher-compressed models: every parameter inference needs)" if teacher_compressed else "")
                + ". "
            )
            if size_measure == "params"
            else (
                "x: batch-1 CPU latency, median of the trial's dev examples, with the trial's threads (only trials"
                " of sweeps that measure latency). "
            )
            if size_measure.startswith("latency_ms")
            else "Size: MB = 10^6 bytes. "
        )
    )
    if budgets and size_measure.endswith("_bytes"):
        text += "Dotted vertical rules: the hardware budgets " + ", ".join(size_label(b) for b in budgets) + ". "
    return text + "In the HTML report: hover for the configuration, scroll to zoom, drag to pan, click a legend entry."


def class_block(store: ExperimentStore, sweep: str, task: str, score_name: str = "score") -> Table | None:
    """``class_table`` of the task's best trial by dev score among those with per-class rows; None when none has."""
    best = store.query(
        "SELECT trial_id, label, score FROM trial_results t WHERE sweep = ? AND task = ? AND score IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM class_results c WHERE c.sweep = t.sweep AND c.trial_id = t.trial_id "
        "AND c.split <> 'test') ORDER BY score DESC, trial_id LIMIT 1",
        [sweep, task],
    )
    if best.empty:
        return None
    trial = best.iloc[0]
    classes = store.query(
        "SELECT * FROM class_results WHERE sweep = ? AND trial_id = ? AND split <> 'test'", [sweep, trial["trial_id"]]
    )
    return class_table(classes, trial, score_name)


def build_report(
    store: ExperimentStore,
    sweep: str | list[str],
    out_dir: str | Path,
    size_measure: str = "gzip_bytes",
    by: str | None = None,
    budgets: list[int] | None = None,
    png_scale: float = PNG_SCALE,
) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and ``pareto_<task>.png/.svg`` for ``sweep`` into ``out_dir``; given
    several sweeps (a list of two or more), the report comparing them (``analysis.report_compare``) with
    ``compare_<task>.png/.svg``. A list of one is that sweep's report.

    ``store`` needs the analysis views: open it with ``analysis.views.open_store``; ``by``, ``budgets`` and
    ``png_scale`` as in :func:`build_blocks`."""
    sweeps = [sweep] if isinstance(sweep, str) else list(sweep)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(sweeps) == 1:
        blocks, charts = build_blocks(
            store, sweeps[0], out_dir, size_measure, by=by, budgets=budgets, png_scale=png_scale
        )
        title = f"Featherweight sweep report: {sweeps[0]}"
    else:
        blocks, charts = compare_blocks(
            store, sweeps, out_dir, size_measure, by=by, budgets=budgets, png_scale=png_scale
        )
        title = f"Featherweight comparison report: {' vs '.join(sweeps)}"
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md_path, render_markdown(blocks))
    write_text_atomic(html_path, render_html(blocks, title))
    return ReportFiles(md_path, html_path, charts)


__all__ = ["ReportFiles", "build_blocks", "build_report", "chart_legend_text", "class_block"]
