"""What the Pareto-aware scheduler saves: a small grid trained in full against the same grid under
``scheduler: pareto_halving`` (with every seed, and with ``seeds: first``), on the built-in synthetic task on the CPU.

The full grid is trained once, trial by trial in one process (``trainables.distill.train_trial``, one torch thread,
every epoch's dev score kept). The scheduled runs are then replayed on those histories with the scheduler's own rule
(``sweep.pareto_halving``): training on the CPU is deterministic under a seed and the scheduler only cuts a trial
short, so a trial it lets go on ends exactly as in the full grid and one it stops has exactly the score it had at the
rung. Results reach the rule in grid order, one trial at a time (what ``resources.max_concurrent: 1`` gives; with
several trials at once the arrival order, and so some decisions, differ). Wall time of a scheduled run is the sum of
the seconds of the epochs it trains.

Printed for each run: trial-epochs (and the share of the full grid's), training seconds, the frontier of finished
trials (dev accuracy vs gzip bytes), its hypervolume against the reference point (accuracy 0.5, 1.1 x the largest
gzip size of the grid) and its share of the full grid's, and for every point of the full grid's frontier the best
accuracy the run found at that size or smaller (a model with the same parameter count counts as the same size). Then
synchronous successive halving on the same histories (a bound: every rung result known before any decision), how far
apart the seeds of one configuration end, and a projection onto the thesis' SST-2 grid. Prints figures, asserts
nothing.

    .venv/bin/python bench/bench_halving.py                  # 24 trials, 9 epochs: 2-6 min on 2 busy cores
    .venv/bin/python bench/bench_halving.py --vocab-sizes 500 2000    # 48 trials
    .venv/bin/python bench/bench_halving.py --histories /tmp/grid.json --eta 2   # train once, replay other settings
    .venv/bin/python bench/bench_halving.py --archs ffn rnn --max-epochs 6
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import data_path, load_average  # noqa: E402

from sweep.pareto_halving import HalvingSettings, ParetoHalving, RungResult, near_front, ranking, rungs_for  # noqa: E402
from sweep.spec import validate  # noqa: E402


def make_spec(args: argparse.Namespace, storage: Path):
    return validate(
        {
            "name": "bench-halving",
            "storage": str(storage),
            "cache_dir": str(storage / "cache"),
            "tasks": {"synthetic": {"data_options": {"n_train": args.n_train, "n_dev": args.n_dev}}},
            "grid": {
                "archs": args.archs,
                "embeddings": ["hash"],
                "dims": args.dims,
                "vocab_sizes": args.vocab_sizes,
                "alphas": [1.0],
                "seeds": list(range(args.seeds)),
            },
            "training": {"max_epochs": args.max_epochs, "patience": args.max_epochs, "optimizer": "adam", "lr": 0.003},
        },
        check_files=False,
    )


def make_sst2_spec(args: argparse.Namespace, storage: Path):
    """The SST-2 grid: bilstm / rnn / ffn x bpe vs1000 d25, hash d25 and d100, char d100 x alpha 0 and 1 x two seeds
    (48 trials). Only the d25 BPEmb vectors are read (what is available offline); hash and char carry the dim 100."""
    return validate(
        {
            "name": "bench-halving-sst2",
            "storage": str(storage),
            "cache_dir": str(storage / "cache"),
            "bpemb_dir": str(args.bpemb_dir),
            # the teacher whose logits the trials learn from (only its name reaches the trials: the soft targets are
            # read from --teacher-logits)
            "tasks": {"sst2": {"data": str(args.glue), "teacher": str(args.teacher_logits.parent / "model")}},
            "grid": {
                "archs": args.archs,
                "embeddings": ["bpe", "hash", "char"],
                "dims": [25, 100],
                "dims_by_embedding": {"bpe": [25], "char": [100]},
                "vocab_sizes": [1000],
                "alphas": [0.0, 1.0],
                "seeds": list(range(args.seeds)),
            },
            "training": {"max_epochs": args.max_epochs, "patience": args.max_epochs, "optimizer": "adam", "lr": 0.003},
        },
        check_files=False,
    )


_PREPARED: dict = {}


def _sst2_prepared(args: argparse.Namespace, t):
    """The trial's SST-2 data (encoded once per process, cached on disk), its training set cut to ``--train-limit``
    rows, with the teacher's soft targets from ``--teacher-logits``."""
    if t.data_key not in _PREPARED:
        import numpy as np

        from featherweight_core.data.tasks import get_task
        from featherweight_core.pipeline.prepare import prepare

        p = prepare(
            get_task("sst2"),
            args.glue,
            t.embedding,
            t.emb_dim,
            t.vocab_size,
            args.bpemb_dir,
            teacher_logits=args.teacher_logits,
            cache_dir=args.cache_dir,
        )
        p.train = p.train.take(np.random.default_rng(0).permutation(len(p.train))[: args.train_limit])
        _PREPARED[t.data_key] = p
    return _PREPARED[t.data_key]


def _train_one(job):
    """One trial trained to the end in a worker process (one torch thread): its per-epoch history and sizes."""
    import torch

    from trainables.distill import train_trial
    from trainables.trial import DistillTrial

    args, trial_dict, workdir = job
    torch.set_num_threads(1)
    t = DistillTrial.from_dict(trial_dict)
    t0 = time.process_time()
    o = train_trial(t, _sst2_prepared(args, t), "cpu", workdir)
    return t.trial_id, {
        "scores": [h["score"] for h in o.history],
        "seconds": [h["seconds"] for h in o.history],
        "cpu_seconds": time.process_time() - t0,
        "gzip": o.sizes["gzip_bytes"],
        "params": o.sizes["params"],
    }


def train_sst2_grid(args: argparse.Namespace, trials) -> dict[str, dict]:
    """Every SST-2 trial trained to the end, ``--workers`` at a time (each its own process and torch thread)."""
    import multiprocessing as mp

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(args, t.to_dict(), f"{tmp}/{i}") for i, t in enumerate(trials)]
        by_id = {t.trial_id: t for t in trials}
        with mp.get_context("spawn").Pool(args.workers, maxtasksperchild=4) as pool:
            for i, (tid, r) in enumerate(pool.imap_unordered(_train_one, jobs), 1):
                out[tid] = r
                print(
                    f"  {i:3d}/{len(trials)} {by_id[tid].describe():44s} acc {max(r['scores']):.4f}"
                    f"  {r['gzip']:>9,} B  {sum(r['seconds']):6.0f} s",
                    flush=True,
                )
    return out


def train_grid(spec, trials) -> dict[str, dict]:
    """Every trial trained to the end: its history (per-epoch score and seconds), gzip bytes and parameter count."""
    import torch

    from sweep.assets import prepare_for_trials
    from trainables.distill import train_trial

    torch.set_num_threads(1)
    prepared = prepare_for_trials(spec, trials)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, t in enumerate(trials):
            o = train_trial(t, prepared[t.data_key], "cpu", f"{tmp}/{i}")
            out[t.trial_id] = {
                "scores": [h["score"] for h in o.history],
                "seconds": [h["seconds"] for h in o.history],
                "gzip": o.sizes["gzip_bytes"],
                "params": o.sizes["params"],
            }
            print(f"  {i + 1:3d}/{len(trials)} {t.describe():40s} acc {o.score:.4f}  {o.sizes['gzip_bytes']:>8,} B")
    return out


def schedule(trials, runs: dict, settings: HalvingSettings, max_epochs: int, only=None) -> dict[str, tuple]:
    """The scheduler replayed on the full grid's histories, trials arriving in grid order: trial id -> (status, score
    (best so far), epochs trained, seconds)."""
    rule, rungs, out = ParetoHalving(settings), rungs_for(settings, max_epochs), {}
    for t in trials:
        if only is not None and t.trial_id not in only:
            continue
        r = runs[t.trial_id]
        epochs, status = len(r["scores"]), "finished"
        for rung in rungs:
            if rung >= len(r["scores"]):
                break
            if rule.decide(t.trial_id, t.task, rung, max(r["scores"][:rung]), r["params"]).stop:
                epochs, status = rung, "stopped"
                break
        out[t.trial_id] = (status, max(r["scores"][:epochs]), epochs, sum(r["seconds"][:epochs]))
    return out


def schedule_synchronous(trials, runs: dict, settings: HalvingSettings, max_epochs: int) -> dict[str, tuple]:
    """Synchronous successive halving on the same histories: at each rung every surviving trial's result is known
    before any is decided, and the top ceil(n/eta) by the scheduler's ranking go on. Not something a sweep can do
    without pausing trials; the bound on what ranking rung scores can save and keep, free of arrival order."""
    alive, out = list(trials), {}
    for rung in rungs_for(settings, max_epochs):
        at = [
            RungResult(t.trial_id, t.task, rung, max(runs[t.trial_id]["scores"][:rung]), runs[t.trial_id]["params"], i)
            for i, t in enumerate(alive)
        ]
        keep = set(ranking(at)[: max(1, -(-len(at) // settings.eta))])
        for i, t in enumerate(alive):
            if i not in keep:
                r = runs[t.trial_id]
                out[t.trial_id] = ("stopped", max(r["scores"][:rung]), rung, sum(r["seconds"][:rung]))
        alive = [alive[i] for i in sorted(keep)]
    for t in alive:
        r = runs[t.trial_id]
        out[t.trial_id] = ("finished", max(r["scores"]), len(r["scores"]), sum(r["seconds"]))
    return out


def seed_spread(trials, runs: dict) -> None:
    """How far apart the seeds of one configuration end (best dev accuracy, points): the noise a frontier point of
    single trials carries, against which a miss is judged."""
    by_config: dict[tuple, list[float]] = {}
    for t in trials:
        by_config.setdefault(configuration(t), []).append(max(runs[t.trial_id]["scores"]))
    spreads = sorted(100 * (max(v) - min(v)) for v in by_config.values() if len(v) > 1)
    if spreads:
        print(
            f"\nseeds of one configuration end this far apart (points of accuracy): median"
            f" {spreads[len(spreads) // 2]:.2f}, largest {spreads[-1]:.2f} ({len(spreads)} configurations)"
        )


def configuration(t) -> tuple:
    """A trial's settings but its seed: the seeds of one configuration share it."""
    return tuple(sorted((k, repr(v)) for k, v in t.to_dict().items() if k not in ("seed", "trial_id")))


def frontier(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """(score, size, id) of the non-dominated points, by size."""
    best, out = -1.0, []
    for score, size, tid in sorted(points, key=lambda p: (p[1], -p[0])):
        if score > best:
            out.append((score, size, tid))
            best = score
    return out


def hypervolume(front, ref_score: float, ref_size: float) -> float:
    """Area dominated by ``front`` (score up, size down) within the reference point."""
    area, prev_score = 0.0, ref_score
    for score, size, _ in front:  # by size ascending, scores increasing
        if score > prev_score and size < ref_size:
            area += (score - prev_score) * (ref_size - size)
            prev_score = score
    return area


def best_found(runs, points, size: float, trial_id: str, ref_score: float) -> float:
    """The best score among ``points`` at ``size`` or smaller; the same parameter count as ``trial_id`` is the same
    size (gzip bytes of one architecture differ by a few bytes from seed to seed). None found: the reference score."""
    same = runs[trial_id]["params"]
    return max((s for s, z, o in points if z <= size or runs[o]["params"] == same), default=ref_score)


def quality(runs, result, full_front, ref) -> tuple[int, float, float, list]:
    """(trial-epochs, hypervolume, largest miss in points, frontier) of a run's finished trials."""
    points = [(sc, runs[tid]["gzip"], tid) for tid, (st, sc, _, _) in result.items() if st == "finished"]
    front = frontier(points)
    worst = max((score - best_found(runs, points, size, tid, ref[0])) * 100 for score, size, tid in full_front)
    return sum(e for _, _, e, _ in result.values()), hypervolume(front, *ref), worst, front


def report(name, trials, runs, result, full_front, ref, full_epochs, full_seconds) -> float:
    epochs, hv, worst, front = quality(runs, result, full_front, ref)
    seconds = sum(s for *_, s in result.values())
    hv_full = hypervolume(full_front, *ref)
    stopped = sum(st == "stopped" for st, *_ in result.values())
    print(f"\n== {name}")
    print(
        f"trials run {len(result)} (stopped {stopped}); trial-epochs {epochs} of {full_epochs}"
        f" ({100 * epochs / full_epochs:.1f}%); training seconds {seconds:.1f} of {full_seconds:.1f}"
        f" ({100 * seconds / full_seconds:.1f}%)"
    )
    if all("cpu_seconds" in r for r in runs.values()):  # a trial's CPU time, shared out over its epochs
        cpu = sum(
            runs[tid]["cpu_seconds"] * sum(runs[tid]["seconds"][:e]) / max(sum(runs[tid]["seconds"]), 1e-9)
            for tid, (_, _, e, _) in result.items()
        )
        print(f"CPU-seconds {cpu:,.0f}")
    print(f"hypervolume {hv:.2f} of {hv_full:.2f} ({100 * hv / hv_full:.1f}%); frontier {len(front)} points")
    points = [(sc, runs[tid]["gzip"], tid) for tid, (st, sc, _, _) in result.items() if st == "finished"]
    for score, size, tid in full_front:
        found = best_found(runs, points, size, tid, ref[0])
        mark = "" if tid in {p[2] for p in front} else "  (not on this run's frontier)"
        print(f"  full-grid point {size:>8,} B acc {score:.4f}: best found at that size or smaller {found:.4f}{mark}")
    print(f"largest miss on the full grid's frontier: {worst:.2f} points of accuracy")
    return epochs / full_epochs


def seeds_first(trials, runs, settings: HalvingSettings, max_epochs: int, margin: float) -> tuple[dict, int, int]:
    """The scheduler with ``seeds: first``: the first seed of every configuration under the rule (in the order of
    ``trials``), then the other seeds, trained to the end, of the configurations within ``margin`` points of the
    frontier. Returns the result, how many configurations got their other seeds, and how many there are."""
    first_seed = min(t.seed for t in trials)
    first = {t.trial_id for t in trials if t.seed == first_seed}
    phase1 = schedule(trials, runs, settings, max_epochs, only=first)
    done = {tid: (sc, runs[tid]["params"]) for tid, (st, sc, _, _) in phase1.items() if st == "finished"}
    key = {t.trial_id: configuration(t) for t in trials}
    chosen = {key[tid] for tid in near_front(done, margin)}
    more = {}
    for t in trials:
        if t.seed != first_seed and key[t.trial_id] in chosen:
            r = runs[t.trial_id]
            more[t.trial_id] = ("finished", max(r["scores"]), len(r["scores"]), sum(r["seconds"]))
    return {**phase1, **more}, len(chosen), len(first)


def other_orders(trials, runs, settings, args, full_front, ref, full_epochs) -> None:
    """The scheduler replayed with ``--orders`` random arrival orders (seeded): how much its saving and its misses
    depend on the order trials reach the rungs in (the grid's order is one of them)."""
    import random

    hv_full = hypervolume(full_front, *ref)
    runs_by = {
        "every seed": lambda order: schedule(order, runs, settings, args.max_epochs),
        "seeds: first": lambda order: seeds_first(order, runs, settings, args.max_epochs, args.seeds_margin)[0],
    }
    for label, run in runs_by.items():
        got = [
            quality(runs, run(random.Random(k).sample(trials, len(trials))), full_front, ref)
            for k in range(args.orders)
        ]
        epochs = sorted(100 * e / full_epochs for e, *_ in got)
        hvs = sorted(100 * hv / hv_full for _, hv, *_ in got)
        misses = sorted(w for _, _, w, _ in got)
        print(
            f"\n{args.orders} random arrival orders, {label}: trial-epochs {epochs[0]:.1f}-{epochs[-1]:.1f}%"
            f" (median {epochs[len(epochs) // 2]:.1f}%), hypervolume {hvs[0]:.1f}-{hvs[-1]:.1f}%, largest miss"
            f" median {misses[len(misses) // 2]:.2f} and worst {misses[-1]:.2f} points;"
            f" {sum(m <= 1.0 for m in misses)} of {len(misses)} orders miss no point by more than 1"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=["bilstm", "rnn", "ffn"])
    p.add_argument("--dims", nargs="+", type=int, default=[8, 16, 32, 64])
    p.add_argument("--vocab-sizes", nargs="+", type=int, default=[500])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--max-epochs", type=int, default=9)
    p.add_argument("--n-train", type=int, default=800)
    p.add_argument("--n-dev", type=int, default=300)
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--grace", type=int, default=1, help="epochs before the first rung")
    p.add_argument("--seeds-margin", type=float, default=1.0)
    p.add_argument(
        "--histories", help="JSON file of the full grid's per-epoch results: written after training, read if it exists"
    )
    p.add_argument("--orders", type=int, default=0, help="also replay with this many random arrival orders")
    p.add_argument("--sst2", action="store_true", help="the SST-2 grid (48 trials) instead of the synthetic one")
    p.add_argument("--glue", type=Path, help="GLUE directory with SST-2/ (default: $FEATHERWEIGHT_SHARED_DATA/glue)")
    p.add_argument(
        "--bpemb-dir", type=Path, help="BPEmb cache with vs1000 d25 (default: $FEATHERWEIGHT_SHARED_DATA/bpemb)"
    )
    p.add_argument(
        "--teacher-logits",
        type=Path,
        help="the teacher's SST-2 train logits, keyed (default: $FEATHERWEIGHT_SHARED_DATA/teacher/minilm-sst2/"
        "sst2-train-logits.parquet)",
    )
    p.add_argument("--train-limit", type=int, default=20000, help="SST-2 training sentences (a seeded sample)")
    p.add_argument("--workers", type=int, default=2, help="SST-2 trials trained at once (one process and thread each)")
    p.add_argument("--cache-dir", type=Path, default=None, help="encoded-data cache (default: a temporary directory)")
    args = p.parse_args()
    print(f"load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.sst2:
            args.glue = data_path(args.glue, "glue", "--glue")
            args.bpemb_dir = data_path(args.bpemb_dir, "bpemb", "--bpemb-dir")
            args.teacher_logits = data_path(
                args.teacher_logits, "teacher/minilm-sst2/sst2-train-logits.parquet", "--teacher-logits"
            )
            args.cache_dir = args.cache_dir or Path(tmp) / "cache"
            spec = make_sst2_spec(args, Path(tmp))
            what = f"SST-2, {args.train_limit:,} training sentences, full dev"
        else:
            spec = make_spec(args, Path(tmp))
            what = f"synthetic, n_train {args.n_train}"
        trials = spec.distill_trials()
        print(f"full grid: {len(trials)} trials x up to {args.max_epochs} epochs ({what})")
        t0 = time.perf_counter()
        if args.histories and Path(args.histories).is_file():  # the same grid trained before: replay only
            runs = json.loads(Path(args.histories).read_text())
            missing = [t.describe() for t in trials if t.trial_id not in runs]
            if missing:
                raise SystemExit(f"error: {args.histories} lacks trials of this grid, e.g. {missing[0]}")
        else:
            runs = train_sst2_grid(args, trials) if args.sst2 else train_grid(spec, trials)
            if args.histories:
                Path(args.histories).write_text(json.dumps(runs))
        wall = time.perf_counter() - t0
    full = {tid: ("finished", max(r["scores"]), len(r["scores"]), sum(r["seconds"])) for tid, r in runs.items()}
    full_epochs = sum(e for _, _, e, _ in full.values())
    full_seconds = sum(s for *_, s in full.values())
    full_front = frontier([(sc, runs[tid]["gzip"], tid) for tid, (_, sc, _, _) in full.items()])
    ref = (0.5, 1.1 * max(r["gzip"] for r in runs.values()))
    print(f"full grid trained in {wall:.0f} s wall; reference point: accuracy {ref[0]}, {ref[1]:,.0f} gzip bytes")
    report("full grid", trials, runs, full, full_front, ref, full_epochs, full_seconds)

    settings = HalvingSettings(eta=args.eta, grace=args.grace)
    report(
        f"pareto_halving (eta {settings.eta}, rungs {rungs_for(settings, args.max_epochs)})",
        trials,
        runs,
        schedule(trials, runs, settings, args.max_epochs),
        full_front,
        ref,
        full_epochs,
        full_seconds,
    )

    report(
        f"synchronous successive halving (eta {settings.eta}; a bound, not a sweep's schedule)",
        trials,
        runs,
        schedule_synchronous(trials, runs, settings, args.max_epochs),
        full_front,
        ref,
        full_epochs,
        full_seconds,
    )
    seed_spread(trials, runs)

    result, chosen, configurations = seeds_first(trials, runs, settings, args.max_epochs, args.seeds_margin)
    project_thesis_grid(settings, survival_shares(trials, runs, settings, args.max_epochs))
    print(f"\nseeds where they matter: {chosen} of {configurations} configurations get their other seeds")
    report(
        f"pareto_halving with seeds: first (margin {args.seeds_margin:g} points)",
        trials,
        runs,
        result,
        full_front,
        ref,
        full_epochs,
        full_seconds,
    )
    if args.orders:
        other_orders(trials, runs, settings, args, full_front, ref, full_epochs)


def project_thesis_grid(settings: HalvingSettings, survival: list[float], rate_per_hour: float = 1250.0) -> None:
    """The thesis' SST-2 grid (504 trials, up to 50 epochs) under the same rule: trial-epochs if every trial ran 50
    epochs, and under the scheduler with the share of trials that went on past each rung measured here (rungs past the
    measured ones: 1/eta of those that reached them, the rule's floor). Hours at ``rate_per_hour`` trial-epochs (the
    rate measured through the sweep runner on one H100 at 1/12 GPU per trial)."""
    rungs = list(rungs_for(settings, 50))
    shares = [*survival, *[1 / settings.eta] * (len(rungs) - len(survival))][: len(rungs)]
    alive, epochs, prev = 1.0, 0.0, 0
    for rung, share in zip(rungs, shares, strict=True):
        epochs += alive * (rung - prev)
        alive, prev = alive * share, rung
    epochs += alive * (50 - prev)
    full, scheduled = 504 * 50, 504 * epochs
    print(
        f"\nthesis SST-2 grid (504 trials, up to 50 epochs; rungs {rungs}; share going on past each rung"
        f" {', '.join(f'{x:.2f}' for x in shares)}):"
    )
    print(f"  full grid at most {full:,} trial-epochs = {full / rate_per_hour:.1f} h at {rate_per_hour:,.0f}/h")
    print(
        f"  pareto_halving about {scheduled:,.0f} trial-epochs = {scheduled / rate_per_hour:.1f} h (patience 7 cuts both)"
    )


def survival_shares(trials, runs, settings: HalvingSettings, max_epochs: int) -> list[float]:
    """Per rung below ``max_epochs``: the share of the trials that reached it which the rule let go on."""
    result = schedule(trials, runs, settings, max_epochs)
    shares = []
    for rung in rungs_for(settings, max_epochs):
        reached = [e for _, _, e, _ in result.values() if e >= rung]
        shares.append(sum(e > rung for e in reached) / max(len(reached), 1))
    return shares


if __name__ == "__main__":
    main()
