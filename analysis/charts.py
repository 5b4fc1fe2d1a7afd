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
- Optional hardware budgets (e.g. L1/L2 cache sizes) as labelled vertical rules: :func:`parse_size` reads them.
- Interactive in HTML: tooltips with the whole configuration (for a teacher-compressed model: its method settings,
  trainable parameters and CPU latency), zoom and pan (scroll, drag), click a legend entry to
  show one architecture only. Legends sit under the plot, never over a label.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featherweight_core.errors import UserError
from featherweight_core.vocab import SIZE_MEASURES

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

    from db.store import ExperimentStore

SCORE_MEASURES = ("score", "accuracy", "f1", "macro_f1")
SIZE_TITLES = {
    "disk_bytes": "size on disk (MB, log scale)",
    "gzip_bytes": "gzip size (MB, log scale)",
    "params": "parameters, non-zero (log scale)",
}
SCORE_TITLES = {"score": "score", "accuracy": "accuracy", "f1": "F1", "macro_f1": "macro-F1"}
# What a task's ``score`` is: the metric a custom task names in its spec (tasks.<task>.metric), else the built-in one
METRIC_NAMES = {"accuracy": "accuracy", "f1": "F1", "macro_f1": "macro-F1"}
BUILTIN_METRICS = {"sst2": "accuracy", "qqp": "accuracy", "mnli": "accuracy"}
DEFAULT_METRIC = "accuracy"
FACETS = ("task", "embedding", "arch")
TOOLTIP_FIELDS = (
    ("name", "model"),
    ("trial_id", "trial"),
    ("stage_label", "stage"),
    ("configuration", "configuration"),
    ("parent_trial_id", "parent"),
    ("source", "source"),
)
# in the tooltips of a panel with teacher-compressed models ('-' for the other points)
TEACHER_COMPRESSION_TOOLTIPS = (("trainable_text", "trainable params"), ("latency_text", "CPU latency, batch 1"))
# colour-blind-safe (Okabe-Ito), far from black (the skyline and the baselines); theseus and bertvision are the
# transformers teacher compression makes (featherweight_core.vocab.TEACHER_COMPRESSION_METHODS)
ARCH_COLORS = {"bilstm": "#0072b2", "rnn": "#e69f00", "ffn": "#cc79a7", "theseus": "#009e73", "bertvision": "#d55e00"}
# how a teacher-compression method is written in charts and tables
METHOD_NAMES = {"theseus": "Theseus", "bertvision": "BERT-Vision"}
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
SKYLINE_SERIES = "skyline (Pareto front)"
DOMINATED_OPACITY = 0.35
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
    from db.errors import StoreError

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


def _present(v) -> bool:
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
    if not _present(n):
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
    parts = [METHOD_NAMES.get(row["arch"], str(row["arch"])) + (f" {layers_text(layers)}" if _present(layers) else "")]
    settings = method_settings(row.get("settings"))
    if settings:
        parts.append(settings)
    if _present(row.get("seed")):
        parts.append(f"seed {row['seed']}")
    if isinstance(row.get("quantization"), str) and row.get("quantization"):
        parts.append(str(row["quantization"]))
    parts.append(f"trainable {count_text(row.get('trainable_params'))} params")
    if _present(row.get("latency_ms")):
        parts.append(f"CPU latency {float(row['latency_ms']):.2f} ms (batch 1)")
    return ", ".join(parts)


def _latency_text(row) -> str:
    """A teacher-compressed point's CPU latency for the tooltip, with its speed-up over the teacher when measured."""
    if not _present(row.get("latency_ms")):
        return "-"
    speedup = row.get("speedup_vs_teacher")
    return f"{float(row['latency_ms']):.2f} ms" + (f" ({float(speedup):.2f}x faster)" if _present(speedup) else "")


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
    if size_measure not in SIZE_MEASURES:
        raise ValueError(f"size measure must be one of {SIZE_MEASURES}, got {size_measure!r}")
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
    df["frontier"] = ["skyline" if r["on_skyline"] else "dominated" for r in records]
    df["series"] = SKYLINE_SERIES
    return df


def seed_frame(store: ExperimentStore, sweep: str, task: str, score_measure: str, size_measure: str) -> pd.DataFrame:
    """Configurations with several seeds (``seed_summary``): x at the mean size, ``y`` the mean score in percent and
    ``y_lo``/``y_hi`` mean -+ one sample sd."""
    col = "score" if score_measure == "score" else score_measure
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
    df["y_lo"], df["y_hi"] = df["y"] - sd, df["y"] + sd
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
    return df


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


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Pandas nullable dtypes -> plain objects with None, which Altair serialises as JSON null."""
    out = df.astype(object)
    return out.where(df.notna(), None)


def _domains(frames: list[pd.DataFrame], budgets_x: list[float]) -> tuple[list[float], list[float]]:
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


_LABEL_CHAR_PX = 5.8  # mean width of a character of the 10 px label font
_MARKER_RADIUS_PX = 5.0  # half the size of a point's marker (mark size 75 px^2)
# a label's baseline offsets from its point, in px: just above / below it, then one line further out; its box spans
# 9 px above the baseline to 2 px below
_LABEL_DYS = (-8.0, 9.0, -19.0, 20.0)
_LABEL_ASCENT, _LABEL_DESCENT = 9.0, 2.0
_LABEL_DX = 8.0  # px between a point and the near end of its label
_LINE_HALF_PX = 1.5  # half the width the skyline line counts as, for labels crossing it
# what a label overlapping each kind of obstacle costs, per px^2: another label (unreadable) far more than a marker
# (hidden, but hoverable) or the skyline line (crossed)
_COST_LABEL, _COST_MARKER, _COST_LINE = 4.0, 1.0, 0.5
_MAX_LABEL_OVERLAP = 0.1  # a label overlapping placed labels by more than this fraction of its box is left out


@dataclass(frozen=True)
class LabelPlace:
    """Where a point's name goes: ``right`` of the point (else left of it, ending there), its baseline ``dy`` px
    below the point (negative: above it)."""

    right: bool
    dy: float

    def box(self, px: float, py: float, name: str) -> tuple[float, float, float, float]:
        """(left, right, top, bottom) in px of ``name`` placed so for a point at (px, py)."""
        tw = _LABEL_CHAR_PX * len(name)
        left = px + _LABEL_DX if self.right else px - _LABEL_DX - tw
        return left, left + tw, py + self.dy - _LABEL_ASCENT, py + self.dy + _LABEL_DESCENT


def place_labels(
    xs: list[float],
    ys: list[float],
    names: list[str],
    xdom,
    ydom,
    width: int,
    height: int,
    points: list[tuple[float, float]] = (),
    line: list[tuple[float, float]] = (),
) -> list[LabelPlace | None]:
    """A place for each point's name, in the order given (the first are placed first: pass the most important
    first), or None where every place would overlap names already placed (the point keeps its tooltip).

    Each name tries right/left of its point x just above/below it or one line further out, preferring right in the
    left 72% of the axis and left beyond (so names do not run off the plot), above/below alternating from one name to
    the next; it takes the place that costs least: overlap with names placed before it, with the markers of
    ``points`` (every drawn (x, y)), with the skyline ``line`` (its points, joined as the chart draws it: step after),
    and with the plot's edges, all estimated in pixels on the log x / linear y axes.

    A name at the right edge goes left of its point; the next name at its height takes the other side of the line:

    >>> place_labels([1.0, 900.0, 920.0], [50, 50, 50], ["BiLSTM_BPE25", "teacher", "Theseus-3L"], [0.1, 1000],
    ...              [40, 60], 600, 300)
    [LabelPlace(right=True, dy=-8.0), LabelPlace(right=False, dy=9.0), LabelPlace(right=False, dy=-8.0)]
    """
    lx0, lx1 = math.log(xdom[0]), math.log(xdom[1])

    def pixels(xv: float, yv: float) -> tuple[float, float]:
        return width * (math.log(xv) - lx0) / (lx1 - lx0), height * (1 - (yv - ydom[0]) / (ydom[1] - ydom[0]))

    def area(a, b) -> float:
        return max(0.0, min(a[1], b[1]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[2], b[2]))

    r = _MARKER_RADIUS_PX
    markers = [(px - r, px + r, py - r, py + r) for px, py in (pixels(a, b) for a, b in points)]
    segments = []
    steps = [pixels(a, b) for a, b in sorted(line)]
    h = _LINE_HALF_PX
    for (x0, y0), (x1, y1) in zip(steps, steps[1:], strict=False):
        segments.append((x0, x1, y0 - h, y0 + h))  # along, at the left point's height
        segments.append((x1 - h, x1 + h, min(y0, y1), max(y0, y1)))  # then up (or down) to the next point
    cut = 0.72 * width
    placed: list[tuple[float, float, float, float]] = []
    out: list[LabelPlace | None] = []
    for i, (xv, yv, name) in enumerate(zip(xs, ys, names, strict=True)):
        px, py = pixels(xv, yv)
        prefer_right, prefer_above = px <= cut, i % 2 == 0
        best = None
        for right in (prefer_right, not prefer_right):
            for dy in _LABEL_DYS:
                place = LabelPlace(right, dy)
                box = place.box(px, py, name)
                on_labels = sum(area(box, b) for b in placed)
                outside = (box[1] - box[0]) * (box[3] - box[2]) - area(box, (0.0, float(width), 0.0, float(height)))
                cost = (
                    _COST_LABEL * (on_labels + outside)
                    + _COST_MARKER * sum(area(box, b) for b in markers)
                    + _COST_LINE * sum(area(box, b) for b in segments)
                    + 2.0 * (right != prefer_right)
                    + 1.0 * ((dy < 0) != prefer_above)
                    + 3.0 * (abs(dy) > 10)
                )
                if best is None or cost < best[0]:
                    best = (cost, on_labels, box, place)
        _, on_labels, box, place = best
        if on_labels > _MAX_LABEL_OVERLAP * (box[1] - box[0]) * (box[3] - box[2]):
            out.append(None)
            continue
        placed.append(box)
        out.append(place)
    return out


_NAME_CLUSTER_DECADES = 0.15  # same-named points closer than this in size (~1.4x) ...
_NAME_CLUSTER_SCORE = 0.05  # ... and than this fraction of the panel's score range carry one name


def _one_per_cluster(names: list[str], xs: list[float], ys: list[float]) -> list[bool]:
    """Which points are named: a point is left unnamed when a better-scoring point of the same name lies within
    ``_NAME_CLUSTER_DECADES`` in size and ``_NAME_CLUSTER_SCORE`` of the score range (seeds and near-identical
    compression settings of one model otherwise stack one name several times); same-named points further apart
    keep their own names.

    >>> _one_per_cluster(["a", "a", "a", "b", "a", "a"], [0.20, 0.21, 0.22, 0.21, 1.0, 0.19],
    ...                  [72.2, 72.3, 72.6, 70.0, 72.7, 60.0])
    [False, False, True, True, True, True]
    """
    tol = _NAME_CLUSTER_SCORE * ((max(ys) - min(ys)) if ys else 0.0)
    kept: list[int] = []
    keep = [False] * len(names)
    for i in sorted(range(len(names)), key=lambda j: -ys[j]):
        if any(
            names[k] == names[i] and abs(math.log10(xs[i] / xs[k])) <= _NAME_CLUSTER_DECADES and ys[k] - ys[i] <= tol
            for k in kept
        ):
            continue
        kept.append(i)
        keep[i] = True
    return keep


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
) -> alt.LayerChart:
    """One skyline panel from ``pareto_frame`` rows; ``seeds`` (``seed_frame``) adds seed means with sd bars,
    ``budgets`` (bytes) vertical rules, ``skyline`` the rows the skyline line is drawn through (default: ``df``'s).
    ``name`` keeps the panel's selections apart from its neighbours'."""
    import altair as alt
    import pandas as pd

    skyline = df if skyline is None else skyline
    is_bytes = "MB" in size_title
    budgets_x = [b / 1e6 for b in budgets] if is_bytes else []
    seeds = seeds if seeds is not None else pd.DataFrame(columns=["x", "y", "y_lo", "y_hi", "color_key"])
    xdom, ydom = _domains([df, seeds], budgets_x)
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
    data = _plain(df[[c for c in df.columns if c not in ("sweep",)]])
    tooltip = [alt.Tooltip(f"{c}:N", title=t) for c, t in TOOLTIP_FIELDS if c in data.columns]
    if "stage" in df.columns and (df["stage"] == "teacher_compression").any():
        tooltip += [alt.Tooltip(f"{c}:N", title=t) for c, t in TEACHER_COMPRESSION_TOOLTIPS if c in data.columns]
    tooltip += [
        alt.Tooltip("y:Q", title=score_title, format=".2f"),
        alt.Tooltip("x:Q", title=size_short, format=",.4~g"),
    ]

    layers = []
    links = link_frame(df)
    if not links.empty:
        layers.append(
            alt.Chart(_plain(links))
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
            alt.Chart(_plain(sky[["x", "y", "series"]]))
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
        bud = pd.DataFrame({"x": budgets_x, "label": [size_label(b) for b in budgets]})
        rule = alt.Chart(bud).encode(x=x)
        layers.append(rule.mark_rule(color="#777777", strokeDash=[2, 2], strokeWidth=1))
        # along the rule from the bottom up: the top holds the skyline's labels
        layers.append(
            rule.mark_text(
                angle=270, align="left", baseline="bottom", dx=4, dy=-3, fontSize=10, color="#555555"
            ).encode(text="label:N", y=alt.value(height))
        )
    if not seeds.empty:
        sd = alt.Chart(_plain(seeds)).encode(
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
        _one_per_cluster(
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
            for dy in _LABEL_DYS:
                part = named[(named["_right"] == right) & (named["_dy"] == dy)]
                if part.empty:
                    continue
                layers.append(
                    alt.Chart(_plain(part[["x", "y", "name", "frontier", "color_key"]]))
                    .mark_text(
                        align="left" if right else "right",
                        dx=_LABEL_DX if right else -_LABEL_DX,
                        dy=dy,
                        fontSize=10,
                        color="#333333",
                    )
                    .encode(x=x, y=y, text="name:N", opacity=alt.condition(shown, frontier, alt.value(0.05)))
                )
    return alt.layer(*layers).properties(title=title, width=width, height=height)


def _panels_by(df: pd.DataFrame, by: str | None) -> list[tuple[str | None, pd.DataFrame]]:
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
        rows.append((measure, df, seed_frame(store, sweep, task, measure, size_measure)))
    if not rows:
        return None
    color_domain = [k for k in (*ARCH_COLORS, "baseline") if any(k in set(d["color_key"]) for _, d, _ in rows)]
    color_domain += sorted({k for _, d, _ in rows for k in d["color_key"].dropna()} - set(color_domain))
    stage_domain = [s for s in STAGE_SHAPES if any(s in set(d["stage_label"]) for _, d, _ in rows)]
    grid = []
    for measure, df, seeds in rows:
        parts = _panels_by(df, by)
        n_cols = min(len(parts) * len(rows), 2)
        width = 900 if n_cols == 1 else 440
        line = []
        for value, part in parts:
            part_seeds = seeds if value is None else seeds[seeds[by].astype(str) == value]
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


def save_static(chart, path_stem, scale_factor: float = 2.0) -> dict[str, str]:
    """Write ``<stem>.png`` and ``<stem>.svg`` through vl-convert (offline); returns {"png": path, "svg": path}."""
    from pathlib import Path

    from featherweight_core.atomic import atomic_write

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
