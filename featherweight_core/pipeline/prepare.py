"""The one place that assembles what a trial trains on.

:func:`prepare` loads a task's splits, encodes them once per (task data, encoder) - cached on disk as ``.npz`` -
and attaches teacher logits aligned to the training examples: from a file (``teacher_logits``) or from a fine-tuned
teacher directory (``teacher``) through the soft-target store, which runs the teacher once per (teacher, data) and
serves later requests from Parquet. With ``bootstrap`` (a file written by ``featherweight augment``) it also encodes
the augmented examples with the same encoder into ``Prepared.bootstrap``: hard labels are the teacher's argmax,
soft targets the teacher's logits. Trainers use ``prepared.train.concat(prepared.bootstrap)`` when bootstrapping,
so one ``prepare`` call serves both bootstrap settings. The sweep driver calls it once and ships the result to
trials; ``featherweight distill`` calls it for a single run.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featherweight_core.atomic import atomic_write
from featherweight_core.data.batching import EncodedSplit
from featherweight_core.data.encoders import Encoder, Ragged, build_encoder
from featherweight_core.data.loading import load_task_data
from featherweight_core.data.taskdata import DataError, Split, TaskData, recorded_source
from featherweight_core.data.tasks import TEST, TaskSpec
from featherweight_core.readable import check_readable
from featherweight_core.teacher.augment import check_augmented, read_augmented
from featherweight_core.teacher.outputs import TeacherOutputs
from featherweight_core.teacher.softtargets import SoftTargetStore, teacher_fingerprint, texts_fingerprint

DEFAULT_CACHE_DIR = Path(os.environ.get("FEATHERWEIGHT_CACHE", Path.home() / ".cache" / "featherweight"))


@dataclass
class Prepared:
    """Encoded data for one (task, encoder): train split (with teacher logits when given) and eval splits."""

    task: TaskSpec
    embedding: str
    vocab_size: int | None
    emb_dim: int
    num_embeddings: int
    vectors: np.ndarray | None  # pre-trained embedding init (bpe), (num_embeddings, emb_dim)
    train: EncodedSplit
    evals: dict[str, EncodedSplit]
    data_fingerprint: str
    encoder_fingerprint: str
    teacher: str | None = None  # where the teacher logits came from
    bootstrap: EncodedSplit | None = None  # augmented examples: teacher-argmax labels and teacher logits
    bootstrap_source: str | None = None
    tests: dict[str, EncodedSplit] = field(default_factory=dict)  # held-out test split(s): "test" when the data has one
    data_source: str | None = None  # where the task data came from (TaskData.source)
    split_info: dict = field(default_factory=dict)  # how the splits were made (TaskData.split_info)
    train_bootstrap: EncodedSplit | None = None  # train followed by bootstrap, built once (share_bootstrap)

    def train_split(self, use_bootstrap: bool) -> EncodedSplit:
        """The split to train on: the original train split, plus the bootstrap examples when asked."""
        if not use_bootstrap:
            return self.train
        if self.train_bootstrap is not None:
            return self.train_bootstrap
        if self.bootstrap is None:
            raise DataError("bootstrap data was requested but prepare() was called without bootstrap=FILE")
        return self.train.concat(self.bootstrap)

    def share_bootstrap(self) -> Prepared:
        """Concatenate train and bootstrap once, here, so that every trial that bootstraps trains on this one split
        instead of concatenating its own copy (a per-trial copy of ~1.3M rows with SST-2's N=20 bootstrap data).
        Pickled (into Ray's object store), the bootstrap rows travel once: ``bootstrap`` comes back as views of
        the combined split's tail. Returns self."""
        if self.bootstrap is not None and self.train_bootstrap is None:
            self.train_bootstrap = self.train.concat(self.bootstrap)
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if state.get("train_bootstrap") is not None and state.get("bootstrap") is not None:
            state["bootstrap"] = _InCombined(len(self.train))  # rebuilt as views in __setstate__
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("bootstrap"), _InCombined):
            state["bootstrap"] = _tail(state["train_bootstrap"], state["bootstrap"].start)
        self.__dict__.update(state)

    def summary(self) -> str:
        ev = ", ".join(f"{k}={len(v)}" for k, v in {**self.evals, **self.tests}.items())
        return (
            f"{self.task.name}: train={len(self.train)} {ev}; {self.encoder_fingerprint}"
            + (f"; teacher logits from {self.teacher}" if self.teacher else "")
            + (f"; bootstrap={len(self.bootstrap)} from {self.bootstrap_source}" if self.bootstrap is not None else "")
        )


@dataclass(frozen=True)
class _InCombined:
    """Pickled in place of ``Prepared.bootstrap``: its rows are ``train_bootstrap``'s from ``start`` on."""

    start: int


def _tail(split: EncodedSplit, start: int) -> EncodedSplit:
    """Rows ``start:`` of ``split`` as views of its arrays (only the offsets, rebased to 0, are new)."""
    fields = tuple(Ragged(f.ids[f.offsets[start] :], f.offsets[start:] - f.offsets[start]) for f in split.fields)
    tl = None if split.teacher_logits is None else split.teacher_logits[start:]
    return EncodedSplit(fields, split.labels[start:], split.keys[start:], tl)


def encode_split(encoder: Encoder, split: Split) -> EncodedSplit:
    n_fields = len(split.texts[0]) if len(split) else 1
    fields = tuple(encoder.encode_many([t[i] for t in split.texts]) for i in range(n_fields))
    return EncodedSplit(fields, split.labels, list(split.keys))


def _save_encoded(path: Path, splits: dict[str, EncodedSplit]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name, sp in splits.items():
        arrays[f"{name}/labels"] = sp.labels
        arrays[f"{name}/keys"] = np.asarray(sp.keys, dtype=object).astype(str)
        for i, f in enumerate(sp.fields):
            arrays[f"{name}/f{i}/ids"], arrays[f"{name}/f{i}/offsets"] = f.ids, f.offsets
    # atomic: a concurrent reader never sees half a file; np.savez appends .npz unless the name ends with it
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")


def _load_encoded(path: Path, names: list[str], n_fields: int) -> dict[str, EncodedSplit]:
    with np.load(path, allow_pickle=False) as z:
        return {
            name: EncodedSplit(
                tuple(Ragged(z[f"{name}/f{i}/ids"], z[f"{name}/f{i}/offsets"]) for i in range(n_fields)),
                z[f"{name}/labels"],
                z[f"{name}/keys"].tolist(),
            )
            for name in names
        }


def load_teacher_logits(path: str | Path) -> tuple[list[str] | None, np.ndarray]:
    """Read teacher logits: ``.npy`` (N, C) in training-row order, or Parquet with ``key`` and ``logits`` columns."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: teacher logits file not found")
    check_readable(path, "teacher logits file")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:  # not .npy, truncated, an object array
            raise DataError(f"{path}: not a readable .npy array ({type(e).__name__}: {str(e).strip()[:200]})") from None
        if arr.ndim != 2:
            raise DataError(f"{path}: teacher logits must be a 2-D (N, C) array, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise DataError(f"{path}: teacher logits must be real numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
        check_finite_logits(arr, str(path))
        return None, arr
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as e:
            raise DataError(
                f"{path}: not a readable Parquet file ({type(e).__name__}: {str(e).strip()[:200]})"
            ) from None
        missing = {"key", "logits"} - set(table.column_names)
        if missing:
            raise DataError(f"{path}: missing column(s) {sorted(missing)}; expected 'key' and 'logits'")
        keys = table.column("key").to_pylist()
        try:
            arr = np.asarray(table.column("logits").to_pylist(), dtype=np.float32)
        except (TypeError, ValueError):  # ragged rows, nulls, strings
            raise DataError(
                f"{path}: column 'logits' must hold one list of numbers per row, all of one length"
            ) from None
        if arr.ndim != 2:
            raise DataError(f"{path}: column 'logits' must hold one list of numbers per row, got shape {arr.shape}")
        check_finite_logits(arr, str(path), keys)
        return keys, arr
    raise DataError(f"{path}: unknown teacher logits format {path.suffix!r}; expected .npy or .parquet")


def check_finite_logits(logits: np.ndarray, source: str, keys: list | None = None) -> None:
    """A DataError naming ``source`` and its first row holding NaN or inf: such logits would train every student on
    a non-finite loss."""
    bad = np.flatnonzero(~np.isfinite(logits).all(axis=-1)) if logits.size else np.array([], dtype=np.int64)
    if len(bad):
        i = int(bad[0])
        key = f", key {keys[i]!r}" if keys is not None and i < len(keys) else ""
        raise DataError(
            f"{source}: teacher logits are not finite: row {i} (counting from 0{key}) holds"
            f" {logits[i].tolist()}; {len(bad)} of {len(logits)} rows hold NaN or inf"
        )


def align_logits(
    split: EncodedSplit, keys: list[str] | None, logits: np.ndarray, num_labels: int, source: str
) -> np.ndarray:
    """Reorder ``logits`` to ``split``'s rows by key; every training example must have a row."""
    if logits.ndim != 2 or logits.shape[1] != num_labels:
        raise DataError(f"{source}: teacher logits have shape {logits.shape}, expected (N, {num_labels})")
    if keys is None:
        if len(logits) != len(split):
            raise DataError(f"{source}: {len(logits)} teacher logit rows for {len(split)} training examples")
        check_finite_logits(logits, source)
        return logits
    check_finite_logits(logits, source, keys)
    index = {k: i for i, k in enumerate(keys)}
    missing = [k for k in split.keys if k not in index]
    if missing:
        raise DataError(f"{source}: no teacher logits for {len(missing)} training examples (first: {missing[0]!r})")
    return logits[[index[k] for k in split.keys]]


def prepare(
    task: TaskSpec,
    data: str | Path | None = None,
    embedding: str = "bpe",
    emb_dim: int = 25,
    vocab_size: int | None = None,
    bpemb_dir: str | Path | None = None,
    teacher_logits: str | Path | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    task_data: TaskData | None = None,
    verbose: bool = False,
    teacher: str | Path | None = None,
    bootstrap: str | Path | None = None,
    store=None,
    teacher_device: str = "auto",
    teacher_outputs: TeacherOutputs | None = None,
    allow_missing: bool = False,
) -> Prepared:
    """Load, encode (cached) and attach teacher logits. ``task_data`` skips loading when already in hand.

    ``teacher``: a fine-tuned teacher directory; its train-split logits come from the soft-target store
    (``store``, default ``{cache_dir}/softtargets``). ``bootstrap``: an augmented-data file; needs ``teacher``
    or ``teacher_outputs``. ``teacher_outputs``: a file teacher (:mod:`featherweight_core.teacher.outputs`), its
    targets matched to the training and bootstrap rows by text (``allow_missing``: uncovered training rows are
    taught their gold label).
    """
    if sum(x is not None for x in (teacher_logits, teacher, teacher_outputs)) > 1:
        raise DataError(
            "pass one of teacher_logits (a logits file), teacher (a model directory) or teacher_outputs, not several"
        )
    if bootstrap is not None and teacher is None and teacher_outputs is None:
        raise DataError(
            f"bootstrap data {bootstrap} is labelled by the teacher: pass a teacher directory too (--teacher DIR)"
        )
    # every input file is opened before anything is encoded or cached
    loaded_logits = load_teacher_logits(teacher_logits) if teacher_logits is not None else None
    if teacher is not None:
        teacher_fingerprint(teacher)
    if bootstrap is not None:
        check_augmented(bootstrap, task)
    if task_data is None:
        task_data = load_task_data(task, data)
    if teacher is not None:
        if store is None:
            root = Path(cache_dir) / "softtargets" if cache_dir is not None else None
            store = SoftTargetStore(root, device=teacher_device, progress=verbose)
        if not store.has(teacher, task_data, "train"):
            store.load_teacher(teacher)  # a teacher that cannot teach fails before anything is encoded or cached
    if verbose and (task_data.report.skipped or task_data.report.bad_bytes):
        print(f"data: bad rows\n{task_data.report}", file=sys.stderr)
    encoder = build_encoder(embedding, vocab_size, emb_dim, bpemb_dir)
    names = ["train", *[s for s in task.eval_splits if s in task_data.splits]]
    if len(names) < 2:
        raise DataError(f"task {task.name!r} from {task_data.source}: no dev split among {list(task.eval_splits)}")
    test_names = [s for s in (TEST,) if s in task_data.splits and s not in names]
    names += test_names
    data_fp = task_data.fingerprint()
    enc_fp = encoder.fingerprint()
    splits: dict[str, EncodedSplit] | None = None
    cache_path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{task.name}|{data_fp}|{enc_fp}|v1".encode()).hexdigest()[:20]
        cache_path = Path(cache_dir) / "encoded" / f"{task.name}-{enc_fp}-{key}.npz"
        if cache_path.is_file():
            splits = _load_encoded(cache_path, names, len(task.text_fields))
    if splits is None:
        splits = {name: encode_split(encoder, task_data.splits[name]) for name in names}
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            _save_encoded(cache_path, splits)
    train_split = splits.pop("train")
    tests = {name: splits.pop(name) for name in test_names}
    if teacher_logits is not None:
        keys, arr = loaded_logits
        train_split.teacher_logits = align_logits(train_split, keys, arr, task.num_labels, str(teacher_logits))
    boot = None
    if teacher_outputs is not None:
        train_split.teacher_logits, _ = teacher_outputs.for_training(
            task_data.splits["train"], "training rows", allow_missing
        )
        if bootstrap is not None:
            boot = _prepare_bootstrap(task, bootstrap, encoder, enc_fp, cache_dir, teacher_outputs, None)
        for name, sp in splits.items():  # dev covered: the teacher's outputs there give each trial its fidelity
            rows, found = teacher_outputs.lookup(task_data.splits[name].texts)
            if len(rows) and found.all():
                sp.teacher_logits = teacher_outputs.targets[rows]
    if teacher is not None:
        keys, arr = store.get_or_compute(teacher, task_data, "train")
        train_split.teacher_logits = align_logits(train_split, keys, arr, task.num_labels, f"teacher {teacher}")
        if bootstrap is not None:
            boot = _prepare_bootstrap(task, bootstrap, encoder, enc_fp, cache_dir, store, teacher)
    return Prepared(
        task=task,
        embedding=embedding,
        vocab_size=getattr(encoder, "vocab_size", None),
        emb_dim=emb_dim,
        num_embeddings=encoder.num_embeddings,
        vectors=encoder.pretrained_vectors(),
        train=train_split,
        evals=splits,
        data_fingerprint=data_fp,
        encoder_fingerprint=enc_fp,
        teacher=_teacher_source(teacher_logits, teacher, teacher_outputs),
        bootstrap=boot,
        bootstrap_source=str(bootstrap) if bootstrap is not None else None,
        tests=tests,
        data_source=recorded_source(task_data.source),
        split_info=dict(task_data.split_info),
    )


def _teacher_source(teacher_logits, teacher, teacher_outputs: TeacherOutputs | None) -> str | None:
    if teacher_outputs is not None:
        return f"teacher outputs {teacher_outputs.name}"
    if teacher_logits is not None:
        return str(teacher_logits)
    return str(teacher) if teacher is not None else None


def _prepare_bootstrap(task: TaskSpec, path, encoder: Encoder, enc_fp: str, cache_dir, store, teacher) -> EncodedSplit:
    """Encode the augmented examples of ``path`` (cached like the task splits) and label them with the teacher
    (``store`` a TeacherOutputs and ``teacher`` None: the file teacher's outputs for their texts)."""
    aug, _meta = read_augmented(path, task)
    if len(aug) == 0:
        raise DataError(f"{path}: the augmented data file has no examples")
    aug_fp = texts_fingerprint(aug.keys, aug.texts)
    enc = None
    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir) / "encoded" / f"{task.name}-{enc_fp}-bootstrap-{aug_fp}.npz"
        if cache_path.is_file():
            enc = _load_encoded(cache_path, ["bootstrap"], len(task.text_fields))["bootstrap"]
    if enc is None:
        enc = encode_split(encoder, aug)
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            _save_encoded(cache_path, {"bootstrap": enc})
    if isinstance(store, TeacherOutputs):
        enc.teacher_logits = store.for_bootstrap(aug, str(path))
    else:
        keys, logits = store.get_or_compute(teacher, aug, f"{task.name}-bootstrap")
        enc.teacher_logits = align_logits(enc, keys, logits, task.num_labels, f"teacher {teacher} on {path}")
    enc.labels = enc.teacher_logits.argmax(-1).astype(np.int64)  # hard labels: the teacher's (thesis 6.2.4)
    return enc
