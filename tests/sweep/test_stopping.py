"""How a sweep stops and starts again, without training anything: the commands it prints work as printed, a resume
removes what a killed run left (and keeps what a live process owns), one driver per sweep, the database path and a
teacher-compression grid checked before anything starts."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from analysis.views import open_store
from featherweight_core.errors import OutputError
from sweep.runner import SweepLock, run_sweep
from sweep.spec import SpecError, validate
from sweep.stages.teacher_compression import check_teacher_compression_grid
from sweep.stopping import db_command, resume_command
from tests.fakes import make_record

ROOT = Path(__file__).resolve().parents[2]


def _raw(storage: str, **top) -> dict:
    return {
        "name": "st",
        "storage": storage,
        "tasks": {"synthetic": {"data_options": {"n_train": 100, "n_dev": 50}}},
        "grid": {"archs": ["ffn"], "embeddings": ["hash"], "dims": [8], "vocab_sizes": [100], "seeds": [0, 1]},
        "training": {"max_epochs": 1},
        **top,
    }


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweep.cli", *args], capture_output=True, text=True, cwd=cwd, env=_env(), timeout=300
    )


def _finished_sweep(tmp_path: Path, storage: str = "elsewhere/st"):
    """A sweep whose every distillation trial has a finished row (written directly: nothing trains), its spec
    saved as a run saves it. Paths in the spec are relative to ``tmp_path``, where the commands run."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        spec = validate(_raw(storage), check_files=False)
        store = open_store(spec.database)
        store.start_sweep(spec.name, spec.raw, "test", str(spec.storage / spec.name))
        for t in spec.distill_trials():
            store.record_trial(make_record(sweep=spec.name, trial_id=t.trial_id, task="synthetic"))
        store.finish_sweep(spec.name, "finished")
        (spec.storage / spec.name).mkdir(parents=True, exist_ok=True)
        (spec.storage / spec.name / "spec.yaml").write_text(yaml.safe_dump(spec.raw, sort_keys=False))
    finally:
        os.chdir(cwd)
    return spec


# ---- commands the sweep prints ---------------------------------------------------------------------------------------


def test_printed_commands_name_a_storage_and_database_that_are_not_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEATHERWEIGHT_DB", raising=False)
    default = validate(_raw("runs"), check_files=False)
    assert resume_command(default).endswith(" sweep resume st")
    assert db_command(default, "sync").endswith(" db sync")
    own = validate(_raw("my runs/x"), check_files=False)
    assert resume_command(own).endswith(" sweep resume st --storage 'my runs/x'")
    assert db_command(own, "sync").endswith(" db sync --db 'my runs/x/featherweight.duckdb'")
    home = validate(_raw("~/fw-runs", database="~/fw.duckdb"), check_files=False)
    assert resume_command(home).endswith(f" sweep resume st --storage {Path('~/fw-runs').expanduser()}")
    assert db_command(home, "sync").endswith(f" db sync --db {Path('~/fw.duckdb').expanduser()}")


def test_the_printed_resume_command_finds_the_sweep(tmp_path):
    """Run exactly what the sweep would print, from where it ran (a storage of its own, not the default)."""
    spec = _finished_sweep(tmp_path)
    argv = shlex.split(resume_command(spec))
    assert argv[-2:] == ["--storage", "elsewhere/st"]
    i = argv.index("sweep")  # the program as printed (an environment's path or `featherweight`): run this Python's
    r = subprocess.run(
        [sys.executable, "-m", "sweep.cli", *argv[i:]], capture_output=True, text=True, cwd=tmp_path, env=_env()
    )
    assert r.returncode == 0 and "nothing to do" in r.stderr, r.stderr


# ---- leftovers of a killed run -------------------------------------------------------------------------------------


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _killed_inside(code: str) -> None:
    """Run ``code`` (which ends in os._exit inside a write) in a child process: the temporaries it leaves are the
    real ones, named by the real code."""
    subprocess.run([sys.executable, "-c", code], check=False, env=_env(), timeout=120)


def test_a_resume_removes_what_a_killed_run_left_and_keeps_a_live_process_s(tmp_path):
    _finished_sweep(tmp_path)
    sweep_dir = tmp_path / "elsewhere" / "st" / "st"
    ckpts, task_assets = sweep_dir / "checkpoints", sweep_dir / "assets" / "synthetic"
    (ckpts / "d-0123456789").mkdir(parents=True)
    (ckpts / "d-0123456789" / "student.pt").write_bytes(b"kept")
    task_assets.mkdir(parents=True)
    # a trial killed while saving its model; a spec copy killed while being written
    _killed_inside(
        "import os\nfrom featherweight_core.atomic import atomic_dir\n"
        f"with atomic_dir({str(ckpts / 't-0123456789')!r}) as d:\n    os._exit(0)\n"
    )
    _killed_inside(
        "import os\nfrom featherweight_core.atomic import atomic_write\n"
        f"atomic_write({str(sweep_dir / 'assets' / 'x.parquet')!r}, lambda tmp: os._exit(0), suffix='.parquet')\n"
    )
    tmp_dirs = [p for p in ckpts.iterdir() if p.name.startswith(".t-0123456789.")]
    tmp_files = [p for p in (sweep_dir / "assets").iterdir() if p.name.startswith(".x.parquet.")]
    assert len(tmp_dirs) == 1 and tmp_dirs[0].name.endswith(".tmp") and len(tmp_files) == 1
    # a small teacher being built by a process that died, and one a live process is building; progress files
    dead = task_assets / f".teacher-abc123.init{_dead_pid()}"
    live = task_assets / f".teacher-def456.init{os.getpid()}"
    for d in (dead, live):
        d.mkdir()
        (d / "config.json").write_text("{}")
    progress = [task_assets / ".soft_targets-abc123.progress", task_assets / ".teacher-abc123.progress"]
    for p in progress:
        p.write_text("labelling 10/100\n")
    tune_own = sweep_dir / "tune" / "run1-distill" / ".something.abcdefgh.tmp"  # Tune's directory: not ours
    tune_own.mkdir(parents=True)
    keep = [ckpts / "d-0123456789" / "student.pt", live, tune_own, sweep_dir / "spec.yaml"]

    r = _cli("sweep", "resume", "st", "--storage", "elsewhere/st", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "removed 5 temporary file(s) an earlier, stopped run left" in r.stderr, r.stderr
    for p in [*tmp_dirs, *tmp_files, dead, *progress]:
        assert not p.exists(), p
    for p in keep:
        assert p.exists(), p


def test_one_driver_per_sweep(tmp_path):
    _finished_sweep(tmp_path)
    lock = SweepLock(tmp_path / "elsewhere" / "st" / "st", "st")
    lock.acquire()
    try:
        r = _cli("sweep", "resume", "st", "--storage", "elsewhere/st", cwd=tmp_path)
    finally:
        lock.release()
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: sweep st: another driver (PID {os.getpid()}) is running it"), r.stderr
    r = _cli("sweep", "resume", "st", "--storage", "elsewhere/st", cwd=tmp_path)
    assert r.returncode == 0 and "nothing to do" in r.stderr, r.stderr


# ---- checked before Ray starts ---------------------------------------------------------------------------------------


def test_a_database_that_is_a_directory_stops_the_sweep_before_anything_is_written(tmp_path):
    (tmp_path / "d").mkdir()
    spec = validate(_raw(str(tmp_path / "runs"), database=str(tmp_path / "d")), check_files=False)
    with pytest.raises(OutputError, match="is a directory"):
        run_sweep(spec, say=lambda s: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"] and not any((tmp_path / "d").iterdir())


@pytest.mark.parametrize(
    ("teacher", "tc", "message"),
    [
        ("small", {"theseus": {"r": 3}}, "teacher_compression.theseus.replace_rate: 3 does not divide the 2 layers"),
        ({"model": "small"}, {"bertvision": {"layers": [1, 3]}}, "teacher_compression.bertvision.layers: 3 is more"),
    ],
)
def test_a_grid_that_cannot_fit_a_teacher_still_to_build_fails_before_it_is_built(tmp_path, teacher, tc, message):
    spec = validate(
        {**_raw(str(tmp_path / "runs")), "tasks": {"synthetic": {"teacher": teacher}}, "teacher_compression": tc},
        check_files=False,
    )
    with pytest.raises(SpecError) as e:
        check_teacher_compression_grid(spec)
    assert str(e.value).startswith(message) and "small teacher" in str(e.value)
    with pytest.raises(SpecError):
        run_sweep(spec, say=lambda s: None)
    assert not (tmp_path / "runs").exists()  # nothing built, nothing written


def test_a_grid_that_cannot_fit_a_local_model_to_fine_tune_fails_validation(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert", "num_hidden_layers": 4}')
    raw = {
        **_raw("runs"),
        "tasks": {"synthetic": {"teacher": {"model": str(model), "finetune": {"epochs": 1}}}},
        "teacher_compression": {"theseus": {"r": [2, 3]}},
    }
    import yaml

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    r = _cli("sweep", "validate", "s.yaml", cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0] == (
        f"error: teacher_compression.theseus.replace_rate: 3 does not divide the 4 layers of task synthetic's"
        f" teacher ({model}) into blocks"
    )


# ---- a reader holding the database -----------------------------------------------------------------------------------


def test_a_reader_holding_the_database_is_said_once_per_sweep_with_its_name(tmp_path):
    """A real read-only DuckDB connection from another process holds the file: the callbacks of every stage keep
    their rows in the journal, and the sweep says so once (naming the holder), then once when they are written."""
    from sweep.callback import DatabaseCallback, journal_notice

    db = tmp_path / "f.duckdb"
    open_store(db).start_sweep("s", {}, "test", str(tmp_path))
    said: list[str] = []
    journal_notice(tmp_path / "journal.jsonl", said.append)  # the runner's, at the start of the sweep
    hold = f"import duckdb, sys; c = duckdb.connect({str(db)!r}, read_only=True); print('ready', flush=True); sys.stdin.read()"
    reader = subprocess.Popen([sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"
        stages = [DatabaseCallback(db, None, None, tmp_path / "journal.jsonl") for _ in range(2)]  # one per stage
        for n, cb in enumerate(stages):
            cb.LOCK_WAIT_S = 0.2
            for i in range(3):  # what _write does with each finished trial
                rec = make_record(sweep="s", trial_id=f"d-{n}{i}")
                cb.journal.append(rec)
                cb.pending.append(rec)
                cb.flush()
            assert len(cb.pending) == 3
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    for cb in stages:
        cb.flush()
    assert all(not cb.pending for cb in stages)
    waiting = [s for s in said if "results are waiting in" in s]
    assert len(waiting) == 1 and f"PID {reader.pid})" in waiting[0], said
    assert sum("the database is free again" in s for s in said) == 1, said
    assert len(said) == 2, said


def test_the_local_rays_processes_start_in_a_process_group_of_their_own():
    """A SIGTERM to the driver's process group must not reach the local Ray's processes (the raylet dying mid-stop
    ends the driver from native code, exit 1, before the sweep is recorded): they are started through Ray's own
    process launcher in a group of their own, with Ray's parent-death fate sharing kept; the launcher is put back
    afterwards."""
    import ray._private.services as services
    from ray._private.utils import detect_fate_sharing_support

    from sweep.tuner import ray_processes_in_own_group

    if not detect_fate_sharing_support():
        pytest.skip("this kernel has no parent-death signal: Ray's reaper needs its processes in the driver's group")
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    before = services.ConsolePopen
    with ray_processes_in_own_group():
        own = services.start_ray_process(sleeper, "test", fate_share=True).process
    plain = services.start_ray_process(sleeper, "test", fate_share=True).process  # outside the block: Ray's default
    try:
        assert services.ConsolePopen is before
        assert os.getpgid(own.pid) == own.pid != os.getpgid(0)
        assert os.getpgid(plain.pid) == os.getpgid(0)
    finally:
        for p in (own, plain):
            p.kill()
            p.wait(timeout=60)
