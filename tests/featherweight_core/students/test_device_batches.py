"""The accelerator path of training (device-resident batches) and that the CPU path did not move.

* CPU training is bit-identical to the loop before device-resident batches existed: an inline copy of that loop
  gives the same weights and losses, and the figures recorded with the old code still come out.
* ``DeviceSplit`` batches (built by index, as on a GPU) hold the same rows, ids and lengths as the numpy batches;
  ``bucket_length`` pads to few shapes; the sync-free packing equals ``pack_padded_sequence``.
* ``train`` on the accelerator path (switched on for the CPU here) trains to the same losses up to float rounding,
  evaluates the same, and still stops on a non-finite loss.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import featherweight_core.students.distill as distill_mod
from featherweight_core.data.batching import DeviceSplit, bucket_length, iter_batches, make_batch, to_device
from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import get_task
from featherweight_core.pipeline.prepare import prepare
from featherweight_core.pipeline.run import run_distillation, student_config_for
from featherweight_core.students.distill import (
    DistillConfig,
    TrainingError,
    distill_loss,
    evaluate,
    make_optimizer,
    predict_logits,
    seed_everything,
    train,
)
from featherweight_core.students.models import _pack_without_sync, build_student

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def synthetic():
    task = get_task("synthetic")
    return prepare(
        task,
        embedding="hash",
        emb_dim=16,
        vocab_size=1000,
        cache_dir=None,
        task_data=load_synthetic(task, n_train=600, n_dev=200),
    )


@pytest.fixture(scope="module")
def pair():
    task = get_task("synthetic_pair")
    return prepare(task, embedding="char", emb_dim=8, cache_dir=None, task_data=load_synthetic(task, 200, 50))


def _small(prepared, arch, **kw):
    return student_config_for(prepared, arch, hidden=16, classifier_hidden=16, **kw)


# ---------------------------------------------------------------- CPU: unchanged

# Recorded with the code before device-resident batches (commit 3382186, torch 2.13.0 CPU, one thread); the new
# code reproduced them bit for bit on the same machine. The tolerance only allows for another CPU's kernels.
RECORDED = {
    "bilstm_last": ([0.6939646353324255, 0.6921967814366022], [0.545, 0.54]),
    "bilstm_max_alpha05": ([0.8376204272111257, 0.8262503693501154], [0.46, 0.505]),
    "ffn_t3": ([0.012744186135629812, 0.012291551334783435], [0.47, 0.49]),
    "rnn_last": ([0.7008712043364843, 0.6979156682888666], [0.52, 0.53]),
}


def _recorded_cases(p):
    sub = p.train.take(np.arange(600))
    sub.teacher_logits = np.random.default_rng(5).normal(size=(600, 2)).astype(np.float32)
    return {
        "bilstm_last": ("bilstm", {}, dict(max_epochs=2, seed=3), None),
        "bilstm_max_alpha05": ("bilstm", {"pooling": "max"}, dict(max_epochs=2, seed=1, alpha=0.5, grad_clip=1.0), sub),
        "ffn_t3": ("ffn", {}, dict(max_epochs=2, seed=2, alpha=0.0, temperature=3.0, optimizer="adam", lr=1e-2), sub),
        "rnn_last": ("rnn", {}, dict(max_epochs=2, seed=0), None),
    }


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_cpu_training_reproduces_figures_recorded_before_the_change(synthetic, name):
    arch, kw, dc, split = _recorded_cases(synthetic)[name]
    r = run_distillation(synthetic, _small(synthetic, arch, **kw), DistillConfig(**dc), train_split=split)
    losses, scores = RECORDED[name]
    assert [h.train_loss for h in r.train.history] == pytest.approx(losses, rel=1e-6)
    assert [h.score for h in r.train.history] == scores


def _old_train_loop(model, split, cfg):
    """The training loop as it was before device-resident batches (CPU), without evaluation: weights and per-epoch mean losses."""
    optimizer = make_optimizer(model, cfg)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    losses = []
    for _ in range(cfg.max_epochs):
        model.train()
        total, seen = 0.0, 0
        for batch in iter_batches(split, cfg.batch_size, rng):
            loss = distill_loss(model(*batch.inputs), batch.labels, batch.teacher_logits, cfg.alpha, cfg.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            total += loss.item() * len(batch.labels)
            seen += len(batch.labels)
        losses.append(total / seen)
    return losses


@pytest.mark.parametrize("arch", ["bilstm", "rnn", "ffn"])
def test_cpu_training_is_bit_identical_to_the_old_loop(synthetic, arch, monkeypatch):
    scores = itertools.count()  # every epoch better than the last: train() keeps the final weights
    monkeypatch.setattr(distill_mod, "evaluate", lambda *a, **k: {"accuracy": 0.5, "score": next(scores)})
    monkeypatch.setattr(distill_mod, "evaluate_detailed", lambda *a, **k: ({}, {}))
    cfg = DistillConfig(max_epochs=2, seed=7, grad_clip=0.5).resolved(arch, False)
    seed_everything(0)
    old = build_student(_small(synthetic, arch))
    new = build_student(_small(synthetic, arch))
    new.load_state_dict(old.state_dict())
    old_losses = _old_train_loop(old, synthetic.train, cfg)
    result = train(new, synthetic.train, synthetic.evals, synthetic.task, cfg)
    assert [h.train_loss for h in result.history] == old_losses  # exact
    for k, v in old.state_dict().items():
        assert torch.equal(v, new.state_dict()[k]), k


def test_to_device_is_the_identity_on_cpu_and_for_a_split_already_there(synthetic):
    assert to_device(synthetic.train, "cpu") is synthetic.train
    on_cpu = DeviceSplit(synthetic.train, "cpu")
    assert to_device(on_cpu, "cpu") is on_cpu  # a split already on the device is not uploaded again


# ---------------------------------------------------------------- device batches


def test_bucket_length_pads_to_few_shapes():
    assert [bucket_length(t) for t in (1, 5, 8, 9, 16, 17, 64, 65, 96, 97, 256, 257)] == [
        1,
        5,
        8,
        16,
        16,
        24,
        64,
        96,
        96,
        128,
        256,
        384,
    ]
    assert len({bucket_length(t) for t in range(1, 1001)}) < 40
    assert all(bucket_length(t) >= t for t in range(1, 1001))


@pytest.mark.parametrize("which", ["single", "pair"])
def test_device_batches_hold_the_same_rows_ids_and_lengths(synthetic, pair, which):
    split = synthetic.train if which == "single" else pair.train
    split = split.take(np.arange(len(split)))
    split.teacher_logits = np.random.default_rng(0).normal(size=(len(split), 2)).astype(np.float32)
    dev = DeviceSplit(split, "cpu")
    host = list(iter_batches(split, 32, np.random.default_rng(3)))
    device = list(iter_batches(dev, 32, np.random.default_rng(3)))  # the same draws from the rng
    assert len(host) == len(device)
    for h, d in zip(host, device, strict=True):
        assert sorted(h.index) == sorted(d.index)  # same rows, possibly reordered
        np.testing.assert_array_equal(d.rows.numpy(), d.index)
        ref = make_batch(split, d.index)  # the numpy batch of the device batch's row order
        for i in range(0, len(ref.inputs), 2):
            ids, lens = d.inputs[i], d.inputs[i + 1]
            T = ref.inputs[i].shape[1]
            assert ids.shape[1] == bucket_length(T)
            torch.testing.assert_close(ids[:, :T], ref.inputs[i], rtol=0, atol=0)
            assert not ids[:, T:].any()  # padding is 0
            torch.testing.assert_close(lens, ref.inputs[i + 1], rtol=0, atol=0)
            assert lens.device.type == "cpu"  # lengths stay on the host for packing
        assert (np.diff(d.inputs[1].numpy()) <= 0).all()  # decreasing length of the first field
        torch.testing.assert_close(d.labels, ref.labels, rtol=0, atol=0)
        torch.testing.assert_close(d.teacher_logits, ref.teacher_logits, rtol=0, atol=0)
    assert len(dev) == len(split) and dev.labels is split.labels


def test_device_split_of_an_empty_split(synthetic):
    empty = synthetic.train.take(np.arange(0))
    assert list(iter_batches(DeviceSplit(empty, "cpu"), 8)) == []


@pytest.mark.parametrize("cell", [nn.LSTM, nn.RNN])
def test_pack_without_sync_equals_pack_padded_sequence(cell):
    torch.manual_seed(0)
    rnn = cell(4, 3, batch_first=True, bidirectional=True)
    x = torch.randn(5, 6, 4)
    for lengths in ([3, 6, 1, 6, 2], [6, 6, 3, 2, 1], [4]):
        xs, lens = x[: len(lengths)], torch.tensor(lengths)
        ref_out, ref_h = rnn(pack_padded_sequence(xs, lens, batch_first=True, enforce_sorted=False))
        out, h = rnn(_pack_without_sync(xs, lens))
        ref_h, h = (ref_h[0], h[0]) if isinstance(h, tuple) else (ref_h, h)
        torch.testing.assert_close(h, ref_h)  # batch order restored the same way


# ---------------------------------------------------------------- the accelerator loop, run on the CPU


@pytest.fixture
def resident(monkeypatch):
    monkeypatch.setattr(distill_mod, "_device_resident", lambda device: True)


@pytest.mark.parametrize("arch", ["bilstm", "ffn"])
def test_resident_training_matches_the_host_loop(synthetic, arch, monkeypatch):
    def run():
        seed_everything(0)
        model = build_student(_small(synthetic, arch, dropout=0.0))  # dropout masks would follow the row order
        cfg = DistillConfig(max_epochs=2, seed=1, optimizer="adam", lr=1e-2).resolved(arch, False)
        r = train(model, synthetic.train, synthetic.evals, synthetic.task, cfg)
        return r, model

    host, host_model = run()
    monkeypatch.setattr(distill_mod, "_device_resident", lambda device: True)
    dev, dev_model = run()
    # same batches in the same order; only the row order inside a batch (so float rounding) differs
    assert [h.train_loss for h in dev.history] == pytest.approx([h.train_loss for h in host.history], rel=1e-4)
    for k, v in host_model.state_dict().items():
        torch.testing.assert_close(dev_model.state_dict()[k], v, rtol=1e-3, atol=1e-4)
    assert set(dev.metrics) == set(host.metrics) and math.isfinite(dev.metrics["score"])


def test_predict_and_evaluate_on_a_device_split(synthetic):
    seed_everything(0)
    model = build_student(_small(synthetic, "bilstm", pooling="max"))
    val = synthetic.evals["validation"]
    host = predict_logits(model, val, 64)
    dev = predict_logits(model, DeviceSplit(val, "cpu"), 64)
    np.testing.assert_allclose(dev, host, rtol=1e-5, atol=1e-6)
    assert evaluate(model, {"validation": DeviceSplit(val, "cpu")}, synthetic.task) == pytest.approx(
        evaluate(model, {"validation": val}, synthetic.task)
    )


def test_resident_training_stops_on_a_non_finite_loss(synthetic, resident):
    bad = synthetic.train.take(np.arange(100))
    bad.teacher_logits = np.full((100, 2), np.nan, dtype=np.float32)
    model = build_student(_small(synthetic, "ffn"))
    with pytest.raises(TrainingError, match="non-finite loss"):
        train(model, bad, synthetic.evals, synthetic.task, DistillConfig(alpha=0.0).resolved("ffn", False))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_runs_and_scores(synthetic):
    seed_everything(0)
    model = build_student(_small(synthetic, "bilstm"))
    cfg = DistillConfig(max_epochs=2, device="cuda", optimizer="adam", lr=1e-2).resolved("bilstm", False)
    r = train(model, synthetic.train, synthetic.evals, synthetic.task, cfg)
    assert len(r.history) == 2 and all(math.isfinite(h.train_loss) for h in r.history)
    assert next(model.parameters()).device.type == "cuda"
