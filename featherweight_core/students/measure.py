"""Metrics (thesis 6.4) and size measures: small pure functions.

Sizes: ``disk_bytes`` is the byte length of ``torch.save(model.state_dict())``; ``gzip_bytes`` is that file
compressed with gzip (DEFLATE, level 9, Python's ``gzip`` module) as the thesis measured compressed models
(:func:`gzip_bytes`). A model saved by Hugging Face (a teacher) is measured the same way from its weight file by
:func:`saved_model_sizes`, so students and teachers share one axis on every chart.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from featherweight_core import vocab
from featherweight_core.data.batching import iter_batches
from featherweight_core.errors import ConfigError, InputFileError, UserError
from featherweight_core.students.models import build_student, default_num_embeddings

GROUPS = vocab.MODULE_GROUPS
# Weight files of a saved Hugging Face model, in the order they are looked for
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
GZIP_LEVEL = 9


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of correct predictions.

    >>> accuracy(np.array([1, 0, 1]), np.array([1, 1, 1]))
    0.6666666666666666
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"pred shape {pred.shape} != labels shape {labels.shape}")
    return float((pred == labels).mean()) if len(labels) else float("nan")


def f1_score(pred: np.ndarray, labels: np.ndarray, positive: int = 1) -> float:
    """F1 of the positive class: tp / (tp + (fp + fn) / 2) (thesis eq. 6.9); 0.0 when there are no positives.

    >>> f1_score(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    0.5
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    tp = int(((pred == positive) & (labels == positive)).sum())
    fp = int(((pred == positive) & (labels != positive)).sum())
    fn = int(((pred != positive) & (labels == positive)).sum())
    denom = tp + 0.5 * (fp + fn)
    return tp / denom if denom else 0.0


def _confusion(pred: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    pred, labels = np.asarray(pred, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if pred.shape != labels.shape:
        raise ValueError(f"pred shape {pred.shape} != labels shape {labels.shape}")
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm


def _prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(float)
    pred_n, true_n = cm.sum(0).astype(float), cm.sum(1).astype(float)
    precision = np.divide(tp, pred_n, out=np.zeros_like(tp), where=pred_n > 0)
    recall = np.divide(tp, true_n, out=np.zeros_like(tp), where=true_n > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1


def macro_f1(pred: np.ndarray, labels: np.ndarray, num_labels: int) -> float:
    """Unweighted mean over all ``num_labels`` classes of each class's F1 (0.0 for a class never predicted nor
    present).

    >>> # class 0: tp 1, fp 1, fn 0 -> 2/3; class 1: tp 1, fp 0, fn 1 -> 2/3; class 2: tp 1 -> 1
    >>> round(macro_f1(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3), 4)
    0.7778
    """
    if num_labels < 1:
        raise ValueError(f"num_labels must be >= 1, got {num_labels}")
    return float(_prf(_confusion(pred, labels, num_labels))[2].mean())


def per_class_metrics(pred: np.ndarray, labels: np.ndarray, label_names) -> dict:
    """Per class precision, recall, F1 and support, plus the confusion matrix (rows = true label, columns =
    predicted label); 0.0 where a ratio has a zero denominator.

    >>> m = per_class_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), ["a", "b", "c"])
    >>> m["confusion"], m["support"], m["precision"], m["recall"]
    ([[1, 0, 0], [1, 1, 0], [0, 0, 1]], [1, 2, 1], [0.5, 1.0, 1.0], [1.0, 0.5, 1.0])
    """
    names = [str(x) for x in label_names]
    cm = _confusion(pred, labels, len(names))
    precision, recall, f1 = _prf(cm)
    return {
        "labels": names,
        "precision": [float(x) for x in precision],
        "recall": [float(x) for x in recall],
        "f1": [float(x) for x in f1],
        "support": [int(x) for x in cm.sum(1)],
        "confusion": cm.tolist(),
    }


METRICS = {"accuracy": accuracy, "f1": f1_score}


def split_metrics(
    pred: np.ndarray, labels: np.ndarray, names: tuple[str, ...], num_labels: int | None = None
) -> dict[str, float]:
    """The named metrics of one split; ``macro_f1`` needs ``num_labels`` (default: inferred from the data)."""
    out = {}
    for name in names:
        if name == "macro_f1":
            n = num_labels or int(max(np.max(pred, initial=0), np.max(labels, initial=0)) + 1)
            out[name] = macro_f1(pred, labels, n)
        else:
            out[name] = METRICS[name](pred, labels)
    return out


def task_metric_names(task) -> tuple[str, ...]:
    """The flat metrics reported for ``task``: accuracy and macro_f1 always, f1 for binary tasks, the task's
    headline metric and extras."""
    binary = ("f1",) if task.num_labels == 2 else ()
    return tuple(dict.fromkeys(("accuracy", "macro_f1", *binary, task.metric, *task.extra_metrics)))


def _group_of(name: str) -> str:
    head = name.split(".", 1)[0]
    return head if head in GROUPS else "other"


def _tensor_items(model: nn.Module):
    """Yield (name, tensor) for every stored weight, including packed weights of quantized modules."""
    for name, value in model.state_dict().items():
        if isinstance(value, torch.Tensor):
            if value.is_quantized:
                yield name, value.dequantize()
            elif value.is_floating_point():
                yield name, value
        elif isinstance(value, tuple | list):
            for i, v in enumerate(value):
                if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_quantized):
                    yield f"{name}.{i}", v.dequantize() if v.is_quantized else v


def param_counts(model: nn.Module, nonzero: bool = True) -> dict[str, int]:
    """Parameter counts: ``total``, per group (``embedding``, ``encoder``, ``classifier``) and ``nonzero``.

    Counts trainable parameters for float models. Buffers (e.g. masks) are not parameters and are not counted.
    ``nonzero=False`` leaves the ``nonzero`` count out and reads no tensor data (a float model on the meta device).
    """
    if _has_quantized(model):  # packed / float16 weights are not Parameters; partly quantized models mix both
        return stored_param_counts(model)
    counts = dict.fromkeys(("total", *GROUPS, *(("nonzero",) if nonzero else ())), 0)
    params = list(model.named_parameters())
    if not params:  # quantized models hold packed weights, not Parameters
        params = [(n, t) for n, t in _tensor_items(model) if not n.endswith(("scale", "zero_point"))]
    for name, p in params:
        n = p.numel()
        counts["total"] += n
        group = _group_of(name)
        if group in counts:
            counts[group] += n
        if nonzero:
            counts["nonzero"] += int(torch.count_nonzero(p.detach()).item())
    return counts


def state_dict_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def disk_size(model: nn.Module) -> dict[str, int]:
    """Bytes of the state_dict saved to disk, and gzip size of that file.

    Written to a unique temporary file (mkstemp), so parallel trials never collide.
    """
    fd, path = tempfile.mkstemp(prefix="featherweight-size-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(model.state_dict(), f)
        with open(path, "rb") as f:
            raw = f.read()
    finally:
        os.unlink(path)
    return {"disk_bytes": len(raw), "gzip_bytes": gzip_bytes(raw)}


def gzip_bytes(data: bytes) -> int:
    """Length of ``data`` gzip-compressed at level 9 (mtime 0, so the same bytes always give the same size): the one
    compressed-size measure of students and teachers.

    >>> gzip_bytes(bytes(10_000)) < 100  # zeros (pruned weights) compress well
    True
    >>> data = bytes(range(256)) * 40
    >>> gzip_bytes(data) == len(gzip.compress(data, compresslevel=9))
    True
    """
    return len(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))


class WeightsFileError(UserError, ValueError):
    """A weight file that cannot be read as safetensors or as a ``torch.save`` state dict."""


def safetensors_params(raw: bytes, path: Path) -> int:
    """Element count of every tensor in a safetensors file, read from its JSON header (no tensor is loaded)."""
    header = None
    n = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else -1
    if 0 < n <= len(raw) - 8:
        with contextlib.suppress(ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            header = json.loads(raw[8 : 8 + n])
    entries = [v for k, v in header.items() if k != "__metadata__"] if isinstance(header, dict) else None
    if entries is None or not all(isinstance(v, dict) and isinstance(v.get("shape"), list) for v in entries):
        raise WeightsFileError(f"{path}: not a safetensors file (no readable header)")
    return sum(math.prod(v["shape"]) for v in entries)


def torch_params(raw: bytes, path: Path) -> int:
    """Element count of every tensor in a ``torch.save``d state dict; tensors sharing storage (tied weights) are
    counted once, as safetensors stores them once."""
    try:
        obj = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
    except Exception as e:  # pickle.UnpicklingError, RuntimeError, EOFError ... for a file that is not a state dict
        raise WeightsFileError(f"{path}: not a readable PyTorch weights file ({type(e).__name__})") from None
    seen: set[tuple] = set()
    total = 0
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            key = (x.untyped_storage().data_ptr(), x.storage_offset(), tuple(x.shape), x.stride())
            if x.numel() and key not in seen:
                seen.add(key)
                total += x.numel()
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list | tuple):
            stack.extend(x)
    return total


def saved_model_sizes(path: str | Path) -> dict[str, int]:
    """``{"params", "disk_bytes", "gzip_bytes"}`` of a saved model: a directory holding ``model.safetensors`` or
    ``pytorch_model.bin`` (looked for in that order; a Hugging Face ``save_pretrained`` directory such as a
    fine-tuned teacher), or one such weights file. ``disk_bytes`` is the weight file's size, ``gzip_bytes`` its
    :func:`gzip_bytes` (level 9, as students are measured), ``params`` the number of tensor elements it stores.

    >>> import tempfile, pathlib
    >>> from safetensors.torch import save_file
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> save_file({"w": torch.zeros(3, 4), "b": torch.zeros(4)}, d / "model.safetensors")
    >>> sizes = saved_model_sizes(d)
    >>> sizes["params"], sizes["disk_bytes"] == (d / "model.safetensors").stat().st_size
    (16, True)
    >>> sizes == saved_model_sizes(d / "model.safetensors")
    True
    """
    path = Path(path)
    if path.is_dir():
        weights = next((path / n for n in WEIGHT_FILES if (path / n).is_file()), None)
        if weights is None:
            raise InputFileError(f"{path}: no model weights in this directory (expected {' or '.join(WEIGHT_FILES)})")
    elif path.is_file():
        weights = path
    else:
        raise InputFileError(f"{path}: no such model directory or weights file")
    raw = weights.read_bytes()
    params = safetensors_params(raw, weights) if weights.suffix == ".safetensors" else torch_params(raw, weights)
    return {"params": params, "disk_bytes": len(raw), "gzip_bytes": gzip_bytes(raw)}


def size_report(model: nn.Module) -> dict:
    """``{"params": {...}, "disk_bytes": int, "gzip_bytes": int}``."""
    return {"params": param_counts(model), **disk_size(model)}


# ----------------------------------------------------------------------------------------------------------------
# Stored tensors of float, pruned and quantized students; ideal storage (thesis eq. 6.5-6.7); inference speed

_DTYPE_BYTES = {torch.qint8: 1, torch.quint8: 1, torch.quint4x2: 0.5, torch.qint32: 4}


def element_bytes(t: torch.Tensor) -> float:
    """Bytes one stored element takes: 4 for float32, 2 for float16, 1 for (q)int8 / (q)uint8. (Codes narrower
    than their dtype - :class:`~featherweight_core.compression.quantize.CodedEmbedding` - are counted by :func:`ideal_size` at
    their recorded bit width, see :func:`coded_tables`.)

    >>> element_bytes(torch.zeros(2, dtype=torch.float16)), element_bytes(torch.zeros(2, dtype=torch.uint8))
    (2, 1)
    """
    return _DTYPE_BYTES.get(t.dtype) or t.element_size()


def stored_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor, str]]:
    """``(name, tensor, kind)`` for every tensor a model stores, as stored: float / float16 tensors, quantized
    tensors for quantized weights (dynamic / static Linear, dynamic LSTM, per-row quantized Embedding and
    EmbeddingBag), uint8 code tables (``CodedEmbedding.codes``). ``kind`` is ``weight`` (parameters, quantized
    weights and biases, float16 and code tables) or ``buffer``. Modules still carrying pruning masks report the
    effective masked weight instead of ``*_orig`` / ``*_mask`` / ``*_scores``."""
    out: list[tuple[str, torch.Tensor, str]] = []
    for mname, m in model.named_modules():
        prefix = f"{mname}." if mname else ""
        if callable(getattr(m, "get_weight", None)) and callable(getattr(m, "get_bias", None)):  # dynamic LSTM
            for k, v in m.get_weight().items():
                out.append((prefix + k, v, "weight"))
            for k, v in m.get_bias().items():
                if v is not None:
                    out.append((prefix + k, v.detach(), "weight"))
            continue
        if type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")) and callable(
            getattr(m, "weight", None)
        ):  # quantized Linear / Embedding / EmbeddingBag: weight() returns the stored quantized tensor
            out.append((prefix + "weight", m.weight(), "weight"))
            bias = m.bias() if callable(getattr(m, "bias", None)) else None
            if bias is not None:
                out.append((prefix + "bias", bias.detach(), "weight"))
            if hasattr(m, "scale") and isinstance(getattr(m, "scale", None), float):  # static: output qparams
                out.append((prefix + "scale", torch.tensor([m.scale], dtype=torch.float32), "buffer"))
                out.append((prefix + "zero_point", torch.tensor([m.zero_point], dtype=torch.int32), "buffer"))
            continue
        pruned = m.__dict__.get("_featherweight_pruned", {}).get("names", [])
        for name in pruned:
            w = getattr(m, name + "_orig") * getattr(m, name + "_mask")
            out.append((prefix + name, w.detach(), "weight"))
        skip = {n + s for n in pruned for s in ("_orig", "_mask", "_scores")}
        for k, v in m._parameters.items():
            if v is not None and k not in skip:
                out.append((prefix + k, v.detach(), "weight"))
        for k, v in m._buffers.items():
            if v is None or k in skip or k in m._non_persistent_buffers_set:
                continue
            # A float16 lookup table (HalfEmbedding.weight) or a table of integer codes (CodedEmbedding.codes) is
            # the module's weight, stored as a buffer; CodedEmbedding's scale / offset are buffers.
            kind = "weight" if k == "weight" or (k == "codes" and _coded_bits(m) is not None) else "buffer"
            out.append((prefix + k, v.detach(), kind))
    return out


def _coded_bits(m: nn.Module) -> int | None:
    """The bit width of a module holding ``bits``-bit integer codes in a wider buffer (``codes``, with ``bits``
    and ``dequantize()``, as quantize.CodedEmbedding), else None."""
    bits = getattr(m, "bits", None)
    codes = m._buffers.get("codes")
    if isinstance(codes, torch.Tensor) and isinstance(bits, int) and callable(getattr(m, "dequantize", None)):
        return bits
    return None


def coded_tables(model: nn.Module) -> dict[str, tuple[int, torch.Tensor]]:
    """``{stored name of a code table: (bits, dequantized float values)}`` for every module storing integer codes
    narrower than their dtype (quantize.CodedEmbedding: 2..8-bit codes in a uint8 buffer). :func:`ideal_size`
    counts these at ``bits / 8`` bytes per element, and a code is zero where it dequantizes to exactly 0."""
    out = {}
    for mname, m in model.named_modules():
        bits = _coded_bits(m)
        if bits is not None:
            out[f"{mname}.codes" if mname else "codes"] = (bits, m.dequantize().detach())
    return out


def _has_quantized(model: nn.Module) -> bool:
    names = ("HalfEmbedding", "CodedEmbedding", "QuantizedHashEmbedding")
    return any(type(m).__module__.startswith("torch.ao.nn") or type(m).__name__ in names for m in model.modules())


def ideal_tensor_bytes(numel: int, nonzero: int, ndim: int, elem_bytes: float, index_bytes: int = 8) -> dict:
    """Thesis eq. 6.5-6.7: dense storage ``elem_bytes * n`` (6.6) versus coordinate list (COO) storage
    ``(ndim * index_bytes + elem_bytes) * nonzero`` (6.5), whichever is smaller. With 8-byte indices and 4-byte
    floats COO wins for a 2-D tensor only below ``n / 5`` non-zeros (6.7).

    >>> ideal_tensor_bytes(100, 19, 2, 4)
    {'dense': 400, 'coo': 380, 'bytes': 380, 'format': 'coo'}
    >>> ideal_tensor_bytes(100, 21, 2, 4)["format"]
    'dense'
    """
    dense = elem_bytes * numel
    coo = (ndim * index_bytes + elem_bytes) * nonzero
    dense, coo = int(math.ceil(dense)), int(math.ceil(coo))
    return {"dense": dense, "coo": coo, "bytes": min(dense, coo), "format": "coo" if coo < dense else "dense"}


def qparam_bytes(t: torch.Tensor) -> int:
    """Bytes of a quantized tensor's scale / zero point, counted as 4 bytes each (per tensor or per row)."""
    if not t.is_quantized:
        return 0
    if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return 8
    return 8 * int(t.q_per_channel_scales().numel())


def ideal_size(model: nn.Module, index_bytes: int = 8) -> dict:
    """Ideal storage of every stored tensor at its stored bit width (eq. 6.5-6.7 per tensor, plus quantization
    scale / zero points): ``{"ideal_bytes", "dense_bytes", "tensors": {name: {numel, nonzero, ndim, elem_bytes,
    dense, coo, bytes, format, qparams}}}``. A quantized weight is zero where it dequantizes to exactly 0
    (affine quantization represents 0 exactly, so pruned weights stay zero). Code tables narrower than their
    dtype (:func:`coded_tables`, e.g. 4-bit importance codes in a uint8 buffer) count ``bits / 8`` bytes per
    element; their float32 scale and offset are stored tensors of their own (4 bytes each)."""
    tensors, total, dense_total = {}, 0, 0
    coded = coded_tables(model)
    for name, t, _kind in stored_tensors(model):
        values = coded[name][1] if name in coded else t.dequantize() if t.is_quantized else t
        elem = coded[name][0] / 8 if name in coded else element_bytes(t)
        numel = t.numel()
        nonzero = int(torch.count_nonzero(values).item()) if numel else 0
        row = ideal_tensor_bytes(numel, nonzero, max(t.dim(), 1), elem, index_bytes)
        q = qparam_bytes(t)
        row.update(numel=numel, nonzero=nonzero, ndim=max(t.dim(), 1), elem_bytes=elem, qparams=q)
        tensors[name] = row
        total += row["bytes"] + q
        dense_total += row["dense"] + q
    return {"ideal_bytes": total, "dense_bytes": dense_total, "tensors": tensors}


def stored_param_counts(model: nn.Module) -> dict[str, int]:
    """Like :func:`param_counts`, counted over :func:`stored_tensors` (weights only), so quantized and partly
    quantized students count their packed weights too."""
    counts = dict.fromkeys(("total", *GROUPS, "nonzero"), 0)
    coded = coded_tables(model)
    for name, t, kind in stored_tensors(model):
        if kind != "weight":
            continue
        values = coded[name][1] if name in coded else t.dequantize() if t.is_quantized else t
        n = t.numel()
        counts["total"] += n
        group = _group_of(name)
        if group in counts:
            counts[group] += n
        counts["nonzero"] += int(torch.count_nonzero(values).item())
    return counts


@torch.inference_mode()
def inference_speed(
    model: nn.Module,
    split,
    batch_size: int,
    max_batches: int | None = None,
    min_seconds: float = 1.0,
    warmup: int = 3,
) -> dict[str, float]:
    """CPU inference speed on ``split`` (an EncodedSplit) in batches of ``batch_size`` (length-sorted, as
    evaluation batches them): ``ms_per_batch`` (median over batches and repeats), ``examples_per_second``
    (total examples / total time), ``batches`` timed. Repeats the batches until ``min_seconds`` have passed."""
    import time

    was_training = model.training
    model.eval()
    batches = list(iter_batches(split, batch_size))
    if max_batches is not None and len(batches) > max_batches:
        pick = np.linspace(0, len(batches) - 1, max_batches).round().astype(int)
        batches = [batches[i] for i in pick]
    for b in batches[:warmup]:
        model(*b.inputs)
    times, examples = [], 0
    start = time.perf_counter()
    while True:
        for b in batches:
            t0 = time.perf_counter()
            model(*b.inputs)
            times.append(time.perf_counter() - t0)
            examples += len(b.labels)
        if time.perf_counter() - start >= min_seconds:
            break
    model.train(was_training)
    return {
        "batch_size": batch_size,
        "ms_per_batch": float(np.median(times) * 1000.0),
        "examples_per_second": examples / float(np.sum(times)),
        "batches": len(times),
    }


# ----------------------------------------------------------------------------------------------------------------
# Will it fit? Parameter counts without allocating, against the machine's memory

FLOAT_BYTES = 4  # float32 weights
# Training holds the weights, their gradients and up to two optimizer states per weight (Adam's and AdamW's two
# moments, Adadelta's two running averages; SGD keeps at most one): 4 float32 copies of every parameter.
TRAINING_COPIES = 4
# Measuring a built student (analyze, a trial's size report) holds the weights, the saved state_dict and its bytes
# read back: 3 copies.
MEASURING_COPIES = 3
# A lower estimate of what one text example costs in memory once loaded (its text as Python objects, its label and
# key; encoding adds more): the built-in synthetic sentences take about 250 bytes each, pairs about 350.
EXAMPLE_BYTES = 200


class TooLargeError(ConfigError):
    """A model or data size that cannot fit in this machine's memory; the message names the value, what it needs and
    what the machine has."""


def memory_bytes() -> int:
    """This machine's memory: total RAM, or the control group's limit when a container sets a lower one."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            limit = int(Path(limit_file).read_text().strip())  # "max" (no limit) is not an int
            if 0 < limit < total:
                total = limit
    return total


def human_bytes(n: float) -> str:
    """``12.3 GB``-style (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


_META_MAX_SIZE = 2**31  # below this, a failed build on the meta device is a bug, not a size


def student_param_counts(cfg, num_embeddings: int | None = None) -> dict[str, int]:
    """Exact parameter counts (``total`` and per module group) of ``build_student(cfg, num_embeddings)``, from the
    student built on PyTorch's ``meta`` device: shapes only, nothing allocated, whatever the sizes. A size so large
    that no tensor of it can even be described raises :class:`TooLargeError`."""
    cfg = cfg.resolved()
    rows = num_embeddings if num_embeddings is not None else default_num_embeddings(cfg)
    try:
        with torch.device("meta"):
            model = build_student(cfg, rows)
    except (RuntimeError, TypeError):
        sizes = (cfg.emb_dim, cfg.vocab_size or 0, cfg.hash_buckets or 0, rows)
        if max(sizes) < _META_MAX_SIZE:
            raise
        raise TooLargeError(
            f"a student with embedding dim {cfg.emb_dim} and {rows} embedding rows has more than 2^63 parameters"
        ) from None
    return param_counts(model, nonzero=False)


def check_student_fits(
    cfg, where: str, copies: int = TRAINING_COPIES, num_embeddings: int | None = None, memory: int | None = None
) -> dict[str, int]:
    """The student's parameter counts (:func:`student_param_counts`); :class:`TooLargeError` naming ``where`` (the
    option or key and its value) when ``copies`` float32 copies of its parameters exceed the machine's memory."""
    try:
        counts = student_param_counts(cfg, num_embeddings)
    except TooLargeError as e:
        raise TooLargeError(f"{where}: {e}, more than any machine's memory") from None
    need = counts["total"] * FLOAT_BYTES * copies
    have = memory if memory is not None else memory_bytes()
    if need > have:
        why = {
            TRAINING_COPIES: "weights, gradients and 2 optimizer states",
            MEASURING_COPIES: "the weights, their saved file and its bytes read back",
        }.get(copies, "of the weights")
        raise TooLargeError(
            f"{where}: a student of {counts['total']:,} parameters needs about {human_bytes(need)}"
            f" ({copies} float32 copies: {why}), more than this machine's {human_bytes(have)} of memory"
        )
    return counts


def check_examples_fit(n_examples: int, where: str, memory: int | None = None) -> None:
    """:class:`TooLargeError` naming ``where`` when ``n_examples`` text examples (:data:`EXAMPLE_BYTES` each, a lower
    estimate) exceed the machine's memory."""
    need = n_examples * EXAMPLE_BYTES
    have = memory if memory is not None else memory_bytes()
    if need > have:
        raise TooLargeError(
            f"{where}: {n_examples:,} examples need at least {human_bytes(need)} in memory (about {EXAMPLE_BYTES}"
            f" bytes each), more than this machine's {human_bytes(have)}"
        )
