"""Distillation: the loss against hand-computed values, configs, batching, evaluation (MNLI m/mm mean),
early stopping, determinism, checkpoints, and that a BiLSTM beats the FFN on the word-order synthetic task."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import featherweight_core.students.distill as distill_mod
from featherweight_core.data.batching import EncodedSplit, bucket_batches, iter_batches
from featherweight_core.data.encoders import Ragged
from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import get_task
from featherweight_core.pipeline.checkpoint import load_checkpoint, read_checkpoint
from featherweight_core.pipeline.prepare import prepare
from featherweight_core.pipeline.run import run_distillation, student_config_for
from featherweight_core.students.distill import (
    DistillConfig,
    TrainingError,
    distill_loss,
    evaluate,
    predict_logits,
    seed_everything,
    train,
)
from featherweight_core.students.models import build_student

# one thread: on a shared, loaded 2-core machine two OpenMP threads make small models ~40x slower
torch.set_num_threads(1)

# ---------------------------------------------------------------- loss

S = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
Y = torch.tensor([0, 1])
T = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
CE = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2  # -log softmax of the true class, mean
MSE = (1**2 + 1**2 + 0**2 + 2**2) / 4


def _softmax(row, temp):
    e = [math.exp(v / temp) for v in row]
    return [v / sum(e) for v in e]


def _mse_soft(temp):
    diffs = [
        a - b
        for s_row, t_row in zip(S.tolist(), T.tolist(), strict=True)
        for a, b in zip(_softmax(s_row, temp), _softmax(t_row, temp), strict=True)
    ]
    return sum(d * d for d in diffs) / len(diffs)


@pytest.mark.parametrize(
    ("alpha", "temperature", "expected"),
    [
        (1.0, None, CE),
        (0.0, None, MSE),
        (0.5, None, 0.5 * CE + 0.5 * MSE),
        (0.0, 2.0, _mse_soft(2.0)),
        (0.5, 3.0, 0.5 * CE + 0.5 * _mse_soft(3.0)),  # temperature only touches the MSE term
        (1.0, 3.0, CE),
    ],
)
def test_distill_loss_hand_computed(alpha, temperature, expected):
    assert distill_loss(S, Y, T, alpha, temperature).item() == pytest.approx(expected, rel=1e-6)


def test_distill_loss_values_spelled_out():
    assert pytest.approx(0.2200948, rel=1e-6) == CE
    assert _mse_soft(2.0) == pytest.approx(0.0457294, rel=1e-5)


def test_distill_loss_alpha_one_needs_no_teacher_and_alpha_zero_ignores_labels():
    assert distill_loss(S, Y, None, 1.0).item() == pytest.approx(CE, rel=1e-6)
    flipped = distill_loss(S, 1 - Y, T, 0.0).item()
    assert flipped == pytest.approx(MSE)
    with pytest.raises(TrainingError, match="teacher logits"):
        distill_loss(S, Y, None, 0.5)


def test_distill_loss_gradient_pulls_towards_teacher():
    s = S.clone().requires_grad_(True)
    distill_loss(s, Y, T, 0.0).backward()
    torch.testing.assert_close(s.grad, 2 * (S - T) / S.numel())


# ---------------------------------------------------------------- configs


def test_distill_config_resolved_defaults():
    cfg = DistillConfig().resolved("bilstm", pair=False)
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.weight_decay) == ("adadelta", 1.0, 50, 0.0)
    cfg = DistillConfig().resolved("rnn", pair=True)
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.weight_decay) == ("adam", 1e-4, 256, 1e-5)
    assert DistillConfig(lr=0.5, batch_size=8).resolved("ffn", False).lr == 0.5
    assert distill_mod.default_temperature("ffn") == 3.0 and distill_mod.default_temperature("bilstm") is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"temperature": 0}, "temperature"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"patience": 0}, "patience"),
        ({"batch_size": 0}, "batch_size"),
        ({"optimizer": "rmsprop"}, "rmsprop"),
        ({"lr": 0}, "lr"),
        ({"lr": math.inf}, "lr must be a finite number > 0"),
        ({"lr": math.nan}, "lr must be a finite number > 0"),
        ({"temperature": math.inf}, "temperature must be a finite number"),
        ({"weight_decay": -1e-5}, "weight_decay must be a finite number >= 0"),
        ({"weight_decay": math.inf}, "weight_decay"),
        ({"grad_clip": math.nan}, "grad_clip"),
        ({"seed": -1}, "seed must be an integer in 0..4294967295"),
        ({"seed": 2**32}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
    ],
)
def test_distill_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillConfig(**kwargs)


def test_train_needs_resolved_config_and_teacher():
    split = _toy_split([[1, 2], [3]], [0, 1])
    model = nn.Linear(1, 2)
    with pytest.raises(ValueError, match="resolved"):
        train(model, split, {}, get_task("synthetic"), DistillConfig())
    with pytest.raises(TrainingError, match="teacher logits"):
        train(model, split, {}, get_task("synthetic"), DistillConfig(alpha=0.5).resolved("ffn", False))


# ---------------------------------------------------------------- batching and evaluation


def _toy_split(seqs, labels, pair=False, teacher=None) -> EncodedSplit:
    field = Ragged.from_sequences([np.asarray(s, dtype=np.int32) for s in seqs])
    fields = (field, field) if pair else (field,)
    return EncodedSplit(fields, np.asarray(labels), [f"k{i}" for i in range(len(labels))], teacher)


class FirstIdClassifier(nn.Module):
    """Predicts class ``ids_a[:, 0] % C`` with logit 10 (a fixed, inspectable model; no training)."""

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, ids_a, len_a, ids_b=None, len_b=None):
        return 10.0 * nn.functional.one_hot(ids_a[:, 0] % self.num_labels, self.num_labels).float() + self.dummy


def test_iter_batches_cover_once_and_bucket_by_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, 203)
    split = _toy_split([np.arange(1, n + 1) for n in lengths], np.zeros(203, dtype=int))
    batches = list(iter_batches(split, 16, np.random.default_rng(1)))
    seen = np.concatenate([b.index for b in batches])
    assert sorted(seen.tolist()) == list(range(203))
    assert all(len(b.labels) <= 16 for b in batches)
    spread = [int(lengths[b.index].max() - lengths[b.index].min()) for b in batches]
    assert np.mean(spread) <= 2  # length bucketing: little padding
    again = [b.index.tolist() for b in iter_batches(split, 16, np.random.default_rng(1))]
    assert again == [b.index.tolist() for b in batches]
    with pytest.raises(ValueError, match="batch_size"):
        bucket_batches(lengths, 0, None)


def test_encoded_split_take_concat_and_checks():
    split = _toy_split([[1], [2, 3], [4, 5, 6]], [0, 1, 0], teacher=np.eye(3, 2, dtype=np.float32))
    sub = split.take(np.array([2, 0]))
    assert sub.keys == ["k2", "k0"] and sub.labels.tolist() == [0, 0]
    np.testing.assert_array_equal(sub.teacher_logits, split.teacher_logits[[2, 0]])
    both = split.concat(sub)
    assert len(both) == 5 and both.fields[0].lengths.tolist() == [1, 2, 3, 3, 1]
    with pytest.raises(ValueError, match="only one has teacher logits"):
        split.concat(_toy_split([[1]], [0]))
    with pytest.raises(ValueError, match="teacher logits have 2 rows"):
        _toy_split([[1], [2], [3]], [0, 1, 0], teacher=np.zeros((2, 2), np.float32))


def test_predict_logits_keeps_row_order():
    seqs = [[3] * 5, [1], [2, 2], [0 + 4] * 9, [5, 1, 1]]
    split = _toy_split(seqs, [0, 0, 0, 0, 0])
    out = predict_logits(FirstIdClassifier(6), split, batch_size=2)
    assert out.shape == (5, 6) and out.dtype == np.float32
    assert out.argmax(1).tolist() == [3, 1, 2, 4, 5]


def test_evaluate_mnli_mean_of_matched_and_mismatched():
    task = get_task("mnli")
    # predictions are the first id % 3
    matched = _toy_split([[0], [1], [2], [0]], [0, 1, 2, 1])  # 3/4
    mismatched = _toy_split([[0], [1]], [1, 1])  # 1/2
    out = evaluate(FirstIdClassifier(3), {"validation_matched": matched, "validation_mismatched": mismatched}, task)
    assert out["accuracy_matched"] == 0.75 and out["accuracy_mismatched"] == 0.5
    assert out["accuracy"] == out["score"] == pytest.approx(0.625)


def test_evaluate_qqp_reports_f1():
    out = evaluate(
        FirstIdClassifier(2), {"validation": _toy_split([[1], [1], [0], [0]], [1, 0, 1, 0])}, get_task("qqp")
    )
    assert out == {"accuracy": 0.5, "macro_f1": 0.5, "f1": 0.5, "score": 0.5}


def test_evaluate_custom_macro_f1_headline():
    from featherweight_core.data.tasks import task_from_options

    task = task_from_options("three", {"text_columns": "t", "labels": ["a", "b", "c"], "metric": "macro_f1"})
    # predictions [0, 0, 1, 2] (first id % 3) vs labels [0, 1, 1, 2]: per-class F1 2/3, 2/3, 1
    out = evaluate(FirstIdClassifier(3), {"validation": _toy_split([[0], [3], [1], [2]], [0, 1, 1, 2])}, task)
    assert set(out) == {"accuracy", "macro_f1", "score"}  # no f1: not a binary task
    assert out["score"] == out["macro_f1"] == pytest.approx(7 / 9)


# ---------------------------------------------------------------- training


@pytest.fixture(scope="module")
def synthetic():
    task = get_task("synthetic")
    data = load_synthetic(task, n_train=2000, n_dev=400)
    return prepare(task, embedding="hash", emb_dim=16, vocab_size=1000, cache_dir=None, task_data=data)


def _small(prepared, arch, **kw):
    return student_config_for(prepared, arch, **({"hidden": 16, "classifier_hidden": 16} | kw))


def test_early_stopping_restores_best_epoch(synthetic, monkeypatch):
    scores = iter([0.5, 0.8, 0.7, 0.6, 0.95])  # best at epoch 2, then two worse epochs: stop (patience 2)
    monkeypatch.setattr(distill_mod, "evaluate", lambda *a, **k: {"accuracy": (s := next(scores)), "score": s})
    snapshots = {}
    seed_everything(0)
    model = build_student(_small(synthetic, "ffn"))

    def snapshot(record):
        snapshots[record.epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    cfg = DistillConfig(max_epochs=10, patience=2, lr=1e-2).resolved("ffn", False)
    result = train(model, synthetic.train, synthetic.evals, synthetic.task, cfg, on_epoch=snapshot)
    assert result.best_epoch == 2 and result.metrics["score"] == 0.8
    assert len(result.history) == 4 and result.stopped_early
    assert [r.score for r in result.history] == [0.5, 0.8, 0.7, 0.6]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, snapshots[2][k], rtol=0, atol=0)
    assert any(not torch.equal(snapshots[2][k], snapshots[4][k]) for k in snapshots[2])  # it did move on


def test_training_is_deterministic_under_a_seed(synthetic):
    def run(seed):
        sub = synthetic.train.take(np.arange(600))
        r = run_distillation(
            synthetic, _small(synthetic, "bilstm"), DistillConfig(max_epochs=2, seed=seed), train_split=sub
        )
        return r.model.state_dict(), [h.train_loss for h in r.train.history], r.train.metrics

    a, b, c = run(3), run(3), run(4)
    assert a[1] == b[1] and a[2] == b[2]
    for k in a[0]:
        assert torch.equal(a[0][k], b[0][k]), k
    assert a[1] != c[1]


def test_non_finite_loss_is_a_training_error(synthetic):
    bad = synthetic.train.take(np.arange(100))
    bad.teacher_logits = np.full((100, 2), np.nan, dtype=np.float32)
    model = build_student(_small(synthetic, "ffn"))
    with pytest.raises(TrainingError, match="non-finite loss"):
        train(model, bad, synthetic.evals, synthetic.task, DistillConfig(alpha=0.0).resolved("ffn", False))


def test_distillation_from_teacher_logits(synthetic):
    """alpha=0 learns from teacher logits alone: a teacher that knows the labels teaches the task."""
    sub = synthetic.train.take(np.arange(1000))
    sub.teacher_logits = np.where(np.eye(2, dtype=bool)[sub.labels], 3.0, -3.0).astype(np.float32)
    cfg = DistillConfig(alpha=0.0, max_epochs=5, optimizer="adam", lr=1e-2)
    r = run_distillation(synthetic, _small(synthetic, "bilstm"), cfg, train_split=sub)
    assert r.train.metrics["score"] > 0.8  # measured 0.93-0.95 over seeds 0-3; chance is 0.5


def test_bilstm_beats_ffn_on_word_order_task(synthetic):
    adam = {"optimizer": "adam", "lr": 1e-2, "max_epochs": 5}
    bilstm = run_distillation(
        synthetic, _small(synthetic, "bilstm", hidden=32, classifier_hidden=32), DistillConfig(**adam)
    )
    ffn = run_distillation(synthetic, _small(synthetic, "ffn", classifier_hidden=32), DistillConfig(**adam))
    # measured: bilstm 1.00 on every seed tried, ffn 0.77-0.79 (a bag of words cannot order clauses)
    assert bilstm.train.metrics["score"] >= 0.95
    assert bilstm.train.metrics["score"] - ffn.train.metrics["score"] >= 0.12


def test_pair_task_trains(tmp_path):
    task = get_task("synthetic_pair")
    p = prepare(task, embedding="char", emb_dim=8, cache_dir=None, task_data=load_synthetic(task, 200, 50))
    r = run_distillation(p, _small(p, "rnn"), DistillConfig(max_epochs=1), output_dir=tmp_path)
    assert set(r.train.metrics) == {"accuracy", "macro_f1", "f1", "score"}
    model, cfg, meta = load_checkpoint(r.checkpoint)
    assert cfg.pair and meta["task"] == "synthetic_pair"


def test_checkpoint_roundtrip(synthetic, tmp_path):
    r = run_distillation(
        synthetic,
        _small(synthetic, "bilstm"),
        DistillConfig(max_epochs=1),
        output_dir=tmp_path,
        train_split=synthetic.train.take(np.arange(200)),
    )
    payload = torch.load(r.checkpoint, weights_only=True)
    assert payload["format"] == "featherweight-student/1"
    model, cfg, meta = load_checkpoint(r.checkpoint)
    assert cfg == r.student_config and meta["best_epoch"] == 1
    dev = synthetic.evals["validation"]
    np.testing.assert_array_equal(predict_logits(model, dev), predict_logits(r.model, dev))
    assert not model.training
    assert [p.name for p in tmp_path.iterdir()] == ["student.pt"]  # no temp file left behind
    (tmp_path / "junk.pt").write_bytes(b"")
    torch.save({"format": "other"}, tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="not a featherweight student checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")


def test_custom_task_test_split_scored_at_best_epoch(tmp_path):
    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import task_from_options
    from featherweight_core.students.measure import per_class_metrics

    words = ("good fine", "meh so so", "bad awful")
    rows = "".join(f"{words[i % 3]} {i},{('pos', 'neu', 'neg')[i % 3]}\n" for i in range(90))
    (tmp_path / "d.csv").write_text("text,label\n" + rows)
    task = task_from_options(
        "mood",
        {
            "text_columns": "text",
            "labels": ["neg", "neu", "pos"],
            "metric": "macro_f1",
            "split": {"dev_fraction": 0.2, "test_fraction": 0.2},
        },
    )
    data = load_task_data(task, tmp_path / "d.csv")
    p = prepare(task, embedding="char", emb_dim=8, cache_dir=tmp_path / "c", task_data=data)
    assert set(p.tests) == {"test"} and len(p.tests["test"]) == 18 and set(p.evals) == {"validation"}
    r = run_distillation(p, _small(p, "ffn"), DistillConfig(max_epochs=2, lr=0.01), output_dir=tmp_path / "run")
    s = r.summary()
    assert set(s["test_metrics"]) == set(s["metrics"]) == {"accuracy", "macro_f1", "score"}
    assert s["test_metrics"]["score"] == s["test_metrics"]["macro_f1"]
    assert set(s["class_metrics"]) == {"validation", "test"}
    pred = predict_logits(r.model, p.tests["test"]).argmax(-1)
    assert s["class_metrics"]["test"] == per_class_metrics(pred, p.tests["test"].labels, task.label_names)
    assert sum(map(sum, s["class_metrics"]["test"]["confusion"])) == 18
    _, _, meta = load_checkpoint(r.checkpoint)
    assert meta["task_spec"] == task.to_dict() and meta["test_metrics"] == s["test_metrics"]
    assert meta["data_source"] == str((tmp_path / "d.csv").resolve())
    # a built-in task without a test split: empty test metrics
    syn = get_task("synthetic")
    q = prepare(syn, embedding="char", emb_dim=8, cache_dir=None, task_data=load_synthetic(syn, 100, 30))
    assert q.tests == {}
    assert run_distillation(q, _small(q, "ffn"), DistillConfig(max_epochs=1)).summary()["test_metrics"] == {}


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_non_finite_teacher_logits_name_the_file_and_row(tmp_path, suffix):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from featherweight_core.data.taskdata import DataError
    from featherweight_core.pipeline.prepare import load_teacher_logits

    logits = np.zeros((6, 2), dtype=np.float32)
    logits[2, 1] = np.nan
    logits[4, 0] = np.inf
    path = tmp_path / f"logits{suffix}"
    if suffix == ".npy":
        np.save(path, logits)
    else:
        pq.write_table(pa.table({"key": [f"train:{i}" for i in range(6)], "logits": logits.tolist()}), path)
    with pytest.raises(DataError, match=r"logits\.\w+: teacher logits are not finite: row 2 .*2 of 6 rows hold NaN"):
        load_teacher_logits(path)


def test_a_teacher_logits_file_of_strings_is_refused(tmp_path):
    from featherweight_core.data.taskdata import DataError
    from featherweight_core.pipeline.prepare import load_teacher_logits

    np.save(tmp_path / "l.npy", np.array([["a", "b"]]))
    with pytest.raises(DataError, match="l.npy: teacher logits must be real numbers"):
        load_teacher_logits(tmp_path / "l.npy")
