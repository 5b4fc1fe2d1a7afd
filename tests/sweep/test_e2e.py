"""A real sweep on the synthetic task through Ray Tune into DuckDB: failures recorded, resume after the driver is
killed without duplicates or re-runs, and `featherweight query` from another process while the sweep writes."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from db.store import ExperimentStore
from tests.sweep.cli_run import cli_env, featherweight

pytestmark = pytest.mark.slow


def _spec(tmp_path: Path, name: str, seeds: list[int], archs=("bilstm", "ffn"), epochs: int = 2) -> Path:
    raw = {
        "name": name,
        "storage": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
        "tasks": {"synthetic": {"data_options": {"n_train": 400, "n_dev": 100}}},
        "grid": {
            "archs": list(archs),
            "embeddings": ["hash"],
            "dims": [16],
            "vocab_sizes": [500],
            "alphas": [1.0],
            "seeds": seeds,
        },
        "training": {"max_epochs": epochs, "patience": 1},
        "resources": {"cpus_per_trial": 1, "num_cpus": 2},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_sweep_records_results_and_failures(tmp_path):
    spec = _spec(tmp_path, "e2e", seeds=[0, 1])
    r = featherweight(
        "sweep", "run", str(spec), cwd=tmp_path, env=cli_env(FEATHERWEIGHT_FAULT_TRIALS="arch=ffn,seed=1")
    )
    assert r.returncode == 0, r.stderr[-3000:]
    progress = [ln for ln in r.stderr.splitlines() if ln.startswith("[distill")]
    assert len(progress) == 4, r.stderr
    assert "eta" in progress[0] and "score" in r.stderr
    assert any("FAILED: RuntimeError: injected fault" in ln for ln in progress)
    db = tmp_path / "runs" / "featherweight.duckdb"
    store = ExperimentStore(db, read_only=True)
    trials = store.query("SELECT * FROM trials WHERE sweep = 'e2e' ORDER BY trial_id")
    assert len(trials) == 4
    failed = trials[trials.status == "error"]
    assert len(failed) == 1 and failed.iloc[0].arch == "ffn" and failed.iloc[0].seed == 1
    assert "injected fault" in failed.iloc[0].error
    ok = store.query("SELECT * FROM trial_results WHERE sweep = 'e2e'")
    assert len(ok) == 3 and (ok.status == "finished").all()
    assert ok.score.between(0, 1).all() and (ok.gzip_bytes > 0).all() and (ok.params > 0).all()
    for path in ok.checkpoint_path:
        assert Path(path).is_file()
    hist = store.query("SELECT count(*) FROM epochs").iloc[0, 0]
    assert hist >= 3  # per-epoch history of the finished trials
    # the CLI query path, read-only, as a user would run it
    q = featherweight(
        "query",
        "--db",
        str(db),
        "--format",
        "json",
        "SELECT arch, count(*) AS n FROM trial_results GROUP BY arch ORDER BY arch",
        cwd=tmp_path,
    )
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout) == [{"arch": "bilstm", "n": 2}, {"arch": "ffn", "n": 1}]
    # a re-run (resume) retries the failed trial only, and does not duplicate finished ones
    r2 = featherweight("sweep", "resume", "e2e", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "3 already finished" in r2.stderr
    rows2 = ExperimentStore(db, read_only=True).query("SELECT * FROM trials WHERE sweep = 'e2e'")
    assert len(rows2) == 4 and rows2.trial_id.is_unique and (rows2.status == "finished").all()


N_KILLED_GRID = 32  # grid points: enough that trials finishing during one slow CLI query never complete the grid


@pytest.mark.parametrize("kill_after", [2, 6])  # kill -9 of the driver early and late in stage 1
def test_resume_after_kill_and_query_while_running(tmp_path, kill_after):
    spec = _spec(tmp_path, "killed", seeds=list(range(N_KILLED_GRID)), archs=("bilstm",), epochs=4)
    db = tmp_path / "runs" / "featherweight.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "sweep", "run", str(spec)],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    queried = False
    try:
        deadline = time.time() + 240
        finished: list = []
        while time.time() < deadline:
            time.sleep(0.3)
            if not db.exists():
                continue
            q = featherweight(
                "query",
                "--db",
                str(db),
                "--format",
                "csv",
                "SELECT trial_id FROM trial_results WHERE status = 'finished'",
                cwd=tmp_path,
            )
            assert q.returncode == 0, q.stderr  # readers get in between the writer's short transactions
            queried = True
            finished = q.stdout.strip().splitlines()[1:]
            if len(finished) >= kill_after:
                break
            assert proc.poll() is None, "sweep ended before it could be killed"
        assert len(finished) >= kill_after, "not enough trials finished in time"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        proc.wait(timeout=30)
    assert queried
    store = ExperimentStore(db, read_only=True)
    before = store.query("SELECT trial_id, finished_at FROM trials WHERE status = 'finished'")
    assert kill_after <= len(before) < N_KILLED_GRID
    r = featherweight("sweep", "resume", "killed", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    # trials recorded in the database, plus any the killed driver had only journaled (none is lost or re-run)
    n_done = int(re.search(r"(\d+) already finished", r.stderr).group(1))
    assert len(before) <= n_done < N_KILLED_GRID
    after = ExperimentStore(db, read_only=True).query("SELECT trial_id, finished_at, status FROM trials")
    assert len(after) == N_KILLED_GRID and after.trial_id.is_unique and (after.status == "finished").all()
    merged = before.merge(after, on="trial_id", suffixes=("_before", "_after"))
    assert (merged.finished_at_before == merged.finished_at_after).all()  # finished trials were not re-run
    status = featherweight("sweep", "status", "killed", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert status.returncode == 0 and "finished" in status.stdout


def test_a_sweep_whose_every_trial_failed_exits_nonzero(tmp_path):
    spec = _spec(tmp_path, "doomed", seeds=[0], archs=("ffn",), epochs=1)
    r = featherweight("sweep", "run", str(spec), cwd=tmp_path, env=cli_env(FEATHERWEIGHT_FAULT_TRIALS="task=synthetic"))
    assert r.returncode == 1, r.stderr[-3000:]
    assert "sweep doomed failed" in r.stderr and "1 of 1 trials failed; first error: RuntimeError: injected" in r.stderr
    st = ExperimentStore(tmp_path / "runs" / "featherweight.duckdb", read_only=True).sweep_status("doomed")
    assert st["status"] == "failed" and st["message"].startswith("1 of 1 trials failed")
    status = featherweight("sweep", "status", "doomed", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert status.returncode == 0 and "failed" in status.stdout and "1 of 1 trials failed" in status.stdout


def test_a_reader_holding_the_database_never_fails_a_trial(tmp_path):
    # A plain read-only DuckDB connection held far longer than the writer's lock wait: results go to the journal
    # and reach the database when the reader lets go; every trial finishes and the sweep exits 0.
    import duckdb

    # 12 trials: the reader takes hold right after the first is recorded, while most are still to come (a 4-trial
    # grid of 1 s trials could finish between the reader's poll and its connect, leaving nothing to wait for)
    n = 12
    spec = _spec(tmp_path, "held", seeds=list(range(n)), archs=("ffn",), epochs=2)
    db = tmp_path / "runs" / "featherweight.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "sweep", "run", str(spec)],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    held, recorded_at_hold = False, None
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not held:
            time.sleep(0.2)
            if not db.exists():
                continue
            try:
                con = duckdb.connect(str(db), read_only=True)
            except duckdb.Error:
                continue  # the writer holds it this instant
            try:
                recorded_at_hold = con.execute("SELECT count(*) FROM trials WHERE sweep = 'held'").fetchone()[0]
                if recorded_at_hold < 1:
                    continue
                held = True
                time.sleep(15)  # longer than any lock wait the writer had before the journal
            finally:
                con.close()
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert held, "the sweep ended before a reader could hold the database"
    assert recorded_at_hold < n, f"all {n} trials were recorded before the reader took hold: nothing had to wait"
    assert proc.returncode == 0, out[-3000:]
    st = ExperimentStore(db, read_only=True).sweep_status("held")
    assert st["status"] == "finished" and st["by_status"] == {"finished": n}, st
    # the slow-down is explained once, naming the reader, and its end once (not once per trial)
    waiting = [ln for ln in out.splitlines() if "results are waiting in" in ln]
    assert len(waiting) == 1, out[-3000:]
    assert waiting[0].startswith("the database is held by another process (") and f"PID {os.getpid()})" in waiting[0]
    assert "journal.jsonl for it to let go" in waiting[0], waiting
    assert sum("the database is free again" in ln for ln in out.splitlines()) == 1, out[-3000:]


N_CTRL_C_GRID = 16


def _pump(stream, lines: queue.Queue) -> None:
    """Move a child's output lines into a queue (then None at its end), so the test can wait on them with a timeout."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def test_ctrl_c_stops_the_sweep_interrupted_and_resume_finishes_it(tmp_path):
    """Ctrl-C (SIGINT to the driver's process group, as a terminal sends it) in stage 1: Tune stops gracefully and
    returns; the sweep must stop there too (no compression stage on a partial grid), exit 130, be recorded
    `interrupted` with how far it got, and a resume must finish both stages."""
    spec = _spec(tmp_path, "ctrlc", seeds=list(range(N_CTRL_C_GRID)), archs=("bilstm",), epochs=4)
    raw = yaml.safe_load(spec.read_text())
    raw["compress"] = {"parents": "skyline", "search": {"num_samples": 1, "max_concurrent": 1}}
    spec.write_text(yaml.safe_dump(raw))
    db = tmp_path / "runs" / "featherweight.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "sweep", "run", str(spec)],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Ctrl-C the moment the second trial's progress line appears, as a user watching it would: polling the database
    # from another process raced the sweep (on a quiet machine it finished during one slow query)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            assert line is not None, "sweep ended before it could be interrupted:\n" + "".join(seen[-40:])
            seen.append(line)
            if re.match(rf"\[distill +2/{N_CTRL_C_GRID} ", line):
                break
        else:
            raise AssertionError("no second trial within 240 s:\n" + "".join(seen[-40:]))
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=180)
        reader.join(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    while not lines.empty():
        seen.append(lines.get_nowait() or "")
    out = "".join(seen)
    assert proc.returncode == 130, out[-3000:]
    assert "interrupted after" in out and "sweep resume ctrlc" in out, out[-3000:]
    store = ExperimentStore(db, read_only=True)
    sweep = store.query("SELECT status, message FROM sweeps WHERE name = 'ctrlc'").iloc[0]
    assert sweep.status == "interrupted" and "distillation trials" in sweep.message
    assert store.query("SELECT count(*) FROM trials WHERE stage = 'compress'").iloc[0, 0] == 0
    r = featherweight("sweep", "resume", "ctrlc", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    store = ExperimentStore(db, read_only=True)
    rows = store.query("SELECT stage, status FROM trials WHERE sweep = 'ctrlc'")
    assert (rows[rows.stage == "distill"].status == "finished").sum() == N_CTRL_C_GRID
    assert (rows.stage == "compress").sum() >= 1
    assert store.query("SELECT status FROM sweeps WHERE name = 'ctrlc'").iloc[0, 0] == "finished"


def _interrupt_at_second_trial(proc: subprocess.Popen, total: int, sig: int, group: bool) -> str:
    """Send ``sig`` (to the process group, or to the driver alone) the moment the second trial's progress line
    appears; returns the whole output once the driver has exited."""
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            assert line is not None, "sweep ended before it could be stopped:\n" + "".join(seen[-40:])
            seen.append(line)
            if re.match(rf"\[distill +2/{total} ", line):
                break
        else:
            raise AssertionError("no second trial within 240 s:\n" + "".join(seen[-40:]))
        (os.killpg if group else os.kill)(proc.pid, sig)
        proc.wait(timeout=180)
        reader.join(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    while not lines.empty():
        seen.append(lines.get_nowait() or "")
    return "".join(seen)


@pytest.mark.parametrize("group", [False, True], ids=["driver", "process-group"])
def test_sigterm_stops_like_ctrl_c_and_the_printed_resume_command_finishes_it(tmp_path, group):
    """`kill PID` of the driver in stage 1 (or of its whole process group, as a service manager or batch scheduler
    does; the local Ray runs in a process group of its own, so it is the driver that stops it, under load too), with
    the spec's own storage (not the default): one clean line saying it
    was terminated and how to resume, exit 143 at once, the sweep recorded `interrupted` with that message; the
    resume command it printed, run exactly as printed from the same directory, removes what the stopped run left
    and finishes the sweep."""
    spec = _spec(tmp_path, "termed", seeds=list(range(N_CTRL_C_GRID)), archs=("bilstm",), epochs=4)
    raw = yaml.safe_load(spec.read_text())
    raw["storage"] = "own runs"  # relative to where the sweep runs, and a name the shell must quote
    spec.write_text(yaml.safe_dump(raw))
    storage = tmp_path / "own runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "sweep", "run", spec.name],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    out = _interrupt_at_second_trial(proc, N_CTRL_C_GRID, signal.SIGTERM, group=group)
    assert proc.returncode == 143, out[-3000:]
    for dump in ("Traceback", "Stack trace", "Fatal Python error", "SIGTERM received", "PC: @", "GCS"):
        assert dump not in out, out[-3000:]
    stopped = [ln for ln in out.splitlines() if ln.startswith("terminated")]
    assert len(stopped) == 1 and stopped[0].startswith("terminated (SIGTERM) "), out[-3000:]
    assert " distillation " in stopped[0] and stopped[0] == out.strip().splitlines()[-1], out[-3000:]
    resume = re.search(r"`([^`]* sweep resume termed [^`]*)` runs the rest", stopped[0])
    assert resume, stopped[0]
    db = storage / "featherweight.duckdb"
    sweep = ExperimentStore(db, read_only=True).query("SELECT status, message FROM sweeps WHERE name = 'termed'")
    assert sweep.status.iloc[0] == "interrupted" and sweep.message.iloc[0] == stopped[0], sweep
    # what a killed run would have left: a half-saved checkpoint, a small teacher half built by a dead process
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftovers = [
        storage / "termed" / "checkpoints" / ".d-0123456789.abcd_123.tmp",
        storage / "termed" / "assets" / "synthetic" / f".teacher.init{dead.pid}",
    ]
    for p in leftovers:
        p.mkdir(parents=True)
    r = subprocess.run(
        shlex.split(resume.group(1)), capture_output=True, text=True, cwd=tmp_path, env=cli_env(), timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "removed 2 temporary file(s)" in r.stderr and not any(p.exists() for p in leftovers), r.stderr[-3000:]
    store = ExperimentStore(db, read_only=True)
    rows = store.query("SELECT status FROM trials WHERE sweep = 'termed'")
    assert len(rows) == N_CTRL_C_GRID and (rows.status == "finished").all()
    assert store.query("SELECT status FROM sweeps WHERE name = 'termed'").iloc[0, 0] == "finished"
