"""The analysis views against the same numbers computed in Python/pandas on the same rows; the view files'
dependency convention."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis.views import SQL_DIR, ViewDefinitionError, load_views, open_store, order_views, parse_view_files
from tests.fakes import THESIS_SEEDS, fill_sweep, make_record

SCORE_COLS = {"score": "score", "accuracy": "accuracy", "f1": "f1"}
SIZE_COLS = ("disk_bytes", "gzip_bytes", "params")


def python_skyline(points: list[tuple[str, float, float]]) -> set[str]:
    """Brute force: keys of the points no other point dominates (no larger, no worse, strictly better in one)."""
    out = set()
    for key, size, score in points:
        dominated = any(
            s2 <= size and sc2 >= score and (s2 < size or sc2 > score) for k2, s2, sc2 in points if k2 != key
        )
        if not dominated:
            out.add(key)
    return out


@pytest.fixture(scope="module")
def random_store(tmp_path_factory):
    """Random trials on two tasks and two sweeps, with sizes and scores drawn from small sets so ties happen."""
    store = open_store(tmp_path_factory.mktemp("views") / "fw.duckdb")
    rng = random.Random(1234)
    for sweep in ("a", "b"):
        store.record_teacher(sweep, "sst2", "teacher", 0.9, 0.9, None, 10_000, 40_000, None)
        for i in range(60):
            task = rng.choice(["sst2", "qqp"])
            size = rng.choice([1000, 2000, 2000, 3000, 5000, 8000, 40_000, 2_000_000_000])
            acc = rng.choice([0.6, 0.7, 0.7, 0.8, 0.85, 0.9, 0.95])
            metrics = {"score": acc, "accuracy": acc}
            if task == "qqp" and rng.random() < 0.8:
                metrics["f1"] = rng.choice([0.5, 0.6, 0.6, 0.7, 0.9])
            sizes = {
                "params": size // 4 + rng.choice([0, 0, 10]),
                "disk_bytes": size,
                "gzip_bytes": size - rng.choice([0, 0, 100]),
            }
            if rng.random() < 0.1:
                sizes["gzip_bytes"] = None  # missing measure: the point drops out of that skyline only
            store.record_trial(make_record(sweep, f"t{i}", task=task, metrics=metrics, sizes=sizes))
        store.record_trial(make_record(sweep, "err", status="error", error="x", metrics={}, sizes={}))
    return store


def test_skyline_matches_python(random_store):
    store = random_store
    trials = store.query("SELECT * FROM trial_results")
    baselines = store.query("SELECT * FROM baselines")
    sky = store.query("SELECT * FROM skyline")
    points = store.query("SELECT * FROM pareto_points")
    checked = 0
    for sweep in ("a", "b"):
        for task in ("sst2", "qqp"):
            for score_measure, score_col in SCORE_COLS.items():
                for size_measure in SIZE_COLS:
                    pts = []
                    t = trials[(trials["sweep"] == sweep) & (trials["task"] == task)]
                    for _, r in t.iterrows():
                        if pd.notna(r[score_col]) and pd.notna(r[size_measure]):
                            pts.append((f"trial:{r['trial_id']}", float(r[size_measure]), float(r[score_col])))
                    b = baselines[
                        (baselines["task"] == task) & (baselines["sweep"].isna() | (baselines["sweep"] == sweep))
                    ]
                    for _, r in b.iterrows():
                        size = r[size_measure]
                        if size_measure == "gzip_bytes" and pd.isna(size):
                            size = r["disk_bytes"]
                        if pd.notna(r[score_col]) and pd.notna(size):
                            pts.append((f"baseline:{r['name']}", float(size), float(r[score_col])))
                    expected = python_skyline(pts)
                    part = sky[
                        (sky["sweep"] == sweep)
                        & (sky["task"] == task)
                        & (sky["score_measure"] == score_measure)
                        & (sky["size_measure"] == size_measure)
                    ]
                    got = {
                        f"trial:{r['trial_id']}" if r["kind"] == "trial" else f"baseline:{r['name']}"
                        for _, r in part.iterrows()
                    }
                    assert got == expected, (sweep, task, score_measure, size_measure)
                    assert len(part) == len(got)  # no duplicates
                    assert sorted(part["skyline_rank"]) == list(range(1, len(part) + 1))
                    pp = points[
                        (points["sweep"] == sweep)
                        & (points["task"] == task)
                        & (points["score_measure"] == score_measure)
                        & (points["size_measure"] == size_measure)
                    ]
                    assert len(pp) == len(pts) and pp["on_skyline"].sum() == len(expected)
                    # the stage frontier: the same rule among the trials of one stage, baselines NULL
                    assert pp[pp["kind"] == "baseline"]["on_stage_skyline"].isna().all()
                    tp = pp[pp["kind"] == "trial"]
                    for stage, group in tp.groupby("stage"):
                        stage_pts = [(k, s, v) for k, s, v in pts if k.removeprefix("trial:") in set(group["trial_id"])]
                        want = {k.removeprefix("trial:") for k in python_skyline(stage_pts)}
                        assert set(group[group["on_stage_skyline"]]["trial_id"]) == want, (sweep, task, stage)
                    checked += len(expected)
    assert checked > 50
    # ties really happened: some skyline has two points of equal size and score
    dup = sky.groupby(["sweep", "task", "score_measure", "size_measure", "size_value", "score_value"]).size()
    assert (dup > 1).any()
    # sst2 has no F1 anywhere (thesis baselines quote none): no f1 skyline for it
    assert sky[(sky["task"] == "sst2") & (sky["score_measure"] == "f1")].empty


def test_skyline_on_fixed_points(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    rows = {
        "small": (100, 0.70),
        "dominated": (200, 0.69),
        "tie1": (300, 0.80),
        "tie2": (300, 0.80),
        "same_size_worse": (300, 0.75),
        "big": (1000, 0.95),
        "equal_score_bigger": (2000, 0.95),
    }
    for tid, (size, acc) in rows.items():
        store.record_trial(
            make_record(
                "s",
                tid,
                task="synthetic",
                metrics={"score": acc, "accuracy": acc},
                sizes={"disk_bytes": size, "gzip_bytes": size, "params": size},
            )
        )
    sky = store.query(
        "SELECT trial_id FROM skyline WHERE score_measure = 'score' AND size_measure = 'disk_bytes' ORDER BY skyline_rank"
    )
    assert sky["trial_id"].tolist() == ["small", "tie1", "tie2", "big"]


def test_seed_summary_matches_pandas(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    fill_sweep(store, "demo", tasks=("qqp",), n_seeds=4)
    trials = store.query("SELECT * FROM trial_results WHERE sweep = 'demo'")
    keys = [
        "stage",
        "task",
        "arch",
        "embedding",
        "emb_dim",
        "vocab_size",
        "alpha",
        "temperature",
        "bootstrap",
        "pooling",
        "pruning",
        "quantization",
    ]
    expected = (
        trials.groupby(keys, dropna=False)
        .agg(
            n=("seed", "size"),
            score_mean=("score", "mean"),
            score_sd=("score", "std"),
            f1_mean=("f1", "mean"),
            f1_sd=("f1", "std"),
            disk=("disk_bytes", "mean"),
        )
        .reset_index()
    )
    got = store.query("SELECT * FROM seed_summary WHERE sweep = 'demo'")
    assert len(got) == len(expected)
    merged = expected.merge(got, on=keys, how="outer", indicator=True, suffixes=("_pd", ""))
    assert (merged["_merge"] == "both").all()
    assert (merged["n"] == merged["n_seeds"]).all()
    for col in ("score_mean", "score_sd", "f1_mean", "f1_sd"):
        a, b = merged[f"{col}_pd"], merged[col]
        assert ((a - b).abs() < 1e-12).where(a.notna(), b.isna()).all(), col
    assert ((merged["disk"] - merged["disk_bytes"]).abs() < 1e-6).all()
    distill = got[got["stage"] == "distill"]
    assert set(distill["n_seeds"]) == {4}
    assert set(distill["method"]) == {"no distill", "alpha 0.5 + b", "alpha 0 + b"}
    assert all(sorted(s) == sorted(THESIS_SEEDS) for s in distill["seeds"])
    assert got[got["stage"] == "compress"]["score_sd"].isna().all()  # one seed each: sd is NULL, as pandas' NaN


def test_compression_ratios(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    store.record_teacher("s", "sst2", "roberta-base", 0.93, 0.93, None, 125_000_000, 500_000_000, 460_000_000)
    store.record_teacher("s", "sst2", "other-teacher", 0.80, 0.80, None, 1, 1_000_000, None)
    parent = make_record(
        "s",
        "p",
        config={"teacher": "roberta-base"},
        metrics={"score": 0.9, "accuracy": 0.9},
        sizes={"params": 1_000_000, "nonzero_params": 1_000_000, "disk_bytes": 4_000_000, "gzip_bytes": 3_700_000},
    )
    child = make_record(
        "s",
        "c",
        stage="compress",
        parent_trial_id="p",
        pruning="magnitude 0.5",
        quantization="int8",
        config={"teacher": "roberta-base"},
        metrics={"score": 0.88, "accuracy": 0.88},
        sizes={"params": 1_000_000, "nonzero_params": 500_000, "disk_bytes": 1_100_000, "gzip_bytes": 500_000},
    )
    store.record_trial(parent)
    store.record_trial(child)
    c = store.query("SELECT * FROM compression WHERE kind = 'trial'").set_index("trial_id")
    assert c.loc["p", "teacher"] == "roberta-base"  # the config's teacher wins over the more recent one
    assert c.loc["p", "reported_bytes"] == 4_000_000  # plain student: disk size
    assert c.loc["c", "reported_bytes"] == 500_000  # pruned + quantized: gzip size (table 7.5)
    assert c.loc["p", "ratio_vs_teacher"] == pytest.approx(500_000_000 / 4_000_000)
    assert c.loc["c", "ratio_vs_teacher"] == pytest.approx(1000)
    assert c.loc["c", "ratio_vs_roberta"] == pytest.approx(1_426_000_000 / 500_000)
    assert c.loc["c", "disk_ratio_vs_roberta"] == pytest.approx(1_426_000_000 / 1_100_000)
    assert c.loc["c", "ratio_vs_parent"] == pytest.approx(8.0)
    assert c.loc["c", "nonzero_ratio_vs_parent"] == pytest.approx(2.0)
    assert c.loc["c", "score_change_vs_parent"] == pytest.approx(-0.02)
    assert c.loc["c", "score_retained_vs_teacher"] == pytest.approx(0.88 / 0.93)
    assert c.loc["c", "param_ratio_vs_teacher"] == pytest.approx(125.0)
    b = store.query("SELECT * FROM compression WHERE kind = 'baseline'").set_index("name")
    assert b.loc["RoBERTa-large", "ratio_vs_roberta"] == pytest.approx(1.0)
    assert b.loc["TinyBERT-6", "ratio_vs_roberta"] == pytest.approx(1426 / 268)
    assert b.loc["GLUE BiLSTM+GloVe", "ratio_vs_roberta"] == pytest.approx(1426 / 2950)
    assert set(b.index) >= {"roberta-base", "other-teacher"}


def test_trial_results_columns(random_store):
    cols = set(random_store.query("SELECT * FROM trial_results LIMIT 0").columns)
    required = {
        "sweep",
        "trial_id",
        "parent_trial_id",
        "stage",
        "task",
        "arch",
        "embedding",
        "emb_dim",
        "vocab_size",
        "alpha",
        "bootstrap",
        "seed",
        "pruning",
        "quantization",
        "status",
        "score",
        "accuracy",
        "f1",
        "params",
        "nonzero_params",
        "disk_bytes",
        "gzip_bytes",
        "accuracy_matched",
        "accuracy_mismatched",
        "ideal_bytes",
        "temperature",
        "checkpoint_path",
        "label",
        "config",
        "device",
        "node",
    }
    assert required <= cols
    assert random_store.query("SELECT DISTINCT status FROM trial_results")["status"].tolist() == ["finished"]


def test_labels(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    store.record_trial(make_record("s", "a", arch="rnn", embedding="char", emb_dim=100))
    store.record_trial(make_record("s", "b", arch="ffn", embedding="hash", emb_dim=25, pruning="x", quantization="y"))
    labels = store.query("SELECT trial_id, label FROM trial_results ORDER BY trial_id")["label"].tolist()
    assert labels == ["RNN_Char100", "FFN_Hash25 + p + q"]


def test_stale_views_are_shadowed_for_readers(tmp_path):
    """A database written by code with other view SQL still shows this code's views to a read-only reader."""
    path = tmp_path / "fw.duckdb"
    store = open_store(path)
    store.record_trial(make_record("s", "t1"))
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("CREATE OR REPLACE VIEW trial_results AS SELECT 1 AS old")
    con.execute("UPDATE meta SET value = 'old' WHERE key = 'views_hash'")
    con.close()
    ro = open_store(path, read_only=True)
    assert "trial_id" in ro.query("SELECT * FROM trial_results").columns
    import db.store as mod

    mod._MIGRATED.clear()  # as in a new process: the next writable open re-installs this code's views
    open_store(path)
    con = duckdb.connect(str(path), read_only=True)
    assert "trial_id" in [d[0] for d in con.execute("SELECT * FROM trial_results").description]
    con.close()


def test_trial_results_device_and_node(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    store.record_trial(make_record("s", "a", device="cuda:0", node="host-1"))
    row = store.query("SELECT device, node FROM trial_results").iloc[0]
    assert (row["device"], row["node"]) == ("cuda:0", "host-1")


def test_open_store_installs_the_views_in_dependency_order(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    names = dict(store.relations())
    for view in ("trial_results", "seed_summary", "pareto_points", "skyline", "compression"):
        assert names[view] == "view"
    order = [n for n, _ in load_views()]
    assert order.index("trial_results") < order.index("pareto_points") < order.index("skyline")
    for f in parse_view_files():
        assert f.path.read_text().startswith("-- depends on: "), f.path.name
        assert all(order.index(d) < order.index(f.name) for d in f.depends_on)


def _write_views(d: Path, files: dict[str, str]) -> Path:
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_views_install_in_declared_order_not_file_order(tmp_path):
    d = _write_views(
        tmp_path / "sql",
        {"01_b.sql": "-- depends on: a\nselect * from a", "02_a.sql": "-- depends on: none\nselect 1 as x"},
    )
    assert [n for n, _ in load_views(d)] == ["a", "b"]
    store = open_store(tmp_path / "fw.duckdb")  # the real views install on a fresh file
    assert store.query("SELECT count(*) AS n FROM skyline")["n"][0] == 0


@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"01_a.sql": "-- depends on: none\nselect 1 as x", "02_b.sql": "-- depends on: none\nselect * from a"},
            "02_b.sql: reads view(s) a without declaring",
        ),
        (
            {
                "01_a.sql": "-- depends on: none\nselect 1 as x",
                "02_b.sql": "-- depends on: a\nselect * from main.a join c using (x)",
                "03_c.sql": "-- depends on: none\nselect 1 as x",
            },
            "02_b.sql: reads view(s) c without declaring",
        ),
        (
            {"01_a.sql": "-- depends on: b\nselect * from b", "02_b.sql": "-- depends on: a\nselect * from a"},
            "dependency cycle among views: a, b",
        ),
        ({"01_a.sql": "-- depends on: nope\nselect 1 as x"}, "unknown view(s) nope"),
        ({"01_a.sql": "select 1 as x"}, "must start with '-- depends on:"),
        ({"a.sql": "-- depends on: none\nselect 1"}, "named NN_name.sql"),
    ],
)
def test_view_dependency_mistakes_are_caught(tmp_path, files, message):
    d = _write_views(tmp_path / "sql", files)
    with pytest.raises(ViewDefinitionError, match=re.escape(message)):
        order_views(parse_view_files(d))


def test_comments_and_strings_are_no_references(tmp_path):
    d = _write_views(
        tmp_path / "sql",
        {
            "01_a.sql": "-- depends on: none\nselect 1 as x",
            "02_b.sql": "-- depends on: none\n-- unlike a, this reads no view\nselect 'a' as name, 2 as a_count /* a */",
        },
    )
    assert [n for n, _ in load_views(d)] == ["a", "b"]


def test_shipped_view_files_follow_the_convention():
    files = parse_view_files(SQL_DIR)
    assert [f.name for f in order_views(files)] == [n for n, _ in load_views()]
    deps = {f.name: set(f.depends_on) for f in files}
    assert deps["skyline"] == {"pareto_points"} and deps["trial_results"] == set()
