"""``featherweight distill``: one training run of one student; prints dev metrics and sizes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from featherweight_core import vocab
from featherweight_core.atomic import checked_output_dir, write_json_atomic
from featherweight_core.cli.common import (
    DEVICE_HELP,
    STUDENT_THREADS_HELP,
    add_encoder_args,
    add_setting_option,
    add_task_args,
    add_teacher_outputs_args,
    device_arg,
    device_or_auto,
    dropout_rate,
    fraction,
    nonnegative_float,
    one_line_errors,
    positive_int,
    resolve_task,
    seed_int,
    teacher_outputs_of,
)
from featherweight_core.errors import ConfigError
from featherweight_core.settings import settings_of
from featherweight_core.students.distill_config import TRAINING_SETTINGS, DistillConfig


def add_parser(sub) -> None:
    p = sub.add_parser(
        "distill", help="train one student (optionally distilled from teacher logits)", description=__doc__
    )
    one_line_errors(p)
    add_task_args(p)
    add_encoder_args(p)
    g = p.add_argument_group("student")
    g.add_argument("--arch", choices=vocab.ARCHS, default="bilstm", help="student architecture")
    add_setting_option(g, TRAINING_SETTINGS["pooling"])
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
        " (labels and logits from --teacher or --teacher-outputs; default: none)",
    )
    add_teacher_outputs_args(g, "instead of a teacher directory")
    g.add_argument(
        "--teacher-device",
        type=device_or_auto,
        default="auto",
        help="where the teacher runs if its logits are not stored: auto, cpu, cuda",
    )
    g.add_argument("--seed", type=seed_int, default=0, help="seed of initialisation and batch order")
    for name in settings_of(DistillConfig):  # --temperature, --max-epochs, --patience, ... (declared there)
        add_setting_option(g, TRAINING_SETTINGS[name])
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

    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.pipeline.prepare import DEFAULT_CACHE_DIR, prepare
    from featherweight_core.pipeline.run import run_distillation, student_config_for
    from featherweight_core.students.distill import resolve_temperature

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device!r}: CUDA is not available on this machine")
    task = resolve_task(args)
    student = student_config_for_args(args, task)
    settings = {name: getattr(args, name) for name in settings_of(DistillConfig)}
    settings["temperature"] = resolve_temperature(args.temperature, args.arch)
    cfg = DistillConfig(
        alpha=args.alpha, weight_decay=args.weight_decay, seed=args.seed, device=args.device, **settings
    )
    teachers = [
        o
        for o, v in (
            ("--teacher", args.teacher),
            ("--teacher-logits", args.teacher_logits),
            ("--teacher-outputs", args.teacher_outputs),
        )
        if v
    ]
    if cfg.alpha < 1.0 and not teachers:
        raise ConfigError(
            f"--alpha {cfg.alpha} < 1 distils from a teacher: pass --teacher DIR, --teacher-outputs FILE or"
            " --teacher-logits FILE"
        )
    if args.bootstrap and not (args.teacher or args.teacher_outputs):
        raise ConfigError("--bootstrap data is labelled by the teacher: pass --teacher DIR or --teacher-outputs FILE")
    if len(teachers) > 1:
        raise ConfigError(
            f"pass one teacher, not {'both' if len(teachers) == 2 else 'all of'} {' and '.join(teachers)}"
        )
    outputs = teacher_outputs_of(args, task)
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
        teacher_outputs=outputs,
        allow_missing=args.allow_missing_outputs,
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
        **(
            {"teacher_outputs": {"files": list(outputs.sources), "fingerprint": outputs.fingerprint}}
            if outputs is not None
            else {}
        ),
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
