"""Loading task splits from the HF hub, local GLUE directories, custom TSV/CSV files, or the synthetic generator.

Every loader returns a :class:`TaskData`: per split, the text columns, integer labels and a stable string key per
example (used to align teacher logits and bootstrap data). Rows that are malformed (wrong column count, missing or
unknown label) are skipped and counted in a :class:`LoadReport`; a file whose header is wrong, or whose labels are
mostly not in the task's label set, is a :class:`DataError` naming the file, line and value.

A data file is refused (not trained on with what is left) when its structure is broken:

* malformed quoting: a quote that never closes where it should turns the rest of the file into one field. A row
  whose fields hold line breaks is a legal quoted multi-line text, unless two or more of the lines inside it would
  be complete rows on their own (the header's column count and a known label in the label column): then it is a
  runaway quote, reported with the line where that row starts;
* most of the content vanished: fewer than half of the rows read are usable (wrong column count, missing or
  unknown label, empty text), reported with the counts;
* a training split that holds a single class: a classifier needs at least two (checked by :func:`load_task_data`
  for data read from files or the hub).

A file that exists but cannot be read (permission denied, a directory) is an ``InputFileError`` naming it.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import os
import socket
import sys
from pathlib import Path

import numpy as np

from featherweight_core.data.synthetic import generate_synthetic
from featherweight_core.data.taskdata import (
    DataError,
    LoadReport,
    Split,
    SplitReport,
    TaskData,
    check_train_classes,
    split_indices,
)
from featherweight_core.data.tasks import SplitConfig, TaskSpec
from featherweight_core.errors import ConfigError
from featherweight_core.readable import read_input_bytes

# A label set is "wrong" (not merely a few bad rows) when more than this fraction of rows have unknown labels.
_MAX_UNKNOWN_LABEL_FRACTION = 0.1
# A file is broken (not merely a few bad rows) when fewer than this fraction of its rows are usable.
_MIN_KEPT_FRACTION = 0.5
# A multi-line field holding at least this many lines that are complete rows of their own is a runaway quote.
_MAX_EMBEDDED_ROWS = 2
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _label_index(task: TaskSpec) -> dict[str, int]:
    """Labels may be written as names ('entailment') or as integer ids ('0'); a name wins over an id (a custom
    task's label names may themselves be digits)."""
    index = {str(i): i for i in range(task.num_labels)}
    index.update({name: i for i, name in enumerate(task.label_names)})
    return index


def _ascii_compatible(encoding: str) -> bool:
    try:
        return "\n,\t".encode(encoding) == b"\n,\t" and b"\n".decode(encoding) == "\n"
    except (UnicodeError, LookupError):
        return False


def _decode_lines(path: Path, encoding: str, on_bad_bytes: str) -> tuple[list[str], set[int]]:
    """The file's lines (1-based line i is ``lines[i-1]``, newline kept) and the line numbers that held bytes
    not valid in ``encoding`` (replaced by U+FFFD), or a DataError at the first such line with ``error``."""
    raw = read_input_bytes(path, "data file")
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8") and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    bad: set[int] = set()
    if not _ascii_compatible(encoding):  # utf-16/32: decode the whole file; a bad byte's line from its offset
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as e:
            line = raw.decode(encoding, "replace").count("\n", 0, e.start // 2) + 1
            if on_bad_bytes == "error":
                raise DataError(
                    f"{path}:{line}: bytes not valid {encoding} ({e.reason}); pass --encoding or --on-bad-bytes replace"
                ) from None
            text = raw.decode(encoding, "replace")
            bad.add(line)
        return text.splitlines(keepends=True), bad
    pieces = raw.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    lines: list[str] = []
    for piece in pieces:
        try:
            text = piece.decode(encoding)
            is_bad = False
        except UnicodeDecodeError as e:
            if on_bad_bytes == "error":
                raise DataError(
                    f"{path}:{len(lines) + 1}: bytes not valid {encoding} ({e.reason} at column {e.start + 1});"
                    " pass --encoding or --on-bad-bytes replace"
                ) from None
            text, is_bad = piece.decode(encoding, "replace"), True
        # CRLF ends a line like LF; a lone CR too (as universal newlines do)
        for part in text.removesuffix("\r").split("\r"):
            lines.append(part + "\n")
            if is_bad:
                bad.add(len(lines))
    return lines, bad


def _delimiter(path: Path, lines: list[str]) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return ","
    if suffix == ".tsv":
        return "\t"
    sample = "".join(lines[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        return "\t" if "\t" in (lines[0] if lines else "") else ","


def read_table(
    path: Path,
    task: TaskSpec,
    split: str,
    text_columns: tuple[str, ...],
    label_column: str,
    key_column: str | None = None,
) -> tuple[Split, SplitReport]:
    """Read one TSV/CSV file with a header row. Delimiter: tab for .tsv, comma for .csv, sniffed otherwise.

    Decoded with ``task.encoding`` line by line; extra columns are ignored. Bad rows are counted per kind in the
    :class:`SplitReport` (see there); custom tasks also skip rows whose text is empty."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the {split!r} split of task {task.name!r})")
    lines, bad_lines = _decode_lines(path, task.encoding, task.on_bad_bytes)
    delimiter = _delimiter(path, lines)
    quoting = csv.QUOTE_MINIMAL if delimiter != "\t" else csv.QUOTE_NONE
    labels_by_name = _label_index(task)
    report = SplitReport(source=str(path))
    texts: list[tuple[str, ...]] = []
    labels: list[int] = []
    keys: list[str] = []
    first_unknown: tuple[int, str] | None = None
    reader = csv.reader(iter(lines), delimiter=delimiter, quoting=quoting)
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}:1: file is empty (expected a header row with {list(text_columns)})")
    header = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in (*text_columns, label_column) if c not in header]
    if missing:
        raise DataError(
            f"{path}:1: header {header} lacks column(s) {missing}; expected text column(s)"
            f" {list(text_columns)} and label column {label_column!r}"
        )
    text_idx = [header.index(c) for c in text_columns]
    label_idx = header.index(label_column)
    key_idx = header.index(key_column) if key_column and key_column in header else None
    end = reader.line_num
    rows = iter(reader)
    while True:
        try:
            row = next(rows, None)
        except csv.Error as e:  # e.g. a field larger than the csv module allows
            raise DataError(
                f"{path}:{reader.line_num}: not readable as {'TSV' if delimiter == chr(9) else 'CSV'} ({e})"
            ) from None
        if row is None:
            break
        line_no, end = end + 1, reader.line_num
        if not row:  # a blank line
            continue
        if end > line_no and quoting != csv.QUOTE_NONE:
            _check_quoting(path, row, line_no, end, delimiter, len(header), label_idx, labels_by_name)
        report.rows += 1
        where = f"{path}:{line_no}"
        if any(n in bad_lines for n in range(line_no, end + 1)):
            report.count("bad_bytes", where)
        if len(row) != len(header):
            report.count("wrong_columns", where)
            continue
        raw_label = row[label_idx].strip()
        if raw_label == "" or raw_label == "-":
            report.count("missing_label", where)
            continue
        label = labels_by_name.get(raw_label)
        if label is None:
            report.count("unknown_label", where)
            if first_unknown is None:
                first_unknown = (line_no, raw_label)
            continue
        text = tuple(row[i].strip() for i in text_idx)
        if task.custom and not all(text):
            report.count("empty_text", where)
            continue
        texts.append(text)
        labels.append(label)
        keys.append(f"{split}:{row[key_idx] if key_idx is not None else line_no}")
        report.kept += 1
    if first_unknown is not None and report.unknown_label > _MAX_UNKNOWN_LABEL_FRACTION * max(report.rows, 1):
        line_no, value = first_unknown
        ids = f" or their ids 0..{task.num_labels - 1}"
        raise DataError(
            f"{path}:{line_no}: label {value!r} is not in the label set of task {task.name!r}"
            f" ({list(task.label_names)}{ids}); {report.unknown_label} of {report.rows} rows have unknown labels"
        )
    if report.kept == 0:
        raise DataError(f"{path}: no usable rows ({report})")
    if report.kept < _MIN_KEPT_FRACTION * report.rows:
        raise DataError(
            f"{path}: most rows are unusable, refusing to go on with what is left: {str(report)[len(str(path)) + 2 :]};"
            " check the delimiter, the quoting and the column count"
        )
    return Split(texts, np.array(labels, dtype=np.int64), keys), report


def _check_quoting(
    path: Path,
    row: list[str],
    start: int,
    end: int,
    delimiter: str,
    n_columns: int,
    label_idx: int,
    labels_by_name: dict[str, int],
) -> None:
    """A DataError when the row read from lines ``start..end`` holds a field whose lines would be complete rows of
    their own (at least ``_MAX_EMBEDDED_ROWS`` of them): a quote opened at ``start`` swallowed the rows after it."""
    embedded = 0
    for value in row:
        if "\n" not in value:
            continue
        for piece in value.split("\n"):
            parsed = next(csv.reader([piece], delimiter=delimiter), [])
            if len(parsed) == n_columns and parsed[label_idx].strip() in labels_by_name:
                embedded += 1
    if embedded >= _MAX_EMBEDDED_ROWS:
        raise DataError(
            f"{path}:{start}: malformed quoting: a quote opened in the row at line {start} runs on to line"
            f" {end}, so {embedded} lines that are rows of their own became part of one field; remove the stray"
            ' quote, or quote the whole field and double the quotes inside it ("say ""hi""")'
        )


def load_glue_dir(task: TaskSpec, root: str | Path) -> TaskData:
    """Load a task from GLUE TSVs. ``root`` is either the GLUE root (containing e.g. ``SST-2/``) or the task dir."""
    root = Path(root)
    if not task.glue_files:
        raise DataError(f"task {task.name!r} has no GLUE file layout; use a custom task for local files")
    task_dir = root / task.glue_dir if task.glue_dir and (root / task.glue_dir).is_dir() else root
    if not (task_dir / task.glue_files["train"]).is_file():
        raise DataError(
            f"{task_dir}: no {task.glue_files['train']} here; expected a GLUE directory holding"
            f" {sorted(task.glue_files.values())} (or its parent with a {task.glue_dir}/ folder)"
        )
    splits: dict[str, Split] = {}
    report = LoadReport()
    for split, fname in task.glue_files.items():
        path = task_dir / fname
        if (
            split != "train"
            and not path.is_file()
            and any((task_dir / task.glue_files[s]).is_file() for s in task.eval_splits)
        ):
            # e.g. the MNLI samples ship dev_matched only; the headline score then averages what exists.
            print(
                f"warning: {path} not found; task {task.name!r} is evaluated without {split!r}",
                file=sys.stderr,
            )
            continue
        key_col = "id" if task.name == "qqp" else ("pairID" if task.name == "mnli" else None)
        sp, rep = read_table(path, task, split, task.glue_text_columns, task.glue_label_column, key_col)
        splits[split] = sp
        report.splits[split] = rep
    return TaskData(task, splits, report, source=str(task_dir))


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_hub(task: TaskSpec, cache_dir: str | None = None) -> TaskData:
    """Load a GLUE task through `datasets`. Fails fast offline with a pointer to local files."""
    if task.hub_id is None:
        raise DataError(f"task {task.name!r} is not on the HF hub; pass a local data directory instead")
    hint = (
        f"cannot load {task.hub_id[0]}/{task.hub_id[1]} from the Hugging Face hub (offline?);"
        f" pass --data PATH with a local GLUE directory (e.g. data/glue) instead"
    )
    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    if not offline and not hub_reachable():
        raise DataError(hint)
    try:
        import datasets  # heavy import, only when the hub is used

        ds = datasets.load_dataset(*task.hub_id, cache_dir=cache_dir)
    except Exception as e:  # datasets raises many types offline (ConnectionError, FileNotFoundError, ...)
        raise DataError(f"{hint} ({type(e).__name__}: {e})") from None
    splits: dict[str, Split] = {}
    report = LoadReport()
    for split in ("train", *task.eval_splits):
        rows = ds[split]
        cols = [rows[c] for c in task.text_fields]
        labels = np.asarray(rows["label"], dtype=np.int64)
        keep = labels >= 0  # GLUE test splits carry -1
        idx = rows["idx"] if "idx" in rows.column_names else list(range(len(labels)))
        texts = [tuple(c[i] for c in cols) for i in range(len(labels)) if keep[i]]
        keys = [f"{split}:{idx[i]}" for i in range(len(labels)) if keep[i]]
        splits[split] = Split(texts, labels[keep], keys)
        report.splits[split] = SplitReport(f"hub:{split}", rows=len(labels), kept=int(keep.sum()))
    return TaskData(task, splits, report, source=f"hub:{task.hub_id[0]}/{task.hub_id[1]}")


_SPLIT_FILES = (("train", ("train",)), ("validation", ("dev", "validation")), ("test", ("test",)))


def load_custom(
    task: TaskSpec,
    path: str | Path,
    dev_fraction: float | None = None,
    seed: int | None = None,
    test_fraction: float | None = None,
) -> TaskData:
    """Load a user task from a directory with ``train.{tsv,csv}`` and ``dev.{tsv,csv}`` (or ``validation``), and
    optionally ``test.{tsv,csv}``; or from one file, split by ``task.split`` (the keyword arguments override its
    fields) into train, validation and (test_fraction > 0) test."""
    path = Path(path)
    report = LoadReport()
    cols, label_col = task.text_columns, task.label_column if task.custom else task.glue_label_column
    if path.is_dir():
        found: dict[str, Path] = {}
        for split, stems in _SPLIT_FILES:
            for stem in stems:
                for ext in (".tsv", ".csv"):
                    if (path / f"{stem}{ext}").is_file():
                        found.setdefault(split, path / f"{stem}{ext}")
            if split not in found and split != "test":
                raise DataError(f"{path}: no {stems[0]}.tsv or {stems[0]}.csv in this directory")
        splits = {}
        for split, p in found.items():
            splits[split], report.splits[split] = read_table(p, task, split, cols, label_col)
        info = {
            "mode": "files",
            "files": {k: v.name for k, v in found.items()},
            "sizes": {k: len(v) for k, v in splits.items()},
        }
        return TaskData(task, splits, report, source=str(path), split_info=info)
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory (expected a TSV/CSV file or a directory)")
    over = {
        k: v
        for k, v in (("dev_fraction", dev_fraction), ("seed", seed), ("test_fraction", test_fraction))
        if v is not None
    }
    try:
        split_cfg = dataclasses.replace(task.split, **over)
    except ConfigError as e:
        raise DataError(str(e)) from None
    full, rep = read_table(path, task, "all", cols, label_col)
    report.splits["all"] = rep
    return _held_out(task, full, split_cfg, report, str(path))


def _held_out(
    task: TaskSpec,
    full: Split,
    split_cfg: SplitConfig,
    report: LoadReport,
    source: str,
    extra: dict[str, Split] | None = None,
) -> TaskData:
    parts = split_indices(full.labels, split_cfg)
    splits = {name: full.subset(idx.tolist()) for name, idx in parts.items()}
    for name, sp in splits.items():
        if not len(sp):
            raise DataError(
                f"{source}: the {name!r} split is empty ({len(full)} usable rows, split"
                f" {split_cfg.to_dict()}); give more data or other fractions"
            )
    splits.update(extra or {})
    info = {"mode": "held_out", **split_cfg.to_dict(), "sizes": {k: len(v) for k, v in splits.items()}}
    return TaskData(task, splits, report, source=source, split_info=info)


def load_hf_custom(task: TaskSpec, source: str, cache_dir: str | None = None) -> TaskData:
    """A custom task from a Hugging Face dataset: ``hf:OWNER/NAME`` or ``hf:OWNER/NAME:CONFIG``. Its ``train``,
    ``validation`` (or ``dev``) and ``test`` splits are used; without a dev split one is held out of train by
    ``task.split``. Fails fast offline with a pointer to local files."""
    spec = source[len("hf:") :]
    path, _, config = spec.partition(":")
    if not path or "/" not in path:
        raise DataError(f"{source!r}: expected hf:OWNER/NAME or hf:OWNER/NAME:CONFIG")
    hint = (
        f"cannot load {spec} from the Hugging Face hub (offline?); pass --data with a local CSV/TSV file or a"
        " directory of train/dev files instead"
    )
    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    if not offline and not hub_reachable():
        raise DataError(hint)
    try:
        import datasets

        ds = datasets.load_dataset(path, config or None, cache_dir=cache_dir)
    except Exception as e:  # datasets raises many types offline (ConnectionError, FileNotFoundError, ...)
        raise DataError(
            f"{hint} ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})"
        ) from None
    labels_by_name = _label_index(task)
    splits: dict[str, Split] = {}
    report = LoadReport()
    for split, names in _SPLIT_FILES:
        name = next((n for n in names if n in ds), None)
        if name is None:
            continue
        rows = ds[name]
        missing = [c for c in (*task.text_columns, task.label_column) if c not in rows.column_names]
        if missing:
            raise DataError(f"{source} split {name!r}: no column(s) {missing} (it has {rows.column_names})")
        feature = rows.features.get(task.label_column)
        to_name = feature.int2str if hasattr(feature, "int2str") else None
        rep = SplitReport(f"{source}:{name}")
        texts, labels, keys = [], [], []
        cols = [rows[c] for c in task.text_columns]
        for i, value in enumerate(rows[task.label_column]):
            rep.rows += 1
            where = f"{source}:{name}:{i}"
            if value is None or value == "" or (isinstance(value, int) and value < 0):
                rep.count("missing_label", where)
                continue
            label = labels_by_name.get(to_name(value) if to_name and isinstance(value, int) else str(value))
            if label is None:
                label = labels_by_name.get(str(value))
            if label is None:
                rep.count("unknown_label", where)
                continue
            text = tuple(str(c[i] or "").strip() for c in cols)
            if not all(text):
                rep.count("empty_text", where)
                continue
            texts.append(text)
            labels.append(label)
            keys.append(f"{split}:{i}")
            rep.kept += 1
        if rep.unknown_label > _MAX_UNKNOWN_LABEL_FRACTION * max(rep.rows, 1):
            raise DataError(
                f"{rep.first['unknown_label']}: labels not in the label set of task {task.name!r}"
                f" ({list(task.label_names)}); {rep.unknown_label} of {rep.rows} rows"
            )
        if rep.kept == 0:
            raise DataError(f"{source} split {name!r}: no usable rows ({rep})")
        splits[split] = Split(texts, np.array(labels, dtype=np.int64), keys)
        report.splits[split] = rep
    if "train" not in splits:
        raise DataError(f"{source}: no 'train' split (it has {list(ds)})")
    if "validation" not in splits:
        extra = {k: v for k, v in splits.items() if k == "test"}
        return _held_out(
            task, splits["train"], dataclasses.replace(task.split, test_fraction=0.0), report, source, extra
        )
    info = {"mode": "hub", "sizes": {k: len(v) for k, v in splits.items()}}
    return TaskData(task, splits, report, source=source, split_info=info)


def load_synthetic(task: TaskSpec, n_train: int = 3000, n_dev: int = 500, seed: int = 13) -> TaskData:
    """The built-in deterministic demo task (see :mod:`featherweight_core.data.synthetic`)."""
    splits = {}
    report = LoadReport()
    for i, (split, n) in enumerate((("train", n_train), ("validation", n_dev))):
        texts, labels = generate_synthetic(n, seed=seed * 1000 + i, pair=task.pair)
        splits[split] = Split(texts, labels, [f"{split}:{j}" for j in range(n)])
        report.splits[split] = SplitReport(f"synthetic:{split}", rows=n, kept=n)
    return TaskData(task, splits, report, source=f"synthetic(seed={seed})")


def load_task_data(task: TaskSpec, source: str | Path | None = None, **kwargs) -> TaskData:
    """Load ``task`` from ``source``: ``"hub"``, ``"synthetic"``, or a local path (GLUE dir or custom files);
    a custom task also from ``hf:OWNER/NAME[:CONFIG]``.

    ``None`` picks the natural default: the generator for synthetic tasks, the hub for GLUE tasks.
    """
    if task.name.startswith("synthetic") and not task.custom:
        if source not in (None, "synthetic"):
            raise DataError(f"task {task.name!r} is generated; data source must be 'synthetic', got {source!r}")
        data = load_synthetic(task, **kwargs)
        data.split_info = {"mode": "synthetic", "sizes": {k: len(v) for k, v in data.splits.items()}}
        return data
    if task.custom:
        if source is None or source in ("hub", "synthetic"):
            raise DataError(
                f"custom task {task.name!r} is not on the HF hub under its name; pass --data with a"
                f" CSV/TSV file, a directory with train and dev files, or hf:OWNER/NAME (got {source!r})"
            )
        if str(source).startswith("hf:"):
            return check_train_classes(load_hf_custom(task, str(source), **kwargs))
        return check_train_classes(load_custom(task, source, **kwargs))
    if source is None or source == "hub":
        data = load_hub(task, **kwargs)
    elif source == "synthetic":
        raise DataError(f"data source 'synthetic' only serves the synthetic tasks, not {task.name!r}")
    elif task.glue_files:
        data = load_glue_dir(task, source)
    else:
        return check_train_classes(load_custom(task, source, **kwargs))
    data.split_info = {"mode": "predefined", "sizes": {k: len(v) for k, v in data.splits.items()}}
    return check_train_classes(data)
