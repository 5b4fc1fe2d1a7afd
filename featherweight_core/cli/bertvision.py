"""``featherweight bertvision``: a small head on the hidden states of a fine-tuned teacher's first k layers.

The teacher's hidden states of every layer ([CLS] or mean-pooled) are computed once and cached (CACHE_DIR/hiddenstates, keyed
by the teacher's content); a small head trains on them; the output directory holds the teacher cut to k layers,
the head (or the int8 form of both with --quantize), the tokenizer and featherweight_compressed.json. The dev
score printed is the saved model's, measured end to end.

Examples:

    featherweight bertvision --teacher runs/minilm-sst2 --data data/glue --layers 4 --output runs/bv-k4
    featherweight bertvision --teacher runs/teacher --task synthetic --head concat --quantize --output runs/bv-q
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
    dropout_rate,
    nonnegative_float,
    one_line_errors,
    output_parent,
    positive_float,
    positive_int,
    resolve_recorded_task,
    seed_int,
)
from featherweight_core.data.tasks import recorded_task_of
from featherweight_core.teacher.bertvision_config import BertVisionConfig
from featherweight_core.teacher.config import TeacherError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bertvision",
        help="compress a fine-tuned teacher: its first k layers, frozen, and a small head on their hidden states",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--teacher", required=True, help="fine-tuned teacher directory (e.g. from `teacher finetune`)")
    add_task_args(p, recorded="the teacher's")
    p.add_argument("--output", required=True, help="directory to create for the compressed model")
    g = p.add_argument_group("BERT-Vision")
    g.add_argument(
        "--layers",
        type=positive_int,
        default=None,
        help="read and keep the teacher's first K transformer layers (default: all of them)",
    )
    g.add_argument(
        "--head",
        choices=vocab.BERTVISION_HEADS,
        default="adapter",
        help="adapter: a shared per-layer adapter, flattened, then a linear classifier; concat: a learned"
        " weighted sum of the layers, then a linear classifier",
    )
    g.add_argument("--adapter-size", type=positive_int, default=128, help="width of the adapter head")
    g.add_argument(
        "--pooling",
        choices=vocab.BERTVISION_POOLINGS,
        default="first",
        help="what the head reads of each layer: first = the [CLS] token (as the paper), mean = the mean"
        " over the real tokens",
    )
    g.add_argument(
        "--quantize",
        action="store_true",
        help="save the model with int8 dynamic quantization of every Linear layer; the head then trains on the"
        " int8 teacher's hidden states, computed one example at a time (slower than the float ones)",
    )
    t = p.add_argument_group("training the head")
    t.add_argument("--epochs", type=positive_int, default=10, help="epochs over the cached hidden states")
    t.add_argument("--batch-size", type=positive_int, default=32, help="training batch size")
    t.add_argument("--lr", type=positive_float, default=1e-3, help="AdamW learning rate")
    t.add_argument("--weight-decay", type=nonnegative_float, default=0.01, help="AdamW weight decay")
    t.add_argument("--dropout", type=dropout_rate, default=0.1, help="dropout before the classifier")
    t.add_argument("--seed", type=seed_int, default=0, help="seed of the head's weights and the batch order")
    t.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="truncate inputs to this many tokens (default: the teacher's fine-tuning max length)",
    )
    t.add_argument(
        "--max-train-examples",
        type=positive_int,
        default=None,
        help="train on a random subset of this size, the same for every --seed (default: all)",
    )
    r = p.add_argument_group("runtime")
    r.add_argument(
        "--cache-dir",
        default=None,
        help="hidden states are cached in CACHE_DIR/hiddenstates (default ~/.cache/featherweight)",
    )
    r.add_argument("--device", type=device_or_auto, default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")
    r.add_argument("--cpu", action="store_true", help="same as --device cpu")
    r.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    r.add_argument(
        "--no-teacher-latency",
        action="store_true",
        help="do not time the teacher for the comparison (saves loading it once more)",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output directory")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run_bertvision)
    one_line_errors(p)


def run_bertvision(args: argparse.Namespace) -> int:
    with checked_output_dir(output_parent(args.output), f"--output {args.output}"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import torch

    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.data.loading import load_task_data
    from featherweight_core.pipeline.prepare import DEFAULT_CACHE_DIR
    from featherweight_core.teacher.bertvision import train_bertvision
    from featherweight_core.teacher.finetune import check_model_output_dir
    from featherweight_core.teacher.loading import read_teacher_meta
    from featherweight_core.teacher.softtargets import teacher_fingerprint

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = BertVisionConfig(
        layers=args.layers,
        head=args.head,
        adapter_size=args.adapter_size,
        pooling=args.pooling,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        seed=args.seed,
        max_length=args.max_length,
        max_train_examples=args.max_train_examples,
        device="cpu" if args.cpu else args.device,
        quantize=args.quantize,
    )
    check_model_output_dir(Path(args.output), args.overwrite)  # before the teacher and the data are loaded
    teacher = Path(args.teacher)
    if not teacher.exists():
        raise TeacherError(f"{teacher}: teacher directory not found")
    meta = read_teacher_meta(teacher)
    teacher_fingerprint(teacher)  # a broken teacher directory fails here, before any data is read
    task = resolve_recorded_task(args, recorded_task_of(meta), f"teacher {args.teacher}")
    task_data = load_task_data(task, args.data or (meta.get("data_source") if task.custom else None))
    log = None if (args.json or args.no_progress) else sys.stderr
    cache = Path(args.cache_dir or DEFAULT_CACHE_DIR) / "hiddenstates"
    from featherweight_core.teacher.bertvision_states import HiddenStateCache

    store = HiddenStateCache(cache, device=cfg.device, progress=not args.no_progress)
    result = train_bertvision(
        teacher,
        task_data,
        args.output,
        cfg,
        cache_dir=store,
        progress=not args.no_progress,
        log=log,
        overwrite=args.overwrite,
        time_teacher=not args.no_teacher_latency,
    )
    if args.json:
        print(json.dumps({**result.to_dict(), "hidden_states_computed": store.model_runs > 0}))
        return 0
    t = result.teacher
    served = "computed" if store.model_runs else "served from the cache"
    print(
        f"{task.name}  {args.teacher} -> {args.output}  (bertvision, {result.settings['head']} head,"
        f" {result.layers}/{t['layers']} layers{', int8' if result.quantized else ''}; hidden states {served})"
    )
    rows = [
        ("", "dev score", "params", "trainable", "gzip MB", "latency ms", "speed-up", "layers"),
        (
            "teacher",
            _f(t.get("score")),
            f"{t['params']:,}",
            "",
            f"{t['gzip_bytes'] / 1e6:.2f}",
            _f(t.get("latency_ms"), 2),
            "1.00x" if t.get("latency_ms") else "-",
            str(t["layers"]),
        ),
        (
            "bertvision",
            _f(result.score),
            f"{result.params:,}",
            f"{result.trainable_params:,}",
            f"{result.gzip_bytes / 1e6:.2f}",
            _f(result.latency_ms, 2),
            f"{result.speedup:.2f}x" if result.speedup else "-",
            str(result.layers),
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    print(
        f"{result.seconds:.1f}s; head on cached states: dev {result.metrics['cache_score']:.4f}, saved model agrees"
        f" on {result.metrics['cache_agreement']:.1%} of dev"
    )
    return 0


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
