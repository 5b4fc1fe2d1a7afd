"""The whole size range of SST-2 on one skyline: a MiniLM teacher, its Theseus successor (6 -> 3 layers), BERT-Vision
heads over its first k = 2, 4, 6 layers, int8 forms of both, tiny students and compressed students, from one sweep.

Everything runs through ``featherweight sweep run`` from a spec this script writes: the teacher is fine-tuned from a
local MiniLM backbone (a Ray task), labels the training sentences, the students are distilled and compressed, and the
``teacher_compression`` stage makes the smaller transformers. On a CPU the run is sized to fit: a seeded random subset
of SST-2 train (``--train-examples``, stated in the output), the full GLUE dev set for every score.

Printed: the sweep's wall time; per teacher-compression trial its dev accuracy, the share of the teacher's it keeps,
parameters (total and trainable), gzip size and CPU batch-1 latency with the speed-up over the teacher, both as
the trial recorded them (the teacher timed beside the model in the trial's process) and re-measured here in one
process, one thread, every model interleaved (the ratios are the figures to compare: the machine is shared); the
skyline of the whole range; the path of the report's Pareto chart (PNG).

    export FEATHERWEIGHT_SHARED_DATA=data       # holding glue/SST-2 and bpemb/; or pass --data and --bpemb-dir
    .venv/bin/python bench/bench_teacher_compression.py --backbone models/all-MiniLM-L6-v2 --out runs/bench-tc
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import data_path, load_average  # noqa: E402

SWEEP = "tc-bench"


def write_subset(glue: Path, out: Path, n_train: int, seed: int) -> dict[str, int]:
    """GLUE SST-2 in its own layout under ``out/SST-2``: a seeded random ``n_train`` rows of train, all of dev."""
    src, dst = glue / "SST-2", out / "SST-2"
    dst.mkdir(parents=True, exist_ok=True)
    with open(src / "train.tsv", newline="") as f:
        header, *rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=min(n_train, len(rows)), replace=False))
    with open(dst / "train.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows[i] for i in pick)
    (dst / "dev.tsv").write_bytes((src / "dev.tsv").read_bytes())
    return {"train": len(pick), "dev": sum(1 for _ in open(dst / "dev.tsv")) - 1}


def spec_text(args, glue: Path, bpemb: Path) -> str:
    spec = {
        "name": SWEEP,
        "description": f"MiniLM teacher, Theseus and BERT-Vision, students; SST-2 train subset of {args.train_examples}",
        "storage": str(args.out / "runs"),
        "database": str(args.out / "runs" / "featherweight.duckdb"),
        "bpemb_dir": str(bpemb),
        "tasks": {
            "sst2": {
                "data": str(glue),
                "teacher": {
                    "model": str(args.backbone),
                    "finetune": {"epochs": 1, "lr": 1.0e-4, "batch_size": 32, "max_length": 64, "seed": 0},
                },
            }
        },
        "grid": {
            "archs": ["bilstm", "ffn"],
            "embeddings": ["bpe", "hash"],
            "dims": [25],
            "vocab_sizes": [1000],
            "alphas": [0.0],
            "seeds": [0],
        },
        "training": {"max_epochs": args.student_epochs, "patience": 2, "optimizer": "adam", "lr": 0.003},
        "resources": {"cpus_per_trial": 1, "teacher_cpus": 2, "teacher_compression_cpus": 1},
        "compress": {
            "parents": "skyline",
            "size_measure": "gzip_bytes",
            "search": {"num_samples": 4, "seed": 0, "targets": {"embedding": [0.0, 0.6], "encoder": [0.0, 0.8]}},
            "quantize": {"embedding": True, "encoder": True, "classifier": True},
        },
        "teacher_compression": {
            "theseus": {
                "r": 2,
                "schedule": "linear",
                "epochs": args.theseus_epochs,
                "lr": 1.0e-4,
                "batch_size": 32,
                "max_length": 64,
                "quantize": [False, True],
            },
            "bertvision": {
                "layers": [2, 4, 6],
                "head": "adapter",
                "epochs": 10,
                "max_length": 64,
                "quantize": [False, True],
            },
        },
    }
    return json.dumps(spec, indent=2)  # JSON is YAML


def remeasure(rows: list[dict], teacher_dir: Path, texts, n: int) -> dict[str, float]:
    """CPU batch-1 latency of the teacher and each output in this process, one thread, interleaved (each sentence
    through every model in turn, so load changes hit all alike)."""
    import torch

    from featherweight_core.teacher.compressed import load_compressed
    from featherweight_core.teacher.loading import load_classifier
    from featherweight_core.teacher.teacher_compression import cpu_latencies_ms

    torch.set_num_threads(1)
    teacher, tok = load_classifier(teacher_dir)
    models = {"teacher": teacher.eval()}
    for r in rows:
        models[r["trial_id"]] = load_compressed(r["checkpoint_path"])[0]  # every output keeps the teacher's tokenizer
    ms = cpu_latencies_ms(list(models.values()), tok, texts, 64, n=n, min_seconds=2.0)
    return dict(zip(models, ms, strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", type=Path, required=True, help="local MiniLM (or any HF encoder) directory")
    ap.add_argument("--data", help="GLUE directory holding SST-2/ (default: $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--bpemb-dir", help="BPEmb directory (default: $FEATHERWEIGHT_SHARED_DATA/bpemb)")
    ap.add_argument("--out", type=Path, required=True, help="working directory (spec, data subset, runs, report)")
    ap.add_argument("--train-examples", type=int, default=8000, help="SST-2 train rows used (default 8000)")
    ap.add_argument("--theseus-epochs", type=int, default=2, help="Theseus training epochs (default 2)")
    ap.add_argument("--student-epochs", type=int, default=5, help="student max epochs (default 5)")
    ap.add_argument("--latency-examples", type=int, default=100, help="dev sentences timed (default 100)")
    args = ap.parse_args()
    glue = data_path(args.data, "glue", "--data")
    bpemb = data_path(args.bpemb_dir, "bpemb", "--bpemb-dir")
    args.out.mkdir(parents=True, exist_ok=True)
    sub = write_subset(glue, args.out / "glue", args.train_examples, seed=0)
    spec = args.out / "spec.yaml"
    spec.write_text(spec_text(args, args.out / "glue", bpemb) + "\n")
    print(
        f"SST-2 subset: {sub['train']} train rows (seeded random), {sub['dev']} dev rows (all); load {load_average()}"
    )
    exe = Path(sys.executable).parent / "featherweight"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    rc = subprocess.call([str(exe), "sweep", "run", str(spec)], env=env)
    wall = time.perf_counter() - t0
    print(f"sweep: exit {rc} in {wall / 60:.1f} min; load {load_average()}")
    if rc:
        return rc

    from analysis.views import open_store

    db = args.out / "runs" / "featherweight.duckdb"
    store = open_store(db, read_only=True)

    def dicts(sql: str) -> list[dict]:
        return store.query(sql).to_dict("records")

    rows = dicts(
        "SELECT trial_id, label, arch, layers, quantization, score, params, trainable_params, gzip_bytes,"
        " latency_ms, teacher_latency_ms, checkpoint_path, teacher FROM trial_results"
        f" WHERE sweep = '{SWEEP}' AND stage = 'teacher_compression' ORDER BY arch DESC, layers, quantization"
    )
    base = dicts(
        f"SELECT name, score, params, gzip_bytes FROM baselines WHERE sweep = '{SWEEP}' AND source = 'measured'"
    )
    sky = dicts(
        "SELECT skyline_rank, name, stage, score_value, size_value FROM skyline"
        f" WHERE sweep = '{SWEEP}' AND score_measure = 'score' AND size_measure = 'gzip_bytes'"
        " ORDER BY skyline_rank"
    )
    teacher = base[0]
    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import get_task

    dev = load_task_data(get_task("sst2"), args.out / "glue").splits["validation"].texts
    ms = remeasure(rows, Path(rows[0]["teacher"]), dev, args.latency_examples)
    print(
        f"\nteacher {teacher['name']}: dev {teacher['score']:.2%}, {teacher['params']:,} params,"
        f" {teacher['gzip_bytes'] / 1e6:.1f} MB gzip, {ms['teacher']:.1f} ms batch-1 CPU (1 thread)"
    )
    head = (
        f"{'model':<28}{'dev acc':>8}{'kept':>8}{'params':>12}{'trainable':>11}{'gzip MB':>9}"
        f"{'ms (trial)':>11}{'x (trial)':>10}{'ms (here)':>10}{'x (here)':>9}"
    )
    print(head)
    for r in rows:
        here = ms[r["trial_id"]]
        t_ms = r.get("teacher_latency_ms")
        in_trial = f"{t_ms / r['latency_ms']:>9.2f}x" if t_ms == t_ms and t_ms else f"{'-':>10}"  # NaN: not timed
        print(
            f"{r['label']:<28}{r['score']:>8.2%}{r['score'] / teacher['score']:>8.1%}{r['params']:>12,}"
            f"{r['trainable_params']:>11,}{r['gzip_bytes'] / 1e6:>9.2f}{r['latency_ms']:>11.1f}{in_trial}"
            f"{here:>10.1f}{ms['teacher'] / here:>8.2f}x"
        )
    print("\nskyline (dev accuracy vs gzip bytes, all stages and baselines):")
    for s in sky:
        print(
            f"  {s['skyline_rank']:>2}  {s['name']:<30} {s['stage'] if isinstance(s['stage'], str) else 'baseline':<20} {s['score_value']:.2%}"
            f"  {s['size_value'] / 1e6:10.3f} MB"
        )
    report = args.out / "report"
    subprocess.check_call([str(exe), "report", SWEEP, "--db", str(db), "--output", str(report)], env=env)
    for png in sorted(report.glob("*.png")):
        print(f"chart: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
