"""BERT-of-Theseus: the replacement schedule, the successor's shape and initialisation, what trains, the saved
successor as a teacher for distillation, the command and its bad inputs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.taskdata import TaskData
from featherweight_core.data.tasks import get_task
from featherweight_core.errors import UserError
from featherweight_core.teacher.compressed import load_compressed
from featherweight_core.teacher.config import METRICS_FILE, TEACHER_META, TeacherConfig
from featherweight_core.teacher.finetune import finetune_teacher
from featherweight_core.teacher.finetune import teacher_optimizer as _optimizer
from featherweight_core.teacher.loading import load_classifier, read_teacher_meta, teacher_baseline
from featherweight_core.teacher.predict import predict_logits
from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_teacher
from featherweight_core.teacher.softtargets import SoftTargetStore
from featherweight_core.teacher.teacher_compression import COMPRESSED_META, INT8_WEIGHTS, read_meta
from featherweight_core.teacher.theseus import compress_theseus, quantize_successor
from featherweight_core.teacher.theseus_config import ReplacementSchedule, TheseusConfig, TheseusError
from featherweight_core.teacher.theseus_model import TheseusModel
from sweep.cli import main

SMALL4 = SmallBertConfig(vocab_size=300, hidden=32, layers=4, heads=2, intermediate=64, max_length=64)
FAST = TheseusConfig(epochs=1, batch_size=32, lr=2e-3, max_length=48, device="cpu", warmup_ratio=0.0)


@pytest.fixture(scope="module")
def data() -> TaskData:
    return load_synthetic(get_task("synthetic"), n_train=300, n_dev=80)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, data):
    """A 4-layer small BERT teacher, fine-tuned briefly (quality does not matter here, only the mechanics)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("theseus")
    init = build_small_teacher(data, root / "init", SMALL4)
    cfg = TeacherConfig(epochs=1, batch_size=32, lr=3e-3, max_length=48, device="cpu")
    finetune_teacher(init, data, root / "teacher", cfg, progress=False, log=None)
    return root / "teacher"


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, teacher, data):
    out = tmp_path_factory.mktemp("out") / "successor"
    return out, compress_theseus(teacher, data, out, FAST)


# ------------------------------------------------------------------------------------------ the schedule


def test_linear_schedule_reaches_one_after_the_replacing_fraction():
    s = ReplacementSchedule("linear", total_steps=100, b=0.3, replacing_fraction=0.85)
    assert s.replacing_steps == 85
    assert s(0) == pytest.approx(0.3)
    assert s(42) == pytest.approx(0.3 + 0.7 * 42 / 85)
    ps = [s(t) for t in range(100)]
    assert all(a <= b for a, b in zip(ps, ps[1:], strict=False))  # never decreases
    assert s(84) < 1.0 and s(85) == 1.0 and s(99) == 1.0


def test_linear_schedule_with_explicit_slope():
    s = ReplacementSchedule("linear", total_steps=1000, b=0.1, k=0.002)
    assert s(0) == pytest.approx(0.1) and s(100) == pytest.approx(0.3)
    assert s.replacing_steps == 450 and s(449) < 1.0 and s(450) == 1.0  # min(k t + b, 1)


def test_constant_schedule_then_successor_only():
    s = ReplacementSchedule("constant", total_steps=40, p=0.5, replacing_fraction=0.85)
    assert [s(t) for t in (0, 10, 33)] == [0.5, 0.5, 0.5]
    assert s.replacing_steps == 34 and s(34) == 1.0 and s(39) == 1.0
    assert ReplacementSchedule("constant", 10, p=0.2, replacing_fraction=0.0)(0) == 1.0  # no replacement phase
    assert ReplacementSchedule("linear", 10, replacing_fraction=1.0)(9) < 1.0  # no successor-only phase


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 1.5}, "p .* got 1.5"),
        ({"p": -0.1}, "got -0.1"),
        ({"b": 2.0}, "b .* got 2.0"),
        ({"k": 0.0}, "k .* got 0.0"),
        ({"replacing_fraction": 1.2}, "replacing_fraction .* got 1.2"),
        ({"replace_rate": 1}, "replace_rate .* got 1"),
        ({"schedule": "cosine"}, "'cosine'"),
        ({"epochs": 0}, "epochs .* got 0"),
        ({"precision": "int4"}, "'int4'"),
    ],
)
def test_config_rejects_bad_values_naming_them(kwargs, match):
    with pytest.raises(TheseusError, match=match) as e:
        TheseusConfig(**kwargs)
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ the modules


def _layer(model, i):
    return model.base_model.encoder.layer[i]


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_successor_layers_start_as_the_first_layer_of_their_block(teacher):
    model, _ = load_classifier(teacher)
    original = [_layer(model, i) for i in range(4)]
    th = TheseusModel(model, replace_rate=2)
    assert th.teacher_layers == 4 and th.successor_layers == 2
    assert [len(b.predecessors) for b in th.blocks] == [2, 2]
    assert th.blocks[0].predecessors[1] is original[1] and th.blocks[1].predecessors[0] is original[2]
    assert _same(th.blocks[0].successor, original[0]) and _same(th.blocks[1].successor, original[2])
    assert th.blocks[0].successor is not original[0]  # a copy: training it leaves the predecessor as it was
    assert not _same(th.blocks[1].successor, original[1])
    succ = th.build_successor()
    assert succ.config.num_hidden_layers == 2 and len(succ.base_model.encoder.layer) == 2
    assert _same(_layer(succ, 1), original[2])
    assert TheseusModel(load_classifier(teacher)[0], replace_rate=4).successor_layers == 1


def test_replace_rate_must_divide_the_layers(teacher):
    model, _ = load_classifier(teacher)
    with pytest.raises(
        TheseusError, match=r"replace_rate 3 does not divide the teacher's 4 layers \(choose one of \[2, 4\]\)"
    ):
        TheseusModel(model, replace_rate=3)


def test_each_block_draws_its_own_successor_with_probability_p(teacher, data):
    torch.set_num_threads(1)
    model, tok = load_classifier(teacher)
    th = TheseusModel(model, replace_rate=2, seed=1)
    enc = tok(["a good day"], return_tensors="pt")
    model.train()
    th.set_p(0.3)
    draws = []
    with torch.no_grad():
        for _ in range(400):
            model(**enc)
            draws.append([b.last_used_successor for b in th.blocks])
    d = np.asarray(draws, dtype=float)
    assert abs(d[:, 0].mean() - 0.3) < 0.07 and abs(d[:, 1].mean() - 0.3) < 0.07
    assert abs((d[:, 0] * d[:, 1]).mean() - 0.09) < 0.045  # independent draws, not one coin for all blocks
    for p in (0.0, 1.0):
        th.set_p(p)
        with torch.no_grad():
            model(**enc)
        assert [b.last_used_successor for b in th.blocks] == [bool(p), bool(p)]
    # eval mode runs the successor alone, exactly as the rebuilt compressed model does
    th.set_p(0.0)
    model.eval()
    texts = data.splits["validation"].texts[:20]
    mixed = predict_logits(model, tok, texts, 8, 48, "cpu")
    assert all(b.last_used_successor for b in th.blocks)
    np.testing.assert_allclose(predict_logits(th.build_successor(), tok, texts, 8, 48, "cpu"), mixed, atol=1e-5)


@pytest.mark.parametrize("train_classifier", [True, False])
def test_only_successor_layers_and_optionally_the_head_train(teacher, data, train_classifier):
    torch.set_num_threads(1)
    model, tok = load_classifier(teacher)
    params = dict(model.named_parameters())  # the teacher's own tensors: embeddings, layers (the predecessors), head
    before = {k: v.detach().clone() for k, v in params.items()}
    th = TheseusModel(model, replace_rate=2, train_classifier=train_classifier, seed=0)
    th.set_p(0.5)
    opt, _ = _optimizer(model, FAST.teacher_config(), 10)
    enc = tok([t[0] for t in data.train.texts[:32]], padding=True, return_tensors="pt")
    y = torch.from_numpy(data.train.labels[:32])
    model.train()
    for _ in range(4):
        loss = torch.nn.functional.cross_entropy(model(**enc).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = {
        k.split(".")[0] if k.startswith("classifier") else k.split(".")[1]
        for k, p in params.items()
        if not torch.equal(p, before[k])
    }
    assert changed == ({"classifier", "pooler"} if train_classifier else set())
    for j, block in enumerate(th.blocks):  # every successor weight moved away from its initialisation
        for name, p in block.successor.named_parameters():
            assert not torch.equal(p, before[f"bert.encoder.layer.{2 * j}.{name}"]), name
    successor = sum(p.numel() for b in th.blocks for p in b.successor.parameters())
    head = sum(p.numel() for p in th.head_params)
    assert th.trainable_params == successor + (head if train_classifier else 0)


# ------------------------------------------------------------------------------------------ compression


def test_compress_saves_a_plain_teacher_directory(compressed, teacher, data):
    out, result = compressed
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", TEACHER_META, METRICS_FILE, COMPRESSED_META} <= names
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left
    assert result.method == "theseus" and result.layers == 2 and not result.quantized
    assert result.teacher["layers"] == 4 and result.teacher["params"] > result.params
    assert result.teacher["latency_ms"] > 0 and result.speedup == result.teacher["latency_ms"] / result.latency_ms
    assert len(result.history) == 1 and result.history[0]["mean_p"] > 0.3
    model, _ = load_classifier(out)
    assert model.config.num_hidden_layers == 2
    assert result.params == sum(p.numel() for p in model.parameters())
    # the rebuilt successor scores what the successor scored in training (eval mode = successor only)
    assert result.metrics["score"] == pytest.approx(result.history[-1]["score"])
    meta = read_teacher_meta(out)
    assert meta["task"] == "synthetic" and meta["data_fingerprint"] == data.fingerprint()
    assert meta["config"]["max_length"] == 48
    assert teacher_baseline(out)["score"] == result.metrics["score"]
    compressed_meta = json.loads((out / COMPRESSED_META).read_text())
    assert compressed_meta["method"] == "theseus" and compressed_meta["layers"] == 2
    assert compressed_meta["teacher"]["fingerprint"] == result.teacher["fingerprint"]
    # embeddings unchanged, successor layers trained away from their initialisation
    t = load_file(teacher / "model.safetensors")
    s = load_file(out / "model.safetensors")
    key = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(t[key], s[key])
    q = "bert.encoder.layer.1.attention.self.query.weight"
    assert not torch.equal(s[q], t["bert.encoder.layer.2.attention.self.query.weight"])


def test_quantized_output_loads_and_scores_as_measured(tmp_path, teacher, data):
    out = tmp_path / "q"
    cfg = dataclasses.replace(FAST, quantize=True, schedule="constant", p=0.5)
    result = compress_theseus(teacher, data, out, cfg)
    assert result.quantized and (out / INT8_WEIGHTS).is_file() and not (out / "model.safetensors").exists()
    model, tok, meta = load_compressed(out)
    assert meta["quantized"] and meta["method"] == "theseus"
    preds = predict_logits(model, tok, data.splits["validation"].texts, 32, 48, "cpu").argmax(-1)
    assert float((preds == data.splits["validation"].labels).mean()) == pytest.approx(result.metrics["accuracy"])


def test_quantizing_a_saved_successor_equals_training_with_quantize(compressed, tmp_path, teacher, data):
    float_dir, float_result = compressed
    trained = compress_theseus(teacher, data, tmp_path / "trained", dataclasses.replace(FAST, quantize=True))
    reused = quantize_successor(float_dir, data, tmp_path / "reused")
    assert reused.metrics == trained.metrics and reused.quantized
    assert (reused.params, reused.disk_bytes, reused.trainable_params, reused.layers) == (
        trained.params,
        trained.disk_bytes,
        trained.trainable_params,
        trained.layers,
    )
    assert reused.history == float_result.history and reused.settings == trained.settings
    # the teacher is timed again beside the int8 model (not the float sibling's timing, from another measurement)
    assert reused.teacher["latency_ms"] > 0 and reused.teacher["latency_ms"] != float_result.teacher["latency_ms"]
    assert read_meta(tmp_path / "reused")["teacher"]["latency_ms"] == reused.teacher["latency_ms"]
    a = torch.load(tmp_path / "trained" / INT8_WEIGHTS, weights_only=True)
    b = torch.load(tmp_path / "reused" / INT8_WEIGHTS, weights_only=True)
    assert a.keys() == b.keys()

    def tensors(v):
        if isinstance(v, torch.Tensor):
            return [v.dequantize() if v.is_quantized else v]
        return [t for x in v for t in tensors(x)] if isinstance(v, tuple | list) else []

    compared = 0
    for k in a:
        for x, y in zip(tensors(a[k]), tensors(b[k]), strict=True):
            assert torch.equal(x, y), k
            compared += 1
    assert compared > 2 * len([k for k in a if k.endswith("_packed_params._packed_params")])  # int8 weights too
    with pytest.raises(TheseusError, match="not a float Theseus successor"):
        quantize_successor(tmp_path / "reused", data, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_successor_teaches_a_student_through_distill(compressed, data, tmp_path, capsys, monkeypatch):
    """The real `featherweight distill --teacher` path: the successor's logits land in the soft-target store."""
    from featherweight_core.data import loading as fdata

    out, _ = compressed
    monkeypatch.setattr(fdata, "load_synthetic", lambda task, **kw: data)  # the CLI's own load: our small split
    cache = tmp_path / "cache"
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
            str(out),
            "--cache-dir",
            str(cache),
            "--max-epochs",
            "1",
            "--json",
            "--threads",
            "1",
            "--teacher-device",
            "cpu",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["distill"]["alpha"] == 0.5 and summary["train_examples"] == 300
    store = SoftTargetStore(cache / "softtargets", device="cpu")
    _, stored = store.get_or_compute(out, data, "train")
    assert store.model_runs == 0  # distill already stored the successor's logits
    model, tok = load_classifier(out)
    np.testing.assert_allclose(stored, predict_logits(model, tok, data.train.texts, 64, 48, "cpu"), atol=1e-4)


def test_compress_refuses_bad_inputs_and_writes_nothing(tmp_path, teacher, data):
    with pytest.raises(TheseusError, match="replace_rate 3 does not divide the teacher's 4 layers"):
        compress_theseus(teacher, data, tmp_path / "out", dataclasses.replace(FAST, replace_rate=3))
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="missing"):
        compress_theseus(tmp_path / "missing", data, tmp_path / "out", FAST)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ the command


def _cli(teacher, out, *extra):
    return [
        "theseus",
        "--teacher",
        str(teacher),
        "--output",
        str(out),
        "--epochs",
        "1",
        "--lr",
        "2e-3",
        "--max-length",
        "48",
        "--cpu",
        "--threads",
        "1",
        "--no-progress",
        *extra,
    ]


def test_cli_compresses_the_teacher_of_its_recorded_task(tmp_path, teacher, data, capsys, monkeypatch):
    from featherweight_core.data import loading as fdata

    monkeypatch.setattr(fdata, "load_synthetic", lambda task, **kw: data)  # the CLI's own load: our small split
    out = tmp_path / "successor"
    assert main(_cli(teacher, out, "--json", "--schedule", "constant", "--p", "0.3")) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["task"] == "synthetic" and r["method"] == "theseus" and r["layers"] == 2
    assert r["settings"]["schedule"] == "constant" and r["settings"]["p"] == 0.3
    assert r["teacher"]["layers"] == 4 and r["teacher"]["gzip_bytes"] > r["gzip_bytes"]
    assert load_classifier(out)[0].config.num_hidden_layers == 2
    q = tmp_path / "q"
    assert main(_cli(teacher, q, "--replace-rate", "4", "--quantize", "--freeze-classifier")) == 0
    text = capsys.readouterr().out
    assert "layers 4 -> 1" in text and "(int8)" in text and "CPU latency" in text and "x faster)" in text
    assert (q / INT8_WEIGHTS).is_file() and json.loads((q / COMPRESSED_META).read_text())["quantized"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--replace-rate", "3"], "replace_rate 3 does not divide the teacher's 4 layers"),
        (["--p", "1.5"], "argument --p: expected a number in [0, 1], got '1.5'"),
        (["--replacing-fraction", "-1"], "argument --replacing-fraction: expected a number in [0, 1], got '-1'"),
        (["--lr", "inf"], "argument --lr: expected a number > 0, got 'inf'"),
    ],
)
def test_cli_bad_input_is_one_error_line_and_no_output(tmp_path, teacher, data, capsys, monkeypatch, extra, message):
    from featherweight_core.data import loading as fdata

    monkeypatch.setattr(fdata, "load_synthetic", lambda task, **kw: data)
    out = tmp_path / "out"
    try:
        rc = main(_cli(teacher, out, *extra))
    except SystemExit as e:  # an option's value refused while parsing
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not out.exists()


def test_cli_missing_teacher(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_cli(tmp_path / "no-teacher", out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-teacher: teacher directory not found" in err[0]
    assert not out.exists()


def _tiny(kind: str):
    import transformers as tf

    if kind == "roberta":
        cfg = tf.RobertaConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=4,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=40,
            num_labels=3,
        )
        return tf.RobertaForSequenceClassification(cfg)
    if kind == "distilbert":
        cfg = tf.DistilBertConfig(
            vocab_size=50, dim=16, n_layers=4, n_heads=2, hidden_dim=32, max_position_embeddings=40, num_labels=3
        )
        return tf.DistilBertForSequenceClassification(cfg)
    cfg = tf.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=40, num_labels=3, pad_token_id=0)
    return tf.GPT2ForSequenceClassification(cfg)


@pytest.mark.parametrize("kind", ["roberta", "distilbert"])
def test_other_encoder_classifiers(kind):
    torch.manual_seed(0)
    model = _tiny(kind)
    th = TheseusModel(model, replace_rate=2, seed=0)
    ids = torch.randint(3, 50, (2, 7))
    mask = torch.ones_like(ids)
    model.train()
    th.set_p(0.5)
    loss = torch.nn.functional.cross_entropy(model(input_ids=ids, attention_mask=mask).logits, torch.tensor([0, 2]))
    loss.backward()
    assert all(p.grad is None for b in th.blocks for p in b.predecessors.parameters())
    model.eval()
    with torch.no_grad():
        mixed = model(input_ids=ids, attention_mask=mask).logits
        succ = th.build_successor()
        alone = succ(input_ids=ids, attention_mask=mask).logits
    assert succ.config.num_hidden_layers == 2
    torch.testing.assert_close(alone, mixed)


def test_unsupported_model_type_is_one_error_line():
    with pytest.raises(TheseusError, match="model type 'gpt2': no encoder layer list found"):
        TheseusModel(_tiny("gpt2"))
