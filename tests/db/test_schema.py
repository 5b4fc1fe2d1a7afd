"""db.schema: numbered migrations (001 -> 002 keeps rows), views installed only when given, read-only checks."""

from __future__ import annotations

import duckdb
import pytest

import db.store as store_mod
from db.connection import Connector
from db.errors import StoreError
from db.schema import latest_schema_version, migrate
from db.store import ExperimentStore
from tests.fakes import make_record

VIEWS = (("n_trials", "SELECT count(*) AS n FROM trials"), ("n_trials_twice", "SELECT 2 * n AS n2 FROM n_trials"))


def test_migrations_create_schema_once(tmp_path):
    path = tmp_path / "sub" / "fw.duckdb"
    store = ExperimentStore(path)
    assert store.schema_version() == latest_schema_version() >= 2
    ExperimentStore(path)  # reopening applies nothing twice
    versions = store.query("SELECT version FROM schema_version ORDER BY version")["version"].tolist()
    assert versions == list(range(1, latest_schema_version() + 1))
    names = dict(store.relations())
    for table in ("sweeps", "trials", "results", "epochs", "baselines", "schema_version", "meta"):
        assert names[table] == "table"
    assert "view" not in names.values()  # the store owns no views: none given, none installed


def test_thesis_baselines_seeded(tmp_path):
    b = ExperimentStore(tmp_path / "fw.duckdb").query("SELECT * FROM baselines WHERE source = 'thesis table 7.5'")
    assert len(b) == 12
    assert set(b["name"]) == {"RoBERTa-large", "TinyBERT-6", "GLUE BiLSTM+GloVe", "GLUE BiLSTM+ELMo"}
    assert set(b["task"]) == {"sst2", "qqp", "mnli"}
    roberta_qqp = b[(b["name"] == "RoBERTa-large") & (b["task"] == "qqp")].iloc[0]
    assert roberta_qqp["accuracy"] == pytest.approx(0.9215) and roberta_qqp["f1"] == pytest.approx(0.8958)
    assert roberta_qqp["disk_bytes"] == 1_426_000_000
    glove = b[(b["name"] == "GLUE BiLSTM+GloVe")].set_index("task")["disk_bytes"]
    assert glove["sst2"] == 2_950_000_000 and glove["qqp"] == 2_968_000_000  # single-sentence vs pair size


def test_migration_002_upgrades_a_version_1_database_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v1.duckdb"
    assert migrate(Connector(path, read_only=False, lock_timeout=5), views=(), target=1) == 1
    con = duckdb.connect(str(path))  # rows as version-1 code wrote them (positional, without the new columns)
    con.execute("INSERT INTO sweeps VALUES ('old', '{}', now(), now(), 'finished', 'v1', '/tmp/old')")
    con.execute(
        "INSERT INTO trials (sweep, trial_id, stage, task, arch, embedding, emb_dim, bootstrap, seed, status, "
        "recorded_at) VALUES ('old', 't1', 'distill', 'sst2', 'ffn', 'hash', 25, false, 1, 'finished', now())"
    )
    con.execute("INSERT INTO results (sweep, trial_id, score) VALUES ('old', 't1', 0.8)")
    con.close()
    with pytest.raises(StoreError, match="schema version 1, older than"):
        ExperimentStore(path, read_only=True)

    store = ExperimentStore(path)  # writable open: applies 002
    assert store.schema_version() == latest_schema_version()
    st = store.sweep_status("old")
    assert st["status"] == "finished" and st["message"] is None and st["trials"] == 1
    old = store.query("SELECT trial_id, device, node FROM trials").iloc[0]
    assert old["trial_id"] == "t1" and old["device"] is None and old["node"] is None
    assert store.query("SELECT score FROM results")["score"][0] == pytest.approx(0.8)
    assert store.record_trial(make_record("old", "t2", device="cuda:0", node="gpu-host-1"))
    new = store.query("SELECT device, node FROM trials WHERE trial_id = 't2'").iloc[0]
    assert (new["device"], new["node"]) == ("cuda:0", "gpu-host-1")
    assert store.query("SELECT count(*) AS n FROM baselines")["n"][0] == 12  # seeded once


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "fw.duckdb"
    ExperimentStore(path)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (999, 'future', now())")
    con.close()
    store_mod._MIGRATED.clear()
    with pytest.raises(StoreError, match="newer than this code knows"):
        ExperimentStore(path)
    with pytest.raises(StoreError, match="newer than this code knows"):
        ExperimentStore(path, read_only=True)


def test_given_views_are_installed_and_never_touched_without_views(tmp_path):
    path = tmp_path / "fw.duckdb"
    store = ExperimentStore(path, views=VIEWS)
    store.record_trial(make_record("s", "t1"))
    assert dict(store.relations())["n_trials_twice"] == "view"
    assert store.query("SELECT n2 FROM n_trials_twice")["n2"][0] == 2
    store_mod._MIGRATED.clear()  # as in a new process
    plain = ExperimentStore(path)  # no views given: the installed ones stay as they are
    assert plain.query("SELECT n2 FROM n_trials_twice")["n2"][0] == 2
    ro = ExperimentStore(path, read_only=True)
    assert ro.query("SELECT n FROM n_trials")["n"][0] == 1


def test_read_only_reader_shadows_other_installed_views(tmp_path):
    path = tmp_path / "fw.duckdb"
    ExperimentStore(path, views=VIEWS)
    other = (("n_trials", "SELECT 42 AS n FROM trials"), VIEWS[1])
    ro = ExperimentStore(path, read_only=True, views=other)
    assert ro.query("SELECT n FROM n_trials").empty  # this reader's view (no trials yet: no rows)
    assert dict(ro.relations())["n_trials"] == "view"
    assert ExperimentStore(path, read_only=True).query("SELECT n FROM n_trials")["n"][0] == 0  # the file: unchanged
    store_mod._MIGRATED.clear()
    ExperimentStore(path, views=other)  # a writer with other views re-installs them
    assert ExperimentStore(path, read_only=True).query("SELECT count(*) AS c FROM n_trials")["c"][0] == 0


def test_broken_view_is_a_bug_not_a_user_error(tmp_path):
    with pytest.raises(RuntimeError, match="view broken failed to install") as e:
        ExperimentStore(tmp_path / "fw.duckdb", views=[("broken", "SELECT * FROM no_such_table")])
    assert not isinstance(e.value, StoreError)


def test_read_only_errors(tmp_path):
    with pytest.raises(StoreError, match="no experiment database at"):
        ExperimentStore(tmp_path / "missing.duckdb", read_only=True)
    assert not (tmp_path / "missing.duckdb").exists()
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(StoreError, match="not a featherweight experiment database"):
        ExperimentStore(other, read_only=True)
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="not a DuckDB database"):
        ExperimentStore(garbage, read_only=True)


def _foreign(path, *, own_schema_version: bool = False, pending_wal: bool = False) -> None:
    """Another program's DuckDB file: a table, a view, maybe a schema_version table of its own, maybe rows still in
    its write-ahead log."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers (id INTEGER, name VARCHAR)")
    con.execute("INSERT INTO customers VALUES (1, 'a'), (2, 'b')")
    con.execute("CREATE VIEW named AS SELECT name FROM customers")
    if own_schema_version:
        con.execute("CREATE TABLE schema_version (version INTEGER, name VARCHAR, applied_at TIMESTAMP)")
        con.execute("INSERT INTO schema_version VALUES (1, 'create customers', now()), (2, 'more', now())")
    con.execute("CHECKPOINT")
    if pending_wal:
        con.execute("SET checkpoint_threshold = '1GB'")
        con.execute("INSERT INTO customers VALUES (3, 'c')")
        os_copy = {p.name: p.read_bytes() for p in path.parent.iterdir()}  # as a killed program left them
        con.close()
        for name, data in os_copy.items():
            (path.parent / name).write_bytes(data)
        for p in list(path.parent.iterdir()):
            if p.name not in os_copy:
                p.unlink()
        return
    con.close()


def _snapshot(path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}


@pytest.mark.parametrize(
    "kind", [{}, {"own_schema_version": True}, {"pending_wal": True}], ids=["tables", "own-schema-version", "wal"]
)
def test_foreign_database_is_refused_and_never_changed(tmp_path, kind):
    from analysis.views import open_store
    from db.errors import ForeignDatabaseError

    path = tmp_path / "theirs.duckdb"
    _foreign(path, **kind)
    before = _snapshot(path)
    for open_it in (
        lambda: ExperimentStore(path),
        lambda: open_store(path),
        lambda: migrate(Connector(path, read_only=False, lock_timeout=5), views=()),
        lambda: ExperimentStore(path, read_only=True),
        lambda: open_store(path, read_only=True),
    ):
        with pytest.raises(ForeignDatabaseError, match="not a featherweight experiment database") as e:
            open_it()
        assert str(path) in str(e.value) and "customers" in str(e.value) and "\n" not in str(e.value)
        assert _snapshot(path) == before  # not a byte changed, its log not folded in
    con = duckdb.connect(str(path), read_only=True)
    tables = sorted(r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall())
    con.close()
    assert tables == sorted(["customers", "named"] + (["schema_version"] if kind.get("own_schema_version") else []))


def test_empty_duckdb_file_is_adopted_by_a_writer_only(tmp_path):
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(StoreError, match="empty DuckDB file"):
        ExperimentStore(path, read_only=True)
    assert ExperimentStore(path).schema_version() == latest_schema_version()
    assert ExperimentStore(path, read_only=True).schema_version() == latest_schema_version()


def test_interrupted_first_migration_is_still_ours(tmp_path):
    """A first open killed between creating schema_version and migration 001: the empty table alone is ours."""
    path = tmp_path / "fw.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)")
    con.close()
    assert ExperimentStore(path).schema_version() == latest_schema_version()
