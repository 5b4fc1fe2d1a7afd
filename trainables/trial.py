"""The trial contract: how a trial's id is made (:func:`canonical_id`), how a trial is read back strictly
(:func:`strict_fields`), and what a trial produced (:class:`TrialOutcome`). It is the one interface between the sweep
spec (which builds trial configs), the trainables (which turn them into core configs and run them), and the
driver-side callback (which turns outcomes into rows).

A stage's trial class lives beside its trainable (``trainables.compress.CompressTrial``), except the trials the spec
itself builds (:class:`DistillTrial`, :class:`TeacherCompressionTrial`): they live here, because this module is
light on purpose (no Ray, no torch), and the spec validator, benchmarks and tests use it without either.

**Trial ids** are a hash of a canonical, versioned form of the trial config (:func:`canonical_id`). Version 1 of the
contract is the set of fields the first release hashed (``V1_FIELDS``): they are always part of the hash, exactly as
they were, so sweeps recorded before this module existed resume. Every field added since enters the hash only when
it differs from its default, so adding a field with a default never changes an existing id. A new field therefore
needs a default that reproduces the old behaviour.

**Outcomes** cross Ray as one JSON string (``fw_outcome``) beside the two numbers Tune and Optuna optimise
(``score`` and, for compression, ``size``). Tune flattens nested result dicts, which is why the outcome is a string.
:meth:`TrialOutcome.from_result` decodes it strictly: a missing or malformed outcome is an :class:`OutcomeError`,
never an empty dict.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from featherweight_core.students.distill_config import TRAINING_SETTINGS
from featherweight_core.vocab import ARCHS, EMBEDDINGS, POOLINGS, TEACHER_COMPRESSION_METHODS

OUTCOME_KEY = "fw_outcome"
RUNGS_KEY = "halving_rungs"  # the trial-config key a scheduler sets: the epochs at which a trial reports to it
RUNG_KEY = "fw_rung"  # the result key of such a report (its epoch): the outcome is the trial's if stopped there
# stopped: a scheduler stopped the trial at a rung (the outcome it reported there: score and epochs so far)
STATUSES = ("finished", "error", "stopped")


class OutcomeError(RuntimeError):
    """A trial result that does not hold a valid outcome: a bug in a trainable or a version mismatch."""


def canonical_id(prefix: str, values: dict[str, Any], v1_fields: tuple[str, ...], defaults: dict[str, Any]) -> str:
    """``prefix-<12 hex>``: sha256 of the canonical JSON of ``values``, in which a field outside ``v1_fields`` that
    equals its default is left out.

    >>> canonical_id("d", {"a": 1, "b": None}, ("a",), {"b": None})
    'd-f9d86028c6e0'
    >>> canonical_id("d", {"a": 1}, ("a",), {})  # a new field at its default does not change the id
    'd-f9d86028c6e0'
    """
    body = {k: v for k, v in values.items() if k in v1_fields or k not in defaults or v != defaults[k]}
    text = json.dumps(body, sort_keys=True, default=str)
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def data_key(task: str, embedding: str, vocab_size: int | None, emb_dim: int) -> str:
    """Which prepared dataset a trial trains on: one per (task, encoding); bpe vectors depend on dim."""
    return f"{task}|{embedding}|{vocab_size}|{emb_dim}"


def strict_fields(cls, d: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields of trial (or outcome) dataclass ``cls`` in ``d``: an unknown or a missing required field is an
    :class:`OutcomeError` (``trial_id``, derived, is ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names - {"trial_id"})
    if unknown:
        raise OutcomeError(f"{where}: unknown field(s) {unknown}; expected {sorted(names)}")
    missing = sorted(
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in d and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise OutcomeError(f"{where}: missing field(s) {missing}")
    return {k: v for k, v in d.items() if k in names}


def _with_training_settings(cls: type) -> type:
    """Give a trial class one field per training setting (``featherweight_core.students.distill_config.TRAINING_SETTINGS``,
    each with the default a user who leaves it out gets), after the grid point's fields and before
    ``task_definition`` and ``teacher_outputs``: a setting declared on the core config is a trial field without further code."""
    annotations = dict(cls.__annotations__)
    tail = {k: annotations.pop(k) for k in ("task_definition", "teacher_outputs")}
    for name, s in TRAINING_SETTINGS.items():
        annotations[name] = "Any"
        setattr(cls, name, s.default)
    cls.__annotations__ = {**annotations, **tail}
    return cls


@dataclass(frozen=True)
@_with_training_settings
class DistillTrial:
    """One grid point of stage 1: train one student. Built by the spec; run by ``trainables.distill``."""

    task: str
    arch: str
    embedding: str
    emb_dim: int
    vocab_size: int | None  # None for char embeddings
    alpha: float
    bootstrap: bool
    seed: int
    # here: one field per training setting (pooling, temperature, max_epochs, ...; added by _with_training_settings)
    # A custom task's definition fingerprint (columns, labels, metric, split, encoding): changing the definition of a
    # custom task makes new trials; None for built-in tasks, so their ids are those of version 1
    task_definition: str | None = None
    # The content fingerprint of the task's teacher outputs file(s) (featherweight_core.teacher.outputs) for a trial
    # that learns from them (alpha < 1 or bootstrap data): a relabelled file makes new trials; None otherwise
    teacher_outputs: str | None = None

    # The fields the first release hashed, frozen: a setting added since enters the id only off its default
    V1_FIELDS: ClassVar[tuple[str, ...]] = (
        "task",
        "arch",
        "embedding",
        "emb_dim",
        "vocab_size",
        "alpha",
        "bootstrap",
        "seed",
        "pooling",
        "temperature",
        "max_epochs",
        "patience",
        "batch_size",
        "lr",
        "optimizer",
    )
    stage: ClassVar[str] = "distill"

    def __post_init__(self) -> None:
        # These are programming errors: the spec validator has already checked the user's values.
        if self.arch not in ARCHS or self.embedding not in EMBEDDINGS or self.pooling not in POOLINGS:
            raise OutcomeError(f"invalid distill trial {self.to_dict()}")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "bootstrap", bool(self.bootstrap))
        if self.embedding == "char":
            object.__setattr__(self, "vocab_size", None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillTrial:
        return cls(**strict_fields(cls, d, "distill trial"))

    @property
    def trial_id(self) -> str:
        return canonical_id("d", self.to_dict(), self.V1_FIELDS, field_defaults(type(self)))

    @property
    def data_key(self) -> str:
        return data_key(self.task, self.embedding, self.vocab_size, self.emb_dim)

    def describe(self) -> str:
        vocab = f" v{self.vocab_size}" if self.vocab_size else ""
        boot = " +boot" if self.bootstrap else ""
        return f"{self.task} {self.arch} {self.embedding}{self.emb_dim}{vocab} a={self.alpha:g}{boot} seed={self.seed}"


@dataclass(frozen=True)
class TeacherCompressionTrial:
    """One grid point of the teacher-compression stage: make a smaller transformer from the task's fine-tuned
    teacher with ``method`` (``theseus``: BERT-of-Theseus module replacement; ``bertvision``: a small head over the
    teacher's first k layers). Built by the spec (``SweepSpec.teacher_compression_trials``); run by
    ``trainables.teacher_compression``.

    ``settings`` holds the method's knobs as the spec gives them (grid and training keys, without seed and quantize;
    a knob the spec leaves out is the core config's default and is not in the dict), canonical: sorted keys, floats
    as floats. ``teacher_fingerprint`` is the content hash of the teacher directory
    (``featherweight_core.teacher.softtargets.teacher_fingerprint``: weights, config and tokenizer files), not its path: a
    retrained or replaced teacher gives every trial a new id, so a resumed sweep compresses the new teacher (its rows
    are new; the old teacher's rows stay in the database, their ``teacher`` column naming the directory they came
    from), while moving the storage does not re-run anything. ``task_definition``: a custom task's definition
    fingerprint, as for :class:`DistillTrial`."""

    task: str
    method: str
    seed: int
    quantize: bool
    settings: dict[str, Any]
    teacher_fingerprint: str
    task_definition: str | None = None

    V1_FIELDS: ClassVar[tuple[str, ...]] = (
        "stage",
        "task",
        "method",
        "seed",
        "quantize",
        "settings",
        "teacher_fingerprint",
    )
    stage: ClassVar[str] = "teacher_compression"

    def __post_init__(self) -> None:
        if self.method not in TEACHER_COMPRESSION_METHODS:
            raise OutcomeError(
                f"invalid teacher compression trial method={self.method!r}; expected one of"
                f" {list(TEACHER_COMPRESSION_METHODS)}"
            )
        if not isinstance(self.settings, dict) or {"seed", "quantize"} & set(self.settings):
            raise OutcomeError(
                f"invalid teacher compression settings {self.settings!r}: a dict without seed and"
                " quantize (fields of their own)"
            )
        if not isinstance(self.teacher_fingerprint, str) or not self.teacher_fingerprint:
            raise OutcomeError(f"invalid teacher fingerprint {self.teacher_fingerprint!r}")
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "quantize", bool(self.quantize))
        object.__setattr__(self, "settings", dict(sorted(self.settings.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TeacherCompressionTrial:
        d = {k: v for k, v in d.items() if k not in ("stage", "resolved")}
        return cls(**strict_fields(cls, d, "teacher compression trial"))

    @property
    def trial_id(self) -> str:
        return canonical_id("t", self.to_dict(), self.V1_FIELDS, field_defaults(type(self)))

    @property
    def arch(self) -> str:
        """The method: what the database's ``arch`` column and the progress lines call it."""
        return self.method

    def describe(self) -> str:
        knobs = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.settings.items())
        q = " int8" if self.quantize else ""
        return f"{self.task} {self.method} {knobs}{q} seed={self.seed}".replace("  ", " ")


def field_defaults(cls) -> dict[str, Any]:
    """Each field of dataclass ``cls`` that has a default -> that default (what :func:`canonical_id` leaves out)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@dataclass
class TrialOutcome:
    """What a trial produced. ``metrics`` scores are fractions; ``sizes`` flat (params, params_embedding, ...,
    nonzero_params, disk_bytes, gzip_bytes, ideal_bytes); ``history`` one dict per epoch; ``resolved`` the core
    configs as actually run (student and distill config after defaults); ``checkpoint_file`` the file name inside
    the trial's checkpoint directory."""

    status: str
    started_at: float
    finished_at: float
    device: str | None = None
    node: str | None = None
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    resolved: dict[str, Any] = field(default_factory=dict)
    pruning: str | None = None
    quantization: str | None = None
    sparsity: dict[str, Any] = field(default_factory=dict)
    train_examples: int | None = None
    checkpoint_file: str | None = None
    # per eval/test split at the best epoch: {"labels", "precision", "recall", "f1", "support", "confusion"}
    class_metrics: dict[str, Any] = field(default_factory=dict)
    # where it ran (``trainables.placement``); ``device`` is ``cpu`` or ``cuda:N`` (N: the GPU's index on its node),
    # ``node`` ``ip/node-id prefix``. None in outcomes from before these fields existed, and where unknown
    node_id: str | None = None  # the Ray node id (hex)
    host: str | None = None
    node_ip: str | None = None
    gpu_model: str | None = None  # torch.cuda.get_device_name; None on the CPU
    torch_version: str | None = None
    cuda_version: str | None = None  # torch.version.cuda; None for a CPU build of torch
    # teacher compression (None / empty for student trials and outcomes from before these fields existed):
    # parameters the method trained (``sizes["params"]`` stays every parameter inference needs), CPU latency at batch
    # size 1 (median ms), transformer layers inference runs, and the teacher it came from ({"dir", "fingerprint",
    # "score", "params", "layers", ...} as the core reports it)
    trainable_params: int | None = None
    latency_ms: float | None = None
    layers: int | None = None
    teacher: dict[str, Any] = field(default_factory=dict)
    # CPU speed per runtime when the sweep measures it (the spec's measure: key): one dict per model and runtime as
    # featherweight_core.students.latency.Latency.to_dict gives it (model "trial" or "teacher"); empty otherwise
    latency: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise OutcomeError(f"trial outcome status {self.status!r} is not one of {STATUSES}")
        if self.status != "error" and not isinstance(self.metrics.get("score"), int | float):
            raise OutcomeError(f"a {self.status} trial outcome needs a numeric metrics['score'], got {self.metrics}")
        if self.status == "error" and not self.error:
            raise OutcomeError("an errored trial outcome needs an error message")

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def seconds(self) -> float:
        return self.finished_at - self.started_at

    @property
    def stopped(self) -> bool:
        return self.status == "stopped"

    @property
    def score(self) -> float:
        """The dev score (a stopped trial's: the best up to where it stopped)."""
        return math.nan if self.status == "error" else float(self.metrics["score"])

    def size(self, measure: str) -> float:
        """The size Optuna minimises: ``params`` means the parameters left after pruning (non-zero)."""
        if self.status == "error":
            return math.nan
        value = self.sizes.get("nonzero_params" if measure == "params" else measure)
        return math.nan if value is None else float(value)

    def to_result(self, size_measure: str | None = None) -> dict[str, Any]:
        """The dict a trainable passes to ``tune.report``."""
        out: dict[str, Any] = {
            OUTCOME_KEY: json.dumps(dataclasses.asdict(self), default=_json_default),
            "score": self.score,
        }
        if size_measure is not None:
            out["size"] = self.size(size_measure)
        return out

    @classmethod
    def from_result(cls, result: dict[str, Any] | None) -> TrialOutcome:
        """Decode what :meth:`to_result` produced; anything else is an :class:`OutcomeError`."""
        if not result or OUTCOME_KEY not in result:
            raise OutcomeError(f"trial result has no {OUTCOME_KEY!r} (keys: {sorted(result or {})})")
        try:
            d = json.loads(result[OUTCOME_KEY])
        except (TypeError, json.JSONDecodeError) as e:
            raise OutcomeError(f"trial result {OUTCOME_KEY!r} is not valid JSON: {e}") from e
        if not isinstance(d, dict):
            raise OutcomeError(f"trial result {OUTCOME_KEY!r} is not an object: {d!r}")
        try:
            return cls(**strict_fields(cls, d, "trial outcome"))
        except TypeError as e:
            raise OutcomeError(f"trial outcome does not match the contract: {e}") from e

    @classmethod
    def failed(cls, error: str, started_at: float, finished_at: float, **kw: Any) -> TrialOutcome:
        return cls(status="error", error=error[:2000], started_at=started_at, finished_at=finished_at, **kw)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
