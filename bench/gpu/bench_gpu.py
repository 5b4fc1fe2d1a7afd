"""GPU benchmark: how well one trial uses a GPU, and how many trials per hour packing several per GPU gives.

Three parts, each in a child process with its own time limit, inside a total budget (``--budget-s``), results
printed as they come:

(a) single trial: BiLSTM hash d25 (K=5000), one SST-2 epoch on the device against one CPU thread of the same
    machine (samples/s, ratio; target >= 4x), then a torch.profiler table of a few training steps (top-10 ops by
    device time and by CPU time) and the count of host<->device synchronisations per step;
(b) packing: the same student through a real sweep (``sweep.runner.run_sweep`` on a generated spec, local Ray,
    results in DuckDB) at ``gpus_per_trial`` 1, 0.25, 0.125 and 1/12 on one GPU: trials, trials/hour from the
    trials' start and finish times in the database, GPU utilisation and memory sampled with nvidia-smi, and the
    ratio against ``gpus_per_trial`` 1 (target >= 5x at the best fraction);
(c) the best fraction again under CUDA MPS (``nvidia-cuda-mps-control -d``, stopped afterwards), when the machine
    has it and permits it; otherwise it says why not.

    python bench/gpu/bench_gpu.py --data DIR                      # DIR: SST-2 TSVs, the GLUE root, or their parent
    python bench/gpu/bench_gpu.py --data DIR --device cpu --quick # tiny sizes on CPU: tests the plumbing

``--device cpu`` runs the same parts on the CPU (no nvidia-smi, no MPS; "gpus_per_trial" f becomes round(1/f)
concurrent one-CPU trials) so the script can be tested without a GPU. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the parts, in this folder (first on sys.path when the script runs)
from gpu_common import RESULT, find_sst2, load_average, say, subset_sst2  # noqa: E402
from gpu_packing import (  # noqa: E402
    HEADER,
    GpuSampler,
    fmt_row,
    part_sweep,
    start_mps,
    stop_mps,
    sweep_row,
)
from gpu_profile import part_profile  # noqa: E402

DEFAULT_FRACTIONS = [1.0, 0.25, 0.125, 0.0833]  # 0.0833: 12 per GPU (Ray counts resources in 1/10,000ths)


def run_child(part: str, cfg: dict, timeout: float, env: dict | None = None) -> dict | None:
    """Run ``part`` in a child process (own process group), echo its output, return its result (None on failure or
    timeout: the group is stopped, and a Ray it started is stopped through its session file)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", part, "--part-config", json.dumps(cfg)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    result: list[dict] = []

    def pump() -> None:
        for line in proc.stdout:
            if line.startswith(RESULT):
                result.append(json.loads(line[len(RESULT) :]))
            else:
                print(line, end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        say(f"  [{part}: time limit of {timeout:.0f}s reached; stopping it]")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue
    reader.join(5)
    if part == "sweep":  # a Ray left by a killed driver (its pids are recorded in the sweep's storage)
        from sweep.tuner import stop_stale_ray

        stop_stale_ray(Path(cfg["storage"]) / cfg["name"] / "ray_session.json", say=lambda m: say(f"  {m}"))
    if proc.returncode not in (0, None) and not result:
        say(f"  [{part}: exit status {proc.returncode}]")
    return result[0] if result else None


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.time() + seconds

    def left(self) -> float:
        return self.deadline - time.time()

    def slot(self, parts_left: int, cap: float | None = None, reserve: float = 15.0) -> float:
        share = (self.left() - reserve) / max(1, parts_left)
        return max(0.0, min(share, cap) if cap else share)


def parent(args: argparse.Namespace) -> None:
    budget = Budget(args.budget_s)
    device = args.device
    quick = args.quick
    fractions = args.fractions or ([1.0, 0.5] if device == "cpu" else DEFAULT_FRACTIONS)
    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-gpu-"))
    src = find_sst2(Path(args.data))
    train_n = args.train_samples if args.train_samples else (400 if quick else None)
    sst2 = subset_sst2(src, tmp / "SST-2", train_n, 200 if quick else None)
    cache = tmp / "cache"
    import torch

    say(
        f"featherweight GPU benchmark: device {device}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"budget {args.budget_s:.0f}s, load {load_average()}"
    )
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("error: --device cuda but torch.cuda.is_available() is False (use --device cpu to test)")
        say(
            f"GPU: {torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
        )
    have_smi = device == "cuda" and shutil.which("nvidia-smi") is not None
    if device == "cpu":
        say("CPU mode: nvidia-smi sampling and MPS are skipped; gpus_per_trial f runs as round(1/f) one-CPU trials")
    elif not have_smi:
        say("nvidia-smi not found: no utilisation or memory figures")
    summary: dict = {}

    # (a) ------------------------------------------------------------------------------------------------------
    say("\n(a) single trial: BiLSTM hash d25, one SST-2 epoch, device vs one CPU thread")
    parts_left = 2 + len(fractions)
    prof = run_child(
        "profile",
        {
            "device": device,
            "sst2": str(sst2),
            "cache_dir": str(cache),
            "cpu_samples": 300 if quick else args.cpu_samples,
            "profile_steps": 4 if quick else 20,
        },
        budget.slot(parts_left, cap=0.3 * args.budget_s),
    )
    summary["profile"] = prof
    parts_left -= 1

    # (b) ------------------------------------------------------------------------------------------------------
    say(
        f"\n(b) packing through `featherweight sweep run` (run_sweep): gpus_per_trial {', '.join(f'{f:.4g}' for f in fractions)}"
    )
    rows: list[dict] = []
    base = None
    for i, frac in enumerate(fractions):
        k = max(1, round(1 / frac))
        n = args.trials or max(2 * k, 2 if quick else 4)
        cfg = {
            "device": device,
            "fraction": frac,
            "trials": n,
            "max_epochs": 1,
            "sst2": str(sst2),
            "cache_dir": str(cache),
            "name": f"gpu-{i}-{k}",
            "storage": str(tmp / "runs"),
            "database": str(tmp / f"bench-{i}.duckdb"),
        }
        slot = budget.slot(parts_left)
        if slot < 20:
            say(f"  gpus_per_trial {frac:.4g}: skipped, {budget.left():.0f}s of the budget left")
            parts_left -= 1
            continue
        say(f"  gpus_per_trial {frac:.4g} ({k} per GPU): {n} trials, time limit {slot:.0f}s")
        sampler = GpuSampler() if have_smi else None
        try:
            child = run_child("sweep", cfg, slot)
        finally:
            if sampler:
                sampler.stop()
        row = sweep_row(f"{frac:.4g}", frac, cfg, sampler, child, base, k)
        if frac == 1.0 and row.get("per_hour"):
            base = row
        rows.append(row)
        parts_left -= 1
        say(HEADER)
        say(fmt_row(row))
    summary["packing"] = rows

    # (c) ------------------------------------------------------------------------------------------------------
    say("\n(c) the best fraction under CUDA MPS")
    best = max((r for r in rows if r.get("per_hour")), key=lambda r: r["per_hour"], default=None)
    if device != "cuda":
        say("  skipped: CPU mode (MPS is a CUDA feature)")
    elif args.no_mps:
        say("  skipped: --no-mps")
    elif best is None:
        say("  skipped: no fraction finished a trial")
    elif budget.slot(1) < 30:
        say(f"  skipped: {budget.left():.0f}s of the budget left")
    else:
        env = dict(os.environ)
        why = start_mps(env, tmp)
        if why:
            say(f"  MPS unavailable: {why}")
            summary["mps"] = why
        else:
            say("  MPS control daemon started")
            frac = best["fraction"]
            k = best["k"]
            cfg = {
                "device": device,
                "fraction": frac,
                "trials": best["planned"],
                "max_epochs": 1,
                "sst2": str(sst2),
                "cache_dir": str(cache),
                "name": f"gpu-mps-{k}",
                "storage": str(tmp / "runs"),
                "database": str(tmp / "bench-mps.duckdb"),
            }
            sampler = GpuSampler() if have_smi else None
            try:
                child = run_child("sweep", cfg, budget.slot(1), env=env)
            finally:
                if sampler:
                    sampler.stop()
                stop_mps(env)
                say("  MPS control daemon stopped")
            row = sweep_row(f"{frac:.4g} + MPS", frac, cfg, sampler, child, base, k)
            rows.append(row)
            say(HEADER)
            say(fmt_row(row))

    # summary --------------------------------------------------------------------------------------------------
    say("\nsummary")
    if prof:
        if "ratio" in prof:
            say(
                f"  single trial: {prof['device_sps']:,.0f} samples/s on {prof['device_name']} vs {prof['cpu_sps']:,.0f} "
                f"on one CPU thread = {prof['ratio']:.2f}x (target >= 4x)"
            )
        else:
            say(f"  single trial: {prof['cpu_sps']:,.0f} samples/s on one CPU thread (no device in CPU mode)")
    else:
        say("  single trial: no result (see above)")
    if rows:
        say("  " + HEADER)
        for r in rows:
            say("  " + fmt_row(r))
        best = max((r for r in rows if r.get("ratio")), key=lambda r: r["ratio"], default=None)
        if best:
            say(
                f"  best: gpus_per_trial {best['label']}: {best['ratio']:.2f}x the trials/hour of gpus_per_trial 1 "
                "(target >= 5x)"
            )
    say(f"  total {args.budget_s - budget.left():.0f}s of a {args.budget_s:.0f}s budget")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, default=str))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        say(f"  kept {tmp}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="SST-2 TSVs (train.tsv, dev.tsv), the GLUE root, or a directory holding glue/")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (400 train, 200 dev), for testing")
    ap.add_argument("--budget-s", type=float, default=540.0, help="total time for all parts (default 540)")
    ap.add_argument("--fractions", type=float, nargs="+", help="gpus_per_trial values (default 1 0.25 0.125 1/12)")
    ap.add_argument("--trials", type=int, help="trials per fraction (default max(4, 2 x trials per GPU))")
    ap.add_argument("--train-samples", type=int, help="SST-2 train subset (default all 67,349; quick 400)")
    ap.add_argument("--cpu-samples", type=int, default=6000, help="examples for the one-CPU-thread epoch")
    ap.add_argument("--no-mps", action="store_true", help="skip part (c)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, runs)")
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--part-config", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.part:
        cfg = json.loads(args.part_config)
        fn = {"profile": part_profile, "sweep": part_sweep}[args.part]
        print(RESULT + json.dumps(fn(cfg), default=str), flush=True)
        return
    if not args.data:
        raise SystemExit("error: pass --data DIR (SST-2's train.tsv and dev.tsv, the GLUE root, or its parent)")
    for f in args.fractions or []:
        if not 0 < f <= 1:
            raise SystemExit(f"error: --fractions {f}: expected a fraction in (0, 1]")
    if args.fractions:  # Ray counts resources in 1/10,000ths: 1/12 -> 0.0833
        args.fractions = [max(1e-4, int(f * 1e4) / 1e4) for f in args.fractions]
    parent(args)


if __name__ == "__main__":
    main()
