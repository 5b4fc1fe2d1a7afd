"""A model's CPU speed in each runtime it deploys to, beside its teacher's: :func:`measure_speed` times the PyTorch
model and its ONNX artefact in ONNX Runtime (exported and checked for the purpose unless one is given), and
optionally the teacher it was distilled from, all interleaved in this process
(:func:`featherweight_core.students.latency.measure_latencies`): batch-1 latency (median, 90th percentile) over dev
examples and throughput in batches of 256, with this process' thread count.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn

from featherweight_core.export.exporter import EXPORT_META, export_model
from featherweight_core.export.parity import (
    onnx_runner,
    student_inputs,
    student_is_quantized,
    teacher_is_quantized,
    transformer_inputs,
)
from featherweight_core.export.sources import ExportError, load_source, resolve_task_data, source_task_metas
from featherweight_core.students.latency import THROUGHPUT_BATCH, Latency, Timed, measure_latencies
from featherweight_core.teacher.batches import tokenize
from featherweight_core.teacher.loading import load_classifier
from featherweight_core.vocab import LATENCY_RUNTIMES

MAX_THROUGHPUT_BATCHES = 2  # batches of 256 each model runs per pass (a teacher's take a second or more each)


def _spread(items: list, n: int) -> list:
    """``n`` of ``items`` spread evenly (inputs come in length order: the first ``n`` would be the shortest)."""
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def _student_timed(src, splits, bpemb_dir, n: int) -> tuple[list, list, list[int]]:
    singles, _ = student_inputs(src, splits, bpemb_dir, 1)
    batches, _ = student_inputs(src, splits, bpemb_dir, THROUGHPUT_BATCH)
    big = _spread([b for _, b in batches.batches], MAX_THROUGHPUT_BATCHES)
    return _spread([b for _, b in singles.batches], n), big, [int(b[0].shape[0]) for b in big]


def _teacher_timed(teacher_dir: str | Path, splits, n: int, max_length: int) -> Timed:
    model, tokenizer = load_classifier(teacher_dir)
    model = model.eval()
    texts = [t for sp in splits for t in sp.texts]
    tok = tokenize(tokenizer, texts, max_length, model)
    order = np.argsort(-tok.lengths, kind="stable")
    singles = _spread([tok.batch([int(i)]) for i in order], n)
    big = _spread(
        [tok.batch(order[i : i + THROUGHPUT_BATCH]) for i in range(0, len(order), THROUGHPUT_BATCH)],
        MAX_THROUGHPUT_BATCHES,
    )
    return Timed(
        "teacher",
        "torch",
        "int8" if teacher_is_quantized(model) else "float",
        lambda b: model(**b),
        singles,
        big,
        [int(b["input_ids"].shape[0]) for b in big],
    )


def measure_speed(
    source: str | Path,
    runtimes: Sequence[str] = LATENCY_RUNTIMES,
    task_data=None,
    teacher_dir: str | Path | None = None,
    artefact_dir: str | Path | None = None,
    data: str | None = None,
    bpemb_dir: str | Path | None = None,
    n: int = 100,
    min_seconds: float = 1.0,
    teacher_max_length: int = 128,
    name: str = "trial",
    others: Sequence[tuple[str, str | Path]] = (),
) -> list[Latency]:
    """Latency of ``source`` (a student checkpoint, a fine-tuned or compressed teacher, as for
    :func:`~featherweight_core.export.exporter.export_model`) in each of ``runtimes`` (``torch``: the PyTorch model;
    ``onnxruntime``: the ONNX artefact in ``artefact_dir``, else one exported into a temporary directory), of the
    ``others`` (``(name, path)``: e.g. the float student beside its compressed one) in the same runtimes, and of the
    teacher in ``teacher_dir`` (PyTorch) when given, all timed interleaved on ``n`` dev examples of the task. A model
    that does not export as ONNX has no ``onnxruntime`` row. Rows come in that order, named ``name``, the others'
    names and ``teacher``."""
    bad = [r for r in runtimes if r not in LATENCY_RUNTIMES]
    if bad or not runtimes:
        raise ExportError(f"runtimes must be some of {list(LATENCY_RUNTIMES)}, got {list(runtimes)!r}")
    src = load_source(source)
    if task_data is None:
        task_data = resolve_task_data(source_task_metas(src), data, f"{src.path}")
    splits = [task_data.splits[s] for s in task_data.task.eval_splits if s in task_data.splits]
    with tempfile.TemporaryDirectory(prefix="featherweight-speed-") as tmp:
        timed = _timed(src, name, runtimes, task_data, splits, artefact_dir, Path(tmp) / name, bpemb_dir, n)
        for other, path in others:
            timed += _timed(
                load_source(path), other, runtimes, task_data, splits, None, Path(tmp) / other, bpemb_dir, n
            )
        if teacher_dir is not None and Path(teacher_dir).is_dir():
            timed.append(_teacher_timed(teacher_dir, splits, n, teacher_max_length))
        return measure_latencies(timed, n=n, min_seconds=min_seconds, batch_seconds=min_seconds)


def _timed(src, name, runtimes, task_data, splits, artefact_dir, scratch: Path, bpemb_dir, n: int) -> list[Timed]:
    if src.is_student:
        singles, big, rows = _student_timed(src, splits, bpemb_dir, n)
        quantized = student_is_quantized(src.model)

        def run_torch(b, model: nn.Module = src.model):
            return model(*b)
    else:
        ins, _ = transformer_inputs(src, splits, 1)
        many, _ = transformer_inputs(src, splits, THROUGHPUT_BATCH)
        singles = _spread([b for _, b in ins.batches], n)
        big = _spread([b for _, b in many.batches], MAX_THROUGHPUT_BATCHES)
        rows = [int(b[0].shape[0]) for b in big]
        quantized = teacher_is_quantized(src.model)
        names = ins.names

        def run_torch(b, model: nn.Module = src.model):
            return model(**dict(zip(names, b, strict=True))).logits

    precision = "int8" if quantized else "float"
    timed = []
    if "torch" in runtimes:
        timed.append(Timed(name, "torch", precision, run_torch, singles, big, rows))
    if "onnxruntime" in runtimes:
        onnx_file = _onnx_artefact(src.path, task_data, artefact_dir, scratch, bpemb_dir)
        if onnx_file is not None:
            timed.append(Timed(name, "onnxruntime", precision, onnx_runner(onnx_file), singles, big, rows))
    return timed


def _onnx_artefact(source, task_data, artefact_dir, scratch: Path, bpemb_dir) -> Path | None:
    """The ONNX model file of ``artefact_dir`` (None when it is TorchScript), else of a fresh export into
    ``scratch`` (None when the model does not export as ONNX)."""
    if artefact_dir is not None:
        meta = json.loads((Path(artefact_dir) / EXPORT_META).read_text())
        return Path(artefact_dir) / meta["model_file"] if meta["format"] == "onnx" else None
    report = export_model(source, scratch, task_data, bpemb_dir=bpemb_dir)
    return scratch / report.model_file if report.format == "onnx" else None
