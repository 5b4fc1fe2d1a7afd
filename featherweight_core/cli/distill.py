"""``featherweight distill``: one training run of one student; prints dev metrics and sizes."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from featherweight_core import vocab
from featherweight_core.atomic import checked_output_dir, write_json_atomic
from featherweight_core.cli.common import (
    DEVICE_HELP,
    STUDENT_THREADS_HELP,
    add_encoder_args,
    add_task_args,
    device_arg,
    device_or_auto,
    dropout_rate,
    fraction,
    nonnegative_float,
    one_line_errors,
    positive_float,
    positive_int,
    resolve_task,
    seed_int,
)
from featherweight_core.errors import ConfigError


def _temperature(value: str) -> float | str | None:
    if value in ("auto", "none"):
        return value
    try:
        t = float(value)
    except ValueError:
        t = math.nan
    if not (math.isfinite(t) and t > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, 'auto' or 'none', got {value!r}")
    return t


def add_parser(sub) -> None:
    p = sub.add_parser(
        "distill", help="train one student (optionally distilled from teacher logits)", description=__doc__
    )
    one_line_errors(p)
    add_task_args(p)
    add_encoder_args(p)
    g = p.add_argument_group("student")
    g.add_argument("--arch", choices=vocab.ARCHS, default="bilstm", help="student architecture")
    g.add_argument("--pooling", choices=vocab.POOLINGS, default="last", help="recurrent output (default: last)")
    g.add_argument("--hidden", type=positive_int, default=None, help="encoder hidden size (default: table 6.1)")
    g.add_argument(
        "--classifier-hidden", type=positive_int, default=None, help="classifier hidden size (default: table 6.1)"
    )
    g.add_argument(
        "--dropout", type=dropout_rate, default=None, help="dropout rate (default: table 6.1, 0.1 recurrent, 0.2 ffn)"
    )
    g = p.add_argument_group("distillation and training")
    g.add_argument(
        "--alpha", type=fraction, default=1.0, help="weight of the label CE loss; 1 = no teacher (default 1)"
    )
    g.add_argument(
        "--temperature",
        type=_temperature,
        default="auto",
        help="softmax temperature before the MSE: a number, 'none' (raw logits) or 'auto' (3 for ffn)",
    )
    g.add_argument(
        "--teacher-logits", default=None, help="teacher logits: .npy aligned to train rows, or .parquet (default: none)"
    )
    g.add_argument(
        "--teacher",
        default=None,
        help="fine-tuned teacher directory: its train logits come from the soft-target store"
        " (computed once, then cached under --cache-dir; default: none)",
    )
    g.add_argument(
        "--bootstrap",
        default=None,
        help="augmented-data file from `featherweight augment`: train on original + augmented examples"
        " (labels and logits from --teacher; default: none)",
    )
    g.add_argument(
        "--teacher-device",
        type=device_or_auto,
        default="auto",
        help="where the teacher runs if its logits are not stored: auto, cpu, cuda",
    )
    g.add_argument("--seed", type=seed_int, default=0, help="seed of initialisation and batch order")
    g.add_argument(
        "--max-epochs", type=positive_int, default=50, help="epochs at most (the thesis' 50; 3-5 for a quick run)"
    )
    g.add_argument(
        "--patience", type=positive_int, default=7, help="stop after this many epochs without a better dev score"
    )
    g.add_argument("--batch-size", type=positive_int, default=None, help="default: 50, or 256 for sentence pairs")
    g.add_argument(
        "--optimizer",
        choices=vocab.OPTIMIZERS,
        default=None,
        help="default: the thesis' per-arch choice (table 6.1): adadelta for bilstm, adam for rnn and ffn",
    )
    g.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="learning rate (default: table 6.1, 1.0 for bilstm/adadelta, 1e-4 for rnn and ffn/adam, tuned for"
        " 50 epochs; for short runs of 3-5 epochs use --optimizer adam --lr 3e-3)",
    )
    g.add_argument(
        "--weight-decay", type=nonnegative_float, default=None, help="default: table 6.1, 1e-5 for rnn, else 0"
    )
    g.add_argument("--device", type=device_arg, default="cpu", help=DEVICE_HELP)
    g.add_argument("--threads", type=positive_int, default=1, help=STUDENT_THREADS_HELP)
    g = p.add_argument_group("output")
    g.add_argument(
        "--output", default=None, help="directory for student.pt and result.json (default: none, nothing is saved)"
    )
    g.add_argument("--cache-dir", default=None, help="where encoded data is cached (default ~/.cache/featherweight)")
    g.add_argument("--json", action="store_true", help="print the result as one JSON object")
    g.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with checked_output_dir(args.output, f"--output {args.output}"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import torch

    from featherweight_core.pipeline.prepare import DEFAULT_CACHE_DIR, prepare
    from featherweight_core.pipeline.run import run_distillation, student_config_for
    from featherweight_core.students.distill import DistillConfig, resolve_temperature

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device!r}: CUDA is not available on this machine")
    task = resolve_task(args)
    student = student_config_for_args(args, task)
    cfg = DistillConfig(
        alpha=args.alpha,
        temperature=resolve_temperature(args.temperature, args.arch),
        max_epochs=args.max_epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        device=args.device,
    )
    if cfg.alpha < 1.0 and args.teacher_logits is None and args.teacher is None:
        raise ConfigError(
            f"--alpha {cfg.alpha} < 1 distils from a teacher: pass --teacher DIR or --teacher-logits FILE"
        )
    if args.bootstrap and not args.teacher:
        raise ConfigError("--bootstrap data is labelled by the teacher: pass --teacher DIR too")
    if args.teacher and args.teacher_logits:
        raise ConfigError("pass either --teacher DIR or --teacher-logits FILE, not both")
    prepared = prepare(
        task,
        args.data,
        args.embedding,
        args.dim,
        args.vocab_size,
        args.bpemb_dir,
        args.teacher_logits,
        args.cache_dir or DEFAULT_CACHE_DIR,
        verbose=True,
        teacher=args.teacher,
        bootstrap=args.bootstrap,
        teacher_device=args.teacher_device,
    )
    student = student_config_for(prepared, args.arch, **student)
    log = None if args.quiet or args.json else sys.stderr
    if log:
        print(f"data: {prepared.summary()}", file=log)

    def on_epoch(r):
        if log:
            print(
                f"epoch {r.epoch:3d}  loss {r.train_loss:.4f}  dev {r.score:.4f}  {r.seconds:.1f}s"
                f"  ({r.samples_per_second:.0f} samples/s)",
                file=log,
                flush=True,
            )

    result = run_distillation(
        prepared, student, cfg, args.output, on_epoch, train_split=prepared.train_split(args.bootstrap is not None)
    )
    summary = {
        "task": task.name,
        "task_spec": task.to_dict(),
        "split_info": prepared.split_info,
        **result.summary(),
        "bootstrap": args.bootstrap,
        "train_examples": len(prepared.train) + (len(prepared.bootstrap) if prepared.bootstrap else 0),
    }
    if args.output:
        write_json_atomic(Path(args.output) / "result.json", summary)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 0


def student_config_for_args(args: argparse.Namespace, task) -> dict:
    return {
        k: v
        for k, v in {
            "pooling": args.pooling,
            "hidden": args.hidden,
            "classifier_hidden": args.classifier_hidden,
            "dropout": args.dropout,
        }.items()
        if v is not None
    }


def _print_summary(s: dict) -> None:
    st = s["student"]
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in s["metrics"].items())
    p = s["params"]
    vocab_s = f" vocab {st['vocab_size']}" if st.get("vocab_size") is not None else ""  # char students have none
    print(
        f"{s['task']}  {st['arch']} {st['embedding']} d{st['emb_dim']}{vocab_s}"
        f"  alpha {s['distill']['alpha']}  seed {s['distill']['seed']}"
    )
    print(f"best epoch {s['best_epoch']}/{s['epochs']}  dev {metrics}")
    if s.get("test_metrics"):
        print("test (best epoch)  " + "  ".join(f"{k} {v:.4f}" for k, v in s["test_metrics"].items()))
    print(
        f"params {p['total']:,} (embedding {p['embedding']:,}, encoder {p['encoder']:,},"
        f" classifier {p['classifier']:,}; non-zero {p['nonzero']:,})"
    )
    print(f"size {s['disk_bytes']:,} bytes on disk, {s['gzip_bytes']:,} gzipped")
    if s["checkpoint"]:
        print(f"checkpoint {s['checkpoint']}")
