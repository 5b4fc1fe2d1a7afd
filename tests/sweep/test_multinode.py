"""A sweep on a Ray cluster it joins (``--address``): trials spread over the nodes and record which one ran them, only
the driver touches the database, a node that dies mid-sweep loses nothing; and a bad address is one error line."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from db.store import ExperimentStore
from sweep.spec import load_spec
from sweep.tuner import ClusterError, check_address

ROOT = Path(__file__).resolve().parents[2]
N_TRIALS = 6


def _spec(tmp_path: Path, **top) -> Path:
    raw = {
        "name": "multi",
        "storage": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
        "tasks": {"synthetic": {"data_options": {"n_train": 3000, "n_dev": 200}}},
        "grid": {
            "archs": ["bilstm"],
            "embeddings": ["hash"],
            "dims": [16],
            "vocab_sizes": [500],
            "alphas": [1.0],
            "seeds": list(range(N_TRIALS)),
        },
        "training": {"max_epochs": 1, "patience": 1},
        "resources": {"cpus_per_trial": 1},
        **top,
    }
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _featherweight(tmp_path: Path, *args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweep.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=timeout,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- a bad address: one line, exit 2, nothing written --------------------------------------------------------------


def test_check_address_names_the_bad_value():
    for bad, match in (
        (None, "expected HOST:PORT"),
        ("", "expected HOST:PORT"),
        ("nonsense", "'nonsense': expected"),
        ("host:port", "expected HOST:PORT"),
        ("ray://10.0.0.5:10001", "Ray Client .* not supported"),
        ("10.0.0.5:99999", "expected HOST:PORT"),
        ("no-such-host.invalid:6379", "unknown host 'no-such-host.invalid'"),
        (f"127.0.0.1:{_free_port()}", "cannot reach a Ray head at 127.0.0.1:"),
    ):
        with pytest.raises(ClusterError, match=match):
            check_address(bad, timeout_s=2)
    check_address("auto")  # left to Ray


def test_a_bad_address_is_one_error_line(tmp_path):
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    r = _featherweight(tmp_path, "sweep", "run", str(_spec(tmp_path)), "--address", address)
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.strip().splitlines() == [
        f"error: address '{address}': cannot reach a Ray head at {address} (Connection refused; start one with "
        f"`ray start --head --port={address.rsplit(':', 1)[1]}`)"
    ]
    assert not (tmp_path / "runs").exists()  # nothing written
    r = _featherweight(tmp_path, "sweep", "run", str(_spec(tmp_path, address="head-node")))  # the spec's address
    assert r.returncode == 2, r.stderr[-3000:]
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: address 'head-node': expected")
    assert not (tmp_path / "runs").exists()


# ---- a two-node cluster on this machine ----------------------------------------------------------------------------


def _worker_processes(node) -> dict[int, str]:
    """``{pid: memory map}`` of the Python processes the node's raylet started (its Ray workers: trial actors)."""
    import psutil

    raylet = node.all_processes["raylet"][0].process.pid
    out = {}
    for p in psutil.Process(raylet).children(recursive=True):
        try:
            out[p.pid] = Path(f"/proc/{p.pid}/maps").read_text()
        except OSError:  # exited meanwhile
            continue
    return out


def _journal_node_ids(journal: Path) -> list[str | None]:
    if not journal.is_file():
        return []
    lines = journal.read_text().splitlines(keepends=True)
    return [json.loads(ln).get("node_id") for ln in lines if ln.endswith("\n")]


@pytest.mark.slow
def test_sweep_on_a_two_node_cluster_survives_losing_a_node(tmp_path, monkeypatch):
    from ray.cluster_utils import Cluster

    from sweep.tuner import quiet_ray_env

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the nodes' workers import trainables
    before = set(os.environ)
    quiet_ray_env()  # the nodes get the settings a local Ray of the sweep would
    for key in set(os.environ) - before:
        monkeypatch.setenv(key, os.environ.pop(key))  # undone after the test
    # one CPU per node and one per trial: two trials at a time, one on each node
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    proc = None
    try:
        head = cluster.head_node
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        spec_path = _spec(tmp_path)
        journal = tmp_path / "runs" / "multi" / "journal.jsonl"
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweep.cli", "sweep", "run", str(spec_path), "--address", cluster.address],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # wait until the worker node has finished a trial: its (reused) trial actor then runs the next one
        deadline = time.time() + 150
        while worker.node_id not in _journal_node_ids(journal):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.time() < deadline, "no trial finished on the worker node"
            time.sleep(0.2)
        time.sleep(1.0)
        assert len(_journal_node_ids(journal)) < N_TRIALS - 1, "too few trials left to lose one with the node"
        # only the driver writes the database: the nodes' trial processes (torch loaded) never load duckdb
        for node in (worker, head):
            procs = _worker_processes(node)
            trial_procs = [pid for pid, maps in procs.items() if "libtorch" in maps]
            assert trial_procs, f"no trial process found on node {node.node_id[:8]}"
            assert not [pid for pid, maps in procs.items() if "duckdb" in maps]
        cluster.remove_node(worker, allow_graceful=False)  # the node dies with the trial it runs
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode in (0, 1), out[-3000:]
        ids = {t.trial_id for t in load_spec(spec_path).distill_trials()}
        db = tmp_path / "runs" / "featherweight.duckdb"
        trials = ExperimentStore(db, read_only=True).query("SELECT trial_id, status, error FROM trials")
        if not (trials.status == "finished").all():  # retries exhausted: recorded with the reason, then resumed
            assert trials[trials.status == "error"].error.notna().all()
            r = _featherweight(
                tmp_path,
                "sweep",
                "resume",
                "multi",
                "--storage",
                str(tmp_path / "runs"),
                "--address",
                cluster.address,
                timeout=180,
            )
            assert r.returncode == 0, r.stderr[-3000:]
        store = ExperimentStore(db, read_only=True)
        done = store.query("SELECT trial_id, node_id, host, device, torch_version FROM trial_results")
        assert sorted(done.trial_id) == sorted(ids)  # every grid point exactly one finished row
        assert store.query("SELECT count(*) AS n FROM trials")["n"][0] == N_TRIALS
        assert {head.node_id, worker.node_id} <= set(done.node_id)  # both nodes ran trials
        assert (done.device == "cpu").all() and done.host.notna().all() and done.torch_version.notna().all()
        # the trial the node took with it was retried (Tune counts the failure) rather than lost
        state = max((tmp_path / "runs" / "multi" / "tune").glob("run1-distill/experiment_state-*.json")).read_text()
        failures = [int(n) for n in re.findall(r'num_failures\\*"\s*:\s*(\d+)', state)]
        assert len(failures) == N_TRIALS and sum(failures) >= 1, "no trial died with the node"
        # the checkpoints, written by whichever node ran the trial, are where the rows say (a shared path here)
        paths = store.query("SELECT checkpoint_path FROM trial_results").checkpoint_path
        assert all(Path(p).is_file() for p in paths)
        assert not list((tmp_path / "runs").glob(".featherweight-node-check-*"))  # the shared-storage check cleaned up
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        cluster.shutdown()


def _can_unshare_mounts() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_unshare_mounts(), reason="needs root and unshare(1) to hide the storage from one node")
def test_a_node_that_cannot_see_the_storage_is_one_error_line(tmp_path, monkeypatch):
    """The second node runs in its own mount namespace with an empty tmpfs over the storage: it sees the path, but not
    the driver's files, as a node without the shared filesystem would."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    storage = tmp_path / "runs"
    storage.mkdir()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    node = None
    try:
        ports = " ".join(
            f"--{k}={_free_port()}"
            for k in (
                "dashboard-agent-listen-port",
                "dashboard-agent-grpc-port",
                "runtime-env-agent-port",
                "metrics-export-port",
                "node-manager-port",
                "object-manager-port",
            )
        )
        ray_bin = Path(sys.executable).with_name("ray")
        node = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount -t tmpfs tmpfs '{storage}' && exec '{ray_bin}' start --address={cluster.address} --num-cpus=1"
                f" {ports} --disable-usage-stats --block",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.time() + 90
        while len([n for n in cluster.global_state.node_table() if n["Alive"]]) < 2:
            assert node.poll() is None and time.time() < deadline, "the second node did not join"
            time.sleep(0.5)
        r = _featherweight(tmp_path, "sweep", "run", str(_spec(tmp_path)), "--address", cluster.address, timeout=180)
        assert r.returncode == 2, r.stderr[-3000:]
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: storage {storage}: not shared with every node"), lines
        assert "cannot see it" in lines[0]
        assert sorted(p.name for p in storage.iterdir()) == []  # nothing written: no database, no spec, no marker
    finally:
        if node is not None and node.poll() is None:
            node.terminate()  # ray start --block stops its node's processes
            node.wait(timeout=60)
        cluster.shutdown()
