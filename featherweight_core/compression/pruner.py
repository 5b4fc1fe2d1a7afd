"""The mechanics of pruning a student: which tensors of which module groups can be pruned, masks (top-v per
row, global magnitude thresholds), the forward hook that applies a mask while the weights train, the
:class:`Pruner` that raises the sparsity step by step on its schedule, and making the masks permanent."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from featherweight_core import vocab
from featherweight_core.compression.prune_config import PruneConfig, PruningError
from featherweight_core.students.models import HashEmbedding

# ----------------------------------------------------------------------------------------------------------------
# Which tensors belong to which group


@dataclass
class Slot:
    """One pruned tensor: ``module.<name>`` in module group ``group``; ``path`` is its state_dict name."""

    module: nn.Module
    name: str
    group: str
    path: str

    @property
    def orig(self) -> torch.Tensor:
        return getattr(self.module, self.name + "_orig")

    @property
    def mask(self) -> torch.Tensor:
        return getattr(self.module, self.name + "_mask")

    @property
    def scores(self) -> torch.Tensor | None:
        return getattr(self.module, self.name + "_scores", None)

    def weight(self) -> torch.Tensor:
        """The effective (masked) weight, whether or not pruning hooks are installed."""
        if hasattr(self.module, self.name + "_orig"):
            return (self.orig * self.mask).detach()
        return getattr(self.module, self.name).detach()


def prunable_tensors(model: nn.Module, arch: str, embedding: str) -> list[tuple[nn.Module, str, str, str]]:
    """``(module, param_name, group, state_dict_path)`` for every weight pruning may touch, in a fixed order."""
    out = []
    emb_group = f"{embedding}_emb"
    emb = model.embedding
    if isinstance(emb, HashEmbedding):
        out += [
            (emb.importance, "weight", emb_group, "embedding.importance.weight"),
            (emb.buckets, "weight", emb_group, "embedding.buckets.weight"),
        ]
    elif isinstance(emb, nn.Embedding):
        out.append((emb, "weight", emb_group, "embedding.weight"))
    else:
        raise PruningError(f"cannot prune embedding {type(emb).__name__} (quantized models cannot be pruned)")
    rnn = getattr(model.encoder, "rnn", None)
    if arch in vocab.RECURRENT_ARCHS:
        if not isinstance(rnn, nn.LSTM | nn.RNN):
            raise PruningError(f"cannot prune encoder {type(rnn).__name__} (quantized models cannot be pruned)")
        group = "lstm" if arch == "bilstm" else "rnn"
        for name in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse"):
            out.append((rnn, name, group, f"encoder.rnn.{name}"))
    for i, m in enumerate(model.classifier):
        if isinstance(m, nn.Linear):
            out.append((m, "weight", "linear", f"classifier.{i}.weight"))
        elif not isinstance(m, nn.Dropout | nn.ReLU):
            raise PruningError(f"cannot prune classifier layer {type(m).__name__} (quantized models cannot be pruned)")
    return out


# ----------------------------------------------------------------------------------------------------------------
# Masks


def topv_mask(importance: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep all but the ``round(sparsity * n)`` least important entries; ties: earlier entries are pruned first.

    >>> topv_mask(torch.tensor([0.3, -0.1, 0.2, 0.1]).abs(), 0.5).tolist()
    [1.0, 0.0, 1.0, 0.0]
    """
    n = importance.numel()
    k = int(round(sparsity * n))
    mask = torch.ones(n, dtype=torch.float32, device=importance.device)
    if k > 0:
        order = torch.argsort(importance.detach().flatten(), stable=True)
        mask[order[:k]] = 0.0
    return mask.view_as(importance)


def magnitude_threshold(magnitudes: torch.Tensor, sparsity: float) -> float:
    """The threshold ``t`` magnitude pruning uses for a sparsity target: the smallest ``|w|`` top-v would keep.

    >>> magnitude_threshold(torch.tensor([0.1, 0.2, 0.3, 0.4]), 0.5)
    0.30000001192092896
    """
    n = magnitudes.numel()
    k = int(round(sparsity * n))
    if k <= 0 or n == 0:
        return 0.0
    if k >= n:
        return math.inf
    return float(torch.sort(magnitudes.detach().flatten()).values[k])


def magnitude_mask(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """1 where ``|w| >= threshold`` (kept), 0 where ``|w| < threshold`` (pruned).

    >>> magnitude_mask(torch.tensor([0.05, -0.2, 0.1]), 0.1).tolist()
    [0.0, 1.0, 1.0]
    """
    return (weight.detach().abs() >= threshold).to(torch.float32)


class _PruneHook:
    """Forward pre-hook: ``module.<name> = <name>_orig * <name>_mask`` (+ the straight-through score term)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def __call__(self, module: nn.Module, inputs) -> None:
        for name in self.names:
            setattr(module, name, compute_weight(module, name))


def compute_weight(module: nn.Module, name: str) -> torch.Tensor:
    orig = getattr(module, name + "_orig")
    mask = getattr(module, name + "_mask")
    scores = getattr(module, name + "_scores", None)
    if scores is not None and module.training and torch.is_grad_enabled():
        # Straight-through top-v: forward uses the hard mask, backward sends dL/dW' * W to the scores.
        mask = mask + (scores - scores.detach())
    return orig * mask


def _install(module: nn.Module, name: str, with_scores: bool) -> None:
    param = getattr(module, name)
    if hasattr(module, name + "_orig"):
        raise PruningError(f"{type(module).__name__}.{name} is already being pruned")
    del module._parameters[name]
    module.register_parameter(name + "_orig", param)
    module.register_buffer(name + "_mask", torch.ones_like(param, dtype=param.dtype).detach())
    if with_scores:
        module.register_parameter(name + "_scores", nn.Parameter(torch.zeros_like(param).detach()))
    state = module.__dict__.setdefault("_featherweight_pruned", {})
    hook_names = state.setdefault("names", [])
    hook_names.append(name)
    if "handle" not in state:
        state["handle"] = module.register_forward_pre_hook(_PruneHook(hook_names))
    with torch.no_grad():  # a leaf, so the model can still be deep-copied
        setattr(module, name, compute_weight(module, name))


def has_pruning(model: nn.Module) -> bool:
    """True while any module still carries pruning masks (i.e. before :func:`make_permanent`)."""
    return any("_featherweight_pruned" in m.__dict__ for m in model.modules())


def make_permanent(model: nn.Module) -> nn.Module:
    """Bake masks into plain Parameters (zeros stay zeros) and remove hooks, masks and scores. In place."""
    for module in model.modules():
        state = module.__dict__.pop("_featherweight_pruned", None)
        if state is None:
            continue
        state["handle"].remove()
        for name in state["names"]:
            with torch.no_grad():
                w = (getattr(module, name + "_orig") * getattr(module, name + "_mask")).detach().clone()
            if name in module.__dict__:
                del module.__dict__[name]
            del module._parameters[name + "_orig"]
            del module._buffers[name + "_mask"]
            module._parameters.pop(name + "_scores", None)
            setattr(module, name, nn.Parameter(w))
        if isinstance(module, nn.RNNBase):
            module._init_flat_weights()
    return model


# ----------------------------------------------------------------------------------------------------------------
# The pruner


class Pruner:
    """Installs masks on a student per a :class:`PruneConfig` and updates them (one-shot or on a schedule).

    ``update(fraction)`` sets every target to ``fraction`` of its final value and recomputes the masks.
    """

    def __init__(self, model: nn.Module, cfg: PruneConfig, arch: str, embedding: str) -> None:
        if has_pruning(model):
            raise PruningError("model already carries pruning masks; call make_permanent first")
        self.model, self.cfg, self.arch, self.embedding = model, cfg, arch, embedding
        self.targets = cfg.group_targets(arch, embedding)
        self.thresholds = cfg.group_thresholds(arch, embedding)
        tensors = prunable_tensors(model, arch, embedding)
        if cfg.scope == "global":
            # Groups with a zero target stay out of the single ranking (table 6.3 never prunes hash embeddings).
            tensors = [t for t in tensors if self.targets[t[2]] > 0]
        else:
            tensors = [t for t in tensors if self.targets[t[2]] > 0 or t[2] in self.thresholds]
        self.slots = [Slot(m, n, g, p) for m, n, g, p in tensors]
        total = sum(s_.module._parameters[s_.name].numel() for s_ in self.slots)
        if cfg.scope == "global":
            if cfg.sparsity is not None:
                self.global_target = cfg.sparsity
            elif total:
                self.global_target = (
                    sum(self.targets[s_.group] * s_.module._parameters[s_.name].numel() for s_ in self.slots) / total
                )
            else:
                self.global_target = 0.0
        for s_ in self.slots:
            _install(s_.module, s_.name, with_scores=cfg.method == "movement")
        self.fraction = 0.0

    def score_parameters(self) -> list[nn.Parameter]:
        return [s_.scores for s_ in self.slots if s_.scores is not None]

    def weight_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.score_parameters()}
        return [p for p in self.model.parameters() if id(p) not in ids]

    def _importance(self, s_: Slot) -> torch.Tensor:
        return s_.scores.detach() if self.cfg.method == "movement" else s_.orig.detach().abs()

    @torch.no_grad()
    def update(self, fraction: float = 1.0) -> None:
        """Recompute all masks at ``fraction`` (in [0, 1]) of the final targets."""
        self.fraction = fraction
        if not self.slots:
            return
        if self.cfg.scope == "global":
            imp = [self._importance(s_) for s_ in self.slots]
            flat = torch.cat([i.flatten() for i in imp])
            if self.cfg.method == "magnitude":
                t = (
                    self.cfg.threshold * fraction
                    if self.cfg.threshold is not None
                    else magnitude_threshold(flat, self.global_target * fraction)
                )
                masks = [(i >= t).float() for i in imp]
            else:
                m = topv_mask(flat, self.global_target * fraction)
                masks, start = [], 0
                for i in imp:
                    masks.append(m[start : start + i.numel()].view_as(i))
                    start += i.numel()
        else:
            masks = []
            for s_ in self.slots:
                imp = self._importance(s_)
                if self.cfg.method == "magnitude":
                    t = (
                        self.thresholds[s_.group] * fraction
                        if s_.group in self.thresholds
                        else magnitude_threshold(imp, self.targets[s_.group] * fraction)
                    )
                    masks.append((imp >= t).float())
                else:
                    masks.append(topv_mask(imp, self.targets[s_.group] * fraction))
        for s_, m in zip(self.slots, masks, strict=True):
            s_.mask.copy_(m.to(s_.mask.dtype))
            setattr(s_.module, s_.name, compute_weight(s_.module, s_.name))

    def finish(self) -> nn.Module:
        """Final masks at the full targets, then :func:`make_permanent`."""
        self.update(1.0)
        return make_permanent(self.model)


def cubic_fraction(step: int, total: int, ramp: float) -> float:
    """Fraction of the final sparsity after ``step`` of ``total`` steps (Zhu & Gupta 2017 cubic schedule).

    >>> [round(cubic_fraction(s, 10, 0.5), 3) for s in (0, 1, 5, 9)]
    [0.0, 0.488, 1.0, 1.0]
    """
    ramp_steps = max(1, int(round(ramp * total)))
    p = min(1.0, step / ramp_steps)
    return 1.0 - (1.0 - p) ** 3
