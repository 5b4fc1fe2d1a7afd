"""Stage-2 parent selection: the SQL skyline is the one frontier, top-k and named trials."""

from __future__ import annotations

import pytest

from analysis.selection import select_parents
from analysis.views import open_store
from db.errors import StoreError
from tests.fakes import make_record

# (trial_id, task, gzip_bytes, score): ties of equal size and score, equal size with different scores
DISTILL = [
    ("d-small", "synthetic", 100, 0.70),
    ("d-dominated", "synthetic", 200, 0.69),
    ("d-tie1", "synthetic", 300, 0.80),
    ("d-tie2", "synthetic", 300, 0.80),
    ("d-same-size-worse", "synthetic", 300, 0.75),
    ("d-big", "synthetic", 1000, 0.95),
    ("d-equal-score-bigger", "synthetic", 2000, 0.95),
    ("e-a", "other", 500, 0.60),
    ("e-b", "other", 500, 0.60),
    ("e-c", "other", 600, 0.50),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("selection") / "fw.duckdb")
    for tid, task, size, score in DISTILL:
        store.record_trial(
            make_record(
                "s",
                tid,
                task=task,
                metrics={"score": score, "accuracy": score},
                sizes={"gzip_bytes": size, "disk_bytes": 4 * size, "params": size},
                checkpoint_path=f"/ckpt/{tid}.pt",
                config={"trial_id": tid},
            )
        )
    # noise that must not count: a failed trial, a trial a scheduler stopped (its score at the rung would dominate
    # everything), a compress child that dominates everything, another sweep
    store.record_trial(make_record("s", "d-failed", task="synthetic", status="error", error="x", metrics={}, sizes={}))
    store.record_trial(
        make_record(
            "s",
            "d-stopped",
            task="synthetic",
            status="stopped",
            metrics={"score": 0.99, "epochs": 1},
            sizes={"gzip_bytes": 5, "disk_bytes": 5, "params": 5},
            stopped_at_rung=1,
            stop_reason="dominated at the epoch-1 rung by d-big",
        )
    )
    store.record_trial(
        make_record(
            "s",
            "c-child",
            stage="compress",
            parent_trial_id="d-big",
            task="synthetic",
            metrics={"score": 0.99},
            sizes={"gzip_bytes": 10, "disk_bytes": 10, "params": 10},
        )
    )
    store.record_trial(
        make_record(
            "other-sweep",
            "d-x",
            task="synthetic",
            metrics={"score": 0.99},
            sizes={"gzip_bytes": 1, "disk_bytes": 1, "params": 1},
        )
    )
    return store


def test_skyline_parents_are_the_skyline_views_distill_trials(store):
    parents = select_parents(store, "s", "skyline", "gzip_bytes")
    assert set(parents["trial_id"]) == {"d-small", "d-tie1", "d-tie2", "d-big", "e-a", "e-b"}  # ties all kept
    assert {"config", "checkpoint_path", "score", "gzip_bytes", "label"} <= set(parents.columns)
    assert parents.set_index("trial_id").loc["d-big", "checkpoint_path"] == "/ckpt/d-big.pt"
    assert set(parents["stage"]) == {"distill"}
    # with only distill trials on a task the thesis has no baselines for, the report's skyline is the same set
    store2 = open_store(store.path.with_name("distill_only.duckdb"))
    for tid, task, size, score in DISTILL:
        store2.record_trial(
            make_record(
                "s",
                tid,
                task=task,
                metrics={"score": score, "accuracy": score},
                sizes={"gzip_bytes": size, "disk_bytes": 4 * size, "params": size},
            )
        )
    sky = store2.query(
        "SELECT trial_id FROM skyline WHERE sweep = 's' AND score_measure = 'score' AND size_measure = 'gzip_bytes' "
        "AND kind = 'trial' AND stage = 'distill'"
    )
    assert set(sky["trial_id"]) == set(select_parents(store2, "s", "skyline", "gzip_bytes")["trial_id"])
    assert set(sky["trial_id"]) == set(parents["trial_id"])


def test_stage_skyline_ignores_other_stages(store):
    # c-child dominates every distill trial of its task on the overall skyline, not on the distill frontier
    on = store.query(
        "SELECT trial_id, on_skyline, on_stage_skyline FROM pareto_points WHERE sweep = 's' AND task = 'synthetic' "
        "AND score_measure = 'score' AND size_measure = 'gzip_bytes' AND kind = 'trial'"
    ).set_index("trial_id")
    assert on.loc["c-child", "on_skyline"] and on.loc["c-child", "on_stage_skyline"]
    assert not on.loc["d-small", "on_skyline"] and on.loc["d-small", "on_stage_skyline"]


def test_skyline_per_size_measure(store):
    by_params = select_parents(store, "s", "skyline", "params")
    assert set(by_params["trial_id"]) == {"d-small", "d-tie1", "d-tie2", "d-big", "e-a", "e-b"}
    with pytest.raises(ValueError, match="size measure"):
        select_parents(store, "s", "skyline", "bytes")


def test_top_k_per_task_ties_broken_by_trial_id(store):
    top = select_parents(store, "s", {"top_k": 2}, "gzip_bytes")
    assert top["trial_id"].tolist() == ["e-a", "e-b", "d-big", "d-equal-score-bigger"]
    one = select_parents(store, "s", {"top_k": 1}, "gzip_bytes")
    assert one["trial_id"].tolist() == ["e-a", "d-big"]
    assert len(select_parents(store, "s", {"top_k": 100}, "gzip_bytes")) == len(DISTILL)
    with pytest.raises(ValueError, match="top_k"):
        select_parents(store, "s", {"top_k": 0}, "gzip_bytes")


def test_named_trials(store):
    got = select_parents(store, "s", {"trials": ["d-tie2", "e-c"]}, "gzip_bytes")
    assert got["trial_id"].tolist() == ["d-tie2", "e-c"]
    assert got.iloc[0]["checkpoint_path"] == "/ckpt/d-tie2.pt"
    for bad in (
        "d-nope",
        "d-failed",
        "d-stopped",
        "c-child",
        "d-x",
    ):  # unknown, failed, stopped, wrong stage, other sweep
        with pytest.raises(StoreError, match=f"compress.parents.trials: no finished distillation trial '{bad}'"):
            select_parents(store, "s", {"trials": ["d-small", bad]}, "gzip_bytes")


def test_bad_parents_value(store):
    with pytest.raises(ValueError, match="parents must be"):
        select_parents(store, "s", "best", "gzip_bytes")
    assert select_parents(store, "nope", "skyline", "gzip_bytes").empty
