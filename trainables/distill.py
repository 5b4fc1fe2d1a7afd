"""Ray Tune adapter for one distillation trial: trial config -> core configs -> core call -> ``tune.report``.

The driver prepares data once per (task, encoding) and puts each dataset in Ray's object store; the trainable
receives the small dict of object references and fetches only the one its trial trains on (on a cluster, each node
pulls only what its trials use). :func:`train_trial` is the Ray-free body, also run by ``bench/bench_sweep.py``.
"""

from __future__ import annotations

import copy
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from featherweight_core.pipeline.prepare import Prepared
from featherweight_core.pipeline.run import run_distillation, student_config_for
from featherweight_core.settings import settings_of
from featherweight_core.students.distill import DistillConfig, EpochRecord, resolve_temperature
from featherweight_core.students.measure import disk_size, student_param_counts
from featherweight_core.vocab import MODULE_GROUPS
from trainables.checkpoints import save_and_report
from trainables.placement import placement
from trainables.trial import RUNG_KEY, RUNGS_KEY, DistillTrial, TrialOutcome

FAULT_ENV = "FEATHERWEIGHT_FAULT_TRIALS"
CHECKPOINT_FILE = "student.pt"


def inject_fault(trial: dict[str, Any]) -> None:
    """Fault injection for testing failure handling end to end: ``FEATHERWEIGHT_FAULT_TRIALS`` holds
    comma-separated ``key=value`` conditions (e.g. ``arch=ffn``); a trial matching all of them raises."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    conds = [c.split("=", 1) for c in spec.split(",") if "=" in c]
    if conds and all(str(trial.get(k)) == v for k, v in conds):
        raise RuntimeError(f"injected fault ({FAULT_ENV}={spec})")


def error_message(e: BaseException) -> str:
    return traceback.format_exception_only(type(e), e)[-1].strip()


def setup_torch(cpus: float, gpus: float) -> str:
    """Threads for this trial's CPU share; the device its GPU share (if any) gives it."""
    torch.set_num_threads(max(1, int(cpus)))
    return "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"


def history_entry(h: EpochRecord) -> dict[str, Any]:
    return {
        "epoch": h.epoch,
        "train_loss": h.train_loss,
        "score": h.score,
        "seconds": h.seconds,
        "samples_per_second": h.samples_per_second,
        "metrics": h.metrics,
    }


def rung_outcome(
    started: float, device: str, epochs: list[EpochRecord], sizes: dict[str, Any], train_examples: int
) -> TrialOutcome:
    """What a trial is if a scheduler stops it after ``epochs``: status ``stopped``, the best dev score so far (the
    model it would keep), the epochs it trained and its sizes (parameter counts, and the bytes of its state dict at the
    rung: the same tensors a finished trial saves)."""
    best = max(epochs, key=lambda h: (h.score, -h.epoch))
    return TrialOutcome(
        status="stopped",
        started_at=started,
        finished_at=time.time(),
        **placement(device),
        metrics={**best.metrics, "score": best.score, "best_epoch": best.epoch, "epochs": len(epochs)},
        sizes=sizes,
        history=[history_entry(h) for h in epochs],
        train_examples=train_examples,
    )


def train_trial(
    trial: DistillTrial,
    prepared: Prepared,
    device: str,
    out_dir: str,
    rungs: tuple[int, ...] = (),
    on_rung: Callable[[TrialOutcome], None] | None = None,
) -> TrialOutcome:
    """One grid point, without Ray: train the student the trial names, save it in ``out_dir``, return the outcome.
    At each epoch of ``rungs``, ``on_rung`` gets the outcome the trial would have if stopped there (a scheduler
    decides; stopping is its business)."""
    started = time.time()
    student = student_config_for(prepared, trial.arch, pooling=trial.pooling)
    settings = {name: getattr(trial, name) for name in settings_of(DistillConfig)}  # the trial's training settings
    settings["temperature"] = resolve_temperature(trial.temperature, trial.arch)
    cfg = DistillConfig(alpha=trial.alpha, seed=trial.seed, device=device, **settings)
    train_split = prepared.train_split(trial.bootstrap)
    on_epoch = None
    if rungs and on_rung is not None:
        counts = student_param_counts(student, prepared.num_embeddings)
        known = {"params": counts["total"], **{f"params_{g}": counts.get(g) for g in MODULE_GROUPS}}
        seen: list[EpochRecord] = []

        def on_epoch(h: EpochRecord, model: torch.nn.Module) -> None:
            seen.append(h)
            if h.epoch in rungs:  # its bytes as a finished trial's are measured: the state dict saved from the CPU
                stored = disk_size(copy.deepcopy(model).to("cpu"))
                on_rung(rung_outcome(started, device, seen, {**known, **stored}, len(train_split)))

    result = run_distillation(
        prepared, student, cfg, output_dir=out_dir, train_split=train_split, on_epoch_model=on_epoch
    )
    s = result.summary()
    history = [history_entry(h) for h in result.train.history]
    params = s["params"]
    return TrialOutcome(
        status="finished",
        started_at=started,
        finished_at=time.time(),
        **placement(device),
        metrics={**s["metrics"], **test_metrics(s), "best_epoch": s["best_epoch"], "epochs": s["epochs"]},
        sizes={
            "params": params["total"],
            **{f"params_{g}": params.get(g) for g in MODULE_GROUPS},
            "nonzero_params": params.get("nonzero"),
            "disk_bytes": s["disk_bytes"],
            "gzip_bytes": s["gzip_bytes"],
        },
        history=history,
        resolved={"student": s["student"], "distill": s["distill"], "task": prepared.task.to_dict()},
        train_examples=len(train_split),
        checkpoint_file=CHECKPOINT_FILE,
        class_metrics=s.get("class_metrics") or {},
    )


def test_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The best epoch's test-split figures as ``test_<metric>`` keys beside the dev metrics (none without a test
    split)."""
    return {f"test_{k}": v for k, v in (summary.get("test_metrics") or {}).items() if isinstance(v, int | float)}


_FETCHED: dict[str, tuple[bytes, Prepared]] = {}  # in a worker process: data key -> (object id, dataset)


def fetch_prepared(data: dict[str, Any], key: str) -> Prepared:
    """The dataset ``key`` from Ray's object store, fetched once per worker process: a reused actor's later trials on
    the same data get the same object. Its numpy arrays are read-only views of the node's shared object store (no
    copy); what is not a plain array (the example keys, a list) is unpickled once per worker instead of per trial.
    One dataset is kept at a time."""
    import ray

    ref = data[key]
    hit = _FETCHED.get(key)
    if hit is not None and hit[0] == ref.binary():
        return hit[1]
    _FETCHED.clear()
    prepared = ray.get(ref)
    _FETCHED[key] = (ref.binary(), prepared)
    return prepared


def distill_trainable(config: dict[str, Any], data: dict[str, Any]) -> None:
    """Tune function trainable. ``config["trial"]`` is a DistillTrial as a dict; ``data`` maps data keys to object
    references of ``Prepared`` datasets."""
    from ray import tune

    started = time.time()
    trial = DistillTrial.from_dict(config["trial"])  # a malformed trial config is a bug: let it raise
    device = None
    try:
        device = setup_torch(config.get("cpus", 1), config.get("gpus", 0))
        inject_fault(trial.to_dict())
        prepared = fetch_prepared(data, trial.data_key)
        rungs = tuple(config.get(RUNGS_KEY) or ())  # set by a scheduler (sweep.halving_scheduler)

        def at_rung(outcome: TrialOutcome) -> None:
            # the scheduler stops the trial here (Tune ends this thread inside report) or lets it go on
            tune.report({**outcome.to_result(), RUNG_KEY: outcome.metrics["epochs"]})

        save_and_report(
            config,
            trial.trial_id,
            lambda out: train_trial(trial, prepared, device, out, rungs, at_rung),
            lambda o: o.to_result(),
            task=trial.task,
        )
    except Exception as e:  # recorded as an errored trial with its message; the sweep goes on
        outcome = TrialOutcome.failed(error_message(e), started, time.time(), **placement(device))
        tune.report(outcome.to_result())
