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
accuracy the run found at that size or smaller. Prints figures, asserts nothing.

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

from _util import load_average  # noqa: E402

from sweep.pareto_halving import HalvingSettings, ParetoHalving, near_front, rungs_for  # noqa: E402
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


def report(name, trials, runs, result, full_front, ref, full_epochs, full_seconds) -> None:
    epochs = sum(e for _, _, e, _ in result.values())
    seconds = sum(s for *_, s in result.values())
    points = [(sc, runs[tid]["gzip"], tid) for tid, (st, sc, _, _) in result.items() if st == "finished"]
    front = frontier(points)
    hv, hv_full = hypervolume(front, *ref), hypervolume(full_front, *ref)
    stopped = sum(st == "stopped" for st, *_ in result.values())
    print(f"\n== {name}")
    print(
        f"trials run {len(result)} (stopped {stopped}); trial-epochs {epochs} of {full_epochs}"
        f" ({100 * epochs / full_epochs:.1f}%); training seconds {seconds:.1f} of {full_seconds:.1f}"
        f" ({100 * seconds / full_seconds:.1f}%)"
    )
    print(f"hypervolume {hv:.2f} of {hv_full:.2f} ({100 * hv / hv_full:.1f}%); frontier {len(front)} points")
    worst = 0.0
    for score, size, tid in full_front:
        found = max((s for s, z, _ in points if z <= size), default=ref[0])  # none found: the reference score
        worst = max(worst, (score - found) * 100)
        mark = "" if tid in {p[2] for p in front} else "  (not on this run's frontier)"
        print(f"  full-grid point {size:>8,} B acc {score:.4f}: best found at that size or smaller {found:.4f}{mark}")
    print(f"largest miss on the full grid's frontier: {worst:.2f} points of accuracy")


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
    p.add_argument("--seeds-margin", type=float, default=1.0)
    p.add_argument(
        "--histories", help="JSON file of the full grid's per-epoch results: written after training, read if it exists"
    )
    args = p.parse_args()
    print(f"load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        spec = make_spec(args, Path(tmp))
        trials = spec.distill_trials()
        print(f"full grid: {len(trials)} trials x up to {args.max_epochs} epochs (synthetic, n_train {args.n_train})")
        t0 = time.perf_counter()
        if args.histories and Path(args.histories).is_file():  # the same grid trained before: replay only
            runs = json.loads(Path(args.histories).read_text())
            missing = [t.describe() for t in trials if t.trial_id not in runs]
            if missing:
                raise SystemExit(f"error: {args.histories} lacks trials of this grid, e.g. {missing[0]}")
        else:
            runs = train_grid(spec, trials)
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

    settings = HalvingSettings(eta=args.eta)
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

    first = {t.trial_id for t in trials if t.seed == 0}
    phase1 = schedule(trials, runs, settings, args.max_epochs, only=first)
    done = {tid: (sc, runs[tid]["params"]) for tid, (st, sc, _, _) in phase1.items() if st == "finished"}
    chosen = near_front(done, args.seeds_margin)
    key = {t.trial_id: (t.arch, t.emb_dim, t.vocab_size) for t in trials}
    chosen_configs = {key[tid] for tid in chosen}
    more = {
        t.trial_id: full[t.trial_id]
        for t in trials
        if t.seed != 0 and (t.arch, t.emb_dim, t.vocab_size) in chosen_configs
    }
    print(f"\nseeds where they matter: {len(chosen_configs)} of {len(first)} configurations get their other seeds")
    report(
        f"pareto_halving with seeds: first (margin {args.seeds_margin:g} points)",
        trials,
        runs,
        {**phase1, **more},
        full_front,
        ref,
        full_epochs,
        full_seconds,
    )


if __name__ == "__main__":
    main()
