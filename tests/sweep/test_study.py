"""One spec, the whole study: a sweep whose spec fine-tunes the small teacher, generates bootstrap data in 2 shards and
labels with the teacher, each stage as Ray tasks recorded in the ``stages`` table; the driver killed (SIGKILL, by
``FEATHERWEIGHT_FAULT_STAGE``) inside each stage in turn, and every resume redoes only the stage it was killed in."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from db.store import ExperimentStore
from sweep.assets import LEFTOVER

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _spec(tmp_path: Path) -> Path:
    raw = {
        "name": "study",
        "storage": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
        "tasks": {
            "synthetic": {
                "data_options": {"n_train": 300, "n_dev": 100},
                "teacher": {"model": "small", "finetune": {"epochs": 1}},
                "bootstrap": {"n": 2, "k": 4, "shards": 2},
            }
        },
        "grid": {
            "archs": ["ffn"],
            "embeddings": ["hash"],
            "dims": [8],
            "vocab_sizes": [100],
            "alphas": [0.5],
            "bootstrap": [False, True],
        },
        "training": {"max_epochs": 1, "patience": 1},
        "resources": {"cpus_per_trial": 1, "num_cpus": 2},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _featherweight(*args: str, cwd: Path, fault: str | None = None) -> tuple[int, str]:
    """Run the CLI in its own session; afterwards stop whatever a killed driver's Ray left in that session."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("FEATHERWEIGHT_FAULT_STAGE", None)
    if fault:
        env["FEATHERWEIGHT_FAULT_STAGE"] = fault
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out


def _stages(db: Path) -> dict[str, dict]:
    return {r["stage"]: r for r in ExperimentStore(db, read_only=True).stages("study")}


def test_whole_study_stages_resume_after_a_kill_in_each(tmp_path):
    spec = _spec(tmp_path)
    runs = tmp_path / "runs"
    db = runs / "featherweight.duckdb"
    assets = runs / "study" / "assets" / "synthetic"
    resume = ("sweep", "resume", "study", "--storage", str(runs))

    # killed inside the teacher stage: its row says running, nothing was written
    rc, out = _featherweight("sweep", "run", str(spec), cwd=tmp_path, fault="teacher")
    assert rc == -signal.SIGKILL, out[-3000:]
    rows = _stages(db)
    assert set(rows) == {"teacher"} and rows["teacher"]["status"] == "running", rows
    assert not list(assets.glob("teacher-*"))

    # killed inside the bootstrap stage (once a shard is done): the teacher finished on its second attempt
    rc, out = _featherweight(*resume, cwd=tmp_path, fault="bootstrap")
    assert rc == -signal.SIGKILL, out[-3000:]
    rows = _stages(db)
    teacher = rows["teacher"]
    assert teacher["status"] == "finished" and teacher["attempts"] == 2 and teacher["device"] == "cpu"
    assert teacher["seconds"] > 0 and teacher["node"] and teacher["detail"]["metrics"]["score"] > 0
    (teacher_dir,) = assets.glob("teacher-*")
    assert teacher["output"] == str(teacher_dir) and teacher_dir.name == f"teacher-{teacher['fingerprint']}"
    teacher_mtime = (teacher_dir / "model.safetensors").stat().st_mtime_ns
    assert rows["bootstrap"]["status"] == "running"
    assert not list(assets.glob("bootstrap-*.parquet"))
    assert list(assets.glob("bootstrap-*.shards/shard-*-of-00002.parquet"))  # the finished shard is kept

    # killed inside the soft-target stage: the teacher was not touched, the bootstrap data finished
    rc, out = _featherweight(*resume, cwd=tmp_path, fault="soft_targets")
    assert rc == -signal.SIGKILL, out[-3000:]
    assert "teacher synthetic: done already" in out
    rows = _stages(db)
    assert rows["teacher"] == teacher
    boot = rows["bootstrap"]
    assert boot["status"] == "finished" and boot["attempts"] == 2 and boot["device"] == "cpu" and boot["seconds"] > 0
    assert boot["detail"]["shards"] == 2 and boot["detail"]["shards_run"] <= 1 and boot["detail"]["kept"] > 0
    (boot_file,) = assets.glob("bootstrap-*.parquet")
    assert boot["output"] == str(boot_file) and not list(assets.glob("bootstrap-*.shards"))
    boot_mtime = boot_file.stat().st_mtime_ns
    assert rows["soft_targets"]["status"] == "running"

    # the last resume labels, then runs every trial; prepare() on the driver only reads what the stage wrote
    rc, out = _featherweight(*resume, cwd=tmp_path)
    assert rc == 0, out[-3000:]
    assert "teacher synthetic: done already" in out and "bootstrap synthetic: done already" in out
    rows = _stages(db)
    assert rows["teacher"] == teacher and rows["bootstrap"] == boot
    assert (teacher_dir / "model.safetensors").stat().st_mtime_ns == teacher_mtime
    assert boot_file.stat().st_mtime_ns == boot_mtime
    soft = rows["soft_targets"]
    assert soft["status"] == "finished" and soft["attempts"] == 2 and soft["device"] == "cpu" and soft["seconds"] > 0
    assert soft["detail"]["rows"] == 300 + boot["detail"]["kept"]  # the train split and every bootstrap row
    store = ExperimentStore(db, read_only=True)
    trials = store.query("SELECT trial_id, status, finished_at FROM trials WHERE sweep = 'study'")
    assert len(trials) == 2 and (trials.status == "finished").all()
    assert store.sweep_status("study")["status"] == "finished"
    teachers = store.query("SELECT name FROM baselines WHERE sweep = 'study'")
    assert list(teachers.name) == [f"teacher:{teacher_dir.name}"]
    # nothing the killed runs left behind (a half-built teacher, progress files, half-written files) is still there
    sweep_dir = runs / "study"
    left = [p for p in sweep_dir.rglob(".*") if LEFTOVER.match(p.name) and p.relative_to(sweep_dir).parts[0] != "tune"]
    assert not left, left

    # nothing left: no stage runs again, nothing changes
    rc, out = _featherweight(*resume, cwd=tmp_path)
    assert rc == 0 and "nothing to do" in out, out[-3000:]
    assert _stages(db) == rows


def test_fill_mask_shards_run_their_masked_lm(tmp_path):
    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import task_from_options
    from featherweight_core.teacher.augment import read_augmented
    from featherweight_core.teacher.smallbert import build_small_bert

    td = load_task_data(task_from_options("synthetic", {}), None, n_train=200, n_dev=50)
    mlm = build_small_bert([t[0] for t in td.train.texts], tmp_path / "mlm", head="masked-lm")
    raw = yaml.safe_load(_spec(tmp_path).read_text())
    raw["tasks"]["synthetic"]["data_options"] = {"n_train": 200, "n_dev": 50}
    raw["tasks"]["synthetic"]["bootstrap"] = {"mode": "fill-mask", "mlm": str(mlm), "n": 2, "k": 3, "shards": 2}
    raw["grid"]["bootstrap"] = [True]
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw))
    rc, out = _featherweight("sweep", "run", "study.yaml", cwd=tmp_path)
    assert rc == 0, out[-3000:]
    rows = _stages(tmp_path / "runs" / "featherweight.duckdb")
    assert {s: r["status"] for s, r in rows.items()} == dict.fromkeys(
        ("teacher", "bootstrap", "soft_targets"), "finished"
    )
    boot = rows["bootstrap"]
    assert boot["detail"]["mlm"] == str(mlm) and boot["detail"]["shards_run"] == 2 and boot["device"] == "cpu"
    aug, meta = read_augmented(boot["output"], td.task)
    assert len(aug) == boot["detail"]["kept"] > 0 and meta["mlm"] == str(mlm) and meta["config"]["mode"] == "fill-mask"


def test_stage_resources_no_node_has_fail_before_anything_is_written(tmp_path):
    raw = yaml.safe_load(_spec(tmp_path).read_text())
    raw["resources"]["teacher_gpus"] = 1
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw))
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out = _featherweight("sweep", "run", "study.yaml", cwd=tmp_path)
    assert rc == 2, out[-3000:]
    assert (
        out.strip()
        .splitlines()[-1]
        .startswith("error: resources.teacher_gpus: 1 GPU per stage task asked, the Ray cluster has 0 GPUs (nodes: ")
    ), out
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no storage, database or spec copy


def test_a_teacher_directory_labels_in_the_soft_targets_stage(tmp_path):
    """A task whose teacher is a directory (not a study task: bootstrap generated on the driver) labels through the
    ``soft_targets`` stage as a Ray task into the driver's cache, the store prepare() used before: the same logits
    the driver computed before, a resume after a kill inside the stage labels once, and another sweep on a cache the
    driver filled (the old way) finds its labels there."""
    import numpy as np

    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import task_from_options
    from featherweight_core.teacher.augment import read_augmented
    from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_teacher
    from featherweight_core.teacher.softtargets import SoftTargetStore

    td = load_task_data(task_from_options("synthetic", {}), None, n_train=200, n_dev=50)
    small = SmallBertConfig(vocab_size=300, hidden=16, layers=2, heads=2, intermediate=32, max_length=32)
    teacher = build_small_teacher(td, tmp_path / "teacher", small)
    raw = yaml.safe_load(_spec(tmp_path).read_text())
    raw["name"] = "plain"
    raw["tasks"]["synthetic"] = {
        "data_options": {"n_train": 200, "n_dev": 50},
        "teacher": str(teacher),
        "bootstrap": {"n": 2, "k": 4},
    }
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(raw))
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    db = runs / "featherweight.duckdb"

    def stage(sweep: str) -> dict:
        (row,) = ExperimentStore(db, read_only=True).stages(sweep)
        return row

    rc, out = _featherweight("sweep", "run", "plain.yaml", cwd=tmp_path, fault="soft_targets")
    assert rc == -signal.SIGKILL, out[-3000:]
    assert "soft_targets synthetic: running (softtargets)" in out and stage("plain")["status"] == "running"

    rc, out = _featherweight("sweep", "resume", "plain", "--storage", str(runs), cwd=tmp_path)
    assert rc == 0, out[-3000:]
    lines = out.splitlines()
    labelled = next(i for i, s in enumerate(lines) if s.startswith("soft_targets synthetic: finished in"))
    assert lines[labelled].endswith("on cpu (softtargets)")
    assert labelled < lines.index("preparing data (encoded once per task and encoding, shared with all trials)")
    row = stage("plain")
    aug, _ = read_augmented(runs / "plain" / "assets" / "synthetic" / "bootstrap.parquet", td.task)
    assert row["status"] == "finished" and row["attempts"] == 2 and row["device"] == "cpu"
    assert row["output"] == str(cache / "softtargets") and row["detail"]["rows"] == 200 + len(aug)
    trials = ExperimentStore(db, read_only=True).query("SELECT status FROM trials WHERE sweep = 'plain'")
    assert len(trials) == 2 and (trials.status == "finished").all()

    # the logits the driver computed before: prepare()'s own store, device auto, in this process
    before = SoftTargetStore(tmp_path / "old-cache" / "softtargets")
    stage_store = SoftTargetStore(cache / "softtargets")
    for data, split in ((td, "train"), (aug, "synthetic-bootstrap")):
        keys, logits = before.get_or_compute(teacher, data, split)
        assert stage_store.has(teacher, data, split)
        stored_keys, stored = stage_store.get_or_compute(teacher, data, split)
        # equal up to float32 rounding: torch's thread count (this test process's may have been changed by an
        # earlier test) moves the last bits of a matmul, nothing more
        assert stored_keys == keys
        np.testing.assert_allclose(stored, logits, rtol=1e-5, atol=1e-7)
    assert stage_store.model_runs == 0 and before.model_runs == 2

    # another sweep on the cache the driver filled: its stage is done already, nothing is labelled again
    raw["name"], raw["cache_dir"] = "other", str(tmp_path / "old-cache")
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(raw))
    rc, out = _featherweight("sweep", "run", "other.yaml", cwd=tmp_path)
    assert rc == 0, out[-3000:]
    assert "soft_targets synthetic: done already (softtargets)" in out
    row = stage("other")
    assert row["status"] == "cached" and row["output"] == str(tmp_path / "old-cache" / "softtargets")
