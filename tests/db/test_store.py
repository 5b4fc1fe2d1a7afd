"""ExperimentStore: migrations, idempotent writes, sweeps, teachers, error handling (no Ray, no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from db.store import DEFAULT_DB_PATH, ExperimentStore, StoreError, TrialRecord, default_db_path, latest_schema_version
from tests.fakes import make_record


@pytest.fixture()
def store(tmp_path) -> ExperimentStore:
    return ExperimentStore(tmp_path / "fw.duckdb")


def test_default_path_and_env(monkeypatch):
    monkeypatch.delenv("FEATHERWEIGHT_DB", raising=False)
    assert str(default_db_path()) == DEFAULT_DB_PATH == "runs/featherweight.duckdb"
    monkeypatch.setenv("FEATHERWEIGHT_DB", "/x/y.duckdb")
    assert str(default_db_path()) == "/x/y.duckdb"


def test_migrations_create_schema_once(tmp_path):
    path = tmp_path / "sub" / "fw.duckdb"
    store = ExperimentStore(path)
    assert store.schema_version() == latest_schema_version() >= 1
    ExperimentStore(path)  # reopening applies nothing twice
    versions = store.query("SELECT version FROM schema_version ORDER BY version")["version"].tolist()
    assert versions == sorted(set(versions)) and versions[-1] == latest_schema_version()
    names = dict(store.relations())
    for table in ("sweeps", "trials", "results", "epochs", "baselines", "schema_version"):
        assert names[table] == "table"
    for view in ("trial_results", "seed_summary", "pareto_points", "skyline", "compression"):
        assert names[view] == "view"


def test_thesis_baselines_seeded(store):
    b = store.query("SELECT * FROM baselines WHERE source = 'thesis table 7.5'")
    assert len(b) == 12
    assert set(b["name"]) == {"RoBERTa-large", "TinyBERT-6", "GLUE BiLSTM+GloVe", "GLUE BiLSTM+ELMo"}
    assert set(b["task"]) == {"sst2", "qqp", "mnli"}
    roberta_qqp = b[(b["name"] == "RoBERTa-large") & (b["task"] == "qqp")].iloc[0]
    assert roberta_qqp["accuracy"] == pytest.approx(0.9215) and roberta_qqp["f1"] == pytest.approx(0.8958)
    assert roberta_qqp["disk_bytes"] == 1_426_000_000
    glove = b[(b["name"] == "GLUE BiLSTM+GloVe")].set_index("task")["disk_bytes"]
    assert glove["sst2"] == 2_950_000_000 and glove["qqp"] == 2_968_000_000  # single-sentence vs pair size


def test_record_trial_is_idempotent(store):
    rec = make_record("s", "t1")
    assert store.record_trial(rec) is True
    assert store.record_trial(rec) is False
    changed = make_record("s", "t1", metrics={"score": 0.1, "accuracy": 0.1})
    assert store.record_trial(changed) is False  # finished trials are append-only
    assert store.query("SELECT count(*) AS n FROM trials")["n"][0] == 1
    assert store.query("SELECT count(*) AS n FROM results")["n"][0] == 1
    assert store.query("SELECT count(*) AS n FROM epochs")["n"][0] == 5
    assert store.query("SELECT score FROM trial_results")["score"][0] == pytest.approx(0.85)
    assert store.finished_trial_ids("s") == {"t1"}
    assert store.finished_trial_ids("other") == set()


def test_same_trial_id_in_two_sweeps_is_two_rows(store):
    assert store.record_trial(make_record("a", "t1"))
    assert store.record_trial(make_record("b", "t1"))
    assert store.query("SELECT count(*) AS n FROM trial_results")["n"][0] == 2


def test_error_trial_is_recorded_then_replaced_by_a_finished_rerun(store):
    err = make_record("s", "t1", status="error", error="RuntimeError: NaN loss", metrics={}, sizes={}, history=[])
    assert store.record_trial(err)
    assert store.finished_trial_ids("s") == set()
    row = store.query("SELECT status, error FROM trials").iloc[0]
    assert row["status"] == "error" and "NaN" in row["error"]
    assert store.query("SELECT count(*) AS n FROM trial_results")["n"][0] == 0  # only finished trials
    assert store.record_trial(make_record("s", "t1"))
    assert store.query("SELECT status FROM trials")["status"].tolist() == ["finished"]
    assert store.finished_trial_ids("s") == {"t1"}


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
        },  # fmt: skip  # the core's size_report shape
        config={"arr": np.arange(3), "nan": float("nan"), "path": __import__("pathlib").Path("/x")},
    )
    store.record_trial(rec)
    r = store.query("SELECT * FROM trial_results").iloc[0]
    assert math.isnan(r["score"]) or r["score"] is None  # NULL, not NaN, in the database
    assert store.query("SELECT count(*) AS n FROM results WHERE score IS NULL")["n"][0] == 1
    assert r["accuracy"] == pytest.approx(0.75) and r["alpha"] == pytest.approx(0.5)
    assert (r["params"], r["params_embedding"], r["nonzero_params"], r["disk_bytes"]) == (100, 60, 90, 400)
    cfg = store.query("SELECT config->>'$.arr[2]' AS a, config->>'$.path' AS p FROM trials").iloc[0]
    assert (cfg["a"], cfg["p"]) == ("2", "/x")


def test_record_validation(store):
    with pytest.raises(StoreError, match="stage"):
        store.record_trial(make_record("s", "t1", stage="train"))
    with pytest.raises(StoreError, match="status"):
        store.record_trial(make_record("s", "t1", status="running"))
    assert store.query("SELECT count(*) AS n FROM trials")["n"][0] == 0


def test_failed_transaction_leaves_nothing(store, monkeypatch):
    rec = make_record("s", "t1", history=[{"epoch": 1, "metrics": {}}, {"epoch": 2, "metrics": {}}])
    import db.store as mod

    real = mod._history_row

    def broken(entry, i):
        row = real(entry, i)
        row["metrics"] = object()  # not bindable: the INSERT of epochs fails inside the transaction
        return row

    monkeypatch.setattr(mod, "_history_row", broken)
    with pytest.raises(Exception):  # noqa: B017 - DuckDB's own error type
        store.record_trial(rec)
    monkeypatch.setattr(mod, "_history_row", real)
    assert store.query("SELECT count(*) AS n FROM trials")["n"][0] == 0
    assert store.record_trial(rec)


def test_sweeps_start_resume_finish_status(store):
    store.start_sweep("s1", {"grid": {"alpha": [0, 0.5]}}, "abc123", "/tmp/s1")
    started = store.sweep_status("s1")["started_at"]
    store.record_trial(make_record("s1", "t1"))
    store.record_trial(make_record("s1", "t2", stage="compress", parent_trial_id="t1", pruning="p", quantization="q"))
    store.record_trial(make_record("s1", "t3", status="error", error="x", metrics={}, sizes={}))
    store.finish_sweep("s1", "interrupted")
    store.start_sweep("s1", {"grid": {}}, "def456", "/tmp/s1")  # resume: keeps the start time
    st = store.sweep_status("s1")
    assert st["started_at"] == started and st["status"] == "running" and st["finished_at"] is None
    assert st["code_version"] == "def456"
    assert st["trials"] == 3 and st["by_status"] == {"finished": 2, "error": 1}
    assert st["by_stage"] == {"distill": {"finished": 1, "error": 1}, "compress": {"finished": 1}}
    store.finish_sweep("s1", "finished")
    sw = store.sweeps()
    assert sw.loc[0, "name"] == "s1" and sw.loc[0, "finished"] == 2 and sw.loc[0, "errors"] == 1
    spec = store.query("SELECT spec->>'$.grid' AS g FROM sweeps")["g"][0]
    assert spec == "{}"
    with pytest.raises(StoreError, match="unknown sweep 'nope'.*s1"):
        store.sweep_status("nope")
    with pytest.raises(StoreError, match="unknown sweep"):
        store.finish_sweep("nope", "finished")


def test_record_teacher_replaces_per_sweep_task_name(store):
    store.record_teacher("s", "sst2", "roberta-base-ft", 0.93, 0.93, None, 125_000_000, 500_000_000, 460_000_000)
    store.record_teacher("s", "sst2", "roberta-base-ft", 0.94, 0.94, None, 125_000_000, 500_000_000, None)
    t = store.query("SELECT * FROM baselines WHERE source = 'measured'")
    assert len(t) == 1 and t["score"][0] == pytest.approx(0.94) and t["sweep"][0] == "s"


def test_read_only_errors(tmp_path):
    with pytest.raises(StoreError, match="no experiment database at"):
        ExperimentStore(tmp_path / "missing.duckdb", read_only=True)
    assert not (tmp_path / "missing.duckdb").exists()
    import duckdb

    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(StoreError, match="not a featherweight experiment database"):
        ExperimentStore(other, read_only=True)
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        ExperimentStore(garbage, read_only=True)


def test_read_only_store_cannot_write(store):
    store.record_trial(make_record("s", "t1"))
    ro = ExperimentStore(store.path, read_only=True)
    assert ro.finished_trial_ids("s") == {"t1"}
    with pytest.raises(StoreError, match="query failed"):
        ro.query("DELETE FROM trials")
    with pytest.raises(StoreError):
        ro.migrate()


def test_bad_sql_is_one_line_store_error(store):
    with pytest.raises(StoreError) as e:
        store.query("SELEC * FROM trials")
    assert "query failed" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(StoreError, match="no_such_table"):
        store.query("SELECT * FROM no_such_table")


def test_lock_timeout_names_the_file(tmp_path):
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "fw.duckdb"
    ExperimentStore(path)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r})
            print("held", flush=True)
            time.sleep(30)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="locked by another process"):
            ExperimentStore(path, read_only=True, lock_timeout=0.3)
    finally:
        holder.kill()
        holder.wait()
    assert ExperimentStore(path, read_only=True).schema_version() >= 1  # lock gone: fine again


def test_trial_record_defaults_match_contract():
    rec = TrialRecord("s", "t", "distill", "sst2", "ffn", "hash", 25, None, None, None, False, 1, None)
    assert rec.status == "finished" and rec.config == {} and rec.history == [] and rec.parent_trial_id is None


def test_db_and_analysis_stay_free_of_orchestration():
    """db/ needs only duckdb (+ pandas/pyarrow); analysis/ never imports ray; nothing imports sweep or the core."""
    import subprocess
    import sys

    code = (
        "import sys, db.store, db.commands, analysis.charts, analysis.report, analysis.commands\n"
        "bad = [m for m in ('ray', 'sweep', 'trainables', 'featherweight_core', 'torch', 'optuna') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=__import__("pathlib").Path(__file__).resolve().parents[2])  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""
