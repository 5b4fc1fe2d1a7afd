"""db.reads: queries, sweep status, finished trial ids per stage, a parent's compression history."""

from __future__ import annotations

import pytest

from db.errors import StoreError
from db.store import ExperimentStore
from tests.fakes import make_record


@pytest.fixture()
def store(tmp_path) -> ExperimentStore:
    return ExperimentStore(tmp_path / "fw.duckdb")


def test_sweep_status_and_sweeps(store):
    store.start_sweep("s1", {}, "abc123", "/tmp/s1")
    store.record_trial(make_record("s1", "t1"))
    store.record_trial(make_record("s1", "t2", stage="compress", parent_trial_id="t1", pruning="p", quantization="q"))
    store.record_trial(make_record("s1", "t3", status="error", error="x", metrics={}, sizes={}))
    store.finish_sweep("s1", "failed", "1 of 3 trials failed; first error: x")
    st = store.sweep_status("s1")
    assert set(st) == {
        "name",
        "status",
        "message",
        "started_at",
        "finished_at",
        "code_version",
        "storage_path",
        "trials",
        "by_status",
        "by_stage",
    }
    assert st["trials"] == 3 and st["by_status"] == {"finished": 2, "error": 1}
    assert st["by_stage"] == {"distill": {"finished": 1, "error": 1}, "compress": {"finished": 1}}
    assert st["message"] == "1 of 3 trials failed; first error: x"
    sw = store.sweeps()
    assert sw.loc[0, "name"] == "s1" and sw.loc[0, "finished"] == 2 and sw.loc[0, "errors"] == 1
    assert sw.loc[0, "status"] == "failed" and sw.loc[0, "message"].startswith("1 of 3")
    with pytest.raises(StoreError, match="unknown sweep 'nope'.*s1"):
        store.sweep_status("nope")


def test_sweep_spec(store):
    store.start_sweep("s1", {"name": "s1", "grid": {"alpha": [0, 0.5]}}, "abc", "/tmp/s1")
    assert store.sweep_spec("s1") == {"name": "s1", "grid": {"alpha": [0, 0.5]}}
    with pytest.raises(StoreError, match="unknown sweep 'nope' \\(known: s1\\)"):
        store.sweep_spec("nope")


def test_finished_trial_ids_per_stage(store):
    store.record_trial(make_record("s", "d1"))
    store.record_trial(make_record("s", "d2", status="error", error="x", metrics={}, sizes={}))
    store.record_trial(make_record("s", "c1", stage="compress", parent_trial_id="d1"))
    store.record_trial(make_record("other", "d9"))
    assert store.finished_trial_ids("s") == {"d1", "c1"}
    assert store.finished_trial_ids("s", stage="distill") == {"d1"}
    assert store.finished_trial_ids("s", stage="compress") == {"c1"}
    assert store.finished_trial_ids("s", stage="train") == set()  # a stage no trial ran
    with pytest.raises(ValueError, match="stage"):
        store.finished_trial_ids("s", stage="Distill; DROP TABLE trials")


def test_compress_history(store):
    def child(tid, parent, sweep="s", status="finished", targets=0.5, score=0.8, gzip=1000, finished_at=None):
        return make_record(
            sweep,
            tid,
            stage="compress",
            parent_trial_id=parent,
            status=status,
            config={"targets": {"encoder": targets}, "trial_id": tid},
            metrics={"score": score, "accuracy": score} if status == "finished" else {},
            sizes={"gzip_bytes": gzip, "disk_bytes": 2 * gzip, "params": gzip // 4} if status == "finished" else {},
            finished_at=finished_at,
        )

    store.record_trial(make_record("s", "p1"))
    store.record_trial(child("c2", "p1", targets=0.7, score=0.75, gzip=800, finished_at=2_000_000_000))
    store.record_trial(child("c1", "p1", targets=0.5, score=0.8, gzip=1000, finished_at=1_900_000_000))
    store.record_trial(child("c3", "p1", status="error"))
    store.record_trial(child("c4", "p2"))
    store.record_trial(child("c1", "p1", sweep="other", targets=0.1))  # same ids in another sweep: not mixed in
    got = store.compress_history("s", "p1", "gzip_bytes")
    assert got == [
        ({"targets": {"encoder": 0.5}, "trial_id": "c1"}, 0.8, 1000.0),
        ({"targets": {"encoder": 0.7}, "trial_id": "c2"}, 0.75, 800.0),
    ]
    assert [size for _, _, size in store.compress_history("s", "p1", "params")] == [250.0, 200.0]
    assert store.compress_history("s", "nobody", "gzip_bytes") == []
    with pytest.raises(StoreError, match="size measure"):
        store.compress_history("s", "p1", "gzip_bytes; DROP TABLE trials")


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
    with pytest.raises(StoreError, match="no_such_table"):
        store.arrow("SELECT * FROM no_such_table")


def test_arrow_keeps_types(store):
    store.record_trial(make_record("s", "t1"))
    table = store.arrow("SELECT trial_id, seed FROM trials")
    assert table.num_rows == 1 and str(table.schema.field("seed").type) == "int64"


def test_sql_without_a_statement_is_a_store_error(tmp_path):
    ExperimentStore(tmp_path / "fw.duckdb")
    for read_only in (False, True):
        store = ExperimentStore(tmp_path / "fw.duckdb", read_only=read_only)
        for sql in ("-- hi", "/* x */", ";"):
            with pytest.raises(StoreError, match="no SQL statement"):
                store.query(sql)


def test_a_huge_timeout_is_no_timeout(tmp_path):
    from db.limits import QueryLimits

    ExperimentStore(tmp_path / "fw.duckdb")
    store = ExperimentStore(tmp_path / "fw.duckdb", read_only=True, limits=QueryLimits(timeout_s=1e300))
    assert store.query("SELECT 42 AS a")["a"][0] == 42
