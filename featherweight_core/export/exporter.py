"""Export a trained model as a deployable artefact: ONNX where the model exports, otherwise TorchScript.

Sources (:func:`export_model`):

* a student checkpoint file: ``student.pt`` (``featherweight distill``, stage 1 of a sweep) or ``compressed.pt``
  (``featherweight compress``, stage 2: pruned and/or quantized);
* a fine-tuned teacher directory (a Hugging Face ``save_pretrained`` directory, ``featherweight teacher finetune``);
* a compressed-teacher directory (BERT-of-Theseus or BERT-Vision output, read through
  :func:`featherweight_core.teacher.compressed.load_compressed`).

The model is wrapped in a module whose inputs are plain int64 tensors and whose output is the logits: students take
``ids`` (batch, time) - (batch, time, 3) for hash embeddings - and ``lengths`` (batch,), or ``ids_a, lengths_a,
ids_b, lengths_b`` for sentence pairs; transformers take ``input_ids``, ``attention_mask`` and ``token_type_ids``
(when the model uses them), each (batch, sequence). ``fmt="auto"`` tries ONNX (``torch.onnx.export`` with the
TorchScript-based exporter, opset :data:`ONNX_OPSET`, dynamic batch and time axes) and checks it with onnxruntime;
when the export or that check fails it falls back to TorchScript (``torch.jit.trace``) and records why. An int8
student (a compressed trial with quantization) is exported as an int8 ONNX graph quantized by ONNX Runtime's own
tools (:mod:`featherweight_core.export.int8`); int8 teachers stay TorchScript.

Before anything is written the source is measured the way its trial was (students: ``measure.param_counts`` and
``measure.disk_size``; teacher directories: ``measure.saved_model_sizes``; compressed teachers:
``teacher_compression.measure_saved``) and compared with the recorded sizes, if given. The artefact is then checked on
the task's dev split(s): its argmax must equal the PyTorch model's on every example, and its logits must be within
:data:`LOGIT_ATOL` of them - except an int8 ONNX student, whose predictions may differ from the PyTorch int8
model's on up to ``max_disagree`` of the examples (default :data:`INT8_MAX_DISAGREE`: two int8 kernels round
differently), counted and recorded. Float models are checked in length-bucketed batches of :data:`CHECK_BATCH_SIZE`;
models with int8 dynamic quantization one example at a time (dynamic quantization takes its activation ranges over
the whole batch, so padding rows move the logits of a batch slightly, in PyTorch as in the artefact). Any failure
leaves nothing in the output directory (it is built aside and swapped into place).

Alongside the model the directory holds :data:`EXPORT_META` (format, inputs, labels, task, max length, encoding) and
what turns text into inputs without this project: the tokenizer files (transformers), or ``encode.py``, a
standalone encoder (stdlib + numpy; sentencepiece and the copied ``.model`` file for bpe) written from the student's
encoding settings (students). See docs/export.md.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featherweight_core.atomic import atomic_dir
from featherweight_core.errors import ConfigError, InputFileError
from featherweight_core.export.encoding import write_encoding
from featherweight_core.export.int8 import INT8_MAX_DISAGREE, int8_export_form, ort_quantize
from featherweight_core.export.parity import (
    CHECK_BATCH_SIZE,
    LOGIT_ATOL,
    ONNX_OPSET,
    compare_logits,
    export_onnx,
    export_torchscript,
    mismatch_message,
    onnx_runner,
    reference_logits,
    student_inputs,
    student_is_quantized,
    teacher_is_quantized,
    torchscript_runner,
    transformer_inputs,
)
from featherweight_core.export.rnn import StudentExport, TransformerExport
from featherweight_core.export.sources import (
    ExportError,
    ExportSource,
    check_recorded_sizes,
    error_summary,
    load_source,
    resolve_task_data,
    source_task_metas,
)
from featherweight_core.students.measure import gzip_bytes

FORMATS = ("auto", "onnx", "torchscript")
EXPORT_META = "featherweight_export.json"
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.pt"


@dataclass
class ExportReport:
    """What :func:`export_model` wrote and checked.

    files: the artefact's file names; artefact_bytes: their total size; examples_checked: dev examples run through
    both; predictions_agree: fraction whose argmax agrees (1.0, or the export fails); max_abs_logit_diff: largest
    difference of a logit; recorded_size_check: ``{measure: (recorded, now)}`` for each recorded size compared;
    fallback_reason: why ONNX was not used (``fmt="auto"`` only), else None. precision: ``float`` or ``int8``;
    predictions_disagree: dev examples whose prediction differs (0 but for int8 ONNX, up to ``max_disagree`` of
    them); model_gzip_bytes: the gzip size of the model file.
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
    precision: str = "float"
    predictions_disagree: int = 0
    max_disagree: float = 0.0
    model_file: str = ""
    model_gzip_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recorded_size_check"] = {k: list(v) for k, v in self.recorded_size_check.items()}
        return d


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
    max_disagree: float = INT8_MAX_DISAGREE,
) -> ExportReport:
    """Export ``source`` (a student checkpoint file, a fine-tuned teacher directory or a compressed-teacher
    directory) into ``output_dir`` as ONNX or TorchScript (``fmt``), checked on the dev split(s) of ``task_data``
    (default: the task and data the source records; ``data`` replaces the recorded data source). ``recorded``: the
    sizes recorded for the source (``params``, ``disk_bytes``, ``gzip_bytes``) - a difference is an
    :class:`ExportError`. ``batch_size``: check batches (default :data:`CHECK_BATCH_SIZE`; 1 for quantized
    models). ``parent_meta``: metadata recording the task when the source's own does not (a sweep's compressed
    student: its parent checkpoint's). ``max_disagree``: the fraction of dev examples on which an int8 ONNX
    student's prediction may differ from the PyTorch int8 model's. Nothing is left in ``output_dir`` when anything
    fails."""
    start = time.perf_counter()
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    if isinstance(max_disagree, bool) or not isinstance(max_disagree, int | float) or not 0 <= max_disagree <= 1:
        raise ConfigError(f"max_disagree must be a fraction in [0, 1], got {max_disagree!r}")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out}: directory exists and is not empty (pass overwrite / --overwrite)")
    src = load_source(source)
    if src.path.resolve() == out.resolve() or out.resolve() in src.path.resolve().parents:
        raise ExportError(f"{out}: the output directory holds the model being exported ({src.path}); choose another")
    size_check = check_recorded_sizes(src, recorded)
    if task_data is None:
        task_data = resolve_task_data([*source_task_metas(src), parent_meta or {}], data, f"{src.path}")
    task = task_data.task
    splits = [task_data.splits[s] for s in task.eval_splits if s in task_data.splits]
    if not splits or not sum(len(s) for s in splits):
        raise ExportError(f"task {task.name!r}: no dev examples to check the artefact on")
    quantized = student_is_quantized(src.model) if src.is_student else teacher_is_quantized(src.model)
    bs = batch_size or (1 if quantized else CHECK_BATCH_SIZE)
    if src.is_student:
        cfg = src.student_cfg
        if (cfg.pair, cfg.num_labels) != (task.pair, task.num_labels):
            raise ExportError(f"task {task.name!r} does not fit the student ({cfg.num_labels} labels, pair={cfg.pair})")
        inputs, encoder = student_inputs(src, splits, bpemb_dir, bs)
        reference = reference_logits(src.model, inputs, True)
        time_axis, token_types = "time", False
    else:
        inputs, token_types = transformer_inputs(src, splits, bs)
        reference = reference_logits(src.model, inputs, False)
        encoder, time_axis = None, "sequence"
    int8 = quantized and src.is_student
    wrapper = _wrap(src, token_types)
    fallback, bad = None, 0
    with atomic_dir(out) as tmp:
        chosen = None
        if fmt in ("auto", "onnx"):
            step = "export"
            try:  # any exporter / runtime failure: the reason is recorded, TorchScript tried next
                if int8:
                    bad, diff, problem = _int8_onnx(src.model, inputs, reference, tmp, max_disagree)
                else:
                    export_onnx(wrapper, inputs, tmp / ONNX_FILE, time_axis)
                    step = "check with onnxruntime"
                    bad, diff = compare_logits(onnx_runner(tmp / ONNX_FILE), inputs, reference)
                    problem = mismatch_message("ONNX", bad, inputs.n, diff)
            except Exception as e:
                problem = f"ONNX {step} failed ({error_summary(e)})"
            if problem is None:
                chosen = "onnx"
            elif fmt == "onnx":
                raise ExportError(f"{src.path}: {problem}")
            else:
                fallback, bad = problem, 0
                (tmp / ONNX_FILE).unlink(missing_ok=True)
        if chosen is None:
            if fmt == "auto":  # the ONNX exporter can leave quantized modules altered: trace a fresh copy
                wrapper = _wrap(load_source(source), token_types)
            try:
                export_torchscript(wrapper, inputs, tmp / TORCHSCRIPT_FILE)
                run = torchscript_runner(tmp / TORCHSCRIPT_FILE)
            except Exception as e:
                raise ExportError(
                    f"{src.path}: TorchScript export failed ({error_summary(e)})"
                    + (f"; {fallback}" if fallback else "")
                ) from e
            bad, diff = compare_logits(run, inputs, reference)
            problem = mismatch_message("TorchScript", bad, inputs.n, diff)
            if problem is not None:
                raise ExportError(f"{src.path}: {problem}")
            chosen = "torchscript"
        model_file = ONNX_FILE if chosen == "onnx" else TORCHSCRIPT_FILE
        precision = "int8" if quantized else "float"
        tolerance = max_disagree if chosen == "onnx" and int8 else 0.0
        model_gzip = gzip_bytes((tmp / model_file).read_bytes())
        extra = write_encoding(src, encoder, tmp, task)
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
            "precision": precision,
            "model_bytes": (tmp / model_file).stat().st_size,
            "model_gzip_bytes": model_gzip,
            "source": {"kind": src.kind, "path": str(src.path), "quantized": quantized},
            "check": {
                "examples": inputs.n,
                "predictions_agree": 1.0 - bad / inputs.n,
                "predictions_disagree": bad,
                "max_disagree": tolerance,
                "max_abs_logit_diff": diff,
                "logit_tolerance": None if tolerance else LOGIT_ATOL,
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
        1.0 - bad / inputs.n,
        diff,
        bs,
        size_check,
        fallback,
        round(time.perf_counter() - start, 2),
        precision,
        bad,
        tolerance,
        model_file,
        model_gzip,
    )


INT8_FLOAT_FILE = "model.float.onnx"


def _int8_onnx(model: nn.Module, inputs, reference, tmp: Path, max_disagree: float) -> tuple[int, float, str | None]:
    """Write the int8 ONNX form of an int8 student to ``tmp / ONNX_FILE`` and check it against ``reference``:
    (examples whose prediction differs, max abs logit difference, the problem when more than ``max_disagree`` of
    them differ, else None)."""
    form, module_paths = int8_export_form(model)
    try:
        # unfolded: int8 tables and recurrent weights stay int8 in the file, dequantized by ONNX Runtime at load;
        # the weights its quantizer rewrites are plain initializers already
        export_onnx(StudentExport(form).eval(), inputs, tmp / INT8_FLOAT_FILE, "time", fold_constants=False)
        ort_quantize(tmp / INT8_FLOAT_FILE, tmp / ONNX_FILE, module_paths)
    finally:
        (tmp / INT8_FLOAT_FILE).unlink(missing_ok=True)
    bad, diff = compare_logits(onnx_runner(tmp / ONNX_FILE), inputs, reference)
    return bad, diff, int8_mismatch_message(bad, inputs.n, diff, max_disagree)


def int8_mismatch_message(bad: int, n: int, diff: float, max_disagree: float) -> str | None:
    if bad > max_disagree * n:
        return (
            f"the int8 ONNX artefact's prediction differs from the PyTorch int8 model's on {bad} of {n} dev examples"
            f" (at most {max_disagree:g} of them may; max logit difference {diff:.3g})"
        )
    return None


def _wrap(src: ExportSource, token_types: bool) -> nn.Module:
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
    src = load_source(source)
    if task_data is None:
        task_data = resolve_task_data(source_task_metas(src), data, f"{src.path}")
    splits = [task_data.splits[s] for s in task_data.task.eval_splits if s in task_data.splits]
    quantized = student_is_quantized(src.model) if src.is_student else teacher_is_quantized(src.model)
    bs = batch_size or (1 if quantized else CHECK_BATCH_SIZE)
    if src.is_student:
        inputs, _ = student_inputs(src, splits, bpemb_dir, bs)
    else:
        inputs, _ = transformer_inputs(src, splits, bs)
    if [i["name"] for i in meta.get("inputs", [])] != inputs.names:
        raise ExportError(
            f"{d}: the artefact's inputs {[i['name'] for i in meta.get('inputs', [])]} are not the"
            f" model's {inputs.names}"
        )
    reference = reference_logits(src.model, inputs, src.is_student)
    model_file = d / meta["model_file"]
    run = onnx_runner(model_file) if meta["format"] == "onnx" else torchscript_runner(model_file)
    bad, diff = compare_logits(run, inputs, reference)
    tolerance = (meta.get("check") or {}).get("max_disagree") or 0.0
    if tolerance:
        problem = int8_mismatch_message(bad, inputs.n, diff, tolerance)
    else:
        problem = mismatch_message("ONNX" if meta["format"] == "onnx" else "TorchScript", bad, inputs.n, diff)
    if problem is not None:
        raise ExportError(f"{d}: {problem}")
    return inputs.n, diff
