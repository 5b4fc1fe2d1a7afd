"""``featherweight report SWEEP [SWEEP ...]``: Markdown + self-contained HTML report with seed summaries, skylines,
compression ratios and per-task Pareto charts (PNG and SVG), read from the experiment database (opened read-only).
Given several sweeps, one report comparing them: per task a chart with every sweep's points and skyline, their
skylines at the same sizes, the smallest model near each sweep's teacher, and the configurations they share."""

from __future__ import annotations

import argparse
from pathlib import Path

from db.limits import add_limit_args, limits_from_args
from featherweight_core.atomic import checked_output_dir
from featherweight_core.vocab import LATENCY_RUNTIMES, REPORT_SIZE_MEASURES

FACETS = ("task", "embedding", "arch")  # as analysis.charts.FACETS (not imported here: --help stays light)
PNG_SCALE = 2.0  # as analysis.charts.PNG_SCALE


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write a sweep's report, or one comparing several sweeps (Markdown, HTML, Pareto charts as PNG/SVG)",
        description=__doc__,
    )
    p.add_argument(
        "sweep",
        nargs="+",
        help='sweep name (see: featherweight query "SELECT name FROM sweeps"); several: a report comparing them',
    )
    p.add_argument(
        "--db", default=None, help="experiment database (default: $FEATHERWEIGHT_DB or runs/featherweight.duckdb)"
    )
    p.add_argument(
        "--output",
        "-o",
        default=None,
        help="output directory (default: reports/<SWEEP> next to the database; several sweeps: "
        "reports/<SWEEP>_vs_<SWEEP>...)",
    )
    p.add_argument(
        "--size-measure",
        "--size",
        dest="size_measure",
        choices=REPORT_SIZE_MEASURES,
        default="gzip_bytes",
        help="x axis of the Pareto charts and skyline tables (default: gzip_bytes, as thesis table 7.5); latency_ms:"
        " batch-1 CPU latency in --runtime (trials of sweeps that measure latency)",
    )
    p.add_argument(
        "--runtime",
        choices=LATENCY_RUNTIMES,
        default="onnxruntime",
        help="with --size latency_ms: whose latency, the PyTorch model's or its ONNX artefact's in ONNX Runtime"
        " (default: onnxruntime, how the models deploy)",
    )
    p.add_argument(
        "--by",
        choices=FACETS,
        default=None,
        help="one chart per task, or each task's chart split into one panel per embedding or architecture (default: "
        "task); comparing sweeps: under the overview panel one per architecture (default: arch), per embedding, or "
        "none (task)",
    )
    p.add_argument(
        "--budget",
        action="append",
        default=None,
        metavar="SIZE",
        help="a hardware budget drawn as a vertical rule on the charts, e.g. 32KB, 48KiB, 1.5MB or 4096 "
        "(bytes); repeat for several; replaces the spec's report.budgets (default: the spec's, else none)",
    )
    p.add_argument(
        "--png-scale",
        type=_png_scale,
        default=PNG_SCALE,
        metavar="F",
        help=f"PNG chart pixels per SVG pixel (default: {PNG_SCALE:g}, sharp in print; 1 makes a file about"
        " half the size for a web page)",
    )
    add_limit_args(p)
    p.set_defaults(func=run)


def _png_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.25 <= value <= 8:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a number from 0.25 to 8, got {text!r}")
    return value


def default_output_dir(db_path: Path, sweep: str | list[str]) -> Path:
    name = sweep if isinstance(sweep, str) else "_vs_".join(sweep)
    return Path(db_path).parent / "reports" / name


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top: `featherweight --help` imports this module to build its parser and needs none
    # of them (the views load duckdb, the report its chart and table modules)
    from analysis.chart_frames import parse_size
    from analysis.report import build_report
    from analysis.views import open_store

    budgets = [parse_size(b) for b in args.budget] if args.budget else None  # a bad size: one error line, exit 2
    measure = f"latency_ms_{args.runtime}" if args.size_measure == "latency_ms" else args.size_measure
    store = open_store(args.db, read_only=True, limits=limits_from_args(args))
    sweeps = list(dict.fromkeys(args.sweep))  # a sweep named twice is compared once
    for sweep in sweeps:
        store.sweep_status(sweep)  # unknown sweep: one-line error before anything is written
    out = Path(args.output) if args.output else default_output_dir(store.path, sweeps)
    with checked_output_dir(out, f"--output {out}"):  # a file there, or no room to write: one line, nothing made
        files = build_report(
            store, sweeps, out, size_measure=measure, by=args.by, budgets=budgets, png_scale=args.png_scale
        )
    print(f"report: {files.markdown}")
    print(f"        {files.html}")
    for task, paths in files.charts.items():
        print(f"chart {task}: {paths['png']}  {paths['svg']}")
    return 0
