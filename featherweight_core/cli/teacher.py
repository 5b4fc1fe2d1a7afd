"""``featherweight teacher``: build a small teacher, fine-tune any HF sequence classifier, compute/store its logits.

featherweight teacher init-small --task synthetic --output runs/small-teacher
featherweight teacher finetune --model runs/small-teacher --task synthetic --output runs/teacher --epochs 4 --lr 2e-3
featherweight teacher finetune --model .cache/minilm --task sst2 --data data/glue --output runs/minilm-sst2
featherweight teacher logits --teacher runs/minilm-sst2 --task sst2 --data data/glue --split train
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
    nonnegative_float,
    nonnegative_int,
    one_line_errors,
    output_parent,
    positive_float,
    positive_int,
    resolve_recorded_task,
    resolve_task,
    seed_int,
)
from featherweight_core.data.tasks import recorded_task_of
from featherweight_core.teacher.config import TeacherConfig


def add_parser(sub) -> None:
    p = sub.add_parser(
        "teacher",
        help="build a small teacher, fine-tune a transformer teacher, store its logits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tsub = p.add_subparsers(dest="teacher_command", metavar="SUBCOMMAND", required=True)

    s = tsub.add_parser(
        "init-small",
        help="build an untrained small BERT teacher offline (tokenizer trained here)",
        description="Build an untrained small BERT teacher offline: a WordPiece tokenizer trained on the"
        " task's training text and a tiny BERT; fine-tune it with `teacher finetune`.",
    )
    add_task_args(s)
    s.add_argument("--output", required=True, help="model directory to create")
    s.add_argument("--vocab-size", type=positive_int, default=2000, help="WordPiece vocabulary (default 2000)")
    s.add_argument("--hidden", type=positive_int, default=64, help="hidden size (default 64)")
    s.add_argument("--layers", type=positive_int, default=2, help="transformer layers (default 2)")
    s.add_argument("--heads", type=positive_int, default=2, help="attention heads (default 2)")
    s.add_argument("--intermediate", type=positive_int, default=128, help="feed-forward size (default 128)")
    s.add_argument("--max-length", type=positive_int, default=128, help="max positions (default 128)")
    s.add_argument("--seed", type=seed_int, default=0, help="seed of the initial weights")
    s.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output directory")
    s.set_defaults(func=run_init_small)

    f = tsub.add_parser(
        "finetune",
        help="fine-tune a HF sequence classifier (hub id or directory) on a task",
        description="Fine-tune a Hugging Face sequence classifier (hub id or local directory) on a task"
        " with AdamW and linear warm-up; writes the model and teacher_metrics.json to --output.",
    )
    f.add_argument("--model", required=True, help="hub id (e.g. roberta-large; needs the hub or the HF cache) or dir")
    add_task_args(f)
    f.add_argument("--output", required=True, help="directory for the fine-tuned teacher and teacher_metrics.json")
    g = f.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=1, help="default 1")
    g.add_argument("--batch-size", type=positive_int, default=32, help="default 32")
    g.add_argument("--lr", type=positive_float, default=5e-5, help="peak learning rate (default 5e-5)")
    g.add_argument(
        "--max-length", type=positive_int, default=128, help="truncate inputs to this many tokens (default 128)"
    )
    g.add_argument(
        "--warmup-ratio", type=float_in(0, 1, hi_open=True), default=0.06, help="linear warm-up fraction (default 0.06)"
    )
    g.add_argument("--weight-decay", type=nonnegative_float, default=0.01, help="AdamW weight decay (default 0.01)")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of the classifier head and batch order")
    g.add_argument(
        "--max-train-examples",
        type=positive_int,
        default=None,
        help="train on a random subset of this size (default: all)",
    )
    g.add_argument(
        "--eval-every",
        type=nonnegative_int,
        default=0,
        help="also print dev metrics every N steps (default: per epoch)",
    )
    _add_runtime_args(g)
    f.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output directory")
    f.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    f.set_defaults(func=run_finetune)

    lg = tsub.add_parser(
        "logits",
        help="teacher logits for task splits or an augmented file, via the soft-target store",
        description="Compute a fine-tuned teacher's logits for task splits or an augmented-data file; they are"
        " stored once in the soft-target store (CACHE_DIR/softtargets) and served from it afterwards.",
    )
    lg.add_argument("--teacher", required=True, help="fine-tuned teacher directory")
    add_task_args(lg, recorded="the teacher's")
    lg.add_argument(
        "--split", action="append", default=None, help="split to score (repeatable; default: train and the dev splits)"
    )
    lg.add_argument(
        "--augmented", default=None, help="score this augmented-data file instead of task splits (default: none)"
    )
    lg.add_argument(
        "--output", default=None, help="also copy the logits to this .parquet file (one split only; default: none)"
    )
    lg.add_argument(
        "--cache-dir", default=None, help="store root is CACHE_DIR/softtargets (default ~/.cache/featherweight)"
    )
    lg.add_argument("--batch-size", type=positive_int, default=128, help="inference batch size (default 128)")
    lg.add_argument(
        "--max-length", type=positive_int, default=None, help="default: the teacher's fine-tuning max length"
    )
    _add_runtime_args(lg)
    lg.add_argument("--json", action="store_true", help="print one JSON object")
    lg.set_defaults(func=run_logits)
    one_line_errors(p, s, f, lg)


def _add_runtime_args(g) -> None:
    g.add_argument("--device", type=device_or_auto, default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")
    g.add_argument("--cpu", action="store_true", help="same as --device cpu")
    g.add_argument(
        "--precision",
        choices=vocab.TEACHER_PRECISIONS,
        default="auto",
        help="autocast on GPU: auto = bf16 where supported, else fp16; CPU always fp32",
    )
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def _setup(args) -> str:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    return "cpu" if args.cpu else args.device


def run_init_small(args: argparse.Namespace) -> int:
    with checked_output_dir(output_parent(args.output), f"--output {args.output}"):
        return _run_init_small(args)


def _run_init_small(args: argparse.Namespace) -> int:
    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.data.loading import load_task_data
    from featherweight_core.teacher.finetune import check_model_output_dir
    from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_teacher

    check_model_output_dir(Path(args.output), args.overwrite)  # before the data is loaded
    task = resolve_task(args)
    cfg = SmallBertConfig(
        vocab_size=args.vocab_size,
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
        intermediate=args.intermediate,
        max_length=args.max_length,
        seed=args.seed,
    )
    task_data = load_task_data(task, args.data)
    out = build_small_teacher(task_data, args.output, cfg, overwrite=args.overwrite)
    print(f"small teacher (untrained) in {out}: {cfg.layers} layers, hidden {cfg.hidden}, vocab {cfg.vocab_size}")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    with checked_output_dir(output_parent(args.output), f"--output {args.output}"):
        return _run_finetune(args)


def _run_finetune(args: argparse.Namespace) -> int:
    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.data.loading import load_task_data
    from featherweight_core.teacher.finetune import check_model_output_dir, finetune_teacher

    check_model_output_dir(Path(args.output), args.overwrite)  # before the model and data are loaded
    device = _setup(args)
    task = resolve_task(args)
    cfg = TeacherConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        seed=args.seed,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        precision=args.precision,
        device=device,
        max_train_examples=args.max_train_examples,
        eval_every=args.eval_every,
    )
    task_data = load_task_data(task, args.data)
    metrics = finetune_teacher(
        args.model,
        task_data,
        args.output,
        cfg,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        log=None if args.json else sys.stderr,
    )
    if args.json:
        print(json.dumps({"task": task.name, "model": args.model, "output": args.output, **metrics}))
    else:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float) and k != "train_seconds")
        print(f"{task.name}  {args.model} -> {args.output}")
        print(
            f"dev {shown}  ({metrics['train_examples']:,} examples, {metrics['steps']} steps,"
            f" {metrics['train_seconds']:.1f}s)"
        )
    return 0


def run_logits(args: argparse.Namespace) -> int:
    with checked_output_dir(output_parent(args.output), f"--output {args.output}"):
        return _run_logits(args)


def _run_logits(args: argparse.Namespace) -> int:
    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.taskdata import DataError
    from featherweight_core.pipeline.prepare import DEFAULT_CACHE_DIR
    from featherweight_core.students.measure import accuracy
    from featherweight_core.teacher.augment import format_label_distribution, read_augmented
    from featherweight_core.teacher.loading import read_teacher_meta
    from featherweight_core.teacher.softtargets import SoftTargetStore, teacher_fingerprint, write_logits

    device = _setup(args)
    meta = read_teacher_meta(args.teacher)
    teacher_fingerprint(args.teacher)  # a bad teacher directory fails here, before any data is read
    task = resolve_recorded_task(args, recorded_task_of(meta), f"teacher {args.teacher}")
    data = args.data or (meta.get("data_source") if task.custom else None)
    store = SoftTargetStore(
        Path(args.cache_dir or DEFAULT_CACHE_DIR) / "softtargets",
        device=device,
        batch_size=args.batch_size,
        precision=args.precision,
        progress=not args.no_progress,
    )
    jobs = []
    if args.augmented:
        if args.split:
            raise DataError("pass either --augmented FILE or --split NAME, not both")
        aug, _ = read_augmented(args.augmented, task)
        jobs.append((f"{task.name}-bootstrap", aug, Path(args.augmented).name, True))
    else:
        task_data = load_task_data(task, data)
        names = args.split or ["train", *[s for s in task.eval_splits if s in task_data.splits]]
        for name in names:
            if name not in task_data.splits:
                raise DataError(f"task {task.name!r} has no split {name!r}; it has {sorted(task_data.splits)}")
            jobs.append((f"{task.name}-{name}", task_data.splits[name], name, False))
    if args.output and len(jobs) != 1:
        raise DataError(f"--output writes one file: pick one --split (got {[j[2] for j in jobs]})")
    results = []
    for store_name, split, shown, augmented in jobs:
        runs = store.model_runs
        keys, logits = store.get_or_compute(args.teacher, split, store_name, max_length=args.max_length)
        pred = logits.argmax(-1)
        r = {"split": shown, "rows": len(keys), "computed": store.model_runs > runs}
        if augmented:
            r["label_distribution"] = format_label_distribution(
                task.label_names, {"augmented (source label)": split.labels, "augmented (teacher argmax)": pred}
            )
            r["agreement_with_source_label"] = accuracy(pred, split.labels)
        else:
            r["accuracy"] = accuracy(pred, split.labels)
        if args.output:
            write_logits(args.output, keys, logits)
            r["output"] = args.output
        results.append(r)
    if args.json:
        print(json.dumps({"teacher": args.teacher, "task": task.name, "results": results}))
        return 0
    for r in results:
        how = "computed" if r["computed"] else "served from the store"
        acc = r.get("accuracy", r.get("agreement_with_source_label"))
        what = "teacher accuracy" if "accuracy" in r else "teacher agrees with source label"
        print(f"{r['split']}: {r['rows']:,} rows, {how}; {what} {acc:.4f}")
        if "label_distribution" in r:
            print(r["label_distribution"])
    return 0
