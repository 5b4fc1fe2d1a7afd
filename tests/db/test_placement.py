"""Placement columns (migration 004): written, read back through ``trial_results``, journaled, and NULL for the rows
of a version-3 database."""

from __future__ import annotations

import dataclasses
import json

import duckdb
import pytest

from analysis.views import open_store
from db.columns import PLACEMENT_COLUMNS
from db.connection import Connector
from db.errors import StoreError
from db.journal import Journal
from db.schema import latest_schema_version, migrate
from db.store import ExperimentStore
from tests.fakes import make_record

GPU = {
    "device": "cuda:3",
    "node": "10.0.0.7/5e1f00aa",
    "node_id": "5e1f00aa" * 7,
    "host": "gpu-host-1",
    "node_ip": "10.0.0.7",
    "gpu_model": "NVIDIA H100 80GB HBM3",
    "torch_version": "2.13.0+cu126",
    "cuda_version": "12.6",
}
CPU = {
    "device": "cpu",
    "node": "10.0.0.8/77aa0011",
    "node_id": "77aa0011" * 7,
    "host": "cpu-host-2",
    "node_ip": "10.0.0.8",
    "gpu_model": None,
    "torch_version": "2.13.0+cpu",
    "cuda_version": None,
}


def test_placement_round_trips_through_trials_and_trial_results(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    assert store.record_trial(make_record("s", "t1", **GPU))
    assert store.record_trial(make_record("s", "t2", **CPU))
    cols = ", ".join(("trial_id", "device", "node", *PLACEMENT_COLUMNS))
    for relation in ("trials", "trial_results"):
        got = store.query(f"SELECT {cols} FROM {relation} ORDER BY trial_id")
        rows = [{k: (None if v != v else v) for k, v in r.items()} for r in got.to_dict("records")]  # NaN -> None
        assert rows == [{"trial_id": "t1", **GPU}, {"trial_id": "t2", **CPU}], relation
    # telling a mixed cluster apart in SQL
    by = store.query(
        "SELECT host, coalesce(gpu_model, 'cpu') AS hw, count(*) AS n FROM trial_results GROUP BY ALL ORDER BY host"
    )
    assert by.values.tolist() == [["cpu-host-2", "cpu", 1], ["gpu-host-1", "NVIDIA H100 80GB HBM3", 1]]


def test_journal_keeps_placement_and_reads_lines_from_before_it(tmp_path):
    j = Journal(tmp_path / "journal.jsonl")
    j.append(make_record("s", "t1", **GPU))
    old = dataclasses.asdict(make_record("s", "t0", device="cuda", node="h"))
    for c in PLACEMENT_COLUMNS:
        del old[c]  # a line an older version wrote
    with open(j.path, "a") as f:
        f.write(json.dumps(old, default=str) + "\n")
    recs = {r.trial_id: r for r in j.records()}
    assert {c: getattr(recs["t1"], c) for c in GPU} == GPU
    assert recs["t0"].device == "cuda" and all(getattr(recs["t0"], c) is None for c in PLACEMENT_COLUMNS)


def test_migration_004_keeps_version_3_rows_with_null_placement(tmp_path):
    path = tmp_path / "v3.duckdb"
    assert migrate(Connector(path, read_only=False, lock_timeout=5), views=(), target=3) == 3
    con = duckdb.connect(str(path))  # a row as version-3 code wrote it
    con.execute("INSERT INTO sweeps (name, spec, started_at, status) VALUES ('old', '{}', now(), 'finished')")
    con.execute(
        "INSERT INTO trials (sweep, trial_id, stage, task, arch, embedding, emb_dim, bootstrap, seed, status, "
        "recorded_at, device, node) VALUES ('old', 't1', 'distill', 'sst2', 'ffn', 'hash', 25, false, 1, "
        "'finished', now(), 'cuda', '10.0.0.1/abcd1234')"
    )
    con.execute("INSERT INTO results (sweep, trial_id, score) VALUES ('old', 't1', 0.8)")
    con.close()
    with pytest.raises(StoreError, match="schema version 3, older than"):
        ExperimentStore(path, read_only=True)
    store = open_store(path)  # a writable open migrates
    assert store.schema_version() == latest_schema_version() >= 4
    old = store.query("SELECT * FROM trial_results WHERE trial_id = 't1'").iloc[0]
    assert (old["device"], old["node"], old["score"]) == ("cuda", "10.0.0.1/abcd1234", pytest.approx(0.8))
    assert old[list(PLACEMENT_COLUMNS)].isna().all()
    assert store.record_trial(make_record("old", "t2", **CPU))
    new = store.query("SELECT host, node_id, torch_version FROM trials WHERE trial_id = 't2'").iloc[0]
    assert new.tolist() == [CPU["host"], CPU["node_id"], CPU["torch_version"]]
