"""Running a sweep: plan from the database, build assets, stage 1 (the distillation grid), stage 2 (compression
search), the teacher-compression stage (``sweep.stage_teacher``: planned once the teachers exist, run after the
student stages, which it does not depend on), and the sweep's status.

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

from analysis.views import open_store
from db.errors import LockedError
from db.journal import Journal, apply_journal
from featherweight_core.atomic import checked_output_dir
from featherweight_core.errors import OutputError, UserError
from sweep.assets import TaskDataCache, materialize_assets, remove_leftovers, teacher_baselines
from sweep.callback import journal_notice
from sweep.spec import SweepSpec
from sweep.stage1 import StageResult, run_distill_stage
from sweep.stage2 import plan_compress_stage, run_compress_stage
from sweep.stage_teacher import (
    check_teacher_compression_grid,
    check_teacher_compression_resources,
    plan_teacher_compression,
    run_teacher_compression_stage,
    teacher_compression_pending,
    teachers_from_assets,
)
from sweep.stopping import StageStopped, db_command, how_stopped, resume_command, sigterm_as_interrupt
from sweep.study import check_stage_resources, run_study
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


DB_WAIT_S = 600.0  # how long the driver waits for a reader holding the database (results are journaled meanwhile)


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


def check_database_path(database: Path) -> None:
    """The database must be a file this process can write, or not exist yet: one error line before Ray starts or
    anything is written (the directory itself is checked by ``checked_output_dir``)."""
    if database.is_dir():
        raise OutputError(f"database: {database} is a directory; expected a DuckDB file (or a path where one can go)")
    if database.exists() and not database.is_file():
        raise OutputError(f"database: {database} is not a regular file; expected a DuckDB file")
    if database.is_file() and not os.access(database, os.R_OK | os.W_OK):
        raise OutputError(f"database: {database} cannot be written (permission denied)")
    if database.is_file() and not os.access(database.parent, os.W_OK | os.X_OK):  # DuckDB writes its WAL beside it
        raise OutputError(f"database: {database.parent} cannot be written (permission denied)")


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
    name: str
    database: Path
    status: str = "finished"
    message: str | None = None
    distill_total: int = 0
    distill_ran: int = 0
    compress_ran: int = 0
    teacher_compression_ran: int = 0
    failed: int = 0
    seconds: float = 0.0
    db_write_ms: list[float] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return self.distill_ran + self.compress_ran + self.teacher_compression_ran

    @property
    def all_failed(self) -> bool:
        return self.ran > 0 and self.failed == self.ran

    def add(self, stage: str, r: StageResult) -> None:
        if stage == "distill":
            self.distill_ran += r.ran
        elif stage == "teacher_compression":
            self.teacher_compression_ran += r.ran
        else:
            self.compress_ran += r.ran
        self.failed += r.failed
        self.db_write_ms += r.db_write_ms
        if r.first_error and self.message is None:
            self.message = r.first_error


def _save_spec(spec: SweepSpec) -> None:
    import yaml

    from featherweight_core.atomic import write_text_atomic

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
        check_teacher_compression_resources(spec)
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
    """Run (or continue) ``spec``: stage 1 distillation grid, then stage 2 compression if the spec has one.

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
    all_trials = spec.distill_trials()
    outcome.distill_total = len(all_trials)
    check_teacher_compression_grid(spec)  # against the teachers that exist: one error line, nothing written
    check_database_path(spec.database)
    todo, plans = all_trials, None
    if spec.database.is_file():
        # installs (or updates) the analysis views the stage-2 selection reads; waits for a reader holding the file
        store = open_store(spec.database, lock_timeout=DB_WAIT_S)
        sync_journal(spec, store, say)  # results a killed or locked-out run left only in the journal
        done = store.finished_trial_ids(spec.name, stage="distill")
        todo = [t for t in all_trials if t.trial_id not in done]
        plans = plan_compress_stage(spec, store) if not todo else None
        if not todo and not any(p.remaining for p in plans) and not teacher_compression_pending(spec, store):
            lock.acquire()
            remove_leftovers(spec.storage / spec.name, say)  # what a run killed after its last trial left
            _save_spec(spec)
            stages = [
                s
                for s, on in (
                    ("the compression stage", spec.compress),
                    ("the teacher compression stage", spec.teacher_compression),
                )
                if on
            ]
            say(
                f"sweep {spec.name}: nothing to do ({len(all_trials)} distillation trials"
                f"{''.join(' and ' + s for s in stages)} already finished)"
            )
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
    say(f"sweep {spec.name}: {len(all_trials)} distillation trials, {len(all_trials) - len(todo)} already finished")
    spec.storage.mkdir(parents=True, exist_ok=True)
    spec.database.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(spec.storage / spec.name, say)  # we hold the lock: no other driver runs this sweep
    _save_spec(spec)
    store = open_store(spec.database, lock_timeout=DB_WAIT_S)
    store.start_sweep(spec.name, spec.raw, code_version(), str(spec.storage / spec.name))
    prefix = f"run{next_run_number(spec.storage / spec.name / 'tune')}-"  # each run its own Tune experiment dirs
    status, message = "interrupted", None
    phase = "building the assets"
    try:
        data = TaskDataCache(spec, say)
        assets = materialize_assets(spec, say, data)
        phase = "the study stages"
        try:  # the teacher, bootstrap and soft-target stages of "whole study" tasks, as Ray tasks
            assets.update(run_study(spec, store, data, say))
            # planned now that the teachers exist: a grid that does not fit a teacher fails before anything trains
            teachers = teachers_from_assets(spec, assets)
            tc_todo = plan_teacher_compression(spec, store, teachers) if spec.teacher_compression else []
        except UserError as e:
            status, message = "failed", str(e)
            raise
        for row in teacher_baselines(assets):
            store.record_teacher(
                spec.name,
                row["task"],
                row["name"],
                row["score"],
                row.get("accuracy"),
                row.get("f1"),
                row["params"],
                row["disk_bytes"],
                row.get("gzip_bytes"),
            )
        for task, t in spec.tasks.items():  # the user's own reference points for this task
            for b in t.get("baselines") or []:
                store.record_baseline(
                    spec.name,
                    task,
                    b["name"],
                    b["score"],
                    params=b.get("params"),
                    disk_bytes=b.get("disk_bytes"),
                    gzip_bytes=b.get("gzip_bytes"),
                    source="spec",
                    note=b.get("note"),
                )
        if todo:
            phase = "the distillation stage"
            r = run_distill_stage(spec, todo, assets, data, say, prefix=prefix)
            outcome.add("distill", r)
            _raise_if_stopped(spec, "distillation", r)
            sync_journal(spec, store, say)  # stage 2 plans from every stage-1 row
        if spec.compress:
            phase = "the compression stage"
            plans = plan_compress_stage(spec, store) if plans is None else plans
            r = run_compress_stage(spec, plans, assets, data, say, prefix=prefix)
            outcome.add("compress", r)
            _raise_if_stopped(spec, "compression", r)
        if tc_todo:
            phase = "the teacher compression stage"
            r = run_teacher_compression_stage(spec, tc_todo, teachers, data, say, prefix=prefix)
            outcome.add("teacher_compression", r)
            _raise_if_stopped(spec, "teacher compression", r)
        status, message = _final_status(outcome)
    except StageStopped as e:
        message = str(e)
        raise
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM outside Tune (which stops gracefully and returns instead)
        message = f"{how_stopped()} during {phase}; `{resume_command(spec)}` runs the rest"
        raise StageStopped(message) from None
    except PendingTimeout as e:
        status, message = "failed", f"{e}: `{resume_command(spec)}`"
        raise PendingTimeout(message) from None
    finally:
        outcome.seconds = time.time() - t0
        outcome.status = status
        outcome.message = message
        try:
            sync_journal(spec, store, say)
            store.finish_sweep(spec.name, status, message)
        except BaseException as e:  # never mask the original error (nor stop at a second Ctrl-C here)
            log.warning("could not mark sweep %s as %s: %s", spec.name, status, e)
    return outcome


def sync_journal(spec: SweepSpec, store, say: Callable[[str], None]) -> int:
    """Apply the journal's records the database lacks (see ``db.journal``). When another process holds the file,
    say so and wait for it (``store``'s lock timeout); the records are safe in the journal meanwhile."""
    journal = Journal(spec.journal_path)
    if not journal.path.is_file():
        return 0
    notice = journal_notice(spec.journal_path)
    try:
        n = apply_journal(open_store(spec.database, lock_timeout=1.0), journal, spec.name)
    except LockedError as e:
        notice.locked(e)
        say(
            f"waiting (up to {store.lock_timeout:.0f} s) for the database: {e}; every result is safe in"
            f" {journal.path}, and `{db_command(spec, 'sync')}` applies it later"
        )
        n = apply_journal(store, journal, spec.name)
    notice.written()
    return n


def _raise_if_stopped(spec: SweepSpec, stage: str, r: StageResult) -> None:
    if r.stopped_early:
        raise StageStopped(
            f"{how_stopped()} after {r.ran} of {r.planned} {stage} trials; `{resume_command(spec)}` runs the rest"
        )


def _final_status(o: SweepOutcome) -> tuple[str, str | None]:
    if not o.failed:
        return "finished", None
    return ("failed" if o.all_failed else "finished"), f"{o.failed} of {o.ran} trials failed; first error: {o.message}"


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
    say(
        f"sweep {out.name} {out.status} in {out.seconds:.0f}s: {out.distill_ran} distillation + {out.compress_ran}"
        f" compression{teacher} trials run, {out.failed} failed{write}"
    )
    if out.message:
        say(out.message)
    say(f"database: {out.database}")
    return 1 if out.status == "failed" else 0
