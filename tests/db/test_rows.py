"""db.rows, db.values, db.sweep_rows, db.baseline_rows: TrialRecord, idempotent trial writes, value cleaning,
validation, sweeps and teachers (no Ray)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import db.rows as rows_mod
from db.errors import StoreError
from db.rows import TrialRecord, flatten_sizes
from db.store import ExperimentStore
from tests.fakes import make_record


@pytest.fixture()
def store(tmp_path) -> ExperimentStore:
    return ExperimentStore(tmp_path / "fw.duckdb")


def test_record_trial_is_idempotent(store):
    rec = make_record("s", "t1")
    assert store.record_trial(rec) is True
    assert store.record_trial(rec) is False
    changed = make_record("s", "t1", metrics={"score": 0.1, "accuracy": 0.1})
    assert store.record_trial(changed) is False  # finished trials are append-only
    assert store.query("SELECT count(*) AS n FROM trials")["n"][0] == 1
    assert store.query("SELECT count(*) AS n FROM results")["n"][0] == 1
    assert store.query("SELECT count(*) AS n FROM epochs")["n"][0] == 5
    assert store.query("SELECT score FROM results")["score"][0] == pytest.approx(0.85)
    assert store.finished_trial_ids("s") == {"t1"}
    assert store.finished_trial_ids("other") == set()


def test_same_trial_id_in_two_sweeps_is_two_rows(store):
    assert store.record_trial(make_record("a", "t1"))
    assert store.record_trial(make_record("b", "t1"))
    assert store.query("SELECT count(*) AS n FROM results")["n"][0] == 2


def test_error_trial_is_recorded_then_replaced_by_a_finished_rerun(store):
    err = make_record("s", "t1", status="error", error="RuntimeError: NaN loss", metrics={}, sizes={}, history=[])
    assert store.record_trial(err)
    assert store.finished_trial_ids("s") == set()
    row = store.query("SELECT status, error FROM trials").iloc[0]
    assert row["status"] == "error" and "NaN" in row["error"]
    assert store.query("SELECT count(*) AS n FROM results")["n"][0] == 0
    assert store.record_trial(make_record("s", "t1"))
    assert store.query("SELECT status FROM trials")["status"].tolist() == ["finished"]
    assert store.finished_trial_ids("s") == {"t1"}


def test_device_and_node_are_recorded(store):
    store.record_trial(make_record("s", "t1", device="cuda:0", node="10.0.0.7"))
    store.record_trial(make_record("s", "t2"))
    got = store.query("SELECT trial_id, device, node FROM trials ORDER BY trial_id")
    assert got.iloc[0].tolist() == ["t1", "cuda:0", "10.0.0.7"]
    assert got.iloc[1][["device", "node"]].isna().all()


def test_values_are_cleaned(store):
    rec = make_record(
        "s",
        "t1",
        emb_dim=np.int64(25),
        seed=np.int64(7),
        alpha=np.float32(0.5),
        metrics={"score": float("nan"), "accuracy": np.float64(0.75), "custom": float("inf")},
        sizes={
            "params": {"total": 100, "embedding": 60, "encoder": 30, "classifier": 10, "nonzero": 90},
            "disk_bytes": np.int64(400),
            "gzip_bytes": 300,
        },  # the core's size_report shape
        config={"arr": np.arange(3), "nan": float("nan"), "path": Path("/x")},
    )
    store.record_trial(rec)
    r = store.query("SELECT * FROM trials JOIN results USING (sweep, trial_id)").iloc[0]
    assert r["score"] is None or math.isnan(r["score"])  # NULL, not NaN, in the database
    assert store.query("SELECT count(*) AS n FROM results WHERE score IS NULL")["n"][0] == 1
    assert r["accuracy"] == pytest.approx(0.75) and r["alpha"] == pytest.approx(0.5)
    assert (r["params"], r["params_embedding"], r["nonzero_params"], r["disk_bytes"]) == (100, 60, 90, 400)
    cfg = store.query("SELECT config->>'$.arr[2]' AS a, config->>'$.path' AS p FROM trials").iloc[0]
    assert (cfg["a"], cfg["p"]) == ("2", "/x")


def test_flatten_sizes_accepts_both_shapes():
    nested = flatten_sizes({"params": {"total": 10, "embedding": 6, "nonzero": 9}, "disk_bytes": 80})
    assert (nested["params"], nested["params_embedding"], nested["nonzero_params"]) == (10, 6, 9)
    assert flatten_sizes({"params": 5, "disk_bytes": 8}) == {"params": 5, "disk_bytes": 8}


def test_record_validation(store):
    with pytest.raises(StoreError, match="stage"):
        store.record_trial(make_record("s", "t1", stage="Train"))
    with pytest.raises(StoreError, match="status"):
        store.record_trial(make_record("s", "t1", status="running"))
    assert store.query("SELECT count(*) AS n FROM trials")["n"][0] == 0


def test_failed_transaction_leaves_nothing(store, monkeypatch):
    rec = make_record("s", "t1", history=[{"epoch": 1, "metrics": {}}, {"epoch": 2, "metrics": {}}])
    real = rows_mod._history_row

    def broken(entry, i):
        row = real(entry, i)
        row["metrics"] = object()  # not bindable: the INSERT of epochs fails inside the transaction
        return row

    monkeypatch.setattr(rows_mod, "_history_row", broken)
    with pytest.raises(Exception):  # noqa: B017 - DuckDB's own error type
        store.record_trial(rec)
    monkeypatch.setattr(rows_mod, "_history_row", real)
    assert store.query("SELECT count(*) AS n FROM trials")["n"][0] == 0
    assert store.record_trial(rec)


def test_sweep_start_finish_resume_and_message(store):
    store.start_sweep("s1", {"grid": {"alpha": [0, 0.5]}}, "abc123", "/tmp/s1")
    st = store.sweep_status("s1")
    assert st["status"] == "running" and st["message"] is None and st["finished_at"] is None
    store.finish_sweep("s1", "failed", "12 of 12 trials failed; first error: RuntimeError: NaN loss")
    st = store.sweep_status("s1")
    assert st["status"] == "failed" and st["message"].startswith("12 of 12 trials failed") and st["finished_at"]
    store.start_sweep("s1", {"grid": {}}, "def456", "/tmp/s1")  # resume: keeps the start time, clears the outcome
    again = store.sweep_status("s1")
    assert again["started_at"] == st["started_at"] and again["status"] == "running"
    assert again["message"] is None and again["finished_at"] is None and again["code_version"] == "def456"
    store.finish_sweep("s1", "finished")
    assert store.sweep_status("s1")["message"] is None
    assert store.query("SELECT spec->>'$.grid' AS g FROM sweeps")["g"][0] == "{}"
    with pytest.raises(StoreError, match="unknown sweep"):
        store.finish_sweep("nope", "finished")
    with pytest.raises(ValueError, match="sweep status must be one of") as e:
        store.finish_sweep("s1", "done")  # a status the runner never passes: a bug
    assert not isinstance(e.value, StoreError)
    with pytest.raises(StoreError, match="must not be empty"):
        store.start_sweep("", {}, "x", "/tmp")


def test_record_teacher_replaces_per_sweep_task_name(store):
    store.record_teacher("s", "sst2", "roberta-base-ft", 0.93, 0.93, None, 125_000_000, 500_000_000, 460_000_000)
    store.record_teacher("s", "sst2", "roberta-base-ft", 0.94, 0.94, None, 125_000_000, 500_000_000, None)
    t = store.query("SELECT * FROM baselines WHERE source = 'measured'")
    assert len(t) == 1 and t["score"][0] == pytest.approx(0.94) and t["sweep"][0] == "s"
    assert t["note"][0] == "teacher" and t["gzip_bytes"].isna()[0]


def test_trial_record_defaults_match_contract():
    rec = TrialRecord("s", "t", "distill", "sst2", "ffn", "hash", 25, None, None, None, False, 1, None)
    assert rec.status == "finished" and rec.config == {} and rec.history == [] and rec.parent_trial_id is None
    assert rec.device is None and rec.node is None
