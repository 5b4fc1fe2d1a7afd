"""``featherweight report``: Markdown, self-contained HTML, Pareto PNG + SVG per task, from synthetic records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.report import build_blocks
from analysis.report_blocks import Bold, Table, mb, pct, sci, times
from analysis.report_render import render_markdown
from analysis.views import open_store
from sweep.cli import main
from tests.fakes import fill_sweep, make_record

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "fw.duckdb"
    fill_sweep(open_store(db), "demo", tasks=("sst2", "qqp"), n_seeds=2)
    rc = main(["report", "demo", "--db", str(db)])
    assert rc == 0
    return db, tmp / "reports" / "demo"  # default: reports/<sweep> next to the database


def test_report_files(report_dir):
    _, out = report_dir
    names = {p.name for p in out.iterdir()}
    assert {
        "report.md",
        "report.html",
        "pareto_sst2.png",
        "pareto_sst2.svg",
        "pareto_qqp.png",
        "pareto_qqp.svg",
    } <= names
    assert not [n for n in names if n.startswith(".")]  # temp files moved into place
    umask = os.umask(0)
    os.umask(umask)
    for name in ("report.md", "report.html", "pareto_sst2.png", "pareto_sst2.svg"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name  # the umask's mode, not mkstemp's 0600
    for task in ("sst2", "qqp"):
        png = (out / f"pareto_{task}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
        svg = (out / f"pareto_{task}.svg").read_text()
        assert "<svg" in svg and len(svg) > 50_000
        assert "RoBERTa-large" in svg and "teacher-small" in svg  # baselines are marked and named
        assert "dev accuracy (%)" in svg and "gzip size (MB, log scale)" in svg  # metric and units on the axes
        assert "skyline (Pareto front)" in svg and "architecture" in svg and "pruned + quantized" in svg  # legends
        assert "FFN_Hash25" in svg  # skyline points are named too, not only the baselines
    assert "dev F1 (%)" in (out / "pareto_qqp.svg").read_text()


def test_report_markdown(report_dir):
    _, out = report_dir
    md = (out / "report.md").read_text()
    assert md.startswith("# Featherweight sweep report: demo")
    for heading in (
        "## Task sst2",
        "## Task qqp",
        "### Distillation (mean and sd over seeds)",
        "### Compression",
        "### Skyline: accuracy vs gzip_bytes",
        "### Skyline: f1 vs gzip_bytes",
        "## Failed trials",
    ):
        assert heading in md, heading
    assert "| no distill mean | sd | alpha 0.5 + b mean | sd | alpha 0 + b mean | sd |" in md  # thesis 7.1 columns
    assert "BiLSTM_BPE25 + p + q" in md and "RoBERTa-large" in md and "TinyBERT-6" in md
    assert "NaN loss" in md and "traceback" not in md  # first line of the error only
    assert "![Pareto chart for sst2" in md and "(pareto_sst2.png)" in md
    assert "**" in md  # best mean per row in bold


def test_report_html_is_self_contained(report_dir):
    _, out = report_dir
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "vegaEmbed('#vis_pareto_sst2'" in html and "vegaEmbed('#vis_pareto_qqp'" in html
    assert "<script src=" not in html and "cdn.jsdelivr" not in html  # nothing fetched: renders offline
    assert len(html) > 200_000  # the Vega bundle is inlined
    assert "<table>" in html and "<b>" in html


def test_report_output_option_and_size_measure(report_dir, tmp_path):
    db, _ = report_dir
    umask = os.umask(0o022)
    try:
        rc = main(
            [
                "report",
                "demo",
                "--db",
                str(db),
                "--output",
                str(tmp_path / "r"),
                "--size-measure",
                "params",
                "--by",
                "embedding",
            ]
        )
    finally:
        os.umask(umask)
    assert rc == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "### Skyline: accuracy vs params" in md
    for name in ("report.md", "report.html", "pareto_sst2.png", "pareto_sst2.svg"):
        assert (tmp_path / "r" / name).stat().st_mode & 0o777 == 0o644, name  # umask 022: 0644, like other outputs
    svg = (tmp_path / "r" / "pareto_sst2.svg").read_text()
    assert "parameters, non-zero (log scale)" in svg
    assert "(embedding bpe)" in svg and "(embedding hash)" in svg  # --by: one panel per embedding


def test_report_budgets(report_dir, tmp_path, capsys):
    db, _ = report_dir
    rc = main(["report", "demo", "--db", str(db), "-o", str(tmp_path / "b"), "--budget", "32KB", "--budget", "48KiB"])
    assert rc == 0
    svg = (tmp_path / "b" / "pareto_sst2.svg").read_text()
    assert "32 KB" in svg and "48 KiB" in svg
    assert "hardware budgets 32 KB, 48 KiB" in (tmp_path / "b" / "report.md").read_text()
    capsys.readouterr()
    rc = main(["report", "demo", "--db", str(db), "-o", str(tmp_path / "c"), "--budget", "32XB"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "'32XB'" in err
    assert not (tmp_path / "c").exists()  # nothing written


def test_report_cli_subprocess_unknown_sweep(report_dir):
    db, _ = report_dir
    r = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "report", "missing", "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr.strip() == "error: unknown sweep 'missing' (known: demo)"


def test_formatters_and_markdown_escaping():
    assert (pct(0.8766), pct(None), pct(float("nan"))) == ("87.7", "-", "-")
    assert (mb(1_587_000), mb(1_426_000_000)) == ("1.587", "1,426")
    assert sci(860_000) == "8.6e+5"
    assert (times(1965.2), times(0.4834)) == ("1,965x", "0.5x")
    md = render_markdown([Table(["a|b", "c"], [[Bold("x"), "y|z"]], "cap")])
    assert "| a\\|b | c |" in md and "| **x** | y\\|z |" in md and "*cap*" in md


def test_report_states_the_sweeps_outcome_message(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    store.start_sweep("bad", {}, "test", "/tmp/bad")
    store.record_trial(make_record("bad", "t1", status="error", error="RuntimeError: NaN loss", metrics={}, sizes={}))
    store.finish_sweep("bad", "failed", "1 of 1 trials failed; first error: RuntimeError: NaN loss")
    blocks, charts = build_blocks(store, "bad", tmp_path)
    md = render_markdown(blocks)
    assert "Status **failed** (1 of 1 trials failed; first error: RuntimeError: NaN loss)" in md
    assert "No finished trials yet." in md and charts == {}


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_take_the_umask_mode(tmp_path, umask, mode):
    from featherweight_core.atomic import atomic_write, write_text_atomic

    old = os.umask(umask)
    try:
        text = write_text_atomic(tmp_path / "report.md", "x")
        chart = atomic_write(tmp_path / "pareto.svg", lambda tmp: tmp.write_text("<svg/>"), suffix=".svg")
    finally:
        os.umask(old)
    assert text.stat().st_mode & 0o777 == mode and chart.stat().st_mode & 0o777 == mode  # not mkstemp's 0600


def test_report_lists_the_trials_the_scheduler_stopped(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    store.start_sweep("halving", {}, "test", "/tmp/halving")
    store.record_trial(make_record("halving", "d-kept"))
    for tid, score in (("d-s1", 0.61), ("d-s2", 0.64)):
        store.record_trial(
            make_record(
                "halving",
                tid,
                status="stopped",
                metrics={"score": score, "epochs": 3},
                sizes={"params": 10},
                checkpoint_path=None,
                stopped_at_rung=3,
                stop_reason="dominated at the epoch-3 rung by d-kept",
            )
        )
    store.finish_sweep("halving", "finished")
    md = render_markdown(build_blocks(store, "halving", tmp_path)[0])
    assert "Trials: 3 (1 finished, 2 stopped)" in md and "## Stopped by the scheduler" in md
    assert "| sst2 | 3 | 2 | 6 | 64.00 |" in md


def test_distillation_table_shows_recipes_the_scheduler_stopped_in_brackets(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    store.start_sweep("halving", {}, "test", "/tmp/halving")
    seeds = (1, 2)
    for seed, score in zip(seeds, (0.80, 0.82), strict=True):  # alpha 0 + b finished over two seeds
        store.record_trial(
            make_record(
                "halving",
                f"d-a0-{seed}",
                alpha=0.0,
                temperature=3.0,
                seed=seed,
                metrics={"score": score, "accuracy": score, "epochs": 5},
            )
        )
    # alpha 1 (no distillation, so no temperature): every seed stopped, one at epoch 1 and one at epoch 3
    for seed, rung, score in ((1, 1, 0.60), (2, 3, 0.70)):
        store.record_trial(
            make_record(
                "halving",
                f"d-a1-{seed}",
                alpha=1.0,
                bootstrap=False,
                seed=seed,
                status="stopped",
                metrics={"score": score, "accuracy": score, "epochs": rung},
                sizes={"params": 400_000},
                checkpoint_path=None,
                stopped_at_rung=rung,
                stop_reason="dominated",
            )
        )
    # alpha 0.5 + b: one seed finished, one stopped
    store.record_trial(make_record("halving", "d-a5-1", alpha=0.5, temperature=3.0, seed=1))
    store.record_trial(
        make_record(
            "halving",
            "d-a5-2",
            alpha=0.5,
            temperature=3.0,
            seed=2,
            status="stopped",
            metrics={"score": 0.5, "accuracy": 0.5, "epochs": 1},
            checkpoint_path=None,
            stopped_at_rung=1,
            stop_reason="dominated",
        )
    )
    store.finish_sweep("halving", "finished")
    md = render_markdown(build_blocks(store, "halving", tmp_path)[0])
    table = md.split("### Distillation", 1)[1].split("\n\n")[1]
    header, _, *rows = table.splitlines()
    assert header.split(" | ")[6:] == ["no distill mean", "sd", "alpha 0.5 + b mean", "sd", "alpha 0 + b mean", "sd |"]
    assert len(rows) == 1  # the undistilled recipe (no temperature) shares the student's row
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[6:8] == ["(65.0)", "stopped @1-3"]
    assert cells[8:10] == ["**85.0**", "1 seed (+1 stopped)"]  # the stopped seed's 50.0 is not averaged in
    assert cells[10:12] == ["81.0", "1.4"]
    assert "(x) stopped @N" in md


def test_report_png_scale(report_dir, tmp_path, capsys):
    import struct

    from analysis import charts, commands

    assert commands.PNG_SCALE == charts.PNG_SCALE  # the CLI's default is the library's

    def width(png: Path) -> int:
        return struct.unpack(">I", png.read_bytes()[16:20])[0]  # the IHDR chunk's width

    db, default = report_dir
    rc = main(["report", "demo", "--db", str(db), "-o", str(tmp_path / "s1"), "--png-scale", "1"])
    assert rc == 0
    small = tmp_path / "s1" / "pareto_sst2.png"
    assert width(default / "pareto_sst2.png") == 2 * width(small)
    assert small.stat().st_size < (default / "pareto_sst2.png").stat().st_size
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "demo", "--db", str(db), "-o", str(tmp_path / "s0"), "--png-scale", "0"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "expected a number from 0.25 to 8, got '0'" in err
    assert not (tmp_path / "s0").exists()
