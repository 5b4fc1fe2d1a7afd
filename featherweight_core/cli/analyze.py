"""``featherweight analyze``: size analysis of a student configuration without training (thesis appendix C.5), or
of a trained student (``--checkpoint``: its configuration and task come from the checkpoint)."""

from __future__ import annotations

import argparse
import json

from featherweight_core import vocab
from featherweight_core.cli.common import (
    add_setting_option,
    add_task_args,
    load_student_with_task,
    one_line_errors,
    positive_int,
    resolve_task,
)
from featherweight_core.errors import ConfigError
from featherweight_core.students.distill_config import POOLING


def add_parser(sub) -> None:
    p = sub.add_parser(
        "analyze", help="parameter counts and sizes of a student configuration (no training)", description=__doc__
    )
    one_line_errors(p)
    p.add_argument(
        "--checkpoint",
        default=None,
        help="student.pt: analyze this trained student (config and task from the checkpoint; default: none)",
    )
    add_task_args(p, recorded="the checkpoint's")
    p.add_argument(
        "--arch", choices=vocab.ARCHS, help="student arch (required without --checkpoint; default: the checkpoint's)"
    )
    p.add_argument(
        "--embedding",
        choices=vocab.EMBEDDINGS,
        help="embedding (required without --checkpoint; default: the checkpoint's)",
    )
    p.add_argument(
        "--dim",
        type=positive_int,
        help="embedding dimension (required without --checkpoint; default: the checkpoint's)",
    )
    p.add_argument(
        "--vocab-size",
        type=positive_int,
        default=None,
        help=f"BPE vocabulary / hash K (default {vocab.DEFAULT_VOCAB_SIZE})",
    )
    p.add_argument(
        "--bpemb-dir",
        default=None,
        help="accepted for symmetry with distill; sizes do not need the BPEmb files (default: none)",
    )
    add_setting_option(p, POOLING)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.students.measure import MEASURING_COPIES, check_student_fits, size_report
    from featherweight_core.students.models import StudentConfig, build_student

    if args.checkpoint:
        model, cfg, meta, task = load_student_with_task(args)
    else:
        missing = [f"--{k}" for k in ("task", "arch", "embedding", "dim") if getattr(args, k) is None]
        if missing:
            raise ConfigError(f"analyze needs {', '.join(missing)} (or --checkpoint STUDENT.pt)")
        task = resolve_task(args)
        cfg = StudentConfig(
            args.arch,
            args.embedding,
            args.dim,
            task.num_labels,
            pair=task.pair,
            vocab_size=args.vocab_size,
            pooling=args.pooling,
        ).resolved()
        # counted without allocating first: a size that cannot be built and measured here is one error line
        check_student_fits(cfg, _sizes_given(args, cfg), copies=MEASURING_COPIES)
        model = build_student(cfg)
    report = {"task": task.name, "task_spec": task.to_dict(), "config": cfg.to_dict(), **size_report(model)}
    if args.checkpoint:
        report["checkpoint"] = str(args.checkpoint)
        report["metrics"] = meta.get("metrics", {})
        report["test_metrics"] = meta.get("test_metrics", {})
    if args.json:
        print(json.dumps(report))
        return 0
    p = report["params"]
    vocab_s = f" vocab {cfg.vocab_size}" if cfg.vocab_size is not None else ""  # char students have none
    print(
        f"{task.name}  {cfg.arch} {cfg.embedding} d{cfg.emb_dim}{vocab_s}"
        f"  {task.num_labels} labels{' (pairs)' if task.pair else ''}"
    )
    for k in ("total", "embedding", "encoder", "classifier", "nonzero"):
        print(f"  params {k:<11}{p[k]:>12,}")
    print(f"  disk bytes        {report['disk_bytes']:>12,}")
    print(f"  gzip bytes        {report['gzip_bytes']:>12,}")
    for name in ("metrics", "test_metrics"):
        if report.get(name):
            shown = "  ".join(f"{k} {v:.4f}" for k, v in report[name].items() if isinstance(v, float))
            print(f"  {'dev' if name == 'metrics' else 'test'}  {shown}")
    return 0


def _sizes_given(args: argparse.Namespace, cfg) -> str:
    """The options that size the student, as given: ``--dim 8 --vocab-size 100 (arch ffn, embedding hash)``."""
    vocab_s = f" --vocab-size {args.vocab_size}" if args.vocab_size is not None else ""
    return f"--dim {args.dim}{vocab_s} (arch {cfg.arch}, embedding {cfg.embedding})"
