"""A teacher's predictions: :func:`predict_logits` runs a teacher over texts under ``torch.inference_mode``, batches
sorted by length so each batch is padded only to its own longest example (:mod:`featherweight_core.teacher.softtargets`
caches its results), and the dev metrics of those predictions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from featherweight_core.data.taskdata import TaskData
from featherweight_core.students.measure import split_metrics, task_metric_names
from featherweight_core.teacher.batches import Tokenized, tokenize
from featherweight_core.teacher.config import TeacherConfig, TeacherError
from featherweight_core.teacher.devices import autocast_dtype, progress_bar, resolve_device

# ---------------------------------------------------------------------------------------------------------------
# inference


PREDICT_CHUNK_ROWS = 32_768  # texts tokenized at a time: the tokenizer's output for millions of rows takes GBs


@torch.inference_mode()
def predict_logits(
    model,
    tokenizer,
    texts: Sequence[tuple[str, ...]],
    batch_size: int = 128,
    max_length: int = 128,
    device: str | torch.device = "auto",
    precision: str = "auto",
    progress: bool = False,
    sort_by_length: bool = True,
    fixed_length: bool = False,
    tokenized: Tokenized | None = None,
    chunk_rows: int = PREDICT_CHUNK_ROWS,
) -> np.ndarray:
    """Teacher logits for ``texts`` (list of 1- or 2-tuples): (N, C) float32, in input order.

    Texts are tokenized ``chunk_rows`` at a time (memory stays bounded on bootstrap sets of millions of rows); within
    a chunk, batches are formed from examples sorted by token count (``sort_by_length``) and padded to their own
    longest example. ``sort_by_length=False, fixed_length=True`` is the naive baseline (input order, every batch
    padded to ``max_length``) kept for the benchmark; ``tokenized`` (one chunk: all rows) skips tokenizing.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    model.to(device).eval()
    n = len(tokenized) if tokenized is not None else len(texts)
    out = np.zeros((n, model.config.num_labels), dtype=np.float32)
    if n == 0:
        return out
    step = n if tokenized is not None else max(1, chunk_rows)
    dtype = autocast_dtype(device, precision)

    def batches():
        for start in range(0, n, step):
            tok = (
                tokenized
                if tokenized is not None
                else tokenize(tokenizer, texts[start : start + step], max_length, model)
            )
            m = len(tok)
            order = np.argsort(-tok.lengths, kind="stable") if sort_by_length else np.arange(m)
            for i in range(0, m, batch_size):
                yield start, tok, order[i : i + batch_size]

    total = sum(math.ceil(min(step, n - s) / batch_size) for s in range(0, n, step))
    for start, tok, idx in progress_bar(batches(), total, "teacher logits", progress):
        inputs = {k: v.to(device) for k, v in tok.batch(idx, max_length if fixed_length else None).items()}
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(**inputs).logits
        out[start + idx] = logits.float().cpu().numpy()
    return out


def predict_dev_splits(
    model, tokenizer, task_data: TaskData, cfg: TeacherConfig, device: torch.device, progress: bool = False
) -> dict[str, np.ndarray]:
    """``{split: predicted label per example}`` of ``model`` on every dev split the task has."""
    out = {}
    for split in task_data.task.eval_splits:
        if split not in task_data.splits:
            continue
        sp = task_data.splits[split]
        logits = predict_logits(
            model, tokenizer, sp.texts, cfg.eval_batch_size, cfg.max_length, device, cfg.precision, progress
        )
        out[split] = logits.argmax(-1)
    if not out:
        raise TeacherError(
            f"task {task_data.task.name!r}: no dev split among {list(task_data.task.eval_splits)} to evaluate on"
        )
    return out


def dev_metrics(task_data: TaskData, predictions: dict[str, np.ndarray]) -> dict[str, float]:
    """The task's metric + extras from :func:`predict_dev_splits`' predictions: the mean over dev splits, and per
    split (``accuracy_validation_matched``, ...) when there is more than one."""
    task = task_data.task
    names = task_metric_names(task)
    per = {
        s: split_metrics(pred, task_data.splits[s].labels, names, task.num_labels) for s, pred in predictions.items()
    }
    out = {m: float(np.mean([v[m] for v in per.values()])) for m in names}
    if len(per) > 1:
        out.update({f"{m}_{s}": v[m] for s, v in per.items() for m in names})
    out["score"] = out[task.metric]
    return out


def evaluate_teacher(
    model, tokenizer, task_data: TaskData, cfg: TeacherConfig, device: torch.device, progress: bool = False
) -> dict[str, float]:
    """Dev metrics (the task's metric + extras, mean over eval splits and per split) of ``model``."""
    return dev_metrics(task_data, predict_dev_splits(model, tokenizer, task_data, cfg, device, progress))
