"""A sweep taught by a file of teacher outputs (a teacher it cannot run): the spec's checks, trial ids that follow
the file's content, and a real sweep through Ray whose bootstrap rows are labelled elsewhere: the first run stops
before training naming the file of texts to label, the second, given the labelled file, trains."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from analysis.views import open_store
from db.store import ExperimentStore
from featherweight_core.data.loading import load_task_data
from featherweight_core.data.tasks import task_from_options
from sweep.spec import load_spec, validate
from sweep.spec_values import SpecError

ROOT = Path(__file__).resolve().parents[2]
N_TRAIN, N_DEV = 200, 50


def _outputs(tmp_path: Path, name: str = "llm.csv", splits=("train", "validation"), flip: int = 0) -> Path:
    """Probabilities a teacher might give: 0.8 on the gold label (``flip`` rows get the other label), as CSV."""
    td = load_task_data(task_from_options("synthetic", {}), None, n_train=N_TRAIN, n_dev=N_DEV)
    path = tmp_path / name
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sentence", "negative", "positive"])
        i = 0
        for split in splits:
            for (text,), y in zip(td.splits[split].texts, td.splits[split].labels, strict=True):
                y = 1 - y if i < flip else y
                w.writerow([f"  {text} ", 0.2 if y else 0.8, 0.8 if y else 0.2])
                i += 1
    return path


def _raw(tmp_path: Path, teacher, **task) -> dict:
    return {
        "name": "llm",
        "storage": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
        "tasks": {"synthetic": {"data_options": {"n_train": N_TRAIN, "n_dev": N_DEV}, "teacher": teacher, **task}},
        "grid": {
            "archs": ["ffn"],
            "embeddings": ["hash"],
            "dims": [8],
            "vocab_sizes": [100],
            "alphas": [1.0, 0.5],
        },
        "training": {"max_epochs": 1, "patience": 1},
        "resources": {"cpus_per_trial": 1, "num_cpus": 2},
    }


def test_trial_ids_follow_the_files_content_and_only_for_trials_that_use_it(tmp_path):
    path = _outputs(tmp_path)
    ids = [t.trial_id for t in validate(_raw(tmp_path, {"outputs": str(path)})).distill_trials()]
    none = [t.trial_id for t in validate(_raw(tmp_path, None, grid={"alphas": [1.0]})).distill_trials()]
    assert ids[0] == none[0]  # alpha 1 without bootstrap does not learn from the teacher: the id without one
    path.rename(tmp_path / "moved.csv")
    moved = [t.trial_id for t in validate(_raw(tmp_path, {"outputs": str(tmp_path / "moved.csv")})).distill_trials()]
    assert moved == ids  # the content counts, not the name
    _outputs(tmp_path, "moved.csv", flip=3)
    relabelled = [
        t.trial_id for t in validate(_raw(tmp_path, {"outputs": str(tmp_path / "moved.csv")})).distill_trials()
    ]
    assert relabelled[0] == ids[0] and relabelled[1] != ids[1]


@pytest.mark.parametrize(
    ("teacher", "message"),
    [
        ({"outputs": "nope.csv"}, r"tasks\.synthetic\.teacher\.outputs: nope\.csv: teacher outputs file not found"),
        ({"outputs": 3}, r"tasks\.synthetic\.teacher\.outputs: expected a file of teacher outputs"),
        ({"outputs": "{llm}", "layout": "odds"}, r"tasks\.synthetic\.teacher\.layout: .*'odds'"),
        ({"outputs": "{llm}", "layout": "label"}, r"teacher\.outputs: .*layout 'label' needs a column 'label'"),
        ({"outputs": "{llm}", "allow_missing": "yes"}, r"teacher\.allow_missing: expected true or false"),
        ({"outputs": "{llm}", "params": 0}, r"tasks\.synthetic\.teacher\.params"),
        ({"outputs": "{llm}", "colour": 1}, r"tasks\.synthetic\.teacher.*colour"),
        ({"outputs": "{bad}"}, r"teacher\.outputs: .*bad\.jsonl, row 1: probs holds 3 values, expected 2"),
    ],
)
def test_spec_errors_name_the_key_and_the_value(tmp_path, monkeypatch, teacher, message):
    monkeypatch.chdir(tmp_path)
    llm = _outputs(tmp_path)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"sentence": "a", "probs": [0.2, 0.3, 0.5]}) + "\n")
    teacher = {k: v.format(llm=llm, bad="bad.jsonl") if isinstance(v, str) else v for k, v in teacher.items()}
    with pytest.raises(SpecError, match=message) as e:
        validate(_raw(tmp_path, teacher))
    assert "\n" not in str(e.value)


def test_a_file_teacher_takes_no_study_bootstrap_and_has_nothing_to_compress(tmp_path):
    llm = str(_outputs(tmp_path))
    with pytest.raises(SpecError, match=r"tasks\.synthetic\.bootstrap: a teacher given by its outputs"):
        validate(_raw(tmp_path, {"outputs": llm}, bootstrap={"mode": "embedding"}))
    raw = _raw(tmp_path, {"outputs": llm})
    raw["teacher_compression"] = {"tasks": ["synthetic"], "theseus": {}}
    with pytest.raises(SpecError, match=r"teacher_compression\.tasks\[0\]: .*outputs only"):
        validate(raw)


def _sweep(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sweep.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.mark.slow
def test_a_sweep_taught_by_a_file_with_bootstrap_rows_labelled_elsewhere(tmp_path):
    llm = _outputs(tmp_path)
    raw = _raw(tmp_path, {"outputs": str(llm), "name": "gpt-x", "params": 1000}, bootstrap={"n": 2, "k": 4})
    raw["grid"]["bootstrap"] = [True]
    (tmp_path / "llm.yaml").write_text(yaml.safe_dump(raw))
    r = _sweep("sweep", "run", "llm.yaml", cwd=tmp_path)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith("error: tasks.synthetic.teacher.outputs:") and "bootstrap rows" in error
    to_label = Path(error.split("label the ")[1].split(" texts in ")[1].split(" with your teacher")[0])
    assert to_label.is_file() and to_label.name.startswith("to-label-")
    db = tmp_path / "runs" / "featherweight.duckdb"
    store = ExperimentStore(db, read_only=True)
    assert store.query("SELECT count(*) AS n FROM trials WHERE sweep = 'llm'").n[0] == 0
    assert [r["status"] for r in store.stages("llm")] == ["failed"]
    del store

    # the user's LLM labels the texts: hard labels, as JSON lines
    with to_label.open() as f:
        rows = list(csv.DictReader(f))
    labelled = tmp_path / "boot-labelled.jsonl"
    labelled.write_text(
        "".join(
            json.dumps({"sentence": r["sentence"], "label": ["negative", "positive"][i % 2]}) + "\n"
            for i, r in enumerate(rows)
        )
    )
    raw["tasks"]["synthetic"]["teacher"]["outputs"] = [str(llm), str(labelled)]
    (tmp_path / "llm.yaml").write_text(yaml.safe_dump(raw))
    r = _sweep("sweep", "run", "llm.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    store = ExperimentStore(db, read_only=True)
    trials = store.query("SELECT status, config FROM trials WHERE sweep = 'llm'")
    assert len(trials) == 2 and (trials.status == "finished").all()
    stage = [s for s in store.stages("llm") if s["status"] == "finished"][0]
    assert stage["detail"]["covered_train"] == N_TRAIN and stage["detail"]["covered_bootstrap"] == len(rows)
    base = store.query("SELECT name, score, params FROM baselines WHERE sweep = 'llm' AND source = 'measured'")
    assert base.name.tolist() == ["teacher:gpt-x"] and base.score[0] == 1.0 and base.params[0] == 1000
    fidelity = open_store(db, read_only=True).query("SELECT fidelity FROM trial_results WHERE sweep = 'llm'").fidelity
    assert fidelity.notna().all() and fidelity.between(0, 1).all()


def test_load_spec_reads_a_file_teacher_from_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _outputs(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(_raw(tmp_path, {"outputs": "llm.csv"})))
    spec = load_spec(tmp_path / "s.yaml")
    assert spec.file_teacher("synthetic")["layout"] == "auto" and not spec.is_study("synthetic")
