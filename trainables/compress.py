"""The compression stage's trial (:class:`CompressTrial`: one Optuna sample) and its Ray Tune adapter: load the
parent student, prune to the proposed per-module-group sparsity targets, quantize, evaluate, measure, checkpoint,
``tune.report`` (score and size are Optuna's objectives).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from featherweight_core.compression.prune_config import PruneConfig
from featherweight_core.compression.quantize import QuantConfig
from featherweight_core.pipeline.checkpoint import load_checkpoint, save_compressed
from featherweight_core.pipeline.compress import compress_student
from featherweight_core.pipeline.prepare import Prepared
from featherweight_core.students.distill import DistillConfig, resolve_temperature
from featherweight_core.vocab import MODULE_GROUPS, PRUNE_GROUP_OF_MODULE_GROUP, PRUNE_METHODS, PRUNE_SCOPES
from trainables.checkpoints import save_and_report
from trainables.distill import error_message, fetch_prepared, setup_torch
from trainables.placement import placement
from trainables.trial import OutcomeError, TrialOutcome, canonical_id, data_key, field_defaults, strict_fields

CHECKPOINT_FILE = "compressed.pt"

# The parent's settings a compression trial needs (and hashes): what it was trained on and how
PARENT_FIELDS = ("task", "arch", "embedding", "emb_dim", "vocab_size", "alpha", "bootstrap", "seed", "temperature")


@dataclass(frozen=True)
class CompressTrial:
    """One Optuna sample of stage 2: prune a parent student to per-module-group sparsity ``targets``, then
    quantize. ``quantize`` holds QuantConfig's switches; ``importance_bits`` is left out at its default (16)."""

    parent_trial_id: str
    parent_checkpoint: str
    parent_config: dict[str, Any]
    targets: dict[str, float]
    method: str = "magnitude"
    scope: str = "local"
    finetune_epochs: int = 0
    quantize: dict[str, Any] = field(default_factory=dict)
    size_measure: str = "gzip_bytes"

    V1_FIELDS: ClassVar[tuple[str, ...]] = (
        "stage",
        "parent_trial_id",
        "parent_checkpoint",
        "parent_config",
        "method",
        "scope",
        "finetune_epochs",
        "quantize",
        "size_measure",
        "targets",
    )
    stage: ClassVar[str] = "compress"

    def __post_init__(self) -> None:
        if self.method not in PRUNE_METHODS or self.scope not in PRUNE_SCOPES:
            raise OutcomeError(f"invalid compression trial method={self.method!r} scope={self.scope!r}")
        unknown = set(self.targets) - set(MODULE_GROUPS)
        if unknown:
            raise OutcomeError(f"invalid compression targets {sorted(unknown)}; expected {list(MODULE_GROUPS)}")
        # Optuna proposes floats with 16+ digits: rounding keeps ids and stored configs readable and stable
        object.__setattr__(self, "targets", {g: round(float(v), 6) for g, v in sorted(self.targets.items())})
        object.__setattr__(self, "parent_config", {k: self.parent_config.get(k) for k in PARENT_FIELDS})
        q = dict(self.quantize)
        if q.get("importance_bits", 16) == 16:
            q.pop("importance_bits", None)  # at its default it does not count (ids from before it existed hold)
        object.__setattr__(self, "quantize", q)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompressTrial:
        d = {k: v for k, v in d.items() if k != "stage"}
        return cls(**strict_fields(cls, d, "compression trial"))

    @property
    def trial_id(self) -> str:
        return canonical_id("c", self.to_dict(), self.V1_FIELDS, field_defaults(type(self)))

    @property
    def data_key(self) -> str:
        p = self.parent_config
        return data_key(p["task"], p["embedding"], p["vocab_size"], p["emb_dim"])

    def describe(self) -> str:
        sp = ",".join(f"{g[:3]}={v:.2f}" for g, v in self.targets.items())
        return f"compress {self.parent_trial_id} [{sp}]"


def compress_trial(trial: CompressTrial, prepared: Prepared, out_dir: str) -> TrialOutcome:
    """Ray-free body: compress the parent as the trial says, save ``compressed.pt`` in ``out_dir``."""
    started = time.time()
    model, student_cfg, _ = load_checkpoint(trial.parent_checkpoint)
    prune = PruneConfig(
        method=trial.method,
        scope=trial.scope,
        targets={PRUNE_GROUP_OF_MODULE_GROUP[g]: v for g, v in trial.targets.items()},
        epochs=trial.finetune_epochs or None,
    )
    q = trial.quantize
    quant = QuantConfig(
        embedding=q["embedding"],
        encoder=q["encoder"],
        classifier=q["classifier"],
        static_classifier=q["static_classifier"],
        importance_bits=q.get("importance_bits", 16),
    )
    pc = trial.parent_config
    distill_cfg = DistillConfig(
        alpha=pc["alpha"] if pc.get("alpha") is not None else 1.0,
        temperature=resolve_temperature(pc.get("temperature"), student_cfg.arch),
        seed=pc.get("seed") or 0,
    )
    train_split = prepared.train_split(bool(pc.get("bootstrap")) and prepared.bootstrap is not None)
    result = compress_student(
        model, student_cfg, prune, quant, train_split, prepared.evals, prepared.task, distill_cfg, tests=prepared.tests
    )
    save_compressed(f"{out_dir}/{CHECKPOINT_FILE}", result)
    params = result.sizes["params"]
    described = result.describe()
    return TrialOutcome(
        status="finished",
        started_at=started,
        finished_at=time.time(),
        **placement("cpu"),  # quantized kernels run on the CPU
        metrics={**result.metrics, **{f"test_{k}": v for k, v in result.test_metrics.items()}},
        sizes={
            "params": params["total"],
            **{f"params_{g}": params.get(g) for g in MODULE_GROUPS},
            **{k: v for k, v in result.sizes.items() if k != "params"},
        },
        pruning=described["prune"],
        quantization=described["quant"],
        sparsity={k: v for k, v in result.sparsity.items() if k != "tensors"},
        train_examples=len(train_split),
        checkpoint_file=CHECKPOINT_FILE,
        class_metrics=result.class_metrics,
    )


def compress_trainable(config: dict[str, Any], data: dict[str, Any], fixed: dict[str, Any]) -> None:
    """Tune function trainable. ``config["targets"]`` is Optuna's proposal; ``fixed`` the rest of the
    CompressTrial; ``data`` maps the parent's data key to the object reference of its dataset (put in the object
    store once per stage, shared by every parent trained on it; fetched once per worker)."""
    from ray import tune

    started = time.time()
    trial = CompressTrial.from_dict({**fixed, "targets": config["targets"]})
    try:
        setup_torch(config.get("cpus", 1), 0)
        prepared = fetch_prepared(data, trial.data_key)
        save_and_report(
            config,
            trial.trial_id,
            lambda out: compress_trial(trial, prepared, out),
            lambda o: o.to_result(trial.size_measure),
            task=trial.parent_config.get("task"),
        )
    except Exception as e:  # recorded as an errored trial; the search goes on
        outcome = TrialOutcome.failed(error_message(e), started, time.time(), **placement("cpu"))
        tune.report(outcome.to_result(trial.size_measure))
