"""Running a sweep: check, start Ray, build the assets, then the registered trial stages in order
(``sweep.stages.registry``: distillation grid, compression search, teacher compression), and the sweep's status.

Resuming is driven by the database: trial ids are deterministic (``trainables.trial``), so a resumed sweep runs
exactly the grid points and compression samples that have no finished row yet, and never duplicates a row. A
resume with nothing left to run changes nothing, not even the sweep's ``finished_at``.

Statuses a sweep row ends with: ``finished`` (its message says how many trials failed, if any), ``failed`` (every
trial of the run failed; the message says how many and the first error; the command exits non-zero),
``interrupted`` (Ctrl-C or SIGTERM: the message says how far it got and the command that resumes it; a crash, a
killed driver: resume it). Resources no node of the Ray cluster has stop the
run before anything is written (``sweep.tuner.ResourceError``); a trial left PENDING longer than
``resources.pending_timeout_s`` ends the sweep ``failed`` with that message (``sweep.tuner.PendingTimeout``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from featherweight_core.atomic import checked_output_dir, write_text_atomic
from featherweight_core.errors import UserError
from sweep.assets import TaskDataCache, remove_leftovers
from sweep.callback import journal_notice
from sweep.database import SweepDatabase
from sweep.spec import SweepSpec
from sweep.stages.base import StageResult, StageRun
from sweep.stages.run import (
    build_assets,
    check_stage_resources,
    check_stages,
    plan_at_start,
    run_stages,
)
from sweep.stopping import StageStopped, db_command, how_stopped, resume_command, sigterm_as_interrupt
from sweep.tuner import (
    SESSION_FILE,
    ClusterError,
    PendingTimeout,
    ResourceError,
    check_cluster_resources,
    check_shared_storage,
    init_ray,
    next_run_number,
    record_ray_session,
    stop_stale_ray,
)

log = logging.getLogger("featherweight.sweep")


LOCK_FILE = "driver.lock"


class SweepBusy(UserError):
    """Another driver runs the same sweep (it holds the sweep's driver lock)."""


class SweepLock:
    """``<storage>/<name>/driver.lock``, held (``flock``) by the one driver that runs the sweep, for as long as it runs:
    a second ``sweep run`` / ``resume`` of the same sweep stops with :class:`SweepBusy` instead of running its trials
    twice, and whoever holds the lock knows that every temporary file under the sweep's directory belongs to a dead
    run (``sweep.assets.remove_leftovers``). The kernel releases the lock when the driver dies, however it dies; the
    file stays (it holds the last driver's pid)."""

    def __init__(self, sweep_dir: Path, name: str) -> None:
        self.path, self.name = sweep_dir / LOCK_FILE, name
        self.fd: int | None = None

    def acquire(self) -> None:
        if self.fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise SweepBusy(
                f"sweep {self.name}: another driver{f' (PID {pid})' if pid.isdigit() else ''} is running it"
                f" ({self.path} is locked); wait for it to end or stop it first"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def code_version() -> str:
    """The installed package version, plus the git commit when run from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    try:
        v = version("featherweight")
    except PackageNotFoundError:
        v = "dev"
    return f"{v}+{sha}" if sha else v


@dataclass
class SweepOutcome:
    """What a run of a sweep did: its status and message, and per stage (by name) the trials it ran."""

    name: str
    database: Path
    status: str = "finished"
    message: str | None = None
    ran_by_stage: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    stopped: int = 0  # trials a scheduler stopped at a rung
    first_error: str | None = None
    seconds: float = 0.0
    db_write_ms: list[float] = field(default_factory=list)
    phase: str = ""  # where the run is (what a stop message names)

    @property
    def ran(self) -> int:
        return sum(self.ran_by_stage.values())

    @property
    def distill_ran(self) -> int:
        return self.ran_by_stage.get("distill", 0)

    @property
    def compress_ran(self) -> int:
        return self.ran_by_stage.get("compress", 0)

    @property
    def teacher_compression_ran(self) -> int:
        return self.ran_by_stage.get("teacher_compression", 0)

    @property
    def all_failed(self) -> bool:
        return self.ran > 0 and self.failed == self.ran

    def add(self, stage: str, r: StageResult) -> None:
        self.ran_by_stage[stage] = self.ran_by_stage.get(stage, 0) + r.ran
        self.failed += r.failed
        self.stopped += r.stopped
        self.db_write_ms += r.db_write_ms
        self.first_error = self.first_error or r.first_error


def _claim_sweep_dir(spec: SweepSpec, say: Callable[[str], None]) -> None:
    """Remove what a killed run left under the sweep's directory (we hold the driver lock: no other driver runs the
    sweep) and save the spec beside it."""
    remove_leftovers(spec.storage / spec.name, say)
    write_text_atomic(spec.storage / spec.name / "spec.yaml", yaml.safe_dump(spec.raw, sort_keys=False))


def _start_ray(
    spec: SweepSpec, address: str | None, say: Callable[[str], None], verbose: bool, lock: SweepLock
) -> None:
    """Stop what a killed driver's local Ray left (recorded in ``<storage>/<name>/ray_session.json``), start or join
    Ray, and check the spec's per-trial resources against it: nothing is written before the check passes (a local
    Ray this call started is shut down when it fails). Then take the sweep's driver ``lock`` (before recording this
    run's Ray session: a driver refused the lock must not overwrite the running one's record)."""
    import ray

    session_file = spec.storage / spec.name / SESSION_FILE
    if not address and not ray.is_initialized():
        stop_stale_ray(session_file, say)
    started = init_ray(address, spec.resources, verbose)
    try:
        check_cluster_resources(spec.resources)
        check_stage_resources(spec)
        if address:
            check_shared_storage(spec.storage)  # on a cluster every node must see the storage at the same path
        lock.acquire()
    except (ResourceError, ClusterError, SweepBusy):
        if started:
            ray.shutdown()
        raise
    if started and not address:
        session_file.parent.mkdir(parents=True, exist_ok=True)
        record_ray_session(session_file)


def run_sweep(
    spec: SweepSpec, address: str | None = None, say: Callable[[str], None] = print, verbose: bool = False
) -> SweepOutcome:
    """Run (or continue) ``spec``: its assets, then each registered trial stage the spec switches on, in order.

    Order: plan from the database (when it exists; nothing to do returns here), start Ray and check the resources
    (a :class:`sweep.tuner.ResourceError` leaves no file behind), take the sweep's driver lock (:class:`SweepLock`)
    and remove what a killed run left, then the spec copy, the sweep row, the assets and the stages."""
    lock = SweepLock(spec.storage / spec.name, spec.name)
    try:
        return _run_sweep(spec, address, say, verbose, lock)
    finally:
        lock.release()


def _run_sweep(
    spec: SweepSpec, address: str | None, say: Callable[[str], None], verbose: bool, lock: SweepLock
) -> SweepOutcome:
    t0 = time.time()
    journal_notice(spec.journal_path, say)  # this run's: says once when a reader holds the database
    address = address or spec.raw.get("address")  # --address wins over the spec's address
    outcome = SweepOutcome(spec.name, spec.database)
    database = SweepDatabase(spec.name, spec.database, spec.journal_path, db_command(spec, "sync"))
    check_stages(spec)  # against the teachers that exist: one error line, nothing written
    database.check()
    store = None
    if database.path.is_file():  # the one store of this run (opened after Ray starts for a new database)
        store = database.open()
        database.sync(store, say)  # results a killed or locked-out run left only in the journal
    start = plan_at_start(spec, store)
    if start.done:
        lock.acquire()
        _claim_sweep_dir(spec, say)  # what a run killed after its last trial left
        say(f"sweep {spec.name}: nothing to do ({start.done})")
        outcome.status = "unchanged"
        return outcome
    if lock.path.is_file():  # a resume: another driver of this sweep stops us before Ray starts
        lock.acquire()
    # the storage and the database's directory must be writable before Ray starts or anything trains; directories
    # this check creates are removed again if Ray or the resource check fails
    with (
        checked_output_dir(spec.storage, f"storage {spec.storage}"),
        checked_output_dir(spec.database.parent, f"database directory {spec.database.parent}"),
    ):
        _start_ray(spec, address, say, verbose, lock)
    for line in start.headlines:
        say(f"sweep {spec.name}: {line}")
    spec.storage.mkdir(parents=True, exist_ok=True)
    spec.database.parent.mkdir(parents=True, exist_ok=True)
    _claim_sweep_dir(spec, say)
    if store is None:
        store = database.open()
    store.start_sweep(spec.name, spec.raw, code_version(), str(spec.storage / spec.name))
    prefix = f"run{next_run_number(spec.storage / spec.name / 'tune')}-"  # each run its own Tune experiment dirs
    outcome.status = "interrupted"
    try:
        data = TaskDataCache(spec, say)
        assets = build_assets(spec, store, data, say, outcome)
        run_stages(StageRun(spec, database, store, assets, data, say, prefix), start.plans, outcome)
        outcome.status, outcome.message = _final_status(outcome)
    except StageStopped as e:
        outcome.message = str(e)
        raise
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM outside Tune (which stops gracefully and returns instead)
        outcome.message = f"{how_stopped()} during {outcome.phase}; `{resume_command(spec)}` runs the rest"
        raise StageStopped(outcome.message) from None
    except PendingTimeout as e:
        outcome.status, outcome.message = "failed", f"{e}: `{resume_command(spec)}`"
        raise PendingTimeout(outcome.message) from None
    finally:
        outcome.seconds = time.time() - t0
        try:
            database.sync(store, say)
            store.finish_sweep(spec.name, outcome.status, outcome.message)
        except BaseException as e:  # never mask the original error (nor stop at a second Ctrl-C here)
            log.warning("could not mark sweep %s as %s: %s", spec.name, outcome.status, e)
    return outcome


def _final_status(o: SweepOutcome) -> tuple[str, str | None]:
    if not o.failed:
        return "finished", None
    return (
        "failed" if o.all_failed else "finished"
    ), f"{o.failed} of {o.ran} trials failed; first error: {o.first_error}"


def run_and_summarize(spec: SweepSpec, address: str | None, say: Callable[[str], None], verbose: bool = False) -> int:
    """Run the sweep (which saves the spec beside it), print a summary; returns the exit status (1 when every
    trial of the run failed). SIGTERM stops it as Ctrl-C does (``sweep.stopping``)."""
    with sigterm_as_interrupt():
        out = run_sweep(spec, address=address, say=say, verbose=verbose)
    if out.status == "unchanged":
        return 0
    ms = sorted(out.db_write_ms)
    write = f", db write median {ms[len(ms) // 2]:.1f} ms" if ms else ""
    teacher = f" + {out.teacher_compression_ran} teacher compression" if out.teacher_compression_ran else ""
    stopped = f", {out.stopped} stopped early by the scheduler" if out.stopped else ""
    say(
        f"sweep {out.name} {out.status} in {out.seconds:.0f}s: {out.distill_ran} distillation + {out.compress_ran}"
        f" compression{teacher} trials run, {out.failed} failed{stopped}{write}"
    )
    if out.message:
        say(out.message)
    say(f"database: {out.database}")
    return 1 if out.status == "failed" else 0
