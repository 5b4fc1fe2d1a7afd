"""Word vectors for the embedding path of the bootstrap augmentation: load GloVe/word2vec files or train vectors on
a task's own training text (offline), and precompute each word's K nearest neighbours.

Formats read by :func:`load_word_vectors`: word2vec binary (``.bin``), word2vec text with a ``count dim`` header or
GloVe text without one (``.txt``/``.vec``), each optionally gzipped (``.gz``). These are parsed as data. Pickled
files (gensim ``KeyedVectors.save`` ``.kv``/``.model`` files, ``torch.save`` or joblib files) are refused without
being opened as pickles: unpickling a file can run any code it names.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from featherweight_core.atomic import atomic_write
from featherweight_core.data.taskdata import DataError, TaskData
from featherweight_core.errors import ConfigError

ACCEPTED_FORMATS = "word2vec binary (.bin) or word2vec/GloVe text (.txt/.vec), optionally gzipped (.gz)"
TEXT_SUFFIXES = (".txt", ".vec")
BINARY_SUFFIXES = (".bin",)
PICKLE_SUFFIXES = (".kv", ".model", ".pkl", ".pickle", ".joblib", ".pt", ".pth", ".npy", ".npz")
_SNIFF_BYTES = 1 << 16


class VectorsError(DataError):
    """A word-vector file that is missing, unreadable, or in a format that is not read (a pickle)."""


def _plain_name(path: Path) -> str:
    return path.name[:-3] if path.name.endswith(".gz") else path.name


def _head(path: Path) -> bytes:
    """The first bytes of the file's content (decompressed when it is gzipped)."""
    try:
        with path.open("rb") as f:
            raw = f.read(_SNIFF_BYTES)
        if raw[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                return f.read(_SNIFF_BYTES)
    except (OSError, EOFError) as e:
        raise VectorsError(f"{path}: cannot read word vectors ({type(e).__name__}: {e})") from None
    return raw


def _refuse_pickles(path: Path, head: bytes) -> None:
    """A pickle (protocol 2+ starts with 0x80; gensim's ``.kv``/``.model``, joblib) or a zip archive (``torch.save``:
    a ``data.pkl`` inside) is refused on its first bytes: nothing of it is unpickled."""
    what = None
    if head[:1] == b"\x80":
        what = "a Python pickle (such as a gensim .kv/.model save)"
    elif head[:4] == b"PK\x03\x04":
        what = "a zip archive"
        try:
            with zipfile.ZipFile(path) as z:
                pickles = [n for n in z.namelist() if n.endswith(".pkl")]
            if pickles:
                what = f"a zip archive holding a Python pickle ({pickles[0]}, as torch.save writes)"
        except (zipfile.BadZipFile, OSError, EOFError):
            pass
    elif Path(_plain_name(path)).suffix in PICKLE_SUFFIXES and not _has_header(head):
        what = f"a {Path(_plain_name(path)).suffix} file (a pickle format)"
    if what:
        raise VectorsError(
            f"{path}: {what}; pickles are never loaded (they can run code). Word vectors are read from"
            f" {ACCEPTED_FORMATS}; convert with gensim's KeyedVectors.save_word2vec_format"
        )


def _has_header(head: bytes) -> bool:
    """The file starts with word2vec's ``count dim`` line."""
    first = head.split(b"\n", 1)[0].split()
    return len(first) == 2 and all(x.isdigit() for x in first)


def _is_binary(path: Path, head: bytes) -> bool:
    """word2vec binary or text: by the suffix (``.bin`` / ``.txt``, ``.vec``), else by the bytes after the header line
    (binary vectors are raw float32: not UTF-8 text)."""
    suffix = Path(_plain_name(path)).suffix
    if suffix in BINARY_SUFFIXES:
        return True
    if suffix in TEXT_SUFFIXES:
        return False
    body = head.split(b"\n", 1)[1] if b"\n" in head else b""
    try:  # final=False: a multi-byte character cut at the end of the sniffed part is not binary data
        text = codecs.getincrementaldecoder("utf-8")().decode(body, final=False)
    except UnicodeDecodeError:
        return True
    return "\0" in text


def load_word_vectors(path: str | Path):
    """Load gensim ``KeyedVectors`` from a word2vec binary or text file (see the module docstring); a pickled file is
    refused with a :class:`VectorsError` before anything of it is unpickled."""
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "word-vectors file not found"
        raise VectorsError(f"{path}: {what} (expected {ACCEPTED_FORMATS})")
    head = _head(path)
    _refuse_pickles(path, head)
    try:
        if _is_binary(path, head):
            return KeyedVectors.load_word2vec_format(str(path), binary=True)
        return KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=not _has_header(head))
    except Exception as e:  # gensim raises ValueError, UnicodeDecodeError, EOFError ... on malformed files
        lines = str(e).strip().splitlines()
        raise VectorsError(
            f"{path}: cannot read word vectors ({type(e).__name__}: {lines[0] if lines else ''});"
            f" expected {ACCEPTED_FORMATS}"
        ) from None


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


def output_is_binary(path: str | Path) -> bool:
    """Whether :func:`save_word_vectors` writes ``path`` as word2vec binary (``.bin``) or text (``.txt``/``.vec``),
    each optionally ``.gz``; any other name is a :class:`ConfigError` (the loader reads only these formats)."""
    suffix = Path(_plain_name(Path(path))).suffix
    if suffix in BINARY_SUFFIXES or suffix in TEXT_SUFFIXES:
        return suffix in BINARY_SUFFIXES
    raise ConfigError(
        f"{path}: a word-vectors file is written as word2vec binary (.bin) or text (.txt/.vec), optionally"
        " gzipped (.gz); name it with one of these suffixes"
    )


def save_word_vectors(kv, path: str | Path) -> Path:
    """Write word2vec binary (``.bin``) or text (``.txt``/``.vec``; ``.gz``: gzipped) atomically, in a format
    :func:`load_word_vectors` reads."""
    binary = output_is_binary(path)
    gz = Path(path).name.endswith(".gz")
    return atomic_write(path, lambda tmp: kv.save_word2vec_format(str(tmp), binary=binary), suffix=".gz" if gz else "")


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
