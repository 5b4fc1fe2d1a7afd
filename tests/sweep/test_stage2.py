"""Stage 2 end to end on the synthetic task through Ray Tune, Optuna and DuckDB: compression trials recorded with
their parents, resume after raising ``num_samples``, resume after the driver is killed during stage 2, and a resume
with nothing to do that changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from analysis.selection import select_parents
from analysis.views import open_store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _spec(tmp_path: Path, name: str, num_samples: int, method: str = "magnitude") -> Path:
    raw = {
        "name": name,
        "storage": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
        "tasks": {"synthetic": {"data_options": {"n_train": 300, "n_dev": 100}}},
        "grid": {
            "archs": ["bilstm", "ffn"],
            "embeddings": ["hash"],
            "dims": [16],
            "vocab_sizes": [500],
            "alphas": [1.0],
            "seeds": [0],
        },
        "training": {"max_epochs": 2, "patience": 1},
        "resources": {"cpus_per_trial": 1, "num_cpus": 2},
        "compress": {
            "parents": {"top_k": 1},
            "search": {
                "num_samples": num_samples,
                "max_concurrent": 1,
                "method": method,
                "targets": {"embedding": [0.0, 0.5], "encoder": [0.0, 0.5], "classifier": [0.0, 0.5]},
            },
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _featherweight(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweep.cli", *args], capture_output=True, text=True, cwd=cwd, env=_env(), timeout=400
    )


def _compress_rows(db: Path, sweep: str):
    return open_store(db, read_only=True).query(
        "SELECT trial_id, parent_trial_id, status, config, finished_at FROM trials WHERE sweep = ? AND stage = 'compress'",
        [sweep],
    )


def test_stage2_records_parents_and_resumes_after_raising_num_samples(tmp_path):
    spec = _spec(tmp_path, "s2", num_samples=2, method="topv")
    db = tmp_path / "runs" / "featherweight.duckdb"
    r = _featherweight("sweep", "run", str(spec), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    store = open_store(db, read_only=True)
    parents = select_parents(store, "s2", {"top_k": 1}, "gzip_bytes")
    assert len(parents) == 1
    rows = _compress_rows(db, "s2")
    assert len(rows) == 2 and (rows.status == "finished").all()
    assert set(rows.parent_trial_id) == set(parents.trial_id)
    res = store.query("SELECT * FROM trial_results WHERE sweep = 's2' AND stage = 'compress'")
    assert res.pruning.str.startswith("topv").all() and res.quantization.notna().all()
    assert (res.device == "cpu").all() and res.node.notna().all()
    finished_at = store.sweep_status("s2")["finished_at"]

    # a resume with nothing to do changes nothing, not even finished_at (found from the database alone)
    r = _featherweight("sweep", "resume", "s2", "--db", str(db), cwd=tmp_path)
    assert r.returncode == 0 and "nothing to do" in r.stderr, r.stderr[-3000:]
    assert open_store(db, read_only=True).sweep_status("s2")["finished_at"] == finished_at

    # one more Optuna sample: the recorded two are fed to the study, one new trial runs
    stored = tmp_path / "runs" / "s2" / "spec.yaml"
    raw = yaml.safe_load(stored.read_text())
    raw["compress"]["search"]["num_samples"] = 3
    stored.write_text(yaml.safe_dump(raw))
    r = _featherweight("sweep", "resume", "s2", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 to run" in r.stderr
    after = _compress_rows(db, "s2")
    assert len(after) == 3 and after.trial_id.is_unique and (after.status == "finished").all()
    kept = rows.merge(after, on="trial_id", suffixes=("_before", "_after"))
    assert len(kept) == 2 and (kept.finished_at_before == kept.finished_at_after).all()
    # the sweep is findable from its database alone
    st = _featherweight("sweep", "status", "s2", "--db", str(db), cwd=tmp_path)
    assert st.returncode == 0 and "finished" in st.stdout, st.stderr


@pytest.mark.parametrize("kill_after", [1, 4])  # kill -9 of the driver early and late in stage 2
def test_stage2_resume_after_kill(tmp_path, kill_after):
    spec = _spec(tmp_path, "s2kill", num_samples=10)
    db = tmp_path / "runs" / "featherweight.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "sweep", "run", str(spec)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        n = 0
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if db.exists():
                try:
                    n = len(_compress_rows(db, "s2kill"))
                except Exception:  # the writer holds the file; try again
                    continue
                if n >= kill_after:
                    break
        assert kill_after <= n < 10, f"stage 2 not caught mid-way ({n} compression rows)"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    before = _compress_rows(db, "s2kill")
    r = _featherweight("sweep", "resume", "s2kill", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    after = _compress_rows(db, "s2kill")
    assert len(after) == 10 and after.trial_id.is_unique and (after.status == "finished").all()
    assert set(before.trial_id) <= set(after.trial_id)
    kept = before.merge(after, on="trial_id", suffixes=("_before", "_after"))
    assert (kept.finished_at_before == kept.finished_at_after).all()  # finished trials were not re-run
    assert open_store(db, read_only=True).sweep_status("s2kill")["status"] == "finished"
