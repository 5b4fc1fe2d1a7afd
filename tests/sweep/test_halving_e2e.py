"""The Pareto-aware scheduler in a real sweep (synthetic task, Ray Tune, DuckDB): trials dominated at a rung are
stopped and recorded with the rung and the reason, other seeds run only near the frontier, a resume has nothing to
do, and a sweep killed mid-way resumes without re-running anything and with decisions that replay exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from analysis.views import open_store
from sweep.pareto_halving import HalvingSettings, ParetoHalving, RungResult

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
MAX_EPOCHS = 4


def _spec(tmp_path: Path, name: str, dims=(8, 16, 32), seeds=(0, 1), scheduler=None) -> Path:
    raw = {
        "name": name,
        "storage": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
        "tasks": {"synthetic": {"data_options": {"n_train": 300, "n_dev": 100}}},
        "grid": {
            "archs": ["ffn", "rnn"],
            "embeddings": ["hash"],
            "dims": list(dims),
            "vocab_sizes": [500],
            "alphas": [1.0],
            "seeds": list(seeds),
        },
        "training": {"max_epochs": MAX_EPOCHS, "patience": MAX_EPOCHS},
        # one trial at a time: results arrive in grid order, so the scheduler's decisions do not depend on timing
        "resources": {"cpus_per_trial": 1, "num_cpus": 2, "max_concurrent": 1},
        "scheduler": scheduler or {"kind": "pareto_halving", "eta": 3, "seeds": "first", "seeds_margin": 1.0},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweep.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=300,
    )


def _replays_exactly(rungs) -> None:
    """The recorded rung results, fed again in their arrival order, give the recorded decisions."""
    rule = ParetoHalving(HalvingSettings(eta=3))
    results = [
        RungResult(r.trial_id, r.task, int(r.rung), float(r.score), float(r.params), int(r.arrival))
        for r in rungs.itertuples()
    ]
    decided = rule.replay(results)
    assert ["stop" if d.stop else "continue" for d in decided] == list(rungs.decision)


def test_dominated_trials_stop_are_recorded_and_resume_has_nothing_to_do(tmp_path):
    spec = _spec(tmp_path, "halving")
    r = _run(tmp_path, "sweep", "run", str(spec))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "pareto_halving: rungs at epoch(s) 1, 3" in r.stderr
    assert "stopped early by the scheduler" in r.stderr and "seeds where they matter" in r.stderr
    store = open_store(tmp_path / "runs" / "featherweight.duckdb", read_only=True)
    trials = store.query(
        "SELECT t.trial_id, t.seed, t.arch, t.emb_dim, t.status, t.stopped_at_rung, t.stop_reason, t.seconds,"
        " t.device, r.score, r.epochs, r.params, r.gzip_bytes FROM trials t LEFT JOIN results r USING (sweep, trial_id)"
    )
    stopped = trials[trials.status == "stopped"]
    assert len(stopped) >= 1 and set(trials.status) <= {"finished", "stopped"}
    assert stopped.stop_reason.str.startswith("dominated at the epoch-").all()
    assert (stopped.epochs == stopped.stopped_at_rung).all() and (stopped.epochs < MAX_EPOCHS).all()
    assert stopped.score.notna().all() and stopped.params.notna().all()  # its score there and its exact size
    assert (stopped.gzip_bytes > 0).all()  # measured at the rung: the chart places it on the byte axes
    assert trials.seconds.notna().all() and (trials.device == "cpu").all()  # cost accounting per trial
    # seeds where they matter: a second seed only for configurations whose first seed finished near the front
    firsts = trials[trials.seed == 0].set_index(["arch", "emb_dim"])
    seconds = trials[trials.seed == 1]
    assert len(firsts) == 6 and 1 <= len(seconds) < 6
    assert all(firsts.loc[(a, d), "status"] == "finished" for a, d in zip(seconds.arch, seconds.emb_dim, strict=True))
    assert (seconds.status == "finished").all() and (seconds.epochs == MAX_EPOCHS).all()  # they train to the end
    # every rung result is in the view, each stopped trial's last one says stop, and they replay to the same decisions
    rungs = store.query("SELECT * FROM rung_results ORDER BY arrival")
    assert set(rungs.trial_id) == set(trials[trials.seed == 0].trial_id)
    last = rungs.groupby("trial_id").tail(1).set_index("trial_id")
    assert (last.loc[stopped.trial_id, "decision"] == "stop").all()
    _replays_exactly(rungs)
    # stopped trials are not on the frontier or anywhere a finished trial is expected
    assert set(store.query("SELECT trial_id FROM trial_results").trial_id).isdisjoint(stopped.trial_id)
    again = _run(tmp_path, "sweep", "run", str(spec))
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr[-2000:]


def test_a_killed_sweep_resumes_without_rerunning_and_its_decisions_replay(tmp_path):
    spec = _spec(tmp_path, "killed", dims=(8, 16, 24, 32), seeds=(0,), scheduler="pareto_halving")
    db = tmp_path / "runs" / "featherweight.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "sweep", "run", str(spec)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        seen = 0
        deadline = time.time() + 240
        while time.time() < deadline and seen < 3:  # kill once three trials have ended
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "the sweep ended before it could be killed"
            seen += line.startswith("[distill")
        assert seen >= 3
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    before = open_store(db, read_only=True).query("SELECT trial_id, status, finished_at FROM trials")
    assert 1 <= len(before) < 8
    r = _run(tmp_path, "sweep", "resume", "killed", "--storage", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr[-3000:]
    store = open_store(db, read_only=True)
    after = store.query("SELECT trial_id, status, finished_at FROM trials")
    assert len(after) == 8 and after.trial_id.is_unique and set(after.status) <= {"finished", "stopped"}
    merged = before.merge(after, on="trial_id", suffixes=("_before", "_after"))
    assert (merged.finished_at_before == merged.finished_at_after).all()  # nothing recorded was run again
    assert (merged.status_before == merged.status_after).all()
    _replays_exactly(store.query("SELECT * FROM rung_results ORDER BY arrival"))
