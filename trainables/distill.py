"""Ray Tune adapter for one distillation trial: Tune config -> core configs -> core call -> ``tune.report``.

The driver prepares data once (``featherweight_core.prepare``) and passes the dict of ``Prepared`` objects through
``tune.with_parameters``, i.e. the Ray object store; trials never re-read or re-tokenize data.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from typing import Any

from ray import tune

from featherweight_core.distill import DistillConfig, resolve_temperature
from featherweight_core.prepare import Prepared
from featherweight_core.run import run_distillation, student_config_for


def data_key(task: str, embedding: str, vocab_size: int | None, emb_dim: int) -> str:
    """Which ``Prepared`` a trial trains on (bpe vectors depend on dim, so dim is part of the key)."""
    return f"{task}|{embedding}|{vocab_size}|{emb_dim}"


def error_result(e: BaseException) -> dict[str, Any]:
    last = traceback.format_exception_only(type(e), e)[-1].strip()
    return {"fw_status": "error", "fw_error": last[:2000]}


FAULT_ENV = "FEATHERWEIGHT_FAULT_TRIALS"


def inject_fault(trial: dict[str, Any]) -> None:
    """Fault injection for testing failure handling end to end: ``FEATHERWEIGHT_FAULT_TRIALS`` holds
    comma-separated ``key=value`` conditions (e.g. ``arch=ffn``); a trial matching all of them raises."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    conds = [c.split("=", 1) for c in spec.split(",") if "=" in c]
    if conds and all(str(trial.get(k)) == v for k, v in conds):
        raise RuntimeError(f"injected fault ({FAULT_ENV}={spec})")


def setup_torch(cpus: float, gpus: float) -> str:
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    return "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"


def train_trial(trial: dict[str, Any], prepared: dict[str, Prepared], device: str, out_dir: str) -> dict[str, Any]:
    """One grid point, without Ray: train the student the trial config names, save it in ``out_dir``, and return
    the ``fw_*`` fields the trainable reports. bench/bench_sweep.py runs trials through this same function in a
    plain loop to measure what Ray costs."""
    p = prepared[data_key(trial["task"], trial["embedding"], trial["vocab_size"], trial["emb_dim"])]
    student = student_config_for(p, trial["arch"], pooling=trial["pooling"])
    cfg = DistillConfig(
        alpha=trial["alpha"],
        temperature=resolve_temperature(trial["temperature"], trial["arch"]),
        max_epochs=trial["max_epochs"],
        patience=trial["patience"],
        batch_size=trial["batch_size"],
        lr=trial["lr"],
        optimizer=trial["optimizer"],
        seed=trial["seed"],
        device=device,
    )
    if trial["bootstrap"] and p.bootstrap is None:
        raise ValueError(f"trial asks for bootstrap data but task {trial['task']!r} has none")
    train_split = p.train_split(bool(trial["bootstrap"]))
    result = run_distillation(p, student, cfg, output_dir=out_dir, train_split=train_split)
    summary = result.summary()
    history = [
        {"epoch": h.epoch, "train_loss": h.train_loss, "score": h.score, "seconds": h.seconds,
         "samples_per_second": h.samples_per_second, "metrics": h.metrics}
        for h in result.train.history
    ]  # fmt: skip
    return {
        "fw_status": "finished",
        "fw_device": device,
        "fw_train_examples": len(train_split),
        "fw_summary": json.dumps(summary),
        "fw_history": json.dumps(history),
        "score": summary["metrics"]["score"],
    }


def distill_trainable(config: dict[str, Any], prepared: dict[str, Prepared]) -> None:
    trial = config["trial"]
    started = time.time()
    try:
        device = setup_torch(config.get("cpus", 1), config.get("gpus", 0))
        inject_fault(trial)
        with tempfile.TemporaryDirectory(prefix="fw-trial-") as out:
            report = {**train_trial(trial, prepared, device, out), "fw_started_at": started}
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(out))
    except Exception as e:  # recorded as an errored trial; the sweep goes on
        tune.report({**error_result(e), "fw_started_at": started, "score": float("nan")})
