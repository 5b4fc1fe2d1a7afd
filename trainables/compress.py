"""Ray Tune adapter for one compression trial: load the parent student, prune to the proposed per-module-group
sparsity targets, quantize, evaluate, measure, checkpoint, ``tune.report`` (score and size are Optuna's objectives).
"""

from __future__ import annotations

import time
from typing import Any

from featherweight_core.compression.prune_config import PruneConfig
from featherweight_core.compression.quantize import QuantConfig
from featherweight_core.pipeline.checkpoint import load_checkpoint, save_compressed
from featherweight_core.pipeline.compress import compress_student
from featherweight_core.pipeline.prepare import Prepared
from featherweight_core.students.distill import DistillConfig, resolve_temperature
from featherweight_core.vocab import MODULE_GROUPS, PRUNE_GROUP_OF_MODULE_GROUP
from trainables.checkpoints import save_and_report
from trainables.distill import error_message, fetch_prepared, setup_torch
from trainables.placement import placement
from trainables.trial import CompressTrial, TrialOutcome

CHECKPOINT_FILE = "compressed.pt"


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
        )
    except Exception as e:  # recorded as an errored trial; the search goes on
        outcome = TrialOutcome.failed(error_message(e), started, time.time(), **placement("cpu"))
        tune.report(outcome.to_result(trial.size_measure))
