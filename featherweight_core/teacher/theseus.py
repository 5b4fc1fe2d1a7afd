"""BERT-of-Theseus: compress a fine-tuned teacher by progressive module replacement.

A teacher with ``L`` transformer layers is cut into ``L / r`` blocks of ``r`` consecutive layers (``r`` =
``replace_rate``, 2 by default). Each block gets one *successor* layer, initialised as a copy of the block's first
layer. During training each block independently, on every forward pass, runs its successor with probability ``p``
and its original (*predecessor*) layers otherwise; the predecessor (embeddings, original layers) is frozen, so only
the successor layers (and the classifier head, when configured) learn, on the task's cross-entropy loss. The
successors thereby learn to stand in for their blocks while still being trained in the context of the full teacher.

``p`` follows a :class:`ReplacementSchedule`:

* ``linear`` (the default; the curriculum of the BERT-of-Theseus paper): ``p = min(k * t + b, 1)`` at optimiser step
  ``t``. ``b`` (default 0.3) is the starting rate; without an explicit ``k`` it is chosen so that ``p`` reaches 1.0
  after ``replacing_fraction`` (default 0.85) of the steps.
* ``constant``: ``p`` (default 0.5) for the first ``replacing_fraction`` of the steps, then 1.0.

Once ``p`` is 1.0 only the successor runs (successor fine-tuning). The defaults follow the seed study's findings:
a starting replacement rate around 0.1-0.3, module replacement for about 85% of the steps, then successor
fine-tuning (both phases matter). Afterwards only the successor runs: :func:`compress_theseus` saves it as an
ordinary Hugging Face classifier with ``L / r`` layers (``save_pretrained``), plus ``featherweight_teacher.json`` and
``teacher_metrics.json`` like a fine-tuned teacher, so it can itself serve as a teacher (logits, distillation, the
soft-target store). With ``quantize`` the saved form is the int8 (dynamic, every ``nn.Linear``) model instead, which
only :func:`featherweight_core.teacher.compressed.load_compressed` reads.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from featherweight_core.atomic import atomic_dir
from featherweight_core.data.taskdata import recorded_source
from featherweight_core.teacher import teacher_compression as tc
from featherweight_core.teacher.batches import length_grouped_batches, tokenize, training_rows
from featherweight_core.teacher.devices import autocast_dtype, progress_bar, resolve_device
from featherweight_core.teacher.finetune import (
    check_model_output_dir,
    classifier_step,
    save_teacher,
    teacher_optimizer,
)
from featherweight_core.teacher.loading import load_classifier, read_teacher_meta
from featherweight_core.teacher.predict import evaluate_teacher
from featherweight_core.teacher.softtargets import teacher_fingerprint
from featherweight_core.teacher.theseus_config import TheseusConfig, TheseusError
from featherweight_core.teacher.theseus_model import TheseusModel, check_replace_rate

# ---------------------------------------------------------------------------------------------------------------
# compression


def compress_theseus(
    teacher_dir: str | Path,
    task_data,
    output_dir: str | Path,
    cfg: TheseusConfig | None = None,
    progress: bool = False,
    log=None,
    overwrite: bool = False,
):
    """Compress the fine-tuned teacher in ``teacher_dir`` by module replacement on ``task_data``'s train split and
    save the successor in ``output_dir`` (atomically). Returns a
    :class:`featherweight_core.teacher.teacher_compression.CompressedTeacherResult`."""
    cfg = cfg or TheseusConfig()
    tcfg = cfg.teacher_config()
    task = task_data.task
    output_dir = Path(output_dir)
    teacher_meta = read_teacher_meta(teacher_dir)
    check_model_output_dir(output_dir, overwrite)
    train = task_data.train
    if len(train) == 0:
        raise TheseusError(f"task {task.name!r}: the train split is empty")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_classifier(teacher_dir)
    if model.config.num_labels != task.num_labels:
        raise TheseusError(
            f"teacher {teacher_dir}: {model.config.num_labels} labels, but task {task.name!r} has {task.num_labels}"
        )
    check_replace_rate(model, cfg.replace_rate)
    fingerprint = teacher_fingerprint(teacher_dir)
    teacher_params = sum(p.numel() for p in model.parameters())
    recorded = teacher_meta.get("metrics") or {}
    teacher_score = recorded.get("score") if teacher_meta.get("data_fingerprint") == task_data.fingerprint() else None
    if teacher_score is None:  # not measured on this data: measure it now, for the comparison
        teacher_score = evaluate_teacher(model, tokenizer, task_data, tcfg, device)["score"]
        model.to("cpu")
    theseus = TheseusModel(model, cfg.replace_rate, cfg.train_classifier, cfg.seed)
    teacher_layers, layers = theseus.teacher_layers, theseus.successor_layers

    rng = np.random.default_rng(cfg.seed)
    rows = training_rows(len(train), cfg.max_train_examples, rng)
    texts = [train.texts[i] for i in rows]
    labels = torch.from_numpy(train.labels[rows])
    tok = tokenize(tokenizer, texts, cfg.max_length, model)
    lengths = tok.lengths
    total = math.ceil(len(rows) / cfg.batch_size) * cfg.epochs
    schedule = cfg.replacement_schedule(total)
    model.to(device)
    opt, sched = teacher_optimizer(model, tcfg, total)
    trainable = [p for p in model.parameters() if p.requires_grad]
    dtype = autocast_dtype(device, cfg.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    if log:
        print(
            f"theseus: {teacher_layers} -> {layers} layers, {schedule.schedule} schedule, p {schedule(0):.3f} ->"
            f" 1.0 after {schedule.replacing_steps}/{total} steps, {theseus.trainable_params:,} trainable"
            " parameters",
            file=log,
            flush=True,
        )
    start = time.perf_counter()
    step, history = 0, []
    for epoch in range(1, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        batches = length_grouped_batches(lengths, cfg.batch_size, rng)
        running, seen, p_sum, idle = 0.0, 0, 0.0, 0
        for idx in progress_bar(batches, len(batches), f"theseus epoch {epoch}", progress):
            p = schedule(step)
            theseus.set_p(p)
            p_sum += p
            loss, updated = classifier_step(
                model,
                tok.batch(idx),
                labels[idx],
                opt,
                scaler,
                dtype,
                cfg.grad_clip,
                trainable,
                f"at step {step} (lr {cfg.lr} too high?)",
                TheseusError,
            )
            idle += not updated  # every block drew its frozen predecessor and the head is frozen too
            sched.step()
            step += 1
            running += loss.item() * len(idx)
            seen += len(idx)
        m = evaluate_teacher(model, tokenizer, task_data, tcfg, device)  # eval mode: the successor alone
        row = {
            "epoch": epoch,
            "step": step,
            "train_loss": running / max(seen, 1),
            "mean_p": p_sum / len(batches),
            "steps_without_update": idle,
            "seconds": round(time.perf_counter() - epoch_start, 2),
            **m,
        }
        history.append(row)
        if log:
            print(
                f"epoch {epoch}/{cfg.epochs}  loss {row['train_loss']:.4f}  mean p {row['mean_p']:.2f}  dev (successor)"
                f" {m['score']:.4f}  {time.perf_counter() - start:.0f}s",
                file=log,
                flush=True,
            )
    train_seconds = time.perf_counter() - start
    model.to("cpu")
    successor = theseus.build_successor()
    trainable_params = sum(p.numel() for p in theseus.successor_params)
    if cfg.train_classifier:
        trainable_params += sum(p.numel() for p in theseus.head_params)
    del model, theseus

    final_model = tc.quantize_int8(successor) if cfg.quantize else successor
    ev = tc.evaluate(final_model, tokenizer, task_data, cfg.max_length, cfg.eval_batch_size, cfg.device)
    dev, test, classes = ev.metrics, ev.test_metrics, ev.class_metrics
    final_model.to("cpu")
    latency, teacher_latency = tc.latency_with_teacher(
        final_model, tokenizer, _latency_texts(task_data), cfg.max_length, teacher_dir
    )
    teacher_info = {
        "dir": str(teacher_dir),
        "fingerprint": fingerprint,
        "score": teacher_score,
        "params": teacher_params,
        "layers": teacher_layers,
        "latency_ms": teacher_latency,
    }
    metrics = {**dev, "train_seconds": round(train_seconds, 2), "steps": step, "train_examples": int(len(rows))}
    base_meta = teacher_meta if teacher_meta else {}
    meta = {
        "task": task.name,
        "task_spec": task.to_dict(),
        "label_names": list(task.label_names),
        "text_fields": list(task.text_fields),
        "base_model": str(teacher_dir),
        "data_fingerprint": task_data.fingerprint(),
        "data_source": recorded_source(task_data.source),
        "split_info": task_data.split_info,
        "config": {**tcfg.to_dict(), "max_length": cfg.max_length},
        "device": str(device),
        "torch": torch.__version__,
        "metrics": metrics,
        "history": history,
        "compressed_from": {"method": "theseus", **teacher_info, "base_model": base_meta.get("base_model")},
    }
    compressed = {
        "method": "theseus",
        "settings": cfg.to_dict(),
        "task": task.name,
        "labels": list(task.label_names),
        "layers": layers,
        "max_length": cfg.max_length,
        "quantized": cfg.quantize,
        "teacher": teacher_info,
        "trainable_params": trainable_params,
        "history": history,
        "metrics": dev,
        "test_metrics": test,
    }
    with atomic_dir(output_dir) as tmp:
        if cfg.quantize:
            tokenizer.save_pretrained(tmp)
            tc.save_int8(final_model, tmp, compressed)
        else:
            save_teacher(successor, tokenizer, tmp, meta)
            (tmp / tc.COMPRESSED_META).write_text(_json(compressed))
    sizes = tc.measure_saved(output_dir)
    seconds = time.perf_counter() - start
    result = tc.CompressedTeacherResult(
        method="theseus",
        output_dir=str(output_dir),
        metrics=dev,
        test_metrics=test,
        class_metrics=classes,
        params=sizes["params"],
        trainable_params=trainable_params,
        disk_bytes=sizes["disk_bytes"],
        gzip_bytes=sizes["gzip_bytes"],
        latency_ms=latency,
        layers=layers,
        quantized=cfg.quantize,
        seconds=round(seconds, 2),
        history=history,
        settings=cfg.to_dict(),
        teacher=teacher_info,
    )
    if log:
        print(
            f"theseus: dev {dev['score']:.4f} (teacher {teacher_score:.4f}), {layers} layers, {sizes['params']:,}"
            f" parameters, {latency:.1f} ms/example on CPU",
            file=log,
            flush=True,
        )
    return result


def quantize_successor(float_dir: str | Path, task_data, output_dir: str | Path, log=None, overwrite: bool = False):
    """The int8 form (dynamic, every ``nn.Linear``) of a float successor :func:`compress_theseus` saved in
    ``float_dir``, without training again: quantized, evaluated on ``task_data``'s dev (and test) split, saved in
    ``output_dir`` (atomically) and measured like any output. Its settings, history and trainable parameters are the
    float successor's; ``seconds`` counts the quantization, evaluation and measurement only. Equal to
    ``compress_theseus(..., quantize=True)`` with the same settings on a deterministic device, at a fraction of the
    cost (a sweep's ``quantize: [false, true]`` trains once)."""
    start = time.perf_counter()
    float_dir, output_dir = Path(float_dir), Path(output_dir)
    meta = tc.read_meta(float_dir)
    if meta["method"] != "theseus" or meta.get("quantized"):
        raise TheseusError(
            f"{float_dir}: not a float Theseus successor (method {meta['method']!r},"
            f" quantized {bool(meta.get('quantized'))})"
        )
    if "trainable_params" not in meta:
        raise TheseusError(
            f"{float_dir}: saved without its trainable parameter count (an older version); run"
            " compress_theseus with quantize instead"
        )
    check_model_output_dir(output_dir, overwrite)
    model, tokenizer = load_classifier(float_dir)
    q = tc.quantize_int8(model)
    del model
    settings = {**meta["settings"], "quantize": True}
    max_length = int(meta["max_length"])
    ev = tc.evaluate(q, tokenizer, task_data, max_length, int(settings.get("eval_batch_size", 64)), "cpu")
    dev, test, classes = ev.metrics, ev.test_metrics, ev.class_metrics
    # timed beside the teacher it came from, as compress_theseus times its outputs (the float sibling's teacher
    # latency, measured in another run, is kept only when that teacher is gone)
    teacher_info = dict(meta.get("teacher") or {})
    latency, teacher_latency = tc.latency_with_teacher(
        q, tokenizer, _latency_texts(task_data), max_length, teacher_info.get("dir")
    )
    if teacher_latency is not None:
        teacher_info["latency_ms"] = teacher_latency
    out_meta = {
        **meta,
        "settings": settings,
        "quantized": True,
        "quantized_from": str(float_dir),
        "metrics": dev,
        "test_metrics": test,
        "teacher": teacher_info,
    }
    with atomic_dir(output_dir) as tmp:
        tokenizer.save_pretrained(tmp)
        tc.save_int8(q, tmp, out_meta)
    sizes = tc.measure_saved(output_dir)
    if log:
        print(
            f"theseus int8 of {float_dir}: dev {dev['score']:.4f}, {sizes['gzip_bytes']:,} gzip bytes,"
            f" {latency:.1f} ms/example on CPU",
            file=log,
            flush=True,
        )
    return tc.CompressedTeacherResult(
        method="theseus",
        output_dir=str(output_dir),
        metrics=dev,
        test_metrics=test,
        class_metrics=classes,
        params=sizes["params"],
        trainable_params=int(meta["trainable_params"]),  # checked above
        disk_bytes=sizes["disk_bytes"],
        gzip_bytes=sizes["gzip_bytes"],
        latency_ms=latency,
        layers=int(meta["layers"]),
        quantized=True,
        seconds=round(time.perf_counter() - start, 2),
        history=list(meta.get("history") or []),
        settings=settings,
        teacher=teacher_info,
    )


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2) + "\n"


def _latency_texts(task_data) -> list:
    for split in task_data.task.eval_splits:
        if split in task_data.splits and len(task_data.splits[split]):
            return list(task_data.splits[split].texts)
    return list(task_data.train.texts)
