"""Schema version 3: macro-F1, the test split, per-class metrics (class_metrics) and user baselines per task."""

from __future__ import annotations

import duckdb
import pytest

from db.connection import Connector
from db.rows import class_metric_rows
from db.schema import latest_schema_version, migrate
from db.store import ExperimentStore, StoreError
from tests.fakes import make_record

TWEETS = ("negative", "neutral", "positive")


def tweet_classes(scale: int = 1) -> list[dict]:
    per_split = {
        split: {
            "labels": list(TWEETS),
            "precision": [0.8, 0.5, 0.7],
            "recall": [0.7, 0.6, 0.75],
            "f1": [0.75, 0.55, 0.72],
            "support": [10 * scale, 5 * scale, 8 * scale],
            "confusion": [[7 * scale, 2 * scale, scale], [scale, 3 * scale, scale], [scale, scale, 6 * scale]],
        }
        for split in ("validation", "test")
    }
    return class_metric_rows(per_split)


def test_migration_003_upgrades_a_version_2_database_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v2.duckdb"
    assert migrate(Connector(path, read_only=False, lock_timeout=5), views=(), target=2) == 2
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO sweeps (name, spec, status) VALUES ('old', '{}', 'finished')")
    con.execute(
        "INSERT INTO trials (sweep, trial_id, stage, task, arch, embedding, emb_dim, bootstrap, seed, status, "
        "recorded_at, device) VALUES ('old', 't1', 'distill', 'sst2', 'ffn', 'hash', 25, false, 1, 'finished', now(), "
        "'cpu')"
    )
    con.execute("INSERT INTO results (sweep, trial_id, score, accuracy) VALUES ('old', 't1', 0.8, 0.8)")
    con.close()
    with pytest.raises(StoreError, match="schema version 2, older than"):
        ExperimentStore(path, read_only=True)

    store = ExperimentStore(path)  # applies 003 and the later ones
    assert store.schema_version() == latest_schema_version()
    old = store.query("SELECT score, macro_f1, test_score, test_macro_f1 FROM results").iloc[0]
    assert old["score"] == pytest.approx(0.8) and old.isna()[["macro_f1", "test_score", "test_macro_f1"]].all()
    assert store.query("SELECT device FROM trials")["device"][0] == "cpu"
    assert store.query("SELECT count(*) AS n FROM baselines WHERE macro_f1 IS NULL")["n"][0] == 12
    assert store.query("SELECT count(*) AS n FROM class_metrics")["n"][0] == 0
    assert store.record_trial(make_record("old", "t2", macro_f1=0.7, class_metrics=tweet_classes()))


def test_record_trial_writes_metrics_and_class_rows(tmp_path):
    store = ExperimentStore(tmp_path / "fw.duckdb")
    rec = make_record(
        "s",
        "t1",
        task="tweets",
        metrics={"score": 0.72, "accuracy": 0.74},
        macro_f1=0.72,
        test={"score": 0.7, "accuracy": 0.71, "macro_f1": 0.7},
        class_metrics=tweet_classes(),
    )
    assert store.record_trial(rec)
    r = store.query("SELECT * FROM results").iloc[0]
    assert (r["macro_f1"], r["test_score"], r["test_accuracy"], r["test_macro_f1"]) == (0.72, 0.7, 0.71, 0.7)
    assert r.isna()["test_f1"]
    rows = store.query("SELECT * FROM class_metrics ORDER BY split, label_id")
    assert len(rows) == 6 and rows["split"].tolist() == ["test"] * 3 + ["validation"] * 3
    neutral = rows[(rows["split"] == "validation") & (rows["label_id"] == 1)].iloc[0]
    assert (neutral["label"], neutral["support"], list(neutral["predicted"])) == ("neutral", 5, [1, 3, 1])
    assert neutral["precision"] == pytest.approx(0.5) and neutral["f1"] == pytest.approx(0.55)


def test_rerecording_an_errored_trial_replaces_its_class_rows(tmp_path):
    store = ExperimentStore(tmp_path / "fw.duckdb")
    assert store.record_trial(make_record("s", "t1", status="error", error="boom", class_metrics=tweet_classes()))
    assert store.record_trial(make_record("s", "t1", class_metrics=tweet_classes(scale=2)[:3]))
    rows = store.query("SELECT split, support FROM class_metrics ORDER BY label_id")
    assert rows["split"].tolist() == ["validation"] * 3 and rows["support"].tolist() == [20, 10, 16]
    # finished trials are append-only: their class rows too
    assert not store.record_trial(make_record("s", "t1", class_metrics=tweet_classes()))
    assert store.query("SELECT count(*) AS n FROM class_metrics")["n"][0] == 3


def test_class_metrics_row_needs_split_and_label_id(tmp_path):
    store = ExperimentStore(tmp_path / "fw.duckdb")
    with pytest.raises(StoreError, match="without split"):
        store.record_trial(make_record("s", "t1", class_metrics=[{"label_id": 0, "label": "a"}]))
    assert store.query("SELECT count(*) AS n FROM trials")["n"][0] == 0


def test_record_baseline_replaces_by_sweep_task_name_source(tmp_path):
    store = ExperimentStore(tmp_path / "fw.duckdb")
    store.record_baseline(None, "tweets", "majority class", 0.4, params=0, disk_bytes=1)
    store.record_baseline(None, "tweets", "majority class", 0.45, params=0, disk_bytes=1)  # replaces
    store.record_baseline("s", "tweets", "majority class", 0.5, source="spec", macro_f1=0.2, note="from the spec")
    b = store.query("SELECT * FROM baselines WHERE task = 'tweets' ORDER BY source")
    assert b["source"].tolist() == ["spec", "user"] and b["score"].tolist() == [0.5, 0.45]
    assert b["macro_f1"][0] == pytest.approx(0.2) and b["note"][0] == "from the spec"
    for bad, message in (
        (dict(score=87.0), "fraction in \\[0, 1\\]"),
        (dict(score=float("nan")), "fraction"),
        (dict(score=0.5, params=-1), "params"),
        (dict(score=0.5, source="thesis table 7.5"), "source"),
    ):
        with pytest.raises(StoreError, match=message):
            store.record_baseline(None, "tweets", "x", **bad)
    assert store.query("SELECT count(*) AS n FROM baselines WHERE task = 'tweets'")["n"][0] == 2


def test_docstring_examples():
    import doctest

    import db.rows

    result = doctest.testmod(db.rows)
    assert result.attempted > 0 and result.failed == 0
