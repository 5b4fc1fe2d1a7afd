"""Sweep efficiency: a 16-trial SST-2 grid through Ray Tune against the same 16 trials one after another in one process.

Both sides run the same work through the same code: ``sweep.assets.prepare_for_trials`` encodes the data once, and every
trial is ``trainables.distill.train_trial`` (train with early stopping, measure sizes, save the student), with one
torch thread per trial. The sequential side is a plain loop in this process. The Ray side is ``run_sweep`` itself:
a local Ray with ``--workers`` CPUs, one CPU per trial, data shipped through the object store, actors reused, every
trial checkpointed into Tune's storage and written to DuckDB by the driver-side callback. Its wall time includes
Ray's start, data preparation and the database writes; the sequential wall time includes data preparation.

Printed: both wall times and the speed-up (target: >= 1.8x with 2 workers, i.e. at most 10 % lost to the
framework), the framework's cost per trial in CPU-seconds, how much slower a trial itself runs inside Ray, the
database write latency per trial, and whether both sides produced the same scores (CPU training is deterministic
under a seed, so they must).

GPU mode (``--gpu-fractions 1 0.25``, on a machine with a CUDA device): the same grid through Ray once per
fraction of a GPU per trial (1 = one trial at a time on the GPU, 0.25 = four share it), trials per hour each.

    export FEATHERWEIGHT_SHARED_DATA=data   # holding glue/ and bpemb/; or pass --data and --bpemb-dir
    .venv/bin/python bench/bench_sweep.py                       # ~8-10 min on 2 cores
    .venv/bin/python bench/bench_sweep.py --archs ffn rnn --max-epochs 2
    .venv/bin/python bench/bench_sweep.py --gpu-fractions 1 0.5 0.25 --cpus-per-trial 2   # GPU machine

Prints figures, asserts nothing. Run it on an otherwise idle machine: the sequential side uses one core, the Ray side
all ``--workers`` of them, so anything else running depresses the speed-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import data_path, latency_summary, load_average  # noqa: E402

from sweep.spec import THESIS_SEEDS, SweepSpec, validate  # noqa: E402


def make_spec(args: argparse.Namespace, storage: Path, name: str, cpus: float, gpus: float, workers: int) -> SweepSpec:
    raw = {
        "name": name,
        "storage": str(storage),
        "database": str(storage / "bench.duckdb"),
        "bpemb_dir": str(args.bpemb_dir),
        "tasks": {"sst2": {"data": str(args.data)}},
        "grid": {
            "archs": args.archs,
            "embeddings": args.embeddings,
            "dims": [args.dim],
            "vocab_sizes": [args.vocab_size],
            "alphas": [1.0],
            "seeds": list(THESIS_SEEDS[: args.seeds]) + list(range(args.seeds - len(THESIS_SEEDS))),
        },
        "training": {"max_epochs": args.max_epochs, "patience": args.max_epochs},
        "resources": {
            "cpus_per_trial": cpus,
            "gpus_per_trial": gpus,
            "num_cpus": workers,
            **({"num_gpus": 1} if gpus else {}),
        },
    }
    return validate(raw)


def run_sequential(spec: SweepSpec) -> dict:
    import torch

    from sweep.assets import prepare_for_trials
    from trainables.distill import train_trial

    torch.set_num_threads(1)
    trials = spec.distill_trials()
    t0, cpu0 = time.perf_counter(), time.process_time()
    prepared = prepare_for_trials(spec, trials)
    prep = time.perf_counter() - t0
    seconds, scores = {}, {}
    for i, trial in enumerate(trials, 1):
        s0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="fw-bench-") as out:
            outcome = train_trial(trial, prepared[trial.data_key], "cpu", out)
        seconds[trial.trial_id] = time.perf_counter() - s0
        scores[trial.trial_id] = outcome.score
        print(
            f"  sequential {i:2d}/{len(trials)} {trial.describe()}: {seconds[trial.trial_id]:.1f}s"
            f" score {outcome.score:.4f}  load {load_average()}",
            flush=True,
        )
    return {
        "wall": time.perf_counter() - t0,
        "prep": prep,
        "seconds": seconds,
        "scores": scores,
        "cpu": time.process_time() - cpu0,
    }


def run_ray(spec: SweepSpec) -> dict:
    import ray
    from bench_overhead import DescendantCPU

    from analysis.views import open_store
    from sweep.runner import run_sweep
    from sweep.tuner import init_ray

    children = DescendantCPU()  # CPU time of Ray's processes (all started below this one), sampled every 0.2 s
    children.start()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    init_ray(None, spec.resources)
    started = time.perf_counter() - t0
    outcome = run_sweep(spec, say=lambda line: print(f"  ray {line}", flush=True))
    wall = time.perf_counter() - t0
    driver_cpu = time.process_time() - cpu0
    children.stop()
    ray.shutdown()
    rows = open_store(spec.database, read_only=True).query(
        "SELECT trial_id, seconds, score FROM trial_results WHERE sweep = ?", [spec.name]
    )
    return {
        "wall": wall,
        "ray_start": started,
        "driver_cpu": driver_cpu,
        "ray_cpu": children.total(),
        "seconds": dict(zip(rows["trial_id"], rows["seconds"], strict=True)),
        "scores": dict(zip(rows["trial_id"], rows["score"], strict=True)),
        "db_write_ms": outcome.db_write_ms,
        "failed": outcome.failed,
        "n": len(rows),
    }


def cpu_comparison(args: argparse.Namespace, tmp: Path) -> None:
    spec = make_spec(args, tmp / "seq", "bench-seq", 1, 0, args.workers)
    n = len(spec.distill_trials())
    print(
        f"{n} trials: archs {args.archs} x embeddings {args.embeddings} x {args.seeds} seeds; d{args.dim}, "
        f"vocab {args.vocab_size}, alpha 1, {args.max_epochs} epoch(s); {args.workers} Ray workers x 1 CPU; "
        f"load {load_average()}",
        flush=True,
    )
    print("warming the encoded-data cache (untimed)", flush=True)
    from sweep.assets import prepare_for_trials

    prepare_for_trials(spec, spec.distill_trials())

    print("sequential, one process, 1 thread:", flush=True)
    seq = run_sequential(spec)
    print(f"Ray Tune, {args.workers} concurrent trials:", flush=True)
    rspec = make_spec(args, tmp / "ray", "bench-ray", 1, 0, args.workers)
    ray_ = run_ray(rspec)

    speedup = seq["wall"] / ray_["wall"]
    lost = (args.workers * ray_["wall"] - seq["wall"]) / n
    same = [tid for tid in seq["scores"] if tid in ray_["scores"]]
    identical = all(abs(seq["scores"][t] - ray_["scores"][t]) < 1e-9 for t in same) and len(same) == n
    in_trial = statistics.mean(ray_["seconds"][t] for t in same) / statistics.mean(seq["seconds"][t] for t in same)
    print()
    print(f"sequential wall   {seq['wall']:7.1f} s  (data preparation {seq['prep']:.1f} s)")
    print(
        f"Ray wall          {ray_['wall']:7.1f} s  (Ray start {ray_['ray_start']:.1f} s; {ray_['n']} rows in DuckDB, "
        f"{ray_['failed']} failed)"
    )
    print(
        f"speed-up          {speedup:7.2f}x  (ideal {args.workers}x; target >= 1.8x with 2 workers)  "
        f"efficiency {speedup / args.workers:.0%}"
    )
    total_cpu = ray_["driver_cpu"] + ray_["ray_cpu"]
    print(
        f"framework cost    {(total_cpu - seq['cpu']) / n:7.2f} CPU-s per trial  (CPU time of the driver and Ray's "
        f"processes {total_cpu:.1f} s - sequential CPU {seq['cpu']:.1f} s) / {n}; bench_overhead.py splits it"
    )
    print(
        f"  idle included   {lost:7.2f} core-s per trial  ({args.workers} x Ray wall - sequential wall) / {n}: also "
        "counts a core left idle while the other runs the last trial"
    )
    print(f"driver CPU        {ray_['driver_cpu']:7.1f} s  (Tune's driver loop, data preparation, callback, DB writes)")
    print(f"trial inside Ray  {in_trial:7.2f}x the same trial's sequential time (start of trainable to DB row)")
    print(f"DB write latency  {latency_summary(ray_['db_write_ms'])}")
    print(f"scores identical  {'yes' if identical else 'NO'} ({len(same)}/{n} trials compared)")
    print(f"load average at the end: {load_average()}")


def gpu_comparison(args: argparse.Namespace, tmp: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("error: --gpu-fractions needs a CUDA device; torch.cuda.is_available() is False here")
    print(f"GPU: {torch.cuda.get_device_name(0)}; {os.cpu_count()} CPUs; load {load_average()}", flush=True)
    rows = []
    for frac in args.gpu_fractions:
        per_gpu = max(1, int(round(1 / frac)))
        spec = make_spec(
            args,
            tmp / f"gpu{frac}",
            f"bench-gpu-{frac}",
            args.cpus_per_trial,
            frac,
            max(os.cpu_count() or 1, int(per_gpu * args.cpus_per_trial)),
        )
        if not rows:  # warm the encoded-data cache once, untimed
            from sweep.assets import prepare_for_trials

            prepare_for_trials(spec, spec.distill_trials())
        r = run_ray(spec)
        rows.append((frac, per_gpu, r))
    print()
    print("gpu/trial  trials/GPU  wall s  trials/hour  failed  DB write")
    for frac, per_gpu, r in rows:
        print(
            f"{frac:9g}  {per_gpu:10d}  {r['wall']:6.1f}  {r['n'] / r['wall'] * 3600:11.0f}  {r['failed']:6d}  "
            f"{latency_summary(r['db_write_ms'])}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="GLUE root (default $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--bpemb-dir", type=Path, default=None, help="default $FEATHERWEIGHT_SHARED_DATA/bpemb")
    ap.add_argument("--archs", nargs="+", default=["bilstm", "rnn"])
    ap.add_argument("--embeddings", nargs="+", default=["bpe", "hash"])
    ap.add_argument("--seeds", type=int, default=4, help="the thesis' seeds first")
    ap.add_argument("--dim", type=int, default=25)
    ap.add_argument("--vocab-size", type=int, default=1000, help="BPEmb vocabulary and hash importance rows")
    ap.add_argument("--max-epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="CPUs given to Ray (one trial each)")
    ap.add_argument("--gpu-fractions", type=float, nargs="+", help="GPU mode: fractions of a GPU per trial")
    ap.add_argument("--cpus-per-trial", type=float, default=1, help="GPU mode only")
    args = ap.parse_args()
    args.data = data_path(args.data, "glue", "--data")
    args.bpemb_dir = data_path(args.bpemb_dir, "bpemb", "--bpemb-dir")
    for frac in args.gpu_fractions or []:
        if not 0 < frac <= 1:
            raise SystemExit(f"error: --gpu-fractions {frac}: expected a fraction in (0, 1]")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_ADDRESS", "local")  # a Ray of its own, never one another program started here
    with tempfile.TemporaryDirectory(prefix="fw-bench-sweep-") as tmp:
        if args.gpu_fractions:
            gpu_comparison(args, Path(tmp))
        else:
            cpu_comparison(args, Path(tmp))


if __name__ == "__main__":
    main()
