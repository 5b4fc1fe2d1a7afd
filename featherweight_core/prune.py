"""Unstructured pruning of students (thesis 4.2, 6.1.6, 6.2.5): magnitude, top-v and movement, local or global,
one-shot after training or gradually while fine-tuning on the distillation loss.

Module groups and their thesis table 6.3 default sparsity targets (only the groups a student has apply):

=============  ========  ===============================================================
group          default   weights pruned (biases never are)
=============  ========  ===============================================================
``lstm``       0.5       the BiLSTM's ``weight_ih_l0``, ``weight_hh_l0`` (and ``_reverse``)
``rnn``        0.1       the Elman RNN's ``weight_ih_l0``, ``weight_hh_l0`` (and ``_reverse``)
``linear``     0.125     both classifier Linear weights
``hash_emb``   0.0       hash embedding importance scalars and bucket table
``char_emb``   0.3       character embedding table
``bpe_emb``    0.4       byte-pair embedding table
=============  ========  ===============================================================

Aliases, spelled as the module groups users name everywhere (:data:`featherweight_core.vocab.MODULE_GROUPS`):
``embedding`` is this student's ``*_emb`` group, ``encoder`` its ``lstm`` / ``rnn`` group, ``classifier`` its
``linear`` group.

Methods (the mask keeps weights with high *importance*: ``|w|`` for magnitude / top-v, learned scores for movement):

- ``topv``: prune exactly ``k = round(target * n)`` weights of lowest ``|w|`` per tensor (local) or across all
  pruned tensors (global). Ties are broken by position: the earlier element is pruned first.
- ``magnitude``: prune every weight with ``|w| < t``; a weight equal to ``t`` is kept. ``t`` is an absolute
  threshold when given (``thresholds`` per group, ``threshold`` for global scope), otherwise the smallest
  ``|w|`` that top-v would keep - so without ties both methods prune the same weights, and with ties at the
  boundary magnitude prunes fewer (achieved sparsity <= target).
- ``movement`` (Sanh et al. 2020, hard movement / straight-through top-v): every pruned tensor gets a score per
  weight (initialised to 0) and the forward pass uses ``W * TopV(S)``; the straight-through estimator passes
  ``dL/dS = dL/dW' * W`` to the scores, which are trained (Adam, ``score_lr``) together with the weights on the
  distillation loss while the sparsity ramps up. Weights that move towards zero lose score and are pruned.

Scope ``local`` applies each group's target to each of its tensors; ``global`` ranks all tensors of the groups
with a non-zero target together and prunes ``sparsity`` of them overall (default: the count-weighted mean of the
per-group targets, i.e. as many weights as local pruning would remove, chosen by one ranking).

Schedules: ``post`` prunes once (then optionally fine-tunes ``epochs`` epochs with masks fixed); ``gradual``
fine-tunes ``epochs`` epochs while the sparsity follows the cubic schedule of Zhu & Gupta (2017)
``s_t = s_final * (1 - (1 - t / (ramp * T))^3)`` and stays at ``s_final`` for the last ``1 - ramp`` of the steps.

Masks are applied by a forward pre-hook (like ``torch.nn.utils.prune``, which also keeps ``nn.LSTM``'s flat
weights in sync): the tensor ``name`` becomes ``name_orig * name_mask``. :func:`make_permanent` bakes the zeros
into a plain Parameter and removes every trace, as needed before saving or quantizing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from featherweight_core import vocab
from featherweight_core.errors import UserError

METHODS = vocab.PRUNE_METHODS  # aliases of the one vocabulary
SCOPES = vocab.PRUNE_SCOPES
SCHEDULES = vocab.PRUNE_SCHEDULES
GROUPS = ("lstm", "rnn", "linear", "hash_emb", "char_emb", "bpe_emb")
ALIASES = vocab.MODULE_GROUPS  # embedding, encoder, classifier
TABLE_6_3: dict[str, float] = {
    "lstm": 0.5,
    "rnn": 0.1,
    "linear": 0.125,
    "hash_emb": 0.0,
    "char_emb": 0.3,
    "bpe_emb": 0.4,
}
# how describe() labels a group: the embedding kind is in the trial's own columns, so *_emb is just "embedding"
_SHORT = {
    "lstm": "lstm",
    "rnn": "rnn",
    "linear": "linear",
    "hash_emb": "embedding",
    "char_emb": "embedding",
    "bpe_emb": "embedding",
}


class PruningError(UserError, ValueError):
    """Bad pruning arguments or a model that cannot be pruned as asked."""


def _check_fraction(what: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0.0 <= v < 1.0:
        raise PruningError(f"{what} must be a sparsity in [0, 1), got {v!r}")
    return float(v)


def _check_groups(what: str, d: Mapping[str, Any]) -> None:
    unknown = [k for k in d if k not in GROUPS and k not in ALIASES]
    if unknown:
        raise PruningError(f"unknown module group {unknown[0]!r} in {what}; expected one of {list(ALIASES + GROUPS)}")
    if "embedding" in d and any(k.endswith("_emb") for k in d):
        raise PruningError(f"{what}: give either 'embedding' or a specific '*_emb' group, not both")
    if "encoder" in d and ("lstm" in d or "rnn" in d):
        raise PruningError(f"{what}: give either 'encoder' or 'lstm'/'rnn', not both")
    if "classifier" in d and "linear" in d:
        raise PruningError(f"{what}: give either 'classifier' or 'linear', not both")


@dataclass(frozen=True)
class PruneConfig:
    """How to prune (see the module docstring). Validated at construction; ``None`` fields resolve to:
    ``schedule`` -> ``gradual`` for movement, ``post`` otherwise; ``epochs`` -> 2 for gradual, 0 for post.

    ``targets`` override table 6.3 per group (keys in GROUPS or the aliases ``embedding`` / ``encoder`` /
    ``classifier``).
    """

    method: str = "topv"
    scope: str = "local"
    targets: Mapping[str, float] | None = None
    sparsity: float | None = None  # global scope: overall target; None = count-weighted mean of group targets
    thresholds: Mapping[str, float] | None = None  # magnitude + local: absolute |w| thresholds per group
    threshold: float | None = None  # magnitude + global: one absolute |w| threshold
    schedule: str | None = None
    epochs: int | None = None
    ramp: float = 0.7  # gradual: fraction of the fine-tuning steps over which sparsity ramps up
    score_lr: float = 0.01  # movement: Adam learning rate of the scores
    update_every: int = 10  # gradual magnitude / top-v: recompute masks every N optimizer steps

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PruningError(f"unknown pruning method {self.method!r}; expected one of {list(METHODS)}")
        if self.scope not in SCOPES:
            raise PruningError(f"unknown pruning scope {self.scope!r}; expected one of {list(SCOPES)}")
        targets = dict(self.targets or {})
        _check_groups("targets", targets)
        for k, v in targets.items():
            targets[k] = _check_fraction(f"sparsity target for {k!r}", v)
        object.__setattr__(self, "targets", targets)
        if self.sparsity is not None:
            if self.scope != "global":
                raise PruningError("sparsity= is the overall target of global pruning; local pruning uses targets=")
            object.__setattr__(self, "sparsity", _check_fraction("global sparsity", self.sparsity))
        thresholds = dict(self.thresholds or {})
        _check_groups("thresholds", thresholds)
        if thresholds or self.threshold is not None:
            if self.method != "magnitude":
                raise PruningError(f"absolute thresholds need method 'magnitude', not {self.method!r}")
            if thresholds and self.scope != "local":
                raise PruningError("thresholds= (per group) is for local scope; global scope takes threshold=")
            if self.threshold is not None and self.scope != "global":
                raise PruningError("threshold= (one value) is for global scope; local scope takes thresholds=")
        for k, v in [*thresholds.items(), *([("global", self.threshold)] if self.threshold is not None else [])]:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise PruningError(f"magnitude threshold for {k!r} must be a number >= 0, got {v!r}")
        object.__setattr__(self, "thresholds", {k: float(v) for k, v in thresholds.items()})
        schedule = self.schedule or ("gradual" if self.method == "movement" else "post")
        if schedule not in SCHEDULES:
            raise PruningError(f"unknown pruning schedule {schedule!r}; expected one of {list(SCHEDULES)}")
        if self.method == "movement" and schedule != "gradual":
            raise PruningError("movement pruning learns its masks while fine-tuning: use schedule 'gradual'")
        epochs = self.epochs if self.epochs is not None else (2 if schedule == "gradual" else 0)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise PruningError(f"pruning epochs must be an int >= 0, got {self.epochs!r}")
        if schedule == "gradual" and epochs < 1:
            raise PruningError(f"gradual pruning fine-tunes while pruning: epochs must be >= 1, got {epochs}")
        object.__setattr__(self, "schedule", schedule)
        object.__setattr__(self, "epochs", epochs)
        if not 0.0 < self.ramp <= 1.0:
            raise PruningError(f"ramp must be in (0, 1], got {self.ramp!r}")
        if not self.score_lr > 0:
            raise PruningError(f"score_lr must be > 0, got {self.score_lr!r}")
        if isinstance(self.update_every, bool) or not isinstance(self.update_every, int) or self.update_every < 1:
            raise PruningError(f"update_every must be a positive int, got {self.update_every!r}")

    def __hash__(self) -> int:
        return hash(json_key(self.to_dict()))

    # -- resolution against one student ------------------------------------------------------------------------

    def group_targets(self, arch: str, embedding: str) -> dict[str, float]:
        """Per-group sparsity targets for a student with this arch / embedding (table 6.3 + overrides)."""
        present = student_groups(arch, embedding)
        out = {g: TABLE_6_3[g] for g in present}
        for k, v in _expand_aliases(self.targets, arch, embedding).items():
            if k in out:
                out[k] = v
        return out

    def group_thresholds(self, arch: str, embedding: str) -> dict[str, float]:
        present = student_groups(arch, embedding)
        return {k: v for k, v in _expand_aliases(self.thresholds, arch, embedding).items() if k in present}

    def describe(self, arch: str | None = None, embedding: str | None = None) -> str:
        """Short label stored in the results DB, e.g. ``magnitude-local(lstm=0.5,linear=0.125,embedding=0.4)``.

        >>> PruneConfig(method="magnitude").describe("bilstm", "bpe")
        'magnitude-local(lstm=0.5,linear=0.125,embedding=0.4)'
        >>> PruneConfig(method="movement", scope="global", sparsity=0.8, epochs=3).describe("ffn", "hash")
        'movement-global(all=0.8,linear=0.125)-gradual3'
        """
        head = f"{self.method}-{self.scope}"
        if arch is not None and embedding is not None:
            tg = self.group_targets(arch, embedding)
            th = self.group_thresholds(arch, embedding)
        else:
            tg, th = dict(self.targets), dict(self.thresholds)
        items = []
        if self.scope == "global":
            if self.threshold is not None:
                items.append(f"|w|<{self.threshold:g}")
            elif self.sparsity is not None:
                items.append(f"all={self.sparsity:g}")
        for g, v in tg.items():
            if self.scope == "global" and (self.sparsity is not None or self.threshold is not None) and v == 0:
                continue
            items.append(f"{_SHORT.get(g, g)}=" + (f"|w|<{th[g]:g}" if g in th else f"{v:g}"))
        out = f"{head}({','.join(items)})"
        if self.schedule == "gradual" or self.epochs:
            out += f"-{self.schedule}{self.epochs}"
        return out

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        d["targets"] = dict(self.targets)
        d["thresholds"] = dict(self.thresholds)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PruneConfig:
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = set(d) - fields
        if unknown:
            raise PruningError(f"unknown PruneConfig keys {sorted(unknown)}; expected a subset of {sorted(fields)}")
        return cls(**d)


def json_key(d: Mapping[str, Any]) -> str:
    import json

    return json.dumps(d, sort_keys=True, default=str)


def student_groups(arch: str, embedding: str) -> tuple[str, ...]:
    """The module groups a student has, e.g. ``('lstm', 'linear', 'bpe_emb')`` for a bpe BiLSTM."""
    enc = {"bilstm": ("lstm",), "rnn": ("rnn",), "ffn": ()}
    if arch not in enc:
        raise PruningError(f"unknown arch {arch!r}; expected one of {list(vocab.ARCHS)}")
    if embedding not in vocab.EMBEDDINGS:
        raise PruningError(f"unknown embedding {embedding!r}; expected one of {list(vocab.EMBEDDINGS)}")
    return (*enc[arch], "linear", f"{embedding}_emb")


def _expand_aliases(d: Mapping[str, float], arch: str, embedding: str) -> dict[str, float]:
    out = {}
    for k, v in d.items():
        if k == "embedding":
            out[f"{embedding}_emb"] = v
        elif k == "encoder":
            if arch in vocab.RECURRENT_ARCHS:
                out["lstm" if arch == "bilstm" else "rnn"] = v
        elif k == "classifier":
            out["linear"] = v
        else:
            out[k] = v
    return out


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
    from featherweight_core.students import HashEmbedding

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


# ----------------------------------------------------------------------------------------------------------------
# Sparsity report


def sparsity_report(model: nn.Module, arch: str, embedding: str) -> dict[str, Any]:
    """Fraction of zeros among the prunable weights (biases excluded): per tensor (``tensors``), per group
    (``groups``: lstm, linear, bpe_emb...), per module (``embedding``, ``encoder``, ``classifier``) and
    ``overall``. Works with masks installed or after :func:`make_permanent`."""
    tensors: dict[str, float] = {}
    counts: dict[str, list[int]] = {}
    for m, n, g, path in prunable_tensors(model, arch, embedding):
        w = Slot(m, n, g, path).weight()
        zeros, numel = int((w == 0).sum()), w.numel()
        tensors[path] = zeros / numel if numel else 0.0
        for key in (f"group:{g}", f"module:{path.split('.', 1)[0]}", "overall"):
            c = counts.setdefault(key, [0, 0])
            c[0] += zeros
            c[1] += numel
    frac = {k: (z / n if n else 0.0) for k, (z, n) in counts.items()}
    out: dict[str, Any] = {k.split(":", 1)[1]: v for k, v in frac.items() if k.startswith("module:")}
    out["overall"] = frac.get("overall", 0.0)
    out["groups"] = {k.split(":", 1)[1]: v for k, v in frac.items() if k.startswith("group:")}
    out["tensors"] = tensors
    return out


# ----------------------------------------------------------------------------------------------------------------
# Pruning with optional fine-tuning on the distillation loss


def prune_student(
    model: nn.Module,
    cfg: PruneConfig,
    arch: str,
    embedding: str,
    train_split=None,
    distill_cfg=None,
    on_epoch=None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Prune ``model`` in place per ``cfg``; returns (model with permanent zeros, per-epoch fine-tuning log).

    ``train_split`` (EncodedSplit, with teacher logits when ``distill_cfg.alpha < 1``) and a *resolved*
    ``distill_cfg`` are needed when ``cfg.epochs > 0``. Deterministic for a given ``distill_cfg.seed``.
    """
    pruner = Pruner(model, cfg, arch, embedding)
    log: list[dict[str, float]] = []
    if cfg.epochs == 0:
        return pruner.finish(), log
    if train_split is None or distill_cfg is None:
        raise PruningError(f"{cfg.schedule} pruning with {cfg.epochs} fine-tuning epochs needs a training split")
    from featherweight_core.batching import bucket_batches
    from featherweight_core.distill import TrainingError

    if distill_cfg.alpha < 1.0 and train_split.teacher_logits is None:
        raise TrainingError(f"alpha={distill_cfg.alpha} < 1 needs teacher logits on the training split")
    steps_per_epoch = len(bucket_batches(train_split.lengths, distill_cfg.batch_size, None))
    total = steps_per_epoch * cfg.epochs
    if cfg.schedule == "post":
        pruner.update(1.0)

    def before_step(step: int) -> None:
        if cfg.schedule == "gradual" and (
            cfg.method == "movement" or step % cfg.update_every == 0 or step >= round(cfg.ramp * total)
        ):
            pruner.update(cubic_fraction(step, total, cfg.ramp))

    log = _fine_tune(model, pruner, train_split, distill_cfg, cfg, before_step, on_epoch)
    return pruner.finish(), log


def _fine_tune(model, pruner: Pruner, split, dcfg, pcfg: PruneConfig, before_step, on_epoch) -> list[dict]:
    import time

    from featherweight_core.batching import iter_batches
    from featherweight_core.distill import TrainingError, distill_loss, make_optimizer

    holder = nn.ParameterList(pruner.weight_parameters())
    opt = make_optimizer(holder, dcfg)
    scores = pruner.score_parameters()
    score_opt = torch.optim.Adam(scores, lr=pcfg.score_lr) if scores else None
    rng = np.random.default_rng(dcfg.seed)
    torch.manual_seed(dcfg.seed)
    model.train()
    step, log = 0, []
    for epoch in range(1, pcfg.epochs + 1):
        t0, total_loss, seen = time.perf_counter(), 0.0, 0
        for batch in iter_batches(split, dcfg.batch_size, rng):
            before_step(step)
            logits = model(*batch.inputs)
            loss = distill_loss(logits, batch.labels, batch.teacher_logits, dcfg.alpha, dcfg.temperature)
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss ({loss.item()}) while pruning, epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            if score_opt:
                score_opt.zero_grad(set_to_none=True)
            loss.backward()
            if dcfg.grad_clip:
                nn.utils.clip_grad_norm_(holder.parameters(), dcfg.grad_clip)
            opt.step()
            if score_opt:
                score_opt.step()
            total_loss += loss.item() * len(batch.labels)
            seen += len(batch.labels)
            step += 1
        rec = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "sparsity_fraction": pruner.fraction,
            "seconds": time.perf_counter() - t0,
        }
        log.append(rec)
        if on_epoch is not None:
            on_epoch(rec)
    model.eval()
    return log
