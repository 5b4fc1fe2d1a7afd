"""``Prepared.share_bootstrap``: bootstrapping trials train on one train+bootstrap split built once, and a pickled
Prepared (what goes into Ray's object store) carries the bootstrap rows once, coming back as views of that split."""

from __future__ import annotations

import pickle

import numpy as np

from featherweight_core.data.batching import EncodedSplit, Keys
from featherweight_core.data.encoders import Ragged
from featherweight_core.data.tasks import get_task
from featherweight_core.pipeline.prepare import Prepared


def _split(n: int, start: int, prefix: str) -> EncodedSplit:
    seqs = [np.arange(start + i, start + i + 1 + i % 3, dtype=np.int32) for i in range(n)]
    logits = np.arange(2 * n, dtype=np.float32).reshape(n, 2) + start
    return EncodedSplit((Ragged.from_sequences(seqs),), np.arange(n) % 2, [f"{prefix}{i}" for i in range(n)], logits)


def _prepared() -> Prepared:
    return Prepared(
        task=get_task("synthetic"),
        embedding="hash",
        vocab_size=100,
        emb_dim=4,
        num_embeddings=100,
        vectors=None,
        train=_split(5, 0, "t"),
        evals={"dev": _split(3, 50, "d")},
        data_fingerprint="x",
        encoder_fingerprint="y",
        bootstrap=_split(7, 100, "b"),
    )


def _same(a: EncodedSplit, b: EncodedSplit) -> None:
    assert a.keys == b.keys
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.teacher_logits, b.teacher_logits)
    for fa, fb in zip(a.fields, b.fields, strict=True):
        np.testing.assert_array_equal(fa.ids, fb.ids)
        np.testing.assert_array_equal(fa.offsets, fb.offsets)


def test_share_bootstrap_is_the_concatenation_built_once():
    p = _prepared()
    expected = p.train.concat(p.bootstrap)
    assert p.share_bootstrap() is p
    combined = p.train_split(True)
    _same(combined, expected)
    assert p.train_split(True) is combined  # no concatenation per call
    assert p.train_split(False) is p.train


def test_pickled_once_and_bootstrap_comes_back_as_views():
    plain, shared = _prepared(), _prepared().share_bootstrap()
    bufs: list = []
    size_plain = len(pickle.dumps(plain, protocol=5, buffer_callback=bufs.append))
    shared_bufs: list = []
    blob = pickle.dumps(shared, protocol=5, buffer_callback=shared_bufs.append)
    back = pickle.loads(blob, buffers=shared_bufs)
    _same(back.bootstrap, plain.bootstrap)
    _same(back.train_split(True), plain.train.concat(plain.bootstrap))
    # the bootstrap arrays are views into the combined split, not copies of their own
    assert np.shares_memory(back.bootstrap.labels, back.train_bootstrap.labels)
    assert np.shares_memory(back.bootstrap.fields[0].ids, back.train_bootstrap.fields[0].ids)
    assert back.summary() == shared.summary()
    assert size_plain > 0


def test_keys_travel_as_one_array_and_read_as_str():
    split = _split(4, 0, "k-é")
    bufs: list = []
    back = pickle.loads(pickle.dumps(split, protocol=5, buffer_callback=bufs.append), buffers=bufs)
    assert isinstance(back.keys, Keys) and len(bufs) >= 4  # ids, offsets, labels, logits and the keys out of band
    assert back.keys == split.keys and list(back.keys) == split.keys and back.keys[1] == "k-é1"
    assert back.keys[2:] == split.keys[2:] and isinstance(back.keys[2:], Keys)
    assert back.take(np.array([3, 0])).keys == ["k-é3", "k-é0"]
    assert back.concat(back).keys == split.keys + split.keys


def test_keys_that_bytes_arrays_cannot_hold_stay_a_list():
    split = _split(2, 0, "x")
    split.keys = ["a\0", "b\ud800"]
    bufs: list = []
    back = pickle.loads(pickle.dumps(split, protocol=5, buffer_callback=bufs.append), buffers=bufs)
    assert back.keys == ["a\0", "b\ud800"]
    split.keys = ["a", "b\ud800"]  # a lone surrogate survives the bytes array
    bufs = []
    back = pickle.loads(pickle.dumps(split, protocol=5, buffer_callback=bufs.append), buffers=bufs)
    assert isinstance(back.keys, Keys) and list(back.keys) == ["a", "b\ud800"]
