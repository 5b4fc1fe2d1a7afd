"""Fine-tuning a teacher: :func:`finetune_teacher` fine-tunes a hub id (``roberta-large``) or a local model
directory on a task's train split with a plain PyTorch loop (AdamW, linear warm-up/decay, length-grouped batches
with dynamic padding, bf16/fp16 autocast on GPU) and saves model, tokenizer, ``featherweight_teacher.json`` (task,
labels, config) and ``teacher_metrics.json`` (dev metrics) in the output directory, atomically.

Thesis 4.1 and 6.1.2: students learn from the logits of a fine-tuned transformer."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from featherweight_core.atomic import atomic_dir
from featherweight_core.data.taskdata import TaskData, recorded_source
from featherweight_core.teacher.batches import length_grouped_batches, tokenize, training_rows
from featherweight_core.teacher.config import METRICS_FILE, TEACHER_META, TeacherConfig, TeacherError
from featherweight_core.teacher.devices import autocast_dtype, progress_bar, resolve_device
from featherweight_core.teacher.loading import load_classifier
from featherweight_core.teacher.predict import evaluate_teacher

# ---------------------------------------------------------------------------------------------------------------
# fine-tuning


def check_model_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuse to replace a file, or a non-empty directory unless ``overwrite``; the save itself is atomic
    (:func:`featherweight_core.atomic.atomic_dir`)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise TeacherError(f"{output_dir}: exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise TeacherError(f"{output_dir}: directory exists and is not empty (pass overwrite / --overwrite)")


def save_teacher(model, tokenizer, directory: Path, meta: dict[str, Any]) -> None:
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / TEACHER_META).write_text(json.dumps(meta, indent=2) + "\n")
    if "metrics" in meta:
        (directory / METRICS_FILE).write_text(json.dumps(meta["metrics"], indent=2) + "\n")


def classifier_step(
    model,
    batch: dict[str, torch.Tensor],
    labels: torch.Tensor,
    opt,
    scaler,
    dtype,
    grad_clip,
    params: list,
    where: str,
    error: type[TeacherError] = TeacherError,
) -> tuple[torch.Tensor, bool]:
    """One optimiser step of a sequence classifier on cross-entropy: forward under autocast (``dtype`` None: fp32),
    a non-finite loss is ``error`` (``where`` says which step), backward through the grad scaler, gradient clipping of
    ``params`` at ``grad_clip`` (None: none), step. Returns ``(loss, updated)``; ``updated`` is False when nothing
    in the graph requires a gradient (a Theseus step in which every block ran its frozen predecessor): then the
    optimiser step is a no-op that keeps the scheduler's step count."""
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in batch.items()}
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        logits = model(**inputs).logits
    loss = F.cross_entropy(logits.float(), labels.to(device))
    if not torch.isfinite(loss):
        raise error(f"non-finite loss {where}")
    opt.zero_grad(set_to_none=True)
    if not loss.requires_grad:
        opt.step()
        return loss, False
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(opt)
    scaler.update()
    return loss, True


def teacher_optimizer(model, cfg: TeacherConfig, total_steps: int):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    warmup = int(cfg.warmup_ratio * total_steps)

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def finetune_teacher(
    model_name_or_dir: str | Path,
    task_data: TaskData,
    output_dir: str | Path,
    cfg: TeacherConfig | None = None,
    progress: bool = True,
    overwrite: bool = False,
    log=sys.stderr,
) -> dict[str, Any]:
    """Fine-tune a sequence classifier on ``task_data``'s train split; save it to ``output_dir``; return dev metrics.

    The returned dict holds the dev metrics plus ``train_seconds``, ``steps`` and ``train_examples``; the same goes
    into ``output_dir/teacher_metrics.json``. The directory appears only once complete.
    """
    cfg = cfg or TeacherConfig()
    task = task_data.task
    output_dir = Path(output_dir)
    train = task_data.train
    if len(train) == 0:
        raise TeacherError(f"task {task.name!r}: the train split is empty")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_classifier(model_name_or_dir, task.num_labels, task.label_names)
    check_model_output_dir(output_dir, overwrite)
    rng = np.random.default_rng(cfg.seed)
    rows = training_rows(len(train), cfg.max_train_examples, rng)
    texts = [train.texts[i] for i in rows]
    labels = torch.from_numpy(train.labels[rows])
    tok = tokenize(tokenizer, texts, cfg.max_length, model)
    lengths = tok.lengths
    steps_per_epoch = math.ceil(len(rows) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    model.to(device)
    opt, sched = teacher_optimizer(model, cfg, total)
    dtype = autocast_dtype(device, cfg.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    start = time.perf_counter()
    step, history = 0, []
    metrics: dict[str, float] = {}
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        batches = length_grouped_batches(lengths, cfg.batch_size, rng)
        running, seen = 0.0, 0
        for idx in progress_bar(batches, len(batches), f"teacher epoch {epoch}", progress):
            loss, _ = classifier_step(
                model,
                tok.batch(idx),
                labels[idx],
                opt,
                scaler,
                dtype,
                cfg.grad_clip,
                list(model.parameters()),
                f"at step {step} (lr {cfg.lr} too high?)",
            )
            sched.step()
            step += 1
            running += loss.item() * len(idx)
            seen += len(idx)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total:
                m = evaluate_teacher(model, tokenizer, task_data, cfg, device)
                history.append({"step": step, "train_loss": running / seen, **m})
                if log:
                    print(
                        f"step {step}/{total}  loss {running / seen:.4f}  dev {m['score']:.4f}"
                        f"  {time.perf_counter() - start:.0f}s",
                        file=log,
                        flush=True,
                    )
                model.train()
        metrics = evaluate_teacher(model, tokenizer, task_data, cfg, device)
        history.append({"step": step, "epoch": epoch, "train_loss": running / max(seen, 1), **metrics})
        if log:
            print(
                f"epoch {epoch}/{cfg.epochs}  loss {running / max(seen, 1):.4f}  dev {metrics['score']:.4f}"
                f"  {time.perf_counter() - start:.0f}s",
                file=log,
                flush=True,
            )
    seconds = time.perf_counter() - start
    result = {**metrics, "train_seconds": round(seconds, 2), "steps": step, "train_examples": int(len(rows))}
    meta = {
        "task": task.name,
        "task_spec": task.to_dict(),
        "label_names": list(task.label_names),
        "text_fields": list(task.text_fields),
        "base_model": str(model_name_or_dir),
        "data_fingerprint": task_data.fingerprint(),
        "data_source": recorded_source(task_data.source),
        "split_info": task_data.split_info,
        "config": cfg.to_dict(),
        "device": str(device),
        "torch": torch.__version__,
        "metrics": result,
        "history": history,
    }
    model.to("cpu")
    with atomic_dir(output_dir) as tmp:  # a reader sees the old teacher or the complete new one
        save_teacher(model, tokenizer, tmp, meta)
    return result
