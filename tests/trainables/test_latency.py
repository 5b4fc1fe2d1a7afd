"""A trial's latency (the spec's measure: key): what the driver hands every trial, and a bpe student timed with it in
a directory of its own, as a Ray trial runs."""

from __future__ import annotations

from pathlib import Path

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import get_task
from sweep.spec import validate
from tests.featherweight_core.export.students import bpemb_vs1000, make_bpe_student
from trainables.latency import MEASURE_KEY, dev_sample, measure_config, with_latency
from trainables.trial import TrialOutcome

TASK = get_task("synthetic")


def _spec(bpemb_dir: str | None):
    return validate(
        {
            "name": "lat",
            "tasks": {"synthetic": {}},
            "bpemb_dir": bpemb_dir,
            "measure": {"latency": True, "runtimes": ["torch", "onnxruntime"]},
        },
        check_files=False,
    )


def test_the_measure_entry_names_the_bpemb_directory_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = load_synthetic(TASK, n_train=20, n_dev=10)
    entry = measure_config(_spec("data/bpemb"), {}, lambda task: data)[MEASURE_KEY]
    assert entry["bpemb_dir"] == str(tmp_path / "data" / "bpemb")
    assert measure_config(_spec(None), {}, lambda task: data)[MEASURE_KEY]["bpemb_dir"] is None


def test_a_bpe_student_is_timed_from_a_directory_of_its_own(tmp_path, monkeypatch, shared_data):
    bpemb = bpemb_vs1000(shared_data)
    data = load_synthetic(TASK, n_train=20, n_dev=30)
    out = tmp_path / "ckpt"
    out.mkdir()
    make_bpe_student(out / "student.pt")
    config = {
        MEASURE_KEY: {
            "runtimes": ["torch", "onnxruntime"],
            "tasks": {"synthetic": dev_sample(data, 30)},
            "teachers": {},
            "bpemb_dir": str(Path(bpemb).resolve()),
        }
    }
    trial_dir = tmp_path / "trial"
    trial_dir.mkdir()
    monkeypatch.chdir(trial_dir)  # as Tune runs a trial: not where the sweep started
    outcome = TrialOutcome("finished", 0.0, 1.0, metrics={"score": 0.5}, checkpoint_file="student.pt")
    timed = with_latency(config, "synthetic", out, outcome)
    assert [(x["model"], x["runtime"]) for x in timed.latency] == [("trial", "torch"), ("trial", "onnxruntime")]
    assert all(x["p50_ms"] > 0 for x in timed.latency)
