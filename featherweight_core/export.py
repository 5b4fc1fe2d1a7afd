"""Export a trained model as a deployable artefact: ONNX where the model exports, otherwise TorchScript.

Sources (:func:`export_model`):

* a student checkpoint file: ``student.pt`` (``featherweight distill``, stage 1 of a sweep) or ``compressed.pt``
  (``featherweight compress``, stage 2: pruned and/or quantized);
* a fine-tuned teacher directory (a Hugging Face ``save_pretrained`` directory, ``featherweight teacher finetune``);
* a compressed-teacher directory (BERT-of-Theseus or BERT-Vision output, read through
  :func:`featherweight_core.compressed.load_compressed`).

The model is wrapped in a module whose inputs are plain int64 tensors and whose output is the logits: students take
``ids`` (batch, time) - (batch, time, 3) for hash embeddings - and ``lengths`` (batch,), or ``ids_a, lengths_a,
ids_b, lengths_b`` for sentence pairs; transformers take ``input_ids``, ``attention_mask`` and ``token_type_ids``
(when the model uses them), each (batch, sequence). ``fmt="auto"`` tries ONNX (``torch.onnx.export`` with the
TorchScript-based exporter, opset :data:`ONNX_OPSET`, dynamic batch and time axes) and checks it with onnxruntime;
when the export or that check fails (int8 dynamically quantized layers have no ONNX form here) it falls back to
TorchScript (``torch.jit.trace``) and records why.

Before anything is written the source is measured the way its trial was (students: ``measure.param_counts`` and
``measure.disk_size``; teacher directories: ``measure.saved_model_sizes``; compressed teachers:
``teacher_compression.measure_saved``) and compared with the recorded sizes, if given. The artefact is then checked on
the task's dev split(s): its argmax must equal the PyTorch model's on every example, and its logits must be within
:data:`LOGIT_ATOL` of them. Float models are checked in length-bucketed batches of :data:`CHECK_BATCH_SIZE`;
models with int8 dynamic quantization one example at a time (dynamic quantization takes its activation ranges over
the whole batch, so padding rows move the logits of a batch slightly, in PyTorch as in the artefact). Any failure
leaves nothing in the output directory (it is built aside and swapped into place).

Alongside the model the directory holds :data:`EXPORT_META` (format, inputs, labels, task, max length, encoding) and
what turns text into inputs without this project: the tokenizer files (transformers), or ``encode.py``, a
standalone encoder (stdlib + numpy; sentencepiece and the copied ``.model`` file for bpe) written from the student's
encoding settings (students). See docs/export.md.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from featherweight_core.atomic import atomic_dir
from featherweight_core.errors import ConfigError, InputFileError, UserError

FORMATS = ("auto", "onnx", "torchscript")
EXPORT_META = "featherweight_export.json"
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.pt"
ENCODER_FILE = "encode.py"
ONNX_OPSET = 17
LOGIT_ATOL = 1e-3  # max |artefact logit - PyTorch logit| accepted (observed: < 1e-6 for ONNX, 0 for TorchScript)
CHECK_BATCH_SIZE = 32
SIZE_MEASURES = ("params", "disk_bytes", "gzip_bytes")


class ExportError(UserError, ValueError):
    """A model that cannot be exported as asked, an artefact whose predictions differ from the model's, or a
    checkpoint whose sizes differ from the recorded ones."""


@dataclass
class ExportReport:
    """What :func:`export_model` wrote and checked.

    files: the artefact's file names; artefact_bytes: their total size; examples_checked: dev examples run through
    both; predictions_agree: fraction whose argmax agrees (1.0, or the export fails); max_abs_logit_diff: largest
    difference of a logit; recorded_size_check: ``{measure: (recorded, now)}`` for each recorded size compared;
    fallback_reason: why ONNX was not used (``fmt="auto"`` only), else None.
    """

    format: str
    output_dir: str
    source: str
    source_kind: str
    files: list[str]
    artefact_bytes: int
    examples_checked: int
    predictions_agree: float
    max_abs_logit_diff: float
    check_batch_size: int
    recorded_size_check: dict[str, tuple[int, int]] = field(default_factory=dict)
    fallback_reason: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recorded_size_check"] = {k: list(v) for k, v in self.recorded_size_check.items()}
        return d


# ---------------------------------------------------------------------------------------------------------------
# sources


@dataclass
class _Source:
    kind: str  # student | compressed_student | teacher | compressed_teacher
    path: Path
    model: nn.Module
    meta: dict[str, Any]
    student_cfg: Any = None  # StudentConfig (students)
    tokenizer: Any = None  # transformers
    max_length: int | None = None  # transformers

    @property
    def is_student(self) -> bool:
        return self.student_cfg is not None


def _load_source(source: str | Path) -> _Source:
    from featherweight_core import checkpoint as ck

    path = Path(source)
    if path.is_file():
        payload = ck.load_weights_only(path)
        fmt = payload.get("format") if isinstance(payload, dict) else None
        if fmt == ck.COMPRESSED_FORMAT:
            model, cfg, meta = ck.load_compressed(path)
            return _Source("compressed_student", path, model, meta, cfg.resolved())
        if fmt == ck.FORMAT:
            model, cfg, meta = ck.load_checkpoint(path)
            return _Source("student", path, model, meta, cfg.resolved())
        raise ExportError(f"{path}: not a featherweight student checkpoint (student.pt or compressed.pt)")
    if path.is_dir():
        from featherweight_core import teacher_compression as tc
        from featherweight_core.teacher import load_classifier, read_teacher_meta

        if (path / tc.COMPRESSED_META).is_file():
            from featherweight_core.compressed import load_compressed

            model, tokenizer, meta = load_compressed(path)
            return _Source(
                "compressed_teacher", path, model.eval(), meta, tokenizer=tokenizer, max_length=_max_length(meta, path)
            )
        if (path / "config.json").is_file():
            meta = read_teacher_meta(path)
            model, tokenizer = load_classifier(path)
            return _Source("teacher", path, model.eval(), meta, tokenizer=tokenizer, max_length=_max_length(meta, path))
        raise ExportError(
            f"{path}: not a model directory (expected a fine-tuned teacher with config.json, or a"
            f" compressed teacher with {tc.COMPRESSED_META})"
        )
    raise InputFileError(f"{path}: no such checkpoint file or model directory")


def _max_length(meta: dict[str, Any], path: Path) -> int:
    for value in (meta.get("max_length"), (meta.get("config") or {}).get("max_length")):
        if isinstance(value, int) and value > 0:
            return value
    from featherweight_core.teacher import TeacherConfig

    return TeacherConfig().max_length


def _source_task_metas(src: _Source) -> list[dict[str, Any]]:
    """The metadata that may record the source's task and data, in order: its own, its parent checkpoint's (a
    compressed student names its parent) and its teacher directory's (a compressed teacher names its teacher)."""
    metas = [src.meta]
    parent = src.meta.get("parent")
    if isinstance(parent, str) and Path(parent).is_file():
        from featherweight_core.checkpoint import load_checkpoint

        with contextlib.suppress(UserError):
            metas.append(load_checkpoint(parent)[2])
    teacher = src.meta.get("teacher")
    tdir = teacher.get("dir") if isinstance(teacher, dict) else None
    if isinstance(tdir, str) and Path(tdir).is_dir():
        from featherweight_core.teacher import read_teacher_meta

        with contextlib.suppress(UserError):
            metas.append(read_teacher_meta(tdir))
    return metas


def resolve_task_data(metas: list[dict[str, Any]], data: str | None, what: str):
    """The :class:`~featherweight_core.data.TaskData` an artefact records: the task (``task_spec`` / ``task``) and
    the ``data_source`` of the first of ``metas`` that records one; ``data`` replaces the recorded data source."""
    from featherweight_core.commands.common import recorded_task_of
    from featherweight_core.data import load_task_data
    from featherweight_core.tasks import TaskSpec

    metas = [m for m in metas if m]
    recorded = next((recorded_task_of(m) for m in metas if recorded_task_of(m) is not None), None)
    if recorded is None:
        raise ExportError(f"{what} records no task: cannot check the artefact on a dev split")
    task = TaskSpec.from_dict(recorded)
    source = data
    if source is None:
        source = next((m.get("data_source") for m in metas if m.get("data_source")), None)
    if isinstance(source, str) and source.startswith("synthetic"):  # recorded as e.g. "synthetic(seed=13)"
        source = "synthetic"
    if source is not None and not str(source).startswith(("hf:", "hub", "synthetic")) and not Path(source).exists():
        raise InputFileError(f"{source}: the data {what} was made from is not there; pass its new place with --data")
    return load_task_data(task, source)


# ---------------------------------------------------------------------------------------------------------------
# sizes


def measure_source(src: _Source) -> dict[str, int]:
    """``{"params", "disk_bytes", "gzip_bytes"}`` of the source, measured as its trial was."""
    if src.is_student:
        from featherweight_core.measure import disk_size, param_counts

        return {"params": int(param_counts(src.model)["total"]), **disk_size(src.model)}
    if src.kind == "compressed_teacher":
        from featherweight_core.teacher_compression import measure_saved

        return measure_saved(src.path)
    from featherweight_core.measure import saved_model_sizes

    return saved_model_sizes(src.path)


def check_recorded_sizes(src: _Source, recorded: dict[str, Any] | None) -> dict[str, tuple[int, int]]:
    """Compare the recorded sizes (``params``, ``disk_bytes``, ``gzip_bytes``; None or missing ones skipped) with the
    source measured now; a difference is an :class:`ExportError` naming the measure and both values."""
    wanted = {k: v for k, v in (recorded or {}).items() if k in SIZE_MEASURES and v is not None}
    if not wanted:
        return {}
    now = measure_source(src)
    check = {k: (int(v), int(now[k])) for k, v in wanted.items()}
    bad = [f"{k} recorded {a:,}, now {b:,}" for k, (a, b) in check.items() if a != b]
    if bad:
        raise ExportError(
            f"{src.path}: differs from what was recorded ({'; '.join(bad)}): the checkpoint changed"
            " since it was recorded"
        )
    return check


# ---------------------------------------------------------------------------------------------------------------
# export-friendly forms of the quantized recurrent encoders


@torch.jit.script
def _elman_scan(xp: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, lengths: torch.Tensor):
    """The recurrence of :class:`featherweight_core.quantize.ElmanDirection` as a scripted loop (a trace keeps
    the loop, so the time axis stays dynamic). xp: (B, T, H) input projections -> outputs (B, T, H), h_last (B, H)."""
    B = xp.size(0)
    T = xp.size(1)
    h = xp.new_zeros([B, w_hh.size(0)])
    outs = [xp.new_zeros([B, 0, w_hh.size(0)])]
    for t in range(T):
        h_new = torch.tanh(xp[:, t] + torch.nn.functional.linear(h, w_hh, b_hh))
        alive = (t < lengths).unsqueeze(1)
        h = torch.where(alive, h_new, h)
        outs.append(torch.where(alive, h_new, torch.zeros_like(h_new)).unsqueeze(1))
    return torch.cat(outs, 1), h


def _reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    T = x.shape[1]
    t = torch.arange(T, device=x.device)[None, :]
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x))


def _padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


class _ElmanEncoder(nn.Module):
    """RecurrentEncoder over a quantized :class:`~featherweight_core.quantize.ElmanRNN`, computing what its packed
    path computes: input projections (int8 dynamic Linear) over the zero-padded batch, the recurrent weight
    dequantized once (as ElmanDirection does), the scan in a scripted loop."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        rnn = encoder.rnn
        self.pooling = encoder.pooling
        self.ih_f, self.ih_b = rnn.fwd.ih, rnn.bwd.ih
        for name, d in (("f", rnn.fwd), ("b", rnn.bwd)):
            hh = d.hh
            w, b = (
                (hh.weight().dequantize(), hh.bias()) if callable(getattr(hh, "weight", None)) else (hh.weight, hh.bias)
            )
            self.register_buffer(f"w_hh_{name}", w.detach().clone())
            self.register_buffer(f"b_hh_{name}", b.detach().clone())

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = x * _padding_mask(lengths, x.shape[1])[..., None].to(x.dtype)  # the packed path pads with zeros
        out_f, h_f = _elman_scan(self.ih_f(x), self.w_hh_f, self.b_hh_f, lengths)
        out_b, h_b = _elman_scan(self.ih_b(_reverse_within(x, lengths)), self.w_hh_b, self.b_hh_b, lengths)
        if self.pooling == "last":
            return torch.cat([h_f, h_b], dim=-1)
        out = torch.cat([out_f, _reverse_within(out_b, lengths)], dim=-1)
        return out.masked_fill(~_padding_mask(lengths, x.shape[1])[..., None], float("-inf")).amax(1)


class _QuantizedLSTMEncoder(nn.Module):
    """RecurrentEncoder over an int8 dynamic bidirectional LSTM, without packed sequences (which a trace fixes to
    the example's batch): each direction's packed weights run as a one-direction dynamic LSTM over the padded
    batch, the backward one over each sequence reversed within its length; the state at ``length - 1`` is read.
    For one example this is the packed computation exactly; in a padded batch the padding rows also enter each
    step's dynamic activation range."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        import torch.ao.nn.quantized.dynamic as nnqd

        rnn = encoder.rnn
        self.pooling = encoder.pooling
        self.hidden = rnn.hidden_size
        dirs = []
        for i in range(2):
            one = nnqd.LSTM(
                rnn.input_size,
                rnn.hidden_size,
                num_layers=1,
                bias=rnn.bias,
                batch_first=True,
                bidirectional=False,
                dtype=rnn.dtype,
            )
            one._all_weight_values = nn.ModuleList([rnn._all_weight_values[i]])
            dirs.append(one)
        self.fwd, self.bwd = dirs

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        x = x * _padding_mask(lengths, T)[..., None].to(x.dtype)
        out_f, _ = self.fwd(x)
        out_b, _ = self.bwd(_reverse_within(x, lengths))
        if self.pooling == "last":
            idx = (lengths - 1).view(B, 1, 1).expand(B, 1, self.hidden)
            return torch.cat([out_f.gather(1, idx).squeeze(1), out_b.gather(1, idx).squeeze(1)], dim=-1)
        out = torch.cat([out_f, out_b], dim=-1)  # time order differs between halves; max over time does not care
        return out.masked_fill(~_padding_mask(lengths, T)[..., None], float("-inf")).amax(1)


def _exportable_student(model: nn.Module) -> nn.Module:
    """The student with its quantized recurrent encoder (if any) replaced by a traceable equivalent."""
    import copy

    from featherweight_core.quantize import ElmanRNN
    from featherweight_core.students import RecurrentEncoder

    enc = getattr(model, "encoder", None)
    rnn = getattr(enc, "rnn", None)
    if not isinstance(enc, RecurrentEncoder) or isinstance(rnn, nn.LSTM | nn.RNN) and enc._fast_path_ok():
        return model
    out = copy.copy(model)
    out._modules = dict(model._modules)
    if isinstance(rnn, ElmanRNN):
        out.encoder = _ElmanEncoder(enc)
    elif type(rnn).__module__.startswith("torch.ao.nn.quantized") and type(rnn).__name__ == "LSTM":
        out.encoder = _QuantizedLSTMEncoder(enc)
    return out


class StudentExport(nn.Module):
    """A student with plain tensor inputs: ``(ids, lengths)`` or ``(ids_a, lengths_a, ids_b, lengths_b)`` ->
    logits (batch, num_labels) float32."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = _exportable_student(student).eval()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.student(*inputs)


class TransformerExport(nn.Module):
    """A sequence classifier with plain tensor inputs: ``input_ids, attention_mask[, token_type_ids]`` -> logits."""

    def __init__(self, model: nn.Module, token_types: bool) -> None:
        super().__init__()
        self.model = model.eval()
        self.token_types = token_types

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_types:
            kwargs["token_type_ids"] = rest[0]
        return self.model(**kwargs).logits


# ---------------------------------------------------------------------------------------------------------------
# dev inputs


@dataclass
class _Inputs:
    names: list[str]
    batches: list[tuple[np.ndarray, tuple[torch.Tensor, ...]]]  # (row index, input tensors)
    n: int
    meta_inputs: list[dict[str, Any]]
    batch_size: int
    example: tuple[torch.Tensor, ...]  # what the model is traced / exported with: two rows of different lengths


def _is_quantized(model: nn.Module) -> bool:
    from featherweight_core.quantize import is_quantized

    return is_quantized(model)


def _student_inputs(src: _Source, splits: list, bpemb_dir, batch_size: int) -> tuple[_Inputs, Any]:
    from featherweight_core.batching import EncodedSplit, bucket_batches, make_batch
    from featherweight_core.encoders import build_encoder

    cfg = src.student_cfg
    encoder = build_encoder(cfg.embedding, cfg.vocab_size, cfg.emb_dim, bpemb_dir)
    texts = [t for sp in splits for t in sp.texts]
    n_fields = 2 if cfg.pair else 1
    fields = tuple(encoder.encode_many([t[i] for t in texts]) for i in range(n_fields))
    split = EncodedSplit(fields, np.zeros(len(texts), np.int64), [str(i) for i in range(len(texts))])
    batches = [(idx, make_batch(split, idx).inputs) for idx in bucket_batches(split.lengths, batch_size, None)]
    example = make_batch(split, _two_rows(split.lengths)).inputs
    suffixes = ("_a", "_b") if cfg.pair else ("",)
    names = [f"{k}{s}" for s in suffixes for k in ("ids", "lengths")]
    ids_shape = ["batch", "time", encoder.width] if encoder.width > 1 else ["batch", "time"]
    meta_inputs = []
    for s in suffixes:
        meta_inputs += [
            {
                "name": f"ids{s}",
                "dtype": "int64",
                "shape": ids_shape,
                "description": "token ids, 0-padded after each sequence's length",
            },
            {
                "name": f"lengths{s}",
                "dtype": "int64",
                "shape": ["batch"],
                "description": "number of tokens of each sequence (>= 1)",
            },
        ]
    return _Inputs(names, batches, len(texts), meta_inputs, batch_size, example), encoder


def _transformer_inputs(src: _Source, splits: list, batch_size: int) -> tuple[_Inputs, bool]:
    from featherweight_core.teacher import tokenize

    texts = [t for sp in splits for t in sp.texts]
    model = src.model
    tok = tokenize(src.tokenizer, texts, src.max_length, model)
    token_types = tok.token_type_ids is not None
    order = np.argsort(-tok.lengths, kind="stable")
    batches = []
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        b = tok.batch(idx)
        batches.append((idx, tuple(b[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in b)))
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    example = tuple(tok.batch(_two_rows(tok.lengths))[k] for k in names)
    desc = {
        "input_ids": "token ids from the tokenizer, padded with its pad id",
        "attention_mask": "1 for real tokens, 0 for padding",
        "token_type_ids": "0 first text, 1 second text",
    }
    meta_inputs = [{"name": n, "dtype": "int64", "shape": ["batch", "sequence"], "description": desc[n]} for n in names]
    return _Inputs(names, batches, len(texts), meta_inputs, batch_size, example), token_types


def _two_rows(lengths: np.ndarray) -> np.ndarray:
    """The longest and the shortest example (one row when there is only one), so a trace sees a padded batch."""
    if len(lengths) < 2:
        return np.arange(len(lengths))
    return np.array([int(np.argmax(lengths)), int(np.argmin(lengths))])


# ---------------------------------------------------------------------------------------------------------------
# export and check


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import logging

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger = logging.getLogger("torch.onnx")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)


def _export_onnx(wrapper: nn.Module, inputs: _Inputs, path: Path, time_axis: str) -> None:
    dynamic = {n: ({0: "batch", 1: time_axis} if not n.startswith("lengths") else {0: "batch"}) for n in inputs.names}
    dynamic["logits"] = {0: "batch"}
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            wrapper,
            inputs.example,
            str(path),
            dynamo=False,
            input_names=inputs.names,
            output_names=["logits"],
            dynamic_axes=dynamic,
            opset_version=ONNX_OPSET,
        )


def _onnx_runner(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(batch: tuple[torch.Tensor, ...]) -> np.ndarray:
        return session.run(["logits"], {n: t.numpy() for n, t in zip(names, batch, strict=True)})[0]

    return run


def _export_torchscript(wrapper: nn.Module, inputs: _Inputs, path: Path) -> None:
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(wrapper, inputs.example, check_trace=False, strict=False)
        torch.jit.save(traced, str(path))


def _torchscript_runner(path: Path):
    with _quiet():
        loaded = torch.jit.load(str(path), map_location="cpu").eval()

    @torch.no_grad()
    def run(batch: tuple[torch.Tensor, ...]) -> np.ndarray:
        return loaded(*batch).float().numpy()

    return run


@torch.no_grad()
def _reference_logits(model: nn.Module, inputs: _Inputs, is_student: bool) -> np.ndarray:
    out: np.ndarray | None = None
    for idx, batch in inputs.batches:
        logits = model(*batch) if is_student else model(**dict(zip(inputs.names, batch, strict=True))).logits
        logits = logits.float().numpy()
        if out is None:
            out = np.zeros((inputs.n, logits.shape[1]), np.float32)
        out[idx] = logits
    return out if out is not None else np.zeros((0, 0), np.float32)


def _compare(run, inputs: _Inputs, reference: np.ndarray) -> tuple[int, float]:
    """(examples whose argmax differs, max abs logit difference) of the artefact against ``reference``. The
    artefact must also take a padded batch (the trace example: checked one example at a time, a quantized model's
    artefact is otherwise never run on more than one row)."""
    batched = run(inputs.example)
    if batched.shape != (inputs.example[0].shape[0], reference.shape[1]) or not np.isfinite(batched).all():
        raise ExportError(
            f"the artefact returns {batched.shape} logits for a padded batch of"
            f" {inputs.example[0].shape[0]} (expected ({inputs.example[0].shape[0]}, {reference.shape[1]}),"
            " finite)"
        )
    got = np.zeros_like(reference)
    for idx, batch in inputs.batches:
        got[idx] = run(batch)
    diff = float(np.abs(got - reference).max()) if reference.size else 0.0
    return int((got.argmax(-1) != reference.argmax(-1)).sum()), diff


def _mismatch(fmt: str, bad: int, n: int, diff: float) -> str | None:
    if bad:
        return (
            f"the {fmt} artefact's prediction differs from the PyTorch model's on {bad} of {n} dev examples"
            f" (max logit difference {diff:.3g})"
        )
    if not diff <= LOGIT_ATOL:
        return f"the {fmt} artefact's logits differ from the PyTorch model's by up to {diff:.3g} (tolerance {LOGIT_ATOL:g})"
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {line[:300]}" if line else type(e).__name__


def export_model(
    source: str | Path,
    output_dir: str | Path,
    task_data=None,
    fmt: str = "auto",
    recorded: dict[str, Any] | None = None,
    overwrite: bool = False,
    data: str | None = None,
    bpemb_dir: str | Path | None = None,
    batch_size: int | None = None,
    parent_meta: dict[str, Any] | None = None,
) -> ExportReport:
    """Export ``source`` (a student checkpoint file, a fine-tuned teacher directory or a compressed-teacher
    directory) into ``output_dir`` as ONNX or TorchScript (``fmt``), checked on the dev split(s) of ``task_data``
    (default: the task and data the source records; ``data`` replaces the recorded data source). ``recorded``: the
    sizes recorded for the source (``params``, ``disk_bytes``, ``gzip_bytes``) - a difference is an
    :class:`ExportError`. ``batch_size``: check batches (default :data:`CHECK_BATCH_SIZE`; 1 for quantized
    models). ``parent_meta``: metadata recording the task when the source's own does not (a sweep's compressed
    student: its parent checkpoint's). Nothing is left in ``output_dir`` when anything fails."""
    start = time.perf_counter()
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out}: directory exists and is not empty (pass overwrite / --overwrite)")
    src = _load_source(source)
    if src.path.resolve() == out.resolve() or out.resolve() in src.path.resolve().parents:
        raise ExportError(f"{out}: the output directory holds the model being exported ({src.path}); choose another")
    size_check = check_recorded_sizes(src, recorded)
    if task_data is None:
        task_data = resolve_task_data([*_source_task_metas(src), parent_meta or {}], data, f"{src.path}")
    task = task_data.task
    splits = [task_data.splits[s] for s in task.eval_splits if s in task_data.splits]
    if not splits or not sum(len(s) for s in splits):
        raise ExportError(f"task {task.name!r}: no dev examples to check the artefact on")
    quantized = _is_quantized(src.model) if src.is_student else _tc_quantized(src.model)
    bs = batch_size or (1 if quantized else CHECK_BATCH_SIZE)
    if src.is_student:
        cfg = src.student_cfg
        if (cfg.pair, cfg.num_labels) != (task.pair, task.num_labels):
            raise ExportError(f"task {task.name!r} does not fit the student ({cfg.num_labels} labels, pair={cfg.pair})")
        inputs, encoder = _student_inputs(src, splits, bpemb_dir, bs)
        reference = _reference_logits(src.model, inputs, True)
        time_axis, token_types = "time", False
    else:
        inputs, token_types = _transformer_inputs(src, splits, bs)
        reference = _reference_logits(src.model, inputs, False)
        encoder, time_axis = None, "sequence"
    wrapper = _wrap(src, token_types)
    fallback = None
    with atomic_dir(out) as tmp:
        chosen = None
        if fmt in ("auto", "onnx"):
            step = "export"
            try:  # any exporter / runtime failure: the reason is recorded, TorchScript tried next
                _export_onnx(wrapper, inputs, tmp / ONNX_FILE, time_axis)
                step = "check with onnxruntime"
                bad, diff = _compare(_onnx_runner(tmp / ONNX_FILE), inputs, reference)
                problem = _mismatch("ONNX", bad, inputs.n, diff)
            except Exception as e:
                problem = f"ONNX {step} failed ({_first_line(e)})"
            if problem is None:
                chosen = "onnx"
            elif fmt == "onnx":
                raise ExportError(f"{src.path}: {problem}")
            else:
                fallback = problem
                (tmp / ONNX_FILE).unlink(missing_ok=True)
        if chosen is None:
            if fmt == "auto":  # the ONNX exporter can leave quantized modules altered: trace a fresh copy
                wrapper = _wrap(_load_source(source), token_types)
            try:
                _export_torchscript(wrapper, inputs, tmp / TORCHSCRIPT_FILE)
                run = _torchscript_runner(tmp / TORCHSCRIPT_FILE)
            except Exception as e:
                raise ExportError(
                    f"{src.path}: TorchScript export failed ({_first_line(e)})" + (f"; {fallback}" if fallback else "")
                ) from e
            bad, diff = _compare(run, inputs, reference)
            problem = _mismatch("TorchScript", bad, inputs.n, diff)
            if problem is not None:
                raise ExportError(f"{src.path}: {problem}")
            chosen = "torchscript"
        model_file = ONNX_FILE if chosen == "onnx" else TORCHSCRIPT_FILE
        extra = _write_encoding(src, encoder, tmp, task)
        meta = {
            "format": chosen,
            "model_file": model_file,
            "runtime": "onnxruntime" if chosen == "onnx" else "torch (torch.jit.load)",
            "onnx_opset": ONNX_OPSET if chosen == "onnx" else None,
            "inputs": inputs.meta_inputs,
            "output": {"name": "logits", "dtype": "float32", "shape": ["batch", task.num_labels]},
            "labels": list(task.label_names),
            "task": task.name,
            "task_spec": task.to_dict(),
            "text_fields": list(task.text_fields),
            "max_length": src.max_length,
            "encoding": extra,
            "source": {"kind": src.kind, "path": str(src.path), "quantized": quantized},
            "check": {
                "examples": inputs.n,
                "predictions_agree": 1.0,
                "max_abs_logit_diff": diff,
                "logit_tolerance": LOGIT_ATOL,
                "batch_size": bs,
            },
            "recorded_sizes": {k: {"recorded": a, "measured": b} for k, (a, b) in size_check.items()},
            "fallback_reason": fallback,
            "torch": str(torch.__version__),
        }
        (tmp / EXPORT_META).write_text(json.dumps(meta, indent=2) + "\n")
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        total = sum((tmp / f).stat().st_size for f in files)
    return ExportReport(
        chosen,
        str(out),
        str(src.path),
        src.kind,
        files,
        total,
        inputs.n,
        1.0,
        diff,
        bs,
        size_check,
        fallback,
        round(time.perf_counter() - start, 2),
    )


def _wrap(src: _Source, token_types: bool) -> nn.Module:
    return StudentExport(src.model) if src.is_student else TransformerExport(src.model, token_types)


def verify_artefact(
    artefact_dir: str | Path,
    source: str | Path,
    task_data=None,
    data: str | None = None,
    bpemb_dir: str | Path | None = None,
    batch_size: int | None = None,
) -> tuple[int, float]:
    """Check an exported artefact against a model (``source``, as for :func:`export_model`) on the dev split(s):
    returns (examples checked, max abs logit difference); an argmax that differs anywhere, or logits further apart
    than :data:`LOGIT_ATOL`, is an :class:`ExportError` naming the counts."""
    d = Path(artefact_dir)
    meta_file = d / EXPORT_META
    if not meta_file.is_file():
        raise InputFileError(f"{d}: not an exported artefact (no {EXPORT_META})")
    meta = json.loads(meta_file.read_text())
    src = _load_source(source)
    if task_data is None:
        task_data = resolve_task_data(_source_task_metas(src), data, f"{src.path}")
    splits = [task_data.splits[s] for s in task_data.task.eval_splits if s in task_data.splits]
    quantized = _is_quantized(src.model) if src.is_student else _tc_quantized(src.model)
    bs = batch_size or (1 if quantized else CHECK_BATCH_SIZE)
    if src.is_student:
        inputs, _ = _student_inputs(src, splits, bpemb_dir, bs)
    else:
        inputs, _ = _transformer_inputs(src, splits, bs)
    if [i["name"] for i in meta.get("inputs", [])] != inputs.names:
        raise ExportError(
            f"{d}: the artefact's inputs {[i['name'] for i in meta.get('inputs', [])]} are not the"
            f" model's {inputs.names}"
        )
    reference = _reference_logits(src.model, inputs, src.is_student)
    model_file = d / meta["model_file"]
    run = _onnx_runner(model_file) if meta["format"] == "onnx" else _torchscript_runner(model_file)
    bad, diff = _compare(run, inputs, reference)
    problem = _mismatch("ONNX" if meta["format"] == "onnx" else "TorchScript", bad, inputs.n, diff)
    if problem is not None:
        raise ExportError(f"{d}: {problem}")
    return inputs.n, diff


def _tc_quantized(model: nn.Module) -> bool:
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())


# ---------------------------------------------------------------------------------------------------------------
# text -> inputs without this project


def _write_encoding(src: _Source, encoder, directory: Path, task) -> dict[str, Any]:
    if not src.is_student:
        src.tokenizer.save_pretrained(directory)
        return {
            "kind": "tokenizer",
            "files": "tokenizer files (load with transformers.AutoTokenizer or"
            " tokenizers.Tokenizer.from_file('tokenizer.json'))",
            "max_length": src.max_length,
            "truncation": "longest first, to max_length tokens",
            "pair": task.pair,
        }
    from featherweight_core import encoders as enc

    cfg = src.student_cfg
    params: dict[str, Any] = {"kind": cfg.embedding, "pair": bool(cfg.pair)}
    if cfg.embedding == "char":
        params.update(
            alphabet=enc.CHAR_ALPHABET,
            pad_id=0,
            unknown_id=1,
            rule="lowercase, strip accents (NFKD, drop combining marks); alphabet[i] -> i + 2, other -> 1;"
            " empty text -> [1]",
        )
    elif cfg.embedding == "hash":
        params.update(
            vocab_size=encoder.vocab_size,
            num_buckets=encoder.num_buckets,
            num_hashes=encoder.num_hashes,
            word_pattern=enc._WORD_RE.pattern,
            rule="lowercase; words = regex findall (or [''] when none); per word and hash i: md5 of"
            " (word + str(i)) in UTF-8, first 8 bytes as little-endian int, mod (vocab_size *"
            " num_buckets), + 1",
        )
    else:
        model_file = Path(encoder.bpemb.model_file)
        shutil.copyfile(model_file, directory / "bpe.model")
        params.update(
            sentencepiece_model="bpe.model",
            vocab_size=encoder.vocab_size,
            unknown_id=int(encoder.bpemb.spm.unk_id()) + 1,
            rule="lowercase, every digit -> '0'; sentencepiece ids + 1 (0 is padding); no pieces -> [unk + 1]",
        )
    (directory / ENCODER_FILE).write_text(_encoder_source(params))
    return {**params, "script": ENCODER_FILE}


def _encoder_source(params: dict[str, Any]) -> str:
    """The standalone ``encode.py``: stdlib + numpy (+ sentencepiece for bpe); the encoding's constants inlined."""
    kind = params["kind"]
    head = f'''"""Text -> inputs of the exported featherweight student ({kind} embedding), without featherweight.

Written by `featherweight export`; needs only the Python standard library and numpy{" and sentencepiece" if kind == "bpe" else ""}.

    import encode
    inputs = encode.batch(["a text", "another one"])        # dict of numpy int64 arrays, the model's inputs
    inputs = encode.batch([("premise", "hypothesis")])      # sentence-pair students: one (a, b) tuple per example

`python encode.py` reads one text per line on stdin (tab-separated pairs for pair students) and prints the ids of
each as a JSON line.
"""

import hashlib
import json
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np

KIND = {kind!r}
PAIR = {bool(params["pair"])!r}
'''
    if kind == "char":
        body = f'''
ALPHABET = {params["alphabet"]!r}
_INDEX = {{c: i + 2 for i, c in enumerate(ALPHABET)}}  # 0 padding, 1 unknown
WIDTH = 1


def _strip_accents(text):
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def encode(text):
    """One text -> list of ids (length >= 1)."""
    ids = [_INDEX.get(c, 1) for c in _strip_accents(text.lower())]
    return ids or [1]
'''
    elif kind == "hash":
        body = f'''
VOCAB_SIZE = {params["vocab_size"]}
NUM_BUCKETS = {params["num_buckets"]}
NUM_HASHES = {params["num_hashes"]}
WORD_RE = re.compile({params["word_pattern"]!r}, re.UNICODE)
WIDTH = NUM_HASHES
_SPACE = VOCAB_SIZE * NUM_BUCKETS


def _md5_int(s):
    return int.from_bytes(hashlib.md5(s.encode("utf-8")).digest()[:8], "little")


def encode(text):
    """One text -> list of [id_1, ..., id_NUM_HASHES] per word (at least one word)."""
    words = WORD_RE.findall(text.lower()) or [""]
    return [[_md5_int(f"{{w}}{{i}}") % _SPACE + 1 for i in range(NUM_HASHES)] for w in words]
'''
    else:
        body = f'''
import sentencepiece as spm

_SP = spm.SentencePieceProcessor(model_file=str(Path(__file__).with_name({params["sentencepiece_model"]!r})))
UNKNOWN_ID = {params["unknown_id"]}
WIDTH = 1


def encode(text):
    """One text -> list of ids (sentencepiece id + 1; length >= 1)."""
    ids = _SP.EncodeAsIds(re.sub(r"\\d", "0", text.lower()))
    return [i + 1 for i in ids] or [UNKNOWN_ID]
'''
    tail = '''

def _pad(seqs):
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    T = int(lengths.max()) if len(seqs) else 0
    shape = (len(seqs), T) if WIDTH == 1 else (len(seqs), T, WIDTH)
    ids = np.zeros(shape, dtype=np.int64)
    for r, s in enumerate(seqs):
        if len(s):
            ids[r, : len(s)] = np.asarray(s, dtype=np.int64)
    return ids, lengths


def batch(texts):
    """Texts (str, or (a, b) tuples for pair students) -> the model's inputs as a dict of int64 arrays."""
    if PAIR:
        a, b = _pad([encode(t[0]) for t in texts]), _pad([encode(t[1]) for t in texts])
        return {"ids_a": a[0], "lengths_a": a[1], "ids_b": b[0], "lengths_b": b[1]}
    texts = [t[0] if isinstance(t, (tuple, list)) else t for t in texts]
    ids, lengths = _pad([encode(t) for t in texts])
    return {"ids": ids, "lengths": lengths}


if __name__ == "__main__":
    for line in sys.stdin:
        line = line.rstrip("\\n")
        fields = line.split("\\t") if PAIR else [line]
        print(json.dumps([encode(f) for f in fields]))
'''
    return head + body + tail
