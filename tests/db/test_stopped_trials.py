"""Trials a scheduler stopped: their own status with the rung and reason, their rung results read back in arrival
order, replaced when a later run trains them to the end; a stopped outcome keeps its score."""

from __future__ import annotations

import pytest

from analysis.views import open_store
from tests.fakes import make_record
from trainables.trial import OutcomeError, TrialOutcome


def _rung(epoch: int, seq: int, decision: str, score: float) -> dict:
    return {
        "epoch": epoch,
        "score": score,
        "rung": epoch,
        "rung_seq": seq,
        "rung_score": score,
        "rung_size": 1000.0,
        "rung_group": "sst2",
        "rung_decision": decision,
    }


def test_a_stopped_trial_is_recorded_with_rung_and_reason_and_replaced_when_finished(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    store.record_trial(
        make_record(
            "s",
            "d-a",
            status="stopped",
            metrics={"score": 0.6, "epochs": 3},
            sizes={"params": 1000},
            checkpoint_path=None,
            history=[_rung(1, 4, "continue", 0.55), {"epoch": 2, "score": 0.58}, _rung(3, 9, "stop", 0.6)],
            stopped_at_rung=3,
            stop_reason="dominated at the epoch-3 rung by d-b",
        )
    )
    store.record_trial(make_record("s", "d-b", history=[_rung(1, 2, "continue", 0.7), _rung(3, 7, "continue", 0.8)]))
    row = store.query("SELECT status, stopped_at_rung, stop_reason FROM trials WHERE trial_id = 'd-a'").iloc[0]
    assert (row.status, row.stopped_at_rung, row.stop_reason) == ("stopped", 3, "dominated at the epoch-3 rung by d-b")
    assert store.trial_ids_with_status("s", ("finished", "stopped"), "distill") == {"d-a", "d-b"}
    assert store.finished_trial_ids("s") == {"d-b"}
    assert store.trial_scores("s", "distill")["d-a"] == ("stopped", 0.6, 1000)
    entries = store.rung_entries("s", "distill")
    assert [(e["trial_id"], e["rung"], e["rung_seq"], e["rung_decision"]) for e in entries] == [
        ("d-b", 1, 2, "continue"),
        ("d-a", 1, 4, "continue"),
        ("d-b", 3, 7, "continue"),
        ("d-a", 3, 9, "stop"),
    ]
    view = store.query("SELECT trial_id, rung, arrival, decision, status FROM rung_results ORDER BY arrival")
    assert view.values.tolist()[-1] == ["d-a", 3, 9, "stop", "stopped"]
    assert store.query("SELECT trial_id FROM trial_results").trial_id.tolist() == ["d-b"]
    # a run without the scheduler trains it to the end: the finished row replaces the stopped one
    store.record_trial(make_record("s", "d-a"))
    row = store.query("SELECT status, stopped_at_rung IS NULL AS unset FROM trials WHERE trial_id = 'd-a'").iloc[0]
    assert row.status == "finished" and row.unset


def test_a_stopped_outcome_keeps_its_score_and_needs_one():
    o = TrialOutcome(status="stopped", started_at=0.0, finished_at=1.0, metrics={"score": 0.7, "epochs": 1})
    back = TrialOutcome.from_result(o.to_result())
    assert back.stopped and not back.finished and back.score == 0.7
    with pytest.raises(OutcomeError, match="a stopped trial outcome needs a numeric"):
        TrialOutcome(status="stopped", started_at=0.0, finished_at=1.0)
