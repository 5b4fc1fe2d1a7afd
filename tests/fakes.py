"""Synthetic TrialRecords for the database and analysis tests (no training, no Ray)."""

from __future__ import annotations

import random
import time

from db.store import ExperimentStore, TrialRecord

THESIS_SEEDS = (3201976, 8291959, 5111918, 2211933)


def make_record(
    sweep: str = "s",
    trial_id: str = "t0",
    macro_f1: float | None = None,
    test: dict | None = None,
    class_metrics: list[dict] | None = None,
    **overrides,
) -> TrialRecord:
    """A finished sst2 distill trial; ``overrides`` replace TrialRecord fields. ``macro_f1`` and ``test`` (``{"score":
    ..., "accuracy": ..., "f1": ..., "macro_f1": ...}``, stored as ``test_<key>``) are added to the metrics;
    ``class_metrics`` rows as ``TrialRecord.class_metrics`` (``db.rows.class_metric_rows`` builds them)."""
    now = time.time()
    fields = dict(
        sweep=sweep,
        trial_id=trial_id,
        stage="distill",
        task="sst2",
        arch="bilstm",
        embedding="bpe",
        emb_dim=25,
        vocab_size=1000,
        alpha=0.5,
        temperature=None,
        bootstrap=True,
        seed=THESIS_SEEDS[0],
        pooling="last",
        config={"teacher": "teacher-small", "lr": 1e-3},
        metrics={"score": 0.85, "accuracy": 0.85, "best_epoch": 3, "epochs": 5},
        sizes={
            "params": 400_000,
            "params_embedding": 25_000,
            "params_encoder": 300_000,
            "params_classifier": 75_000,
            "nonzero_params": 400_000,
            "disk_bytes": 1_600_000,
            "gzip_bytes": 1_480_000,
        },
        started_at=now - 10,
        finished_at=now,
        seconds=10.0,
        checkpoint_path=f"/tmp/ckpt/{trial_id}.pt",
        history=[
            {
                "epoch": e,
                "train_loss": 1.0 / e,
                "score": 0.8 + e / 100,
                "seconds": 2.0,
                "samples_per_second": 500.0,
                "metrics": {"accuracy": 0.8 + e / 100},
            }
            for e in range(1, 6)
        ],
    )
    fields.update(overrides)
    metrics = dict(fields["metrics"])
    if macro_f1 is not None:
        metrics["macro_f1"] = macro_f1
    for key, value in (test or {}).items():
        metrics[f"test_{key}"] = value
    fields["metrics"] = metrics
    if class_metrics is not None:
        fields["class_metrics"] = class_metrics
    return TrialRecord(**fields)


def fill_sweep(store: ExperimentStore, sweep: str = "demo", tasks=("sst2", "qqp"), seed: int = 0, n_seeds: int = 3):
    """A small but complete sweep: distill grid x seeds, a compress stage for two parents, a teacher, one error."""
    rng = random.Random(seed)
    store.start_sweep(sweep, {"tasks": list(tasks)}, "test", f"/tmp/{sweep}")
    n = 0
    for task in tasks:
        store.record_teacher(
            sweep, task, "teacher-small", 0.91, 0.91, 0.88 if task == "qqp" else None, 4_000_000, 16_000_000, 14_900_000
        )
        parents = []
        for arch in ("bilstm", "rnn", "ffn"):
            for emb, dim in (("hash", 25), ("bpe", 25), ("bpe", 100)):
                params = {"bilstm": 300_000, "rnn": 120_000, "ffn": 20_000}[arch] + (
                    dim * 5000 if emb == "bpe" else dim * 500
                )
                for alpha, boot in ((1.0, False), (0.5, True), (0.0, True)):
                    for s in THESIS_SEEDS[:n_seeds]:
                        acc = 0.7 + 0.1 * (arch != "ffn") + 0.03 * boot + 0.02 * (emb == "bpe") + rng.gauss(0, 0.01)
                        metrics = {"score": acc, "accuracy": acc, "best_epoch": 2, "epochs": 4}
                        if task == "qqp":
                            metrics["f1"] = acc - 0.1 + rng.gauss(0, 0.01)
                        rec = make_record(
                            sweep,
                            f"{task}-{n:04d}",
                            task=task,
                            arch=arch,
                            embedding=emb,
                            emb_dim=dim,
                            alpha=alpha,
                            bootstrap=boot,
                            seed=s,
                            metrics=metrics,
                            temperature=3.0 if arch == "ffn" else None,
                            sizes={
                                "params": params,
                                "nonzero_params": params,
                                "disk_bytes": params * 4 + 3000,
                                "gzip_bytes": int(params * 3.7) + 2000,
                            },
                        )
                        store.record_trial(rec)
                        if alpha == 0.5 and s == THESIS_SEEDS[0] and emb == "bpe" and dim == 25:
                            parents.append(rec)
                        n += 1
        for parent in parents[:2]:
            for p, q in (
                ("magnitude global 0.5", None),
                (None, "int8 dynamic"),
                ("magnitude global 0.5", "int8 dynamic"),
            ):
                shrink = (0.7 if p else 1.0) * (0.27 if q else 1.0)
                params = parent.sizes["params"]
                metrics = {
                    k: v - (0.01 if p else 0.0) - (0.002 if q else 0.0)
                    for k, v in parent.metrics.items()
                    if k in ("score", "accuracy", "f1")
                }
                rec = make_record(
                    sweep,
                    f"{task}-{n:04d}",
                    stage="compress",
                    parent_trial_id=parent.trial_id,
                    task=task,
                    arch=parent.arch,
                    embedding=parent.embedding,
                    emb_dim=parent.emb_dim,
                    alpha=parent.alpha,
                    temperature=parent.temperature,
                    bootstrap=True,
                    seed=parent.seed,
                    pruning=p,
                    quantization=q,
                    metrics=metrics,
                    history=[],
                    sizes={
                        "params": params,
                        "nonzero_params": int(params * (0.5 if p else 1.0)),
                        "disk_bytes": parent.sizes["disk_bytes"] * (0.27 if q else 1.0),
                        "gzip_bytes": int(parent.sizes["gzip_bytes"] * shrink),
                    },
                )
                store.record_trial(rec)
                n += 1
    store.record_trial(
        make_record(
            sweep,
            "broken-0001",
            status="error",
            error="RuntimeError: NaN loss\ntraceback...",
            metrics={},
            sizes={},
            history=[],
        )
    )
    store.finish_sweep(sweep, "finished")
    return n + 1
