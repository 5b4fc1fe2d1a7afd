"""``featherweight theseus``: compress a fine-tuned teacher by module replacement (BERT-of-Theseus).

A teacher with L layers becomes a successor with L/r layers (r = --replace-rate), each initialised from the first
layer of the block it replaces. During training each block runs its successor with probability p (the schedule),
else its original layers; only the successor layers (and the classifier head, unless --freeze-classifier) train.
The output is an ordinary fine-tuned teacher directory (or, with --quantize, an int8 one for inference).

Examples::

    featherweight theseus --teacher runs/teacher --output runs/teacher-theseus
    featherweight theseus --teacher runs/minilm-sst2 --data data/glue --output runs/minilm-sst2-3l \\
        --epochs 1 --max-length 64 --max-train-examples 20000
    featherweight distill --task sst2 --data data/glue --teacher runs/minilm-sst2-3l --alpha 0.5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from featherweight_core import vocab
from featherweight_core.atomic import checked_output_dir
from featherweight_core.cli.common import (
    add_task_args,
    device_or_auto,
    float_in,
    fraction,
    int_in,
    nonnegative_float,
    one_line_errors,
    output_parent,
    positive_float,
    positive_int,
    resolve_recorded_task,
    seed_int,
)
from featherweight_core.data.tasks import recorded_task_of
from featherweight_core.teacher.theseus_config import DEFAULT_REPLACING_FRACTION, DEFAULT_START_RATE, TheseusConfig


def add_parser(sub) -> None:
    p = sub.add_parser(
        "theseus",
        help="compress a fine-tuned teacher to fewer layers by module replacement",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--teacher", required=True, help="fine-tuned teacher directory (any HF encoder classifier)")
    add_task_args(p, recorded="the teacher's")
    p.add_argument("--output", required=True, help="directory for the compressed teacher")
    r = p.add_argument_group("module replacement")
    r.add_argument(
        "--replace-rate",
        type=int_in(2),
        default=2,
        help="teacher layers replaced by one successor layer (must divide the teacher's layer count)",
    )
    r.add_argument(
        "--schedule",
        choices=vocab.THESEUS_SCHEDULES,
        default="linear",
        help="replacement probability: linear p = min(k*step + b, 1), or constant p then 1.0",
    )
    r.add_argument("--p", type=fraction, default=0.5, help="constant schedule: replacement probability")
    r.add_argument("--b", type=fraction, default=DEFAULT_START_RATE, help="linear schedule: starting probability")
    r.add_argument(
        "--k",
        type=positive_float,
        default=None,
        help="linear schedule: increase of p per step (default: reach 1.0 after --replacing-fraction of the steps)",
    )
    r.add_argument(
        "--replacing-fraction",
        type=fraction,
        default=DEFAULT_REPLACING_FRACTION,
        help="share of the steps that replace modules before successor-only fine-tuning",
    )
    r.add_argument(
        "--freeze-classifier",
        action="store_true",
        help="keep the teacher's classifier head (pooler and classifier) as it is; train only the successor layers",
    )
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=3, help="passes over the training split")
    g.add_argument("--batch-size", type=positive_int, default=32, help="training batch size")
    g.add_argument(
        "--lr", type=positive_float, default=5e-5, help="peak learning rate (AdamW, linear warm-up and decay)"
    )
    g.add_argument("--max-length", type=positive_int, default=128, help="truncate inputs to this many tokens")
    g.add_argument("--warmup-ratio", type=float_in(0, 1, hi_open=True), default=0.06, help="linear warm-up fraction")
    g.add_argument("--weight-decay", type=nonnegative_float, default=0.01, help="AdamW weight decay")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of batch order and replacement draws")
    g.add_argument(
        "--max-train-examples",
        type=positive_int,
        default=None,
        help="train on a random subset of this size (default: all)",
    )
    g.add_argument("--device", type=device_or_auto, default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")
    g.add_argument("--cpu", action="store_true", help="same as --device cpu")
    g.add_argument(
        "--precision",
        choices=vocab.TEACHER_PRECISIONS,
        default="auto",
        help="autocast on GPU: auto = bf16 where supported, else fp16; CPU always fp32",
    )
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    o = p.add_argument_group("output")
    o.add_argument(
        "--quantize",
        action="store_true",
        help="save the successor int8-quantized (dynamic, every Linear) for inference; it is then no"
        " longer a teacher directory other commands load",
    )
    o.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output directory")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    o.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)
    one_line_errors(p)


def run(args: argparse.Namespace) -> int:
    with checked_output_dir(output_parent(args.output), f"--output {args.output}"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import torch

    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.data.loading import load_task_data
    from featherweight_core.teacher.finetune import check_model_output_dir
    from featherweight_core.teacher.loading import read_teacher_meta
    from featherweight_core.teacher.teacher_compression import measure_saved
    from featherweight_core.teacher.theseus import compress_theseus

    cfg = TheseusConfig(
        replace_rate=args.replace_rate,
        schedule=args.schedule,
        p=args.p,
        b=args.b,
        k=args.k,
        replacing_fraction=args.replacing_fraction,
        train_classifier=not args.freeze_classifier,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        seed=args.seed,
        max_train_examples=args.max_train_examples,
        device="cpu" if args.cpu else args.device,
        precision=args.precision,
        quantize=args.quantize,
    )
    meta = read_teacher_meta(args.teacher)  # a missing teacher fails here, before anything is loaded
    check_model_output_dir(Path(args.output), args.overwrite)
    if args.threads:
        torch.set_num_threads(args.threads)
    task = resolve_recorded_task(args, recorded_task_of(meta), f"teacher {args.teacher}")
    data = args.data or (meta.get("data_source") if task.custom else None)
    task_data = load_task_data(task, data)
    result = compress_theseus(
        args.teacher,
        task_data,
        args.output,
        cfg,
        progress=not args.no_progress,
        log=None if args.json else sys.stderr,
        overwrite=args.overwrite,
    )
    teacher_sizes = measure_saved(args.teacher)
    if args.json:
        print(json.dumps({"task": task.name, **result.to_dict(), "teacher": {**result.teacher, **teacher_sizes}}))
        return 0
    t = result.teacher
    kind = " (int8)" if result.quantized else ""
    print(f"{task.name}  theseus  {args.teacher} -> {args.output}{kind}")
    print(
        f"layers {t['layers']} -> {result.layers}  dev {result.score:.4f} (teacher {t['score']:.4f})"
        + (f"  test {result.test_metrics['score']:.4f}" if result.test_metrics else "")
    )
    print(
        f"params {t['params']:,} -> {result.params:,} ({result.trainable_params:,} trained)  gzip"
        f" {teacher_sizes['gzip_bytes']:,} -> {result.gzip_bytes:,} bytes  CPU latency {t['latency_ms']:.1f} ->"
        f" {result.latency_ms:.1f} ms"
        + (f" ({result.speedup:.2f}x faster)" if result.speedup else "")
        + f"  ({result.seconds:.0f}s)"
    )
    return 0
