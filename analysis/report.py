"""The sweep report: Markdown and a self-contained HTML page (charts with their JavaScript inlined, offline-viewable),
plus per task a Pareto chart as PNG and SVG.

Contents per task: seed summaries in the shape of thesis tables 7.1-7.3 (mean and sd over seeds per configuration,
one column pair per training method), the compression table (shape of table 7.5: baselines, compressed students and
their parents, sizes and "times smaller" ratios), the teacher-compression table (Theseus and BERT-Vision models made
from the teacher: settings, layers, score retained, total and trainable parameters, gzip size, CPU latency), the
skyline tables and the chart. Scores are shown in percent.
The report is built as a list of blocks rendered twice (Markdown, HTML) so both always say the same thing.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.charts import METHOD_NAMES, layers_text, method_settings, task_chart
from featherweight_core.atomic import write_text_atomic

if TYPE_CHECKING:
    import pandas as pd

    from db.store import ExperimentStore

ARCH_ORDER = {"bilstm": 0, "rnn": 1, "ffn": 2}
EMB_ORDER = {"hash": 0, "bpe": 1, "char": 2}


class Bold(str):
    """A table cell to be shown in bold (the best mean of a row, as in the thesis tables)."""


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str | None = None


@dataclass
class Chart:
    name: str  # file stem, e.g. pareto_sst2
    spec: dict
    alt_text: str


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    charts: dict[str, dict[str, str]] = field(default_factory=dict)  # task -> {"png": path, "svg": path}


# ------------------------------------------------------------------------------------------------------- formatting


def _missing(x: Any) -> bool:
    """None, NaN, NaT or pandas.NA."""
    if x is None:
        return True
    import pandas as pd

    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):  # list-like values are not "missing"
        return False


def pct(x: Any, digits: int = 1) -> str:
    """0.8766 -> '87.7' (percent); missing -> '-'.

    >>> pct(0.8766), pct(None)
    ('87.7', '-')
    """
    return "-" if _missing(x) else f"{100 * float(x):.{digits}f}"


def mb(x: Any) -> str:
    """Bytes -> megabytes with 3 significant decimals, like table 7.5 ('1.587')."""
    if _missing(x):
        return "-"
    v = float(x) / 1e6
    return f"{v:,.0f}" if v >= 100 else f"{v:.3f}"


def sci(x: Any) -> str:
    """Parameter count in the thesis' style: 860000 -> '8.6e+5'."""
    if _missing(x):
        return "-"
    return f"{float(x):.1e}".replace("e+0", "e+").replace("e-0", "e-")


def times(x: Any) -> str:
    """A 'times smaller' ratio: 1965.2 -> '1,965x'."""
    if _missing(x):
        return "-"
    v = float(x)
    return f"{v:,.0f}x" if v >= 10 else f"{v:.1f}x"


def _plain_value(x: Any) -> str:
    if _missing(x):
        return "-"
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def _score_cell(row: pd.Series | dict, task_kind: str, suffix: str = "", digits: int = 1) -> str:
    """The thesis' score display: accuracy, accuracy/F1 (QQP-like), matched/mismatched (MNLI-like)."""
    if task_kind == "pair_f1":
        return f"{pct(row.get('accuracy' + suffix), digits)}/{pct(row.get('f1' + suffix), digits)}"
    if task_kind == "matched":
        return f"{pct(row.get('accuracy_matched' + suffix), digits)}/{pct(row.get('accuracy_mismatched' + suffix), digits)}"
    return pct(row.get("score" + suffix), digits)


def _task_kind(trials: pd.DataFrame) -> str:
    if trials["accuracy_matched"].notna().any():
        return "matched"
    if trials["f1"].notna().any():
        return "pair_f1"
    return "score"


SCORE_HEADERS = {"score": "score", "pair_f1": "acc/F1", "matched": "m/mm acc"}


def score_header(task_kind: str, score_name: str = "score") -> str:
    """The score column's name: the task's metric (``macro-F1``) for a single-figure score, else the thesis' pair.

    >>> score_header("score", "macro-F1"), score_header("pair_f1", "accuracy")
    ('macro-F1', 'acc/F1')
    """
    return score_name if task_kind == "score" else SCORE_HEADERS[task_kind]


def _config_summary(row) -> str:
    if row.get("stage") == "teacher_compression":
        head = METHOD_NAMES.get(row["arch"], str(row["arch"]))
        if not _missing(row.get("layers")):
            head += f" {layers_text(row['layers'])}"
        parts = [head, method_settings(row.get("settings"))]
        if not _missing(row.get("seed")):
            parts.append(f"seed {row['seed']}")
        return ", ".join(p for p in parts if p)
    parts = [f"{row['arch']} {row['embedding']} d{row['emb_dim']}"]
    if not _missing(row.get("vocab_size")):
        parts.append(f"vocab {row['vocab_size']}")
    if not _missing(row.get("alpha")):
        parts.append(f"alpha {row['alpha']:g}")
    if row.get("bootstrap") is True:
        parts.append("+b")
    if not _missing(row.get("seed")):
        parts.append(f"seed {row['seed']}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------------------- sections


def _sort_configs(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    key = df.assign(_a=df["arch"].map(ARCH_ORDER).fillna(9), _e=df["embedding"].map(EMB_ORDER).fillna(9)).sort_values(
        ["_a", "_e", "emb_dim", "vocab_size"], na_position="last"
    )
    return key.drop(columns=["_a", "_e"])


def seed_table(summary: pd.DataFrame, task_kind: str, score_name: str = "score", show_test: bool = False) -> Table:
    """Thesis tables 7.1-7.3: one row per student configuration, one mean/sd column pair per training method (plus
    the mean test score when ``show_test``)."""
    config_cols = ["arch", "embedding", "emb_dim", "vocab_size", "pooling", "temperature"]
    methods = list(dict.fromkeys(_method_order(summary)))
    spread = bool((summary["n_seeds"] > 1).any())  # one seed everywhere: no sd columns at all
    rows = []
    for _, group in _sort_configs(summary).groupby(config_cols, dropna=False, sort=False):
        first = group.iloc[0]
        cells: list[Any] = [
            first["arch"],
            first["embedding"],
            first["emb_dim"],
            _plain_value(first["vocab_size"]),
            sci(group["params"].mean()),
            mb(group["disk_bytes"].mean()),
        ]
        by_method = {m: g.iloc[0] for m, g in group.groupby("method")}
        means = {m: by_method[m]["score_mean"] for m in methods if m in by_method}
        finite = [v for v in means.values() if not _missing(v)]
        best = max(finite) if finite else None
        for m in methods:
            if m not in by_method:
                cells += [""] * (1 + spread + show_test)
                continue
            r = by_method[m]
            mean = _score_cell(r, task_kind, "_mean")
            sd = _score_cell(r, task_kind, "_sd")
            if len(methods) > 1 and best is not None and means[m] == best:
                mean = Bold(mean)
            cells += [mean] + ([sd if r["n_seeds"] > 1 else "1 seed"] if spread else [])
            if show_test:
                cells.append(pct(r.get("test_score_mean")))
        rows.append(cells)
    columns = ["model", "E", "D", "vocab", "P", "S (MB)"]
    for m in methods:
        columns += ([f"{m} mean", "sd"] if spread else [m]) + (["test"] if show_test else [])
    over = "mean and sample sd over seeds" if spread else "one seed per configuration, so no sd"
    caption = (
        f"Distilled students, dev {score_header(task_kind, score_name)} in % ({over}). "
        "P: parameters, S: size on disk in MB. b: bootstrapped (augmented) training data. Bold: best mean of the row."
        + (f" test: mean {score_name} on the test split (best epoch's weights)." if show_test else "")
    )
    return Table(columns, rows, caption)


def _method_order(summary: pd.DataFrame) -> list[str]:
    if summary.empty:
        return []
    s = summary[["method", "alpha", "bootstrap"]].drop_duplicates("method").copy()
    # thesis column order: no distill, no distill + b, alpha 0.5 + b, alpha 0 + b (more teacher to the right)
    s["_alpha"] = s["alpha"].fillna(1.0)
    s["_b"] = s["bootstrap"].astype(bool)
    return list(s.sort_values(["_b", "_alpha"], ascending=[True, False])["method"])


def compression_table(
    comp: pd.DataFrame, task_kind: str, score_name: str = "score", show_test: bool = False
) -> Table | None:
    """Thesis table 7.5: baselines, then each compressed parent followed by its pruned/quantized children."""
    trials = comp[comp["kind"] == "trial"]
    children = trials[trials["stage"] == "compress"]
    if children.empty:
        return None
    # RoBERTa-large is the thesis' reference on its own tasks only: no column where no row has a ratio against it
    show_ref = bool(comp["ratio_vs_roberta"].notna().any())
    rows = []

    def add(r, indent=""):
        rows.append(
            [
                indent + str(r["name"]),
                "-" if _missing(r.get("trial_id")) else str(r["trial_id"]),
                _score_cell(r, task_kind, digits=2),
                *([pct(r.get("test_score"), 2)] if show_test else []),
                mb(r["reported_bytes"]),
                times(r.get("ratio_vs_teacher")),
                *([times(r["ratio_vs_roberta"])] if show_ref else []),
                times(r.get("ratio_vs_parent")),
                "-" if _missing(r.get("score_change_vs_parent")) else f"{100 * r['score_change_vs_parent']:+.2f}",
            ]
        )

    for _, r in comp[comp["kind"] == "baseline"].sort_values("reported_bytes", ascending=False).iterrows():
        add(r)
    parents = trials.set_index("trial_id")
    for parent_id, group in children.groupby("parent_trial_id", dropna=False, sort=False):
        if not _missing(parent_id) and parent_id in parents.index:
            add(parents.loc[parent_id].to_dict() | {"trial_id": parent_id})
        for _, r in group.sort_values("reported_bytes", ascending=False).iterrows():
            add(r, indent="  ")
    columns = [
        "model",
        "trial",
        score_header(task_kind, score_name) + " %",
        *([f"test {score_name} %"] if show_test else []),
        "size (MB)",
        "vs teacher",
        *(["vs RoBERTa-large"] if show_ref else []),
        "vs parent",
        "score change vs parent (pp)",
    ]
    caption = (
        "Pruned (p) and quantized (q) students under their parents. Size: disk size in MB for plain models, gzip size "
        "for pruned/quantized ones (as table 7.5); 'vs X' is how many times smaller than X (teacher: the teacher this "
        "sweep measured" + ("; RoBERTa-large: thesis table 7.5)." if show_ref else ").")
    )
    return Table(columns, rows, caption)


def _ms(value) -> str:
    return "-" if _missing(value) else f"{float(value):.2f}"


def teacher_compression_table(comp: pd.DataFrame, task_kind: str, score_name: str = "score") -> Table | None:
    """The transformers made from the task's teacher (``compression`` rows of stage ``teacher_compression``, with
    ``settings`` from ``trial_results``), under the measured teacher(s) they came from: method, settings, layers,
    score, score retained, total and trainable parameters, gzip size, CPU latency. None when there are none."""
    trials = comp[(comp["kind"] == "trial") & (comp["stage"] == "teacher_compression")]
    if trials.empty:
        return None
    rows = []
    teachers = [t for t in trials["teacher"].dropna().unique()]
    base = comp[(comp["kind"] == "baseline") & comp["name"].isin(teachers)].drop_duplicates("name")
    for _, r in base.sort_values("name").iterrows():
        # the teacher's latency as its trials timed it (each beside its own model): their median
        timed = trials.loc[trials["teacher"] == r["name"], "teacher_latency_ms"].dropna()
        rows.append(
            [
                str(r["name"]),
                "-",
                "teacher",
                "-",
                "-",
                _score_cell(r, task_kind, digits=2),
                "100.0",
                sci(r["params"]),
                "-",
                mb(r["gzip_bytes"]),
                _ms(timed.median() if len(timed) else None),
                "1.00x" if len(timed) else "-",
            ]
        )
    order = trials.assign(_q=trials["quantization"].notna()).sort_values(
        ["arch", "layers", "_q", "trial_id"], na_position="last"
    )
    for _, r in order.iterrows():
        speedup = r.get("speedup_vs_teacher")
        rows.append(
            [
                "  " + str(r["name"]),
                str(r["trial_id"]),
                METHOD_NAMES.get(r["arch"], str(r["arch"])),
                method_settings(r.get("settings")) or "-",
                _plain_value(r.get("layers")),
                _score_cell(r, task_kind, digits=2),
                pct(r.get("score_retained_vs_teacher")),
                sci(r["params"]),
                sci(r.get("trainable_params")),
                mb(r["gzip_bytes"]),
                _ms(r.get("latency_ms")),
                "-" if _missing(speedup) else f"{float(speedup):.2f}x",
            ]
        )
    columns = [
        "model",
        "trial",
        "method",
        "settings",
        "layers",
        score_header(task_kind, score_name) + " %",
        "retained %",
        "params",
        "trainable",
        "gzip (MB)",
        "latency (ms)",
        "speed-up",
    ]
    caption = (
        "Transformers made from the task's fine-tuned teacher, under it: Theseus (successor layers replace the "
        "teacher's blocks), BERT-Vision (a small head over the frozen teacher's per-layer hidden states). retained: "
        "dev score as % of the teacher's; params: every parameter inference needs; trainable: those the method "
        "trained; gzip: gzip -9 of the saved weights; latency: CPU forward pass, batch size 1, median; speed-up: the "
        "teacher's latency over the model's, the two timed interleaved in the trial's process (the teacher row: the "
        "median of those teacher timings); q: int8 dynamic quantization of the Linear layers."
    )
    return Table(columns, rows, caption)


def skyline_table(
    sky: pd.DataFrame, score_measure: str, size_measure: str, score_name: str | None = None, show_test: bool = False
) -> Table:
    """The skyline's points (placed by dev figures); ``score_name`` names the ``score`` measure (the task's metric),
    ``show_test`` adds each trial's test score."""
    shown = score_name if score_measure == "score" and score_name else score_measure
    rows = []
    for _, r in sky.iterrows():
        size = mb(r["size_value"]) if size_measure.endswith("_bytes") else sci(r["size_value"])
        cfg = r["source"] if r["kind"] == "baseline" else _config_summary(r)
        extra = " ".join(x for x in (r.get("pruning"), r.get("quantization")) if not _missing(x))
        rows.append(
            [
                r["skyline_rank"],
                r["name"],
                "-" if _missing(r["trial_id"]) else r["trial_id"],
                cfg + (f"; {extra}" if extra else ""),
                pct(r["score_value"], 2),
                *([pct(r.get("test_score"), 2)] if show_test else []),
                size,
            ]
        )
    unit = "MB" if size_measure.endswith("_bytes") else "params"
    return Table(
        [
            "#",
            "model",
            "trial",
            "configuration",
            f"{shown} %",
            *([f"test {shown} %"] if show_test else []),
            f"{size_measure} ({unit})",
        ],
        rows,
        f"Skyline ({shown} vs {size_measure}, on dev figures): no other trial or baseline is both smaller and better.",
    )


def class_table(classes: pd.DataFrame, trial: pd.Series | dict, score_name: str = "score") -> Table:
    """Per-class precision, recall and F1 (in %) and support of one trial on its dev split(s)."""
    splits = classes["split"].drop_duplicates().tolist()
    rows = [
        ([r["split"]] if len(splits) > 1 else [])
        + [r["class"], pct(r["precision"]), pct(r["recall"]), pct(r["f1"]), _plain_value(r["support"])]
        for _, r in classes.sort_values(["split", "label_id"]).iterrows()
    ]
    columns = (["split"] if len(splits) > 1 else []) + ["class", "precision %", "recall %", "F1 %", "support"]
    caption = (
        f"Per class on {', '.join(splits)} for the best trial by dev {score_name}: {trial['trial_id']} "
        f"({trial['label']}, {pct(trial['score'], 2)}%). Support: examples of the class in the split."
    )
    return Table(columns, rows, caption)


# ------------------------------------------------------------------------------------------------------------ build


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "task"


def build_blocks(
    store: ExperimentStore,
    sweep: str,
    out_dir: Path,
    size_measure: str = "gzip_bytes",
    by: str | None = None,
    budgets: list[int] | None = None,
) -> tuple[list, dict]:
    """Query the views and assemble the report blocks; writes chart PNG/SVG files into ``out_dir``. ``by``
    (``task`` | ``embedding`` | ``arch``) splits each task's chart into panels; ``budgets`` (bytes) are drawn as
    vertical rules (default: the stored spec's ``report.budgets``)."""
    from analysis.charts import METRIC_NAMES, save_static, spec_budgets, task_metric
    from db.errors import StoreError

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
        kind = _task_kind(trials)
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
        if not summary.empty:
            blocks.append(Heading("Distillation (mean and sd over seeds)", 3))
            blocks.append(seed_table(summary, kind, name, has_test))
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
            stem = f"pareto_{_slug(task)}"
            charts[task] = save_static(chart, out_dir / stem)
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
    return blocks, charts


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    return pd.concat([x for x in (a, b) if not x.empty], ignore_index=True) if not b.empty else a


def chart_legend_text(size_measure: str, budgets: list[int] | None = None, teacher_compressed: bool = False) -> str:
    """What the chart shows, under it (the figure caption a paper would print); ``teacher_compressed``: the chart has
    transformers made from the teacher (Theseus, BERT-Vision)."""
    from analysis.charts import size_label

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


def _md_cell(x: Any) -> str:
    text = str(x).replace("|", "\\|").replace("\n", " ")
    return f"**{text}**" if isinstance(x, Bold) and text else text


def render_markdown(blocks: list) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Paragraph):
            out.append(b.text)
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(c) for c in b.columns) + " |", "|" + "---|" * len(b.columns)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            if not b.rows:
                lines.append("| " + " | ".join("" for _ in b.columns) + " |")
            out.append("\n".join(lines))
            if b.caption:
                out.append(f"*{b.caption}*")
        elif isinstance(b, Chart):
            out.append(f"![{b.alt_text}]({b.name}.png)\n\n[SVG]({b.name}.svg)")
    return "\n\n".join(out) + "\n"


_INLINE_MD = [(re.compile(r"\*\*(.+?)\*\*"), r"<b>\1</b>"), (re.compile(r"`(.+?)`"), r"<code>\1</code>")]

HTML_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; white-space: nowrap; }
td.text { text-align: left; }
td.long { white-space: normal; text-align: left; min-width: 14em; max-width: 30em; overflow-wrap: anywhere; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
caption { caption-side: bottom; text-align: left; font-size: 12px; color: #555; padding-top: 4px; white-space: normal; }
.chart { margin: 1em 0; width: 100%; overflow-x: auto; } code { background: #f3f3f3; padding: 0 3px; }
.vega-embed summary { display: none; }
"""


def _inline(text: str) -> str:
    text = html.escape(text)
    for pattern, repl in _INLINE_MD:
        text = pattern.sub(repl, text)
    return text


LONG_CELL = 40  # characters: a longer cell (a skyline configuration) wraps instead of widening its table


_NUMBER_LIKE = re.compile(r"^[\s0-9.,+\-/%x()e]*$")  # 87.7, 89.0/90.0, 8.6e+5, 1,965x, -: right-aligned


def _html_cell(c: Any) -> str:
    text = html.escape(str(c))
    cls = " long" if len(str(c)) > LONG_CELL else "" if _NUMBER_LIKE.match(str(c)) else " text"
    cls = f' class="{cls.strip()}"' if cls else ""
    return f"<td{cls}><b>{text}</b></td>" if isinstance(c, Bold) else f"<td{cls}>{text}</td>"


def render_html(blocks: list, title: str) -> str:
    """A standalone page: the Vega/Vega-Lite/vega-embed bundle is inlined once, so it renders offline."""
    body, scripts = [], []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in b.columns)
            rows = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in b.rows)
            cap = f"<caption>{html.escape(b.caption)}</caption>" if b.caption else ""
            body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Chart):
            div = f"vis_{_slug(b.name)}"
            body.append(f'<div class="chart" id="{div}" role="img" aria-label="{html.escape(b.alt_text)}"></div>')
            spec = json.dumps(b.spec).replace("</", "<\\/")
            scripts.append(
                f"vegaEmbed('#{div}', {spec}, {{mode: 'vega-lite', renderer: 'svg', actions: false}})"
                ".catch(console.error);"
            )
    bundle = _vega_bundle() if scripts else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{HTML_STYLE}</style>\n"
        + (f'<script type="text/javascript">\n{bundle}\n</script>\n' if bundle else "")
        + "</head>\n<body>\n"
        + "\n".join(body)
        + ('\n<script type="text/javascript">\n' + "\n".join(scripts) + "\n</script>" if scripts else "")
        + "\n</body>\n</html>\n"
    )


def _vega_bundle() -> str:
    """vega + vega-lite + vega-embed as one script, from vl-convert (no network), matching Altair's Vega-Lite."""
    import vl_convert as vlc

    try:
        from altair.utils._importers import vl_version_for_vl_convert

        version = vl_version_for_vl_convert()
    except ImportError:  # older/newer Altair layouts: fall back to vl-convert's default Vega-Lite
        version = None
    bundle = vlc.javascript_bundle(vl_version=version) if version else vlc.javascript_bundle()
    return bundle.replace("</script", "<\\/script")


def build_report(
    store: ExperimentStore,
    sweep: str,
    out_dir: str | Path,
    size_measure: str = "gzip_bytes",
    by: str | None = None,
    budgets: list[int] | None = None,
) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and ``pareto_<task>.png/.svg`` for ``sweep`` into ``out_dir``.

    ``store`` needs the analysis views: open it with ``analysis.views.open_store``; ``by`` and ``budgets`` as in
    :func:`build_blocks`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks, charts = build_blocks(store, sweep, out_dir, size_measure, by=by, budgets=budgets)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md_path, render_markdown(blocks))
    write_text_atomic(html_path, render_html(blocks, f"Featherweight sweep report: {sweep}"))
    return ReportFiles(md_path, html_path, charts)


__all__ = ["ReportFiles", "build_report", "render_html", "render_markdown", "pct", "mb", "sci", "times"]
