"""The shared side of teacher compression: measuring saved outputs, CPU latency, int8 quantization and reloading."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import get_task
from featherweight_core.errors import InputFileError
from featherweight_core.students.measure import saved_model_sizes
from featherweight_core.teacher import teacher_compression as tc
from featherweight_core.teacher.compressed import load_compressed
from featherweight_core.teacher.config import TeacherConfig
from featherweight_core.teacher.finetune import finetune_teacher
from featherweight_core.teacher.loading import load_classifier
from featherweight_core.teacher.predict import predict_logits
from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_teacher

TINY = SmallBertConfig(vocab_size=300, hidden=32, layers=2, heads=2, intermediate=64, max_length=64)
FAST = TeacherConfig(epochs=1, batch_size=32, lr=3e-3, max_length=48, device="cpu", warmup_ratio=0.1)


@pytest.fixture(scope="module")
def tiny_data():
    return load_synthetic(get_task("synthetic"), n_train=300, n_dev=80)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_data):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tc")
    init = build_small_teacher(tiny_data, root / "init", TINY)
    finetune_teacher(init, tiny_data, root / "ft", FAST, progress=False, log=None)
    return root / "ft"


def test_measure_saved_equals_the_teacher_measure_for_one_file(teacher_dir):
    assert tc.measure_saved(teacher_dir) == saved_model_sizes(teacher_dir)


def test_measure_saved_sums_every_weight_file(teacher_dir, tmp_path):
    from safetensors.torch import save_file

    d = tmp_path / "m"
    d.mkdir()
    (d / "model.safetensors").write_bytes((teacher_dir / "model.safetensors").read_bytes())
    save_file({"adapter": torch.ones(4, 3), "out": torch.ones(2)}, d / tc.HEAD_WEIGHTS)
    one = saved_model_sizes(teacher_dir)
    head = saved_model_sizes(d / tc.HEAD_WEIGHTS)
    both = tc.measure_saved(d)
    assert both["params"] == one["params"] + 14 == one["params"] + head["params"]
    assert both["disk_bytes"] == one["disk_bytes"] + head["disk_bytes"]
    assert both["gzip_bytes"] == one["gzip_bytes"] + head["gzip_bytes"]


def test_measure_saved_without_weights_is_a_user_error(tmp_path):
    with pytest.raises(InputFileError, match="no model weights"):
        tc.measure_saved(tmp_path)
    with pytest.raises(InputFileError, match="no such model directory"):
        tc.measure_saved(tmp_path / "missing")


def test_int8_round_trip_quantizes_every_linear_and_predicts_alike(teacher_dir, tiny_data, tmp_path):
    model, tokenizer = load_classifier(teacher_dir)
    q = tc.quantize_int8(model)
    assert tc.is_quantized(q) and not tc.is_quantized(model)  # the original is untouched
    assert not any(type(m) is nn.Linear for m in q.modules())
    out = tmp_path / "q"
    out.mkdir()
    tokenizer.save_pretrained(out)
    tc.save_int8(q, out, {"method": "theseus", "settings": {}})
    assert json.loads((out / tc.COMPRESSED_META).read_text())["quantized"] is True
    loaded, _, meta = load_compressed(out)
    assert meta["method"] == "theseus" and tc.is_quantized(loaded)
    texts = tiny_data.splits["validation"].texts
    a = predict_logits(q, tokenizer, texts, 32, 48, "cpu")
    b = predict_logits(loaded, tokenizer, texts, 32, 48, "cpu")
    np.testing.assert_array_equal(a, b)
    f = predict_logits(model, tokenizer, texts, 32, 48, "cpu")
    assert (a.argmax(-1) == f.argmax(-1)).mean() >= 0.9  # int8 barely moves a float model's decisions
    sizes = tc.measure_saved(out)
    float_sizes = tc.measure_saved(teacher_dir)
    assert sizes["disk_bytes"] < float_sizes["disk_bytes"]


def test_load_compressed_float_theseus_is_a_plain_classifier(teacher_dir, tmp_path):
    out = tmp_path / "f"
    model, tokenizer = load_classifier(teacher_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    tc.write_meta(out, {"method": "theseus", "quantized": False})
    loaded, _, meta = load_compressed(out)
    assert not tc.is_quantized(loaded) and meta["quantized"] is False


def test_read_meta_errors_name_the_file(tmp_path):
    with pytest.raises(tc.CompressedTeacherError, match="not a compressed-teacher directory"):
        tc.read_meta(tmp_path)
    (tmp_path / tc.COMPRESSED_META).write_text("{not json")
    with pytest.raises(tc.CompressedTeacherError, match="not valid JSON"):
        tc.read_meta(tmp_path)
    (tmp_path / tc.COMPRESSED_META).write_text('{"method": "pruning"}')
    with pytest.raises(tc.CompressedTeacherError, match="method one of"):
        tc.read_meta(tmp_path)


def test_cpu_latency_and_evaluate(teacher_dir, tiny_data):
    model, tokenizer = load_classifier(teacher_dir)
    ms = tc.cpu_latency_ms(model, tokenizer, tiny_data.splits["validation"].texts, 48, n=10, min_seconds=0.05)
    assert 0 < ms < 1000
    ev = tc.evaluate(model, tokenizer, tiny_data, 48)
    dev, test, classes = ev.metrics, ev.test_metrics, ev.class_metrics
    assert list(ev.predictions) == ["validation"] and len(ev.predictions["validation"]) == len(
        tiny_data.splits["validation"]
    )
    assert test is None and 0 <= dev["score"] <= 1 and dev["score"] == dev["accuracy"]
    val = tiny_data.splits["validation"]
    assert list(classes) == ["validation"] and sum(classes["validation"]["support"]) == len(val)
    correct = sum(row[i] for i, row in enumerate(classes["validation"]["confusion"]))
    assert correct / len(val) == pytest.approx(dev["accuracy"])  # the confusion matrix's diagonal is the accuracy


def test_latencies_are_timed_interleaved_and_a_gone_teacher_is_not_timed(teacher_dir, tiny_data, tmp_path):
    model, tokenizer = load_classifier(teacher_dir)
    texts = tiny_data.splits["validation"].texts
    ms = tc.cpu_latencies_ms([model, model], tokenizer, texts, 48, n=10, min_seconds=0.05)
    assert len(ms) == 2 and all(0 < x < 1000 for x in ms)
    with pytest.raises(ValueError, match="at least one text"):
        tc.cpu_latencies_ms([model], tokenizer, [], 48)
    mine, teachers = tc.latency_with_teacher(model, tokenizer, texts, 48, teacher_dir)
    assert mine > 0 and teachers > 0
    mine, teachers = tc.latency_with_teacher(model, tokenizer, texts, 48, tmp_path / "gone")
    assert mine > 0 and teachers is None


def test_result_round_trips_and_checks_the_method():
    r = tc.CompressedTeacherResult(
        method="theseus",
        output_dir="x",
        metrics={"score": 0.5},
        test_metrics=None,
        params=10,
        trainable_params=4,
        disk_bytes=40,
        gzip_bytes=30,
        latency_ms=1.0,
        layers=1,
        quantized=False,
        seconds=2.0,
    )
    assert tc.CompressedTeacherResult.from_dict(r.to_dict()) == r and r.score == 0.5
    assert r.speedup is None  # the teacher was not timed
    assert dataclasses.replace(r, teacher={"latency_ms": 3.0}).speedup == 3.0
    with pytest.raises(ValueError, match="method"):
        tc.CompressedTeacherResult(**{**r.to_dict(), "method": "nope"})
