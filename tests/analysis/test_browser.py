"""The HTML report drawn by a real headless browser (Debian's ``chromium``), offline: every chart draws its marks.

Skipped when no chromium is installed (``.ci/run`` installs it)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from analysis.report import build_report
from analysis.views import open_store
from tests.fakes import fill_sweep

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class _Marks(HTMLParser):
    """Per chart div (``vis_*``): how many point symbols (``g.mark-symbol.role-mark path``) Vega drew."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str | None, bool]] = []  # (tag, chart id, inside a symbol mark)
        self.symbols: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        chart, in_symbol = self.stack[-1][1:] if self.stack else (None, False)
        if tag == "div" and (a.get("id") or "").startswith("vis_"):
            chart = a["id"]
            self.symbols.setdefault(chart, 0)
        classes = (a.get("class") or "").split()
        if tag == "g" and "mark-symbol" in classes:
            in_symbol = "role-mark" in classes
        if tag == "path" and in_symbol and chart:
            self.symbols[chart] += 1
        if tag not in ("path", "br", "img", "meta", "input", "hr", "link", "rect", "line", "circle", "image"):
            self.stack.append((tag, chart, in_symbol))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return


def _render(browser: str, tmp_path, html) -> subprocess.CompletedProcess:
    """The page's DOM after its scripts ran, as headless chromium dumps it."""
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        "--virtual-time-budget=10000",
        html.resolve().as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_html_report_renders_in_a_headless_browser(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium found (apt-get install chromium)")
    store = open_store(tmp_path / "fw.duckdb")
    fill_sweep(store, "demo", tasks=("sst2", "qqp"), n_seeds=2)
    files = build_report(store, "demo", tmp_path / "report", budgets=[32_000])
    r = _render(browser, tmp_path, files.html)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console[:5]  # no Vega warning or error in the page's console
    parser = _Marks()
    parser.feed(r.stdout)
    assert set(parser.symbols) == {"vis_pareto_sst2", "vis_pareto_qqp"}
    for task in ("sst2", "qqp"):
        n = store.query(
            "SELECT count(*) AS n FROM pareto_points WHERE sweep = 'demo' AND task = ? AND score_measure "
            "= 'score' AND size_measure = 'gzip_bytes' AND size_value > 0",
            [task],
        )["n"][0]
        drawn = parser.symbols[f"vis_pareto_{task}"]
        assert drawn >= n, f"{task}: {drawn} symbols drawn for {n} points"
    assert "dev accuracy (%)" in r.stdout and "skyline (Pareto front)" in r.stdout  # axis title and legend drawn


@pytest.mark.slow
def test_two_sweep_report_renders_in_a_headless_browser(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium found (apt-get install chromium)")
    store = open_store(tmp_path / "fw.duckdb")
    fill_sweep(store, "small", tasks=("sst2",), n_seeds=1)
    fill_sweep(store, "large", tasks=("sst2",), seed=1, n_seeds=1)
    files = build_report(store, ["small", "large"], tmp_path / "report", budgets=[32_000])
    r = _render(browser, tmp_path, files.html)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console[:5]
    parser = _Marks()
    parser.feed(r.stdout)
    assert set(parser.symbols) == {"vis_compare_sst2"}
    n = store.query(
        "SELECT count(*) AS n FROM pareto_points WHERE sweep IN ('small', 'large') AND task = 'sst2' AND "
        "score_measure = 'score' AND size_measure = 'gzip_bytes' AND size_value > 0 AND kind = 'trial'"
    )["n"][0]
    # the overview draws every trial of both sweeps; the panels per architecture draw them once more
    assert parser.symbols["vis_compare_sst2"] >= 2 * n
    for text in ("small", "large", "sweep", "skyline", "arch bilstm", "dev accuracy (%)"):
        assert text in r.stdout, text
