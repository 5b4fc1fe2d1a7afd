"""BERT-Vision: a small head on the hidden states of every layer of a fine-tuned teacher.

After "A High Performance Compression Approach for Transformer-Based NLP Tasks" (Jiang et al.).

A fine-tuned transformer computes a hidden state per layer and position; plain inference uses only the last one.
BERT-Vision keeps the teacher frozen, collects the hidden states of *every* layer once, and trains a small head on
them. For classification the paper reads the first position (``[CLS]`` in BERT, ``<s>`` in RoBERTa) of each layer
(``pooling="first"``, the default); ``pooling="mean"`` reads the mean over the real tokens instead.

Layers: a teacher with ``L`` transformer layers has ``L + 1`` hidden states per position - the embeddings' output
(layer 0) and the output of each transformer layer (1..L), as the paper counts them (13 for BERT-base). Reading the
first ``k`` layers (``BertVisionConfig.layers``) means the states 0..k, so ``k + 1`` vectors per example, and the
deployed model is the teacher's embeddings and its first ``k`` transformer layers (the layers above ``k``, the pooler
and the classifier are dropped) plus the head: ``k`` is a size knob that trades accuracy for size and latency.

Heads (``vocab.BERTVISION_HEADS``) over the ``(k + 1, H)`` pooled states of one example, each standardized first
with the training set's per-(layer, feature) mean and standard deviation (buffers stored with the head, ``2 (k+1) H``
values; without it a head cannot use early layers, whose ``[CLS]`` state varies by ~1e-3 between examples):

* ``adapter`` (the paper's AdapterPooler): one linear map ``H -> a`` shared by every layer, GELU, dropout, the
  ``(k + 1) * a`` values flattened, then a linear classifier. Trainable: ``H*a + a + (k+1)*a*C + C``.
* ``concat`` (the paper's BertConcat): a learned weighted sum of the layers (softmax over ``k + 1`` weights),
  dropout, then a linear classifier. Trainable: ``(k+1) + H*C + C``.

The adapter width defaults to 128: the paper's pooling maps each layer's ``H``-dim state to as many values as the
input has tokens (386 for SQuAD), which on BERT-base is where its ~0.3-0.4M trainable parameters come from; 128 is
this project's default input length, so the head stays near the paper's ratio (BERT-base: 0.1M, MiniLM-384: 50k) and
is still tiny next to even one transformer layer.

Hidden states are computed once per (teacher, texts, max_length, pooling) and stored by :class:`HiddenStateCache` as
float16 ``(N, L + 1, H)`` arrays centered on a float32 offset (all layers, so every ``k`` slices the same file); the
head then trains on them without any transformer forward. The result is saved as a deployable model (truncated
backbone + ``head.safetensors``, or one int8 state dict) and evaluated end to end, so the recorded score is the
saved model's.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from featherweight_core.atomic import atomic_dir
from featherweight_core.data.taskdata import TaskData
from featherweight_core.students.measure import saved_model_sizes, split_metrics, task_metric_names
from featherweight_core.teacher import teacher_compression as tc
from featherweight_core.teacher.bertvision_config import (
    AGREEMENT_WARN,
    METHOD,
    SUBSET_SEED,
    BertVisionConfig,
    BertVisionError,
)
from featherweight_core.teacher.bertvision_model import (
    BertVisionClassifier,
    build_head,
    load_bertvision_model,
    truncated_backbone,
)
from featherweight_core.teacher.bertvision_states import HiddenStateCache, teacher_layer_count, teacher_max_length
from featherweight_core.teacher.config import METRICS_FILE, TeacherError
from featherweight_core.teacher.devices import resolve_device
from featherweight_core.teacher.finetune import check_model_output_dir
from featherweight_core.teacher.loading import load_tokenizer, resolve_model_source
from featherweight_core.teacher.softtargets import teacher_fingerprint

# ---------------------------------------------------------------------------------------------------------------
# training


def _metrics(task, logits_by_split: dict[str, np.ndarray], labels_by_split: dict[str, np.ndarray]) -> dict:
    names = task_metric_names(task)
    per = {
        s: split_metrics(lg.argmax(-1), labels_by_split[s], names, task.num_labels) for s, lg in logits_by_split.items()
    }
    out = {m: float(np.mean([v[m] for v in per.values()])) for m in names}
    if len(per) > 1:
        out.update({f"{m}_{s}": v[m] for s, v in per.items() for m in names})
    out["score"] = out[task.metric]
    return out


@torch.no_grad()
def _head_logits(head: nn.Module, feats: torch.Tensor, device: torch.device, batch: int = 1024) -> np.ndarray:
    head.eval()
    return np.concatenate(
        [head(feats[i : i + batch].to(device).float()).float().cpu().numpy() for i in range(0, len(feats), batch)]
    )


def _train_rows(n: int, cfg: BertVisionConfig) -> np.ndarray:
    if cfg.max_train_examples is None or cfg.max_train_examples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n, cfg.max_train_examples, replace=False))


def teacher_summary(teacher_dir: str | Path) -> dict[str, Any]:
    """``{"dir", "fingerprint", "score", "params", "disk_bytes", "gzip_bytes", "layers"}`` of a fine-tuned teacher
    (sizes of its weight file, measured as students are)."""
    from transformers import AutoConfig

    d = Path(teacher_dir)
    score = None
    if (d / METRICS_FILE).is_file():
        try:
            m = json.loads((d / METRICS_FILE).read_text())
            score = m.get("score", m.get("accuracy")) if isinstance(m, dict) else None
        except ValueError:
            score = None
    config = AutoConfig.from_pretrained(str(d), local_files_only=True)
    sizes = saved_model_sizes(d)
    return {
        "dir": str(d),
        "fingerprint": teacher_fingerprint(d),
        "score": score,
        "params": sizes["params"],
        "disk_bytes": sizes["disk_bytes"],
        "gzip_bytes": sizes["gzip_bytes"],
        "layers": teacher_layer_count(config),
    }


def _check_teacher(teacher_dir: Path, task) -> Any:
    """The teacher's config, after checking it is a model directory whose labels fit the task."""
    from transformers import AutoConfig

    if not teacher_dir.exists():
        raise TeacherError(f"{teacher_dir}: teacher directory not found")
    resolve_model_source(teacher_dir)  # a model directory (config.json, readable weight files)
    teacher_fingerprint(teacher_dir)
    try:
        config = AutoConfig.from_pretrained(str(teacher_dir), local_files_only=True)
    except (OSError, ValueError) as e:
        raise TeacherError(f"{teacher_dir}: cannot read config.json ({type(e).__name__})") from None
    if int(getattr(config, "num_labels", 0)) != task.num_labels:
        raise TeacherError(
            f"{teacher_dir}: the teacher predicts {config.num_labels} labels but task {task.name!r}"
            f" has {task.num_labels}; pass a teacher fine-tuned on this task"
        )
    return config


def train_bertvision(
    teacher_dir: str | Path,
    task_data: TaskData,
    output_dir: str | Path,
    cfg: BertVisionConfig | None = None,
    cache_dir: str | Path | HiddenStateCache | None = None,
    progress: bool = False,
    log=None,
    overwrite: bool = False,
    time_teacher: bool = True,
):
    """Train a BERT-Vision head on ``teacher_dir``'s hidden states and save the deployable model to ``output_dir``.

    Hidden states come from a :class:`HiddenStateCache` (``cache_dir``: its root, or a cache object; None: nothing
    kept on disk); the head trains on them (cross-entropy on the labels, AdamW), the epoch with the best dev score
    is kept; the model (backbone cut to ``k`` layers + head, or its int8 form) is saved atomically and evaluated end
    to end on dev (and test, when it has labels), and its CPU latency is timed interleaved with the teacher's
    (``time_teacher``; False leaves ``teacher["latency_ms"]`` None and saves loading the teacher once more). Returns
    a :class:`featherweight_core.teacher.teacher_compression.CompressedTeacherResult`.
    """
    from safetensors.torch import save_file

    cfg = cfg or BertVisionConfig()
    start = time.perf_counter()
    teacher_dir = Path(teacher_dir)
    output_dir = Path(output_dir)
    task = task_data.task
    check_model_output_dir(output_dir, overwrite)
    tconfig = _check_teacher(teacher_dir, task)
    total_layers = teacher_layer_count(tconfig)
    k = cfg.layers if cfg.layers is not None else total_layers
    if k > total_layers:
        raise BertVisionError(
            f"layers {k}: the teacher {teacher_dir} has {total_layers} layers; expected 1..{total_layers}"
        )
    if len(task_data.train) == 0:
        raise BertVisionError(f"task {task.name!r}: the train split is empty")
    eval_splits = [s for s in task.eval_splits if s in task_data.splits and len(task_data.splits[s])]
    if not eval_splits:
        raise BertVisionError(f"task {task.name!r}: no dev split among {list(task.eval_splits)} to evaluate on")
    max_length = cfg.max_length or teacher_max_length(teacher_dir)
    device = resolve_device(cfg.device)
    if isinstance(cache_dir, HiddenStateCache):
        cache = cache_dir
    else:
        cache = HiddenStateCache(cache_dir, device=cfg.device, progress=progress)

    # 1. hidden states (all layers, from the cache), sliced to the first k layers
    train = task_data.train
    rows = _train_rows(len(train), cfg)
    runs = cache.model_runs
    feats: dict[str, torch.Tensor] = {}
    labels: dict[str, np.ndarray] = {}
    for split, idx in [("train", rows), *[(s, None) for s in eval_splits]]:
        sp = task_data.splits[split]
        keys = list(sp.keys) if idx is None else [sp.keys[i] for i in idx]
        texts = list(sp.texts) if idx is None else [sp.texts[i] for i in idx]
        states = cache.get_or_compute(
            teacher_dir, f"{task.name}-{split}", keys, texts, max_length, cfg.pooling, int8=cfg.quantize
        )
        feats[split] = torch.from_numpy(states.layers(k))
        labels[split] = sp.labels if idx is None else sp.labels[idx]
    computed = cache.model_runs - runs
    if log:
        how = f"computed for {computed} split(s)" if computed else "served from the cache"
        print(
            f"hidden states: {len(rows):,} train rows x {k + 1} layers x {feats['train'].shape[-1]} ({how})",
            file=log,
            flush=True,
        )

    # 2. the head, trained on the cached states
    hidden = int(feats["train"].shape[-1])
    torch.manual_seed(cfg.seed)
    head = build_head(cfg.head, k + 1, hidden, task.num_labels, cfg.adapter_size, cfg.dropout)
    head.set_feature_stats(feats["train"].mean(0), feats["train"].std(0, unbiased=False))
    head.to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    y_train = torch.from_numpy(np.asarray(labels["train"], dtype=np.int64))
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best_state, best_score, best_epoch = None, -math.inf, 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        head.train()
        perm = torch.randperm(len(y_train), generator=gen)
        running = 0.0
        for i in range(0, len(perm), cfg.batch_size):
            b = perm[i : i + cfg.batch_size]
            x = feats["train"][b].to(device)
            loss = F.cross_entropy(head(x), y_train[b].to(device))
            if not torch.isfinite(loss):
                raise BertVisionError(f"non-finite loss in epoch {epoch} (lr {cfg.lr} too high?)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item() * len(b)
        dev = _metrics(
            task, {s: _head_logits(head, feats[s], device) for s in eval_splits}, {s: labels[s] for s in eval_splits}
        )
        history.append(
            {"epoch": epoch, "train_loss": running / len(y_train), **dev, "seconds": round(time.perf_counter() - t0, 3)}
        )
        if dev["score"] > best_score:
            best_score, best_epoch = dev["score"], epoch
            best_state = copy.deepcopy(head.state_dict())
        if log:
            print(
                f"epoch {epoch}/{cfg.epochs}  loss {running / len(y_train):.4f}  dev {dev['score']:.4f}",
                file=log,
                flush=True,
            )
    assert best_state is not None
    head.load_state_dict(best_state)
    head.to("cpu").eval()
    cache_logits = {s: _head_logits(head, feats[s], torch.device("cpu")) for s in eval_splits}

    # 3. the deployable model, saved atomically, then measured and evaluated as saved
    backbone = truncated_backbone(teacher_dir, k)
    model = BertVisionClassifier(backbone, head, cfg.pooling).eval()
    tokenizer = load_tokenizer(str(teacher_dir), True)
    teacher = teacher_summary(teacher_dir)
    meta = {
        "method": METHOD,
        "settings": cfg.to_dict(),
        "task": task.to_dict(),
        "labels": list(task.label_names),
        "layers": k,
        "teacher_layers": total_layers,
        "max_length": max_length,
        "quantized": cfg.quantize,
        "head": {
            "kind": cfg.head,
            "depth": k + 1,
            "hidden": hidden,
            "num_labels": task.num_labels,
            "adapter_size": cfg.adapter_size,
            "pooling": cfg.pooling,
            "params": sum(p.numel() for p in head.parameters()),
        },
        "teacher": teacher,
        "best_epoch": best_epoch,
    }

    # int8: activations are quantized per batch, so evaluate one example at a time, as latency is measured and the
    # quantized head's training states were computed
    eval_batch = 1 if cfg.quantize else 64
    with atomic_dir(output_dir) as tmp:  # measured and evaluated as saved, before it appears under output_dir
        tokenizer.save_pretrained(tmp)
        if cfg.quantize:
            tc.save_int8(tc.quantize_int8(model), tmp, meta)
        else:
            backbone.save_pretrained(tmp)
            save_file({n: t.contiguous() for n, t in head.state_dict().items()}, str(tmp / tc.HEAD_WEIGHTS))
            tc.write_meta(tmp, meta)
        saved, tokenizer, _ = load_bertvision_model(tmp, cfg.quantize)
        ev = tc.evaluate(saved, tokenizer, task_data, max_length, batch_size=eval_batch)
        dev_metrics, test_metrics, classes = ev.metrics, ev.test_metrics, ev.class_metrics
        # the saved model must predict what the head predicted on the cached states (float16 rounding aside)
        agreement = float(np.mean([(ev.predictions[s] == cache_logits[s].argmax(-1)).mean() for s in eval_splits]))
        cache_score = _metrics(task, cache_logits, {s: labels[s] for s in eval_splits})["score"]
        sizes = tc.measure_saved(tmp)
        latency, teacher["latency_ms"] = tc.latency_with_teacher(
            saved, tokenizer, task_data.splits[eval_splits[0]].texts, max_length, teacher_dir if time_teacher else None
        )
        meta["metrics"] = {**dev_metrics, "cache_score": cache_score, "cache_agreement": agreement}
        meta["test_metrics"] = test_metrics
        tc.write_meta(tmp, {**meta, "quantized": cfg.quantize})
    if log and agreement < AGREEMENT_WARN:
        print(
            f"warning: the saved model agrees with the head on cached states on only {agreement:.3f} of dev", file=log
        )
    return tc.CompressedTeacherResult(
        method=METHOD,
        output_dir=str(output_dir),
        metrics=meta["metrics"],
        test_metrics=test_metrics,
        class_metrics=classes,
        params=int(sizes["params"]),
        trainable_params=int(sum(p.numel() for p in head.parameters())),
        disk_bytes=int(sizes["disk_bytes"]),
        gzip_bytes=int(sizes["gzip_bytes"]),
        latency_ms=float(latency),
        layers=k,
        quantized=cfg.quantize,
        seconds=round(time.perf_counter() - start, 2),
        history=history,
        settings={**cfg.to_dict(), "layers": k, "max_length": max_length},
        teacher=teacher,
    )
