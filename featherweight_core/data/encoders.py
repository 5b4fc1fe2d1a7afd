"""Text encoders (text -> integer ids) for the three embedding types of thesis 6.1.5, and ragged id storage.

Every encoder reserves id 0 for padding and never returns an empty sequence. Text is encoded once per
(task, encoder, vocab) into a :class:`Ragged` array; training never tokenizes per batch.

* ``bpe``  - BPEmb byte-pair pieces; ids are sentencepiece ids + 1; pre-trained vectors initialise the embedding.
* ``char`` - the thesis' 33-symbol alphabet (a-z, space, ``,.;:?!``), accents stripped, lowercased; 0 pad, 1 unknown.
* ``hash`` - words hashed with three MD5-salted hashes (Svenstrup et al. 2017). Each token is a row of 3 ids, each
  in [1, K*B]: ``id - 1`` encodes both the importance row (``% K``) and the bucket (``// K``), see
  :class:`featherweight_core.students.models.HashEmbedding`.
"""

from __future__ import annotations

import hashlib
import numbers
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featherweight_core import vocab
from featherweight_core.data.loading import hub_reachable
from featherweight_core.errors import UserError

CHAR_ALPHABET = "abcdefghijklmnopqrstuvwxyz ,.;:?!"
assert len(CHAR_ALPHABET) == 33
PAD_ID = 0
_WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class EncoderError(UserError, ValueError):
    """Bad encoder configuration or missing embedding files."""


@dataclass
class Ragged:
    """A batch of variable-length id sequences stored flat.

    ids: (total_tokens,) or (total_tokens, width) int32; offsets: (n + 1,) int64; sequence i is
    ``ids[offsets[i]:offsets[i+1]]``.
    """

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_sequences(cls, seqs: Sequence[np.ndarray], width: int = 1) -> Ragged:
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in seqs], out=offsets[1:])
        shape = (0,) if width == 1 else (0, width)
        ids = np.concatenate(seqs).astype(np.int32) if len(seqs) else np.zeros(shape, np.int32)
        return cls(ids, offsets)

    def take(self, idx: np.ndarray) -> Ragged:
        lens = self.lengths[idx]
        starts = self.offsets[idx]
        total = int(lens.sum())
        src = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        return Ragged(self.ids[src], offsets)

    def concat(self, other: Ragged) -> Ragged:
        return Ragged(
            np.concatenate([self.ids, other.ids]),
            np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]]),
        )

    def padded(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pad sequences ``idx`` with 0: returns ids (B, T) or (B, T, width), and lengths (B,)."""
        lens = self.lengths[idx]
        starts = self.offsets[idx]
        T = int(lens.max()) if len(idx) else 0
        out = np.zeros((len(idx), T, *self.ids.shape[1:]), dtype=np.int64)
        total = int(lens.sum())
        row = np.repeat(np.arange(len(idx)), lens)
        col = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
        out[row, col] = self.ids[np.repeat(starts, lens) + col]
        return out, lens


class Encoder(ABC):
    """Maps text to ids. ``num_embeddings`` counts rows including padding."""

    kind: str
    width: int = 1

    @abstractmethod
    def encode(self, text: str) -> np.ndarray:
        """One text -> (T,) or (T, width) ids, T >= 1."""

    def encode_many(self, texts: Sequence[str]) -> Ragged:
        return Ragged.from_sequences([self.encode(t) for t in texts], self.width)

    @property
    @abstractmethod
    def num_embeddings(self) -> int: ...

    @abstractmethod
    def fingerprint(self) -> str:
        """Identifies the id mapping, for caching encoded data."""

    def pretrained_vectors(self) -> np.ndarray | None:
        """(num_embeddings, dim) initial vectors, or None for random initialisation."""
        return None


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


class CharEncoder(Encoder):
    kind = "char"

    def __init__(self) -> None:
        self._index = {c: i + 2 for i, c in enumerate(CHAR_ALPHABET)}  # 0 pad, 1 unknown

    def encode(self, text: str) -> np.ndarray:
        text = strip_accents(text.lower())
        ids = np.fromiter((self._index.get(c, 1) for c in text), dtype=np.int32, count=len(text))
        return ids if len(ids) else np.array([1], dtype=np.int32)

    @property
    def num_embeddings(self) -> int:
        return len(CHAR_ALPHABET) + 2

    def fingerprint(self) -> str:
        return "char-v1"


def md5_int(s: str) -> int:
    return int.from_bytes(hashlib.md5(s.encode("utf-8")).digest()[:8], "little")


class HashEncoder(Encoder):
    """``vocab_size`` is K, the number of importance rows per hash; the bucket table has ``num_buckets`` rows."""

    kind = "hash"
    width = 3

    def __init__(
        self, vocab_size: int = vocab.DEFAULT_VOCAB_SIZE, num_buckets: int | None = None, num_hashes: int = 3
    ) -> None:
        if vocab_size < 1:
            raise EncoderError(f"hash vocab_size must be >= 1, got {vocab_size}")
        self.vocab_size = vocab_size
        self.num_buckets = num_buckets or max(1, vocab_size // 10)
        self.width = self.num_hashes = num_hashes
        self._cache: dict[str, tuple[int, ...]] = {}

    def word_ids(self, word: str) -> tuple[int, ...]:
        ids = self._cache.get(word)
        if ids is None:
            space = self.vocab_size * self.num_buckets
            ids = tuple(md5_int(f"{word}{i}") % space + 1 for i in range(self.num_hashes))
            self._cache[word] = ids
        return ids

    def encode(self, text: str) -> np.ndarray:
        words = _WORD_RE.findall(text.lower()) or [""]
        return np.array([self.word_ids(w) for w in words], dtype=np.int32)

    @property
    def num_embeddings(self) -> int:
        return self.vocab_size

    def fingerprint(self) -> str:
        return f"hash-md5-K{self.vocab_size}-B{self.num_buckets}-h{self.num_hashes}"


def bpemb_files(cache_dir: str | Path, vocab_size: int, dim: int, lang: str = "en") -> tuple[Path, Path]:
    """Where BPEmb keeps its files: ``{cache_dir}/{lang}/{lang}.wiki.bpe.vs{vs}.model`` and ``.d{dim}.w2v.bin``."""
    base = Path(cache_dir).expanduser() / lang
    return (
        base / f"{lang}.wiki.bpe.vs{vocab_size}.model",
        base / f"{lang}.wiki.bpe.vs{vocab_size}.d{dim}.w2v.bin",
    )


DEFAULT_BPEMB_DIR = Path.home() / ".cache" / "bpemb"


class BPEEncoder(Encoder):
    """BPEmb byte-pair encoding. Loads local files when present; otherwise lets bpemb download them."""

    kind = "bpe"

    def __init__(
        self,
        vocab_size: int = vocab.DEFAULT_VOCAB_SIZE,
        dim: int = 25,
        cache_dir: str | Path | None = None,
        lang: str = "en",
    ) -> None:
        from bpemb import BPEmb  # imported here: only bpe users pay for gensim

        cache_dir = Path(cache_dir) if cache_dir else DEFAULT_BPEMB_DIR
        model_file, emb_file = bpemb_files(cache_dir, vocab_size, dim, lang)
        self.vocab_size, self.dim, self.cache_dir = vocab_size, dim, cache_dir
        try:
            if model_file.is_file() and emb_file.is_file():
                self.bpemb = BPEmb(lang=None, model_file=model_file, emb_file=emb_file, dim=dim)
            else:
                if not hub_reachable("bpemb.h-its.org"):
                    raise EncoderError(
                        f"BPEmb files for vocab_size={vocab_size}, dim={dim} not found: expected {model_file} and"
                        f" {emb_file} (offline, so they cannot be downloaded); pass --bpemb-dir with a directory"
                        f" in bpemb's cache layout"
                    )
                self.bpemb = BPEmb(lang=lang, vs=vocab_size, dim=dim, cache_dir=cache_dir, vs_fallback=False)
        except EncoderError:
            raise
        except Exception as e:
            raise EncoderError(f"cannot load BPEmb vs={vocab_size} dim={dim} from {cache_dir}: {e}") from None
        if self.bpemb.vs != vocab_size:
            raise EncoderError(f"{model_file}: has vocab size {self.bpemb.vs}, expected {vocab_size}")

    def encode(self, text: str) -> np.ndarray:
        ids = self.bpemb.encode_ids(text)
        return np.asarray(ids, dtype=np.int32) + 1 if ids else np.array([1 + self.bpemb.spm.unk_id()], np.int32)

    def encode_many(self, texts: Sequence[str]) -> Ragged:
        # sentencepiece encodes a list in one call, several times faster than one call per text.
        all_ids = self.bpemb.encode_ids(list(texts))
        unk = self.bpemb.spm.unk_id()
        return Ragged.from_sequences([np.asarray(ids or [unk], dtype=np.int32) + 1 for ids in all_ids])

    @property
    def num_embeddings(self) -> int:
        return self.vocab_size + 1

    def fingerprint(self) -> str:
        return f"bpe-en-vs{self.vocab_size}-d{self.dim}"

    def pretrained_vectors(self) -> np.ndarray:
        vecs = np.zeros((self.num_embeddings, self.dim), dtype=np.float32)
        vecs[1:] = self.bpemb.vectors[: self.vocab_size]
        return vecs


ENCODERS = vocab.EMBEDDINGS  # alias of the one vocabulary


def build_encoder(
    kind: str, vocab_size: int | None = None, dim: int = 25, bpemb_dir: str | Path | None = None
) -> Encoder:
    """Registry entry point. ``vocab_size`` is BPE's vocabulary or the hash embedding's K (None:
    ``vocab.DEFAULT_VOCAB_SIZE``); char
    ignores it."""
    if kind in ("bpe", "hash"):
        if vocab_size is None:
            vocab_size = vocab.DEFAULT_VOCAB_SIZE
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral) or vocab_size < 1:
            raise EncoderError(f"{kind} vocab_size must be a positive int, got {vocab_size!r}")
        if kind == "bpe" and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1):
            raise EncoderError(f"bpe dim must be a positive int, got {dim!r}")
    if kind == "bpe":
        return BPEEncoder(int(vocab_size), int(dim), bpemb_dir)
    if kind == "hash":
        return HashEncoder(int(vocab_size))
    if kind == "char":
        return CharEncoder()
    raise EncoderError(f"unknown embedding {kind!r}; expected one of {list(ENCODERS)}")
