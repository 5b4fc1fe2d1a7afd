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
only :func:`featherweight_core.compressed.load_compressed` reads.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from featherweight_core import vocab
from featherweight_core.teacher import TeacherConfig, TeacherError

DEFAULT_REPLACING_FRACTION = 0.85
DEFAULT_START_RATE = 0.3


class TheseusError(TeacherError):
    """A Theseus compression that cannot run: a bad setting, a layer count the replace rate does not divide, a model
    whose layer list is not found."""


@dataclass(frozen=True)
class TheseusConfig:
    """How a teacher is compressed by module replacement (see the module docstring).

    replace_rate: teacher layers per successor layer (``r``); the teacher's layer count must be divisible by it.
    schedule: ``linear`` (``p = min(k * t + b, 1)``) or ``constant`` (``p``, then 1.0).
    p: the constant schedule's replacement probability.
    b, k: the linear schedule's start rate and slope per optimiser step; ``k`` None: p reaches 1.0 after
        ``replacing_fraction`` of the steps.
    replacing_fraction: share of the steps spent replacing modules before successor-only fine-tuning (constant
        schedule; linear schedule when ``k`` is None).
    train_classifier: also train the classification head (everything outside the embeddings and the layer list,
        e.g. BERT's pooler and classifier); otherwise it stays as the teacher had it, and a step in which every
        block drew its predecessor has nothing to train (counted per epoch as ``steps_without_update``).
    quantize: save the successor int8-quantized (dynamic, every Linear) instead of as float weights.
    """

    replace_rate: int = 2
    schedule: str = "linear"
    p: float = 0.5
    b: float = DEFAULT_START_RATE
    k: float | None = None
    replacing_fraction: float = DEFAULT_REPLACING_FRACTION
    train_classifier: bool = True
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    max_length: int = 128
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0
    seed: int = 0
    max_train_examples: int | None = None
    device: str = "auto"
    precision: str = "auto"
    eval_batch_size: int = 128
    quantize: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.replace_rate, bool) or not isinstance(self.replace_rate, int):
            raise TheseusError(f"replace_rate must be an integer >= 2, got {self.replace_rate!r}")
        checks = [
            (self.replace_rate >= 2, f"replace_rate must be an integer >= 2, got {self.replace_rate}"),
            (
                self.schedule in vocab.THESEUS_SCHEDULES,
                f"schedule must be one of {list(vocab.THESEUS_SCHEDULES)}, got {self.schedule!r}",
            ),
            (0.0 <= self.p <= 1.0, f"p (replacement probability) must be in [0, 1], got {self.p}"),
            (0.0 <= self.b <= 1.0, f"b (start replacement rate) must be in [0, 1], got {self.b}"),
            (self.k is None or self.k > 0, f"k (replacement rate slope per step) must be > 0, got {self.k}"),
            (
                0.0 <= self.replacing_fraction <= 1.0,
                f"replacing_fraction must be in [0, 1], got {self.replacing_fraction}",
            ),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.max_length >= 8, f"max_length must be >= 8, got {self.max_length}"),
            (0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be > 0 or None, got {self.grad_clip}"),
            (
                self.precision in vocab.TEACHER_PRECISIONS,
                f"precision must be one of {list(vocab.TEACHER_PRECISIONS)}, got {self.precision!r}",
            ),
            (self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}"),
            (
                self.max_train_examples is None or self.max_train_examples >= 1,
                f"max_train_examples must be >= 1 or None, got {self.max_train_examples}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise TheseusError(msg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def teacher_config(self) -> TeacherConfig:
        """The training/evaluation settings in the form the teacher helpers take."""
        return TeacherConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            max_length=self.max_length,
            seed=self.seed,
            warmup_ratio=self.warmup_ratio,
            weight_decay=self.weight_decay,
            grad_clip=self.grad_clip,
            precision=self.precision,
            device=self.device,
            eval_batch_size=self.eval_batch_size,
            max_train_examples=self.max_train_examples,
        )

    def replacement_schedule(self, total_steps: int) -> ReplacementSchedule:
        return ReplacementSchedule(self.schedule, total_steps, self.p, self.b, self.k, self.replacing_fraction)


@dataclass(frozen=True)
class ReplacementSchedule:
    """The probability that a block runs its successor at optimiser step ``t`` (0-based) of ``total_steps``."""

    schedule: str
    total_steps: int
    p: float = 0.5
    b: float = DEFAULT_START_RATE
    k: float | None = None
    replacing_fraction: float = DEFAULT_REPLACING_FRACTION

    def __post_init__(self) -> None:
        if self.schedule not in vocab.THESEUS_SCHEDULES:
            raise TheseusError(f"schedule must be one of {list(vocab.THESEUS_SCHEDULES)}, got {self.schedule!r}")
        if self.total_steps < 1:
            raise TheseusError(f"total_steps must be >= 1, got {self.total_steps}")

    @property
    def replacing_steps(self) -> int:
        """Steps before ``p`` is 1.0 (successor-only fine-tuning from then on)."""
        if self.schedule == "linear" and self.k is not None:
            return min(self.total_steps, max(0, math.ceil((1.0 - self.b) / self.k)))
        return min(self.total_steps, round(self.replacing_fraction * self.total_steps))

    @property
    def slope(self) -> float:
        """The linear schedule's ``k`` (the given one, or the one that reaches 1.0 after ``replacing_steps``)."""
        if self.k is not None:
            return self.k
        n = self.replacing_steps
        return (1.0 - self.b) / n if n else math.inf

    def __call__(self, step: int) -> float:
        if step >= self.replacing_steps:
            return 1.0
        if self.schedule == "constant":
            return self.p
        return min(self.slope * step + self.b, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# the replacement modules


class _Coin:
    """The shared replacement probability and the seeded generator every block draws from."""

    def __init__(self, p: float, seed: int) -> None:
        self.p = p
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self) -> bool:
        return bool(torch.rand((), generator=self.generator).item() < self.p)


class TheseusBlock(nn.Module):
    """``r`` predecessor layers and the successor layer that replaces them.

    In training mode each forward draws: the successor with probability ``p``, else the predecessor layers in
    order; in eval mode only the successor runs. ``last_used_successor`` records the last draw. Works with any layer
    whose output is the hidden states or a tuple starting with them (the HF encoder loops of BERT, RoBERTa,
    DistilBERT, ...): the remaining arguments (attention mask, ...) are passed on to every layer unchanged.
    """

    def __init__(self, predecessors: list[nn.Module], successor: nn.Module, coin: _Coin) -> None:
        super().__init__()
        self.predecessors = nn.ModuleList(predecessors)
        self.successor = successor
        self._coin = coin
        self.last_used_successor: bool | None = None

    def forward(self, hidden_states, *args, **kwargs):
        use_successor = not self.training or self._coin.draw()
        self.last_used_successor = use_successor
        if use_successor:
            return self.successor(hidden_states, *args, **kwargs)
        out = None
        for layer in self.predecessors:
            out = layer(hidden_states, *args, **kwargs)
            hidden_states = out[0] if isinstance(out, tuple) else out
        return out


def find_layer_list(model) -> tuple[nn.Module, str]:
    """``(parent module, attribute name)`` of the transformer layer ``ModuleList`` of a HF encoder classifier:
    ``base_model.encoder.layer`` (BERT, RoBERTa, ELECTRA, ...) or ``base_model.transformer.layer`` (DistilBERT)."""
    base = getattr(model, "base_model", model)
    for holder in ("encoder", "transformer"):
        parent = getattr(base, holder, None)
        if parent is not None and isinstance(getattr(parent, "layer", None), nn.ModuleList):
            return parent, "layer"
    kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    raise TheseusError(
        f"model type {kind!r}: no encoder layer list found (expected base_model.encoder.layer or"
        " base_model.transformer.layer, as in BERT, RoBERTa or DistilBERT)"
    )


def check_replace_rate(model, replace_rate: int) -> int:
    """The successor's layer count ``L / r``; a one-line error when ``r`` does not divide the teacher's ``L``."""
    parent, attr = find_layer_list(model)
    n = len(getattr(parent, attr))
    if n < 2:
        raise TheseusError(f"the teacher has {n} layer; module replacement needs at least 2")
    if replace_rate < 2 or n % replace_rate:
        divisors = [d for d in range(2, n + 1) if n % d == 0]
        raise TheseusError(
            f"replace_rate {replace_rate} does not divide the teacher's {n} layers (choose one of {divisors})"
        )
    return n // replace_rate


class TheseusModel:
    """Module replacement set up on a loaded teacher classifier, in place.

    The teacher's layer list is swapped for a list of :class:`TheseusBlock` (so the model's own forward, loss-free
    call ``model(**inputs).logits`` runs the mixed network); :meth:`set_p` sets the replacement probability;
    :meth:`build_successor` returns the compressed classifier (``L / r`` layers, everything else from the teacher).
    Parameters are frozen except the successor layers and, with ``train_classifier``, the head.
    """

    def __init__(self, model, replace_rate: int = 2, train_classifier: bool = True, seed: int = 0) -> None:
        check_replace_rate(model, replace_rate)
        parent, attr = find_layer_list(model)
        layers = list(getattr(parent, attr))
        n = len(layers)
        self.model = model
        self.teacher_layers = n
        self.replace_rate = replace_rate
        self.coin = _Coin(0.0, seed)
        blocks = []
        for i in range(0, n, replace_rate):
            successor = copy.deepcopy(layers[i])
            blocks.append(TheseusBlock(layers[i : i + replace_rate], successor, self.coin))
        self.blocks = nn.ModuleList(blocks)
        setattr(parent, attr, self.blocks)
        base = getattr(model, "base_model", model)
        frozen = {id(p) for p in base.embeddings.parameters()} if hasattr(base, "embeddings") else set()
        frozen |= {id(p) for b in blocks for p in b.predecessors.parameters()}
        successor_ids = {id(p) for b in blocks for p in b.successor.parameters()}
        self.successor_params = [p for b in blocks for p in b.successor.parameters()]
        self.head_params = [p for p in model.parameters() if id(p) not in frozen and id(p) not in successor_ids]
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.successor_params + (self.head_params if train_classifier else []):
            p.requires_grad_(True)
        self.train_classifier = train_classifier

    @property
    def successor_layers(self) -> int:
        return len(self.blocks)

    @property
    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def set_p(self, p: float) -> None:
        self.coin.p = float(p)

    def build_successor(self):
        """A fresh classifier of the teacher's class with ``L / r`` layers: the successor layers, and the teacher's
        embeddings and head (as trained). On the CPU, in eval mode."""
        state = {}
        prefix = _layer_list_prefix(self.model, self.blocks)
        for name, tensor in self.model.state_dict().items():
            if name.startswith(prefix):
                i, rest = name[len(prefix) :].split(".", 1)
                if not rest.startswith("successor."):
                    continue
                name = f"{prefix}{i}.{rest[len('successor.') :]}"
            state[name] = tensor.detach().cpu().clone()
        config = copy.deepcopy(self.model.config)
        config.num_hidden_layers = len(self.blocks)
        successor = type(self.model)(config)
        missing, unexpected = successor.load_state_dict(state, strict=False)
        # position_ids / token_type_ids buffers may be non-persistent in one and not the other; weights must match
        bad = [k for k in (*missing, *unexpected) if not k.endswith(("position_ids", "token_type_ids"))]
        if bad:
            raise RuntimeError(f"successor state dict does not fit the model: {bad[:5]}")
        return successor.eval()


def _layer_list_prefix(model, layer_list: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is layer_list:
            return f"{name}."
    raise RuntimeError("the layer list is not part of the model")


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
    :class:`featherweight_core.teacher_compression.CompressedTeacherResult`."""
    from featherweight_core import teacher_compression as tc
    from featherweight_core.atomic import atomic_dir
    from featherweight_core.data import recorded_source
    from featherweight_core.softtargets import teacher_fingerprint
    from featherweight_core.teacher import (
        _optimizer,
        _save_teacher,
        autocast_dtype,
        check_model_output_dir,
        classifier_step,
        evaluate_teacher,
        length_grouped_batches,
        load_classifier,
        progress_bar,
        read_teacher_meta,
        resolve_device,
        tokenize,
        training_rows,
    )

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
    opt, sched = _optimizer(model, tcfg, total)
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
            _save_teacher(successor, tokenizer, tmp, meta)
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
    from featherweight_core import teacher_compression as tc
    from featherweight_core.atomic import atomic_dir
    from featherweight_core.teacher import check_model_output_dir, load_classifier

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
