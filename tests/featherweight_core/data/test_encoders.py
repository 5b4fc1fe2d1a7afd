"""Encoders: hash determinism across processes, the char alphabet, BPEmb from local files, Ragged storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featherweight_core.data.encoders import (
    CHAR_ALPHABET,
    CharEncoder,
    EncoderError,
    HashEncoder,
    Ragged,
    bpemb_files,
    build_encoder,
    md5_int,
)

TEXTS = ["The movie was not very good .", "Ça, c'est très-bien!", "", "   ", "naïve café über 42"]


# ---------------------------------------------------------------- hash


def _hash_ids_in_subprocess(seed: str) -> list:
    code = (
        "import json, sys\n"
        "from featherweight_core.data.encoders import HashEncoder\n"
        "enc = HashEncoder(5000)\n"
        "print(json.dumps([enc.encode(t).tolist() for t in json.loads(sys.argv[1])]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(TEXTS)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_hash_ids_are_deterministic_across_processes():
    here = [HashEncoder(5000).encode(t).tolist() for t in TEXTS]
    assert _hash_ids_in_subprocess("1") == here
    assert _hash_ids_in_subprocess("12345") == here  # Python's str hash randomisation must not matter


def test_hash_ids_known_values():
    """Pinned MD5 values: changing the hash scheme silently would invalidate every cached encoding and checkpoint."""
    assert md5_int("movie0") == int.from_bytes(__import__("hashlib").md5(b"movie0").digest()[:8], "little")
    enc = HashEncoder(vocab_size=5000)
    ids = enc.encode("movie")
    assert ids.shape == (1, 3) and ids.dtype == np.int32
    space = 5000 * 500
    assert ids[0].tolist() == [md5_int(f"movie{i}") % space + 1 for i in range(3)]
    assert enc.fingerprint() == "hash-md5-K5000-B500-h3"


def test_hash_tokens_and_range():
    enc = HashEncoder(vocab_size=100)
    ids = enc.encode("Good, GOOD good!")
    assert ids.shape == (5, 3)  # good , good good !
    assert (ids[0] == ids[2]).all() and (ids[2] == ids[3]).all()  # case-insensitive
    assert ids.min() >= 1 and ids.max() <= 100 * 10
    assert enc.encode("").shape == (1, 3)  # never empty
    assert enc.num_embeddings == 100
    with pytest.raises(EncoderError, match="vocab_size"):
        HashEncoder(0)


# ---------------------------------------------------------------- char


def test_char_alphabet_is_the_thesis_33_symbols():
    assert len(CHAR_ALPHABET) == 33 and len(set(CHAR_ALPHABET)) == 33
    assert set(CHAR_ALPHABET) == set("abcdefghijklmnopqrstuvwxyz ,.;:?!")
    enc = CharEncoder()
    assert enc.num_embeddings == 35  # 33 + padding + unknown
    assert enc.encode(CHAR_ALPHABET).tolist() == list(range(2, 35))


def test_char_accents_case_and_unknowns():
    enc = CharEncoder()
    assert enc.encode("Café").tolist() == enc.encode("cafe").tolist()
    assert enc.encode("ÀÉÎÕÜ ñç").tolist() == enc.encode("aeiou nc").tolist()
    unknown = enc.encode("a1-b")
    assert unknown.tolist() == [2, 1, 1, 3]  # digits and '-' are unknown (1)
    assert enc.encode("").tolist() == [1]  # never empty, never padding
    assert 0 not in enc.encode("any text at all 123").tolist()


# ---------------------------------------------------------------- bpe


@pytest.fixture(scope="module")
def bpe(shared_data):
    return build_encoder("bpe", 1000, 25, shared_data / "bpemb")


def test_bpemb_loads_local_files(bpe, shared_data):
    model_file, emb_file = bpemb_files(shared_data / "bpemb", 1000, 25)
    assert model_file.is_file() and emb_file.is_file()
    assert bpe.num_embeddings == 1001
    assert bpe.fingerprint() == "bpe-en-vs1000-d25"
    ids = bpe.encode("the movie was wonderful")
    assert ids.dtype == np.int32 and ids.min() >= 1 and ids.max() <= 1000
    assert len(bpe.encode("")) == 1  # unknown id, never empty


def test_bpemb_pretrained_vectors(bpe):
    vecs = bpe.pretrained_vectors()
    assert vecs.shape == (1001, 25) and vecs.dtype == np.float32
    assert not vecs[0].any()  # row 0 is padding
    np.testing.assert_array_equal(vecs[1:], bpe.bpemb.vectors[:1000])
    piece_id = int(bpe.encode("the")[0])
    np.testing.assert_allclose(vecs[piece_id], bpe.bpemb.vectors[piece_id - 1])


def test_bpemb_encode_many_matches_encode(bpe):
    ragged = bpe.encode_many(TEXTS)
    assert len(ragged) == len(TEXTS)
    for i, text in enumerate(TEXTS):
        np.testing.assert_array_equal(ragged.ids[ragged.offsets[i] : ragged.offsets[i + 1]], bpe.encode(text))


def test_bpemb_offline_error_names_expected_files(tmp_path):
    (tmp_path / "en").mkdir()
    with pytest.raises(EncoderError) as err:
        build_encoder("bpe", 1000, 25, tmp_path)
    msg = str(err.value)
    model_file, emb_file = bpemb_files(tmp_path, 1000, 25)
    assert str(model_file) in msg and str(emb_file) in msg
    assert "\n" not in msg


def test_bpemb_wrong_dim_files_missing(shared_data):
    with pytest.raises(EncoderError, match=r"en\.wiki\.bpe\.vs1000\.d50\.w2v\.bin"):
        build_encoder("bpe", 1000, 50, shared_data / "bpemb")


def test_unknown_encoder():
    with pytest.raises(EncoderError, match="'glove'"):
        build_encoder("glove")


@pytest.mark.parametrize("kind", ["hash", "bpe"])
def test_zero_vocab_size_is_an_error_not_the_default(kind, tmp_path):
    with pytest.raises(EncoderError, match=f"{kind} vocab_size must be a positive int, got 0"):
        build_encoder(kind, 0, 25, tmp_path)
    assert build_encoder("hash", np.int64(300)).vocab_size == 300
    assert build_encoder("hash").vocab_size == 5000


# ---------------------------------------------------------------- Ragged


def _ragged(width: int = 1) -> tuple[Ragged, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    shape = (lambda n: (n,)) if width == 1 else (lambda n: (n, width))
    seqs = [rng.integers(1, 50, shape(n)).astype(np.int32) for n in (3, 1, 5, 2, 4)]
    return Ragged.from_sequences(seqs, width), seqs


@pytest.mark.parametrize("width", [1, 3])
def test_ragged_take_and_padded(width):
    r, seqs = _ragged(width)
    assert len(r) == 5 and r.lengths.tolist() == [3, 1, 5, 2, 4]
    idx = np.array([4, 0, 0, 2])
    t = r.take(idx)
    assert t.lengths.tolist() == [4, 3, 3, 5]
    for j, i in enumerate(idx):
        np.testing.assert_array_equal(t.ids[t.offsets[j] : t.offsets[j + 1]], seqs[i])
    ids, lens = r.padded(np.array([1, 2, 3]))
    assert ids.dtype == np.int64 and ids.shape == ((3, 5) if width == 1 else (3, 5, width))
    assert lens.tolist() == [1, 5, 2]
    for row, i in enumerate([1, 2, 3]):
        np.testing.assert_array_equal(ids[row, : len(seqs[i])], seqs[i])
        assert not ids[row, len(seqs[i]) :].any()


def test_ragged_empty_and_concat():
    r, seqs = _ragged()
    empty = r.take(np.array([], dtype=np.int64))
    assert len(empty) == 0 and empty.ids.size == 0
    ids, lens = r.padded(np.array([], dtype=np.int64))
    assert ids.shape == (0, 0) and lens.shape == (0,)
    both = r.concat(r.take(np.array([1, 0])))
    assert both.lengths.tolist() == [3, 1, 5, 2, 4, 1, 3]
    np.testing.assert_array_equal(both.ids[-3:], seqs[0])
    assert len(Ragged.from_sequences([], width=3)) == 0


def test_encoders_never_emit_padding():
    for enc in (CharEncoder(), HashEncoder(50)):
        r = enc.encode_many(TEXTS)
        assert (r.lengths >= 1).all() and r.ids.min() >= 1


def test_bpemb_dir_is_a_path_like(tmp_path):
    """A str dir works like a Path (the CLI passes strings)."""
    with pytest.raises(EncoderError, match=str(Path(tmp_path))):
        build_encoder("bpe", 1000, 25, str(tmp_path))
