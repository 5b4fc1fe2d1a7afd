"""Ray Tune adapter for one compression trial: load the parent student, prune to the proposed per-group
sparsity targets, quantize, evaluate, measure, checkpoint, ``tune.report`` (score and size are Optuna's objectives)."""

from __future__ import annotations

import json
import tempfile
import time
from typing import Any

from ray import tune

from featherweight_core.checkpoint import load_checkpoint, save_compressed
from featherweight_core.compress import compress_student
from featherweight_core.distill import DistillConfig, resolve_temperature
from featherweight_core.prepare import Prepared
from featherweight_core.prune import PruneConfig
from featherweight_core.quantize import QuantConfig
from trainables.distill import error_result, setup_torch

SPEC_TO_PRUNE_GROUP = {"embedding": "emb", "encoder": "encoder", "classifier": "linear"}


def compress_trainable(config: dict[str, Any], prepared: Prepared, fixed: dict[str, Any]) -> None:
    started = time.time()
    try:
        setup_torch(config.get("cpus", 1), 0)  # quantized kernels run on CPU
        model, student_cfg, _ = load_checkpoint(fixed["parent_checkpoint"])
        targets = {g: float(v) for g, v in config["targets"].items()}
        # spec groups -> prune.py groups: embedding -> emb, encoder -> lstm/rnn, classifier -> linear
        prune = PruneConfig(
            method=fixed["method"],
            scope=fixed["scope"],
            targets={SPEC_TO_PRUNE_GROUP[g]: v for g, v in targets.items()},
            epochs=fixed["finetune_epochs"] or None,
        )
        q = fixed["quantize"]
        quant = QuantConfig(
            embedding=q["embedding"], encoder=q["encoder"], classifier=q["classifier"],
            static_classifier=q["static_classifier"], importance_bits=q.get("importance_bits", 16),
        )  # fmt: skip
        pc = fixed["parent_config"]
        distill_cfg = DistillConfig(alpha=pc["alpha"] if pc.get("alpha") is not None else 1.0,
                                    temperature=resolve_temperature(pc.get("temperature"), student_cfg.arch), seed=pc.get("seed") or 0)  # fmt: skip
        train_split = prepared.train
        if pc.get("bootstrap") and getattr(prepared, "bootstrap", None) is not None:
            train_split = prepared.train.concat(prepared.bootstrap)
        result = compress_student(model, student_cfg, prune, quant, train_split, prepared.evals, prepared.task,
                                  distill_cfg)  # fmt: skip
        sizes = result.sizes
        summary = {
            "metrics": result.metrics,
            "sizes": sizes,
            "sparsity": result.sparsity,
            "pruning": result.describe()["prune"],
            "quantization": result.describe()["quant"],
        }
        with tempfile.TemporaryDirectory(prefix="fw-compress-") as out:
            save_compressed(f"{out}/compressed.pt", result)
            tune.report(
                {
                    "fw_status": "finished",
                    "fw_started_at": started,
                    "fw_summary": json.dumps(summary, default=float),
                    "score": float(result.metrics["score"]),
                    "size": float(sizes[fixed["size_measure"]] if fixed["size_measure"] != "params"
                                  else sizes["nonzero_params"]),
                },
                checkpoint=tune.Checkpoint.from_directory(out),
            )  # fmt: skip
    except Exception as e:  # recorded as an errored trial; the search goes on
        tune.report({**error_result(e), "fw_started_at": started, "score": float("nan"), "size": float("nan")})
