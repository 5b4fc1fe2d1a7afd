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

RESULT = "BENCH_RESULT "
DEFAULT_FRACTIONS = [1.0, 0.25, 0.125, 0.0833]  # 0.0833: 12 per GPU (Ray counts resources in 1/10,000ths)
ARCH, EMB, DIM, VOCAB = "bilstm", "hash", 25, 5000


def say(line: str = "") -> None:
    print(line, flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------------------- data


def find_sst2(data: Path) -> Path:
    """The directory holding SST-2's train.tsv and dev.tsv: ``data`` itself, ``data/SST-2`` or ``data/glue/SST-2``."""
    for d in (data, data / "SST-2", data / "glue" / "SST-2"):
        if (d / "train.tsv").is_file() and (d / "dev.tsv").is_file():
            return d
    raise SystemExit(f"error: no SST-2 train.tsv and dev.tsv in {data}, {data}/SST-2 or {data}/glue/SST-2")


def subset_sst2(src: Path, dst: Path, train_n: int | None, dev_n: int | None) -> Path:
    """A copy of SST-2 with at most ``train_n`` / ``dev_n`` rows (a fixed random subset), as a task directory."""
    import numpy as np

    dst.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.tsv", train_n), ("dev.tsv", dev_n)):
        lines = (src / name).read_text(encoding="utf-8").splitlines(keepends=True)
        header, rows = lines[0], lines[1:]
        if n is not None and n < len(rows):
            keep = np.sort(np.random.default_rng(0).choice(len(rows), n, replace=False))
            rows = [rows[i] for i in keep]
        (dst / name).write_text(header + "".join(rows), encoding="utf-8")
    return dst


# ---------------------------------------------------------------------------------------------------- (a) profile


def part_profile(cfg: dict) -> dict:
    import numpy as np
    import torch

    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import get_task
    from featherweight_core.pipeline.prepare import prepare
    from featherweight_core.pipeline.run import student_config_for
    from featherweight_core.students.distill import DistillConfig, seed_everything, train
    from featherweight_core.students.models import build_student

    device = cfg["device"]
    task = get_task("sst2")
    td = load_task_data(task, cfg["sst2"])
    t0 = time.perf_counter()
    p = prepare(task, embedding=EMB, emb_dim=DIM, vocab_size=VOCAB, cache_dir=cfg["cache_dir"], task_data=td)
    say(
        f"  data: {len(p.train)} train, {len(p.evals['validation'])} dev examples; encoded in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    student = student_config_for(p, ARCH)
    dev = {"validation": p.evals["validation"]}
    out: dict = {"train_n": len(p.train), "device_name": device}
    if device == "cuda":
        out["device_name"] = torch.cuda.get_device_name(0)

    def epoch(dev_name: str, split, threads: int) -> tuple[float, float, float]:
        torch.set_num_threads(threads)
        seed_everything(0)
        model = build_student(student, p.num_embeddings, p.vectors)
        dcfg = DistillConfig(max_epochs=1, seed=0, device=dev_name).resolved(ARCH, False)
        s0 = time.perf_counter()
        r = train(model, split, dev, task, dcfg)
        return r.history[0].samples_per_second, time.perf_counter() - s0, r.history[0].score

    def host_batches_epoch(split) -> float:
        """The loop as it was before the device-resident rewrite, for comparison on the same device: numpy batches copied to the
        device every step, the loss read (and checked) every step. Train samples/s."""
        from featherweight_core.data.batching import iter_batches
        from featherweight_core.students.distill import distill_loss, make_optimizer

        seed_everything(0)
        model = build_student(student, p.num_embeddings, p.vectors).to(device)
        dcfg = DistillConfig(max_epochs=1, seed=0, device=device).resolved(ARCH, False)
        opt = make_optimizer(model, dcfg)
        rng = np.random.default_rng(0)
        dev_t = torch.device(device)
        model.train()
        s0 = time.perf_counter()
        for batch in iter_batches(split, dcfg.batch_size, rng):
            batch = batch.to(dev_t)
            loss = distill_loss(model(*batch.inputs), batch.labels, None, 1.0)
            if not torch.isfinite(loss):
                raise RuntimeError("non-finite loss")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
        return len(split) / (time.perf_counter() - s0)

    threads = max(1, min(4, os.cpu_count() or 1))
    if device == "cuda":  # warm-up: CUDA context, cuDNN handles, allocator (untimed)
        epoch("cuda", p.train.take(np.arange(min(2000, len(p.train)))), threads)
        sps, wall, score = epoch("cuda", p.train, threads)
        say(
            f"  cuda: one epoch of {len(p.train)}: {sps:,.0f} samples/s (train), {wall:.1f}s with evaluation, "
            f"dev acc {score:.3f}"
        )
        out.update(device_sps=sps, device_wall=wall)
        legacy = host_batches_epoch(p.train)
        out["host_batches_sps"] = legacy
        say(
            f"  cuda, the loop before the rewrite (numpy batches copied per step, loss read per step): {legacy:,.0f} "
            f"samples/s; device-resident loop {sps / legacy:.2f}x that"
        )
    n_cpu = min(cfg["cpu_samples"], len(p.train))
    cpu_split = p.train.take(np.sort(np.random.default_rng(0).choice(len(p.train), n_cpu, replace=False)))
    cpu_sps, cpu_wall, _ = epoch("cpu", cpu_split, 1)
    say(f"  cpu, 1 thread: {n_cpu} samples: {cpu_sps:,.0f} samples/s  (load {load_average()})")
    out.update(cpu_sps=cpu_sps)
    if device == "cpu":  # the comparison loop runs on the CPU too (there it is the same loop): checks the code path
        say(f"  cpu, the plain host loop as a reference: {host_batches_epoch(cpu_split):,.0f} samples/s")
    if device == "cuda":
        out["ratio"] = out["device_sps"] / cpu_sps
        say(f"  ratio cuda / one CPU thread: {out['ratio']:.2f}x  (target >= 4x)")

    # profile a few steps: ops by device and CPU time, and how often the host waited for the device
    from torch.profiler import ProfilerActivity, profile

    steps = cfg["profile_steps"]
    bs = 50
    sub = p.train.take(np.arange(min(steps * bs, len(p.train))))
    small_dev = {"validation": p.evals["validation"].take(np.arange(min(64, len(p.evals["validation"]))))}
    torch.set_num_threads(threads)
    seed_everything(0)
    model = build_student(student, p.num_embeddings, p.vectors)
    dcfg = DistillConfig(max_epochs=1, seed=0, device=device).resolved(ARCH, False)
    train(model, sub.take(np.arange(min(200, len(sub)))), small_dev, task, dcfg)  # warm the profiled path
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    s0 = time.perf_counter()
    with profile(activities=acts) as prof:
        train(model, sub, small_dev, task, dcfg)
        if device == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - s0
    avgs = prof.key_averages()
    n_steps = -(-len(sub) // bs)
    say(f"  profile: {n_steps} training steps of {bs} + evaluation of 64 dev examples, {wall:.2f}s wall")
    dev_key = "self_device_time_total" if hasattr(avgs[0], "self_device_time_total") else "self_cuda_time_total"
    if device == "cuda":
        from torch.autograd import DeviceType

        kernels = [e for e in avgs if getattr(e, "device_type", None) == DeviceType.CUDA]
        if kernels:
            busy = sum(getattr(e, dev_key, 0) for e in kernels) / 1e6 / wall
            out["profile_busy"] = busy
            say(f"  device busy (sum of kernel self time / wall, profiler overhead included): {busy:.0%}")
        say(f"  top 10 by device time:\n{avgs.table(sort_by=dev_key, row_limit=10)}")
    say(f"  top 10 by CPU time:\n{avgs.table(sort_by='self_cpu_time_total', row_limit=10)}")
    watched = (
        "aten::_local_scalar_dense",
        "aten::item",
        "cudaStreamSynchronize",
        "cudaDeviceSynchronize",
        "cudaMemcpy",
        "cudaMemcpyAsync",
        "cudaLaunchKernel",
    )
    syncs = {e.key: e.count for e in avgs if e.key in watched}
    out["syncs"] = syncs
    say(
        f"  host waits and launches in {n_steps} steps (+ the epoch's loss read and evaluation): "
        f"{syncs or 'none recorded'}"
    )
    return out


# ---------------------------------------------------------------------------------------------------- (b) sweep


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


# ---------------------------------------------------------------------------------------------------- parent side


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
