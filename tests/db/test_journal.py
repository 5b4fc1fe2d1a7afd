"""The sweep journal: durable records, torn lines ignored, applying is idempotent, `featherweight db sync`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from analysis.views import open_store
from db.journal import JOURNAL_NAME, Journal, apply_journal
from tests.fakes import make_record

ROOT = Path(__file__).resolve().parents[2]


def test_journal_round_trip_and_torn_line(tmp_path):
    j = Journal(tmp_path / "s" / JOURNAL_NAME)
    a, b = make_record(sweep="demo", trial_id="d-a"), make_record(sweep="demo", trial_id="d-b")
    j.append(a)
    j.append(b)
    with open(j.path, "a") as f:
        f.write('{"sweep": "demo", "trial_id": "d-torn"')  # a writer killed mid-line
    recs = {r.trial_id: r for r in j.records()}
    assert set(recs) == {"d-a", "d-b"}
    assert recs["d-b"].metrics == b.metrics and recs["d-b"].sizes == b.sizes


def test_apply_writes_only_what_the_database_lacks(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    store.start_sweep("demo", {}, "test", str(tmp_path / "s"))
    j = Journal(tmp_path / "s" / JOURNAL_NAME)
    for i in range(3):
        j.append(make_record(sweep="demo", trial_id=f"d-{i}"))
    store.record_trial(make_record(sweep="demo", trial_id="d-0"))
    assert apply_journal(store, j, "demo") == 2
    assert apply_journal(store, j, "demo") == 0
    assert store.finished_trial_ids("demo") == {"d-0", "d-1", "d-2"}


def test_db_sync_command(tmp_path):
    db = tmp_path / "fw.duckdb"
    store = open_store(db)
    store.start_sweep("demo", {}, "test", str(tmp_path / "s"))
    Journal(tmp_path / "s" / JOURNAL_NAME).append(make_record(sweep="demo", trial_id="d-x"))
    r = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "db", "sync", "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "demo: 1 journaled result(s) applied" in r.stdout
    assert open_store(db, read_only=True).finished_trial_ids("demo") == {"d-x"}
