"""Soft targets are computed once and served from the store; a changed teacher or dataset is never served stale;
prepare() attaches teacher logits to the train split and teacher-labelled bootstrap examples."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.taskdata import DataError, Split, TaskData
from featherweight_core.data.tasks import get_task
from featherweight_core.pipeline.prepare import prepare
from featherweight_core.teacher.augment import AugmentConfig, augment_to_file
from featherweight_core.teacher.config import TeacherConfig
from featherweight_core.teacher.finetune import finetune_teacher
from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_teacher
from featherweight_core.teacher.softtargets import SoftTargetStore, read_logits, teacher_fingerprint, write_logits
from sweep.cli import main

TINY = SmallBertConfig(vocab_size=300, hidden=32, layers=1, heads=2, intermediate=64, max_length=64)


@pytest.fixture(scope="module")
def data() -> TaskData:
    return load_synthetic(get_task("synthetic"), n_train=300, n_dev=80)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, data):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("soft")
    init = build_small_teacher(data, root / "init", TINY)
    cfg = TeacherConfig(epochs=1, batch_size=32, lr=2e-3, max_length=48, device="cpu")
    finetune_teacher(init, data, root / "teacher", cfg, progress=False, log=None)
    return root / "teacher"


def test_second_request_is_served_from_the_store(tmp_path, teacher, data):
    store = SoftTargetStore(tmp_path / "store", device="cpu")
    keys, logits = store.get_or_compute(teacher, data, "train")
    assert store.model_runs == 1 and store.examples_computed == 300
    assert keys == data.train.keys and logits.shape == (300, 2)
    keys2, logits2 = store.get_or_compute(teacher, data, "train")
    assert store.model_runs == 1
    np.testing.assert_array_equal(logits, logits2)
    fresh = SoftTargetStore(tmp_path / "store", device="cpu")  # another process / a later run
    _, logits3 = fresh.get_or_compute(teacher, data, "train")
    assert fresh.model_runs == 0
    np.testing.assert_array_equal(logits, logits3)
    files = list((tmp_path / "store").rglob("*"))
    assert not [p for p in files if ".tmp" in p.name]
    assert any(p.suffix == ".parquet" for p in files)


def test_changed_dataset_invalidates(tmp_path, teacher, data):
    store = SoftTargetStore(tmp_path / "store", device="cpu")
    store.get_or_compute(teacher, data, "train")
    texts = list(data.train.texts)
    texts[5] = ("the movie was not good .",)
    changed = Split(texts, data.train.labels, data.train.keys)
    edited = TaskData(data.task, {**data.splits, "train": changed}, data.report, "edited")
    assert not store.has(teacher, edited, "train")
    _, logits = store.get_or_compute(teacher, edited, "train")
    assert store.model_runs == 2 and logits.shape == (300, 2)


def test_changed_teacher_invalidates(tmp_path, teacher, data):
    import shutil

    from safetensors.torch import load_file, save_file

    other = tmp_path / "teacher2"
    shutil.copytree(teacher, other)
    store = SoftTargetStore(tmp_path / "store", device="cpu")
    _, before = store.get_or_compute(other, data, "validation")
    weights = load_file(other / "model.safetensors")
    name = next(k for k in weights if k.endswith("classifier.bias"))
    weights[name] = weights[name] + torch.tensor([5.0, -5.0])
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    assert teacher_fingerprint(other) != teacher_fingerprint(teacher)
    _, after = store.get_or_compute(other, data, "validation")
    assert store.model_runs == 2
    assert not np.allclose(before, after)


def test_texts_api_and_parquet_roundtrip(tmp_path, teacher):
    store = SoftTargetStore(tmp_path / "store", device="cpu")
    keys, logits = store.get_or_compute(teacher, ["the plot was dull .", "the cast was great ."], "adhoc")
    assert keys == ["0", "1"] and logits.shape == (2, 2)
    write_logits(tmp_path / "l.parquet", keys, logits)
    k2, l2 = read_logits(tmp_path / "l.parquet")
    assert k2 == keys
    np.testing.assert_array_equal(l2, logits)
    with pytest.raises(DataError, match="no examples"):
        store.get_or_compute(teacher, [], "empty")
    with pytest.raises(DataError, match="teacher directory not found"):
        store.get_or_compute(tmp_path / "nope", ["x"], "x")


def test_prepare_attaches_teacher_logits_and_bootstrap(tmp_path, teacher, data):
    aug = tmp_path / "aug.parquet"
    augment_to_file(data, aug, AugmentConfig(n=3, seed=1), cache_dir=tmp_path / "cache")
    store = SoftTargetStore(tmp_path / "cache" / "softtargets", device="cpu")
    p = prepare(
        data.task,
        embedding="char",
        emb_dim=8,
        cache_dir=tmp_path / "cache",
        task_data=data,
        teacher=teacher,
        bootstrap=aug,
        store=store,
    )
    assert store.model_runs == 2  # train split + augmented set
    assert p.train.teacher_logits.shape == (300, 2)
    _, direct = store.get_or_compute(teacher, data, "train")
    np.testing.assert_array_equal(p.train.teacher_logits, direct)
    assert p.bootstrap is not None and len(p.bootstrap) > 300
    np.testing.assert_array_equal(p.bootstrap.labels, p.bootstrap.teacher_logits.argmax(-1))
    both = p.train_split(True)
    assert len(both) == 300 + len(p.bootstrap) and both.teacher_logits.shape == (len(both), 2)
    assert p.train_split(False) is p.train
    # a second prepare (e.g. the next sweep) runs no teacher at all
    again = prepare(
        data.task,
        embedding="char",
        emb_dim=8,
        cache_dir=tmp_path / "cache",
        task_data=data,
        teacher=teacher,
        bootstrap=aug,
        store=store,
    )
    assert store.model_runs == 2
    np.testing.assert_array_equal(again.bootstrap.teacher_logits, p.bootstrap.teacher_logits)


def test_prepare_bootstrap_needs_teacher(tmp_path, data):
    with pytest.raises(DataError, match="--teacher"):
        prepare(data.task, embedding="char", emb_dim=8, cache_dir=None, task_data=data, bootstrap="x.parquet")


def test_cli_logits_then_distill_with_teacher_and_bootstrap(tmp_path, teacher, data, capsys, monkeypatch):
    from featherweight_core.data import loading as fdata

    small = dataclasses.replace(data)  # the CLI loads the task itself: make it load our tiny split
    monkeypatch.setattr(fdata, "load_synthetic", lambda task, **kw: small)
    cache = tmp_path / "cache"
    assert (
        main(
            [
                "teacher",
                "logits",
                "--teacher",
                str(teacher),
                "--task",
                "synthetic",
                "--cache-dir",
                str(cache),
                "--split",
                "train",
                "--no-progress",
                "--json",
                "--cpu",
            ]
        )
        == 0
    )
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"][0]
    assert first["rows"] == 300 and first["computed"]
    assert (
        main(
            [
                "teacher",
                "logits",
                "--teacher",
                str(teacher),
                "--task",
                "synthetic",
                "--cache-dir",
                str(cache),
                "--split",
                "train",
                "--no-progress",
                "--json",
                "--cpu",
            ]
        )
        == 0
    )
    assert not json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"][0]["computed"]
    aug = tmp_path / "aug.parquet"
    assert (
        main(
            [
                "augment",
                "--task",
                "synthetic",
                "--output",
                str(aug),
                "-n",
                "2",
                "--teacher",
                str(teacher),
                "--cache-dir",
                str(cache),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "augmented (teacher argmax)" in capsys.readouterr().out
    rc = main(
        [
            "distill",
            "--task",
            "synthetic",
            "--embedding",
            "char",
            "--dim",
            "8",
            "--hidden",
            "8",
            "--classifier-hidden",
            "8",
            "--alpha",
            "0.5",
            "--teacher",
            str(teacher),
            "--bootstrap",
            str(aug),
            "--cache-dir",
            str(cache),
            "--max-epochs",
            "1",
            "--json",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["train_examples"] > 300 and out["bootstrap"] == str(aug)
    rc = main(
        [
            "distill",
            "--task",
            "synthetic",
            "--embedding",
            "char",
            "--dim",
            "8",
            "--bootstrap",
            str(aug),
            "--cache-dir",
            str(cache),
            "--max-epochs",
            "1",
        ]
    )
    assert rc == 2 and "--teacher" in capsys.readouterr().err
