"""The small offline teacher fine-tunes, saves, loads and predicts; bad inputs fail fast on one line."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.taskdata import Split, TaskData
from featherweight_core.data.tasks import get_task
from featherweight_core.teacher.batches import length_grouped_batches
from featherweight_core.teacher.config import METRICS_FILE, TEACHER_META, TeacherConfig, TeacherError
from featherweight_core.teacher.finetune import finetune_teacher
from featherweight_core.teacher.loading import load_classifier, resolve_model_source
from featherweight_core.teacher.predict import predict_logits
from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_teacher
from sweep.cli import main

TINY = SmallBertConfig(vocab_size=300, hidden=32, layers=1, heads=2, intermediate=64, max_length=64)
FAST = TeacherConfig(epochs=2, batch_size=32, lr=3e-3, max_length=48, device="cpu", warmup_ratio=0.1)


@pytest.fixture(scope="module")
def tiny_data() -> TaskData:
    return load_synthetic(get_task("synthetic"), n_train=400, n_dev=100)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_data):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("teacher")
    init = build_small_teacher(tiny_data, root / "init", TINY)
    metrics = finetune_teacher(init, tiny_data, root / "ft", FAST, progress=False, log=None)
    return root / "ft", metrics


def test_finetune_saves_model_metrics_and_meta(teacher_dir, tiny_data):
    d, metrics = teacher_dir
    assert {"config.json", "model.safetensors", "tokenizer.json", METRICS_FILE, TEACHER_META} <= {
        p.name for p in d.iterdir()
    }
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["steps"] == 2 * 13
    assert json.loads((d / METRICS_FILE).read_text())["accuracy"] == metrics["accuracy"]
    meta = json.loads((d / TEACHER_META).read_text())
    assert meta["task"] == "synthetic" and meta["label_names"] == ["negative", "positive"]
    assert meta["task_spec"] == {"name": "synthetic"} and meta["data_fingerprint"] == tiny_data.fingerprint()
    assert meta["config"]["max_length"] == 48
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_predict_matches_saved_metrics_and_naive_batching(teacher_dir, tiny_data):
    d, metrics = teacher_dir
    model, tok = load_classifier(d)
    dev = tiny_data.splits["validation"]
    sorted_logits = predict_logits(model, tok, dev.texts, batch_size=16, max_length=48, device="cpu")
    naive = predict_logits(
        model, tok, dev.texts, batch_size=16, max_length=48, device="cpu", sort_by_length=False, fixed_length=True
    )
    assert sorted_logits.shape == (100, 2) and sorted_logits.dtype == np.float32
    np.testing.assert_allclose(sorted_logits, naive, atol=1e-4)
    acc = float((sorted_logits.argmax(-1) == dev.labels).mean())
    assert acc == pytest.approx(metrics["accuracy"])


def test_predict_in_chunks_matches_one_chunk(teacher_dir, tiny_data):
    """Bootstrap sets of millions of rows are tokenized a chunk at a time; rows keep their order across chunks."""
    model, tok = load_classifier(teacher_dir[0])
    texts = tiny_data.splits["validation"].texts
    whole = predict_logits(model, tok, texts, batch_size=16, max_length=48, device="cpu")
    chunked = predict_logits(model, tok, texts, batch_size=16, max_length=48, device="cpu", chunk_rows=7)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert not np.array_equal(chunked[:50], chunked[50:])  # not one row repeated


def test_small_teacher_learns_the_demo_task(tmp_path):
    """The documented demo defaults reach a useful teacher quickly (tiny budget here: 1500 examples, 3 epochs)."""
    torch.set_num_threads(1)
    data = load_synthetic(get_task("synthetic"), n_train=1500, n_dev=200)
    init = build_small_teacher(data, tmp_path / "init")
    cfg = TeacherConfig(epochs=3, batch_size=32, lr=2e-3, max_length=64, device="cpu", warmup_ratio=0.1)
    metrics = finetune_teacher(init, data, tmp_path / "ft", cfg, progress=False, log=None)
    assert metrics["accuracy"] > 0.6  # chance is 0.5; the full demo (3000 x 4 epochs) reaches ~0.9


def test_pair_task_uses_both_fields(tmp_path):
    torch.set_num_threads(1)
    data = load_synthetic(get_task("synthetic_pair"), n_train=120, n_dev=40)
    init = build_small_teacher(data, tmp_path / "init", TINY)
    cfg = TeacherConfig(epochs=1, batch_size=32, lr=1e-3, max_length=64, device="cpu")
    metrics = finetune_teacher(init, data, tmp_path / "ft", cfg, progress=False, log=None)
    assert "f1" in metrics
    model, tok = load_classifier(tmp_path / "ft")
    enc = tok([t[0] for t in data.train.texts[:2]], [t[1] for t in data.train.texts[:2]])
    assert any(1 in tt for tt in enc["token_type_ids"])


def test_length_grouped_batches_cover_every_row_once():
    lengths = np.random.default_rng(0).integers(1, 50, 1000)
    batches = length_grouped_batches(lengths, 32, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 10  # grouped by length, unlike random batches (~45)


def test_unknown_hub_id_offline_fails_fast(tmp_path, monkeypatch, tiny_data):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(TeacherError, match="pass a local model directory"):
        finetune_teacher("no-such-org/no-such-model-xyz", tiny_data, tmp_path / "out", FAST, progress=False)
    assert time.perf_counter() - t0 < 10
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "source, message",
    [("./missing/dir", "no such model directory"), ("a/b/c", "no such model directory")],
)
def test_bad_model_paths(source, message):
    with pytest.raises(TeacherError, match=message):
        resolve_model_source(source)


def test_directory_without_config_is_rejected(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(TeacherError, match="no config.json"):
        resolve_model_source(tmp_path / "m")


def test_empty_dataset_leaves_nothing(tmp_path, tiny_data, teacher_dir):
    empty = TaskData(
        tiny_data.task,
        {"train": Split([], np.zeros(0), []), **{"validation": tiny_data.splits["validation"]}},
        tiny_data.report,
        "empty",
    )
    with pytest.raises(TeacherError, match="train split is empty"):
        finetune_teacher(teacher_dir[0], empty, tmp_path / "out", FAST, progress=False)
    with pytest.raises(TeacherError, match="train split is empty"):
        build_small_teacher(empty, tmp_path / "small")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path, tiny_data):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(TeacherError, match="not empty"):
        build_small_teacher(tiny_data, tmp_path / "out", TINY)
    assert (tmp_path / "out" / "keep.txt").read_text() == "x"


def test_config_validation():
    with pytest.raises(TeacherError, match="lr must be > 0"):
        TeacherConfig(lr=0)
    with pytest.raises(TeacherError, match="precision"):
        TeacherConfig(precision="fp8")
    with pytest.raises(TeacherError, match="divisible"):
        SmallBertConfig(hidden=30, heads=4)


def test_cli_finetune_unknown_model_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(
        [
            "teacher",
            "finetune",
            "--model",
            "roberta-large-nonexistent",
            "--task",
            "synthetic",
            "--output",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and "roberta-large-nonexistent" in err
    assert not (tmp_path / "out").exists()


def test_cli_init_small_and_finetune(tmp_path, capsys):
    torch.set_num_threads(1)
    small = tmp_path / "small"
    assert (
        main(
            [
                "teacher",
                "init-small",
                "--task",
                "synthetic",
                "--output",
                str(small),
                "--vocab-size",
                "300",
                "--hidden",
                "32",
                "--layers",
                "1",
                "--intermediate",
                "64",
            ]
        )
        == 0
    )
    rc = main(
        [
            "teacher",
            "finetune",
            "--model",
            str(small),
            "--task",
            "synthetic",
            "--output",
            str(tmp_path / "ft"),
            "--epochs",
            "1",
            "--lr",
            "1e-3",
            "--max-length",
            "48",
            "--max-train-examples",
            "300",
            "--cpu",
            "--no-progress",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["train_examples"] == 300 and 0 <= out["accuracy"] <= 1


def test_teacher_baseline_measures_the_teacher_like_a_student(teacher_dir, tmp_path):
    import gzip
    import math

    from safetensors import safe_open

    from featherweight_core.teacher.loading import teacher_baseline

    d, metrics = teacher_dir
    row = teacher_baseline(d)
    raw = (d / "model.safetensors").read_bytes()
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    assert row == {
        "name": "teacher:ft",
        "score": metrics["score"],
        "accuracy": metrics["accuracy"],
        "f1": metrics.get("f1"),
        "params": params,
        "disk_bytes": len(raw),
        "gzip_bytes": len(gzip.compress(raw, 9)),
    }
    # the same teacher saved as pytorch_model.bin has the same parameter count (it used to be measured as 0)
    model, _ = load_classifier(d)
    as_bin = tmp_path / "teacher"
    as_bin.mkdir()
    torch.save(model.state_dict(), as_bin / "pytorch_model.bin")  # what older transformers' save_pretrained wrote
    (as_bin / METRICS_FILE).write_text((d / METRICS_FILE).read_text())
    row_bin = teacher_baseline(as_bin)
    assert (as_bin / "pytorch_model.bin").is_file() and row_bin["params"] == params
    assert row_bin["name"] == f"teacher:{tmp_path.name}"  # a directory called teacher is named by its parent
    raw_bin = (as_bin / "pytorch_model.bin").read_bytes()
    assert row_bin["gzip_bytes"] == len(gzip.compress(raw_bin, 9))


def test_teacher_baseline_without_metrics_is_a_user_error(tmp_path, teacher_dir):
    import shutil

    from featherweight_core.errors import InputFileError, UserError
    from featherweight_core.teacher.loading import teacher_baseline

    d, _ = teacher_dir
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    (copy / METRICS_FILE).unlink()
    with pytest.raises(TeacherError, match=f"{copy}: no {METRICS_FILE}") as e:
        teacher_baseline(copy)
    assert isinstance(e.value, UserError)
    with pytest.raises(InputFileError, match="teacher directory not found"):
        teacher_baseline(tmp_path / "missing")
