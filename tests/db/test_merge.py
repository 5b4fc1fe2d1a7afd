"""``featherweight db merge``: sweeps of several database files (two machines, an older version) brought into one,
atomically, with renames and conflicts reported."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from analysis.views import open_store
from db.connection import Connector
from db.merge import MACHINE_KEYS, merge_databases, table_kinds
from db.rows import class_metric_rows
from db.schema import latest_schema_version, migrate
from db.store import ExperimentStore
from sweep.cli import main
from sweep.spec import TOP_KEYS
from tests.fakes import make_record

CLASSES = class_metric_rows(
    {
        "validation": {
            "labels": ["neg", "pos"],
            "precision": [1.0, 0.5],
            "recall": [0.5, 1.0],
            "f1": [0.667, 0.667],
            "support": [2, 1],
            "confusion": [[1, 1], [0, 1]],
        }
    }
)
SPEC = {"name": "grid", "tasks": ["sst2"], "grid": {"arch": ["bilstm", "ffn"]}, "storage": "/machine-a/runs"}


def _sweep(db: Path, name: str, trials: dict[str, float], spec: dict | None = None, **record) -> Path:
    """A tiny real sweep through the store: one finished distill trial per ``{trial_id: score}``."""
    store = ExperimentStore(db)
    store.start_sweep(name, spec or {**SPEC, "name": name}, "test", f"/runs/{name}")
    store.finish_stage(name, "sst2", "teacher", "fp1", "cached", output=f"/runs/{name}/teacher")
    for trial_id, score in trials.items():
        metrics = {"score": score, "accuracy": score, "epochs": 2}
        store.record_trial(make_record(name, trial_id, metrics=metrics, class_metrics=CLASSES, **record))
    store.record_teacher(name, "sst2", "teacher-small", 0.91, 0.91, None, 4_000_000, 16_000_000, 14_900_000)
    store.finish_sweep(name, "finished")
    return db


def _rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_disjoint_sweeps_from_two_machines(tmp_path, capsys):
    a = _sweep(tmp_path / "a.duckdb", "alpha", {"t1": 0.8, "t2": 0.85})
    b = _sweep(tmp_path / "b.duckdb", "beta", {"t1": 0.7})
    before = _digest(a), _digest(b)
    target = tmp_path / "all.duckdb"
    assert main(["db", "merge", str(a), str(b), "--into", str(target)]) == 0
    assert (_digest(a), _digest(b)) == before  # sources only read
    assert _rows(target, "SELECT sweep, trial_id FROM trials ORDER BY 1, 2") == [
        ("alpha", "t1"),
        ("alpha", "t2"),
        ("beta", "t1"),
    ]
    assert _rows(target, "SELECT sweep, trial_id, score FROM results ORDER BY 1, 2") == [
        ("alpha", "t1", 0.8),
        ("alpha", "t2", 0.85),
        ("beta", "t1", 0.7),
    ]
    assert _rows(target, "SELECT count(*) FROM epochs")[0][0] == 15  # 5 epochs a trial
    assert _rows(target, "SELECT sweep, count(*) FROM class_metrics GROUP BY 1 ORDER BY 1") == [
        ("alpha", 4),
        ("beta", 2),
    ]
    assert _rows(target, "SELECT sweep, stage, output FROM stages ORDER BY 1") == [
        ("alpha", "teacher", "/runs/alpha/teacher"),
        ("beta", "teacher", "/runs/beta/teacher"),
    ]
    assert _rows(target, "SELECT sweep FROM baselines WHERE source = 'measured' ORDER BY 1") == [("alpha",), ("beta",)]
    assert _rows(target, "SELECT count(*) FROM baselines WHERE sweep IS NULL")[0][0] == 12  # thesis rows once
    assert _rows(target, "SELECT checkpoint_path FROM trials WHERE trial_id = 't1' ORDER BY sweep") == [
        ("/tmp/ckpt/t1.pt",),
        ("/tmp/ckpt/t1.pt",),
    ]  # kept as recorded
    out = capsys.readouterr().out
    assert "sweep alpha added: 2 trial(s) added" in out and "not found on this machine" in out
    # the merged file is an ordinary database: the report views read it
    store = open_store(target, read_only=True)
    assert set(store.query("SELECT DISTINCT sweep FROM skyline")["sweep"]) == {"alpha", "beta"}
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_same_sweep_split_over_two_machines_with_an_overlap_and_a_conflict(tmp_path, capsys):
    a = _sweep(tmp_path / "a.duckdb", "grid", {"t1": 0.8, "t2": 0.85, "t3": 0.6})
    b = _sweep(
        tmp_path / "b.duckdb",
        "grid",
        {"t2": 0.85, "t3": 0.65, "t4": 0.9},
        spec={**SPEC, "storage": "/machine-b/runs", "resources": {"gpus": 1}},  # other machine, same sweep
    )
    store = ExperimentStore(b)  # t2's other record on b differs in nothing; give b an errored t5 that a finished
    store.record_trial(make_record("grid", "t5", status="error", error="boom", metrics={}, sizes={}, history=[]))
    _sweep(a, "grid", {"t5": 0.75})  # a has t5 finished
    target = tmp_path / "all.duckdb"
    summary = merge_databases([b, a], target)
    assert _rows(target, "SELECT trial_id, score FROM results ORDER BY 1") == [
        ("t1", 0.8),
        ("t2", 0.85),
        ("t3", 0.65),  # the conflict keeps the target's row (b came first)
        ("t4", 0.9),
        ("t5", 0.75),  # a finished trial replaces an errored one
    ]
    assert _rows(target, "SELECT trial_id, status FROM trials ORDER BY 1")[-1] == ("t5", "finished")
    assert _rows(target, "SELECT count(*) FROM trials")[0][0] == 5  # one row per trial id
    assert _rows(target, "SELECT count(*) FROM epochs WHERE trial_id = 't2'")[0][0] == 5  # not doubled
    assert _rows(target, "SELECT count(*) FROM class_metrics WHERE trial_id = 't2'")[0][0] == 2
    assert _rows(target, "SELECT count(*) FROM stages")[0][0] == 1  # the same stage row on both machines: once
    merged = [s for s in summary.sweeps if s.how == "merged"]
    assert len(merged) == 1
    m = merged[0]
    assert (m.trials_added, m.trials_same, m.trials_replaced) == (1, 1, 1)
    assert [t for t, _ in m.conflicts] == ["t3"] and "score" in m.conflicts[0][1]
    assert summary.conflicts == 1
    # the CLI says so too
    target2 = tmp_path / "cli.duckdb"
    assert main(["db", "merge", str(b), str(a), "--into", str(target2)]) == 0
    out = capsys.readouterr().out
    assert "conflict: trial t3 has other results" in out and "1 conflict(s)" in out


def test_other_spec_same_name_is_an_error_unless_renamed(tmp_path, capsys):
    a = _sweep(tmp_path / "a.duckdb", "grid", {"t1": 0.8})
    b = _sweep(tmp_path / "b.duckdb", "grid", {"t1": 0.7}, spec={**SPEC, "grid": {"arch": ["rnn"]}})
    target = tmp_path / "all.duckdb"
    assert main(["db", "merge", str(a), "--into", str(target)]) == 0
    before = _digest(target)
    capsys.readouterr()
    assert main(["db", "merge", str(b), "--into", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'grid'" in err[0] and "different specs" in err[0] and "--rename grid=" in err[0]
    assert _digest(target) == before
    assert main(["db", "merge", str(b), "--into", str(target), "--rename", "grid=grid-rnn"]) == 0
    assert _rows(target, "SELECT sweep, trial_id, score FROM results ORDER BY 1") == [
        ("grid", "t1", 0.8),
        ("grid-rnn", "t1", 0.7),
    ]
    assert _rows(target, "SELECT name, spec->>'name' FROM sweeps ORDER BY 1") == [
        ("grid", "grid"),
        ("grid-rnn", "grid-rnn"),
    ]
    assert _rows(target, "SELECT count(*) FROM baselines WHERE sweep = 'grid-rnn'")[0][0] == 1  # its teacher too
    for bad in ("grid", "=x", "nosuch=x"):
        assert main(["db", "merge", str(b), "--into", str(target), "--rename", bad]) == 2
        assert "--rename" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["sqlite", "other-duckdb", "text", "empty"])
def test_refuses_a_file_that_is_not_a_featherweight_database(tmp_path, capsys, kind):
    a = _sweep(tmp_path / "a.duckdb", "alpha", {"t1": 0.8})
    target = tmp_path / "all.duckdb"
    assert main(["db", "merge", str(a), "--into", str(target)]) == 0
    before = _digest(target)
    foreign = tmp_path / f"foreign-{kind}"
    if kind == "sqlite":
        sqlite3.connect(foreign).execute("CREATE TABLE x (a)").connection.commit()
    elif kind == "other-duckdb":
        with duckdb.connect(str(foreign)) as con:
            con.execute("CREATE TABLE customers (id INTEGER)")
    elif kind == "text":
        foreign.write_text("hello\n")
    else:
        foreign.write_bytes(b"")
    foreign_before = _digest(foreign)
    b = _sweep(tmp_path / "b.duckdb", "beta", {"t1": 0.7})
    capsys.readouterr()
    assert main(["db", "merge", str(b), str(foreign), "--into", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(foreign) in err[0] and "not a" in err[0], err
    assert _digest(target) == before and _digest(foreign) == foreign_before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    if kind != "empty":  # nor as the target (an empty file is adopted, as by every writer)
        assert main(["db", "merge", str(b), "--into", str(foreign)]) == 2
        assert _digest(foreign) == foreign_before


def test_an_older_versions_file_is_migrated_on_a_copy(tmp_path):
    old = tmp_path / "old.duckdb"
    migrate(Connector(old, read_only=False, lock_timeout=5), views=(), target=2)  # as an early release left it
    with duckdb.connect(str(old)) as con:
        con.execute("INSERT INTO sweeps (name, spec, status) VALUES ('v2', '{\"name\": \"v2\"}', 'finished')")
        con.execute(
            "INSERT INTO trials (sweep, trial_id, stage, task, arch, embedding, emb_dim, bootstrap, seed, status, "
            "recorded_at, device) VALUES ('v2', 'old1', 'distill', 'sst2', 'ffn', 'hash', 25, false, 1, 'finished', "
            "now(), 'cpu')"
        )
        con.execute("INSERT INTO results (sweep, trial_id, score, gzip_bytes) VALUES ('v2', 'old1', 0.75, 50000)")
    before = _digest(old)
    assert _rows(old, "SELECT max(version) FROM schema_version")[0][0] == 2
    target = tmp_path / "all.duckdb"
    merge_databases([old], target)
    assert _digest(old) == before  # migrated on a copy only
    assert _rows(target, "SELECT max(version) FROM schema_version")[0][0] == latest_schema_version()
    got = open_store(target, read_only=True).query("SELECT trial_id, score, macro_f1, host FROM trial_results")
    assert got.astype(object).where(got.notna(), None).values.tolist() == [["old1", 0.75, None, None]]


def test_a_newer_versions_file_is_refused_naming_it(tmp_path, capsys):
    new = _sweep(tmp_path / "new.duckdb", "alpha", {"t1": 0.8})
    with duckdb.connect(str(new)) as con:
        con.execute("INSERT INTO schema_version VALUES (999, 'from the future', now())")
    target = tmp_path / "all.duckdb"
    assert main(["db", "merge", str(new), "--into", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(new) in err[0] and "newer" in err[0], err
    assert not target.exists()


def test_a_merge_failing_midway_leaves_the_target_byte_identical(tmp_path, capsys):
    a = _sweep(tmp_path / "a.duckdb", "grid", {"t1": 0.8})
    target = tmp_path / "all.duckdb"
    assert main(["db", "merge", str(a), "--into", str(target)]) == 0
    before = _digest(target)
    # the first source merges into the temporary copy, the second one then fails (a spec conflict found mid-merge)
    b = _sweep(tmp_path / "b.duckdb", "more", {"t9": 0.9})
    _sweep(b, "grid", {"t2": 0.7}, spec={**SPEC, "grid": {"arch": ["rnn"]}})
    c = _sweep(tmp_path / "c.duckdb", "third", {"t1": 0.5})
    capsys.readouterr()
    assert main(["db", "merge", str(c), str(b), "--into", str(target)]) == 2
    assert "'grid'" in capsys.readouterr().err
    assert _digest(target) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert _rows(target, "SELECT name FROM sweeps") == [("grid",)]


def test_every_table_of_the_schema_is_merged_and_an_unknown_one_stops_the_merge(tmp_path):
    db = tmp_path / "x.duckdb"
    migrate(Connector(db, read_only=False, lock_timeout=5), views=())
    with duckdb.connect(str(db)) as con:
        kinds = table_kinds(con)
        assert kinds["trials"] == kinds["results"] == kinds["epochs"] == kinds["class_metrics"] == "trial"
        assert kinds["latency"] == "trial"  # per-runtime timings: a trial's rows
        assert kinds["stages"] == kinds["baselines"] == "sweep"
        assert {t for t, k in kinds.items() if k == "global"} == {"schema_version", "meta"}
        # a table a later migration adds with a sweep key is merged like the others ...
        con.execute(
            "CREATE TABLE trial_notes (sweep VARCHAR, trial_id VARCHAR, ms DOUBLE, PRIMARY KEY (sweep, trial_id))"
        )
        assert table_kinds(con)["trial_notes"] == "trial"
        # ... one with no sweep key is a bug to fix in db.merge
        con.execute("CREATE TABLE scheduler_state (rung INTEGER)")
        with pytest.raises(RuntimeError, match="scheduler_state"):
            table_kinds(con)


def test_a_new_trial_table_is_copied_generically(tmp_path):
    dbs = []
    for name, ms in (("a", 1.5), ("b", 2.5)):
        db = _sweep(tmp_path / f"{name}.duckdb", name, {"t1": 0.8})
        with duckdb.connect(str(db)) as con:
            con.execute("CREATE TABLE trial_notes (sweep VARCHAR, trial_id VARCHAR, ms DOUBLE)")
            con.execute("INSERT INTO trial_notes VALUES (?, 't1', ?)", [name, ms])
        dbs.append(db)
    merge_databases(dbs[1:], dbs[0])
    assert _rows(dbs[0], "SELECT sweep, ms FROM trial_notes ORDER BY 1") == [("a", 1.5), ("b", 2.5)]


def test_machine_keys_are_spec_keys():
    assert set(MACHINE_KEYS) <= set(TOP_KEYS)


def test_a_trial_the_scheduler_stopped_is_replaced_by_the_same_trial_trained_to_the_end(tmp_path):
    a = _sweep(tmp_path / "a.duckdb", "grid", {})  # machine a ran the grid with pareto_halving: t1 stopped early
    ExperimentStore(a).record_trial(
        make_record("grid", "t1", status="stopped", stopped_at_rung=1, stop_reason="dominated", class_metrics=CLASSES)
    )
    b = _sweep(tmp_path / "b.duckdb", "grid", {"t1": 0.9})  # machine b trained it to the end
    summary = merge_databases([b], a)
    assert _rows(a, "SELECT status, stopped_at_rung FROM trials WHERE trial_id = 't1'") == [("finished", None)]
    assert _rows(a, "SELECT score FROM results WHERE trial_id = 't1'") == [(0.9,)]
    assert summary.sweeps[0].trials_replaced == 1
    merge_databases([tmp_path / "a.duckdb"], b)  # the other way round a finished row stays
    assert _rows(b, "SELECT status FROM trials WHERE trial_id = 't1'") == [("finished",)]


class _WriterProbe(list):
    """The views handed to the merge: the first time the merge lists them (while it builds the new file), another
    process tries to open the target for writing, as a sweep writing to it would."""

    def __init__(self, target: Path):
        super().__init__([("probe", "SELECT 1 AS one")])
        self.target, self.writer_exit = target, None

    def __iter__(self):
        if self.writer_exit is None:
            code = "import duckdb, sys; duckdb.connect(sys.argv[1]).execute('CREATE TABLE late (i INT)')"
            self.writer_exit = subprocess.run(
                [sys.executable, "-c", code, str(self.target)], capture_output=True
            ).returncode
        return super().__iter__()


def test_the_target_stays_locked_for_writing_until_it_is_replaced(tmp_path):
    a = _sweep(tmp_path / "a.duckdb", "alpha", {"t1": 0.8})
    target = _sweep(tmp_path / "all.duckdb", "beta", {"t1": 0.7})
    probe = _WriterProbe(target)
    merge_databases([a], target, views=probe)
    assert probe.writer_exit not in (None, 0)  # the writer was kept out: its table would have been lost otherwise
    assert _rows(target, "SELECT sweep, trial_id FROM trials ORDER BY 1") == [("alpha", "t1"), ("beta", "t1")]
    assert main(["db", "merge", str(a), "--into", str(target)]) == 0  # and it is unlocked again afterwards
