"""Quantization: quantized EmbeddingBag with per-sample weights, the quantizable Elman RNN, switches, errors."""

from __future__ import annotations

import pytest
import torch
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from featherweight_core.compression.prune_config import PruneConfig
from featherweight_core.compression.pruner import Pruner
from featherweight_core.compression.quantize import (
    CodedEmbedding,
    ElmanRNN,
    HalfEmbedding,
    QuantConfig,
    QuantizationError,
    QuantizedHashEmbedding,
    is_quantized,
    quantize_student,
    quantized_groups,
)
from featherweight_core.students.models import HashEmbedding, RecurrentEncoder, StudentConfig, build_student

from .test_prune import inputs, random_split, tiny


def test_quantized_embedding_bag_supports_per_sample_weights_in_sum_mode():
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(40, 6, mode="sum")
    from featherweight_core.compression.quantize import _quantize_embedding_table

    q = _quantize_embedding_table(bag)
    assert isinstance(q, nnq.EmbeddingBag)
    idx = torch.randint(0, 40, (10, 3))
    w = torch.randn(10, 3)
    got = q(idx, per_sample_weights=w)
    # exactly the float bag over the dequantized table ...
    deq = q.weight().dequantize()
    want = F.embedding_bag(idx, deq, mode="sum", per_sample_weights=w)
    assert torch.allclose(got, want, atol=1e-5)
    # ... and close to the float bag (per-row uint8 error <= half a step per row, times |w|)
    step = (bag.weight.max(1).values - bag.weight.min(1).values) / 255
    bound = (w.abs()[..., None] * step[idx][..., None].expand(-1, -1, 6) / 2).sum(1) + 1e-5
    assert ((got - bag(idx, per_sample_weights=w)).abs() <= bound).all()


def test_quantized_hash_embedding_matches_float_closely():
    torch.manual_seed(0)
    emb = HashEmbedding(50, 5, 8)
    q = QuantizedHashEmbedding.from_float(emb)
    assert isinstance(q.importance, HalfEmbedding) and q.importance.weight.dtype == torch.float16
    assert q.buckets.weight().dtype == torch.quint8
    assert q.buckets.weight().qscheme() == torch.per_channel_affine_float_qparams
    ids, _ = inputs("hash")
    ids[0, -2:] = 0  # padding tokens
    out, ref = q(ids), emb(ids)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=0.05)
    assert torch.equal(out[0, -2:], torch.zeros_like(out[0, -2:]))


def _packed(x, lengths):
    return pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)


def test_elman_rnn_float_twin_equals_nn_rnn_on_packed_sequences():
    torch.manual_seed(0)
    rnn = nn.RNN(5, 4, batch_first=True, bidirectional=True)
    twin = ElmanRNN.from_rnn(rnn)
    x = torch.randn(4, 7, 5)
    lengths = torch.tensor([7, 2, 5, 1])
    out_r, h_r = rnn(_packed(x, lengths))
    out_t, h_t = twin(_packed(x, lengths))
    pad_r, _ = pad_packed_sequence(out_r, batch_first=True)
    pad_t, _ = pad_packed_sequence(out_t, batch_first=True)
    assert torch.allclose(pad_r, pad_t, atol=1e-6)
    assert torch.allclose(h_r, h_t, atol=1e-6)
    # unpacked input too
    assert torch.allclose(rnn(x)[0], twin(x)[0], atol=1e-6)


@pytest.mark.parametrize("pooling", ["last", "max"])
def test_elman_rnn_inside_recurrent_encoder_matches(pooling):
    torch.manual_seed(0)
    enc = RecurrentEncoder("rnn", 5, 4, pooling)
    x = torch.randn(4, 6, 5)
    lengths = torch.tensor([6, 1, 3, 4])
    ref = enc(x, lengths)
    enc.rnn = ElmanRNN.from_rnn(enc.rnn)
    assert torch.allclose(enc(x, lengths), ref, atol=1e-6)


def test_rnn_student_is_really_quantized():
    model, _ = tiny("rnn", "bpe")
    ids, lens = inputs()
    q = quantize_student(model, QuantConfig(), "rnn")
    assert not any(isinstance(m, nn.RNN | nn.Linear) and not isinstance(m, nnqd.Linear) for m in q.modules())
    dyn = [m for m in q.encoder.modules() if isinstance(m, nnqd.Linear)]
    assert len(dyn) == 4  # ih and hh of both directions
    assert all(m.weight().dtype == torch.qint8 for m in dyn)
    assert isinstance(q.encoder.rnn, ElmanRNN)
    assert torch.allclose(q(ids, lens), model(ids, lens), atol=0.05)
    assert isinstance(model.encoder.rnn, nn.RNN)  # the float input is left untouched


def test_bilstm_student_groups_and_switches():
    model, _ = tiny("bilstm", "char")
    ids, lens = inputs("char")
    q = quantize_student(model, QuantConfig(), "bilstm")
    assert isinstance(q.encoder.rnn, nnqd.LSTM)
    assert isinstance(q.embedding, nnq.Embedding) and q.embedding.weight().dtype == torch.quint8
    assert quantized_groups(q) == {"embedding": True, "encoder": True, "classifier": True}
    assert torch.allclose(q(ids, lens), model(ids, lens), atol=0.05)
    only_enc = quantize_student(model, QuantConfig(embedding=False, classifier=False), "bilstm")
    assert quantized_groups(only_enc) == {"embedding": False, "encoder": True, "classifier": False}
    assert isinstance(only_enc.embedding, nn.Embedding)


def test_static_classifier_calibrates_on_training_data():
    model, _ = tiny("ffn", "bpe")
    split = random_split()
    with pytest.raises(QuantizationError, match="calibration"):
        quantize_student(model, QuantConfig(static_classifier=True), "ffn")
    q = quantize_student(model, QuantConfig(static_classifier=True, calibration_batches=3), "ffn", split)
    kinds = {type(m).__name__ for m in q.classifier.modules()}
    assert "LinearReLU" in kinds and "Quantize" in kinds
    ids, lens = inputs()
    assert torch.allclose(q(ids, lens), model(ids, lens), atol=0.1)


def test_quantizing_twice_or_with_masks_is_refused():
    model, _ = tiny("bilstm", "hash")
    q = quantize_student(model, QuantConfig(), "bilstm")
    assert is_quantized(q)
    with pytest.raises(QuantizationError, match="already quantized") as e:
        quantize_student(q, QuantConfig(), "bilstm")
    assert "\n" not in str(e.value)
    Pruner(model, PruneConfig(), "bilstm", "hash")
    with pytest.raises(QuantizationError, match="make_permanent"):
        quantize_student(model, QuantConfig(), "bilstm")


def test_quant_config_validation_and_describe():
    with pytest.raises(ValueError, match="static_classifier=True needs classifier=True"):
        QuantConfig(classifier=False, static_classifier=True)
    with pytest.raises(ValueError, match="calibration_batches must be a positive int"):
        QuantConfig(calibration_batches=0)
    with pytest.raises(ValueError, match="embedding must be a bool"):
        QuantConfig(embedding="yes")
    assert QuantConfig().describe("bilstm", "bpe") == "int8-dyn(enc,cls)+emb-u8"
    assert QuantConfig().describe("ffn", "hash") == "int8-dyn(cls)+emb-u8/f16"
    assert QuantConfig(embedding=False, encoder=False, classifier=False).describe() == "none"
    assert QuantConfig.from_dict(QuantConfig(static_classifier=True).to_dict()).static_classifier
    assert QuantConfig(importance_bits=6).describe("ffn", "hash") == "int8-dyn(cls)+emb-u8/u6"
    assert QuantConfig(importance_bits=6).describe("bilstm", "bpe") == "int8-dyn(enc,cls)+emb-u8"
    assert QuantConfig.from_dict(QuantConfig(importance_bits=3).to_dict()).importance_bits == 3
    old = QuantConfig().to_dict()
    del old["importance_bits"]  # a config saved before the option existed
    assert QuantConfig.from_dict(old).importance_bits == 16


@pytest.mark.parametrize("bits", [0, 1, 9, 12, 32, 8.0, True, "8", None])
def test_quant_config_rejects_bad_importance_bits(bits):
    with pytest.raises(ValueError) as e:
        QuantConfig(importance_bits=bits)
    msg = str(e.value)
    assert f"importance_bits must be an int in 2..8 (uniform codes) or 16 (float16), got {bits!r}" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("bits", range(2, 9))
def test_coded_embedding_round_trips_within_half_a_step(bits):
    torch.manual_seed(bits)
    emb = nn.Embedding(500, 1)
    with torch.no_grad():
        emb.weight[:20] = 0.0  # pruned scalars must stay exactly 0
    c = CodedEmbedding.from_float(emb, bits)
    w = emb.weight.detach()
    lo, hi = w.min().item(), w.max().item()
    assert c.bits == bits and c.codes.dtype == torch.uint8 and c.codes.shape == (500, 1)
    assert int(c.codes.max()) <= 2**bits - 1
    assert c.scale.item() == pytest.approx((hi - lo) / (2**bits - 1))
    deq = c.dequantize()
    assert deq.dtype == torch.float32
    assert ((deq - w).abs() <= c.scale / 2 + 1e-6).all()
    assert torch.equal(deq[:20], torch.zeros(20, 1))
    assert len(torch.unique(c.codes)) <= 2**bits
    ids = torch.randint(0, 500, (4, 7))
    out = c(ids)
    assert out.shape == (4, 7, 1) and out.dtype == torch.float32
    assert torch.equal(out, deq[ids])


def test_coded_embedding_ranges_without_zero_and_constant_tables():
    emb = nn.Embedding(40, 2)
    with torch.no_grad():
        emb.weight.copy_(torch.linspace(0.5, 2.0, 80).view(40, 2))  # all positive: offset = min, no nudge
    c = CodedEmbedding.from_float(emb, 4)
    assert c.offset.item() == pytest.approx(0.5) and c.scale.item() == pytest.approx(1.5 / 15)
    assert ((c.dequantize() - emb.weight.detach()).abs() <= c.scale / 2 + 1e-6).all()
    assert c.dequantize().min().item() == pytest.approx(0.5) and c.dequantize().max().item() == pytest.approx(2.0)
    with torch.no_grad():
        emb.weight.fill_(-0.25)
    assert torch.equal(CodedEmbedding.from_float(emb, 2).dequantize(), emb.weight.detach())
    with pytest.raises(ValueError, match="bits must be an int in 2..8, got 16"):
        CodedEmbedding(4, 1, 16)


@pytest.mark.parametrize("arch", ["ffn", "bilstm"])
def test_hash_student_with_coded_importance(arch):
    model, _ = tiny(arch, "hash")
    ids, lens = inputs("hash")
    ref = model(ids, lens)
    half = quantize_student(model, QuantConfig(), arch)
    assert isinstance(half.embedding.importance, HalfEmbedding)
    for bits, atol in ((8, 0.05), (4, 0.5)):
        q = quantize_student(model, QuantConfig(importance_bits=bits), arch)
        imp = q.embedding.importance
        assert isinstance(imp, CodedEmbedding) and imp.bits == bits and q.embedding.importance_bits == bits
        assert is_quantized(q) and quantized_groups(q)["embedding"]
        assert torch.allclose(q(ids, lens), ref, atol=atol)
    q8 = quantize_student(model, QuantConfig(importance_bits=8), arch)
    assert torch.allclose(q8(ids, lens), half(ids, lens), atol=0.05)
    assert torch.equal(q8(ids, lens).argmax(-1), ref.argmax(-1))


def test_importance_bits_is_ignored_for_non_hash_students():
    for arch, emb in (("bilstm", "char"), ("ffn", "bpe")):
        model, _ = tiny(arch, emb)
        ids, lens = inputs(emb)
        a = quantize_student(model, QuantConfig(), arch)
        b = quantize_student(model, QuantConfig(importance_bits=3), arch)
        assert not any(isinstance(m, CodedEmbedding) for m in b.modules())
        assert a.state_dict().keys() == b.state_dict().keys()
        assert torch.equal(a(ids, lens), b(ids, lens))


def test_pair_student_quantizes():
    torch.manual_seed(0)
    cfg = StudentConfig("rnn", "hash", 8, 3, pair=True, vocab_size=60, hidden=4, classifier_hidden=5)
    model = build_student(cfg).eval()
    a, la = inputs("hash", seed=1)
    b, lb = inputs("hash", seed=2)
    q = quantize_student(model, QuantConfig(), "rnn")
    assert torch.allclose(q(a, la, b, lb), model(a, la, b, lb), atol=0.05)
