"""Teacher-compression trials in the database (migration 006): the new columns are written, read back through
``trial_results``, journaled (old journal lines still apply), and a version-5 database keeps its rows."""

from __future__ import annotations

import dataclasses
import json

import duckdb
import pytest

from analysis.views import open_store
from db.connection import Connector
from db.errors import StoreError
from db.journal import Journal, apply_journal
from db.schema import latest_schema_version, migrate
from db.store import ExperimentStore
from tests.fakes import make_record
from tests.teacher_compression_fakes import INT8, TEACHER_DIR, make_tc_record

NEW = ("teacher", "trainable_params", "latency_ms", "layers", "teacher_latency_ms")


def _row(store, trial_id: str) -> dict:
    got = store.query("SELECT * FROM trial_results WHERE trial_id = ?", [trial_id])
    assert len(got) == 1, trial_id
    return {k: (None if v != v else v) for k, v in got.iloc[0].to_dict().items()}  # NaN -> None


def test_teacher_compression_row_round_trips_through_trial_results(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    store.start_sweep("s", {}, "test", str(tmp_path / "s"))
    assert store.record_trial(make_tc_record(trial_id="tc-th", method="theseus", layers=3))
    assert store.record_trial(
        make_tc_record(
            trial_id="tc-bv", method="bertvision", layers=4, quantize=True, trainable_params=52_000, params=22_800_000
        )
    )
    assert store.record_trial(make_record("s", "d-1"))
    th = _row(store, "tc-th")
    assert th["stage"] == "teacher_compression" and th["label"] == "Theseus-3L"
    assert (th["teacher"], th["trainable_params"], th["layers"]) == (TEACHER_DIR, 5_300_000, 3)
    assert th["latency_ms"] == pytest.approx(6.5) and th["params"] == 17_400_000
    assert th["teacher_latency_ms"] == pytest.approx(13.0)  # migration 007
    assert th["parent_trial_id"] is None and th["alpha"] is None and th["pooling"] is None
    assert json.loads(th["config"])["settings"]["replace_rate"] == 0.5
    bv = _row(store, "tc-bv")
    assert bv["label"] == "BERT-Vision-4L adapter + q" and bv["quantization"] == INT8
    assert bv["trainable_params"] == 52_000
    student = _row(store, "d-1")
    assert student["label"] == "BiLSTM_BPE25" and all(student[c] is None for c in NEW)
    assert store.finished_trial_ids("s", stage="teacher_compression") == {"tc-th", "tc-bv"}
    assert store.sweep_status("s")["by_stage"]["teacher_compression"] == {"finished": 2}


def test_new_fields_fall_back_to_sizes_and_metrics():
    from db.columns import RESULT_COLUMNS
    from db.rows import trial_rows

    rec = make_tc_record(trainable_params=None, latency_ms=None, layers=None)
    rec.sizes = {**rec.sizes, "trainable_params": 1234, "layers": 2}
    rec.metrics = {**rec.metrics, "latency_ms": 3.25}
    result = dict(zip(RESULT_COLUMNS, trial_rows(rec).result, strict=True))
    assert (result["trainable_params"], result["layers"], result["latency_ms"]) == (1234, 2, 3.25)
    # the field wins over the dict; NaN latency is stored as NULL
    rec = make_tc_record(trainable_params=7, latency_ms=float("nan"))
    result = dict(zip(RESULT_COLUMNS, trial_rows(rec).result, strict=True))
    assert result["trainable_params"] == 7 and result["latency_ms"] is None


def test_unknown_stage_is_refused(tmp_path):
    store = ExperimentStore(tmp_path / "fw.duckdb")
    with pytest.raises(StoreError, match="stage must be a name"):
        store.record_trial(make_tc_record(stage="teacher-compression"))
    with pytest.raises(StoreError, match="stage must be a name"):
        store.record_trial(make_tc_record(stage=""))
    assert store.query("SELECT count(*) AS n FROM trials")["n"][0] == 0


def test_journal_round_trip_and_lines_from_before_006(tmp_path):
    j = Journal(tmp_path / "journal.jsonl")
    rec = make_tc_record(trial_id="tc-1", quantize=True)
    j.append(rec)
    old = dataclasses.asdict(make_record("s", "d-old"))
    for c in NEW:
        del old[c]  # a line an older version wrote
    with open(j.path, "a") as f:
        f.write(json.dumps(old, default=str) + "\n")
    recs = {r.trial_id: r for r in j.records()}
    assert recs["tc-1"] == rec
    assert all(getattr(recs["d-old"], c) is None for c in NEW)
    store = open_store(tmp_path / "fw.duckdb")
    assert apply_journal(store, j, "s") == 2
    assert _row(store, "tc-1")["latency_ms"] == pytest.approx(6.5)
    assert _row(store, "d-old")["layers"] is None


def test_migration_006_keeps_version_5_rows(tmp_path):
    path = tmp_path / "v5.duckdb"
    assert migrate(Connector(path, read_only=False, lock_timeout=5), views=(), target=5) == 5
    con = duckdb.connect(str(path))  # rows as version-5 code wrote them
    con.execute("INSERT INTO sweeps (name, spec, started_at, status) VALUES ('old', '{}', now(), 'finished')")
    con.execute(
        "INSERT INTO trials (sweep, trial_id, stage, task, arch, embedding, emb_dim, bootstrap, seed, status, "
        "recorded_at, device) VALUES ('old', 't1', 'distill', 'sst2', 'ffn', 'hash', 25, false, 1, 'finished', "
        "now(), 'cpu')"
    )
    con.execute("INSERT INTO results (sweep, trial_id, score, params) VALUES ('old', 't1', 0.8, 1000)")
    con.execute(
        "INSERT INTO stages (sweep, task, stage, fingerprint, status) VALUES ('old', 'sst2', 'teacher', "
        "'abc', 'finished')"
    )
    con.close()
    with pytest.raises(StoreError, match="schema version 5, older than"):
        ExperimentStore(path, read_only=True)
    store = open_store(path)  # a writable open migrates
    assert store.schema_version() == latest_schema_version() >= 6
    old = _row(store, "t1")
    assert (old["label"], old["score"], old["params"]) == ("FFN_Hash25", pytest.approx(0.8), 1000)
    assert all(old[c] is None for c in NEW)
    assert len(store.stages("old")) == 1
    assert store.record_trial(make_tc_record("old", "tc-1", method="bertvision", layers=6))
    assert _row(store, "tc-1")["label"] == "BERT-Vision-6L adapter"


def test_bertvision_label_reads_the_resolved_head_when_the_spec_left_it_out(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    config = {
        "task": "sst2",
        "method": "bertvision",
        "seed": 0,
        "quantize": False,
        "settings": {"layers": 2},
        "resolved": {"bertvision": {"layers": 2, "head": "concat", "adapter_size": 8}},
    }
    store.record_trial(make_tc_record(trial_id="tc-c", method="bertvision", layers=2, config=config))
    store.record_trial(make_tc_record(trial_id="tc-none", method="bertvision", layers=None, settings={}))
    assert _row(store, "tc-c")["label"] == "BERT-Vision-2L concat"
    assert _row(store, "tc-none")["label"] == "BERT-Vision"  # nothing known: the method alone
