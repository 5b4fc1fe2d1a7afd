"""Latency per runtime in the database and the report: latency rows of a trial (and its teacher) recorded and shown
in the trial_latency view, the latency frontier (pareto_points / skyline over latency_ms per runtime), the report's
--size latency_ms and its deployment table, and a bad --size value."""

from __future__ import annotations

import pytest

from analysis.views import open_store
from db.errors import StoreError
from db.store import ExperimentStore
from sweep.cli import main
from tests.fakes import make_record

MACHINE = "test CPU, 2 cores, host"


def _lat(model: str, runtime: str, p50: float, precision: str = "float") -> dict:
    return {
        "model": model,
        "runtime": runtime,
        "precision": precision,
        "p50_ms": p50,
        "p90_ms": p50 * 1.5,
        "throughput": 1000.0 / p50,
        "batch_size": 256,
        "threads": 1,
        "examples": 100,
        "machine": MACHINE,
    }


# trial -> (accuracy, gzip bytes, torch ms, onnxruntime ms)
TRIALS = {
    "big-slow": (0.905, 900_000, 3.0, 2.0),
    "small-fast": (0.899, 100_000, 0.6, 0.2),
    "tiny-far": (0.80, 20_000, 0.1, 0.05),
    "mid": (0.889, 300_000, 0.9, 0.5),
}
TEACHER_MS = 30.0


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("lat") / "fw.duckdb"
    store = open_store(path)
    store.start_sweep("lat", {"tasks": ["sst2"]}, "test", "/tmp/lat")
    store.record_teacher("lat", "sst2", "teacher-small", 0.91, 0.91, None, 4_000_000, 16_000_000, 14_900_000)
    for tid, (acc, gz, torch_ms, ort_ms) in TRIALS.items():
        rec = make_record(
            "lat",
            tid,
            metrics={"score": acc, "accuracy": acc, "best_epoch": 1, "epochs": 1},
            sizes={"params": gz, "nonzero_params": gz, "disk_bytes": gz * 2, "gzip_bytes": gz},
            latency=[
                _lat("trial", "torch", torch_ms),
                _lat("trial", "onnxruntime", ort_ms),
                _lat("teacher", "torch", TEACHER_MS),
            ],
        )
        store.record_trial(rec)
    store.record_trial(make_record("lat", "unmeasured", metrics={"score": 0.95, "accuracy": 0.95}))
    store.finish_sweep("lat", "finished")
    return path


def test_latency_rows_are_recorded_and_shown_per_runtime(db):
    store = open_store(db, read_only=True)
    raw = store.query("SELECT * FROM latency WHERE sweep = 'lat' ORDER BY trial_id, model, runtime")
    assert len(raw) == 3 * len(TRIALS)
    assert set(raw["machine"]) == {MACHINE} and set(raw["threads"]) == {1}
    view = store.query("SELECT * FROM trial_latency WHERE sweep = 'lat' ORDER BY trial_id, runtime")
    assert len(view) == 2 * len(TRIALS)  # the teacher rows are a column of the trial's, not rows of their own
    row = view[(view.trial_id == "small-fast") & (view.runtime == "onnxruntime")].iloc[0]
    assert row.p50_ms == 0.2 and row.p90_ms == pytest.approx(0.3) and row.teacher_p50_ms == TEACHER_MS
    assert row.speedup_vs_teacher == pytest.approx(150.0)
    assert "unmeasured" not in set(view["trial_id"])


def test_a_bad_latency_row_is_refused(tmp_path):
    store = ExperimentStore(tmp_path / "x.duckdb")
    store.start_sweep("s", {}, "test", "/tmp/s")
    with pytest.raises(StoreError, match="runtime in"):
        store.record_trial(make_record("s", "t", latency=[_lat("trial", "tflite", 1.0)]))


def test_latency_frontier_per_runtime(db):
    store = open_store(db, read_only=True)
    sky = store.query(
        "SELECT trial_id, size_value FROM skyline WHERE sweep = 'lat' AND score_measure = 'score' "
        "AND size_measure = 'latency_ms_onnxruntime' ORDER BY skyline_rank"
    )
    # the fastest first; big-slow is slower but better; mid is dominated by small-fast; baselines have no latency
    assert list(sky.trial_id) == ["tiny-far", "small-fast", "big-slow"]
    assert list(sky.size_value) == [0.05, 0.2, 2.0]
    torch_points = store.query(
        "SELECT trial_id, size_value FROM pareto_points WHERE sweep = 'lat' AND score_measure = 'score' "
        "AND size_measure = 'latency_ms_torch' ORDER BY trial_id"
    )
    assert dict(zip(torch_points.trial_id, torch_points.size_value, strict=True)) == {
        t: v[2] for t, v in TRIALS.items()
    }


def test_report_with_latency_as_the_size_axis(db, tmp_path, capsys):
    assert main(["report", "lat", "--db", str(db), "-o", str(tmp_path / "r"), "--size", "latency_ms"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "### Skyline: accuracy vs latency_ms_onnxruntime" in md
    assert "CPU latency, batch 1, ONNX Runtime (ms, log scale)" in (tmp_path / "r" / "pareto_sst2.svg").read_text()
    deploy = md.split("### Deployment: fastest and smallest near the teacher", 1)[1].split("###", 1)[0]
    lines = [
        ln for ln in deploy.splitlines() if ln.startswith("| 1 ") or ln.startswith("| 2 ") or ln.startswith("| 5 ")
    ]
    # the teacher scores 91.0: within 1 point only big-slow (90.5); within 2 also small-fast (89.9); within 5 also mid
    assert "fastest" in lines[0] and "big-slow" in lines[0] and "15.0x" in lines[0]
    assert "smallest" in lines[1] and "big-slow" in lines[1]
    assert "fastest" in lines[2] and "small-fast" in lines[2] and "0.200" in lines[2] and "150.0x" in lines[2]
    assert all("small-fast" in ln for ln in lines[2:]) and len(lines) == 6
    assert all("tiny-far" not in ln for ln in lines)  # 10.5 points below the teacher
    assert "PyTorch (ms)" in deploy and "ONNX Runtime (ms)" in deploy
    assert (
        main(
            ["report", "lat", "--db", str(db), "-o", str(tmp_path / "t"), "--size", "latency_ms", "--runtime", "torch"]
        )
        == 0
    )
    assert "### Skyline: accuracy vs latency_ms_torch" in (tmp_path / "t" / "report.md").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as bad:  # argparse refuses it before anything is opened
        main(["report", "lat", "--db", str(db), "-o", str(tmp_path / "bad"), "--size", "latency_us"])
    assert bad.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "latency_us" in err and "latency_ms" in err
    assert not (tmp_path / "bad").exists()
