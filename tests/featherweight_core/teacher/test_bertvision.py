"""BERT-Vision: hidden states cached per teacher, a head trained on them, the teacher cut to k layers, sizes by
hand, the saved model predicting what the in-memory one does; bad input fails on one line and writes nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.taskdata import Split, TaskData
from featherweight_core.data.tasks import get_task
from featherweight_core.teacher import teacher_compression as tc
from featherweight_core.teacher.bertvision import train_bertvision
from featherweight_core.teacher.bertvision_config import BertVisionConfig, BertVisionError
from featherweight_core.teacher.bertvision_model import (
    build_head,
    head_param_count,
    head_stored_count,
    load_bertvision_model,
)
from featherweight_core.teacher.bertvision_states import HiddenStateCache, layer_states
from featherweight_core.teacher.compressed import load_compressed
from featherweight_core.teacher.config import TeacherConfig, TeacherError
from featherweight_core.teacher.finetune import finetune_teacher
from featherweight_core.teacher.loading import load_classifier
from featherweight_core.teacher.predict import predict_logits
from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_teacher
from featherweight_core.teacher.softtargets import teacher_fingerprint
from sweep.cli import main

SMALL = SmallBertConfig(vocab_size=1000, hidden=64, layers=3, heads=2, intermediate=128, max_length=64)
FT = TeacherConfig(epochs=4, batch_size=32, lr=2e-3, max_length=48, device="cpu", warmup_ratio=0.1)
FAST = dict(epochs=6, device="cpu")


@pytest.fixture(scope="module")
def data():
    return load_synthetic(get_task("synthetic"), n_train=1500, n_dev=200)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, data):
    """A 3-layer BERT fine-tuned on the synthetic task (about 0.63 dev accuracy, ~10 s on one core)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bv-teacher")
    init = build_small_teacher(data, root / "init", SMALL)
    finetune_teacher(init, data, root / "ft", FT, progress=False, log=None)
    return root / "ft"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return HiddenStateCache(tmp_path_factory.mktemp("bv-cache"), device="cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, teacher, data, cache):
    """k = 2 of the teacher's 3 layers, adapter head."""
    out = tmp_path_factory.mktemp("bv-out") / "k2"
    result = train_bertvision(teacher, data, out, BertVisionConfig(layers=2, **FAST), cache_dir=cache)
    return out, result


def _backbone_params_by_hand(config, layers: int) -> int:
    H, inter = config.hidden_size, config.intermediate_size
    emb = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * H + 2 * H
    attention = 4 * (H * H + H) + 2 * H
    ffn = H * inter + inter + inter * H + H + 2 * H
    return emb + layers * (attention + ffn)


# ---------------------------------------------------------------------------------------------------------------
# the hidden-state cache


def test_cache_holds_every_layer_once_per_teacher(tmp_path, teacher, data):
    dev = data.splits["validation"]
    keys, texts = list(dev.keys), list(dev.texts)
    first = HiddenStateCache(tmp_path / "cache", device="cpu")
    states = first.get_or_compute(teacher, "synthetic-validation", keys, texts, 48)
    assert first.model_runs == 1 and states.centered.dtype == np.float16 and states.shape == (200, 3 + 1, 64)
    fp = teacher_fingerprint(teacher)
    assert len(list((tmp_path / "cache" / fp).glob("*-L48-first.npz"))) == 1

    # the states are the teacher's own first-token hidden states (embeddings' output = index 0), unpadded
    model, tok = load_classifier(teacher)
    enc = tok([t[0] for t in texts[:3]], truncation=True, max_length=48, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    direct = torch.stack([h[:, 0] for h in hidden], 1).numpy()
    np.testing.assert_allclose(states.layers()[:3], direct, atol=5e-3)
    np.testing.assert_array_equal(states.layers(1), states.layers()[:, :2])

    # a second run (a new cache object on the same root) reads the file without running the transformer
    again = HiddenStateCache(tmp_path / "cache", device="cpu")
    served = again.get_or_compute(teacher, "synthetic-validation", keys, texts, 48)
    np.testing.assert_array_equal(served.centered, states.centered)
    np.testing.assert_array_equal(served.offset, states.offset)
    assert again.model_runs == 0
    # another max_length or pooling are other entries
    again.get_or_compute(teacher, "synthetic-validation", keys, texts, 16)
    mean = again.get_or_compute(teacher, "synthetic-validation", keys, texts, 48, pooling="mean")
    assert again.model_runs == 2
    ids = enc["input_ids"][:1, : int(enc["attention_mask"][0].sum())]
    with torch.no_grad():
        one = model(input_ids=ids, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(mean.layers()[0], torch.stack([h[0].mean(0) for h in one]).numpy(), atol=5e-3)

    # a changed teacher (one weight nudged) has another fingerprint: a new entry, new states
    changed = tmp_path / "changed"
    shutil.copytree(teacher, changed)
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.weight.mul_(1.5)
    model.save_pretrained(changed)
    assert teacher_fingerprint(changed) != fp
    other = again.get_or_compute(changed, "synthetic-validation", keys, texts, 48)
    assert again.model_runs == 3 and not np.allclose(other.layers(), states.layers(), atol=1e-2)
    assert (tmp_path / "cache" / teacher_fingerprint(changed)).is_dir()


def test_cache_without_root_keeps_nothing(tmp_path, teacher, data):
    dev = data.splits["validation"]
    c = HiddenStateCache(None, device="cpu")
    c.get_or_compute(teacher, "dev", list(dev.keys)[:5], list(dev.texts)[:5], 48)
    c.get_or_compute(teacher, "dev", list(dev.keys)[:5], list(dev.texts)[:5], 48)
    assert c.model_runs == 2 and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# training, truncation, sizes


def test_truncation_drops_layers_from_the_saved_model(trained, teacher):
    out, result = trained
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and result.layers == 2
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert any(".layer.1." in n for n in names) and not any(".layer.2." in n for n in names)
    assert not any("classifier" in n or "pooler" in n for n in names)
    meta = json.loads((out / tc.COMPRESSED_META).read_text())
    assert meta["method"] == "bertvision" and meta["layers"] == 2 and meta["teacher"]["layers"] == 3

    from transformers import AutoConfig

    tconf = AutoConfig.from_pretrained(teacher)
    head = head_param_count("adapter", 3, 64, 2, 128)
    assert head == 64 * 128 + 128 + 3 * 128 * 2 + 2
    assert result.trainable_params == head
    assert result.params == _backbone_params_by_hand(tconf, 2) + head + 2 * 3 * 64  # + the standardization
    assert result.params < result.teacher["params"]
    assert tc.measure_saved(out) == {k: getattr(result, k) for k in ("params", "disk_bytes", "gzip_bytes")}
    assert result.latency_ms > 0 and len(result.history) == FAST["epochs"]
    # the teacher is timed interleaved with the saved model, and recorded with it
    assert meta["teacher"]["latency_ms"] == result.teacher["latency_ms"] > 0 and result.speedup > 0


def test_head_param_formulas_match_the_modules():
    for kind, depth, hidden, labels, a in [
        ("adapter", 4, 64, 2, 128),
        ("adapter", 13, 768, 3, 8),
        ("concat", 4, 64, 2, 0),
        ("concat", 25, 1024, 3, 0),
    ]:
        head = build_head(kind, depth, hidden, labels, a or 1)
        assert sum(p.numel() for p in head.parameters()) == head_param_count(kind, depth, hidden, labels, a or 1)
        stored = sum(t.numel() for t in head.state_dict().values())
        assert stored == head_stored_count(kind, depth, hidden, labels, a or 1)


def test_saved_model_predicts_what_the_in_memory_one_does(trained, teacher, data, cache):
    out, result = trained
    model, tok, meta = load_bertvision_model(out, quantized=False)
    dev = data.splits["validation"]
    logits = predict_logits(model, tok, dev.texts, 32, 48, "cpu", "fp32")
    # in memory: the head on the full teacher's first two layers (fp32), as trained
    tmodel, ttok = load_classifier(teacher)
    states = []
    with torch.no_grad():
        for t in dev.texts:
            enc = ttok(t[0], truncation=True, max_length=48, return_tensors="pt")
            hidden = tmodel(**enc, output_hidden_states=True).hidden_states[:3]
            states.append(torch.stack([h[0, 0] for h in hidden]))
        model.head.eval()
        expected = model.head(torch.stack(states)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    # and the reloaded model's metrics are the recorded ones
    acc = float((logits.argmax(-1) == dev.labels).mean())
    assert acc == pytest.approx(result.metrics["accuracy"]) and result.metrics["cache_agreement"] >= 0.97
    # the head learned: at least about as good as the teacher it reads (chance is 0.5)
    assert result.score >= result.teacher["score"] - 0.05 and result.score > 0.55
    model2, _, _ = load_compressed(out)
    np.testing.assert_allclose(
        predict_logits(model2, tok, dev.texts[:20], 32, 48, "cpu", "fp32"), logits[:20], atol=1e-6
    )


def test_second_run_reads_the_cache_and_concat_head(tmp_path, trained, teacher, data, cache):
    runs = cache.model_runs
    result = train_bertvision(
        teacher, data, tmp_path / "concat", BertVisionConfig(layers=1, head="concat", **FAST), cache_dir=cache
    )
    assert cache.model_runs == runs  # every k slices the same cached states
    assert result.trainable_params == head_param_count("concat", 2, 64, 2) == 2 + 64 * 2 + 2
    from transformers import AutoConfig

    assert result.params == _backbone_params_by_hand(AutoConfig.from_pretrained(teacher), 1) + 132 + 2 * 2 * 64


def test_mean_pooling_end_to_end(tmp_path, teacher, data, cache):
    out = tmp_path / "mean"
    result = train_bertvision(
        teacher, data, out, BertVisionConfig(layers=1, head="concat", pooling="mean", **FAST), cache_dir=cache
    )
    model, tok, meta = load_bertvision_model(out)
    assert model.pooling == "mean" and meta["head"]["pooling"] == "mean"
    assert result.metrics["cache_agreement"] >= 0.97
    # padding does not enter the mean: one text alone or in a padded batch gives the same logits
    texts = [("good film",), ("a very long and rather dull film that goes on and on",)]
    both = predict_logits(model, tok, texts, 2, 48, "cpu", "fp32", sort_by_length=False)
    alone = predict_logits(model, tok, texts[:1], 1, 48, "cpu", "fp32")
    np.testing.assert_allclose(both[:1], alone, atol=1e-5)


def test_quantized_output(tmp_path, trained, teacher, data, cache):
    out = tmp_path / "q"
    result = train_bertvision(teacher, data, out, BertVisionConfig(layers=2, quantize=True, **FAST), cache_dir=cache)
    names = {p.name for p in out.iterdir()}
    assert tc.INT8_WEIGHTS in names and "model.safetensors" not in names and tc.HEAD_WEIGHTS not in names
    assert result.quantized and json.loads((out / tc.COMPRESSED_META).read_text())["quantized"] is True
    assert result.disk_bytes < trained[1].disk_bytes
    model, tok, _ = load_compressed(out)
    assert tc.is_quantized(model)
    dev = data.splits["validation"]
    # int8 dynamic quantization scales activations per batch: one example at a time, as deployed and evaluated
    pred = predict_logits(model, tok, dev.texts, 1, 48, "cpu", "fp32").argmax(-1)
    float_model, _, _ = load_bertvision_model(trained[0])
    float_pred = predict_logits(float_model, tok, dev.texts, 32, 48, "cpu", "fp32").argmax(-1)
    assert float((pred == dev.labels).mean()) == pytest.approx(result.metrics["accuracy"])
    assert (pred == float_pred).mean() > 0.9 and result.metrics["cache_agreement"] > 0.95


# ---------------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"head": "mlp"}, "head must be one of \\['adapter', 'concat'\\], got 'mlp'"),
        ({"layers": 0}, "layers must be >= 1"),
        ({"adapter_size": 0}, "adapter_size must be >= 1, got 0"),
        ({"dropout": 1.0}, "dropout must be in \\[0, 1\\), got 1.0"),
        ({"lr": 0}, "lr must be > 0, got 0"),
        ({"max_length": 4}, "max_length must be >= 8, got 4"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(BertVisionError, match=message):
        BertVisionConfig(**kwargs)


def test_bad_teacher_or_layers_write_nothing(tmp_path, teacher, data):
    with pytest.raises(BertVisionError, match="layers 4: the teacher .* has 3 layers; expected 1..3"):
        train_bertvision(teacher, data, tmp_path / "out", BertVisionConfig(layers=4, **FAST), cache_dir=tmp_path / "c")
    with pytest.raises(TeacherError, match="teacher directory not found"):
        train_bertvision(tmp_path / "missing", data, tmp_path / "out", BertVisionConfig(**FAST))
    mnli = get_task("mnli")  # 3 labels; the teacher predicts 2
    rows = Split([("a b", "c d")] * 4, np.array([0, 1, 2, 0]), [str(i) for i in range(4)])
    three = TaskData(mnli, {"train": rows, "validation_matched": rows}, data.report, "test")
    with pytest.raises(TeacherError, match="the teacher predicts 2 labels but task 'mnli' has 3"):
        train_bertvision(teacher, three, tmp_path / "out", BertVisionConfig(**FAST))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(TeacherError, match="not empty"):
        train_bertvision(teacher, data, tmp_path / "full", BertVisionConfig(**FAST))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


def test_not_a_bertvision_directory(tmp_path, teacher):
    with pytest.raises(tc.CompressedTeacherError, match="not a compressed-teacher directory"):
        load_bertvision_model(teacher)


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_layer_states_do_not_depend_on_batching(teacher, data, pooling):
    model, tok = load_classifier(teacher)
    texts = list(data.splits["validation"].texts[:10])
    a = layer_states(model, tok, texts, 48, pooling, batch_size=3).layers()
    b = layer_states(model, tok, texts[::-1], 48, pooling, batch_size=10).layers()[::-1]
    np.testing.assert_allclose(a, b, atol=5e-3)
    assert not np.allclose(a[0, 1:], a[1, 1:], atol=1e-3)


# ---------------------------------------------------------------------------------------------------------------
# the command


def test_cli_trains_and_prints_json(tmp_path, teacher, capsys):
    out = tmp_path / "bv"
    rc = main(
        [
            "bertvision",
            "--teacher",
            str(teacher),
            "--task",
            "synthetic",
            "--output",
            str(out),
            "--layers",
            "1",
            "--head",
            "concat",
            "--epochs",
            "2",
            "--max-train-examples",
            "300",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--cpu",
            "--threads",
            "1",
            "--no-progress",
            "--no-teacher-latency",
            "--json",
        ]
    )
    assert rc == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["method"] == "bertvision" and got["layers"] == 1 and got["settings"]["head"] == "concat"
    assert got["teacher"]["latency_ms"] is None and got["latency_ms"] > 0  # the teacher was not timed
    assert got["trainable_params"] == head_param_count("concat", 2, 64, 2)
    assert (out / tc.COMPRESSED_META).is_file() and (tmp_path / "cache" / "hiddenstates").is_dir()
    rc = main(
        [
            "bertvision",
            "--teacher",
            str(teacher),
            "--task",
            "synthetic",
            "--output",
            str(tmp_path / "bv2"),
            "--layers",
            "2",
            "--epochs",
            "1",
            "--max-train-examples",
            "300",
            "--seed",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--cpu",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "teacher" in text and "served from the cache" in text and "speed-up" in text
    teacher_row = next(line for line in text.splitlines() if line.lstrip().startswith("teacher"))
    assert " - " not in teacher_row, text  # timed by default: every figure of the teacher's row is there


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--layers", "5"], "layers 5: the teacher .* has 3 layers; expected 1..3"),
        (["--head", "mlp"], "--head: invalid choice: 'mlp'"),
        (["--teacher", "MISSING"], "MISSING: teacher directory not found"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, teacher, capsys, extra, message):
    import re

    args = [
        "bertvision",
        "--teacher",
        str(teacher),
        "--task",
        "synthetic",
        "--output",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--cpu",
        "--no-progress",
        *extra,
    ]
    if "MISSING" in extra:
        args[args.index("MISSING")] = str(tmp_path / "MISSING")
    try:
        rc = main(args)
    except SystemExit as e:  # argparse's own checks (an unknown choice) exit while parsing
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and re.search(message, err), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
