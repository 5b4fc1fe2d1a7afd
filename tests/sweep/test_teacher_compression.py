"""The teacher_compression stage: the spec section (good and bad keys), its grid against a real teacher, the
resource check, and a synthetic sweep through Ray Tune into DuckDB with both methods (one trial quantized), resumed
as a no-op."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import get_task
from featherweight_core.teacher.config import TeacherConfig
from featherweight_core.teacher.finetune import finetune_teacher
from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_teacher
from featherweight_core.teacher.softtargets import teacher_fingerprint
from featherweight_core.teacher.teacher_compression import COMPRESSED_META
from sweep.spec import SpecError, validate
from sweep.stages.teacher_compression import (
    TeacherCompressionStage,
    check_teacher_compression_grid,
    check_teacher_compression_resources,
    known_teachers,
    teacher_shape,
    trial_resources,
    waves,
)
from sweep.tuner import ResourceError
from trainables.teacher_compression import float_sibling, reusable_successor, run_teacher_compression
from trainables.trial import TeacherCompressionTrial, TrialOutcome

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "name": "tc",
    "tasks": {"synthetic": {"teacher": "small", "data_options": {"n_train": 300, "n_dev": 100}}},
    "grid": {"archs": ["ffn"], "embeddings": ["hash"], "dims": [16], "vocab_sizes": [500]},
}


def _validate(tc, **top):
    return validate({**BASE, **top, "teacher_compression": tc}, check_files=False)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """An untrained 4-layer small BERT: a real teacher directory to plan against (layers, fingerprint)."""
    torch.set_num_threads(1)
    data = load_synthetic(get_task("synthetic"), n_train=60, n_dev=20)
    cfg = SmallBertConfig(vocab_size=200, hidden=16, layers=4, heads=2, intermediate=32, max_length=32)
    return build_small_teacher(data, tmp_path_factory.mktemp("teacher") / "t", cfg)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, teacher):
    """The 4-layer teacher fine-tuned one quick epoch, and its task data: what the methods start from."""
    data = load_synthetic(get_task("synthetic"), n_train=60, n_dev=20)
    cfg = TeacherConfig(epochs=1, batch_size=32, lr=3e-3, max_length=32, device="cpu")
    out = tmp_path_factory.mktemp("tuned") / "t"
    finetune_teacher(teacher, data, out, cfg, progress=False, log=None)
    return out, data


# ---- the spec section ----------------------------------------------------------------------------------------------


def test_section_is_validated_and_filled():
    spec = _validate(
        {
            "theseus": {"r": 2, "schedule": ["constant", "linear"], "p": [0.3, 0.5, 0.3], "k": 0.01, "epochs": 1},
            "bertvision": {"k": [1, 2], "quantize": [False, True], "lr": 1e-3},
        }
    )
    tc = spec.teacher_compression
    assert tc["tasks"] == ["synthetic"]  # default: every task with a teacher
    assert tc["theseus"] == {
        "replace_rate": [2],
        "schedule": ["constant", "linear"],
        "p": [0.3, 0.5],
        "k": [0.01],
        "epochs": 1,
        "seeds": [0],
        "quantize": [False],
    }
    assert tc["bertvision"] == {"layers": [1, 2], "quantize": [False, True], "lr": 0.001, "seeds": [0]}
    assert spec.teacher_compression_size() == 3 + 4  # theseus: constant x 2 p, linear; bertvision: 2 k x 2 quantize
    assert spec.resources["teacher_compression_cpus"] == 1 and spec.resources["teacher_compression_gpus"] == "auto"
    # the saved spec validates to itself (a resume reads it back)
    again = validate(json.loads(json.dumps(spec.raw)), check_files=False)
    assert again.teacher_compression == tc
    # a method left out does not run; no section, no stage
    assert "bertvision" not in _validate({"theseus": None}).teacher_compression
    assert validate(BASE, check_files=False).teacher_compression is None


@pytest.mark.parametrize(
    ("tc", "message"),
    [
        ({}, "teacher_compression: expected the settings of theseus and/or bertvision"),
        ({"theseus": {}, "colour": 1}, "teacher_compression.colour: unknown key"),
        ({"theseus": {"alpha": 0.5}}, "teacher_compression.theseus.alpha: unknown key"),
        ({"theseus": {"r": 1}}, "teacher_compression.theseus.r: 1 must be >= 2"),
        ({"theseus": {"replace_rate": [2, "x"]}}, "teacher_compression.theseus.replace_rate[1]: expected an integer"),
        ({"theseus": {"r": 2, "replace_rate": 3}}, "teacher_compression.theseus.r: r is another name of replace_rate"),
        ({"theseus": {"schedule": "cosine"}}, "teacher_compression.theseus.schedule: 'cosine' is not one of"),
        ({"theseus": {"schedule": []}}, "teacher_compression.theseus.schedule: expected a non-empty list, got []"),
        ({"theseus": {"p": 1.5}}, "teacher_compression.theseus.p: 1.5 is outside [0.0, 1.0]"),
        ({"theseus": {"k": 0}}, "teacher_compression.theseus.k: expected a number > 0, got 0"),
        ({"theseus": {"b": -0.1}}, "teacher_compression.theseus.b: -0.1 is outside"),
        ({"theseus": {"replacing_fraction": 2}}, "teacher_compression.theseus.replacing_fraction: 2 is outside"),
        ({"theseus": {"train_classifier": "yes"}}, "teacher_compression.theseus.train_classifier: expected true or"),
        ({"theseus": {"seeds": [-1]}}, "teacher_compression.theseus.seeds[0]: -1 must be >= 0"),
        ({"theseus": {"quantize": "int8"}}, "teacher_compression.theseus.quantize: expected true or false"),
        ({"theseus": {"epochs": 0}}, "teacher_compression.theseus.epochs: 0 must be >= 1"),
        ({"theseus": {"epochs": [1, 2]}}, "teacher_compression.theseus.epochs: expected an integer, got [1, 2]"),
        ({"theseus": {"lr": "fast"}}, "teacher_compression.theseus.lr: expected a finite number, got 'fast'"),
        ({"theseus": {"max_length": 4}}, "teacher_compression.theseus.max_length: 4 must be >= 8"),
        ({"theseus": {"warmup_ratio": 1}}, "teacher_compression.theseus.warmup_ratio: 1 is outside [0.0, 1.0)"),
        ({"bertvision": {"layers": 0}}, "teacher_compression.bertvision.layers: 0 must be >= 1"),
        ({"bertvision": {"k": [2, 0]}}, "teacher_compression.bertvision.k[1]: 0 must be >= 1"),
        ({"bertvision": {"head": "mlp"}}, "teacher_compression.bertvision.head: 'mlp' is not one of"),
        ({"bertvision": {"adapter_size": 0}}, "teacher_compression.bertvision.adapter_size: 0 must be >= 1"),
        ({"bertvision": {"dropout": 1.0}}, "teacher_compression.bertvision.dropout: 1.0 is outside"),
        ({"bertvision": {"pooling": ["first", "max"]}}, "teacher_compression.bertvision.pooling[1]: 'max' is not one"),
        ({"theseus": {"precision": "int8"}}, "teacher_compression.theseus.precision: 'int8' is not one of"),
        ({"bertvision": {"p": 0.5}}, "teacher_compression.bertvision.p: unknown key"),
        ({"bertvision": [1]}, "teacher_compression.bertvision: expected a mapping"),
        ({"tasks": ["sst2"], "theseus": {}}, "teacher_compression.tasks[0]: 'sst2' is not a task of this spec"),
        ({"tasks": 3, "theseus": {}}, "teacher_compression.tasks: expected a non-empty list, got 3"),
    ],
)
def test_bad_keys_and_values_name_the_key_and_the_value(tc, message):
    with pytest.raises(SpecError) as e:
        _validate(tc)
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_tasks_need_a_teacher():
    no_teacher = {"synthetic": {"data_options": {"n_train": 300}}}
    with pytest.raises(SpecError, match=r"^teacher_compression.tasks: no task of this spec has a teacher"):
        _validate({"theseus": {}}, tasks=no_teacher)
    with pytest.raises(SpecError, match=r"^teacher_compression.tasks\[0\]: task 'synthetic' has no teacher to"):
        _validate({"tasks": ["synthetic"], "theseus": {}}, tasks=no_teacher)
    with pytest.raises(SpecError, match=r"^resources.teacher_compression_gpus: expected 'auto' or a number"):
        _validate({"theseus": {}}, resources={"teacher_compression_gpus": "all"})


# ---- the grid against a teacher ------------------------------------------------------------------------------------


def test_grid_against_the_teacher(teacher):
    spec = _validate(
        {
            "theseus": {"r": [2, 4], "schedule": ["constant", "linear"], "p": [0.3, 0.5], "k": 0.01, "epochs": 1},
            "bertvision": {"layers": [1, 4], "seeds": [0, 1], "quantize": [True]},
        }
    )
    trials = spec.teacher_compression_trials({"synthetic": str(teacher)})
    theseus = [t for t in trials if t.method == "theseus"]
    bertvision = [t for t in trials if t.method == "bertvision"]
    # per r: constant x 2 p values (no k), linear (no p): the knobs of the other schedule are left out
    assert len(theseus) == 2 * 3
    assert {tuple(sorted(t.settings)) for t in theseus} == {
        ("epochs", "p", "replace_rate", "schedule"),
        ("epochs", "k", "replace_rate", "schedule"),
    }
    assert len(bertvision) == 4 and all(t.quantize for t in bertvision)
    assert {(t.settings["layers"], t.seed) for t in bertvision} == {(1, 0), (1, 1), (4, 0), (4, 1)}
    fp = teacher_fingerprint(teacher)
    assert {t.teacher_fingerprint for t in trials} == {fp}
    assert len({t.trial_id for t in trials}) == len(trials)
    assert all(TeacherCompressionTrial.from_dict(t.to_dict()) == t for t in trials)
    # the same spec plans the same ids; a task whose teacher does not exist yet plans nothing
    assert [t.trial_id for t in spec.teacher_compression_trials({"synthetic": str(teacher)})] == [
        t.trial_id for t in trials
    ]
    assert spec.teacher_compression_trials({}) == []


@pytest.mark.parametrize(
    ("tc", "message"),
    [
        ({"bertvision": {"layers": [2, 5]}}, "teacher_compression.bertvision.layers: 5 is more than the 4 layers of"),
        ({"theseus": {"r": 3}}, "teacher_compression.theseus.replace_rate: 3 does not divide the 4 layers of"),
        ({"theseus": {"r": 8}}, "teacher_compression.theseus.replace_rate: 8 does not divide the 4 layers of"),
    ],
)
def test_a_grid_that_does_not_fit_the_teacher_is_one_error_line(teacher, tc, message):
    spec = _validate(tc)
    with pytest.raises(SpecError) as e:
        spec.teacher_compression_trials({"synthetic": str(teacher)})
    assert str(e.value).startswith(message) and str(teacher) in str(e.value) and "\n" not in str(e.value)
    # the runner's check before Ray starts, for a teacher that exists: the same error
    with_dir = validate(
        {**BASE, "tasks": {"synthetic": {"teacher": str(teacher)}}, "teacher_compression": tc}, check_files=False
    )
    with pytest.raises(SpecError, match=f"^{message.replace('.', '[.]')}"):
        check_teacher_compression_grid(with_dir)


def test_known_teachers_finds_only_existing_ones(tmp_path, teacher):
    spec = _validate({"theseus": {}}, storage=str(tmp_path))
    assert known_teachers(spec) == {}  # the small teacher is not built yet
    d = validate(
        {**BASE, "tasks": {"synthetic": {"teacher": str(teacher)}}, "teacher_compression": {"theseus": {}}},
        check_files=False,
    )
    assert known_teachers(d) == {"synthetic": str(teacher.resolve())}


def test_known_teachers_of_a_study_task_come_from_its_teacher_stage(tmp_path, teacher):
    from db.store import ExperimentStore

    raw = {
        **BASE,
        "storage": str(tmp_path),
        "tasks": {"synthetic": {"teacher": {"model": "small"}}},
        "teacher_compression": {"bertvision": {}},
    }
    spec = validate(raw, check_files=False)
    store = ExperimentStore(tmp_path / "db.duckdb")
    store.start_sweep("tc", spec.raw, "test", str(tmp_path))
    assert known_teachers(spec, store) == {}  # the teacher stage has not run
    store.start_stage("tc", "synthetic", "teacher", "fp-old", str(tmp_path / "gone"))
    store.finish_stage("tc", "synthetic", "teacher", "fp-old", "finished", output=str(tmp_path / "gone"))
    assert known_teachers(spec, store) == {}  # recorded, but its directory is gone
    store.start_stage("tc", "synthetic", "teacher", "fp-new", str(teacher))
    assert known_teachers(spec, store) == {}  # running: not built yet
    store.finish_stage("tc", "synthetic", "teacher", "fp-new", "finished", output=str(teacher))
    assert known_teachers(spec, store) == {"synthetic": str(teacher)}


def test_resources(tmp_path):
    spec = _validate({"theseus": {}}, resources={"teacher_compression_cpus": 2})
    node = {"Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 2.0}}
    assert trial_resources(spec, {"CPU": 2.0}) == (2.0, 0.0)
    assert trial_resources(spec, {"CPU": 2.0, "GPU": 4.0}) == (2.0, 1.0)  # auto: one GPU each when there are any
    check_teacher_compression_resources(spec, {"CPU": 2.0}, [node])
    with pytest.raises(ResourceError, match=r"^resources.teacher_compression_cpus: 2 CPU per teacher compression"):
        check_teacher_compression_resources(spec, {"CPU": 1.0}, [{**node, "Resources": {"CPU": 1.0}}])
    spec = _validate({"theseus": {}}, resources={"teacher_compression_gpus": 1})
    with pytest.raises(ResourceError, match=r"^resources.teacher_compression_gpus: 1 GPU per teacher compression"):
        check_teacher_compression_resources(spec, {"CPU": 2.0}, [node])


# ---- the trainable's body and the record, without Ray --------------------------------------------------------------


def test_trial_body_and_record_into_the_database(tmp_path, tuned):
    from analysis.views import open_store

    teacher_dir, data = tuned
    spec = validate(
        {
            **BASE,
            "tasks": {"synthetic": {"teacher": str(teacher_dir)}},
            "teacher_compression": {
                "theseus": {"r": 2, "epochs": 1, "max_length": 32, "quantize": True},
                "bertvision": {"k": 1, "epochs": 1, "max_length": 32},
            },
        },
        check_files=False,
    )
    trials = spec.teacher_compression_trials({"synthetic": str(teacher_dir)})
    assert [t.method for t in trials] == ["theseus", "bertvision"]
    shape = teacher_shape(teacher_dir)
    assert shape["hidden_size"] == 16 and shape["layers"] == 4 and shape["vocab_size"] > 0
    store = open_store(tmp_path / "db.duckdb")
    store.start_sweep("tc", spec.raw, "test", str(tmp_path))
    for trial in trials:
        out = tmp_path / "checkpoints" / trial.trial_id
        outcome = run_teacher_compression(trial, data, str(teacher_dir), "cpu", str(out), str(tmp_path / "cache"))
        back = TrialOutcome.from_result(outcome.to_result("gzip_bytes"))  # what crosses Ray
        assert back == outcome and back.teacher["dir"] == str(teacher_dir)
        store.record_trial(TeacherCompressionStage().record("tc", trial, back, str(out), {trial.task: shape}))
    failed = TrialOutcome.failed("RuntimeError: boom", 1.0, 2.0)
    store.record_trial(
        TeacherCompressionStage().record("tc", trials[1], failed, None, {trials[1].task: shape})
    )  # a finished row stays
    rows = store.query("SELECT * FROM trial_results WHERE stage = 'teacher_compression' ORDER BY arch DESC")
    assert list(rows.arch) == ["theseus", "bertvision"] and (rows.status == "finished").all()
    assert list(rows.layers) == [2, 1] and (rows.teacher == str(teacher_dir)).all() and (rows.emb_dim == 16).all()
    assert list(rows.quantization.fillna("-")) == ["int8 dynamic (Linear)", "-"]
    assert (rows.trainable_params > 0).all() and (rows.params > rows.trainable_params).all()
    assert (rows.latency_ms > 0).all() and (rows.gzip_bytes > 0).all() and rows.score.between(0, 1).all()
    assert (rows.teacher_latency_ms > 0).all()  # both methods time the teacher beside their model
    assert [Path(p).name for p in rows.checkpoint_path] == [t.trial_id for t in trials]
    # per-class metrics as students record them: one row per dev class, supports summing to the dev split
    classes = store.query(
        "SELECT trial_id, split, sum(support) AS n, count(*) AS k, bool_and(f1 BETWEEN 0 AND 1) AS ok"
        " FROM class_metrics WHERE sweep = 'tc' GROUP BY ALL ORDER BY trial_id"
    )
    assert sorted(classes.trial_id) == sorted(t.trial_id for t in trials)
    assert (classes.split == "validation").all() and (classes.n == len(data.splits["validation"])).all()
    assert (classes.k == data.task.num_labels).all() and classes.ok.all()

    # a teacher replaced after planning fails the trial instead of compressing another model
    stale = TeacherCompressionTrial.from_dict({**trials[1].to_dict(), "teacher_fingerprint": "0" * 16})
    with pytest.raises(RuntimeError, match="changed since the trial was planned"):
        run_teacher_compression(stale, data, str(teacher_dir), "cpu", str(tmp_path / "stale"))
    assert not (tmp_path / "stale").exists()


def test_int8_theseus_trial_quantizes_its_float_sibling_instead_of_training(tmp_path, tuned):
    teacher_dir, data = tuned
    spec = validate(
        {
            **BASE,
            "tasks": {"synthetic": {"teacher": str(teacher_dir)}},
            "teacher_compression": {
                "theseus": {"r": 2, "epochs": 1, "max_length": 32, "quantize": [False, True]},
                "bertvision": {"k": 1, "epochs": 1, "max_length": 32, "quantize": [False, True]},
            },
        },
        check_files=False,
    )
    trials = spec.teacher_compression_trials({"synthetic": str(teacher_dir)})
    first, second = waves(trials)
    assert [(t.method, t.quantize) for t in second] == [("theseus", True)]  # BERT-Vision int8 trains its own head
    assert len(first) == 3 and float_sibling(second[0]) in first
    assert waves(second) == (second, [])  # without its sibling in the plan (a resume) it runs in the first wave
    q, f = second[0], float_sibling(second[0])
    f_out = tmp_path / f.trial_id
    run_teacher_compression(f, data, str(teacher_dir), "cpu", str(f_out))
    reused = run_teacher_compression(q, data, str(teacher_dir), "cpu", str(tmp_path / "reused"), float_dir=str(f_out))
    trained = run_teacher_compression(q, data, str(teacher_dir), "cpu", str(tmp_path / "trained"))
    assert reused.quantization == trained.quantization == "int8 dynamic (Linear)"
    assert reused.metrics["score"] == trained.metrics["score"] and reused.sizes == trained.sizes
    meta = json.loads((tmp_path / "reused" / COMPRESSED_META).read_text())
    assert meta["quantized_from"] == str(f_out) and "quantized_from" not in json.loads(
        (tmp_path / "trained" / COMPRESSED_META).read_text()
    )
    # a float directory of another teacher is not reused
    other = TeacherCompressionTrial.from_dict({**q.to_dict(), "teacher_fingerprint": "0" * 16})
    assert not reusable_successor(other, f_out) and reusable_successor(q, f_out)
    assert not reusable_successor(q, tmp_path / "missing") and not reusable_successor(q, None)


# ---- a synthetic sweep into the database ---------------------------------------------------------------------------


def _featherweight(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "sweep.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


@pytest.mark.slow
def test_both_methods_in_a_synthetic_sweep_into_the_database(tmp_path):
    from analysis.views import open_store

    raw = {
        **BASE,
        "storage": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
        "training": {"max_epochs": 1, "patience": 1},
        "resources": {"cpus_per_trial": 1, "num_cpus": 2},
        "teacher_compression": {
            "theseus": {"r": 2, "epochs": 1, "max_length": 32, "quantize": [False, True]},
            "bertvision": {"layers": [1, 2], "epochs": 2, "max_length": 32},
        },
    }
    spec = tmp_path / "tc.yaml"
    spec.write_text(yaml.safe_dump(raw))
    # one trial fails: recorded as an error row, the others finish, the sweep goes on
    r = _featherweight("sweep", "run", str(spec), cwd=tmp_path, FEATHERWEIGHT_FAULT_TRIALS="method=bertvision,layers=2")
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("[teacher compression")]
    assert len(lines) == 4 and sum("score" in ln for ln in lines) == 3, r.stderr[-3000:]
    assert "int8" in lines[-1] and "theseus" in lines[-1]  # the int8 successor comes after its float sibling
    assert "1 distillation + 0 compression + 4 teacher compression trials run, 1 failed" in r.stderr
    db = tmp_path / "runs" / "featherweight.duckdb"
    failed = open_store(db, read_only=True).query("SELECT * FROM trials WHERE status = 'error'")
    assert len(failed) == 1 and failed.arch[0] == "bertvision" and "injected fault" in failed.error[0]
    assert failed.stage[0] == "teacher_compression" and failed.emb_dim[0] == 64 and failed.checkpoint_path.isna()[0]

    # resume: only the failed trial runs again
    r = _featherweight("sweep", "resume", "tc", "--db", str(db), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "0 distillation + 0 compression + 1 teacher compression trials run, 0 failed" in r.stderr, r.stderr[-3000:]

    store = open_store(db, read_only=True)
    rows = store.query(
        "SELECT t.*, r.* EXCLUDE (sweep, trial_id) FROM trials t JOIN results r USING (sweep, trial_id)"
        " WHERE t.stage = 'teacher_compression' ORDER BY t.arch, r.layers, t.quantization NULLS FIRST"
    )
    assert len(rows) == 4 and (rows.status == "finished").all()
    teacher = tmp_path / "runs" / "tc" / "assets" / "synthetic" / "teacher"
    assert (rows.teacher == str(teacher)).all() and rows.parent_trial_id.isna().all()
    assert list(rows.arch) == ["bertvision", "bertvision", "theseus", "theseus"]
    assert list(rows.layers) == [1, 2, 1, 1]  # the small teacher has 2 layers; Theseus r=2 keeps 1
    assert (rows.embedding == "transformer").all() and (rows.emb_dim == 64).all() and (rows.vocab_size > 0).all()
    assert list(rows.quantization.fillna("-")) == ["-", "-", "-", "int8 dynamic (Linear)"]
    # the int8 successor is its float sibling's, quantized (trained once)
    int8_meta = json.loads((Path(rows.checkpoint_path[3]) / COMPRESSED_META).read_text())
    assert int8_meta["quantized_from"] == rows.checkpoint_path[2]
    assert rows.score.between(0, 1).all() and (rows.latency_ms > 0).all()
    assert (rows.params > rows.trainable_params).all() and (rows.trainable_params > 0).all()
    assert (rows.disk_bytes > 0).all() and (rows.gzip_bytes > 0).all() and rows.alpha.isna().all()
    # BERT-Vision with one layer is smaller than with two; both trained the same head on the shared cache
    assert rows.params.iloc[0] < rows.params.iloc[1]
    cache = tmp_path / "runs" / "tc" / "assets" / "hidden_states"
    assert len(list(cache.glob("*/*-train-*"))) == 1  # one cache of every layer, read by k = 1 and k = 2
    for path, arch in zip(rows.checkpoint_path, rows.arch, strict=True):
        meta = json.loads((Path(path) / "featherweight_compressed.json").read_text())
        assert meta["method"] == arch and Path(path).parent.name == "checkpoints"
    config = json.loads(rows.config.iloc[2])
    assert config["stage"] == "teacher_compression" and config["settings"]["replace_rate"] == 2
    assert config["teacher_fingerprint"] == teacher_fingerprint(teacher)
    epochs = store.query(
        "SELECT count(*) FROM epochs e JOIN trials t USING (sweep, trial_id) WHERE t.stage = 'teacher_compression'"
    ).iloc[0, 0]
    assert epochs == 2 + 2 + 1 + 1  # the int8 successor carries its float sibling's history
    tr = store.query("SELECT * FROM trial_results WHERE stage = 'teacher_compression'")
    assert len(tr) == 4
    finished_at = store.sweep_status("tc")["finished_at"]

    # resume: nothing to do, nothing changes
    r = _featherweight("sweep", "resume", "tc", "--db", str(db), cwd=tmp_path)
    assert r.returncode == 0 and "nothing to do" in r.stderr and "teacher compression stage" in r.stderr, r.stderr
    assert open_store(db, read_only=True).sweep_status("tc")["finished_at"] == finished_at

    # a grid the existing teacher cannot take: one error line, before anything starts or is written
    raw["teacher_compression"]["bertvision"]["layers"] = [3]
    spec.write_text(yaml.safe_dump(raw))
    r = _featherweight("sweep", "run", str(spec), cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-3000:]
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: teacher_compression.bertvision.layers: 3 is more than the 2 layers of task synthetic's teacher"
        )
    )
    assert open_store(db, read_only=True).sweep_status("tc")["finished_at"] == finished_at
