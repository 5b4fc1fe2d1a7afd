"""The whole-study keys of a sweep spec (tasks.T.teacher {model, finetune}, tasks.T.bootstrap mode/mlm/shards, the
stage resources): defaults filled in, the old forms unchanged, and every bad value one line naming key and value.
Also the bootstrap stage's sharding: shards concatenated are the unsharded output."""

from __future__ import annotations

import copy

import pytest
import yaml

from featherweight_core.data.loading import load_task_data
from featherweight_core.data.tasks import task_from_options
from featherweight_core.data.wordvectors import task_word_vectors
from featherweight_core.teacher.augment import AugmentConfig, augment_to_file
from sweep.spec import SpecError, validate
from sweep.study import _concat_shards, check_stage_resources, stage_gpus
from sweep.tuner import ResourceError

W = "tasks.synthetic"


def _raw(teacher=None, bootstrap=None, **resources) -> dict:
    task = {"data_options": {"n_train": 200, "n_dev": 50}}
    if teacher is not None:
        task["teacher"] = teacher
    if bootstrap is not None:
        task["bootstrap"] = bootstrap
    return {
        "name": "s",
        "tasks": {"synthetic": task},
        "grid": {
            "archs": ["ffn"],
            "embeddings": ["hash"],
            "dims": [8],
            "vocab_sizes": [100],
            "alphas": [0.5],
            "bootstrap": [False, True] if bootstrap is not None else [False],
        },
        "resources": resources,
    }


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-empty"))  # nothing is cached there
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-empty"))


def test_teacher_mapping_filled_in_and_stable():
    spec = validate(_raw({"model": "small", "finetune": {"epochs": 1}}, {"n": 2, "shards": 2}))
    t = spec.tasks["synthetic"]
    assert t["teacher"] == {
        "model": "small",
        "finetune": {
            "epochs": 1,
            "lr": 0.002,
            "batch_size": 32,
            "max_length": 64,
            "precision": "auto",
            "seed": 0,
            "max_train_examples": None,
        },
    }
    assert t["bootstrap"] == {
        "n": 2,
        "p": 0.4,
        "k": 15,
        "ratio": 1.0,
        "seed": 0,
        "mode": "embedding",
        "mlm": None,
        "shards": 2,
    }
    assert spec.is_study("synthetic")
    assert spec.resources["teacher_gpus"] == "auto" and spec.resources["teacher_cpus"] == 1
    again = validate(yaml.safe_load(yaml.safe_dump(spec.raw)))  # the stored spec validates to the same
    assert again.raw == spec.raw
    # small without finetune: the small teacher's defaults; a hub model: TeacherConfig's defaults
    assert validate(_raw({"model": "small"})).tasks["synthetic"]["teacher"]["finetune"]["epochs"] == 4
    hub = validate(_raw({"model": "roberta-large", "finetune": {}}), check_files=False).tasks["synthetic"]["teacher"]
    assert hub["finetune"]["lr"] == 5e-5 and hub["finetune"]["max_length"] == 128


def test_old_forms_unchanged():
    spec = validate(_raw("small", {"n": 2, "p": 0.4, "k": 8, "seed": 0}))
    t = spec.tasks["synthetic"]
    assert t["teacher"] == "small" and t["bootstrap"] == {"n": 2, "p": 0.4, "k": 8, "seed": 0}
    assert not spec.is_study("synthetic")
    # a string teacher in a study task (bootstrap with shards) is the same as {model: ...}
    spec = validate(_raw("small", {"n": 2, "shards": 3}))
    assert spec.tasks["synthetic"]["teacher"]["model"] == "small" and spec.is_study("synthetic")


def test_old_forms_label_where_prepare_did(tmp_path):
    """The plain forms' assets are where the driver builds them, and their soft_targets stage fills the store
    prepare() fills on its own (``<cache_dir>/softtargets``): labels stored before are found there."""
    from featherweight_core.pipeline.prepare import DEFAULT_CACHE_DIR
    from sweep.assets import driver_soft_targets, plain_assets

    raw = {**_raw("small", {"n": 2, "p": 0.4, "k": 8, "seed": 0}), "storage": str(tmp_path / "runs")}
    spec = validate(raw)
    a = plain_assets(spec, "synthetic")
    assets = tmp_path / "runs" / "s" / "assets" / "synthetic"
    assert (a.teacher, a.bootstrap, a.soft_targets) == (
        str(assets / "teacher"),
        str(assets / "bootstrap.parquet"),
        None,
    )
    assert driver_soft_targets(spec) == DEFAULT_CACHE_DIR / "softtargets"
    teacher, boot = tmp_path / "teacher", tmp_path / "aug.parquet"
    teacher.mkdir()
    boot.touch()
    raw.update(cache_dir=str(tmp_path / "cache"))
    raw["tasks"]["synthetic"].update(teacher=str(teacher), bootstrap=str(boot))
    spec = validate(raw, check_files=False)
    a = plain_assets(spec, "synthetic")
    assert (a.teacher, a.bootstrap) == (str(teacher), str(boot))
    assert driver_soft_targets(spec) == tmp_path / "cache" / "softtargets"


def test_fill_mask_defaults_to_the_teacher_model():
    raw = _raw({"model": "roberta-large", "finetune": {"epochs": 2}}, {"mode": "fill-mask"})
    b = validate(raw, check_files=False).tasks["synthetic"]["bootstrap"]
    assert b["mlm"] == "teacher" and b["shards"] == "auto" and b["n"] == 20


def test_a_model_directory(tmp_path):
    from featherweight_core.teacher.smallbert import build_small_bert

    d = build_small_bert(["a b c d e f g h"] * 20, tmp_path / "base", head="masked-lm")
    spec = validate(_raw({"model": str(d), "finetune": {"epochs": 1}}, {"mode": "fill-mask", "mlm": str(d)}))
    assert spec.tasks["synthetic"]["bootstrap"]["mlm"] == str(d)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError) as e:
        validate(_raw({"model": str(tmp_path / "empty"), "finetune": {}}))
    assert (
        str(e.value) == f"{W}.teacher.model: {tmp_path / 'empty'}: not a Hugging Face model directory (no config.json)"
    )


HUB_MISSING = (
    "model 'roberta-large' is not a local directory and is not cached, and the Hugging Face hub is"
    " unreachable (offline); pass a local model directory instead"
)
BAD = [
    (
        {"model": "small", "colour": 1},
        None,
        {},
        f"{W}.teacher.colour: unknown key; expected one of ['finetune', 'model']",
    ),
    (
        {"finetune": {}},
        None,
        {},
        f"{W}.teacher.model: expected 'small', a model directory or a hub id (e.g. roberta-large), got None",
    ),
    (
        {"model": ""},
        None,
        {},
        f"{W}.teacher.model: expected 'small', a model directory or a hub id (e.g. roberta-large), got ''",
    ),
    (42, None, {}, f"{W}.teacher: expected a teacher directory, 'small' or {{model, finetune}}, got 42"),
    ({"model": "small", "finetune": {"epochs": 0}}, None, {}, f"{W}.teacher.finetune.epochs: 0 must be >= 1"),
    ({"model": "small", "finetune": {"lr": 0}}, None, {}, f"{W}.teacher.finetune.lr: expected a number > 0, got 0"),
    (
        {"model": "small", "finetune": {"lr": "fast"}},
        None,
        {},
        f"{W}.teacher.finetune.lr: expected a number > 0, got 'fast'",
    ),
    (
        {"model": "small", "finetune": {"batch_size": "x"}},
        None,
        {},
        f"{W}.teacher.finetune.batch_size: expected an integer, got 'x'",
    ),
    ({"model": "small", "finetune": {"max_length": 4}}, None, {}, f"{W}.teacher.finetune.max_length: 4 must be >= 8"),
    (
        {"model": "small", "finetune": {"precision": "fp8"}},
        None,
        {},
        f"{W}.teacher.finetune.precision: 'fp8' is not one of ['auto', 'fp32', 'bf16', 'fp16']",
    ),
    ({"model": "small", "finetune": {"seed": -1}}, None, {}, f"{W}.teacher.finetune.seed: -1 must be >= 0"),
    (
        {"model": "small", "finetune": {"max_train_examples": 0}},
        None,
        {},
        f"{W}.teacher.finetune.max_train_examples: 0 must be >= 1",
    ),
    (
        {"model": "small", "finetune": {"warmup": 0.1}},
        None,
        {},
        f"{W}.teacher.finetune.warmup: unknown key; expected one of ['batch_size', 'epochs', 'lr', 'max_length',"
        " 'max_train_examples', 'precision', 'seed']",
    ),
    ({"model": "small", "finetune": "fast"}, None, {}, f"{W}.teacher.finetune: expected a mapping, got str 'fast'"),
    ({"model": "roberta-large", "finetune": {}}, None, {}, f"{W}.teacher.model: {HUB_MISSING}"),
    (
        {"model": "roberta-large"},
        None,
        {},
        f"{W}.teacher.model: 'roberta-large' is not a directory; a teacher without finetune settings must be a"
        " fine-tuned teacher directory (add finetune: {...} to fine-tune a hub model)",
    ),
    (
        "small",
        {"n": 2, "mode": "synonyms"},
        {},
        f"{W}.bootstrap.mode: 'synonyms' is not one of ['embedding', 'fill-mask']",
    ),
    ("small", {"shards": 0}, {}, f"{W}.bootstrap.shards: expected 'auto' or an integer >= 1, got 0"),
    ("small", {"shards": "many"}, {}, f"{W}.bootstrap.shards: expected 'auto' or an integer >= 1, got 'many'"),
    ("small", {"shards": True}, {}, f"{W}.bootstrap.shards: expected 'auto' or an integer >= 1, got True"),
    ("small", {"shards": 2, "p": 0}, {}, f"{W}.bootstrap.p: expected a number in (0, 1], got 0"),
    ("small", {"shards": 2, "ratio": 1.5}, {}, f"{W}.bootstrap.ratio: expected a number in (0, 1], got 1.5"),
    ("small", {"shards": 2, "n": 0}, {}, f"{W}.bootstrap.n: 0 must be >= 1"),
    (
        "small",
        {"shards": 2, "colour": 1},
        {},
        f"{W}.bootstrap.colour: unknown key; expected one of ['k', 'mlm', 'mode', 'n', 'p', 'ratio', 'seed', 'shards']",
    ),
    (
        "small",
        {"mlm": "bert-base-uncased"},
        {},
        f"{W}.bootstrap.mlm: only mode fill-mask uses a masked LM, got 'bert-base-uncased' with mode embedding",
    ),
    (
        "small",
        {"mode": "fill-mask"},
        {},
        f"{W}.bootstrap.mlm: 'teacher' needs a pre-trained teacher model; the small teacher has no masked LM (give mlm:"
        " DIR or a hub id, or use mode embedding)",
    ),
    (
        "small",
        {"mode": "fill-mask", "mlm": 3},
        {},
        f"{W}.bootstrap.mlm: expected 'teacher', a masked-LM directory or a hub id, got 3",
    ),
    ("small", {"mode": "fill-mask", "mlm": "roberta-large"}, {}, f"{W}.bootstrap.mlm: {HUB_MISSING}"),
    (None, {"shards": 2}, {}, f"{W}.bootstrap: bootstrap examples are labelled by the teacher; set {W}.teacher too"),
    (
        {"model": "small"},
        None,
        {"teacher_gpus": "lots"},
        "resources.teacher_gpus: expected 'auto' or a number of GPUs >= 0, got 'lots'",
    ),
    (
        {"model": "small"},
        None,
        {"bootstrap_gpus": -1},
        "resources.bootstrap_gpus: expected 'auto' or a number of GPUs >= 0, got -1",
    ),
    (
        {"model": "small"},
        None,
        {"teacher_gpus": 1.5},
        "resources.teacher_gpus: 1.5 GPUs: more than one GPU must be a whole number",
    ),
    ({"model": "small"}, None, {"teacher_cpus": 0}, "resources.teacher_cpus: 0 must be >= 0.01"),
    (
        {"model": "small"},
        None,
        {"bootstrap_cpus": "two"},
        "resources.bootstrap_cpus: expected a finite number, got 'two'",
    ),
]


@pytest.mark.parametrize("teacher,bootstrap,resources,message", BAD, ids=lambda v: None)
def test_bad_values_one_line(teacher, bootstrap, resources, message):
    raw = _raw(teacher, bootstrap, **resources)
    if teacher is None:
        raw["grid"]["alphas"] = [1.0]
    with pytest.raises(SpecError) as e:
        validate(copy.deepcopy(raw))
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_hub_ids_are_checked_only_with_file_checks():
    raw = _raw({"model": "roberta-large", "finetune": {}}, {"mode": "fill-mask", "mlm": "bert-base-uncased"})
    assert validate(copy.deepcopy(raw), check_files=False).is_study("synthetic")
    with pytest.raises(SpecError, match=f"^{W}.teacher.model: model 'roberta-large' is not a local directory"):
        validate(raw)


def test_stage_gpus_auto():
    spec = validate(_raw({"model": "small"}))
    assert stage_gpus(spec, "teacher_gpus", {"CPU": 8}) == 0
    assert stage_gpus(spec, "teacher_gpus", {"CPU": 8, "GPU": 2}) == 1
    assert stage_gpus(spec, "bootstrap_gpus", {"GPU": 1}, shards=4) == 0.25
    assert stage_gpus(spec, "bootstrap_gpus", {"GPU": 1}, shards=3) == 0.33
    assert stage_gpus(spec, "bootstrap_gpus", {"GPU": 8}, shards=4) == 1
    assert stage_gpus(spec, "bootstrap_gpus", {"GPU": 1}, shards=4, fill_mask=False) == 0
    spec = validate(_raw({"model": "small"}, teacher_gpus=0.5))
    assert stage_gpus(spec, "teacher_gpus", {"GPU": 1}) == 0.5


@pytest.mark.parametrize("ratio", [1.0, 0.3])
def test_shards_concatenated_are_the_unsharded_output(tmp_path, ratio):
    td = load_task_data(task_from_options("synthetic", {}), None, n_train=120, n_dev=20)
    _, vectors = task_word_vectors(td, tmp_path)
    whole = augment_to_file(
        td, tmp_path / "whole.parquet", AugmentConfig(n=3, k=4, ratio=ratio, chunk_size=16), vectors=str(vectors)
    )
    bounds = [(0, 37), (37, 80), (80, 120)]
    files = []
    for i, rows in enumerate(bounds):
        f = tmp_path / f"shard-{i}.parquet"
        augment_to_file(
            td, f, AugmentConfig(n=3, k=4, chunk_size=16), vectors=str(vectors), rows=rows, allow_empty=True
        )
        files.append(f)
    kept = _concat_shards(files, tmp_path / "joined.parquet", ratio, len(files))
    import pyarrow.parquet as pq

    from featherweight_core.teacher.augment import read_augmented

    assert kept == whole.kept > 0
    assert (
        pq.read_table(tmp_path / "joined.parquet").to_pylist() == pq.read_table(tmp_path / "whole.parquet").to_pylist()
    )
    _, meta = read_augmented(tmp_path / "joined.parquet", td.task)
    assert meta["config"]["ratio"] == ratio and meta["shards"] == 3 and meta["source_examples"] == 120


def test_stage_resources_must_fit_a_node():
    node = {"Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 4.0}}
    check_stage_resources(validate(_raw({"model": "small"})), {"CPU": 4.0}, [node])  # auto: 0 GPUs here
    check_stage_resources(validate(_raw("small", teacher_gpus=1)), {"CPU": 4.0}, [node])  # not a study task
    with pytest.raises(ResourceError) as e:
        check_stage_resources(validate(_raw({"model": "small"}, teacher_gpus=1)), {"CPU": 4.0}, [node])
    assert str(e.value) == (
        "resources.teacher_gpus: 1 GPU per stage task asked, the Ray cluster has 0 GPUs (nodes: 10.0.0.1: 0 GPUs)"
    )
    with pytest.raises(
        ResourceError,
        match=r"^resources\.bootstrap_cpus: 6 CPUs per stage task asked, the Ray "
        r"cluster has 4 CPUs \(nodes: 10\.0\.0\.1: 4 CPUs\)$",
    ):
        check_stage_resources(validate(_raw({"model": "small"}, bootstrap_cpus=6)), {"CPU": 4.0}, [node])


def test_a_user_error_from_a_ray_task_is_the_error_itself():
    from ray.exceptions import RayTaskError

    from featherweight_core.teacher.config import TeacherError
    from sweep.study import _user_error

    try:
        raise TeacherError("model x: cannot load a sequence classifier")
    except TeacherError as c:
        cause = c
    wrapped = RayTaskError("_teacher_task", "Traceback (most recent call last):\n  ...", cause).as_instanceof_cause()
    assert _user_error(wrapped) is cause
    assert _user_error(RayTaskError("f", "tb", ValueError("a bug")).as_instanceof_cause()) is None
    assert _user_error(ValueError("a bug")) is None


def test_stage_rows_attempts_and_cached(tmp_path):
    from db.store import ExperimentStore

    store = ExperimentStore(tmp_path / "fw.duckdb")
    store.start_stage("s", "sst2", "teacher", "fp1", "/out/teacher-fp1", {"model": "small"})
    (row,) = store.stages("s")
    assert row["status"] == "running" and row["attempts"] == 1 and row["finished_at"] is None
    store.start_stage("s", "sst2", "teacher", "fp1")  # the run after a killed one
    store.finish_stage(
        "s",
        "sst2",
        "teacher",
        "fp1",
        "finished",
        seconds=2.5,
        device="cpu",
        node="n",
        detail={"model": "small", "metrics": {"score": 0.9}},
    )
    (row,) = store.stages("s")
    assert row["status"] == "finished" and row["attempts"] == 2 and row["seconds"] == 2.5
    assert row["output"] == "/out/teacher-fp1" and row["detail"]["metrics"] == {"score": 0.9}
    store.finish_stage("s", "sst2", "bootstrap", "fp2", "cached", output="/out/b.parquet")  # no running row first
    assert [r["status"] for r in store.stages("s")] == ["finished", "cached"]
    with pytest.raises(ValueError):
        store.finish_stage("s", "sst2", "teacher", "fp1", "done")
    with pytest.raises(ValueError):
        store.start_stage("s", "sst2", "Distillation", "fp3")


def test_stage_progress_file_reports_the_last_update(tmp_path):
    """A stage task's stderr (tqdm bars rewrite their line with carriage returns) goes to a file the driver reads."""
    import sys

    from sweep.study_tasks import last_progress, progress_to

    path = tmp_path / "assets" / ".teacher-x.progress"
    assert last_progress(path) is None and last_progress(None) is None
    before = sys.stderr
    with progress_to(str(path)):
        print("epoch 1/2  loss 0.41  dev 0.8800", file=sys.stderr)
        sys.stderr.write("teacher epoch 2:  10%|#  | 21/210\rteacher epoch 2:  50%|#####  | 105/210\r")
    assert last_progress(path) == "teacher epoch 2:  50%|#####  | 105/210"
    assert sys.stderr is before  # restored after the task's work
