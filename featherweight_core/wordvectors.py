"""Word vectors for the embedding path of the bootstrap augmentation: load GloVe/word2vec files or train vectors on
a task's own training text (offline), and precompute each word's K nearest neighbours.

Formats read by :func:`load_word_vectors`: gensim ``KeyedVectors.save`` files (``.kv``/``.model``), word2vec binary
(``.bin``), word2vec text with a ``count dim`` header or GloVe text without one (``.txt``/``.vec``, optionally ``.gz``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from featherweight_core.atomic import atomic_write
from featherweight_core.data import DataError, TaskData


class VectorsError(DataError):
    """A word-vector file that is missing or unreadable."""


def load_word_vectors(path: str | Path):
    """Load gensim ``KeyedVectors`` from ``path`` (format by suffix, see the module docstring)."""
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.is_file():
        raise VectorsError(f"{path}: word-vectors file not found (expected GloVe/word2vec text, .bin or gensim .kv)")
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    suffix = Path(name).suffix
    try:
        if suffix in (".kv", ".model"):
            return KeyedVectors.load(str(path))
        if suffix == ".bin":
            return KeyedVectors.load_word2vec_format(str(path), binary=True)
        opener = __import__("gzip").open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            first = f.readline().split()
        has_header = len(first) == 2 and all(x.isdigit() for x in first)
        return KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=not has_header)
    except Exception as e:  # gensim raises ValueError, UnicodeDecodeError, EOFError, pickle errors ...
        raise VectorsError(f"{path}: cannot read word vectors ({type(e).__name__}: {e})") from None


def corpus_sentences(task_data: TaskData) -> list[list[str]]:
    """Whitespace-tokenized sentences of the train split (both fields of pair tasks)."""
    return [t.split() for row in task_data.train.texts for t in row if t.strip()]


def train_word_vectors(
    sentences: Iterable[Sequence[str]],
    dim: int = 100,
    window: int = 5,
    min_count: int = 1,
    epochs: int = 10,
    seed: int = 0,
    workers: int = 1,
):
    """Skip-gram word2vec on ``sentences`` (token lists); returns gensim ``KeyedVectors``.

    With ``workers=1`` the result is reproducible for a given seed (gensim is nondeterministic with more threads).
    """
    from gensim.models import Word2Vec

    sentences = [list(s) for s in sentences if len(s)]
    if not sentences:
        raise DataError("cannot train word vectors: no non-empty sentences")
    if dim < 1 or epochs < 1 or min_count < 1:
        raise DataError(f"dim, epochs and min_count must be >= 1, got {dim}, {epochs}, {min_count}")
    model = Word2Vec(
        sentences, vector_size=dim, window=window, min_count=min_count, sg=1, epochs=epochs, seed=seed, workers=workers
    )
    return model.wv


def save_word_vectors(kv, path: str | Path) -> Path:
    """Write word2vec binary (one file) atomically."""
    return atomic_write(path, lambda tmp: kv.save_word2vec_format(str(tmp), binary=True))


def task_word_vectors(
    task_data: TaskData, cache_dir: str | Path | None, dim: int = 100, epochs: int = 10, seed: int = 0
) -> tuple[object, Path | None]:
    """Vectors trained on ``task_data``'s train text, cached as ``{cache_dir}/wordvectors/*.bin``."""
    path = None
    if cache_dir is not None:
        tag = hashlib.sha256(f"{task_data.fingerprint()}|{dim}|{epochs}|{seed}|sg|v1".encode()).hexdigest()[:16]
        path = Path(cache_dir) / "wordvectors" / f"{task_data.task.name}-d{dim}-{tag}.bin"
        if path.is_file():
            return load_word_vectors(path), path
    kv = train_word_vectors(corpus_sentences(task_data), dim=dim, epochs=epochs, seed=seed)
    if path is not None:
        save_word_vectors(kv, path)
    return kv, path


def lookup_key(kv, word: str) -> str | None:
    """The vocabulary entry for ``word``: itself, else its lowercase form, else None."""
    if word in kv.key_to_index:
        return word
    low = word.lower()
    return low if low in kv.key_to_index else None


def nearest_neighbours(
    kv,
    words: Iterable[str],
    k: int,
    restrict_vocab: int | None = None,
    batch_size: int = 1024,
    accept: Callable[[str], bool] | None = None,
) -> dict[str, tuple[str, ...]]:
    """The ``k`` most cosine-similar vocabulary words of each word (itself excluded), computed in batched matrix
    products instead of one ``most_similar`` call per word. Words missing from the vectors map to ``()``.

    ``restrict_vocab`` limits candidates to the first entries of the vocabulary (GloVe files are frequency-sorted).
    ``accept`` filters candidates (e.g. no punctuation); up to 20 extra neighbours are looked at to make up for it.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    vectors = kv.vectors[:restrict_vocab] if restrict_vocab else kv.vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    vocab = kv.index_to_key
    words = list(dict.fromkeys(words))
    out: dict[str, tuple[str, ...]] = {w: () for w in words}
    found = [(w, kv.key_to_index[key]) for w in words if (key := lookup_key(kv, w)) is not None]
    kk = min(k + 1 + (20 if accept else 0), len(unit))
    for s in range(0, len(found), batch_size):
        chunk = found[s : s + batch_size]
        q = kv.vectors[[i for _, i in chunk]].astype(np.float32)
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        sims = q @ unit.T  # (B, V)
        for r, (_, i) in enumerate(chunk):
            if i < len(unit):
                sims[r, i] = -np.inf  # never the word itself
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        for r, (w, i) in enumerate(chunk):
            cand = top[r][np.argsort(-sims[r, top[r]], kind="stable")]
            good = (vocab[j] for j in cand if j != i and vocab[j] != w)
            out[w] = tuple(c for c in good if accept is None or accept(c))[:k]
    return out
