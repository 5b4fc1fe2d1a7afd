"""Parts (b) and (c) of the GPU benchmark: the sweep a packing run starts (in a child process), the trials/hour read
back from its database, nvidia-smi sampling, the table rows, and the CUDA MPS daemon's start and stop."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from gpu_common import ARCH, DIM, EMB, VOCAB, say


def sweep_spec(cfg: dict) -> dict:
    frac, device = cfg["fraction"], cfg["device"]
    k = max(1, round(1 / frac))
    resources = {
        "cpus_per_trial": 1,
        "num_cpus": max(os.cpu_count() or 1, k) if device == "cuda" else k,
        "pending_timeout_s": 120,
    }
    if device == "cuda":
        resources.update(gpus_per_trial=frac, num_gpus=1)
    return {
        "name": cfg["name"],
        "storage": cfg["storage"],
        "database": cfg["database"],
        "cache_dir": cfg["cache_dir"],
        "tasks": {"sst2": {"data": cfg["sst2"]}},
        "grid": {
            "archs": [ARCH],
            "embeddings": [EMB],
            "dims": [DIM],
            "vocab_sizes": [VOCAB],
            "alphas": [1.0],
            "seeds": list(range(cfg["trials"])),
        },
        "training": {"max_epochs": cfg["max_epochs"], "patience": cfg["max_epochs"]},
        "resources": resources,
    }


def part_sweep(cfg: dict) -> dict:
    import ray

    from sweep.runner import run_sweep
    from sweep.spec import validate

    os.environ.setdefault("RAY_ADDRESS", "local")  # a Ray of its own, even where another cluster runs
    spec = validate(sweep_spec(cfg))
    t0 = time.time()
    outcome = run_sweep(spec, say=lambda line: say(f"  {line}"))
    ray.shutdown()
    return {"wall": time.time() - t0, "failed": outcome.failed}


def read_trials(database: str, name: str) -> dict | None:
    """Finished trials of sweep ``name``: count, span from the first start to the last finish, per-trial seconds."""
    from analysis.views import open_store

    if not Path(database).is_file():
        return None
    rows = open_store(database, read_only=True).query(
        "SELECT count(*) AS n, epoch(min(started_at)) AS t0, epoch(max(finished_at)) AS t1, "
        "median(seconds) AS med, string_agg(DISTINCT device, ',') AS devices "
        "FROM trial_results WHERE sweep = ?",
        [name],
    )
    r = rows.iloc[0]
    if not r["n"]:
        return {"n": 0}
    return {
        "n": int(r["n"]),
        "t0": float(r["t0"]),
        "t1": float(r["t1"]),
        "median_s": float(r["med"]),
        "devices": r["devices"],
    }


class GpuSampler:
    """nvidia-smi's utilisation and memory of GPU 0 every 0.5 s, in a background process."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (unix time, util %, memory MiB)
        self.proc = subprocess.Popen(
            [
                "nvidia-smi",
                "-i",
                "0",
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                "-lms",
                "500",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                util, mem = (float(x) for x in line.strip().split(","))
            except ValueError:
                continue
            self.samples.append((time.time(), util, mem))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def window(self, t0: float, t1: float) -> tuple[float, float] | None:
        s = [x for x in self.samples if t0 <= x[0] <= t1]
        if not s:
            return None
        return sum(x[1] for x in s) / len(s), max(x[2] for x in s)


def sweep_row(
    label: str, frac: float, cfg: dict, sampler: GpuSampler | None, child: dict | None, base: dict | None, k: int
) -> dict:
    trials = read_trials(cfg["database"], cfg["name"]) or {"n": 0}
    row = {
        "label": label,
        "fraction": frac,
        "k": k,
        "n": trials["n"],
        "planned": cfg["trials"],
        "wall": child["wall"] if child else None,
        "failed": child["failed"] if child else None,
    }
    if trials["n"]:
        span = max(1e-6, trials["t1"] - trials["t0"])
        row.update(
            span=span, per_hour=trials["n"] / span * 3600, median_s=trials["median_s"], devices=trials["devices"]
        )
        if sampler is not None:
            w = sampler.window(trials["t0"], trials["t1"])
            if w:
                row.update(util=w[0], mem=w[1])
    if base and base.get("per_hour") and row.get("per_hour"):
        row["ratio"] = row["per_hour"] / base["per_hour"]
    return row


def fmt_row(r: dict) -> str:
    def f(key: str, spec: str, default: str = "-") -> str:
        v = r.get(key)
        return default if v is None else format(v, spec)

    return (
        f"{r['label']:<16}{r['k']:>4}{r['n']:>4}/{r['planned']:<4}{f('per_hour', ',.0f'):>10}{f('ratio', '.2f'):>7}"
        f"{f('median_s', '.1f'):>9}{f('util', '.0f'):>6}{f('mem', ',.0f'):>9}{f('wall', '.0f'):>7}"
        f"  {r.get('devices') or ''}"
    )


HEADER = f"{'gpus_per_trial':<16}{'K':>4}{'done':>9}{'trials/h':>10}{'ratio':>7}{'trial s':>9}{'util%':>6}{'mem MiB':>9}{'wall':>7}"


def start_mps(env: dict, tmp: Path) -> str | None:
    """Start the MPS control daemon with its pipe and log directories under ``tmp`` (set in ``env``). Returns why not,
    or None when it runs and a CUDA client works under it."""
    exe = shutil.which("nvidia-cuda-mps-control")
    if not exe:
        return "nvidia-cuda-mps-control is not on PATH"
    for key, sub in (("CUDA_MPS_PIPE_DIRECTORY", "mps-pipe"), ("CUDA_MPS_LOG_DIRECTORY", "mps-log")):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[key] = str(tmp / sub)
    r = subprocess.run([exe, "-d"], env=env, capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        return f"nvidia-cuda-mps-control -d failed ({r.returncode}): {(r.stderr or r.stdout).strip()[:300]}"
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; x = torch.ones(8, device='cuda'); print(float(x.sum()))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    if probe.returncode != 0 or "8.0" not in probe.stdout:
        stop_mps(env)
        return f"a CUDA client under MPS failed: {(probe.stderr or probe.stdout).strip()[-300:]}"
    return None


def stop_mps(env: dict) -> None:
    exe = shutil.which("nvidia-cuda-mps-control")
    if exe:
        try:
            subprocess.run([exe], input="quit\n", env=env, capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            say("  MPS: quit did not answer within 20 s")
