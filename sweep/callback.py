"""Driver-side Tune callbacks: :class:`DatabaseCallback`, the experiment database's only writer, and
:class:`ProgressReporter`, which prints one line per trial. Both read the trial contract (``trainables.trial``).

Each finished or failed trial becomes one row written in one short transaction (the store opens and closes the
DuckDB file per write, so ``featherweight query`` can read while a sweep runs). Writes are idempotent per trial id;
``get_state``/``set_state`` carry the set of recorded ids through Tune's experiment checkpoints.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from db.errors import LockedError
from db.journal import Journal
from db.store import ExperimentStore, TrialRecord
from trainables.checkpoints import CHECKPOINT_ROOT, checkpoint_dir
from trainables.trial import TrialOutcome


def outcome_of(trial) -> TrialOutcome:
    """The outcome a trainable reported (strict: a trainable that reported something else is a bug)."""
    return TrialOutcome.from_result(trial.last_result)


def trial_checkpoint_dir(tune_trial, trial_id: str) -> str | None:
    """Where the trial saved its model: ``<checkpoint_root>/<trial_id>`` (``trainables.checkpoints``), or the Tune
    checkpoint a trainable run without a checkpoint root reported. Only a finished outcome's path is recorded."""
    if tune_trial.checkpoint is not None:
        return tune_trial.checkpoint.path
    root = (tune_trial.config or {}).get(CHECKPOINT_ROOT)
    return str(checkpoint_dir(root, trial_id)) if root else None


def crashed_outcome(trial) -> TrialOutcome:
    """The outcome of a trial whose worker or node died (killed, out of memory, a node lost) and that Tune gave up
    retrying (``sweep.tuner.MAX_FAILURES``): the last line of Tune's error file."""
    err = "trial worker failed"
    try:
        if trial.error_file and Path(trial.error_file).is_file():
            lines = [ln for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
            err = lines[-1] if lines else err
    except OSError:
        pass
    now = time.time()
    # where it ran, as far as Tune knows without asking the (dead) worker: the node's IP
    location = getattr(getattr(trial, "temporary_state", None), "location", None)
    ip = getattr(location, "hostname", None) or None
    return TrialOutcome.failed(
        err, started_at=getattr(trial, "start_time", None) or now, finished_at=now, node_ip=ip, node=ip
    )


class JournalNotice:
    """Says once per sweep that results are waiting in the journal because another process holds the database (the
    sweep slows down meanwhile: each write waits for the lock a moment), and once when they have been written."""

    def __init__(self, journal_path: str | Path, say: Callable[[str], None] | None = None) -> None:
        self.journal_path = Path(journal_path)
        self.say = say or (lambda s: print(s, file=sys.stderr, flush=True))
        self.waiting_since: float | None = None
        self.said_waiting = self.said_written = False

    def locked(self, error: BaseException) -> None:
        """A write found the database locked (``error``: the store's ``LockedError``, naming the holder)."""
        if self.waiting_since is None:
            self.waiting_since = time.time()
        if self.said_waiting:
            return
        self.said_waiting = True
        m = re.search(r"is locked by (.+?) \(gave up", str(error))
        holder = m.group(1) if m else "another process"
        self.say(
            f"the database is held by {holder}: results are waiting in {self.journal_path} for it to let go"
            " (trials go on; the sweep runs slower meanwhile)"
        )

    def written(self) -> None:
        """Everything the journal held back is in the database now."""
        if self.waiting_since is None:
            return
        waited, self.waiting_since = time.time() - self.waiting_since, None
        if self.said_written:
            return
        self.said_written = True
        self.say(f"the database is free again: the results that waited in the journal ({waited:.0f} s) are written")


_NOTICES: dict[str, JournalNotice] = {}


def journal_notice(journal_path: str | Path, say: Callable[[str], None] | None = None) -> JournalNotice:
    """The sweep's :class:`JournalNotice` (one per journal, shared by every stage's callback); given ``say``, a new
    one (the runner's, at the start of a run)."""
    key = str(Path(journal_path))
    if say is not None or key not in _NOTICES:
        _NOTICES[key] = JournalNotice(journal_path, say)
    return _NOTICES[key]


class DatabaseCallback(tune.Callback):
    """Writes each trial's row: first to the sweep's journal (fsync'd, so the result is safe), then to the database
    with a short lock wait. While another process holds the database the rows stay pending, are retried at the next
    trial, and the runner applies whatever is left after the stage (``db.journal.apply_journal``); a lock never
    changes a trial's status. ``trial_of(tune_trial)`` gives the contract trial; ``to_record(trial, outcome,
    checkpoint_dir)`` the row."""

    LOCK_WAIT_S = 1.0  # per write attempt: Tune's driver loop waits this long at most for a reader

    def __init__(
        self,
        db_path: str | Path,
        trial_of: Callable[[Any], Any],
        to_record: Callable[[Any, TrialOutcome, str | None], TrialRecord],
        journal_path: str | Path,
    ) -> None:
        self.db_path = str(db_path)
        self.trial_of = trial_of
        self.to_record = to_record
        self.journal = Journal(journal_path)
        self.notice = journal_notice(journal_path)
        self.recorded: set[str] = set()
        self.pending: list[TrialRecord] = []
        self.write_seconds: list[float] = []

    def get_state(self) -> dict | None:
        return {"recorded": sorted(self.recorded)}

    def set_state(self, state: dict) -> None:
        self.recorded = set(state.get("recorded", []))

    def _write(self, tune_trial, outcome: TrialOutcome) -> None:
        trial = self.trial_of(tune_trial)
        if trial.trial_id in self.recorded:
            return
        ckpt = trial_checkpoint_dir(tune_trial, trial.trial_id)
        rec = self.to_record(trial, outcome, ckpt)
        self.journal.append(rec)
        self.recorded.add(trial.trial_id)
        self.pending.append(rec)
        self.flush()

    def flush(self) -> None:
        """Apply pending rows in order; stop (keeping the rest pending) when the database stays locked."""
        while self.pending:
            t0 = time.perf_counter()
            try:
                ExperimentStore(self.db_path, lock_timeout=self.LOCK_WAIT_S).record_trial(self.pending[0])
            except LockedError as e:
                self.notice.locked(e)
                return
            self.write_seconds.append(time.perf_counter() - t0)
            self.pending.pop(0)
        self.notice.written()

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._write(trial, outcome_of(trial))

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        # Trainables catch Python errors themselves; this path is for crashed workers.
        self._write(trial, crashed_outcome(trial))


def fmt_bytes(n: float | None) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def fmt_secs(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def trial_kind(trial) -> str:
    """What a trial's duration is estimated from: trials of the same task, arch and data (with or without bootstrap
    data) take about as long; a compression search's trials all look alike."""
    if getattr(trial, "stage", None) == "compress":
        return "compression"
    return f"{trial.task} {trial.arch}{' +bootstrap' if getattr(trial, 'bootstrap', False) else ''}"


QUIET_S = 300.0  # seconds without a progress line before the reporter says what is still running


class ProgressReporter(tune.Callback):
    """One line per finished trial with its score, size, time and an ETA. The ETA adds up, for each trial still to
    run, the mean wall time of the finished trials of its kind (:func:`trial_kind`), minus what running trials have
    already spent, over the trials running side by side; while some kind still to run has no finished trial the line
    gives only a lower bound and says which kind it cannot estimate, instead of guessing from faster kinds. When no
    trial has ended for ``quiet_s`` seconds (trials of many minutes), a line says which trials are running and for how
    long (:meth:`heartbeat`), so a long run never looks stuck."""

    def __init__(
        self,
        total: int,
        label: str,
        trial_of: Callable[[Any], Any],
        size_measure: str = "gzip_bytes",
        out: Callable[[str], None] | None = None,
        why_stopped: Callable[[Any], str | None] | None = None,
        quiet_s: float = QUIET_S,
    ) -> None:
        self.total, self.label, self.done, self.failed = total, label, 0, 0
        self.stopped = 0  # trials a scheduler stopped at a rung
        self.why_stopped = why_stopped or (lambda trial: None)  # contract trial -> the scheduler's reason
        self.first_error: str | None = None
        self.trial_of = trial_of
        self.size_measure = size_measure
        self.start = time.time()
        self.out = out or (lambda s: print(s, file=sys.stderr, flush=True))
        self.seconds_by_kind: dict[str, list[float]] = {}
        self.quiet_s, self.last_line = quiet_s, self.start

    def _say(self, line: str, trials: list, now: float | None = None) -> None:
        width = len(str(self.total))
        self.out(f"[{self.label} {self.done:{width}d}/{self.total} {self.eta(trials, now)}] {line}")
        self.last_line = time.time() if now is None else now

    def heartbeat(self, trials: list, now: float | None = None) -> None:
        """After ``quiet_s`` seconds without a line: which trials are running and for how long (the first four)."""
        now = time.time() if now is None else now
        running = [t for t in trials if getattr(t, "status", None) == "RUNNING"]
        if not running or now - self.last_line < self.quiet_s:
            return
        parts = []
        for t in running[:4]:
            try:
                what = self.trial_of(t).describe()
            except Exception:  # a trial whose config is not (yet) a contract trial
                what = str(t)
            started = getattr(getattr(t, "run_metadata", None), "start_time", None)
            parts.append(what + (f" for {fmt_secs(now - started)}" if started else ""))
        more = f" and {len(running) - 4} more" if len(running) > 4 else ""
        self._say(f"running: {'; '.join(parts)}{more}", trials, now)

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        self.heartbeat(trials)

    def _kind(self, tune_trial) -> str | None:
        try:
            return trial_kind(self.trial_of(tune_trial))
        except Exception:  # a trial whose config is not (yet) a contract trial: unknown kind
            return None

    def eta(self, trials: list, now: float | None = None) -> str:
        """``"eta 3m10s"``, ``"eta 0m00s"`` when nothing is left, or, while a kind K still to run has no finished
        trial, a lower bound from the others: ``"eta >1m30s (no K trial finished yet)"``."""
        now = time.time() if now is None else now
        left = max(0, self.total - self.done)
        if not left:
            return "eta 0m00s"
        unfinished = [t for t in trials if getattr(t, "status", None) in ("PENDING", "RUNNING", "PAUSED")]
        work, running, unknown = 0.0, 0, []
        everything = [s for secs in self.seconds_by_kind.values() for s in secs]
        for t in unfinished[:left]:
            kind = self._kind(t)
            secs = self.seconds_by_kind.get(kind) if kind else None
            if not secs:
                unknown.append(kind or "such")
                continue
            mean = sum(secs) / len(secs)
            if t.status == "RUNNING":
                running += 1
                started = getattr(getattr(t, "run_metadata", None), "start_time", None)
                work += max(0.0, mean - (now - started)) if started else mean
            else:
                work += mean
        # trials Tune has not created yet: the mean of everything finished so far (their kind is not known yet)
        work += max(0, left - len(unfinished)) * (sum(everything) / len(everything) if everything else 0.0)
        if unknown:  # a lower bound at most: the trials of that kind will take what they take
            bound = f" >{fmt_secs(work / max(1, running))}" if work else ""
            return f"eta{bound} (no {sorted(set(unknown))[0]} trial finished yet)"
        return f"eta {fmt_secs(work / max(1, running))}"

    def _line(self, tune_trial, outcome: TrialOutcome, trials: list | None = None) -> None:
        self.done += 1
        self.failed += int(outcome.status == "error")
        self.stopped += int(outcome.stopped)
        trial = self.trial_of(tune_trial)
        what = trial.describe()
        if outcome.stopped:
            epochs = outcome.metrics.get("epochs")
            why = self.why_stopped(trial)
            line = f"{what} -> stopped after {epochs} epoch(s), score {outcome.score:.4f}" + (f": {why}" if why else "")
        elif outcome.finished:
            self.seconds_by_kind.setdefault(trial_kind(trial), []).append(outcome.seconds)
            size = outcome.size(self.size_measure)
            size_s = f"{size:,.0f}" if self.size_measure == "params" else fmt_bytes(size)
            line = f"{what} -> score {outcome.score:.4f}  {self.size_measure} {size_s}  ({outcome.seconds:.1f}s)"
        else:
            line = f"{what} -> FAILED: {outcome.error}"
            self.first_error = self.first_error or outcome.error
        self._say(line, [t for t in (trials or []) if t is not tune_trial])

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._line(trial, outcome_of(trial), trials)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._line(trial, crashed_outcome(trial), trials)
