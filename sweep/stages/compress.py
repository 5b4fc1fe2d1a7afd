"""Stage 2: for each chosen parent student, Optuna (multi-objective: score up, size down) searches per-module-group
sparsity targets through Ray Tune; each trial prunes and quantizes the parent and is recorded with its
``parent_trial_id``.

Parents come from the one Pareto definition the report shows (``analysis.selection``). Resuming is driven by the
database: the compression trials already recorded for a parent are fed to Optuna as completed trials of the study
(so the sampler knows them), and only the missing samples run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweep.assets import TaskAssets, TaskDataCache, prepare_datasets
from sweep.callback import DatabaseCallback, ProgressReporter
from sweep.records import compress_record
from sweep.spec import SweepSpec
from sweep.stage1 import StageResult
from sweep.tuner import build_tuner
from trainables.trial import CompressTrial


@dataclass
class ParentPlan:
    """One parent's part of stage 2: its trial_results row, the recorded (config, score, size) of its finished
    compression trials, and how many samples are still to run."""

    parent: dict[str, Any]
    history: list[tuple[dict, float, float]]
    remaining: int


def plan_compress_stage(spec: SweepSpec, store) -> list[ParentPlan]:
    """What stage 2 still has to do; empty when nothing (or when the spec has no compress stage)."""
    from analysis.selection import select_parents

    c = spec.compress
    if not c:
        return []
    rows = select_parents(store, spec.name, c["parents"], c["size_measure"])
    plans = []
    for _, row in rows.iterrows():
        parent = {k: (None if _is_missing(v) else v) for k, v in row.to_dict().items()}
        history = store.compress_history(spec.name, parent["trial_id"], c["size_measure"])
        plans.append(ParentPlan(parent, history, max(0, c["search"]["num_samples"] - len(history))))
    return plans


def _is_missing(v: Any) -> bool:
    import pandas as pd

    return not isinstance(v, list | dict | tuple) and bool(pd.isna(v))


def _fixed(spec: SweepSpec, parent: dict[str, Any]) -> dict[str, Any]:
    """Every CompressTrial field but the targets Optuna proposes."""
    import json

    c, s = spec.compress, spec.compress["search"]
    cfg = parent.get("config")
    cfg = json.loads(cfg) if isinstance(cfg, str) else (cfg or {})
    return {
        "parent_trial_id": parent["trial_id"],
        "parent_checkpoint": parent["checkpoint_path"],
        "parent_config": {**parent, **cfg},
        "method": s["method"],
        "scope": s["scope"],
        "finetune_epochs": s["finetune_epochs"],
        "quantize": dict(c["quantize"]),
        "size_measure": c["size_measure"],
    }


def _searcher(spec: SweepSpec, plan: ParentPlan):
    """Ray's OptunaSearch over ``targets/<group>`` whose study already holds the recorded trials as completed
    (multi-objective) Optuna trials. Recorded points outside today's bounds count as run but are not fed."""
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = spec.compress["search"]
    dists = {
        f"targets/{g}": optuna.distributions.FloatDistribution(*map(float, rng)) for g, rng in s["targets"].items()
    }
    storage = optuna.storages.InMemoryStorage()
    name = f"compress-{plan.parent['trial_id']}"
    study = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize"])
    for config, score, size in plan.history:
        targets = config.get("targets") or {}
        params = {f"targets/{g}": float(targets[g]) for g in s["targets"] if g in targets}
        if len(params) != len(dists) or any(not d.low <= params[k] <= d.high for k, d in dists.items()):
            continue
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=[score, size]))
    searcher = OptunaSearch(
        space=dists,
        metric=["score", "size"],
        mode=["max", "min"],
        storage=storage,
        study_name=name,
        seed=s["seed"] + len(plan.history),
    )
    return ConcurrencyLimiter(searcher, max_concurrent=s["max_concurrent"])


def run_compress_stage(
    spec: SweepSpec,
    plans: list[ParentPlan],
    assets: dict[str, TaskAssets],
    data: TaskDataCache,
    say: Callable[[str], None],
    prefix: str = "",
) -> StageResult:
    """Run the remaining samples of every planned parent, each as the experiment ``<prefix>compress-<parent>``.
    Ray must be initialised."""
    from ray import tune

    from trainables.compress import compress_trainable

    out = StageResult()
    todo = [p for p in plans if p.remaining > 0]
    if not todo:
        return out
    c = spec.compress
    say(
        f"compression stage: {len(plans)} parent(s) ({c['parents']}), {c['search']['num_samples']} Optuna samples"
        f" each, {sum(p.remaining for p in todo)} to run"
    )
    import ray

    refs: dict[str, Any] = {}  # one dataset in the object store per data key, shared by every parent that uses it
    for plan in todo:
        parent = plan.parent
        if not parent.get("checkpoint_path"):
            say(f"compression stage: parent {parent['trial_id']} has no checkpoint; skipped")
            continue
        fixed = _fixed(spec, parent)
        key_trial = CompressTrial(**fixed, targets={})
        p = key_trial.parent_config
        key = key_trial.data_key
        if key not in refs:
            prepared = prepare_datasets(
                spec, [(p["task"], p["embedding"], p["vocab_size"], p["emb_dim"])], assets, data
            )[key]
            refs[key] = ray.put(prepared.share_bootstrap())

        def trial_of(tune_trial, fixed=fixed) -> CompressTrial:
            return CompressTrial.from_dict({**fixed, "targets": tune_trial.config["targets"]})

        db = DatabaseCallback(
            spec.database,
            trial_of,
            lambda t, o, ck, parent=parent: compress_record(spec.name, t, o, ck, parent),
            spec.journal_path,
        )
        progress = ProgressReporter(plan.remaining, f"compress {parent['trial_id']}", trial_of, c["size_measure"], say)
        tuner = build_tuner(
            tune.with_parameters(compress_trainable, data={key: refs[key]}, fixed=fixed),
            resources=spec.resources,
            param_space={},
            storage_path=spec.storage / spec.name / "tune",
            name=f"{prefix}compress-{parent['trial_id']}",
            callbacks=[db, progress],
            search_alg=_searcher(spec, plan),
            num_samples=plan.remaining,
        )
        tuner.fit()
        out.planned += plan.remaining
        out.ran += progress.done
        out.failed += progress.failed
        out.first_error = out.first_error or progress.first_error
        out.db_write_ms += [w * 1000 for w in db.write_seconds]
        if out.stopped_early:  # Ctrl-C: no further parent starts
            break
    return out
