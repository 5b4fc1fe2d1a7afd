"""Framework cost of a CPU sweep: CPU-seconds the sweep machinery adds per trial, beyond the training itself.

N tiny trials (the built-in synthetic task, FFN hash d16, 1 epoch: well under a second of training each) run twice
in the same invocation:

(a) one after another in this process through ``trainables.distill.train_trial`` (the trainable's Ray-free body:
    train, measure, save the student), after ``sweep.assets.prepare_for_trials``;
(b) through ``sweep.runner.run_sweep`` on a local Ray with ``--workers`` CPUs: Ray's start, the object store, Tune,
    the checkpoint, the callbacks' journal and DuckDB writes, the experiment-state saves.

framework CPU-s per trial = (CPU time of every process of (b) - CPU time of (a)) / N.

How CPU time is counted: per process, not machine-wide, because other work shares this machine (``/proc/stat``'s
busy jiffies would count it too; that machine-wide delta is printed beside the figure only as a cross-check). (a)
is this process's own ``time.process_time()``. For (b) a sampler thread reads ``utime + stime`` from
``/proc/<pid>/stat`` every 0.2 s for every descendant of this process (Ray's GCS, raylet, its agents and the worker
processes are all started below the driver) and keeps each pid's last reading; a last sample is taken just before
``ray.shutdown()``. The driver's own CPU (Tune's loop, the callbacks) is added from ``time.process_time()``. A
process that lives less than 0.2 s between samples is missed (none does here: Ray's processes live the whole run).

The cost splits into a fixed part per sweep (Ray's start, each worker's start and imports) and a part per trial;
both are printed, the fixed part from the CPU the Ray side spent before its first trial started.
``--profile FILE`` writes a cProfile of the driver during (b).

    .venv/bin/python bench/bench_overhead.py                 # 32 trials, ~2-3 min on 2 cores
    .venv/bin/python bench/bench_overhead.py --trials 24 --workers 2 --profile /tmp/driver.prof

Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import latency_summary, load_average  # noqa: E402

from sweep.spec import SweepSpec, validate  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def make_spec(args: argparse.Namespace, storage: Path, name: str) -> SweepSpec:
    raw = {
        "name": name,
        "storage": str(storage),
        "database": str(storage / "bench.duckdb"),
        "cache_dir": str(args.cache),
        "tasks": {"synthetic": {"data_options": {"n_train": args.n_train, "n_dev": 100}}},
        "grid": {
            "archs": ["ffn"],
            "embeddings": ["hash"],
            "dims": [16],
            "vocab_sizes": [500],
            "alphas": [1.0],
            "seeds": list(range(args.trials)),
        },
        "training": {"max_epochs": 1, "patience": 1},
        "resources": {"cpus_per_trial": 1, "num_cpus": args.workers},
    }
    return validate(raw)


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime + stime in seconds) of ``pid`` from /proc, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2 :].split()  # fields after the command name (which may hold spaces)
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK


def machine_busy_s() -> float:
    """Machine-wide busy CPU-seconds since boot (all cores; /proc/stat's first line minus idle and iowait)."""
    vals = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(vals[:8]) - vals[3] - vals[4]) / TICK


class DescendantCPU:
    """Samples the CPU time of every descendant of this process (not the process itself) every ``period`` s."""

    def __init__(self, period: float = 0.2) -> None:
        self.period = period
        self.last: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        me = os.getpid()
        parents: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                s = _stat(int(d))
                if s is not None:
                    parents[int(d)], cpu[int(d)] = s
        for pid in cpu:
            p, seen = pid, 0
            while p in parents and p != me and p > 1 and seen < 64:
                p, seen = parents[p], seen + 1
            if p == me and pid != me:
                self.last[pid] = cpu[pid]
                self.names[pid] = _label(pid) or self.names.get(pid, "?")

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def total(self) -> float:
        return sum(self.last.values())

    def by_name(self) -> dict[str, tuple[int, float]]:
        """Processes and CPU-seconds per kind of process, most CPU first."""
        out: dict[str, tuple[int, float]] = {}
        for pid, s in self.last.items():
            n, c = out.get(self.names.get(pid, "?"), (0, 0.0))
            out[self.names.get(pid, "?")] = (n + 1, c + s)
        return dict(sorted(out.items(), key=lambda kv: -kv[1][1]))


def _label(pid: int) -> str | None:
    """A short name for a process: Ray's worker title (``ray::IDLE``, ``ray::ImplicitFunc``), a Python script's
    file name, or an executable's."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    if argv[0].startswith("ray::"):
        return argv[0].split()[0]
    if Path(argv[0]).name.startswith("python") and len(argv) > 1:
        script = next((a for a in argv[1:] if not a.startswith("-")), "?")
        return Path(script).name
    return Path(argv[0]).name


def run_sequential(spec: SweepSpec) -> dict:
    import torch

    from sweep.assets import prepare_for_trials
    from trainables.distill import train_trial

    torch.set_num_threads(1)
    trials = spec.distill_trials()
    c0, t0 = time.process_time(), time.perf_counter()
    prepared = prepare_for_trials(spec, trials)
    train_cpu = []
    for trial in trials:
        s0 = time.process_time()
        with tempfile.TemporaryDirectory(prefix="fw-bench-") as out:
            train_trial(trial, prepared[trial.data_key], "cpu", out)
        train_cpu.append(time.process_time() - s0)
    return {"cpu": time.process_time() - c0, "wall": time.perf_counter() - t0, "per_trial": train_cpu}


_STATE: dict = {}  # module-level: Tune pickles the progress callback's ``say``, which must not hold the sampler


def say(line: str) -> None:
    """The sweep's progress lines: the first trial's line marks the end of the fixed start-up cost."""
    st = sys.modules[__name__]._STATE  # looked up, not captured: Tune pickles this function by value
    if line.startswith("[distill") and "fixed" not in st:
        st["children"].sample()
        st["fixed"] = time.process_time() - st["c0"] + st["children"].total()
        st["at"] = time.perf_counter() - st["t0"]
    if not line.startswith("[distill"):
        print(f"  ray {line}", flush=True)


def run_ray(spec: SweepSpec, profile: str | None) -> dict:
    import ray

    from analysis.views import open_store
    from sweep.runner import run_sweep
    from sweep.tuner import init_ray

    children = DescendantCPU()
    _STATE.clear()
    _STATE.update(children=children, c0=time.process_time(), t0=time.perf_counter())
    children.start()
    busy0 = machine_busy_s()
    c0, t0 = _STATE["c0"], _STATE["t0"]

    init_ray(None, spec.resources)
    prof = cProfile.Profile(time.process_time) if profile else None  # CPU time, not wall (waits are free)
    if prof:
        prof.enable()
    outcome = run_sweep(spec, say=say)
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    wall = time.perf_counter() - t0
    driver = time.process_time() - c0
    children.stop()  # the last reading of Ray's processes, before they exit
    busy = machine_busy_s() - busy0
    ray.shutdown()
    paths = open_store(spec.database, read_only=True).query(
        "SELECT checkpoint_path FROM trial_results WHERE sweep = ?", [spec.name]
    )["checkpoint_path"]
    return {
        "wall": wall,
        "driver": driver,
        "children": children.total(),
        "by_name": children.by_name(),
        "busy": busy,
        "first": {k: _STATE[k] for k in ("fixed", "at") if k in _STATE},
        "rows": len(paths),
        "ckpt": sum(1 for p in paths if p and Path(p).is_file()),
        "failed": outcome.failed,
        "db_write_ms": outcome.db_write_ms,
    }


PRESTART = "RAY_prestart_worker_first_driver"  # Ray's own spelling of its setting


@contextlib.contextmanager
def legacy_checkpoints():
    """The sweep as it ran before trials stopped reporting Tune checkpoints (the "before" figures): trials report a Tune checkpoint of a temporary
    directory (Tune copies it into its experiment directory, and ``CheckpointConfig(num_to_keep=1)`` forces an
    experiment-state snapshot per trial) and Ray prestarts one idle worker per CPU. Done by renaming the config key
    under which ``build_tuner`` passes the checkpoint root, so the trainables (in their own processes) do not find
    it and take their Tune-checkpoint path."""
    import sweep.callback  # noqa: F401  (imported before the rename: it keeps the real key)
    import trainables.checkpoints as ck

    key, prestart = ck.CHECKPOINT_ROOT, os.environ.get(PRESTART)
    ck.CHECKPOINT_ROOT = "bench_legacy_unused_root"
    os.environ[PRESTART] = "1"
    try:
        yield
    finally:
        ck.CHECKPOINT_ROOT = key
        if prestart is None:
            os.environ.pop(PRESTART, None)
        else:
            os.environ[PRESTART] = prestart


def report(label: str, r: dict, seq: dict, n: int) -> float:
    total = r["driver"] + r["children"]
    fixed = r["first"].get("fixed", float("nan"))
    per_trial = (total - seq["cpu"]) / n
    print()
    print(
        f"{label}: run_sweep on Ray, {r['wall']:.1f} s wall; {r['rows']} rows ({r['ckpt']} with their checkpoint file"
        f" on disk), {r['failed']} failed"
    )
    print(f"    CPU: driver {r['driver']:.1f} s + Ray's processes {r['children']:.1f} s = {total:.1f} CPU-s")
    print("    by process: " + ", ".join(f"{k} x{m} {c:.1f}" for k, (m, c) in r["by_name"].items()))
    print(f"    machine-wide busy CPU meanwhile (includes other work on the machine): {r['busy']:.1f} CPU-s")
    print(f"    until the first trial finished ({r['first'].get('at', float('nan')):.1f} s): {fixed:.1f} CPU-s")
    print(f"    DB write {latency_summary(r['db_write_ms'])}")
    print(
        f"    framework CPU-s per trial {per_trial:6.2f}  ((b) {total:.1f} - (a) {seq['cpu']:.1f}) / {n};"
        f" after the first trial finished {(total - fixed - seq['cpu'] * (n - 1) / n) / (n - 1):.2f} per trial"
        f"  load {load_average()}",
        flush=True,
    )
    return per_trial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="CPUs given to Ray (one trial each)")
    ap.add_argument("--n-train", type=int, default=400, help="synthetic training examples per trial")
    ap.add_argument(
        "--no-before",
        action="store_true",
        help="skip the run with the old checkpointing (trials report Tune checkpoints)",
    )
    ap.add_argument("--profile", help="write a cProfile of the driver during the (after) Ray side to this file")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_ADDRESS", "local")  # a Ray of its own, never one another program started here
    with tempfile.TemporaryDirectory(prefix="fw-bench-overhead-") as tmp:
        tmp = Path(tmp)
        args.cache = tmp / "cache"
        n = args.trials
        print(
            f"{n} trials: synthetic task ({args.n_train} train), ffn hash d16, 1 epoch; {args.workers} Ray workers x "
            f"1 CPU; load {load_average()}",
            flush=True,
        )
        from sweep.assets import prepare_for_trials

        warm = make_spec(args, tmp / "warm", "bench-warm")
        prepare_for_trials(warm, warm.distill_trials())  # the encoded-data cache, untimed
        seq = run_sequential(make_spec(args, tmp / "seq", "bench-seq"))
        print(
            f"(a) sequential: {seq['cpu']:.1f} CPU-s, {seq['wall']:.1f} s wall; one trial's training "
            f"{sum(seq['per_trial']) / n * 1000:.0f} ms CPU on average; load {load_average()}",
            flush=True,
        )
        figures = {}
        if not args.no_before:
            with legacy_checkpoints():
                r = run_ray(make_spec(args, tmp / "before", "bench-before"), None)
            figures["before"] = report("(b) before (Tune checkpoints, prestarted workers)", r, seq, n)
        r = run_ray(make_spec(args, tmp / "after", "bench-after"), args.profile)
        figures["after"] = report("(b) after (checkpoints written in place)", r, seq, n)
        print()
        print(
            "framework CPU-s per trial: "
            + ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
            + f"  (target <= 0.5); load average at the end: {load_average()}"
        )


if __name__ == "__main__":
    main()
