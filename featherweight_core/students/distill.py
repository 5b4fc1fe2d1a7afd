"""Distillation loss and the training loop (thesis 4.1.2, 6.1.3).

Loss: ``alpha * CE(student_logits, labels) + (1 - alpha) * MSE(s, t)`` where ``s, t`` are the raw student and
teacher logits, or their temperature softmaxes when ``temperature`` is set (the thesis used T=3 for the FFN).
Training stops early when the dev score has not improved for ``patience`` epochs; the best epoch's weights are
loaded back into the model.

One loop for every device. On CPU it is the plain loop (numpy batches, the loss read every step). On an
accelerator the splits are moved to the device once per call of :func:`train` (:class:`batching.DeviceSplit`), batches
are built there by index, and the loop never waits for the device inside an epoch: the loss is summed on the
device and read, with the non-finite check, once at the end of the epoch; evaluation gathers all logits on the
device and copies them back once per split. Adam/AdamW use their fused CUDA kernels there.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from featherweight_core import vocab
from featherweight_core.data.batching import DeviceSplit, EncodedSplit, iter_batches, to_device
from featherweight_core.data.tasks import TaskSpec
from featherweight_core.errors import ConfigError, UserError
from featherweight_core.students.distill_config import DistillConfig
from featherweight_core.students.measure import per_class_metrics, split_metrics, task_metric_names
from featherweight_core.students.models import ARCH_DEFAULTS

OPTIMIZERS = vocab.OPTIMIZERS  # alias of the one vocabulary


class TrainingError(UserError, RuntimeError):
    """Training diverged (non-finite loss: lower the learning rate) or cannot start with what the user gave (alpha
    < 1 without teacher logits, an empty training split)."""


def default_temperature(arch: str) -> float | None:
    """Thesis 6.1.3: temperature softmax (T=3) for the FFN student, raw logits for the others."""
    return ARCH_DEFAULTS[arch]["temperature"]


def resolve_temperature(value: float | str | None, arch: str) -> float | None:
    """A user's temperature setting as ``DistillConfig`` takes it: ``"auto"`` is the arch's thesis default,
    ``"none"``/``None`` means raw logits, a number is used as given.

    >>> resolve_temperature("auto", "ffn"), resolve_temperature("none", "ffn"), resolve_temperature(2, "bilstm")
    (3.0, None, 2.0)
    """
    if value == "auto":
        return default_temperature(arch)
    if value is None or value == "none":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"temperature must be a number, 'auto' or 'none', got {value!r}") from None


def distill_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    alpha: float,
    temperature: float | None = None,
) -> torch.Tensor:
    """alpha * CE + (1 - alpha) * MSE. student/teacher logits: (B, C); labels: (B,). Returns a scalar.

    >>> s = torch.tensor([[2.0, 0.0]]); t = torch.tensor([[1.0, 1.0]]); y = torch.tensor([0])
    >>> round(distill_loss(s, y, t, alpha=0.0).item(), 4)  # ((2-1)^2 + (0-1)^2) / 2
    1.0
    """
    ce = F.cross_entropy(student_logits, labels) if alpha > 0 else student_logits.new_zeros(())
    if alpha >= 1.0:
        return ce
    if teacher_logits is None:
        raise TrainingError(f"alpha={alpha} < 1 needs teacher logits")
    s, t = student_logits, teacher_logits.to(student_logits.dtype)
    if temperature is not None:
        s, t = F.softmax(s / temperature, dim=-1), F.softmax(t / temperature, dim=-1)
    return alpha * ce + (1.0 - alpha) * F.mse_loss(s, t)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(model: nn.Module, cfg: DistillConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # on CUDA, Adam/AdamW update every parameter in one fused kernel instead of a few per tensor
    fused = {"fused": True} if params and all(p.device.type == "cuda" for p in params) else {}
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def predict_logits(
    model: nn.Module, split: EncodedSplit | DeviceSplit, batch_size: int = 512, device: str = "cpu"
) -> np.ndarray:
    """(N, C) float32 logits in the split's row order. A :class:`DeviceSplit` (or a ``device`` other than the CPU)
    keeps the logits on the device and copies them back once."""
    was_training = model.training
    model.eval()
    dev = torch.device(device) if not isinstance(split, DeviceSplit) else split.device
    if dev.type == "cpu":
        out: np.ndarray | None = None
        for batch in iter_batches(split, batch_size):
            logits = model(*batch.inputs).float().cpu().numpy()
            if out is None:
                out = np.empty((len(split), logits.shape[1]), dtype=np.float32)
            out[batch.index] = logits
    else:
        dev_out: torch.Tensor | None = None
        for batch in iter_batches(to_device(split, dev), batch_size):
            logits = model(*batch.inputs).float()
            if dev_out is None:
                dev_out = logits.new_empty((len(split), logits.shape[1]))
            dev_out[batch.rows] = logits
        out = None if dev_out is None else dev_out.cpu().numpy()
    model.train(was_training)
    return out if out is not None else np.zeros((0, 0), np.float32)


def _device_resident(device: torch.device) -> bool:
    """Whether :func:`train` keeps its data on ``device`` and waits for it once per epoch: every device but the
    CPU (a test may switch it on for the CPU to run the accelerator path there)."""
    return device.type != "cpu"


def _split_suffix(name: str) -> str:
    return name.removeprefix("validation_")


def evaluate(
    model: nn.Module,
    evals: dict[str, EncodedSplit | DeviceSplit],
    task: TaskSpec,
    batch_size: int = 512,
    device: str = "cpu",
) -> dict[str, float]:
    """Flat metrics: ``score`` (mean of the task's primary metric over its eval splits), ``accuracy``,
    ``macro_f1`` and, for binary tasks, ``f1`` (means over splits), and per split ``accuracy_<split>`` etc. when
    there are several (MNLI: matched, mismatched). ``{}`` when ``evals`` is empty."""
    return evaluate_detailed(model, evals, task, batch_size, device)[0]


def evaluate_detailed(
    model: nn.Module,
    evals: dict[str, EncodedSplit | DeviceSplit],
    task: TaskSpec,
    batch_size: int = 512,
    device: str = "cpu",
) -> tuple[dict[str, float], dict[str, dict]]:
    """:func:`evaluate`'s flat metrics plus ``{split: measure.per_class_metrics(...)}`` for every split. When every
    eval split carries the teacher's outputs (``teacher_logits``: a file teacher that covers dev), also ``fidelity``:
    the fraction of eval examples whose predicted label is the teacher's (mean over splits)."""
    names = task_metric_names(task)
    per_split, classes, agree = {}, {}, []
    for split_name, split in evals.items():
        pred = predict_logits(model, split, batch_size, device).argmax(-1) if len(split) else np.zeros(0, np.int64)
        per_split[split_name] = split_metrics(pred, split.labels, names, task.num_labels)
        classes[split_name] = per_class_metrics(pred, split.labels, task.label_names)
        if split.teacher_logits is not None and len(split):
            agree.append(float((pred == np.asarray(split.teacher_logits).argmax(-1)).mean()))
    out: dict[str, float] = {}
    if not per_split:
        return out, classes
    if len(agree) == len(per_split):
        out["fidelity"] = float(np.mean(agree))
    for m in names:
        out[m] = float(np.mean([v[m] for v in per_split.values()]))
        if len(per_split) > 1:
            for split_name, v in per_split.items():
                out[f"{m}_{_split_suffix(split_name)}"] = v[m]
    out["score"] = out[task.metric]
    return out, classes


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    score: float
    metrics: dict[str, float]
    seconds: float
    samples_per_second: float


@dataclass
class TrainResult:
    best_epoch: int
    metrics: dict[str, float]  # dev metrics of the best epoch
    history: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False
    test_metrics: dict[str, float] = field(default_factory=dict)  # the best epoch on the test splits; {} if none
    class_metrics: dict[str, dict] = field(default_factory=dict)  # split -> measure.per_class_metrics (dev + test)


def train(
    model: nn.Module,
    train_split: EncodedSplit,
    evals: dict[str, EncodedSplit],
    task: TaskSpec,
    cfg: DistillConfig,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    tests: dict[str, EncodedSplit] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``train_split``, early-stopping on the dev score; loads the best epoch's weights.

    The best epoch's model (chosen on ``evals``) is then scored on ``tests`` (``TrainResult.test_metrics``) and
    per class on every dev and test split (``TrainResult.class_metrics``).

    ``cfg`` must be resolved (see :meth:`DistillConfig.resolved`). Deterministic on CPU for a given ``cfg.seed``.
    """
    if cfg.batch_size is None or cfg.optimizer is None:
        raise ValueError("train() needs a resolved DistillConfig (call cfg.resolved(arch, pair))")
    if cfg.alpha < 1.0 and train_split.teacher_logits is None:
        raise TrainingError(f"alpha={cfg.alpha} < 1 needs teacher logits for the training split; none were given")
    if len(train_split) == 0:
        raise TrainingError("the training split is empty")
    device = torch.device(cfg.device)
    resident = _device_resident(device)
    on_host = not resident  # read the loss every step; on an accelerator once per epoch (no sync per step)
    model.to(device)

    def place(split: EncodedSplit) -> EncodedSplit | DeviceSplit:
        # once per call: on an accelerator the splits move to the device; on CPU they are used as they are
        return DeviceSplit(split, device) if resident else split

    data = place(train_split)
    evals = {name: place(split) for name, split in evals.items()}
    tests = {name: place(split) for name, split in (tests or {}).items()}
    # float64 sums reproduce the host's Python-float arithmetic exactly; MPS has no float64
    acc_dtype = torch.float32 if device.type == "mps" else torch.float64
    optimizer = make_optimizer(model, cfg)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)  # dropout masks
    best_score, best_epoch, best_state, best_metrics = -math.inf, 0, None, {}
    history: list[EpochRecord] = []
    start = time.perf_counter()
    stale = 0
    for epoch in range(1, cfg.max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total: float | torch.Tensor = 0.0 if on_host else torch.zeros((), dtype=acc_dtype, device=device)
        seen = 0
        for batch in iter_batches(data, cfg.batch_size, rng):
            batch = batch.to(device)
            logits = model(*batch.inputs)
            loss = distill_loss(logits, batch.labels, batch.teacher_logits, cfg.alpha, cfg.temperature)
            if on_host and not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            if on_host:
                total += loss.item() * len(batch.labels)
            else:
                total.add_(loss.detach(), alpha=len(batch.labels))  # one kernel, computed in acc_dtype
            seen += len(batch.labels)
        if not on_host:
            total = float(total)  # the epoch's one wait for the device
            if not math.isfinite(total):
                raise TrainingError(f"non-finite loss (mean {total / seen}) in epoch {epoch}")
        train_seconds = time.perf_counter() - t0
        metrics = evaluate(model, evals, task, cfg.eval_batch_size, cfg.device)
        record = EpochRecord(
            epoch, total / seen, metrics["score"], metrics, time.perf_counter() - t0, seen / train_seconds
        )
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if metrics["score"] > best_score:
            best_score, best_epoch, best_metrics, stale = metrics["score"], epoch, metrics, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    seconds = time.perf_counter() - start
    _, dev_classes = evaluate_detailed(model, evals, task, cfg.eval_batch_size, cfg.device)
    test_metrics, test_classes = evaluate_detailed(model, tests, task, cfg.eval_batch_size, cfg.device)
    return TrainResult(
        best_epoch,
        best_metrics,
        history,
        seconds,
        stopped_early=len(history) < cfg.max_epochs,
        test_metrics=test_metrics,
        class_metrics={**dev_classes, **test_classes},
    )
