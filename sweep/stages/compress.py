"""The compression stage: for each chosen parent student, Optuna (multi-objective: score up, size down) searches per-module-group
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

from db.store import TrialRecord
from sweep.assets import prepare_datasets
from sweep.records import common_fields
from sweep.spec import SweepSpec
from sweep.stages.base import Stage, StagePlan, StageResult, StageRun, TuneRun
from trainables.compress import CompressTrial
from trainables.trial import TrialOutcome


@dataclass
class ParentPlan:
    """One parent's part of the compression stage: its trial_results row, the recorded (config, score, size) of its finished
    compression trials, and how many samples are still to run."""

    parent: dict[str, Any]
    history: list[tuple[dict, float, float]]
    remaining: int


def plan_compress_stage(spec: SweepSpec, store) -> list[ParentPlan]:
    """What the compression stage still has to do; empty when nothing (or when the spec has no compress stage)."""
    # deferred: pandas, only when the stage is planned
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


class CompressStage(Stage):
    trial = CompressTrial
    name = CompressTrial.stage
    section = "compress"
    label = "compression"
    title = "compress"
    reads_earlier_stages = True  # its parents are the distillation stage's rows

    def plan(self, spec: SweepSpec, store, assets=None) -> StagePlan:
        plans = plan_compress_stage(spec, store) if store is not None else []
        remaining = sum(p.remaining for p in plans)
        return StagePlan(plans, remaining=remaining, total=len(plans) * spec.compress["search"]["num_samples"])

    def trainable(self) -> Callable:
        from trainables.compress import compress_trainable  # loads torch: only where trials run

        return compress_trainable

    def record(
        self,
        sweep: str,
        trial: CompressTrial,
        outcome: TrialOutcome,
        checkpoint_dir: str | None,
        about: dict[str, Any] | None = None,
    ) -> TrialRecord:
        """``about`` is the parent's trial_results row (its resolved temperature and pooling are copied)."""
        p, parent = trial.parent_config, about
        return TrialRecord(
            **common_fields(sweep, trial, outcome, checkpoint_dir),
            parent_trial_id=trial.parent_trial_id,
            task=p["task"],
            arch=p["arch"],
            embedding=p["embedding"],
            emb_dim=int(p["emb_dim"]),
            vocab_size=p["vocab_size"],
            alpha=p["alpha"],
            temperature=parent.get("temperature"),
            bootstrap=bool(p["bootstrap"]),
            seed=int(p["seed"]),
            pooling=parent.get("pooling"),
            pruning=outcome.pruning,
            quantization=outcome.quantization,
            config=trial.to_dict(),
        )

    def run(self, run: StageRun, plan: StagePlan) -> StageResult:
        """Run the remaining samples of every planned parent, each as the experiment ``<prefix>compress-<parent>``.
        Ray must be initialised."""
        import ray
        from ray import tune

        spec, plans, say = run.spec, plan.todo, run.say
        out = StageResult()
        todo = [p for p in plans if p.remaining > 0]
        if not todo:
            return out
        c = spec.compress
        say(
            f"compression stage: {len(plans)} parent(s) ({c['parents']}), {c['search']['num_samples']} Optuna"
            f" samples each, {sum(p.remaining for p in todo)} to run"
        )
        refs: dict[str, Any] = {}  # one dataset in the object store per data key, shared by every parent using it
        for parent_plan in todo:
            parent = parent_plan.parent
            if not parent.get("checkpoint_path"):
                say(f"compression stage: parent {parent['trial_id']} has no checkpoint; skipped")
                continue
            fixed = _fixed(spec, parent)
            key_trial = CompressTrial(**fixed, targets={})
            p = key_trial.parent_config
            key = key_trial.data_key
            if key not in refs:
                prepared = prepare_datasets(
                    spec, [(p["task"], p["embedding"], p["vocab_size"], p["emb_dim"])], run.assets, run.data
                )[key]
                refs[key] = ray.put(prepared.share_bootstrap())

            def trial_of(tune_trial, fixed=fixed) -> CompressTrial:
                return CompressTrial.from_dict({**fixed, "targets": tune_trial.config["targets"]})

            remaining = parent_plan.remaining
            title = f"{self.title} {parent['trial_id']}"
            tune_run = TuneRun(self, run, trial_of, remaining, c["size_measure"], about=parent, title=title)
            tune_run.fit(
                tune.with_parameters(self.trainable(), data={key: refs[key]}, fixed=fixed),
                f"compress-{parent['trial_id']}",
                param_space={},
                search_alg=_searcher(spec, parent_plan),
                num_samples=remaining,
            )
            out.add(tune_run.result(remaining))
            if out.stopped_early:  # Ctrl-C: no further parent starts
                break
        return out
