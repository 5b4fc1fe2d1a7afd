"""``featherweight report A B``: one report over two sweeps of one database, its tables checked against figures
worked out by hand from the trials recorded here."""

from __future__ import annotations

import pytest

from analysis.compare_charts import REFERENCE
from analysis.report import build_blocks, build_report
from analysis.report_blocks import Chart, Heading, Table
from analysis.report_compare import compare_blocks
from analysis.report_render import render_markdown
from analysis.views import open_store
from sweep.cli import main
from tests.fakes import THESIS_SEEDS, make_record

# (trial id, arch, embedding, dim, alpha, bootstrap, seed index, score, gzip bytes)
TRIALS = {
    "A": [
        ("a1", "ffn", "hash", 25, 1.0, False, 0, 0.80, 100_000),
        ("a2", "rnn", "bpe", 25, 0.5, True, 0, 0.86, 400_000),
        ("a3", "bilstm", "bpe", 100, 0.5, True, 0, 0.885, 2_000_000),
    ],
    "B": [
        ("b1", "ffn", "hash", 25, 1.0, False, 0, 0.78, 100_000),  # a1's settings
        ("b2", "rnn", "hash", 25, 0.5, True, 0, 0.84, 200_000),
        ("b3", "bilstm", "bpe", 100, 0.5, True, 0, 0.91, 2_000_000),  # a3's settings, two seeds
        ("b4", "bilstm", "bpe", 100, 0.5, True, 1, 0.90, 2_000_000),
    ],
}
TEACHERS = {"A": (0.90, 10_000_000), "B": (0.92, 20_000_000)}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    db = tmp_path_factory.mktemp("compare") / "fw.duckdb"
    s = open_store(db)
    for sweep, rows in TRIALS.items():
        s.start_sweep(sweep, {"name": sweep, "tasks": ["sst2"]}, "test", f"/runs/{sweep}")
        score, size = TEACHERS[sweep]
        s.record_teacher(sweep, "sst2", f"teacher-{sweep}", score, score, None, 1_000_000, size, size)
        for tid, arch, emb, dim, alpha, boot, seed, score, gzip in rows:
            sizes = {"params": gzip // 4, "nonzero_params": gzip // 4, "disk_bytes": gzip + 1000, "gzip_bytes": gzip}
            rec = make_record(
                sweep,
                tid,
                arch=arch,
                embedding=emb,
                emb_dim=dim,
                alpha=alpha,
                bootstrap=boot,
                seed=THESIS_SEEDS[seed],
                temperature=None,
                metrics={"score": score, "accuracy": score, "epochs": 2},
                sizes=sizes,
                history=[],
            )
            s.record_trial(rec)
        s.finish_sweep(sweep, "finished")
    return open_store(db, read_only=True)


@pytest.fixture(scope="module")
def blocks(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    blocks, charts = compare_blocks(store, ["A", "B"], out, budgets=[1_000_000])
    assert set(charts) == {"sst2"} and (out / "compare_sst2.png").is_file() and (out / "compare_sst2.svg").is_file()
    return blocks


def _table_after(blocks, heading: str) -> Table:
    i = next(i for i, b in enumerate(blocks) if isinstance(b, Heading) and b.text.startswith(heading))
    table = blocks[i + 1]
    assert isinstance(table, Table)
    return table


def test_skylines_compared_at_the_same_sizes(blocks):
    table = _table_after(blocks, "Skylines at the same sizes")
    assert table.columns == ["size <= (MB)", "A %", "B %", "B - A (pp)"]
    # sizes where a skyline steps: A at 0.1, 0.4, 2 MB; B at 0.1, 0.2, 2 MB; plus the 1 MB budget
    assert table.rows == [
        ["0.100", "80.00 (FFN_Hash25)", "78.00 (FFN_Hash25)", "-2.00"],
        ["0.200", "80.00 (FFN_Hash25)", "84.00 (RNN_Hash25)", "+4.00"],
        ["0.400", "86.00 (RNN_BPE25)", "84.00 (RNN_Hash25)", "-2.00"],
        ["1.000", "86.00 (RNN_BPE25)", "84.00 (RNN_Hash25)", "-2.00"],
        ["2.000", "88.50 (BiLSTM_BPE100)", "91.00 (BiLSTM_BPE100)", "+2.50"],
    ]


def test_smallest_model_within_1_2_5_points_of_each_teacher(blocks):
    table = _table_after(blocks, "Smallest model near the teacher")
    assert table.columns[-3:] == ["within 1 pt", "within 2 pts", "within 5 pts"]
    a, b = table.rows
    # A's teacher 90.00 at 10 MB: nothing >= 89; 88.5 >= 88 (2 MB, 5x smaller); 86 >= 85 (0.4 MB, 25x smaller)
    assert a == [
        "A",
        "teacher-A",
        "90.00",
        "10.000",
        "none",
        "BiLSTM_BPE100: 2.000 MB, 88.50, 5.0x smaller",
        "RNN_BPE25: 0.400 MB, 86.00, 25x smaller",
    ]
    # B's teacher 92.00 at 20 MB: 91 is within 1 point (and 2 and 5), the smallest such, 10x smaller
    assert b[:4] == ["B", "teacher-B", "92.00", "20.000"]
    assert b[4:] == ["BiLSTM_BPE100: 2.000 MB, 91.00, 10x smaller"] * 3


def test_shared_configurations_side_by_side(blocks):
    table = _table_after(blocks, "Configurations the sweeps share")
    assert table.columns == ["model", "configuration", "size (MB)", "A %", "B %", "B - A (pp)"]
    rows = {r[0]: r for r in table.rows}
    assert set(rows) == {"FFN_Hash25", "BiLSTM_BPE100"}  # RNNs differ in their embedding: not shared
    assert rows["FFN_Hash25"][2:] == ["0.100", "80.00", "78.00", "-2.00"]
    assert rows["BiLSTM_BPE100"][2:] == ["2.000", "88.50", "90.50 (2 seeds)", "+2.00"]  # B: mean of 91 and 90
    assert "+b" in rows["BiLSTM_BPE100"][1] and "+b" not in rows["FFN_Hash25"][1]


def test_chart_holds_both_sweeps_points_and_skylines(blocks):
    chart = next(b for b in blocks if isinstance(b, Chart))
    rows = [r for data in chart.spec["datasets"].values() for r in data]
    points = {(r["sweep_key"], r.get("trial_id")) for r in rows if r.get("stage_label")}
    for sweep, trials in TRIALS.items():
        assert {(sweep, t[0]) for t in trials} <= points
    # the skyline lines: rows with only x, y and the sweep, one set per sweep
    lines = {(r["sweep_key"], round(r["x"], 3), round(r["y"], 2)) for r in rows if set(r) == {"x", "y", "sweep_key"}}
    assert {("A", 0.1, 80.0), ("A", 0.4, 86.0), ("A", 2.0, 88.5), ("A", 10.0, 90.0)} <= lines
    assert {("B", 0.1, 78.0), ("B", 0.2, 84.0), ("B", 2.0, 91.0), ("B", 20.0, 92.0)} <= lines
    assert not {s for s, _, _ in lines} - {"A", "B"}
    # the thesis' reference rows both sweeps have are drawn once a panel, in black
    for data in chart.spec["datasets"].values():
        named = [r for r in data if r.get("name") == "RoBERTa-large"]
        assert [r["sweep_key"] for r in named] in ([], [REFERENCE])
    spec = str(chart.spec)
    assert "'title': 'sweep'" in spec and "'title': 'stage'" in spec and "arch bilstm" in spec  # legends, panels


@pytest.mark.slow  # renders the one-sweep report twice; the report tests run it through the command line too
def test_one_sweep_is_the_report_as_before(store, tmp_path):
    one = build_report(store, ["A"], tmp_path / "one")
    before, _ = build_blocks(store, "A", tmp_path / "plain")
    assert one.markdown.read_text() == render_markdown(before)
    assert (tmp_path / "one" / "pareto_sst2.png").is_file()


def test_cli_compares_and_names_an_unknown_sweep(store, tmp_path, capsys):
    assert main(["report", "A", "B", "--db", str(store.path), "-o", str(tmp_path / "r"), "--by", "task"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert md.startswith("# Featherweight comparison report: A vs B") and "(compare_sst2.png)" in md
    capsys.readouterr()
    assert main(["report", "A", "nosuch", "--db", str(store.path), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosuch" in err[0]
    assert not (tmp_path / "x").exists()
