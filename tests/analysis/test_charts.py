"""The Pareto charts' parts: budget sizes, the spec's report key, the frames the charts are drawn from, seed tables."""

from __future__ import annotations

import pytest

from analysis.chart_frames import (
    BudgetError,
    link_frame,
    pareto_frame,
    parse_size,
    seed_frame,
    size_label,
    spec_budgets,
)
from analysis.report_tables import seed_table
from analysis.views import open_store
from sweep.spec import SpecError, validate
from tests.fakes import fill_sweep, make_record


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = open_store(tmp_path_factory.mktemp("charts") / "fw.duckdb")
    fill_sweep(s, "two", tasks=("sst2",), n_seeds=2)
    fill_sweep(s, "one", tasks=("sst2",), n_seeds=1)
    return s


def test_parse_size_units_and_errors():
    assert parse_size("32KB") == 32_000 and parse_size("48 KiB") == 49_152
    assert parse_size("1.5MB") == 1_500_000 and parse_size("4096") == 4096 and parse_size("100 bytes") == 100
    assert parse_size(2048) == 2048 and parse_size("2MiB") == 2 * 1024**2
    for bad in ("32XB", "KB", "-1KB", "0", "", "1e400KB", True):
        with pytest.raises(BudgetError, match="budget"):
            parse_size(bad)
    assert (size_label(32_000), size_label(49_152), size_label(1_500_000), size_label(500)) == (
        "32 KB",
        "48 KiB",
        "1.5 MB",
        "500 B",
    )


def test_spec_report_budgets():
    spec = validate(
        {"name": "x", "tasks": {"synthetic": {}}, "report": {"budgets": ["32KB", "48KB"]}}, check_files=False
    )
    assert spec_budgets(spec.raw) == [32_000, 48_000]
    assert validate({"name": "x", "tasks": {"synthetic": {}}}, check_files=False).raw["report"] is None
    with pytest.raises(SpecError, match=r"^report.budgets\[1\]: budget '48XB'"):
        validate({"name": "x", "tasks": {"synthetic": {}}, "report": {"budgets": ["32KB", "48XB"]}}, check_files=False)
    with pytest.raises(SpecError, match="^report.colour: unknown key"):
        validate({"name": "x", "tasks": {"synthetic": {}}, "report": {"colour": "red"}}, check_files=False)


def test_pareto_frame_percent_stages_and_links(store):
    df = pareto_frame(store, "two", "sst2", "score", "gzip_bytes")
    trials = df[df["kind"] == "trial"]
    assert (df["y"] - df["score_value"] * 100).abs().max() < 1e-9
    assert set(df["stage_label"]) == {
        "distilled",
        "pruned",
        "quantized",
        "pruned + quantized",
        "teacher baseline",
        "literature/user baseline",
    }
    assert set(trials["color_key"]) == {"bilstm", "rnn", "ffn"} and set(df[df["kind"] == "baseline"]["color_key"]) == {
        "baseline"
    }
    links = link_frame(df)
    children = trials[trials["stage"] == "compress"]
    assert len(links) == len(children) == 6  # every compressed trial joined to its parent
    assert set(links["parent_trial_id"]) <= set(trials["trial_id"])


def test_params_axis_counts_non_zero_parameters(store):
    df = pareto_frame(store, "two", "sst2", "score", "params")
    rows = store.query(
        "SELECT trial_id, params, nonzero_params FROM trial_results WHERE sweep = 'two' "
        "AND stage = 'compress' AND pruning IS NOT NULL"
    )
    got = df.set_index("trial_id")["size_value"]
    for r in rows.itertuples():
        assert got[r.trial_id] == r.nonzero_params < r.params  # pruned: at its kept count, not its parent's


def test_seed_frame_mean_and_sd(store):
    seeds = seed_frame(store, "two", "sst2", "score", "gzip_bytes")
    assert len(seeds) == 27 and (seeds["y_lo"] <= seeds["y"]).all() and (seeds["y"] <= seeds["y_hi"]).all()
    assert seed_frame(store, "one", "sst2", "score", "gzip_bytes").empty  # one seed: no spread drawn


def test_seed_table_one_seed_has_no_sd_columns(store):
    one = store.query("SELECT * FROM seed_summary WHERE sweep = 'one' AND stage = 'distill'")
    table = seed_table(one, "score", "accuracy")
    assert "sd" not in table.columns and "no distill" in table.columns and "one seed per configuration" in table.caption
    assert not any("1 seed" in str(c) for row in table.rows for c in row)
    two = store.query("SELECT * FROM seed_summary WHERE sweep = 'two' AND stage = 'distill'")
    assert "sd" in seed_table(two, "score", "accuracy").columns


def test_task_chart_panels_by_arch_and_budget_rules(store):
    from analysis.charts import task_chart

    spec = task_chart(store, "two", "sst2", by="arch", budgets=[32_000]).to_dict()
    rows = spec["vconcat"]  # three architectures: panels two a row
    titles = [panel["title"] for row in rows for panel in row["hconcat"]]
    assert titles == [f"sst2: dev accuracy vs gzip size (arch {a})" for a in ("bilstm", "ffn", "rnn")]
    layers = rows[0]["hconcat"][0]["layer"]
    assert any(
        layer.get("mark", {}).get("type") == "rule"
        and layer["encoding"]["x"]["field"] == "x"
        and "y" not in layer["encoding"]
        for layer in layers
    )
    one = task_chart(store, "two", "sst2").to_dict()
    x = next(layer["encoding"]["x"] for layer in one["layer"] if "x" in layer.get("encoding", {}))
    y = next(layer["encoding"]["y"] for layer in one["layer"] if "y" in layer.get("encoding", {}))
    assert (
        x["scale"]["type"] == "log" and x["title"] == "gzip size (MB, log scale)" and y["title"] == "dev accuracy (%)"
    )
    df = pareto_frame(store, "two", "sst2", "score", "gzip_bytes")
    assert x["scale"]["domain"][0] < df["x"].min() and df["x"].max() < x["scale"]["domain"][1]  # nothing clipped
    assert y["scale"]["domain"][0] < df["y"].min() and df["y"].max() < y["scale"]["domain"][1]


def test_trials_the_scheduler_stopped_are_faint_points_off_the_skyline(tmp_path):
    from analysis.chart_frames import stopped_frame
    from analysis.charts import STOPPED_OPACITY, task_chart
    from tests.fakes import make_record

    s = open_store(tmp_path / "fw.duckdb")
    fill_sweep(s, "h", tasks=("sst2",), n_seeds=1)
    best = pareto_frame(s, "h", "sst2", "score", "gzip_bytes")["y"].max()
    s.record_trial(  # stopped early with a score above every finished trial's: still not on the skyline
        make_record(
            "h",
            "d-stopped",
            status="stopped",
            metrics={"score": best / 100 + 0.05, "accuracy": best / 100 + 0.05, "epochs": 3},
            sizes={"params": 1000, "disk_bytes": 5000, "gzip_bytes": 4000},
            checkpoint_path=None,
            stopped_at_rung=3,
            stop_reason="dominated at the epoch-3 rung by d-1",
        )
    )
    frame = stopped_frame(s, "h", "sst2", "score", "gzip_bytes")
    assert frame[["x", "stopped_text"]].values.tolist() == [[0.004, "stopped after epoch 3"]]
    assert stopped_frame(s, "h", "sst2", "score", "latency_ms_torch").empty  # never timed
    assert "d-stopped" not in set(pareto_frame(s, "h", "sst2", "score", "gzip_bytes")["trial_id"])
    layers = task_chart(s, "h", "sst2").to_dict()["layer"]
    (faint,) = [
        layer
        for layer in layers
        if any(t.get("field") == "stopped_text" for t in layer.get("encoding", {}).get("tooltip", []))
    ]
    assert faint["mark"]["filled"] is False and faint["encoding"]["opacity"]["condition"]["value"] == STOPPED_OPACITY


def test_seed_bars_stop_at_the_bounds_of_a_score(tmp_path):
    # two seeds of one recipe: one collapsed to a class (F1 0), one fine (F1 0.9): mean 45, sd 63.6 points
    store = open_store(tmp_path / "fw.duckdb")
    store.start_sweep("bars", {}, "test", "/tmp/bars")
    for seed, f1 in ((1, 0.0), (2, 0.9)):
        store.record_trial(
            make_record("bars", f"d-{seed}", seed=seed, metrics={"score": 0.5, "accuracy": 0.5, "f1": f1, "epochs": 5})
        )
    seeds = seed_frame(store, "bars", "sst2", "f1", "gzip_bytes")
    assert len(seeds) == 1
    bar = seeds.iloc[0]
    assert bar["y"] == pytest.approx(45.0)
    assert bar["y_lo"] == 0.0 and bar["y_hi"] == 100.0  # cut at the bounds, not -18.6 and 108.6
