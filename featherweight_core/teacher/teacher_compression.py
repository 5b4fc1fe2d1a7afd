"""What the teacher-compression methods share: their result, how their outputs are measured, int8 quantization,
saving and loading.

Two methods make a smaller transformer from a fine-tuned teacher (seeds BERT-of-Theseus and BERT-Vision):
:mod:`featherweight_core.teacher.theseus` (fewer layers, each replacing a block of the teacher's) and
:mod:`featherweight_core.teacher.bertvision` (the teacher's first k layers, frozen, and a small head on their hidden states).
Both write a directory:

* tokenizer files and ``featherweight_compressed.json`` (:data:`COMPRESSED_META`: method, settings, task, labels,
  layers, max_length, quantized, the teacher it came from, dev metrics);
* float weights saved with ``save_pretrained`` (a Theseus successor is a plain sequence classifier that every other
  command takes as a teacher; BERT-Vision adds ``head.safetensors``), or, when quantized, ``config.json`` and
  ``model_int8.pt`` (:data:`INT8_WEIGHTS`: the state dict of the model after int8 dynamic quantization of every
  ``nn.Linear``), which :func:`featherweight_core.teacher.compressed.load_compressed` rebuilds.

Sizes count what inference needs: every weight file of the directory (:func:`measure_saved`, gzip level 9 as
students are measured). Latency is CPU, batch size 1, the median over single examples (:func:`cpu_latency_ms`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from featherweight_core import vocab
from featherweight_core.compression.quantize import quiet_torch_ao
from featherweight_core.data.tasks import TEST
from featherweight_core.errors import InputFileError, UserError
from featherweight_core.students.latency import interleaved_times
from featherweight_core.students.measure import (
    WEIGHT_FILES,
    gzip_bytes,
    per_class_metrics,
    safetensors_params,
    split_metrics,
    task_metric_names,
    torch_params,
)
from featherweight_core.teacher.batches import tokenize
from featherweight_core.teacher.config import TeacherConfig
from featherweight_core.teacher.devices import resolve_device
from featherweight_core.teacher.loading import load_classifier
from featherweight_core.teacher.modelfiles import (
    TORCH_LOAD_ERRORS,
    first_line,
    load_state_strictly,
    unpickling_message,
)
from featherweight_core.teacher.predict import dev_metrics, predict_dev_splits, predict_logits

METHODS = vocab.TEACHER_COMPRESSION_METHODS
COMPRESSED_META = "featherweight_compressed.json"
INT8_WEIGHTS = "model_int8.pt"
HEAD_WEIGHTS = "head.safetensors"
# Every file that holds weights inference loads, in the order they are measured
MEASURED_FILES = (*WEIGHT_FILES, HEAD_WEIGHTS, INT8_WEIGHTS)
QUANTIZATION_NAME = "int8 dynamic (Linear)"


class CompressedTeacherError(UserError, ValueError):
    """A compressed-teacher directory that cannot be read: missing or malformed metadata, unknown method."""


@dataclass
class CompressedTeacherResult:
    """What a teacher-compression run produced and how it measures.

    metrics: dev metrics as :func:`featherweight_core.teacher.predict.evaluate_teacher` returns them (``score`` included);
    test_metrics: the same on the task's test split, None without one. params: parameters inference needs (every
    weight file of the output); trainable_params: those the method trained. disk_bytes / gzip_bytes: the weight
    files (:func:`measure_saved`). latency_ms: CPU, batch size 1, median (:func:`cpu_latency_ms`). layers: the
    transformer layers inference runs. history: one dict per epoch (epoch, train_loss, score, seconds, ...).
    teacher: the teacher it came from (dir, fingerprint, score, params, layers, and ``latency_ms``: the teacher timed
    interleaved with this model, :func:`cpu_latencies_ms`, so ``speedup`` compares like with like).
    class_metrics: ``{split: measure.per_class_metrics(...)}`` for every dev and test split (:func:`evaluate`).
    """

    method: str
    output_dir: str
    metrics: dict[str, float]
    test_metrics: dict[str, float] | None
    params: int
    trainable_params: int
    disk_bytes: int
    gzip_bytes: int
    latency_ms: float
    layers: int
    quantized: bool
    seconds: float
    history: list[dict] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    teacher: dict[str, Any] = field(default_factory=dict)
    class_metrics: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")

    @property
    def score(self) -> float:
        return float(self.metrics["score"])

    @property
    def speedup(self) -> float | None:
        """How many times faster than the teacher on the CPU at batch size 1 (None when the teacher was not timed)."""
        t = self.teacher.get("latency_ms")
        return float(t) / self.latency_ms if t and self.latency_ms else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompressedTeacherResult:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"compressed-teacher result: unknown field(s) {unknown}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------------------------
# measuring


def _file_params(path: Path, raw: bytes) -> int:
    if path.suffix == ".safetensors":
        return safetensors_params(raw, path)
    with quiet_storage_warning():
        return torch_params(raw, path)


@contextlib.contextmanager
def quiet_storage_warning():
    """Loading a quantized state dict makes torch warn about its own internal use of TypedStorage."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)
        yield


def measure_saved(output_dir: str | Path) -> dict[str, int]:
    """``{"params", "disk_bytes", "gzip_bytes"}`` summed over every weight file of a saved model directory
    (:data:`MEASURED_FILES` present in it): the parameters inference loads, the bytes on disk and their gzip sizes
    (level 9, as students and teachers are measured). Tokenizer and config files are not counted, as for teachers.

    >>> import tempfile, pathlib
    >>> from safetensors.torch import save_file
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> save_file({"w": torch.zeros(3, 4)}, d / "model.safetensors")
    >>> save_file({"head": torch.zeros(5)}, d / "head.safetensors")
    >>> measure_saved(d)["params"]
    17
    """
    d = Path(output_dir)
    if not d.is_dir():
        raise InputFileError(f"{d}: no such model directory")
    files = [d / n for n in MEASURED_FILES if (d / n).is_file()]
    if not files:
        raise InputFileError(f"{d}: no model weights in this directory (expected one of {', '.join(MEASURED_FILES)})")
    out = {"params": 0, "disk_bytes": 0, "gzip_bytes": 0}
    for path in files:
        raw = path.read_bytes()
        out["params"] += _file_params(path, raw)
        out["disk_bytes"] += len(raw)
        out["gzip_bytes"] += gzip_bytes(raw)
    return out


def _on_cpu(model: nn.Module) -> nn.Module:
    tensors = [*model.parameters(), *model.buffers()]
    return model if all(t.device.type == "cpu" for t in tensors) else copy.deepcopy(model).cpu()


def cpu_latency_ms(
    model: nn.Module,
    tokenizer,
    texts: Sequence[tuple[str, ...]],
    max_length: int = 128,
    n: int = 100,
    min_seconds: float = 1.0,
    warmup: int = 3,
) -> float:
    """Median milliseconds of one forward pass at batch size 1 on the CPU, over the first ``n`` of ``texts`` (each
    tokenized to its own length, truncated to ``max_length``), repeated until ``min_seconds`` have passed. A model on
    a GPU is timed on a CPU copy. Uses the calling process' torch thread count."""
    return cpu_latencies_ms([model], tokenizer, texts, max_length, n, min_seconds, warmup)[0]


@torch.inference_mode()
def cpu_latencies_ms(
    models: Sequence[nn.Module],
    tokenizer,
    texts: Sequence[tuple[str, ...]],
    max_length: int = 128,
    n: int = 100,
    min_seconds: float = 1.0,
    warmup: int = 3,
) -> list[float]:
    """:func:`cpu_latency_ms` of several models sharing a tokenizer, interleaved (the models take turns, a block of
    examples each: ``featherweight_core.students.latency.interleaved_times``), so a change in the machine's load falls
    on all of them alike and the ratio of two (a speed-up) is measured under the same conditions.
    ``min_seconds`` bounds the whole measurement."""
    if not len(texts):
        raise ValueError("cpu_latency_ms needs at least one text")
    cpu_models = [_on_cpu(m) for m in models]
    was_training = [m.training for m in cpu_models]
    for m in cpu_models:
        m.eval()
    inputs = []
    for m in cpu_models:
        tok = tokenize(tokenizer, list(texts[:n]), max_length, m)
        inputs.append([tok.batch([i]) for i in range(len(tok))])
    times = interleaved_times(
        [lambda i, m=m, xs=xs: m(**xs[i]) for m, xs in zip(cpu_models, inputs, strict=True)],
        range(len(inputs[0])),
        min_seconds,
        warmup,
    )
    for m, training in zip(cpu_models, was_training, strict=True):
        m.train(training)
    return [statistics.median(t) * 1000.0 for t in times]


@dataclass
class Evaluation:
    """What :func:`evaluate` measured: dev metrics (as :func:`featherweight_core.teacher.predict.evaluate_teacher` returns
    them), test metrics (None without a labelled test split), ``{split: measure.per_class_metrics(...)}`` for every
    dev split and that test split, and the predicted label ids per dev split they came from."""

    metrics: dict[str, float]
    test_metrics: dict[str, float] | None
    class_metrics: dict[str, dict]
    predictions: dict[str, np.ndarray]


def evaluate(
    model: nn.Module, tokenizer, task_data, max_length: int, batch_size: int = 64, device: str = "auto"
) -> Evaluation:
    """Score ``model`` on the task's dev splits and, when it has one with labels, its test split, with per-class
    tables as students record them. A quantized model runs on the CPU."""
    task = task_data.task
    dev = resolve_device("cpu" if is_quantized(model) else device)
    cfg = TeacherConfig(max_length=max_length, eval_batch_size=batch_size, precision="fp32")
    predictions = predict_dev_splits(model, tokenizer, task_data, cfg, dev)
    metrics = dev_metrics(task_data, predictions)
    classes = {s: per_class_metrics(p, task_data.splits[s].labels, task.label_names) for s, p in predictions.items()}
    test = task_data.splits.get(TEST)
    if test is None or not len(test) or (test.labels < 0).any():
        return Evaluation(metrics, None, classes, predictions)
    pred = predict_logits(model, tokenizer, test.texts, batch_size, max_length, dev, "fp32").argmax(-1)
    test_metrics = split_metrics(pred, test.labels, task_metric_names(task), task.num_labels)
    test_metrics["score"] = test_metrics[task.metric]
    classes[TEST] = per_class_metrics(pred, test.labels, task.label_names)
    return Evaluation(metrics, test_metrics, classes, predictions)


def latency_with_teacher(
    model: nn.Module, tokenizer, texts: Sequence[tuple[str, ...]], max_length: int, teacher_dir: str | Path | None
) -> tuple[float, float | None]:
    """``model``'s CPU latency and its teacher's (loaded from ``teacher_dir`` for the purpose), timed interleaved by
    :func:`cpu_latencies_ms`; the teacher's is None when ``teacher_dir`` is None or no longer a directory."""
    if teacher_dir is None or not Path(teacher_dir).is_dir():
        return cpu_latency_ms(model, tokenizer, texts, max_length), None
    teacher, _ = load_classifier(teacher_dir)
    ms, teacher_ms = cpu_latencies_ms([model, teacher], tokenizer, texts, max_length)
    del teacher
    return ms, teacher_ms


# ---------------------------------------------------------------------------------------------------------------
# int8 quantization, saving and loading


def is_quantized(model: nn.Module) -> bool:
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())


def quantize_int8(model: nn.Module) -> nn.Module:
    """A CPU copy of ``model`` with every ``nn.Linear`` dynamically quantized to int8 weights (activations
    quantized on the fly); embeddings and LayerNorms stay float. The original is untouched."""
    from torch.ao.quantization import quantize_dynamic

    quiet_torch_ao()
    q = copy.deepcopy(model).cpu().eval()
    return quantize_dynamic(q, {nn.Linear}, dtype=torch.qint8)


def write_meta(directory: str | Path, meta: dict[str, Any]) -> None:
    (Path(directory) / COMPRESSED_META).write_text(json.dumps(meta, indent=2, default=str) + "\n")


def save_int8(model: nn.Module, directory: str | Path, meta: dict[str, Any]) -> None:
    """Write a quantized model into ``directory`` (the caller's temporary directory of an atomic save): its
    Hugging Face ``config.json`` (when it has one), :data:`INT8_WEIGHTS` and the metadata with ``quantized``
    true. Tokenizer files are the caller's."""
    d = Path(directory)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "save_pretrained"):
        config.save_pretrained(d)
    torch.save(model.state_dict(), d / INT8_WEIGHTS)
    write_meta(d, {**meta, "quantized": True})


def load_int8_state(model: nn.Module, weights: str | Path) -> None:
    """Load :data:`INT8_WEIGHTS` into ``model``, the quantized skeleton its config describes, through torch's
    ``weights_only`` loader (tensors and plain values, never code). A file that is unreadable, whose pickle names
    anything else, or whose tensors do not fit the skeleton is a :class:`CompressedTeacherError` naming it."""
    import pickle

    try:
        with quiet_storage_warning():
            state = torch.load(weights, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CompressedTeacherError(unpickling_message(weights, e)) from None
    except TORCH_LOAD_ERRORS as e:
        raise CompressedTeacherError(
            f"{weights}: not a readable int8 weights file ({type(e).__name__}: {first_line(e)})"
        ) from None
    load_state_strictly(model, state, weights, CompressedTeacherError, "the int8 model its config.json describes")


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The :data:`COMPRESSED_META` of a compressed-teacher directory (one error line when absent or malformed)."""
    d = Path(directory)
    path = d / COMPRESSED_META
    if not d.is_dir():
        raise InputFileError(f"{d}: no such directory")
    if not path.is_file():
        raise CompressedTeacherError(f"{d}: not a compressed-teacher directory (no {COMPRESSED_META})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CompressedTeacherError(f"{path}: not valid JSON ({type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("method") not in METHODS:
        raise CompressedTeacherError(f"{path}: expected a JSON object with method one of {list(METHODS)}")
    return meta
