"""Students: output shapes for every arch x embedding x pooling, parameter counts against thesis table 7.1,
the padded fast path against the packed reference, and config validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from featherweight_core.data.encoders import CHAR_ALPHABET, Ragged
from featherweight_core.students.measure import param_counts
from featherweight_core.students.models import (
    ARCHS,
    POOLINGS,
    RecurrentEncoder,
    StudentConfig,
    build_student,
    default_num_embeddings,
)

# one thread: on a shared, loaded 2-core machine two OpenMP threads make small models ~40x slower
torch.set_num_threads(1)

EMBEDDINGS = ("bpe", "char", "hash")


def _ids(embedding: str, lengths: list[int], vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random right-padded ids (B, T) or (B, T, 3) with 0 after each length."""
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    hi = {"bpe": vocab + 1, "char": len(CHAR_ALPHABET) + 2, "hash": vocab * (vocab // 10)}[embedding]
    shape = (B, T, 3) if embedding == "hash" else (B, T)
    ids = torch.randint(1, hi, shape, generator=g)
    lens = torch.tensor(lengths)
    mask = torch.arange(T)[None, :] < lens[:, None]
    ids = ids * (mask[..., None] if embedding == "hash" else mask)
    return ids, lens


@pytest.mark.parametrize(("arch", "embedding", "pooling"), list(itertools.product(ARCHS, EMBEDDINGS, POOLINGS)))
@pytest.mark.parametrize("pair", [False, True])
def test_output_shapes(arch, embedding, pooling, pair):
    num_labels = 3 if pair else 2
    cfg = StudentConfig(
        arch, embedding, 8, num_labels, pair=pair, vocab_size=50, hidden=6, classifier_hidden=5, pooling=pooling
    )
    model = build_student(cfg).eval()
    assert [name for name, _ in model.named_children()] == ["embedding", "encoder", "classifier"]
    a, la = _ids(embedding, [4, 1, 7], 50, seed=1)
    args = (a, la)
    if pair:
        b, lb = _ids(embedding, [2, 5, 3], 50, seed=2)
        args += (b, lb)
    out = model(*args)
    assert out.shape == (3, num_labels)
    assert torch.isfinite(out).all()


def test_pair_student_needs_second_text():
    model = build_student(StudentConfig("ffn", "char", 4, 2, pair=True))
    ids, lens = _ids("char", [3, 2], 0)
    with pytest.raises(ValueError, match="ids_b"):
        model(ids, lens)


# Expected counts by hand (thesis table 6.1 sizes; PyTorch LSTM/RNN layers carry two bias vectors per gate block).
def _lstm(inp: int, h: int) -> int:
    return 2 * (4 * h * inp + 4 * h * h + 2 * 4 * h)  # two directions


def _rnn(inp: int, h: int) -> int:
    return 2 * (h * inp + h * h + 2 * h)


def _mlp(inp: int, hid: int, out: int) -> int:
    return inp * hid + hid + hid * out + out


def _hash(K: int, dim: int) -> int:
    return 3 * K + (K // 10) * dim  # importance scalars per hash + bucket vectors


@pytest.mark.parametrize(
    ("arch", "embedding", "dim", "vocab", "expected", "thesis"),
    [
        # SST-2 rows of thesis table 7.1 (P column)
        ("bilstm", "bpe", 25, 5000, 5001 * 25 + _lstm(25, 150) + _mlp(300, 200, 2), 4.0e5),
        ("bilstm", "hash", 25, 5000, _hash(5000, 25) + _lstm(25, 150) + _mlp(300, 200, 2), 3.0e5),
        ("bilstm", "hash", 100, 5000, _hash(5000, 100) + _lstm(100, 150) + _mlp(300, 200, 2), 4.3e5),
        ("bilstm", "bpe", 100, 5000, 5001 * 100 + _lstm(100, 150) + _mlp(300, 200, 2), 8.6e5),
        ("bilstm", "char", 100, None, 35 * 100 + _lstm(100, 150) + _mlp(300, 200, 2), 3.7e5),
        ("rnn", "bpe", 25, 5000, 5001 * 25 + _rnn(25, 100) + _mlp(200, 100, 2), 1.7e5),
        ("rnn", "hash", 25, 5000, _hash(5000, 25) + _rnn(25, 100) + _mlp(200, 100, 2), 7.3e4),
        ("rnn", "char", 100, None, 35 * 100 + _rnn(100, 100) + _mlp(200, 100, 2), 6.4e4),
        ("ffn", "bpe", 25, 5000, 5001 * 25 + _mlp(25, 100, 2), 1.3e5),
        ("ffn", "hash", 25, 2500, _hash(2500, 25) + _mlp(25, 100, 2), 1.7e4),
        ("ffn", "char", 100, None, 35 * 100 + _mlp(100, 100, 2), 1.4e4),
    ],
)
def test_param_counts_match_thesis(arch, embedding, dim, vocab, expected, thesis):
    cfg = StudentConfig(arch, embedding, dim, 2, vocab_size=vocab)
    model = build_student(cfg)
    counts = param_counts(model)
    assert counts["total"] == expected
    assert counts["total"] == counts["embedding"] + counts["encoder"] + counts["classifier"]
    assert counts["nonzero"] <= counts["total"]
    # the thesis reports two significant digits
    assert float(f"{expected:.1e}") == pytest.approx(thesis)


def test_exact_counts_spelled_out():
    """The arithmetic behind the table, for the two configurations the README quotes."""
    bilstm = build_student(StudentConfig("bilstm", "bpe", 25, 2, vocab_size=5000))  # padding row is zero
    assert param_counts(bilstm) == {
        "total": 398_027,
        "embedding": 125_025,
        "encoder": 212_400,
        "classifier": 60_602,
        "nonzero": 398_002,
    }
    ffn = build_student(StudentConfig("ffn", "hash", 25, 2, vocab_size=2500))
    counts = param_counts(ffn)
    assert counts["total"] == 16_552 and counts["embedding"] == 13_750  # 83 % embeddings (thesis fig. 7.1)


def test_pair_sizes_double():
    cfg = StudentConfig("bilstm", "bpe", 25, 3, pair=True, vocab_size=5000).resolved()
    assert (cfg.hidden, cfg.classifier_hidden) == (300, 400)
    counts = param_counts(build_student(cfg))
    assert counts["encoder"] == _lstm(25, 300)
    assert counts["classifier"] == _mlp(4 * 600, 400, 3)  # [u; v; |u-v|; u*v]


def test_pretrained_vectors_copied_and_pad_row():
    cfg = StudentConfig("ffn", "bpe", 4, 2, vocab_size=9)
    vecs = np.arange(10 * 4, dtype=np.float32).reshape(10, 4)
    vecs[0] = 0
    model = build_student(cfg, num_embeddings=10, vectors=vecs)
    assert torch.equal(model.embedding.weight.detach(), torch.from_numpy(vecs))
    assert model.embedding.padding_idx == 0
    with pytest.raises(ValueError, match="shape"):
        build_student(cfg, num_embeddings=10, vectors=vecs[:5])


def test_default_num_embeddings():
    assert default_num_embeddings(StudentConfig("ffn", "bpe", 4, 2, vocab_size=1000)) == 1001
    assert default_num_embeddings(StudentConfig("ffn", "char", 4, 2)) == 35
    assert default_num_embeddings(StudentConfig("ffn", "hash", 4, 2, vocab_size=700)) == 700


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_padded_fast_path_equals_packed(cell, pooling):
    torch.manual_seed(0)
    enc = RecurrentEncoder(cell, 7, 5, pooling)
    assert enc._fast_path_ok()
    x = torch.randn(6, 9, 7, requires_grad=True)
    lengths = torch.tensor([9, 1, 4, 9, 2, 6])
    fast = enc._forward_padded(x, lengths)
    slow = enc._forward_packed(x, lengths)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    params = [x, *enc.parameters()]
    for g_fast, g_slow in zip(
        torch.autograd.grad(fast.sum(), params), torch.autograd.grad(slow.sum(), params), strict=True
    ):
        torch.testing.assert_close(g_fast, g_slow, atol=1e-5, rtol=1e-4)
    # padding content must not matter
    x2 = x.detach().clone()
    x2[1, 1:] = 100.0
    torch.testing.assert_close(enc(x2, lengths)[1], enc(x.detach(), lengths)[1])


def test_hooked_rnn_takes_packed_path():
    enc = RecurrentEncoder("lstm", 3, 2)
    handle = enc.rnn.register_forward_pre_hook(lambda m, a: None)
    assert not enc._fast_path_ok()
    out = enc(torch.randn(2, 4, 3), torch.tensor([4, 2]))
    assert out.shape == (2, 4)
    handle.remove()
    assert enc._fast_path_ok()


def test_hash_embedding_pad_is_zero_and_shape():
    model = build_student(StudentConfig("ffn", "hash", 6, 2, vocab_size=40))
    ids = torch.zeros(2, 3, 3, dtype=torch.long)
    ids[0, 0] = torch.tensor([1, 17, 160])
    out = model.embedding(ids)
    assert out.shape == (2, 3, 6)
    assert torch.all(out[0, 1:] == 0) and torch.all(out[1] == 0)
    assert out[0, 0].abs().sum() > 0


def test_ffn_mean_ignores_padding():
    model = build_student(StudentConfig("ffn", "char", 4, 2)).eval()
    ids = torch.tensor([[3, 4, 0, 0]])
    feats = model.encoder(model.embedding(ids), torch.tensor([2]))
    torch.testing.assert_close(feats[0], model.embedding.weight[[3, 4]].mean(0))


def test_ragged_batch_through_student():
    r = Ragged.from_sequences([np.array([1, 2, 3]), np.array([4]), np.array([5, 6])])
    ids, lens = r.padded(np.array([0, 1, 2]))
    model = build_student(StudentConfig("bilstm", "bpe", 4, 2, vocab_size=10, hidden=3, classifier_hidden=3)).eval()
    out = model(torch.from_numpy(ids), torch.from_numpy(lens))
    assert out.shape == (3, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arch": "gru"}, "arch"),
        ({"embedding": "glove"}, "embedding"),
        ({"pooling": "mean"}, "pooling"),
        ({"emb_dim": 0}, "emb_dim"),
        ({"num_labels": 1}, "num_labels"),
        ({"dropout": 1.5}, "dropout"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"hidden": 0}, "hidden must be a positive int, got 0"),
        ({"classifier_hidden": -3}, "classifier_hidden must be a positive int, got -3"),
        ({"embedding": "hash", "hash_buckets": 0}, "hash_buckets"),
    ],
)
def test_config_validation(kwargs, match):
    base = dict(arch="bilstm", embedding="bpe", emb_dim=25, num_labels=2)
    with pytest.raises(ValueError, match=match):
        StudentConfig(**{**base, **kwargs})


def test_ffn_ignores_hidden():
    cfg = StudentConfig("ffn", "char", 8, 2, hidden=0).resolved()
    assert cfg.hidden == 0
    assert StudentConfig.from_dict(cfg.to_dict()) == cfg
    assert StudentConfig("bilstm", "bpe", 8, 2, hidden=np.int64(7)).resolved().hidden == 7  # numpy ints from sweeps


def test_config_roundtrip_and_unknown_keys():
    cfg = StudentConfig("rnn", "hash", 25, 2, vocab_size=2500).resolved()
    assert cfg.hash_buckets == 250 and cfg.hidden == 100 and cfg.dropout == 0.1
    assert StudentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown StudentConfig keys"):
        StudentConfig.from_dict({**cfg.to_dict(), "layers": 2})


def test_student_modules_are_plain_torch():
    model = build_student(StudentConfig("bilstm", "bpe", 4, 2, vocab_size=10))
    assert isinstance(model.encoder.rnn, nn.LSTM) and model.encoder.rnn.bidirectional
    assert isinstance(build_student(StudentConfig("rnn", "bpe", 4, 2, vocab_size=10)).encoder.rnn, nn.RNN)
