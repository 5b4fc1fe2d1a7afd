"""Nothing lost, nothing let in: resources the Ray cluster cannot give are one error line before anything is
written; a stuck run (trials PENDING, none RUNNING) fails instead of hanging; Tune's own record
(``ExperimentAnalysis``) keeps every run's trials; a recorded local Ray session left by a killed driver is stopped
by its pids only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sweep.spec import SpecError, validate
from sweep.tuner import PendingTimeout, PendingWatch, ResourceError, check_resources, stop_stale_ray

ROOT = Path(__file__).resolve().parents[2]


def _raw(tmp_path: Path, name: str, resources: dict, seeds=(0,)) -> dict:
    return {
        "name": name,
        "storage": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
        "tasks": {"synthetic": {"data_options": {"n_train": 400, "n_dev": 100}}},
        "grid": {"archs": ["ffn"], "embeddings": ["hash"], "dims": [16], "vocab_sizes": [500], "seeds": list(seeds)},
        "training": {"max_epochs": 1, "patience": 1},
        "resources": resources,
    }


def _featherweight(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "sweep.cli", *args], capture_output=True, text=True, cwd=tmp_path, env=e, timeout=300
    )


NODE = {"Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 4.0}}


def test_check_resources_names_what_was_asked_and_what_the_cluster_has():
    check_resources({"cpus_per_trial": 4, "gpus_per_trial": 0}, {"CPU": 4.0}, [NODE])
    with pytest.raises(
        ResourceError,
        match=r"^resources\.cpus_per_trial: 5 CPUs per trial asked, the Ray cluster has "
        r"4 CPUs \(nodes: 10\.0\.0\.1: 4 CPUs\)$",
    ):
        check_resources({"cpus_per_trial": 5, "gpus_per_trial": 0}, {"CPU": 4.0}, [NODE])
    with pytest.raises(ResourceError, match=r"^resources\.gpus_per_trial: 0\.5 GPUs per trial asked, .* has 0 GPUs"):
        check_resources({"cpus_per_trial": 1, "gpus_per_trial": 0.5}, {"CPU": 4.0}, [NODE])
    # enough in all, but no single node has it: a trial must fit on one node; dead nodes do not count
    nodes = [NODE, {**NODE, "NodeManagerAddress": "10.0.0.2"}, {**NODE, "Alive": False, "Resources": {"CPU": 64.0}}]
    with pytest.raises(ResourceError, match=r"has 8 CPUs \(nodes: 10\.0\.0\.1: 4 CPUs, 10\.0\.0\.2: 4 CPUs\) and a"):
        check_resources({"cpus_per_trial": 6, "gpus_per_trial": 0}, {"CPU": 8.0}, nodes)


def test_pending_timeout_is_validated(tmp_path):
    assert validate(_raw(tmp_path, "v", {})).resources["pending_timeout_s"] == 600
    assert validate(_raw(tmp_path, "v", {"pending_timeout_s": 0.5})).resources["pending_timeout_s"] == 0.5
    for bad, msg in ((0, "must be > 0"), (-1, "must be > 0"), ("soon", "expected a finite number")):
        with pytest.raises(SpecError, match=rf"^resources\.pending_timeout_s: .*{msg}"):
            validate(_raw(tmp_path, "v", {"pending_timeout_s": bad}))


def test_pending_watch_times_out_only_when_nothing_runs():
    w = PendingWatch(10, {"cpus_per_trial": 2, "gpus_per_trial": 0})
    running, pending = SimpleNamespace(status="RUNNING"), SimpleNamespace(status="PENDING")
    w.step([running, pending], now=0)
    w.step([running, pending], now=100)  # queued behind a running trial: normal
    assert w.message is None and not w.stopper.stop_all()
    w.step([pending], now=101)
    w.step([pending], now=110)
    assert w.message is None
    w.step([pending], now=112)
    assert w.message and w.message.startswith("resources.pending_timeout_s: trials waited 11s (> 10s)")
    assert w.stopper.stop_all()
    with pytest.raises(PendingTimeout, match="pending_timeout_s"):
        w.raise_if_timed_out()
    assert "lower resources.cpus_per_trial / gpus_per_trial" in w.message
    # a stage with resources keys of its own names them
    t = PendingWatch(
        10, {"cpus_per_trial": 4, "gpus_per_trial": 0}, ("teacher_compression_cpus", "teacher_compression_gpus")
    )
    t.step([pending], now=1)
    t.step([pending], now=12)
    assert "lower resources.teacher_compression_cpus / teacher_compression_gpus" in t.message and "4 CPUs" in t.message


def _hog_the_only_cpu():
    """An actor holding the local Ray's one CPU, so that no trial can start (returned: keep it alive)."""
    import ray

    @ray.remote(num_cpus=1)
    class Hog:
        def ping(self) -> int:
            return 1

    hog = Hog.remote()
    ray.get(hog.ping.remote())
    return hog


@pytest.mark.slow
def test_a_stuck_tune_run_stops_with_pending_timeout(tmp_path):
    """Real Ray: the cluster's CPUs are held by another actor, so the trial stays PENDING; the run stops."""
    import ray
    from ray import tune

    from sweep.tuner import build_tuner, init_ray

    init_ray(None, {"num_cpus": 1})
    try:
        hog = _hog_the_only_cpu()  # noqa: F841 (held until ray.shutdown)

        def trainable(config):
            tune.report({"score": 1.0})

        res = {"cpus_per_trial": 1, "gpus_per_trial": 0, "pending_timeout_s": 2}
        tuner = build_tuner(
            trainable, resources=res, param_space={}, storage_path=tmp_path / "tune", name="stuck", callbacks=[]
        )
        with pytest.raises(PendingTimeout, match="none running"):
            tuner.fit()
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_a_stuck_sweep_is_marked_failed_with_the_message(tmp_path):
    """Through the runner: the trial cannot start (another actor holds the CPU), the sweep ends 'failed' with the
    pending_timeout_s message, and the error reaches the caller (the CLI prints it as one line, exit 2)."""
    import ray

    from db.store import ExperimentStore
    from sweep.runner import run_sweep
    from sweep.tuner import init_ray

    spec = validate(_raw(tmp_path, "stuck", {"num_cpus": 1, "pending_timeout_s": 2}))
    init_ray(None, spec.resources)
    try:
        hog = _hog_the_only_cpu()  # noqa: F841 (held until ray.shutdown)
        with pytest.raises(PendingTimeout, match="none running") as raised:
            run_sweep(spec, say=lambda s: None)
    finally:
        ray.shutdown()
    st = ExperimentStore(spec.database, read_only=True).sweep_status("stuck")
    assert st["status"] == "failed" and st["message"].startswith("resources.pending_timeout_s: trials waited")
    # the message ends with the command that resumes this sweep, storage included, as it can be run
    assert st["message"] == str(raised.value)
    assert st["message"].endswith(f"sweep resume stuck --storage {spec.raw['storage']}`"), st["message"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "resources, message",
    [
        (
            {"num_cpus": 2, "cpus_per_trial": 4},
            "error: resources.cpus_per_trial: 4 CPUs per trial asked, the Ray cluster has 2 CPUs (nodes: ",
        ),
        (
            {"num_cpus": 2, "num_gpus": 0, "gpus_per_trial": 1},
            "error: resources.gpus_per_trial: 1 GPU per trial asked, the Ray cluster has 0 GPUs (nodes: ",
        ),
    ],
)
def test_unsatisfiable_resources_fail_before_anything_is_written(tmp_path, resources, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_raw(tmp_path, "greedy", resources)))
    r = _featherweight(tmp_path, "sweep", "run", str(spec))
    assert r.returncode == 2, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), r.stderr
    assert not (tmp_path / "runs").exists()  # no database, no storage directory, no spec copy


@pytest.mark.slow
def test_tune_record_keeps_every_run(tmp_path):
    """A run with a failed trial, then a resume that re-runs it: Tune's JSON/CSV results are written per run, and
    ExperimentAnalysis over every experiment directory gives one row per trial of every run."""
    from ray.tune import ExperimentAnalysis

    from sweep.tuner import tune_experiment_dirs

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_raw(tmp_path, "rec", {"num_cpus": 2}, seeds=(0, 1))))
    r = _featherweight(tmp_path, "sweep", "run", str(spec), FEATHERWEIGHT_FAULT_TRIALS="seed=1")
    assert r.returncode == 0, r.stderr[-3000:]
    r = _featherweight(tmp_path, "sweep", "resume", "rec", "--storage", str(tmp_path / "runs"))
    assert r.returncode == 0 and "1 already finished" in r.stderr, r.stderr[-3000:]
    sweep_dir = tmp_path / "runs" / "rec"
    dirs = tune_experiment_dirs(sweep_dir)
    assert [d.name for d in dirs] == ["run1-distill", "run2-distill"]
    frames = [ExperimentAnalysis(str(d)).dataframe() for d in dirs]
    assert [len(f) for f in frames] == [2, 1]
    assert sorted(frames[0]["config/trial/seed"]) == [0, 1] and list(frames[1]["config/trial/seed"]) == [1]
    assert frames[0]["fw_outcome"].map(lambda s: json.loads(s)["status"]).tolist().count("error") == 1
    session = json.loads((sweep_dir / "ray_session.json").read_text())
    assert session["session_name"].startswith("session_") and session["pids"] and session["gcs_address"]


def test_stop_stale_ray_stops_only_the_recorded_session(tmp_path):
    session = "session_2099-01-01_00-00-00_000000_1"
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    ours = subprocess.Popen([*sleeper, f"--session-dir=/tmp/ray/{session}"])
    other = subprocess.Popen([*sleeper, "--session-dir=/tmp/ray/session_other"])  # a pid recorded, then reused
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "ray_session.json"
    try:
        # the driver is still alive: nothing is touched
        path.write_text(json.dumps({"session_name": session, "driver_pid": ours.pid, "pids": [ours.pid]}))
        assert stop_stale_ray(path, say=lambda s: None) == []
        # the driver is gone: only the processes whose command line names the session are stopped
        path.write_text(json.dumps({"session_name": session, "driver_pid": dead.pid, "pids": [ours.pid, other.pid]}))
        said: list[str] = []
        assert stop_stale_ray(path, say=said.append) == [ours.pid]
        assert ours.wait(timeout=10) != 0 and other.poll() is None
        assert said and session in said[0]
        assert stop_stale_ray(tmp_path / "missing.json") == []
    finally:
        for p in (ours, other):
            p.kill()
            p.wait()
