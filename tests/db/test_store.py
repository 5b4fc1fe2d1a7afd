"""db.store: the ExperimentStore front keeps its import surface; db stays free of analysis and orchestration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_front_reexports():
    from db import ExperimentStore as A
    from db.rows import TrialRecord as R
    from db.store import ExperimentStore, StoreError, TrialRecord, default_db_path, flatten_sizes

    assert A is ExperimentStore and R is TrialRecord
    assert callable(default_db_path) and callable(flatten_sizes) and issubclass(StoreError, ValueError)


def _imported_after(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_db_and_analysis_stay_free_of_orchestration():
    """db/ needs only duckdb (+ pandas/pyarrow) and the core's pure helpers (errors, vocab, atomic; analysis' command
    modules also the core's command-line helpers and task table); analysis/ never imports ray; nothing imports sweep,
    trainables or the core's training code."""
    code = (
        "import sys, db.store, analysis.views, analysis.selection, analysis.query_commands, analysis.charts, "
        "analysis.chart_frames, analysis.chart_labels, analysis.report, analysis.report_blocks, "
        "analysis.report_tables, analysis.report_render, analysis.commands, analysis.export_commands\n"
        "allowed = {'featherweight_core', 'featherweight_core.errors', 'featherweight_core.vocab', "
        "'featherweight_core.atomic', 'featherweight_core.settings', 'featherweight_core.cli', 'featherweight_core.cli.common', "
        "'featherweight_core.data', 'featherweight_core.data.tasks'}\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'sweep', 'trainables', 'torch', 'optuna') "
        "or (m.startswith('featherweight_core') and m not in allowed)]\n"
        "print(','.join(sorted(bad)))"
    )
    assert _imported_after(code) == ""


def test_db_does_not_reach_into_analysis():
    code = (
        "import sys, tempfile, db.store\n"
        "s = db.store.ExperimentStore(tempfile.mkdtemp() + '/x.duckdb')\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] == 'analysis'))"
    )
    assert _imported_after(code) == ""
    for path in (REPO / "db").rglob("*.py"):
        text = path.read_text()
        assert "from analysis" not in text and "import analysis" not in text and '"analysis"' not in text, path
