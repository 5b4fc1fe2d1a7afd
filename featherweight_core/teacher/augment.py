"""Bootstrap data: TinyBERT-style augmentation of the training split (thesis 4.1.3, 6.2.4; Jiao et al. 2020, Alg. 1).

For every word of a training sentence (whitespace tokens; tokens without a letter or digit are never replaced):

* mode ``fill-mask``: if the masked LM's tokenizer keeps the word as a single piece, the word is masked in its
  sentence and the masked LM's top-K predictions (whole-word tokens, the word itself excluded) are its candidates;
  otherwise its K nearest neighbours in a word-vector space are;
* mode ``embedding``: every word takes its K nearest neighbours in the word-vector space (no masked LM needed).

Then ``N`` times: each word with candidates is replaced, with probability ``p``, by a uniformly drawn candidate.
Variants identical to the source or to an earlier variant are dropped. ``ratio`` keeps a deterministic, evenly
spread fraction of the generated variants (the thesis kept 25% for QQP and MNLI).

Sentence-pair tasks keep their pair structure: ``fields="first"`` (default for pairs, as TinyBERT did) augments the
first text and copies the second; ``"second"`` the other way round; ``"all"`` augments both sides independently.

Determinism: each source example draws from its own RNG seeded with ``(seed, row index)``, and fill-mask batches
are formed per fixed-size chunk, so the output is identical for any number of worker processes.
Output streams to Parquet chunk by chunk (temporary file, renamed when complete): columns ``key``, ``source_key``,
``source_label`` and one string column per text field; the config is in the schema metadata.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featherweight_core.atomic import atomic_write
from featherweight_core.data.taskdata import DataError, Split, TaskData, recorded_source
from featherweight_core.data.tasks import TaskSpec
from featherweight_core.data.wordvectors import load_word_vectors, nearest_neighbours, task_word_vectors
from featherweight_core.errors import ConfigError
from featherweight_core.readable import check_readable
from featherweight_core.teacher.config import TeacherError
from featherweight_core.teacher.loading import load_tokenizer, quiet_transformers
from featherweight_core.teacher.loading import resolve_model_source as _resolve
from featherweight_core.teacher.modelfiles import load_pretrained
from featherweight_core.vocab import AUGMENT_FIELDS, AUGMENT_MODES

MODES = AUGMENT_MODES  # aliases of the one vocabulary
FIELD_CHOICES = AUGMENT_FIELDS
META_KEY = b"featherweight"


@dataclass(frozen=True)
class AugmentConfig:
    """p: replacement probability per word; n: variants tried per example; k: candidates per word;
    ratio: fraction of generated variants kept; fields: which side(s) of a pair to augment (``auto``: all text of
    single-sentence tasks, ``first`` for pairs); workers: processes; chunk_size: examples per work unit and write."""

    p: float = 0.4
    n: int = 20
    k: int = 15
    ratio: float = 1.0
    seed: int = 0
    mode: str = "embedding"
    fields: str = "auto"
    workers: int = 1
    chunk_size: int = 512
    mlm_batch_size: int = 64
    mlm_max_length: int = 128

    def __post_init__(self) -> None:
        checks = [
            (0.0 < self.p <= 1.0, f"p must be in (0, 1], got {self.p}"),
            (self.n >= 1, f"n must be >= 1, got {self.n}"),
            (self.k >= 1, f"k must be >= 1, got {self.k}"),
            (0.0 < self.ratio <= 1.0, f"ratio must be in (0, 1], got {self.ratio}"),
            (self.mode in MODES, f"mode must be one of {list(MODES)}, got {self.mode!r}"),
            (self.fields in FIELD_CHOICES, f"fields must be one of {list(FIELD_CHOICES)}, got {self.fields!r}"),
            (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
            (self.chunk_size >= 1, f"chunk_size must be >= 1, got {self.chunk_size}"),
            (self.mlm_batch_size >= 1, f"mlm_batch_size must be >= 1, got {self.mlm_batch_size}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def field_indices(self, n_fields: int) -> tuple[int, ...]:
        if n_fields == 1:
            if self.fields == "second":
                raise ConfigError("fields='second' needs a sentence-pair task")
            return (0,)
        return {"auto": (0,), "first": (0,), "second": (1,), "all": (0, 1)}[self.fields]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def words_of(text: str) -> list[str]:
    return text.split()


def replaceable(word: str) -> bool:
    return any(c.isalnum() for c in word)


# ---------------------------------------------------------------------------------------------------------------
# candidates from a masked LM


class FillMask:
    """Top-K whole-word candidates for masked words from any HF masked LM (hub id or directory), batched."""

    def __init__(
        self, name_or_dir: str | Path, k: int, batch_size: int = 64, max_length: int = 128, device: str = "auto"
    ) -> None:
        import torch
        from transformers import AutoModelForMaskedLM

        # deferred: loads torch only when called (importing this module does not)
        from featherweight_core.teacher.devices import resolve_device

        quiet_transformers()
        source, local_only = _resolve(name_or_dir)
        # every tensor of the masked LM must be in the checkpoint: a fresh prediction head would propose noise
        self.model = load_pretrained(
            AutoModelForMaskedLM, source, TeacherError, "a masked LM", local_files_only=local_only
        )
        self.tokenizer = load_tokenizer(source, local_only)
        if self.tokenizer.mask_token is None:
            raise TeacherError(f"{source}: tokenizer has no mask token; fill-mask needs a masked LM")
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        self.k, self.batch_size, self.max_length = k, batch_size, max_length
        self._torch = torch
        self._single: dict[str, bool] = {}
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        special = set(self.tokenizer.all_special_tokens)
        # only tokens that are whole words can replace a whole word: WordPiece marks continuations with "##";
        # byte-level BPE (RoBERTa, "Ġ") and SentencePiece ("▁") mark word starts instead
        marker = next(
            (m for m in ("Ġ", "▁") if sum(1 for t in vocab if t and t.startswith(m)) > len(vocab) // 10), None
        )
        self._word_token = np.array(
            [
                t is not None
                and t not in special
                and not t.startswith("##")
                and (marker is None or t.startswith(marker))
                and replaceable(t.lstrip("Ġ▁"))
                for t in vocab
            ]
        )
        self._vocab = [(t or "").lstrip("Ġ▁") for t in vocab]

    def single_piece(self, word: str) -> bool:
        """Whether the tokenizer keeps ``word`` whole (TinyBERT: then the masked LM proposes its candidates)."""
        v = self._single.get(word)
        if v is None:
            pieces = self.tokenizer.tokenize(word)
            v = len(pieces) == 1 and pieces[0] != self.tokenizer.unk_token
            self._single[word] = v
        return v

    def candidates(self, requests: Sequence[tuple[list[str], int]]) -> list[tuple[str, ...]]:
        """For each (sentence words, position): the top-K words the masked LM predicts at that position."""
        torch = self._torch
        if not requests:
            return []
        mask = self.tokenizer.mask_token
        texts = [" ".join([*w[:i], mask, *w[i + 1 :]]) for w, i in requests]
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=False)
        ids = enc["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out: list[tuple[str, ...]] = [()] * len(requests)
        mask_id, pad_id = self.tokenizer.mask_token_id, self.tokenizer.pad_token_id or 0
        top = min(len(self._vocab), self.k + 20)
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                T = max(len(ids[i]) for i in idx)
                x = torch.full((len(idx), T), pad_id, dtype=torch.long)
                att = torch.zeros((len(idx), T), dtype=torch.long)
                for r, i in enumerate(idx):
                    x[r, : len(ids[i])] = torch.tensor(ids[i])
                    att[r, : len(ids[i])] = 1
                logits = self.model(input_ids=x.to(self.device), attention_mask=att.to(self.device)).logits
                rows, cols = (x == mask_id).nonzero(as_tuple=True)
                best = (
                    logits[rows.to(self.device), cols.to(self.device)].float().topk(top, dim=-1).indices.cpu().numpy()
                )
                seen_rows = set()
                for r, cand in zip(rows.tolist(), best, strict=True):
                    if r in seen_rows:  # truncation never adds masks, but a text may contain a literal mask token
                        continue
                    seen_rows.add(r)
                    words, pos = requests[idx[r]]
                    original = words[pos].lower()
                    good = [self._vocab[j] for j in cand if self._word_token[j] and self._vocab[j].lower() != original]
                    out[idx[r]] = tuple(good[: self.k])
        return out


# ---------------------------------------------------------------------------------------------------------------
# generation


@dataclass
class _State:
    cfg: AugmentConfig
    fields: tuple[int, ...]
    neighbours: dict[str, tuple[str, ...]]
    mlm_spec: tuple[str, str] | None  # (name_or_dir, device)
    mlm: FillMask | None = None


_STATE: _State | None = None


def _init_worker(state: _State) -> None:
    global _STATE
    try:
        import torch

        torch.set_num_threads(1)  # workers share the cores; one intra-op thread each
    except ImportError:  # pragma: no cover
        pass
    _STATE = state


def _word_candidates(state: _State, words_per_field: list[list[str]]) -> list[list[tuple[str, ...]]]:
    """Per augmented field, per word: its candidate list (possibly empty)."""
    cands: list[list[tuple[str, ...]]] = []
    for words in words_per_field:
        cands.append([state.neighbours.get(w, ()) if replaceable(w) else () for w in words])
    return cands


def _augment_chunk(job: tuple[int, list[tuple[str, tuple[str, ...], int]]]) -> tuple[list[tuple], int, int]:
    """Variants for rows ``job[1]`` (key, texts, label) starting at global row ``job[0]``.

    Returns (rows (key, source_key, texts, label), examples with at least one candidate, variants generated).
    """
    state = _STATE
    assert state is not None
    cfg = state.cfg
    start, rows = job
    split_words = [[words_of(texts[f]) for f in state.fields] for _, texts, _ in rows]
    cands = [_word_candidates(state, ws) for ws in split_words]
    if state.mlm_spec is not None:
        if state.mlm is None:
            state.mlm = FillMask(state.mlm_spec[0], cfg.k, cfg.mlm_batch_size, cfg.mlm_max_length, state.mlm_spec[1])
        requests, where = [], []
        for r, ws in enumerate(split_words):
            for fi, words in enumerate(ws):
                for i, w in enumerate(words):
                    if replaceable(w) and state.mlm.single_piece(w):
                        requests.append((words, i))
                        where.append((r, fi, i))
        for (r, fi, i), c in zip(where, state.mlm.candidates(requests), strict=True):
            cands[r][fi][i] = c
    out: list[tuple] = []
    eligible = generated = 0
    for r, (key, texts, label) in enumerate(rows):
        rng = np.random.default_rng((cfg.seed, start + r))
        field_cands = cands[r]
        if not any(c for fc in field_cands for c in fc):
            continue
        eligible += 1
        seen = {texts}
        new_fields: list[list[str]] = []
        for words, fc in zip(split_words[r], field_cands, strict=True):
            m = len(words)
            replace = rng.random((cfg.n, m)) < cfg.p
            pick = rng.random((cfg.n, m))
            variants = []
            for v in range(cfg.n):
                variants.append(
                    " ".join(
                        fc[i][int(pick[v, i] * len(fc[i]))] if replace[v, i] and fc[i] else words[i] for i in range(m)
                    )
                )
            new_fields.append(variants)
        j = 0
        for v in range(cfg.n):
            t = list(texts)
            for fi, f in enumerate(state.fields):
                t[f] = new_fields[fi][v]
            tt = tuple(t)
            if tt in seen:
                continue
            seen.add(tt)
            out.append((f"aug:{key}:{j}", key, tt, label))
            j += 1
        generated += j
    return out, eligible, generated


@dataclass
class AugmentReport:
    """What an augmentation run produced; ``str()`` is the appendix-B style label table."""

    path: str
    source_examples: int
    eligible_examples: int  # with at least one replaceable word that has candidates
    generated: int  # distinct variants before the ratio
    kept: int
    seconds: float
    label_names: tuple[str, ...]
    original_labels: np.ndarray = field(repr=False)
    augmented_source_labels: np.ndarray = field(repr=False)
    augmented_teacher_labels: np.ndarray | None = field(default=None, repr=False)

    @property
    def sentences_per_second(self) -> float:
        return self.source_examples / self.seconds if self.seconds > 0 else float("nan")

    def label_table(self) -> str:
        cols = {"original": self.original_labels, "augmented (source label)": self.augmented_source_labels}
        if self.augmented_teacher_labels is not None:
            cols["augmented (teacher argmax)"] = self.augmented_teacher_labels
        return format_label_distribution(self.label_names, cols)

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.kept:,} augmented examples kept of {self.generated:,} generated from"
            f" {self.source_examples:,} examples ({self.eligible_examples:,} augmentable) in {self.seconds:.1f}s"
            f" ({self.sentences_per_second:,.0f} source examples/s)\n{self.label_table()}"
        )


def label_distribution(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Fraction of each label id, (num_labels,).

    >>> label_distribution(np.array([0, 1, 1, 1]), 2).tolist()
    [0.25, 0.75]
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_labels)[:num_labels].astype(np.float64)
    return counts / max(len(labels), 1)


def format_label_distribution(label_names: Sequence[str], columns: dict[str, np.ndarray]) -> str:
    """A table of label percentages per column (thesis table B.1: original vs bootstrapped)."""
    width = max(len(n) for n in label_names) + 2
    head = "label".ljust(width) + "".join(f"{c:>28}" for c in columns)
    lines = [head]
    dists = {c: label_distribution(v, len(label_names)) for c, v in columns.items()}
    for i, name in enumerate(label_names):
        lines.append(name.ljust(width) + "".join(f"{100 * d[i]:>27.1f}%" for d in dists.values()))
    lines.append("n".ljust(width) + "".join(f"{len(v):>28,}" for v in columns.values()))
    return "\n".join(lines)


def _chunks(split: Split, size: int, offset: int = 0) -> Iterator[tuple[int, list[tuple[str, tuple[str, ...], int]]]]:
    """Chunks of ``split`` with their first row's index in the whole train split (``offset`` for a shard)."""
    labels = split.labels.tolist()
    for s in range(0, len(split), size):
        yield offset + s, [(split.keys[i], split.texts[i], labels[i]) for i in range(s, min(s + size, len(split)))]


def _schema(task: TaskSpec, meta: dict[str, Any]):
    import pyarrow as pa

    fields = [("key", pa.string()), ("source_key", pa.string()), ("source_label", pa.int64())]
    fields += [(f, pa.string()) for f in task.text_fields]
    return pa.schema(fields, metadata={META_KEY: json.dumps(meta).encode()})


def resolve_vectors(vectors, task_data: TaskData, cache_dir: str | Path | None, dim: int = 100):
    """``vectors``: gensim KeyedVectors, a file path, or ``"task"``/None = train on the task's own training text."""
    if vectors is None or (isinstance(vectors, str) and vectors == "task"):
        kv, path = task_word_vectors(task_data, cache_dir, dim=dim)
        return kv, f"task:{path or 'in-memory'}"
    if isinstance(vectors, str | Path):
        return load_word_vectors(vectors), str(vectors)
    return vectors, "in-memory"


def augment_to_file(
    task_data: TaskData,
    output: str | Path,
    cfg: AugmentConfig | None = None,
    vectors=None,
    mlm: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool = False,
    vectors_dim: int = 100,
    max_examples: int | None = None,
    rows: tuple[int, int] | None = None,
    allow_empty: bool = False,
) -> AugmentReport:
    """Augment ``task_data``'s train split into the Parquet file ``output`` and return a report.

    ``vectors``: KeyedVectors, a vectors file, or None / ``"task"`` to train word2vec on the task's training text
    (cached under ``cache_dir``). ``mlm``: masked-LM id or directory, required for ``mode="fill-mask"``.
    ``max_examples``: augment only the first rows of the train split (benchmarks, quick looks).
    ``rows``: ``(start, stop)``, augment only these train rows (a shard): each row keeps the random stream it has in
    a run over the whole split, so the shards of a split, concatenated in order, are the whole run's output (with
    ``ratio`` 1; apply the ratio to the concatenation). ``allow_empty``: a shard may produce no rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = cfg or AugmentConfig()
    task = task_data.task
    split = task_data.train
    if max_examples is not None:
        split = split.subset(range(min(max_examples, len(split))))
    offset = 0
    if rows is not None:
        offset, stop = max(0, rows[0]), min(rows[1], len(split))
        split = split.subset(range(offset, max(offset, stop)))
    if len(split) == 0:
        raise DataError(f"task {task.name!r}: the train split is empty; nothing to augment")
    output = Path(output)
    if output.suffix != ".parquet":
        raise ConfigError(f"{output}: the augmented data is written as Parquet; use a .parquet file name")
    if cfg.mode == "fill-mask" and mlm is None:
        raise ConfigError("mode 'fill-mask' needs a masked LM (hub id or directory); use mode 'embedding' without one")
    fields = cfg.field_indices(len(task.text_fields))
    t0 = time.perf_counter()
    kv, vectors_desc = resolve_vectors(vectors, task_data, cache_dir, vectors_dim)
    mlm_probe = FillMask(mlm, cfg.k, cfg.mlm_batch_size, cfg.mlm_max_length, device) if mlm is not None else None
    vocab = {w for t in split.texts for f in fields for w in words_of(t[f]) if replaceable(w)}
    if mlm_probe is not None:
        vocab = {w for w in vocab if not mlm_probe.single_piece(w)}
    neighbours = nearest_neighbours(kv, sorted(vocab), cfg.k, accept=replaceable)
    state = _State(cfg, fields, neighbours, (str(mlm), device) if mlm is not None else None, mlm_probe)
    meta = {
        "task": task.to_dict(),
        "data_fingerprint": task_data.fingerprint(),
        "data_source": recorded_source(task_data.source),
        "text_fields": list(task.text_fields),
        "augmented_fields": [task.text_fields[f] for f in fields],
        "config": cfg.to_dict(),
        "vectors": vectors_desc,
        "mlm": str(mlm) if mlm is not None else None,
        "source_fingerprint": task_data.fingerprint(),
        "source_examples": len(split),
    }
    schema = _schema(task, meta)
    n_chunks = math.ceil(len(split) / cfg.chunk_size)
    eligible = generated = kept = 0
    src_labels: list[np.ndarray] = []
    pool = None

    def write(tmp: Path) -> None:
        nonlocal eligible, generated, kept
        with pq.ParquetWriter(tmp, schema) as writer:
            for rows, e, g in results:
                eligible += e
                # systematic sampling: variant number i (over the whole stream) is kept when floor((i+1)*ratio)
                # steps up, which keeps exactly floor(total * ratio) evenly spread variants
                sel = [
                    r
                    for i, r in enumerate(rows, start=generated)
                    if math.floor((i + 1) * cfg.ratio) > math.floor(i * cfg.ratio)
                ]
                generated += g
                if not sel:
                    continue
                kept += len(sel)
                labels = np.array([r[3] for r in sel], dtype=np.int64)
                src_labels.append(labels)
                cols = {
                    "key": [r[0] for r in sel],
                    "source_key": [r[1] for r in sel],
                    "source_label": labels,
                    **{f: [r[2][i] for r in sel] for i, f in enumerate(task.text_fields)},
                }
                writer.write_table(pa.Table.from_pydict(cols, schema=schema))
        if kept == 0 and not allow_empty:
            raise DataError(
                f"augmentation of task {task.name!r} produced no examples (no word had candidates; are the word"
                f" vectors for this language/casing? vectors: {vectors_desc})"
            )

    try:
        if cfg.workers > 1:
            import multiprocessing as mp

            state.mlm = None  # each worker loads its own copy
            pool = mp.get_context("spawn").Pool(cfg.workers, initializer=_init_worker, initargs=(state,))
            results = pool.imap(_augment_chunk, _chunks(split, cfg.chunk_size, offset))
        else:
            _init_worker_inprocess(state)
            results = map(_augment_chunk, _chunks(split, cfg.chunk_size, offset))
        if progress:
            from tqdm.auto import tqdm

            results = tqdm(results, total=n_chunks, desc="augment", unit="chunk", file=sys.stderr, mininterval=1.0)
        atomic_write(output, write)  # streamed chunk by chunk into a temporary sibling, renamed when complete
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return AugmentReport(
        path=str(output),
        source_examples=len(split),
        eligible_examples=eligible,
        generated=generated,
        kept=kept,
        seconds=time.perf_counter() - t0,
        label_names=task.label_names,
        original_labels=split.labels,
        augmented_source_labels=np.concatenate(src_labels) if src_labels else np.zeros(0, np.int64),
    )


def _init_worker_inprocess(state: _State) -> None:
    global _STATE
    _STATE = state


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""


def check_augmented(path: str | Path, task: TaskSpec | None = None) -> dict[str, Any]:
    """Open an augmented file's Parquet footer only (no rows): it exists, is Parquet, carries the metadata and the
    columns :func:`read_augmented` needs, and (with ``task``) was made for the same task. Returns the metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: augmented data file not found (write one with `featherweight augment`)")
    check_readable(path, "augmented data file")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:  # ArrowInvalid: not Parquet / truncated
        raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {_first_line(e)})") from None
    not_ours = f"{path}: not an augmented-data file from `featherweight augment`"
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise DataError(f"{not_ours} (no metadata)")
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise DataError(f"{not_ours} (its metadata is not valid JSON)") from None
    text_fields = meta.get("text_fields") if isinstance(meta, dict) else None
    if not isinstance(text_fields, list) or not text_fields or not all(isinstance(f, str) for f in text_fields):
        raise DataError(f"{not_ours} (its metadata lacks text_fields)")
    missing = [c for c in (*text_fields, "source_label", "key") if c not in schema.names]
    if missing:
        raise DataError(f"{not_ours} (no column {missing[0]!r})")
    recorded = meta.get("task")
    if task is not None and isinstance(recorded, dict) and recorded != task.to_dict():
        diffs = task.differences(TaskSpec.from_dict(recorded))
        raise DataError(
            f"{path}: augmented data was made for another task definition: {'; '.join(diffs)} (this task vs the file's)"
        )
    if task is not None and tuple(text_fields) != tuple(task.text_fields):
        name = recorded.get("name") if isinstance(recorded, dict) else recorded
        raise DataError(
            f"{path}: augmented data has text fields {text_fields} (task {name!r}),"
            f" task {task.name!r} expects {list(task.text_fields)}"
        )
    return meta


def read_augmented(path: str | Path, task: TaskSpec | None = None) -> tuple[Split, dict[str, Any]]:
    """Read an augmented file: a Split (labels = the source examples' labels) and the file's metadata.

    With ``task``, checks that the file was made for a task with the same text fields.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = check_augmented(path, task)
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:  # a footer that reads, data pages that do not
        raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {_first_line(e)})") from None
    text_fields = meta["text_fields"]
    cols = [table.column(f).to_pylist() for f in text_fields]
    texts = list(zip(*cols, strict=True))
    return Split(
        texts, np.asarray(table.column("source_label").to_numpy(), dtype=np.int64), table.column("key").to_pylist()
    ), meta
