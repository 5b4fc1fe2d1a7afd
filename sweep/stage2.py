"""Stage 2: for each chosen parent student, Optuna (multi-objective: score up, compressed size down) searches
per-module-group sparsity targets through Ray Tune; each trial prunes and quantizes the parent and is recorded with
its ``parent_trial_id``. Resuming feeds Optuna the already recorded trials and runs only the missing samples.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from db.store import ExperimentStore, TrialRecord, flatten_sizes
from sweep.callback import DatabaseCallback, Progress, decode_json_field
from sweep.spec import SweepSpec, trial_id


def pareto_front(rows: pd.DataFrame, score: str = "score", size: str = "gzip_bytes") -> pd.DataFrame:
    """Rows not dominated by any other row (higher-or-equal score at lower-or-equal size, one strictly better)."""
    rows = rows.dropna(subset=[score, size]).sort_values([size, score], ascending=[True, False])
    keep, best = [], float("-inf")
    for idx, r in rows.iterrows():
        if r[score] > best:
            keep.append(idx)
            best = r[score]
    return rows.loc[keep]


def select_parents(store: ExperimentStore, spec: SweepSpec) -> pd.DataFrame:
    """Finished distillation trials of this sweep chosen for compression: per task, the skyline or the top k by
    score, or the named trial ids."""
    c = spec.compress
    rows = store.query(
        "SELECT * FROM trial_results WHERE sweep = ? AND stage = 'distill' AND status = 'finished'", [spec.name]
    )
    if rows.empty:
        return rows
    p = c["parents"]
    if isinstance(p, dict) and "trials" in p:
        missing = set(p["trials"]) - set(rows["trial_id"])
        if missing:
            raise ValueError(f"compress.parents.trials: no finished distillation trial {sorted(missing)[0]!r}")
        return rows[rows["trial_id"].isin(p["trials"])]
    parts = []
    for _, group in rows.groupby("task"):
        if isinstance(p, dict):
            parts.append(group.sort_values("score", ascending=False).head(p["top_k"]))
        else:
            parts.append(pareto_front(group, "score", c["size_measure"]))
    return pd.concat(parts)


def compress_record(sweep: str, parent: dict) -> Callable[[dict, dict, str | None], TrialRecord]:
    def to_record(cfg: dict, result: dict, checkpoint: str | None) -> TrialRecord:
        s = decode_json_field(result, "fw_summary", {})
        finished = result.get("fw_status") == "finished"
        sizes = s.get("sizes", {})
        started = result.get("fw_started_at")
        import time

        now = time.time()
        return TrialRecord(
            sweep=sweep,
            trial_id=cfg["trial_id"],
            stage="compress",
            parent_trial_id=parent["trial_id"],
            task=parent["task"],
            arch=parent["arch"],
            embedding=parent["embedding"],
            emb_dim=int(parent["emb_dim"]),
            vocab_size=None if pd.isna(parent.get("vocab_size")) else int(parent["vocab_size"]),
            alpha=parent.get("alpha"),
            temperature=parent.get("temperature"),
            bootstrap=bool(parent["bootstrap"]),
            seed=int(parent["seed"]),
            pooling=parent.get("pooling"),
            pruning=s.get("pruning"),
            quantization=s.get("quantization"),
            status="finished" if finished else "error",
            error=None if finished else result.get("fw_error", "unknown error"),
            config=cfg,
            metrics=s.get("metrics", {}),
            sizes=flatten_sizes(sizes) if finished else {},
            started_at=started,
            finished_at=now,
            seconds=(now - started) if started else None,
            checkpoint_path=str(Path(checkpoint) / "compressed.pt") if checkpoint and finished else None,
        )

    return to_record


def run_compression_stage(
    spec: SweepSpec, store: ExperimentStore, address: str | None, say: Callable[[str], None], verbose: bool
) -> tuple[int, int, list[float]]:
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from sweep.runner import init_ray, materialize_assets, prepare_all
    from trainables.compress import compress_trainable
    from trainables.distill import data_key

    c = spec.compress
    s = c["search"]
    parents = select_parents(store, spec)
    if parents.empty:
        say("compression stage: no finished distillation trials to compress")
        return 0, 0, []
    say(f"compression stage: {len(parents)} parent(s) ({c['parents']}), {s['num_samples']} Optuna samples each")
    ran = failed = 0
    writes: list[float] = []
    assets = materialize_assets(spec, say)
    for _, prow in parents.iterrows():
        parent = {
            k: (None if (not isinstance(v, list | dict) and pd.isna(v)) else v) for k, v in prow.to_dict().items()
        }
        parent_cfg = (
            json.loads(parent["config"]) if isinstance(parent.get("config"), str) else parent.get("config") or {}
        )
        if not parent_cfg:
            parent_cfg = {k: parent[k] for k in ("task", "arch", "embedding", "emb_dim", "vocab_size", "alpha",
                                                  "bootstrap", "seed", "pooling")}  # fmt: skip
        previous = store.query(
            "SELECT config, score, size FROM (SELECT trial_id, score, " + c["size_measure"] + " AS size FROM"
            " trial_results WHERE sweep = ? AND stage = 'compress' AND parent_trial_id = ? AND status = 'finished')"
            " r JOIN trials USING (trial_id)",
            [spec.name, parent["trial_id"]],
        ) if _has_trials_config(store) else pd.DataFrame()  # fmt: skip
        remaining = s["num_samples"] - len(previous)
        if remaining <= 0:
            continue
        fixed = {
            "stage": "compress",
            "parent_trial_id": parent["trial_id"],
            "parent_checkpoint": parent["checkpoint_path"],
            "parent_config": {k: parent_cfg.get(k) for k in ("task", "arch", "embedding", "emb_dim", "vocab_size",
                                                               "alpha", "bootstrap", "seed", "temperature")},
            "method": s["method"],
            "scope": s["scope"],
            "finetune_epochs": s["finetune_epochs"],
            # importance_bits at its default (float16) is left out so compression trial ids stay what they were
            "quantize": {k: v for k, v in c["quantize"].items() if not (k == "importance_bits" and v == 16)},
            "size_measure": c["size_measure"],
        }  # fmt: skip
        prepared = prepare_all(spec, [parent_cfg], assets)
        key = data_key(parent_cfg["task"], parent_cfg["embedding"], parent_cfg["vocab_size"], parent_cfg["emb_dim"])
        groups = sorted(s["targets"])
        space = {"targets": {g: tune.uniform(*s["targets"][g]) for g in groups}}
        points, rewards = [], []
        for _, r in previous.iterrows():
            cfg = json.loads(r["config"]) if isinstance(r["config"], str) else r["config"]
            points.append({"targets": {g: float(cfg["targets"][g]) for g in groups}})
            rewards.append([float(r["score"]), float(r["size"])])
        searcher = OptunaSearch(
            metric=["score", "size"], mode=["max", "min"], seed=s["seed"] + len(previous),
            points_to_evaluate=points or None, evaluated_rewards=rewards or None,
        )  # fmt: skip
        searcher = ConcurrencyLimiter(searcher, max_concurrent=s["max_concurrent"])

        def config_of(trial, fixed=fixed) -> dict:
            targets = {g: round(float(v), 6) for g, v in trial.config["targets"].items()}
            cfg = {**fixed, "targets": targets}
            cfg["trial_id"] = trial_id("c", cfg)
            return cfg

        init_ray(address, spec.resources, verbose)
        progress = Progress(remaining, f"compress {parent['trial_id']}", say)
        cb = DatabaseCallback(spec.database, progress, compress_record(spec.name, parent), c["size_measure"], config_of)
        trainable = tune.with_parameters(compress_trainable, prepared=prepared[key], fixed=fixed)
        resources = spec.resources
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": resources["cpus_per_trial"], "gpu": resources["gpus_per_trial"]}),
            param_space={**space, "cpus": resources["cpus_per_trial"], "gpus": resources["gpus_per_trial"]},
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining, reuse_actors=True),
            run_config=tune.RunConfig(
                name=f"compress-{parent['trial_id']}",
                storage_path=str(spec.storage / spec.name / "tune"),
                verbose=0,
                callbacks=[cb],
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            ),
        )
        tuner.fit()
        ran += progress.done
        failed += progress.failed
        writes += [w * 1000 for w in cb.write_seconds]
    return ran, failed, writes


def _has_trials_config(store: ExperimentStore) -> bool:
    try:
        store.query("SELECT config FROM trials LIMIT 0")
        return True
    except Exception:
        return False


def targets_from(cfg: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in (cfg.get("targets") or {}).items()}
