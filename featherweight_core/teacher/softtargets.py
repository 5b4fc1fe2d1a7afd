"""The soft-target store: teacher logits computed once per (teacher, data), then served from Parquet.

Layout under ``root``::

    {teacher_fp}/teacher.json                       where the teacher came from (for people, not for lookups)
    {teacher_fp}/{name}-{data_fp}-L{max_len}.parquet  columns key (string), logits (list<float32>)

``teacher_fp`` hashes the teacher's weights (``*.safetensors`` / ``*.bin``), ``config.json`` and tokenizer files;
``data_fp`` hashes the keys and texts that were scored; ``max_len`` is the truncation length (it changes logits).
A retrained teacher or edited data therefore gets new files and is never served stale logits. Files are written to
a temporary name and renamed into place, so a concurrent reader sees either nothing or a complete file.

>>> store = SoftTargetStore("/tmp/fw-soft")            # doctest: +SKIP
>>> keys, logits = store.get_or_compute("runs/teacher", task_data, "train")   # doctest: +SKIP
>>> store.model_runs                                    # 1 on first use; a second call reads the file  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featherweight_core.atomic import atomic_write, write_text_atomic
from featherweight_core.data.taskdata import DataError, Split, TaskData
from featherweight_core.teacher.loading import load_classifier, read_teacher_meta
from featherweight_core.teacher.modelfiles import check_model_files

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spm.model",
    "sentencepiece.bpe.model",
    "special_tokens_map.json",
    "added_tokens.json",
)
_FP_MEMO: dict[tuple, str] = {}


def teacher_fingerprint(teacher_dir: str | Path) -> str:
    """Content hash of a model directory: weights, ``config.json`` and tokenizer files (16 hex chars).

    Memoised per process on (path, size, mtime) of the files, so repeated lookups do not re-read the weights.
    """
    d = Path(teacher_dir)
    if not d.is_dir():
        raise DataError(f"{d}: teacher directory not found")
    files = sorted(
        p
        for p in d.iterdir()
        if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name in ("config.json", *_TOKENIZER_FILES))
    )
    weights = [p for p in files if p.suffix in _WEIGHT_SUFFIXES]
    if not weights or not (d / "config.json").is_file():
        raise DataError(f"{d}: not a model directory (needs config.json and *.safetensors or *.bin weights)")
    stat_key = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    memo_key = (str(d.resolve()), stat_key)
    if memo_key in _FP_MEMO:
        return _FP_MEMO[memo_key]
    check_model_files(d, DataError)
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0")
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        h.update(b"\1")
    fp = h.hexdigest()[:16]
    _FP_MEMO[memo_key] = fp
    return fp


def texts_fingerprint(keys: Sequence[str], texts: Sequence[tuple[str, ...]]) -> str:
    """Hash of (key, text fields) rows in order (16 hex chars)."""
    h = hashlib.sha256()
    for k, t in zip(keys, texts, strict=True):
        h.update(k.encode())
        h.update(b"\x1e")
        h.update("\x1f".join(t).encode())
        h.update(b"\x1d")
    return h.hexdigest()[:16]


def _rows(data: TaskData | Split | Sequence, split: str | None, keys: Sequence[str] | None):
    """(name, keys, texts) from TaskData + split name, a Split, or a list of texts (strings or tuples) + keys."""
    if isinstance(data, TaskData):
        if split is None or split not in data.splits:
            raise DataError(f"task {data.task.name!r} has no split {split!r}; it has {sorted(data.splits)}")
        sp = data.splits[split]
        return f"{data.task.name}-{split}", list(sp.keys), list(sp.texts)
    if isinstance(data, Split):
        return split or "split", list(data.keys), list(data.texts)
    texts = [(t,) if isinstance(t, str) else tuple(t) for t in data]
    if keys is None:
        keys = [str(i) for i in range(len(texts))]
    if len(keys) != len(texts):
        raise DataError(f"{len(keys)} keys for {len(texts)} texts")
    return split or "texts", list(keys), texts


class SoftTargetStore:
    """Teacher logits on disk, keyed by content fingerprints; see the module docstring.

    ``model_runs`` counts how many times this store had to run a teacher (tests assert on it);
    ``examples_computed`` how many rows those runs scored. ``root=None`` disables the disk cache.
    """

    def __init__(
        self,
        root: str | Path | None,
        device: str = "auto",
        batch_size: int = 128,
        precision: str = "auto",
        progress: bool = False,
    ) -> None:
        self.root = Path(root) if root is not None else None
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.progress = progress
        self.model_runs = 0
        self.examples_computed = 0
        self._loaded: dict[str, tuple[Any, Any]] = {}

    # -- paths ---------------------------------------------------------------------------------------------------

    def path_for(self, teacher_dir: str | Path, name: str, data_fp: str, max_length: int) -> Path | None:
        if self.root is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.root / teacher_fingerprint(teacher_dir) / f"{safe}-{data_fp}-L{max_length}.parquet"

    def _teacher_max_length(self, teacher_dir: str | Path, max_length: int | None) -> int:
        if max_length is not None:
            return int(max_length)
        teacher_fingerprint(teacher_dir)  # a missing or broken teacher is a DataError naming it (memoised)
        return int(read_teacher_meta(teacher_dir).get("config", {}).get("max_length", 128))

    # -- public API ----------------------------------------------------------------------------------------------

    def get_or_compute(
        self,
        teacher_dir: str | Path,
        data: TaskData | Split | Sequence,
        split: str | None = "train",
        keys: Sequence[str] | None = None,
        max_length: int | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """``(keys, logits (N, C) float32)`` for ``data`` (TaskData + split name, a Split, or texts + keys), rows in
        the data's order. Served from the store when present; otherwise the teacher runs once and the result is
        stored. ``max_length`` defaults to the one the teacher was fine-tuned with (else 128)."""
        teacher_dir = Path(teacher_dir)
        name, row_keys, texts = _rows(data, split, keys)
        if not texts:
            raise DataError(f"{name}: no examples to score with the teacher")
        max_length = self._teacher_max_length(teacher_dir, max_length)
        data_fp = texts_fingerprint(row_keys, texts)
        path = self.path_for(teacher_dir, name, data_fp, max_length)
        if path is not None and path.is_file():
            stored_keys, logits = read_logits(path)
            if stored_keys == row_keys:
                return stored_keys, logits
            # a hash collision or a hand-edited file: recompute rather than serve misaligned rows
        logits = self._run_teacher(teacher_dir, texts, max_length)
        if path is not None:
            write_logits(path, row_keys, logits)
            meta = path.parent / "teacher.json"
            if not meta.is_file():
                write_text_atomic(meta, json.dumps({"teacher_dir": str(teacher_dir.resolve())}, indent=2) + "\n")
        return row_keys, logits

    def has(self, teacher_dir: str | Path, data, split: str | None = "train", keys=None, max_length=None) -> bool:
        """Whether ``get_or_compute`` with these arguments would be served without running the teacher."""
        name, row_keys, texts = _rows(data, split, keys)
        path = self.path_for(
            teacher_dir, name, texts_fingerprint(row_keys, texts), self._teacher_max_length(teacher_dir, max_length)
        )
        return path is not None and path.is_file()

    def load_teacher(self, teacher_dir: str | Path) -> tuple[Any, Any]:
        """``(model, tokenizer)`` of the teacher, loaded once and kept for the next computation (one teacher in
        memory at a time). Loading first fails early on a teacher that cannot teach (unreadable, incomplete)."""
        cache_key = teacher_fingerprint(teacher_dir)  # by content: a retrained teacher at the same path reloads
        if cache_key not in self._loaded:
            self._loaded = {cache_key: load_classifier(teacher_dir)}
        return self._loaded[cache_key]

    def _run_teacher(self, teacher_dir: Path, texts: list[tuple[str, ...]], max_length: int) -> np.ndarray:
        # deferred: loads torch only when called (importing this module does not)
        from featherweight_core.teacher.devices import resolve_device
        from featherweight_core.teacher.predict import predict_logits

        model, tokenizer = self.load_teacher(teacher_dir)
        device = resolve_device(self.device)
        logits = predict_logits(
            model, tokenizer, texts, self.batch_size, max_length, device, self.precision, self.progress
        )
        self.model_runs += 1
        self.examples_computed += len(texts)
        return logits


def write_logits(path: str | Path, keys: Sequence[str], logits: np.ndarray) -> Path:
    """Write ``key``/``logits`` Parquet atomically (temp file + rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2 or len(logits) != len(keys):
        raise ValueError(f"logits must be (N, C) with N = {len(keys)} keys, got shape {logits.shape}")
    n, c = logits.shape
    values = pa.array(logits.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, (n + 1) * c, c, dtype=np.int32))
    table = pa.table(
        {"key": pa.array(list(keys), type=pa.string()), "logits": pa.ListArray.from_arrays(offsets, values)}
    )
    return atomic_write(path, lambda tmp: pq.write_table(table, str(tmp)))


def read_logits(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read a ``key``/``logits`` Parquet file: (keys, (N, C) float32)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = {"key", "logits"} - set(table.column_names)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; expected 'key' and 'logits'")
    keys = table.column("key").to_pylist()
    col = table.column("logits").combine_chunks()
    if len(col) == 0:
        return keys, np.zeros((0, 0), dtype=np.float32)
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return keys, flat.reshape(len(col), -1)
