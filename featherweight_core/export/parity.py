"""Writing an artefact and checking it against the PyTorch model: inputs built from the task's dev split(s), the
ONNX and TorchScript writers and runners, and the comparison of their logits with the model's
(:data:`LOGIT_ATOL`)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from featherweight_core.compression.quantize import is_quantized
from featherweight_core.data.batching import EncodedSplit, bucket_batches, make_batch
from featherweight_core.data.encoders import build_encoder
from featherweight_core.export.sources import ExportError, ExportSource
from featherweight_core.teacher.batches import tokenize

ONNX_OPSET = 17
LOGIT_ATOL = 1e-3  # max |artefact logit - PyTorch logit| accepted (observed: < 1e-6 for ONNX, 0 for TorchScript)
CHECK_BATCH_SIZE = 32


# ---------------------------------------------------------------------------------------------------------------
# dev inputs


@dataclass
class ArtefactInputs:
    names: list[str]
    batches: list[tuple[np.ndarray, tuple[torch.Tensor, ...]]]  # (row index, input tensors)
    n: int
    meta_inputs: list[dict[str, Any]]
    batch_size: int
    example: tuple[torch.Tensor, ...]  # what the model is traced / exported with: two rows of different lengths


def student_is_quantized(model: nn.Module) -> bool:
    return is_quantized(model)


def student_inputs(src: ExportSource, splits: list, bpemb_dir, batch_size: int) -> tuple[ArtefactInputs, Any]:
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
    return ArtefactInputs(names, batches, len(texts), meta_inputs, batch_size, example), encoder


def transformer_inputs(src: ExportSource, splits: list, batch_size: int) -> tuple[ArtefactInputs, bool]:
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
    return ArtefactInputs(names, batches, len(texts), meta_inputs, batch_size, example), token_types


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


def export_onnx(
    wrapper: nn.Module, inputs: ArtefactInputs, path: Path, time_axis: str, fold_constants: bool = True
) -> None:
    """``fold_constants=False`` keeps computations on weights in the graph (an int8 table dequantized per call stays
    int8 in the file; ONNX Runtime folds it in memory when it loads the model)."""
    # a pair's two texts have lengths of their own: ids_a and ids_b get their own time axes (ONNX Runtime plans
    # buffers by these names: a shared name would declare both texts equally long)
    dynamic = {
        n: (
            {0: "batch", 1: time_axis + n[3:] if n.startswith("ids_") else time_axis}
            if not n.startswith("lengths")
            else {0: "batch"}
        )
        for n in inputs.names
    }
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
            do_constant_folding=fold_constants,
        )


def onnx_runner(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(batch: tuple[torch.Tensor, ...]) -> np.ndarray:
        return session.run(["logits"], {n: t.numpy() for n, t in zip(names, batch, strict=True)})[0]

    return run


def export_torchscript(wrapper: nn.Module, inputs: ArtefactInputs, path: Path) -> None:
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(wrapper, inputs.example, check_trace=False, strict=False)
        torch.jit.save(traced, str(path))


def torchscript_runner(path: Path):
    with _quiet():
        loaded = torch.jit.load(str(path), map_location="cpu").eval()

    @torch.no_grad()
    def run(batch: tuple[torch.Tensor, ...]) -> np.ndarray:
        return loaded(*batch).float().numpy()

    return run


@torch.no_grad()
def reference_logits(model: nn.Module, inputs: ArtefactInputs, is_student: bool) -> np.ndarray:
    out: np.ndarray | None = None
    for idx, batch in inputs.batches:
        logits = model(*batch) if is_student else model(**dict(zip(inputs.names, batch, strict=True))).logits
        logits = logits.float().numpy()
        if out is None:
            out = np.zeros((inputs.n, logits.shape[1]), np.float32)
        out[idx] = logits
    return out if out is not None else np.zeros((0, 0), np.float32)


def compare_logits(run, inputs: ArtefactInputs, reference: np.ndarray) -> tuple[int, float]:
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


def mismatch_message(fmt: str, bad: int, n: int, diff: float) -> str | None:
    if bad:
        return (
            f"the {fmt} artefact's prediction differs from the PyTorch model's on {bad} of {n} dev examples"
            f" (max logit difference {diff:.3g})"
        )
    if not diff <= LOGIT_ATOL:
        return f"the {fmt} artefact's logits differ from the PyTorch model's by up to {diff:.3g} (tolerance {LOGIT_ATOL:g})"
    return None


def teacher_is_quantized(model: nn.Module) -> bool:
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())
