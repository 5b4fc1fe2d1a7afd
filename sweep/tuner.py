"""Ray set-up, the resource check, the record of a local Ray session, and the one Tuner builder both stages use."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from featherweight_core.atomic import write_text_atomic
from featherweight_core.errors import UserError
from sweep.stopping import reclaim_sigterm
from trainables.checkpoints import CHECKPOINT_ROOT

log = logging.getLogger("featherweight.sweep")


class ResourceError(UserError):
    """The spec's ``resources`` ask for more than the Ray cluster has, or a trial waited too long for them."""


class PendingTimeout(ResourceError):
    """A trial stayed PENDING (waiting for CPUs/GPUs) longer than ``resources.pending_timeout_s``."""


def quiet_ray_env() -> None:
    """Ray's console noise off by default (its new console output, dashboards, log deduplication, auto loggers: the
    JSON/CSV loggers are added explicitly by :func:`build_tuner`, without TensorBoard's)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # a local Ray prestarts one idle worker per CPU, which Tune's trial actors do not use (they start their own):
    # ~0.6 CPU-s each for nothing (bench/bench_overhead.py)
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")


class ClusterError(UserError):
    """The Ray cluster to join (``--address`` or the spec's ``address``) is malformed or cannot be reached."""


CONNECT_TIMEOUT_S = 5.0
# Tune retries a trial whose worker or node died (system failures: application errors are caught inside the trainables
# and recorded) this many times, on any node with room, before it is recorded as failed
MAX_FAILURES = 2


def check_address(address: object, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`ClusterError` unless ``address`` is ``auto`` or a ``HOST:PORT`` something listens on (Ray itself
    would retry an unreachable address for minutes). ``auto`` is left to Ray (it finds a cluster started on this
    machine, or says there is none). Ray Client addresses (``ray://``) are refused: through them Tune would run the
    sweep's callbacks, the database's only writer, on the head node instead of in this process."""
    import socket

    expected = "HOST:PORT of the Ray head (e.g. 10.0.0.5:6379, as `ray start --head --port=6379` prints) or auto"
    if not isinstance(address, str) or not address.strip():
        raise ClusterError(f"address: expected {expected}, got {address!r}")
    if address == "auto":
        return
    if address.startswith("ray://"):
        raise ClusterError(
            f"address {address!r}: Ray Client (ray://) is not supported; run the sweep on a machine that reaches the"
            f" head's port and give {expected}"
        )
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"address {address!r}: expected {expected}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except socket.gaierror as e:
        raise ClusterError(f"address {address!r}: unknown host {host!r} ({e.strerror})") from e
    except TimeoutError as e:
        raise ClusterError(f"address {address!r}: no answer from {host}:{port} within {timeout_s:g} s") from e
    except OSError as e:
        raise ClusterError(
            f"address {address!r}: cannot reach a Ray head at {host}:{port} ({e.strerror or e};"
            f" start one with `ray start --head --port={port}`)"
        ) from e


@contextlib.contextmanager
def ray_processes_in_own_group() -> Iterator[None]:
    """Start the local Ray's processes (GCS, raylet, and through the raylet the trial workers) in a process group of
    their own, as Ray itself does on Windows. A SIGTERM sent to the driver's process group (a service manager, a batch
    scheduler, ``kill -TERM -PGID``) then reaches the driver alone, which stops the sweep as on Ctrl-C and shuts its
    Ray down itself; were Ray's processes hit too, the raylet would die mid-stop and Ray's native code end the driver
    with exit 1 before the sweep is recorded. Ray still ends these processes with the driver: they are started with
    the kernel's parent-death signal (Ray's fate sharing), so this is done only where Ray detects that support (else
    Ray's reaper cleans up by process group, which must stay the driver's)."""
    try:
        import ray._private.services as services
        from ray._private.utils import detect_fate_sharing_support

        base = services.ConsolePopen
        supported = sys.platform.startswith("linux") and detect_fate_sharing_support()
    except (ImportError, AttributeError):  # another Ray layout: leave its processes where Ray puts them
        supported = False
    if not supported:
        yield
        return

    class OwnGroupPopen(base):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("process_group", 0)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnGroupPopen
    try:
        yield
    finally:
        services.ConsolePopen = base


def init_ray(address: str | None, resources: dict[str, Any], verbose: bool = False) -> bool:
    """Join ``address`` (an existing cluster: :class:`ClusterError` when it is malformed or unreachable) or start a
    local Ray of its own with the spec's ``num_cpus`` / ``num_gpus`` (never a cluster already running on this machine).
    Returns True when this call started Ray."""
    import ray

    quiet_ray_env()
    if ray.is_initialized():
        return False
    level = logging.INFO if verbose else logging.ERROR
    kwargs: dict[str, Any] = {"logging_level": level, "log_to_driver": verbose, "include_dashboard": False}
    if address:
        check_address(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:  # no cluster there, a version mismatch, ...
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ClusterError(f"address {address!r}: could not join the Ray cluster: {first}") from e
    else:
        # Ray starts its workers at nice 15, so any other load on the machine starves the trials (the demo took 8 min
        # instead of under 2 with the other core busy); a sweep is the job its user waits for: normal priority,
        # unless RAY_worker_niceness says otherwise. Only a Ray started here reads it (not a cluster joined).
        os.environ.setdefault("RAY_worker_niceness", "0")
        # "local": always a fresh Ray of this sweep's own, never a cluster that `ray start` (or another sweep's
        # test) happens to run on this machine; joining one is what --address / the spec's address are for
        with ray_processes_in_own_group():
            ray.init(address="local", num_cpus=resources.get("num_cpus"), num_gpus=resources.get("num_gpus"), **kwargs)
    reclaim_sigterm()  # ray.init installed its own SIGTERM handlers (exit 15, after a native stack dump)
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)
    return True


def check_shared_storage(storage: Path, timeout_s: float = 60.0) -> None:
    """On a cluster of several nodes, raise :class:`ClusterError` when a node does not see ``storage`` at the same path:
    trials write their checkpoints there and stage tasks their assets, on whichever node runs them, and the driver
    (and the compression trials of stage 2, on any node) read them back. The driver writes a marker file there and
    asks every alive node (a zero-CPU Ray task pinned to it) to read it; a node that does not answer within
    ``timeout_s`` is not held against the sweep."""
    import uuid

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2:
        return
    token = uuid.uuid4().hex
    marker = Path(storage).resolve() / f".featherweight-node-check-{token}"
    marker.write_text(token)

    def read(path: str) -> str | None:  # runs on the node (shipped by value: the node needs no featherweight import)
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return None

    try:
        task = ray.remote(num_cpus=0, max_retries=0)(read)
        refs = {
            n["NodeID"]: task.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(marker))
            for n in nodes
        }
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
        blind = []
        for n in nodes:
            ref = refs[n["NodeID"]]
            if ref in ready:
                try:
                    seen = ray.get(ref)
                except ray.exceptions.RayError:  # the node died meanwhile: not this check's business
                    continue
                if seen != token:
                    blind.append(f"{n.get('NodeManagerAddress', '?')} (node {n['NodeID'][:8]})")
    finally:
        marker.unlink(missing_ok=True)
    if blind:
        raise ClusterError(
            f"storage {storage}: not shared with every node of the Ray cluster ({', '.join(blind)} cannot see it);"
            " trials write their checkpoints there on the node that runs them, so on a cluster the storage must be a"
            " filesystem every node mounts at the same path (NFS or similar)"
        )


def _amount(n: float, unit: str) -> str:
    n = int(n) if float(n).is_integer() else n
    return f"{n} {unit}{'' if n == 1 else 's'}"


def check_resources(resources: dict[str, Any], cluster: dict[str, float], nodes: list[dict]) -> None:
    """Raise :class:`ResourceError` when one trial's CPUs or GPUs fit on no node of the cluster. ``cluster`` is
    ``ray.cluster_resources()``, ``nodes`` is ``ray.nodes()`` (dead nodes are ignored)."""
    alive = [n for n in nodes if n.get("Alive", True)]
    for key, ray_key, unit in (("cpus_per_trial", "CPU", "CPU"), ("gpus_per_trial", "GPU", "GPU")):
        asked = float(resources.get(key) or 0)
        if asked <= 0:
            continue
        per_node = [float((n.get("Resources") or {}).get(ray_key, 0)) for n in alive]
        if per_node and max(per_node) >= asked:
            continue
        total = float(cluster.get(ray_key, 0))
        where = ", ".join(
            f"{n.get('NodeManagerAddress', '?')}: {_amount(c, unit)}" for n, c in zip(alive, per_node, strict=True)
        )
        fit = " and a trial must fit on one node" if total >= asked else ""
        raise ResourceError(
            f"resources.{key}: {_amount(asked, unit)} per trial asked, the Ray cluster has {_amount(total, unit)}"
            f" (nodes: {where or 'none'}){fit}"
        )


def check_cluster_resources(resources: dict[str, Any]) -> None:
    """:func:`check_resources` against the running Ray cluster."""
    import ray

    check_resources(resources, ray.cluster_resources(), ray.nodes())


# ---- the record of a local Ray session (so a resume can stop what a killed driver left) ----------------------------

SESSION_FILE = "ray_session.json"


def record_ray_session(path: Path) -> None:
    """Write the local Ray session this driver started (session name and dir, node id, GCS address, the pids of
    Ray's processes, the driver's pid) to ``path``."""
    import ray

    node = ray._private.worker.global_worker.node
    pids = sorted({p.process.pid for procs in node.all_processes.values() for p in procs if p.process is not None})
    info = {
        "session_name": node.session_name,
        "session_dir": node.get_session_dir_path(),
        "node_id": node.node_id,
        "gcs_address": node.gcs_address,
        "driver_pid": os.getpid(),
        "pids": pids,
        "started_at": time.time(),
    }
    write_text_atomic(path, json.dumps(info, indent=1))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_stale_ray(path: Path, say=print) -> list[int]:
    """Stop the processes of the local Ray session recorded in ``path`` when its driver is gone: only the recorded
    pids whose command line still names the recorded session (a reused pid is left alone). Returns the pids sent
    SIGTERM (then SIGKILL after 5 s if still there)."""
    try:
        info = json.loads(path.read_text())
        session, pids, driver = str(info["session_name"]), [int(p) for p in info["pids"]], int(info["driver_pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not session.startswith("session_") or driver == os.getpid():
        return []
    if driver and Path(f"/proc/{driver}").exists() and "python" in _cmdline(driver):
        return []  # the driver still runs (another run of this sweep?): its Ray is not stale
    stale = [p for p in pids if p != os.getpid() and session in _cmdline(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in stale:
            with contextlib.suppress(OSError):
                os.kill(p, sig)
        deadline = time.time() + 5
        while time.time() < deadline and any(session in _cmdline(p) for p in stale):
            time.sleep(0.2)
        if not any(session in _cmdline(p) for p in stale):
            break
    if stale:
        say(f"stopped {len(stale)} process(es) of Ray session {session} left by a previous run")
    return stale


# ---- Tune ----------------------------------------------------------------------------------------------------------


class PendingWatch:
    """Fails a Tune run that is stuck: trials PENDING (waiting for CPUs/GPUs) and none RUNNING for longer than
    ``timeout_s`` (trials queued behind running ones are normal and never time out). A callback watches the trial
    statuses each step, the stopper then stops the experiment, and :meth:`raise_if_timed_out` raises after Tune
    stopped."""

    def __init__(
        self, timeout_s: float, resources: dict[str, Any], keys: tuple[str, str] = ("cpus_per_trial", "gpus_per_trial")
    ) -> None:
        from ray import tune

        watch = self
        self.timeout_s = timeout_s
        self.resources = resources
        self.keys = keys  # the spec's resources keys the message names (a stage with keys of its own passes them)
        self.message: str | None = None
        self.stalled_since: float | None = None

        class _Callback(tune.Callback):
            def on_step_begin(self, iteration: int, trials: list, **info) -> None:
                watch.step(trials)

        class _Stopper(tune.Stopper):
            def __call__(self, trial_id, result) -> bool:
                return False

            def stop_all(self) -> bool:
                return watch.message is not None

        self.callback, self.stopper = _Callback(), _Stopper()

    def step(self, trials: list, now: float | None = None) -> None:
        now = time.time() if now is None else now
        statuses = {t.status for t in trials}
        if "RUNNING" in statuses or "PENDING" not in statuses:
            self.stalled_since = None
            return
        self.stalled_since = self.stalled_since or now
        waited = now - self.stalled_since
        if self.message is None and waited > self.timeout_s:
            r = self.resources
            self.message = (
                f"resources.pending_timeout_s: trials waited {waited:.0f}s (> {self.timeout_s:g}s) with none running"
                f" for {_amount(r['cpus_per_trial'], 'CPU')} and {_amount(r['gpus_per_trial'], 'GPU')} per trial;"
                f" the Ray cluster has {_cluster_summary()} -- free them, lower resources.{self.keys[0]} /"
                f" {self.keys[1]}, or raise resources.pending_timeout_s, then resume to run the rest"
            )

    def raise_if_timed_out(self) -> None:
        if self.message:
            raise PendingTimeout(self.message)


def _cluster_summary() -> str:
    try:
        import ray

        c = ray.cluster_resources()
        return f"{_amount(c.get('CPU', 0), 'CPU')} and {_amount(c.get('GPU', 0), 'GPU')} in all"
    except Exception:  # only for the message
        return "an unknown amount"


class WatchedTuner:
    """A Tuner whose :meth:`fit` raises :class:`PendingTimeout` after Tune stopped a run a trial waited too long in."""

    def __init__(self, tuner, watch: PendingWatch) -> None:
        self.tuner, self.watch = tuner, watch

    def fit(self):
        results = self.tuner.fit()
        self.watch.raise_if_timed_out()
        return results


def build_tuner(
    trainable,
    *,
    resources: dict[str, Any],
    param_space: dict[str, Any],
    storage_path: Path,
    name: str,
    callbacks: list,
    search_alg=None,
    num_samples: int = 1,
    max_concurrent: int | None = None,
    resource_keys: tuple[str, str] = ("cpus_per_trial", "gpus_per_trial"),
    scheduler=None,
) -> WatchedTuner:
    """A Tuner with the project's settings: per-trial CPU/GPU shares from the spec's ``resources`` (also passed to
    the trainable as ``cpus``/``gpus`` so it sizes its threads and picks its device), actor reuse (about 0.1 s per
    trial instead of about 1 s), no retries of a trial that raised (the trainable records the error and the sweep goes
    on) but up to :data:`MAX_FAILURES` of one whose worker or node died, trials saving their
    models straight into ``<storage_path>/../checkpoints/<trial_id>`` (``checkpoint_root`` in the config, see
    ``trainables.checkpoints``; no Tune checkpoints, so no experiment-state snapshot per trial), Tune's console
    output off (the progress reporter prints instead), Tune's JSON and CSV result loggers on
    (``ray.tune.ExperimentAnalysis`` reads them), and a trial PENDING longer than ``resources.pending_timeout_s``
    failing the run (:class:`PendingTimeout`, naming ``resource_keys``: the spec keys the stage's shares came from).
    ``scheduler``: a Tune trial scheduler (None: Tune's FIFO, every trial runs to its end).
    """
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    cpus, gpus = resources["cpus_per_trial"], resources["gpus_per_trial"]
    watch = PendingWatch(float(resources.get("pending_timeout_s") or 600), resources, resource_keys)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpus, "gpu": gpus}),
        param_space={
            **param_space,
            "cpus": cpus,
            "gpus": gpus,
            CHECKPOINT_ROOT: str(Path(storage_path).resolve().parent / "checkpoints"),
        },
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            max_concurrent_trials=max_concurrent,
            search_alg=search_alg,
            num_samples=num_samples,
            scheduler=scheduler,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage_path),
            verbose=0,
            callbacks=[*callbacks, JsonLoggerCallback(), CSVLoggerCallback(), watch.callback],
            stop=watch.stopper,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES, fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    return WatchedTuner(tuner, watch)


# ---- the experiment directories of a sweep -------------------------------------------------------------------------


def next_run_number(tune_root: Path) -> int:
    """1 + the highest ``run<N>-`` prefix among the experiment directories under ``tune_root``."""
    import re

    nums = [
        int(m.group(1))
        for p in (tune_root.iterdir() if tune_root.is_dir() else [])
        if (m := re.match(r"run(\d+)-", p.name))
    ]
    return max(nums, default=0) + 1


def tune_experiment_dirs(sweep_dir: str | Path) -> list[Path]:
    """Every Tune experiment directory of a sweep (``<storage>/<name>/tune/run<N>-distill``,
    ``run<N>-compress-<parent>``, and a pre-run-numbering ``distill``): ``ray.tune.ExperimentAnalysis`` over each, its
    ``dataframe()`` concatenated, gives every trial of every run."""
    root = Path(sweep_dir).resolve() / "tune"  # absolute: ExperimentAnalysis takes a URI
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("experiment_state-*.json")))
