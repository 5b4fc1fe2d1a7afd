"""A custom task (3-class tweets, metric macro_f1) in the views, the add-baseline command, the report and charts."""

from __future__ import annotations

import pytest

from analysis.charts import task_chart
from analysis.views import open_store
from sweep.cli import main
from tests.db.test_custom_tasks import tweet_classes
from tests.fakes import make_record

SPEC = {
    "name": "mix",
    "tasks": {
        "tweets": {"data": "tweets.csv", "metric": "macro_f1", "labels": ["negative", "neutral", "positive"]},
        "sst2": {},
    },
}


@pytest.fixture
def store(tmp_path):
    store = open_store(tmp_path / "fw.duckdb")
    store.start_sweep("mix", SPEC, "test", "/tmp/mix")
    # tweets: score = macro-F1; (size, macro-F1): t1 small and weak, t2 large and strong, t3 dominated by t2
    for tid, f1, size, test in (("t1", 0.55, 100_000, 0.52), ("t2", 0.70, 400_000, 0.66), ("t3", 0.60, 500_000, None)):
        store.record_trial(
            make_record(
                "mix",
                tid,
                task="tweets",
                metrics={"score": f1, "accuracy": f1 + 0.05},
                macro_f1=f1,
                test={"score": test, "macro_f1": test} if test else None,
                sizes={"params": size // 4, "disk_bytes": size, "gzip_bytes": size},
                class_metrics=tweet_classes() if tid == "t2" else None,
            )
        )
    store.record_trial(make_record("mix", "s1", task="sst2"))
    return store


def test_trial_results_and_seed_summary_carry_dev_and_test(store):
    t = store.query("SELECT * FROM trial_results WHERE task = 'tweets' ORDER BY trial_id").set_index("trial_id")
    assert t.loc["t2", "macro_f1"] == pytest.approx(0.70) and t.loc["t2", "test_score"] == pytest.approx(0.66)
    assert t.loc["t2", "test_macro_f1"] == pytest.approx(0.66) and t.isna().loc["t3", "test_score"]
    s = store.query("SELECT * FROM seed_summary WHERE task = 'tweets' AND emb_dim = 25")
    assert {"macro_f1_mean", "macro_f1_sd", "test_score_mean", "test_score_sd"} <= set(s.columns)
    assert s["macro_f1_mean"].mean() == pytest.approx((0.55 + 0.70 + 0.60) / 3)


def test_class_results_view(store):
    c = store.query("SELECT * FROM class_results ORDER BY split, label_id")
    assert list(c.columns) == [
        "sweep",
        "trial_id",
        "stage",
        "task",
        "label",
        "arch",
        "embedding",
        "emb_dim",
        "seed",
        "split",
        "label_id",
        "class",
        "precision",
        "recall",
        "f1",
        "support",
        "predicted",
    ]
    assert set(c["trial_id"]) == {"t2"} and c["task"].unique().tolist() == ["tweets"]
    dev = c[c["split"] == "validation"]
    assert dev["class"].tolist() == ["negative", "neutral", "positive"] and dev["label"].iloc[0] == "BiLSTM_BPE25"
    assert list(dev["predicted"].iloc[0]) == [7, 2, 1]


def test_custom_task_skyline_has_no_thesis_rows_and_user_baselines_stay_on_their_task(store, tmp_path):
    store.record_baseline(None, "tweets", "logistic regression", 0.62, params=30_000, disk_bytes=120_000, macro_f1=0.62)
    store.record_baseline("other", "tweets", "another sweep's", 0.99, disk_bytes=1)  # not this sweep's
    p = store.query("SELECT * FROM pareto_points WHERE sweep = 'mix'")
    tweets = p[p["task"] == "tweets"]
    assert "thesis table 7.5" not in set(tweets["source"].dropna())
    assert set(tweets.loc[tweets["kind"] == "baseline", "name"]) == {"logistic regression"}
    assert "logistic regression" not in set(p.loc[p["task"] == "sst2", "name"])
    assert "RoBERTa-large" in set(p.loc[p["task"] == "sst2", "name"])
    sky = store.query(
        "SELECT name, trial_id, score_value FROM skyline WHERE task = 'tweets' AND "
        "score_measure = 'macro_f1' AND size_measure = 'disk_bytes' ORDER BY skyline_rank"
    )
    assert sky["name"].tolist()[0] == "BiLSTM_BPE25" and sky["trial_id"].tolist()[0] == "t1"
    assert sky["name"].tolist()[1:] == ["logistic regression", "BiLSTM_BPE25"]
    assert sky["trial_id"].tolist()[2] == "t2"  # t3 is dominated
    stage = store.query(
        "SELECT trial_id FROM pareto_points WHERE task = 'tweets' AND score_measure = 'macro_f1' "
        "AND size_measure = 'disk_bytes' AND on_stage_skyline ORDER BY trial_id"
    )
    assert stage["trial_id"].tolist() == ["t1", "t2"]


def test_compression_has_no_roberta_ratio_for_tasks_the_thesis_did_not_run(store):
    c = store.query("SELECT task, ratio_vs_roberta FROM compression WHERE kind = 'trial'")
    assert c.loc[c["task"] == "tweets", "ratio_vs_roberta"].isna().all()
    assert c.loc[c["task"] == "sst2", "ratio_vs_roberta"].notna().all()


def run_cli(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_add_baseline_cli(store, capsys):
    db = str(store.path)
    argv = [
        "db",
        "add-baseline",
        "--db",
        db,
        "--task",
        "tweets",
        "--name",
        "fastText",
        "--score",
        "0.65",
        "--params",
        "2000000",
        "--disk-bytes",
        "8000000",
        "--note",
        "ours",
    ]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    assert "fastText" in out and "tweets" in out
    rc, _, _ = run_cli([*argv[:-2], "--sweep", "mix", "--gzip-bytes", "7000000"], capsys)
    assert rc == 0
    b = open_store(db, read_only=True).query("SELECT * FROM baselines WHERE name = 'fastText' ORDER BY sweep")
    assert b["sweep"].fillna("*").tolist() == ["mix", "*"] and b["source"].tolist() == ["user", "user"]
    assert b["gzip_bytes"].tolist()[0] == 7_000_000 and b["params"].tolist()[1] == 2_000_000
    sky = open_store(db, read_only=True).query("SELECT DISTINCT task FROM pareto_points WHERE name = 'fastText'")
    assert sky["task"].tolist() == ["tweets"]


@pytest.mark.parametrize("score", ["87", "-0.1", "nan"])
def test_add_baseline_bad_score_is_one_line_error(tmp_path, capsys, score):
    db = tmp_path / "none.duckdb"
    rc, out, err = run_cli(
        ["db", "add-baseline", "--db", str(db), "--task", "t", "--name", "n", "--score", score], capsys
    )
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "fraction in [0, 1]" in lines[0], err
    assert not db.exists()  # nothing created for a bad value


def test_report_names_the_metric_shows_test_and_per_class(store, tmp_path, capsys):
    store.finish_sweep("mix", "finished")
    out = tmp_path / "report"
    assert main(["report", "mix", "--db", str(store.path), "--output", str(out)]) == 0
    md = (out / "report.md").read_text()
    tweets = md.split("## Task tweets")[1]
    sst2 = md.split("## Task sst2")[1].split("## Task tweets")[0]
    assert "Score: dev macro-F1; test macro-F1 beside it" in tweets
    assert "### Skyline: macro-F1 vs gzip_bytes" in tweets and "| macro-F1 % | test macro-F1 % |" in tweets
    assert "| 66.00 |" in tweets  # t2's test score next to its dev score
    assert "| no distill mean | sd | test |" not in tweets and "| alpha 0.5 + b mean | sd | test |" in tweets
    assert "### Per class (best trial)" in tweets and "| class | precision % | recall % | F1 % | support |" in tweets
    assert "| neutral | 50.0 | 60.0 | 55.0 | 5 |" in tweets and "t2" in tweets
    assert "RoBERTa-large" not in tweets
    assert "Score: dev accuracy." in sst2 and "### Skyline: accuracy vs gzip_bytes" in sst2
    assert "test accuracy" not in sst2 and "Per class" not in sst2
    chart = task_chart(store, "mix", "tweets", "gzip_bytes").to_dict()
    assert "macro-F1" in str(chart)


def test_docstring_examples():
    import doctest

    import analysis.chart_frames
    import analysis.chart_labels
    import analysis.report_blocks

    for mod in (analysis.chart_frames, analysis.chart_labels, analysis.report_blocks):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
