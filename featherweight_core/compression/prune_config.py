"""What to prune: :class:`PruneConfig` (method, scope, schedule, sparsity per module group, aliases resolved per
student architecture and embedding) and its error."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
