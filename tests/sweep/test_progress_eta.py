"""ProgressReporter's ETA: estimated per kind of trial, never from a faster kind."""

from __future__ import annotations

from types import SimpleNamespace

from sweep.callback import ProgressReporter
from trainables.trial import TrialOutcome


def _trial(arch: str, bootstrap: bool = False):
    return SimpleNamespace(
        task="synthetic", arch=arch, bootstrap=bootstrap, stage="distill", describe=lambda: f"synthetic {arch}"
    )


def _tune(arch: str, status: str, started: float | None = None, bootstrap: bool = False):
    return SimpleNamespace(
        status=status, trial=_trial(arch, bootstrap), run_metadata=SimpleNamespace(start_time=started)
    )


def _outcome(seconds: float) -> TrialOutcome:
    return TrialOutcome(
        status="finished", started_at=0.0, finished_at=seconds, metrics={"score": 0.5}, sizes={"gzip_bytes": 1000}
    )


def test_no_estimate_until_a_trial_of_each_remaining_kind_finished():
    lines: list[str] = []
    rep = ProgressReporter(3, "distill", lambda t: t.trial, out=lines.append)
    ffn = _tune("ffn", "TERMINATED")
    bilstm = _tune("bilstm", "PENDING")
    rep._line(ffn, _outcome(4.0), [ffn, bilstm, _tune("ffn", "PENDING")])
    assert "eta >0m04s (no synthetic bilstm trial finished yet)" in lines[-1]
    assert rep.eta([bilstm]) == "eta >0m04s (no synthetic bilstm trial finished yet)"  # + 1 trial Tune has not made


def test_eta_from_the_same_kind_and_running_time():
    rep = ProgressReporter(4, "distill", lambda t: t.trial, out=lambda s: None)
    rep.done = 2
    rep.seconds_by_kind = {"synthetic ffn": [4.0], "synthetic bilstm": [300.0]}
    # one bilstm running for 100 s (200 s left), one ffn pending (4 s); one trial running at a time
    eta = rep.eta([_tune("bilstm", "RUNNING", started=1000.0), _tune("ffn", "PENDING")], now=1100.0)
    assert eta == "eta 3m24s"
    rep.done = 4
    assert rep.eta([]) == "eta 0m00s"


def test_bootstrap_trials_are_their_own_kind():
    rep = ProgressReporter(2, "distill", lambda t: t.trial, out=lambda s: None)
    rep.done = 1
    rep.seconds_by_kind = {"synthetic bilstm": [30.0]}
    assert (
        rep.eta([_tune("bilstm", "PENDING", bootstrap=True)])
        == "eta (no synthetic bilstm +bootstrap trial finished yet)"
    )


def test_a_quiet_run_says_what_is_running_and_for_how_long():
    lines: list[str] = []
    rep = ProgressReporter(3, "distill", lambda t: t.trial, out=lines.append, quiet_s=300.0)
    rep.last_line = 1000.0
    running = [_tune("bilstm", "RUNNING", started=900.0), _tune("rnn", "RUNNING", started=1100.0)]
    trials = [*running, _tune("ffn", "PENDING")]
    rep.heartbeat(trials, now=1200.0)  # a line 200 s ago: nothing yet
    assert lines == []
    rep.heartbeat(trials, now=1300.0)
    assert lines == [
        "[distill 0/3 eta (no synthetic bilstm trial finished yet)] running: synthetic bilstm for 6m40s;"
        " synthetic rnn for 3m20s"
    ]
    rep.heartbeat(trials, now=1400.0)  # the line just said it: quiet again for quiet_s
    assert len(lines) == 1
    rep.heartbeat([_tune("ffn", "PENDING")], now=2000.0)  # nothing running (waiting for resources): no line
    assert len(lines) == 1
